/* control-proto.c: the control socket's line codec and the CLI's blocking client. */
#define G_LOG_DOMAIN "vmherd-control"

#include "launcher/control-proto.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "qmp/qmp-message.h"

#define READ_CHUNK (64 * 1024)

/* ---- the codec ---- */

const char *
control_json_describe (JsonNode *node)
{
  return qmp_json_describe (node);
}

const char *
control_json_get_string (JsonObject *object, const char *member)
{
  JsonNode *node = json_object_get_member (object, member);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

JsonObject *
control_line_parse (const char *line, gsize length, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(JsonNode) root = qmp_json_parse_line (line, length, &local_error);

  if (root == NULL)
    {
      g_set_error_literal (error, CONTROL_ERROR, CONTROL_ERROR_PROTOCOL, local_error->message);
      return NULL;
    }
  if (!JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_PROTOCOL, "%s, not a JSON object",
                   control_json_describe (root));
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

gboolean
control_request_check (JsonObject *object, const char **out_command, JsonObject **out_arguments, GError **error)
{
  g_autoptr(GList) members = NULL;
  JsonNode *execute, *arguments;

  g_return_val_if_fail (object != NULL, FALSE);

  members = json_object_get_members (object);
  execute = json_object_get_member (object, "execute");
  arguments = json_object_get_member (object, "arguments");

  for (GList *l = members; l != NULL; l = l->next)
    if (!g_str_equal (l->data, "execute") && !g_str_equal (l->data, "arguments") && !g_str_equal (l->data, "id"))
      {
        g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_PROTOCOL,
                     "unexpected member '%s' (expected execute, arguments and id)", (const char *) l->data);
        return FALSE;
      }
  if (execute == NULL)
    {
      g_set_error_literal (error, CONTROL_ERROR, CONTROL_ERROR_PROTOCOL,
                           "no 'execute' member (expected {\"execute\": COMMAND, \"arguments\": {...}, "
                           "\"id\": ID})");
      return FALSE;
    }
  if (control_json_get_string (object, "execute") == NULL)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_PROTOCOL, "'execute' is %s, not a string",
                   control_json_describe (execute));
      return FALSE;
    }
  if (arguments != NULL && !JSON_NODE_HOLDS_OBJECT (arguments))
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_PROTOCOL, "'arguments' of '%s' is %s, not an object",
                   control_json_get_string (object, "execute"), control_json_describe (arguments));
      return FALSE;
    }
  *out_command = control_json_get_string (object, "execute");
  *out_arguments = arguments != NULL ? json_node_get_object (arguments) : NULL;
  return TRUE;
}

/* ---- the client ---- */

struct _ControlClient
{
  int fd;
  char *path;
  QmpLineBuffer *lines;
  GQueue ready;         /* GBytes: complete lines read from the socket, oldest first */
  GError *failure;      /* EOF, a read error or a bad line: reported once ready is empty */
  gint64 next_id;
};

static ControlClient *
client_new (int fd, const char *path)
{
  ControlClient *client = g_new0 (ControlClient, 1);

  client->fd = fd;
  client->path = g_strdup (path);
  client->lines = qmp_line_buffer_new (CONTROL_MAX_ANSWER_LENGTH);
  g_queue_init (&client->ready);
  client->next_id = 1;
  return client;
}

ControlClient *
control_client_connect (const char *path, GError **error)
{
  int fd;

  g_return_val_if_fail (path != NULL, NULL);

  fd = control_connect (path, error);
  return fd >= 0 ? client_new (fd, path) : NULL;
}

void
control_client_free (ControlClient *client)
{
  if (client == NULL)
    return;
  fd_close_if_valid (client->fd);
  qmp_line_buffer_free (client->lines);
  g_queue_clear_full (&client->ready, (GDestroyNotify) g_bytes_unref);
  g_clear_error (&client->failure);
  g_free (client->path);
  g_free (client);
}

int
control_client_get_fd (ControlClient *client)
{
  g_return_val_if_fail (client != NULL, -1);

  return client->fd;
}

gboolean
control_client_has_buffered_line (ControlClient *client)
{
  g_return_val_if_fail (client != NULL, FALSE);

  return !g_queue_is_empty (&client->ready);
}

/* Records why the connection is unusable (the first reason wins); reported once the lines
 * read before it are consumed. */
static void G_GNUC_PRINTF (3, 4)
client_set_failure (ControlClient *client, ControlError code, const char *format, ...)
{
  va_list args;

  if (client->failure != NULL)
    return;
  va_start (args, format);
  client->failure = g_error_new_valist (CONTROL_ERROR, code, format, args);
  va_end (args);
}

