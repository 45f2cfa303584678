/* qmp-client.c: one QMP connection: connecting, negotiation, reading and writing lines,
 * closing and freeing.  Commands are in qmp-client-command.c, events in qmp-client-event.c;
 * the re-entrancy rules are in qmp-client-private.h. */
#define G_LOG_DOMAIN "vmherd-qmp"

#include "qmp/qmp-client-private.h"

#include "common/fd-util.h"
#include "qmp/qmp-args.h"
#include "qmp/qmp-socket.h"

G_STATIC_ASSERT (QMP_CLIENT_MAX_FDS <= QMP_SOCKET_MAX_FDS);

#define READ_CHUNK (64 * 1024)
#define READS_PER_DISPATCH 16 /* then let other sources run */
#define TRAFFIC_DEBUG_MAX 512 /* bytes of a line shown by the traffic g_debug() */

typedef struct
{
  char *data;
  gsize length;
  gsize offset;
  int *fds;               /* our duplicates; closed once sent with the first byte */
  guint n_fds;
} QmpOutChunk;

static const char *const qmp_client_state_names[] = {
  [QMP_CLIENT_STATE_DISCONNECTED] = "disconnected",
  [QMP_CLIENT_STATE_CONNECTING] = "connecting",
  [QMP_CLIENT_STATE_NEGOTIATING] = "negotiating",
  [QMP_CLIENT_STATE_READY] = "ready",
  [QMP_CLIENT_STATE_CLOSED] = "closed",
};

const char *
qmp_client_state_to_string (QmpClientState state)
{
  if ((guint) state >= G_N_ELEMENTS (qmp_client_state_names))
    return "unknown";
  return qmp_client_state_names[state];
}

static void client_close (QmpClient *client, GError *reason);

void
qmp_source_drop (GSource *source)
{
  g_source_destroy (source);
  g_source_unref (source);
}

GSource *
qmp_client_attach (QmpClient *client, GSource *source, GSourceFunc func, gpointer data)
{
  g_source_set_callback (source, func, data, NULL);
  g_source_attach (source, client->context);
  return source;
}

static void
client_set_state (QmpClient *client, QmpClientState state)
{
  g_debug ("QMP client %p: %s -> %s", (void *) client, qmp_client_state_to_string (client->state),
           qmp_client_state_to_string (state));
  client->state = state;
}

void
qmp_client_hold (QmpClient *client)
{
  client->dispatch_depth++;
}

static void
client_destroy (QmpClient *client)
{
  g_clear_pointer (&client->events_source, qmp_source_drop);
  g_queue_clear_full (&client->events, (GDestroyNotify) qmp_message_free);
  g_ptr_array_unref (client->subscriptions);
  g_clear_pointer (&client->greeting, qmp_message_free);
  g_strfreev (client->capabilities);
  qmp_line_buffer_free (client->lines);
  g_free (client->read_buffer);
  g_main_context_unref (client->context);
  g_free (client);
}

gboolean
qmp_client_release (QmpClient *client)
{
  if (--client->dispatch_depth > 0)
    return TRUE;
  if (client->free_requested)
    {
      client_destroy (client);
      return FALSE;
    }
  qmp_client_compact_subscriptions (client);
  return TRUE;
}

gboolean
qmp_client_is_open (QmpClient *client)
{
  return client->state != QMP_CLIENT_STATE_CLOSED && !client->free_requested;
}

static void
debug_traffic (const char *direction, const char *line, gsize length)
{
  if (g_log_writer_default_would_drop (G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN))
    return;
  while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r'))
    length--;
  g_debug ("%s %.*s%s", direction, (int) MIN (length, TRAFFIC_DEBUG_MAX), line,
           length > TRAFFIC_DEBUG_MAX ? " ..." : "");
}

QmpClient *
qmp_client_new (void)
{
  QmpClient *client = g_new0 (QmpClient, 1);

  client->state = QMP_CLIENT_STATE_DISCONNECTED;
  client->context = g_main_context_ref_thread_default ();
  client->fd = -1;
  client->lines = qmp_line_buffer_new (QMP_MAX_LINE_LENGTH);
  client->read_buffer = g_malloc (READ_CHUNK);
  client->next_id = 1;
  client->subscriptions = g_ptr_array_new_with_free_func (g_free);
  g_queue_init (&client->out_queue);
  g_queue_init (&client->pending);
  g_queue_init (&client->events);
  return client;
}