/* Moves every complete line from the byte stream to the ready queue. */
static void
client_split_lines (ControlClient *client)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      gsize length = 0;
      char *line = qmp_line_buffer_next (client->lines, &length, &error);

      if (line == NULL)
        {
          if (error != NULL)
            client_set_failure (client, CONTROL_ERROR_PROTOCOL, "vmherdd at %s sent a bad line: %s",
                                client->path, error->message);
          return;
        }
      g_queue_push_tail (&client->ready, g_bytes_new_take (line, length));
    }
}

/* One non-blocking read into the line buffer.  FALSE when nothing is there yet. */
static gboolean
client_receive (ControlClient *client)
{
  char buffer[READ_CHUNK];

  for (;;)
    {
      gssize received = recv (client->fd, buffer, sizeof buffer, MSG_DONTWAIT);
      int saved_errno = errno;

      if (received > 0)
        {
          qmp_line_buffer_feed (client->lines, buffer, (gsize) received);
          client_split_lines (client);
          return TRUE;
        }
      /* A peer that closes with our bytes unread makes Linux report ECONNRESET after
       * everything it sent was read: an orderly close, like EOF. */
      if (received == 0 || saved_errno == ECONNRESET)
        {
          client_set_failure (client, CONTROL_ERROR_DISCONNECTED, "vmherdd at %s closed the connection%s",
                              client->path,
                              qmp_line_buffer_get_pending (client->lines) > 0 ? " in the middle of a line" : "");
          return TRUE;
        }
      if (saved_errno == EINTR)
        continue;
      if (saved_errno != EAGAIN && saved_errno != EWOULDBLOCK)
        {
          client_set_failure (client, CONTROL_ERROR_DISCONNECTED, "cannot read from vmherdd at %s: %s",
                              client->path, g_strerror (saved_errno));
          return TRUE;
        }
      return FALSE;
    }
}

/* The next line as an object (owned), or NULL with the connection's failure, a bad line
 * (CONTROL_ERROR_PROTOCOL) or CONTROL_ERROR_TIMEOUT with the message timeout_message. */
static JsonObject *
client_next_object (ControlClient *client, gint64 deadline, const char *timeout_message, GError **error)
{
  g_autoptr(GBytes) line = NULL;
  g_autoptr(GError) parse_error = NULL;
  JsonObject *object;
  gsize length = 0;
  const char *text;

  while (g_queue_is_empty (&client->ready))
    {
      if (client->failure != NULL)
        {
          g_propagate_error (error, g_error_copy (client->failure));
          return NULL;
        }
      if (!client_receive (client) && !control_wait (client->fd, POLLIN, deadline))
        {
          g_set_error_literal (error, CONTROL_ERROR, CONTROL_ERROR_TIMEOUT, timeout_message);
          return NULL;
        }
    }
  line = g_queue_pop_head (&client->ready);
  text = g_bytes_get_data (line, &length);
  object = control_line_parse (text, length, &parse_error);
  if (object == NULL)
    {
      /* Our own daemon sent garbage: nothing after it can be trusted. */
      client_set_failure (client, CONTROL_ERROR_PROTOCOL, "vmherdd at %s sent a bad line: %s", client->path,
                          parse_error->message);
      g_queue_clear_full (&client->ready, (GDestroyNotify) g_bytes_unref);
      g_propagate_error (error, g_error_copy (client->failure));
    }
  return object;
}

JsonObject *
control_client_read_line (ControlClient *client, guint timeout_ms, GError **error)
{
  g_autofree char *timeout_message = NULL;

  g_return_val_if_fail (client != NULL, NULL);

  timeout_message = g_strdup_printf ("nothing from vmherdd within %u ms", timeout_ms);
  return client_next_object (client, control_deadline_from (timeout_ms), timeout_message, error);
}