/* ---- output ---- */

static void
out_chunk_free (QmpOutChunk *chunk)
{
  qmp_socket_close_fds (chunk->fds, chunk->n_fds);
  g_free (chunk->data);
  g_free (chunk);
}

static gboolean
client_flush (QmpClient *client, GError **error)
{
  QmpOutChunk *chunk;

  while ((chunk = g_queue_peek_head (&client->out_queue)) != NULL)
    {
      gssize sent = qmp_socket_send (client->fd, chunk->data + chunk->offset, chunk->length - chunk->offset,
                                     chunk->fds, chunk->n_fds, error);

      if (sent < 0)
        return FALSE;
      if (sent == 0)
        return TRUE; /* socket full: wait for G_IO_OUT */
      /* The kernel attached the fds to the first byte sent; our duplicates can go. */
      qmp_socket_close_fds (g_steal_pointer (&chunk->fds), chunk->n_fds);
      chunk->n_fds = 0;
      chunk->offset += (gsize) sent;
      if (chunk->offset == chunk->length)
        out_chunk_free (g_queue_pop_head (&client->out_queue));
    }
  return TRUE;
}

static void client_read (QmpClient *client);

static gboolean
on_writable (int fd G_GNUC_UNUSED, GIOCondition condition G_GNUC_UNUSED, gpointer data)
{
  QmpClient *client = data;
  g_autoptr(GError) error = NULL;

  qmp_client_hold (client);
  if (!client_flush (client, &error))
    {
      /* QEMU may have closed after sending its last words (SHUTDOWN): read them first. */
      client_read (client);
      if (qmp_client_is_open (client))
        client_close (client, g_steal_pointer (&error));
    }
  else if (client->out_queue.length == 0)
    g_clear_pointer (&client->out_source, qmp_source_drop);
  return qmp_client_release (client) && client->out_source != NULL ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* Queues a line (taken) with its fds (taken) and lets the main loop write it. */
static void
client_queue_output (QmpClient *client, char *data, gsize length, int *fds, guint n_fds)
{
  QmpOutChunk *chunk = g_new0 (QmpOutChunk, 1);

  debug_traffic ("->", data, length);
  chunk->data = data;
  chunk->length = length;
  chunk->fds = fds;
  chunk->n_fds = n_fds;
  g_queue_push_tail (&client->out_queue, chunk);
  if (client->out_source == NULL)
    client->out_source = qmp_client_attach (client, g_unix_fd_source_new (client->fd, G_IO_OUT),
                                            G_SOURCE_FUNC (on_writable), client);
}

void
qmp_client_send (QmpClient *client, QmpPending *pending, JsonObject *command, int *fds, guint n_fds)
{
  g_autoptr(JsonNode) id = json_node_init_int (json_node_alloc (), client->next_id++);
  g_autoptr(JsonObject) with_id = qmp_object_copy_with_id (command, id);
  gsize length = 0;
  char *line = qmp_object_serialize (with_id, &length);

  json_object_unref (command);
  pending->client = client;
  pending->id = json_node_get_int (id);
  g_queue_push_tail (&client->pending, pending);
  client_queue_output (client, line, length, fds, n_fds);
}

/* ---- closing ---- */

static void
client_release_connection (QmpClient *client)
{
  g_clear_pointer (&client->in_source, qmp_source_drop);
  g_clear_pointer (&client->out_source, qmp_source_drop);
  g_clear_pointer (&client->connect_timeout_source, qmp_source_drop);
  g_clear_pointer (&client->connect_cancel_source, qmp_source_drop);
  fd_close_if_valid (client->fd);
  client->fd = -1;
  g_queue_clear_full (&client->out_queue, (GDestroyNotify) out_chunk_free);
}

/* Closes with reason (taken): fails the connect task and every pending command, then tells
 * the closed callback.  Only from a held dispatch: callbacks may free the client. */
static void
client_close (QmpClient *client, GError *reason)
{
  gboolean was_ready = client->state == QMP_CLIENT_STATE_READY;
  QmpPending *pending;

  if (!qmp_client_is_open (client))
    {
      g_error_free (reason);
      return;
    }
  g_debug ("QMP connection closed: %s", reason->message);
  client_set_state (client, QMP_CLIENT_STATE_CLOSED);
  client_release_connection (client);
  if (client->connect_task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&client->connect_task);
      g_task_return_error (task, g_error_copy (reason));
    }
  while (!client->free_requested && (pending = g_queue_pop_head (&client->pending)) != NULL)
    qmp_pending_fail (pending, g_error_new (QMP_ERROR, QMP_ERROR_DISCONNECTED, "no reply to '%s': %s",
                                            pending->command, reason->message));
  if (was_ready && !client->free_requested && client->closed_func != NULL)
    client->closed_func (client, reason, client->closed_data);
  g_error_free (reason);
}

void
qmp_client_free (QmpClient *client)
{
  QmpPending *pending;

  if (client == NULL || client->free_requested)
    return;
  client->free_requested = TRUE;
  client->state = QMP_CLIENT_STATE_CLOSED;
  client_release_connection (client);
  g_clear_pointer (&client->events_source, qmp_source_drop);
  if (client->connect_task != NULL)
    qmp_task_fail_later (g_steal_pointer (&client->connect_task),
                         g_error_new_literal (QMP_ERROR, QMP_ERROR_CANCELLED,
                                              "QMP client freed while connecting"));
  while ((pending = g_queue_pop_head (&client->pending)) != NULL)
    {
      if (pending->task != NULL)
        qmp_task_fail_later (g_steal_pointer (&pending->task),
                             g_error_new (QMP_ERROR, QMP_ERROR_CANCELLED,
                                          "'%s' cancelled: QMP client freed", pending->command));
      qmp_pending_free (pending);
    }
  qmp_client_clear_subscriptions (client);
  if (client->closed_destroy != NULL)
    g_steal_pointer (&client->closed_destroy) (client->closed_data);
  client->closed_func = NULL;
  if (client->dispatch_depth == 0)
    client_destroy (client);
}

void
qmp_client_set_closed_func (QmpClient *client, QmpClosedFunc func, gpointer user_data, GDestroyNotify destroy)
{
  g_return_if_fail (client != NULL);

  if (client->closed_destroy != NULL)
    client->closed_destroy (client->closed_data);
  client->closed_func = func;
  client->closed_data = user_data;
  client->closed_destroy = destroy;
}

/* ---- input ---- */

static void
client_negotiate (QmpClient *client)
{
  g_autoptr(GPtrArray) enable = g_ptr_array_new ();
  g_autoptr(JsonObject) args = NULL;
  QmpPending *pending = g_new0 (QmpPending, 1);

  for (gsize i = 0; client->capabilities != NULL && client->capabilities[i] != NULL; i++)
    {
      if (g_strv_contains ((const char *const *) client->greeting->capabilities, client->capabilities[i]))
        g_ptr_array_add (enable, client->capabilities[i]);
      else
        g_debug ("QEMU does not offer QMP capability '%s', not enabling it", client->capabilities[i]);
    }
  g_ptr_array_add (enable, NULL);
  if (enable->len > 1)
    args = qmp_build_capabilities_args ((const char *const *) enable->pdata);
  pending->command = g_strdup ("qmp_capabilities");
  client_set_state (client, QMP_CLIENT_STATE_NEGOTIATING);
  qmp_client_send (client, pending, qmp_command_build ("qmp_capabilities", args, NULL, FALSE), NULL, 0);
}

void
qmp_client_on_capabilities_reply (QmpClient *client, QmpMessage *reply)
{
  g_autoptr(GTask) task = NULL;

  if (reply->kind == QMP_MESSAGE_ERROR)
    {
      GError *error = NULL;

      qmp_message_set_gerror (reply, &error);
      g_prefix_error (&error, "qmp_capabilities refused: ");
      client_close (client, error);
      return;
    }
  g_clear_pointer (&client->connect_timeout_source, qmp_source_drop);
  g_clear_pointer (&client->connect_cancel_source, qmp_source_drop);
  client_set_state (client, QMP_CLIENT_STATE_READY);
  task = g_steal_pointer (&client->connect_task);
  g_task_return_boolean (task, TRUE);
}