static gboolean
client_send_all (ControlClient *client, const char *data, gsize length, gint64 deadline,
                 const char *timeout_message, GError **error)
{
  gsize offset = 0;

  while (offset < length)
    {
      gssize sent = send (client->fd, data + offset, length - offset, MSG_NOSIGNAL | MSG_DONTWAIT);
      int saved_errno = errno;

      if (sent >= 0)
        offset += (gsize) sent;
      else if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)
        {
          if (control_wait (client->fd, POLLOUT, deadline))
            continue;
          g_set_error_literal (error, CONTROL_ERROR, CONTROL_ERROR_TIMEOUT, timeout_message);
          /* Half a request went out: the connection is out of step for good. */
          if (offset > 0)
            client_set_failure (client, CONTROL_ERROR_DISCONNECTED, "%s", timeout_message);
          return FALSE;
        }
      else if (saved_errno != EINTR)
        {
          /* The daemon may have said why before it closed (it refuses a peer that way):
           * keep what it sent for the caller to read. */
          while (client->failure == NULL && client_receive (client))
            ;
          client_set_failure (client, CONTROL_ERROR_DISCONNECTED, "cannot write to vmherdd at %s: %s",
                              client->path, g_strerror (saved_errno));
          g_propagate_error (error, g_error_copy (client->failure));
          return FALSE;
        }
    }
  return TRUE;
}

/* Whether line answers the call with this id.  An error without an id answers whatever
 * call is waiting: the daemon sends one when it cannot read an id (a refused peer, a
 * request it could not parse). */
static gboolean
line_answers (JsonObject *line, gint64 id)
{
  JsonNode *line_id = json_object_get_member (line, "id");

  if (!json_object_has_member (line, "return") && !json_object_has_member (line, "error"))
    return FALSE;
  if (line_id == NULL)
    return json_object_has_member (line, "error");
  return JSON_NODE_HOLDS_VALUE (line_id) && json_node_get_value_type (line_id) == G_TYPE_INT64
         && json_node_get_int (line_id) == id;
}

/* Turns an answer into the call's result. */
static JsonNode *
answer_take_result (ControlClient *client, JsonObject *answer, char **out_error_class, GError **error)
{
  JsonNode *body = json_object_get_member (answer, "error");
  JsonObject *fields;
  const char *class, *desc;

  if (body == NULL)
    return json_node_copy (json_object_get_member (answer, "return"));
  fields = JSON_NODE_HOLDS_OBJECT (body) ? json_node_get_object (body) : NULL;
  class = fields != NULL ? control_json_get_string (fields, "class") : NULL;
  desc = fields != NULL ? control_json_get_string (fields, "desc") : NULL;
  if (class == NULL || desc == NULL)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_PROTOCOL,
                   "vmherdd at %s sent an error without a string class and desc", client->path);
      return NULL;
    }
  g_set_error_literal (error, CONTROL_ERROR, CONTROL_ERROR_REFUSED, desc);
  if (out_error_class != NULL)
    *out_error_class = g_strdup (class);
  return NULL;
}

JsonNode *
control_client_call (ControlClient *client, const char *command, JsonObject *arguments, guint timeout_ms,
                     ControlLineFunc on_line, gpointer user_data, char **out_error_class, GError **error)
{
  g_autoptr(JsonNode) id = NULL;
  g_autofree char *request = NULL;
  g_autofree char *timeout_message = NULL;
  g_autoptr(GError) send_error = NULL;
  gint64 deadline = control_deadline_from (timeout_ms);
  gsize length = 0;

  g_return_val_if_fail (client != NULL && command != NULL, NULL);

  if (client->failure != NULL)
    {
      g_propagate_error (error, g_error_copy (client->failure));
      return NULL;
    }
  id = json_node_init_int (json_node_alloc (), client->next_id++);
  request = qmp_command_serialize (command, arguments, id, FALSE, &length);
  timeout_message = g_strdup_printf ("no answer from vmherdd to '%s' within %u ms", command, timeout_ms);
  if (!client_send_all (client, request, length, deadline, timeout_message, &send_error))
    {
      /* Lines the daemon sent before closing may hold the answer (an error without id). */
      if (g_queue_is_empty (&client->ready))
        {
          g_propagate_error (error, g_steal_pointer (&send_error));
          return NULL;
        }
    }
  for (;;)
    {
      g_autoptr(JsonObject) line = client_next_object (client, deadline, timeout_message, error);
      JsonNode *line_id;

      if (line == NULL)
        return NULL;
      if (line_answers (line, json_node_get_int (id)))
        return answer_take_result (client, line, out_error_class, error);
      line_id = json_object_get_member (line, "id");
      if (json_object_has_member (line, "event")
          || (json_object_has_member (line, "progress") && line_id != NULL && json_node_equal (line_id, id)))
        {
          if (on_line != NULL)
            on_line (line, user_data);
        }
      else
        g_debug ("skipping a line for an earlier call (timed out) while waiting for '%s'", command);
    }
}