static void
client_handle_message (QmpClient *client, QmpMessage *message)
{
  if (client->state == QMP_CLIENT_STATE_CONNECTING && message->kind != QMP_MESSAGE_GREETING)
    {
      client_close (client, g_error_new (QMP_ERROR, QMP_ERROR_PROTOCOL,
                                         "expected the QMP greeting, got a '%s' message",
                                         qmp_message_kind_to_string (message->kind)));
      qmp_message_free (message);
      return;
    }
  switch (message->kind)
    {
    case QMP_MESSAGE_GREETING:
      if (client->greeting != NULL)
        {
          g_debug ("second QMP greeting, ignoring");
          qmp_message_free (message);
          return;
        }
      client->greeting = message;
      client_negotiate (client);
      return;
    case QMP_MESSAGE_RETURN:
    case QMP_MESSAGE_ERROR:
      qmp_client_on_reply (client, message);
      return;
    case QMP_MESSAGE_EVENT:
    default:
      qmp_client_on_event (client, message);
      return;
    }
}

static void
client_process_lines (QmpClient *client)
{
  while (qmp_client_is_open (client))
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *line = NULL;
      QmpMessage *message;
      gsize length = 0;

      line = qmp_line_buffer_next (client->lines, &length, &error);
      if (line == NULL)
        {
          if (error != NULL)
            client_close (client, g_steal_pointer (&error));
          return;
        }
      debug_traffic ("<-", line, length);
      message = qmp_message_parse (line, length, &error);
      if (message == NULL)
        {
          g_prefix_error (&error, "invalid message from QEMU: ");
          client_close (client, g_steal_pointer (&error));
          return;
        }
      client_handle_message (client, message);
    }
}

static void
client_on_eof (QmpClient *client)
{
  gsize pending = qmp_line_buffer_get_pending (client->lines);

  if (pending > 0)
    client_close (client, g_error_new (QMP_ERROR, QMP_ERROR_DISCONNECTED,
                                       "QEMU closed the QMP connection in the middle of a message "
                                       "(%" G_GSIZE_FORMAT " bytes unterminated)", pending));
  else
    client_close (client, g_error_new_literal (QMP_ERROR, QMP_ERROR_DISCONNECTED,
                                               "QEMU closed the QMP connection"));
}

/* Reads what is there (bounded, for fairness) and handles every complete line. */
static void
client_read (QmpClient *client)
{
  for (guint i = 0; i < READS_PER_DISPATCH && qmp_client_is_open (client); i++)
    {
      GError *error = NULL;
      gssize received = qmp_socket_recv (client->fd, client->read_buffer, READ_CHUNK, &error);

      if (received < 0)
        {
          if (error != NULL)
            client_close (client, error);
          return;
        }
      if (received == 0)
        {
          client_on_eof (client);
          return;
        }
      qmp_line_buffer_feed (client->lines, client->read_buffer, (gsize) received);
      client_process_lines (client);
    }
}

static gboolean
on_readable (int fd G_GNUC_UNUSED, GIOCondition condition G_GNUC_UNUSED, gpointer data)
{
  QmpClient *client = data;

  qmp_client_hold (client);
  client_read (client);
  return qmp_client_release (client) && client->in_source != NULL ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* ---- connecting ---- */

static gboolean
on_connect_timeout (gpointer data)
{
  QmpClient *client = data;

  qmp_client_hold (client);
  g_clear_pointer (&client->connect_timeout_source, qmp_source_drop);
  if (client->state == QMP_CLIENT_STATE_CONNECTING)
    client_close (client, g_error_new (QMP_ERROR, QMP_ERROR_TIMEOUT,
                                       "no QMP greeting within %u ms (is QEMU stopped, or is another "
                                       "client connected?)", client->connect_timeout_ms));
  else
    client_close (client, g_error_new (QMP_ERROR, QMP_ERROR_TIMEOUT,
                                       "no reply to qmp_capabilities within %u ms",
                                       client->connect_timeout_ms));
  qmp_client_release (client);
  return G_SOURCE_REMOVE;
}

static gboolean
on_connect_cancelled (GCancellable *cancellable G_GNUC_UNUSED, gpointer data)
{
  QmpClient *client = data;

  qmp_client_hold (client);
  g_clear_pointer (&client->connect_cancel_source, qmp_source_drop);
  client_close (client, g_error_new_literal (QMP_ERROR, QMP_ERROR_CANCELLED, "connecting to QEMU cancelled"));
  qmp_client_release (client);
  return G_SOURCE_REMOVE;
}

static void
client_start (QmpClient *client, int fd, GTask *task, guint timeout_ms, GCancellable *cancellable)
{
  client->fd = fd;
  client->connect_task = task;
  client->connect_timeout_ms = timeout_ms;
  client_set_state (client, QMP_CLIENT_STATE_CONNECTING);
  client->in_source = qmp_client_attach (client, g_unix_fd_source_new (fd, G_IO_IN | G_IO_HUP | G_IO_ERR),
                                         G_SOURCE_FUNC (on_readable), client);
  if (timeout_ms > 0)
    client->connect_timeout_source = qmp_client_attach (client, g_timeout_source_new (timeout_ms),
                                                        on_connect_timeout, client);
  if (cancellable != NULL)
    client->connect_cancel_source = qmp_client_attach (client, g_cancellable_source_new (cancellable),
                                                       G_SOURCE_FUNC (on_connect_cancelled), client);
}

static GTask *
connect_task_new (GAsyncReadyCallback callback, gpointer user_data)
{
  /* No cancellable on the task: GTask would turn a cancelled one into G_IO_ERROR_CANCELLED
   * at propagate time, even after success; we report QMP_ERROR_CANCELLED ourselves. */
  GTask *task = g_task_new (NULL, NULL, callback, user_data);

  g_task_set_source_tag (task, qmp_client_connect_async);
  g_task_set_name (task, "qmp-connect");
  return task;
}

void
qmp_client_connect_async (QmpClient *client, const char *socket_path, guint timeout_ms,
                          GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;
  int fd;

  g_return_if_fail (client != NULL && socket_path != NULL);
  g_return_if_fail (client->state == QMP_CLIENT_STATE_DISCONNECTED);

  task = connect_task_new (callback, user_data);
  fd = qmp_socket_connect (socket_path, &error);
  if (fd < 0)
    {
      client_set_state (client, QMP_CLIENT_STATE_CLOSED);
      g_task_return_error (task, error); /* from an idle: same iteration as g_task_new() */
      return;
    }
  client_start (client, fd, g_steal_pointer (&task), timeout_ms, cancellable);
}

void
qmp_client_open_fd_async (QmpClient *client, int fd, guint timeout_ms, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_auto(AutoFd) owned_fd = fd;
  GError *error = NULL;

  g_return_if_fail (client != NULL && fd >= 0);
  g_return_if_fail (client->state == QMP_CLIENT_STATE_DISCONNECTED);

  task = connect_task_new (callback, user_data);
  if (!qmp_socket_prepare (fd, &error))
    {
      client_set_state (client, QMP_CLIENT_STATE_CLOSED);
      g_task_return_error (task, error);
      return;
    }
  client_start (client, g_steal_fd (&owned_fd), g_steal_pointer (&task), timeout_ms, cancellable);
}

gboolean
qmp_client_connect_finish (QmpClient *client G_GNUC_UNUSED, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qmp_client_connect_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

QmpClientState
qmp_client_get_state (QmpClient *client)
{
  g_return_val_if_fail (client != NULL, QMP_CLIENT_STATE_CLOSED);

  return client->state;
}

const QmpMessage *
qmp_client_get_greeting (QmpClient *client)
{
  g_return_val_if_fail (client != NULL, NULL);

  return client->greeting;
}

void
qmp_client_set_capabilities (QmpClient *client, const char *const *capabilities)
{
  g_return_if_fail (client != NULL);
  g_return_if_fail (client->state == QMP_CLIENT_STATE_DISCONNECTED);

  g_strfreev (client->capabilities);
  client->capabilities = g_strdupv ((char **) capabilities);
}

