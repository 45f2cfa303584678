/* control.c: the control socket server: binding, peer credentials, reading requests,
 * queueing answers and events.  The wire format is in control.h; the codec is shared with
 * the CLI's client in control-proto.c.
 *
 * Lifetimes: the server holds one reference on each open connection; each request holds
 * one on its connection, so a request outlives its client and the server.  Closing a
 * connection (EOF, error, output cap, server freed) releases its fd and sources at once and
 * sets connection->server to NULL; answers to it are then dropped. */
#define _GNU_SOURCE /* struct ucred, accept4() */
#define G_LOG_DOMAIN "vmherd-control"

#include "launcher/control.h"

#include <errno.h>
#include <poll.h>
#include <glib-unix.h>
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "qmp/qmp-message.h"

#define READ_CHUNK (64 * 1024)
#define READS_PER_DISPATCH 16   /* then let other connections run */
#define ACCEPTS_PER_DISPATCH 16
#define LISTEN_BACKLOG 64
#define ACCEPT_RETRY_MS 1000    /* after running out of fds: retry instead of spinning */
#define PEER_GROUPS_ON_STACK 64

G_STATIC_ASSERT (READ_CHUNK < CONTROL_MAX_REQUEST_LENGTH); /* see connection_process_lines() */

static const char *const default_read_only_commands[] = {
  "list", "status", "events", "version", "logs", "image-info", NULL,
};

typedef struct _ControlConnection ControlConnection;

struct _ControlConnection
{
  guint refcount;
  ControlServer *server;        /* NULL once closed */
  GList *link;                  /* in server->connections */
  int fd;
  ControlPeer peer;
  GSource *in_source;
  GSource *out_source;          /* only while output waits for the socket */
  QmpLineBuffer *lines;
  gboolean discarding;          /* dropping the rest of an overlong line up to its "\n" */
  GQueue out_queue;             /* GBytes, one line each */
  gsize out_offset;             /* bytes of the head line already sent */
  gsize out_bytes;              /* unsent bytes in out_queue */
  gboolean subscribed;          /* sent `events` */
};

struct _ControlServer
{
  char *path;
  dev_t socket_dev;             /* the socket file we created, to remove only ours */
  ino_t socket_ino;
  int listen_fd;
  GMainContext *context;
  GSource *accept_source;
  GSource *accept_retry_source;
  char *group_name;             /* NULL: root only */
  gboolean have_group;
  gid_t group_gid;
  GStrv read_only_commands;
  ControlHandler handler;
  gpointer user_data;
  GQueue connections;           /* ControlConnection */
  guint8 *read_buffer;
};

struct _ControlRequest
{
  ControlConnection *connection; /* a reference */
  char *command;
  JsonNode *id;                 /* NULL when the request had none */
};

static void
source_drop (GSource *source)
{
  g_source_destroy (source);
  g_source_unref (source);
}

static GSource *
server_attach (ControlServer *server, GSource *source, GSourceFunc func, gpointer data)
{
  g_source_set_callback (source, func, data, NULL);
  g_source_attach (source, server->context);
  return source;
}

gboolean
control_peer_may_run (const ControlPeer *peer, const char *command, const char *const *read_only_commands)
{
  g_return_val_if_fail (peer != NULL && command != NULL, FALSE);

  if (peer->may_write)
    return TRUE;
  return g_strv_contains (read_only_commands != NULL ? read_only_commands : default_read_only_commands, command);
}

/* ---- connections: lifetime and output ---- */

static ControlConnection *
connection_ref (ControlConnection *connection)
{
  connection->refcount++;
  return connection;
}

static void
connection_unref (ControlConnection *connection)
{
  if (--connection->refcount > 0)
    return;
  g_assert (connection->server == NULL);
  qmp_line_buffer_free (connection->lines);
  g_free (connection);
}

/* Releases the fd and sources and drops the server's reference.  Safe from any callback:
 * callers that go on touching the connection hold their own reference. */
static void
connection_close (ControlConnection *connection, const char *why)
{
  ControlServer *server = connection->server;

  if (server == NULL)
    return;
  g_debug ("control connection of uid %u (pid %d) closed: %s", (guint) connection->peer.uid,
           (int) connection->peer.pid, why);
  g_clear_pointer (&connection->in_source, source_drop);
  g_clear_pointer (&connection->out_source, source_drop);
  fd_close_if_valid (connection->fd);
  connection->fd = -1;
  g_queue_clear_full (&connection->out_queue, (GDestroyNotify) g_bytes_unref);
  connection->out_bytes = connection->out_offset = 0;
  g_queue_delete_link (&server->connections, connection->link);
  connection->link = NULL;
  connection->server = NULL;
  connection_unref (connection);
}

/* Writes what the socket takes.  FALSE with *out_errno when the peer is gone. */
static gboolean
connection_flush (ControlConnection *connection, int *out_errno)
{
  GBytes *line;

  while ((line = g_queue_peek_head (&connection->out_queue)) != NULL)
    {
      gsize size = 0;
      const char *data = g_bytes_get_data (line, &size);
      gssize sent = send (connection->fd, data + connection->out_offset, size - connection->out_offset,
                          MSG_NOSIGNAL | MSG_DONTWAIT);

      if (sent < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            return TRUE;
          *out_errno = errno;
          return FALSE;
        }
      connection->out_offset += (gsize) sent;
      connection->out_bytes -= (gsize) sent;
      if (connection->out_offset == size)
        {
          g_bytes_unref (g_queue_pop_head (&connection->out_queue));
          connection->out_offset = 0;
        }
    }
  return TRUE;
}

static gboolean
on_writable (int fd G_GNUC_UNUSED, GIOCondition condition G_GNUC_UNUSED, gpointer data)
{
  ControlConnection *connection = data;
  int saved_errno = 0;

  if (!connection_flush (connection, &saved_errno))
    {
      connection_close (connection, g_strerror (saved_errno));
      return G_SOURCE_REMOVE;
    }
  if (g_queue_is_empty (&connection->out_queue))
    {
      g_clear_pointer (&connection->out_source, source_drop);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* Bytes waiting besides the line being written: what the cap applies to, so one large
 * answer still goes out whole to a client that reads. */
static gsize
connection_backlog (ControlConnection *connection)
{
  GBytes *head = g_queue_peek_head (&connection->out_queue);

  return head == NULL ? 0 : connection->out_bytes - (g_bytes_get_size (head) - connection->out_offset);
}

/* Queues one line (a new reference is taken) and writes what the socket takes now.  May
 * close the connection (peer gone, or it stopped reading). */
static void
connection_queue (ControlConnection *connection, GBytes *line)
{
  int saved_errno = 0;

  if (connection->server == NULL)
    return;
  g_queue_push_tail (&connection->out_queue, g_bytes_ref (line));
  connection->out_bytes += g_bytes_get_size (line);
  if (connection->out_source == NULL && !connection_flush (connection, &saved_errno))
    {
      connection_close (connection, g_strerror (saved_errno));
      return;
    }
  if (connection_backlog (connection) > CONTROL_OUTPUT_LIMIT)
    {
      g_message ("control socket: closing the connection of uid %u (pid %d): more than %d bytes of "
                 "output unread (is the client stuck?)", (guint) connection->peer.uid,
                 (int) connection->peer.pid, CONTROL_OUTPUT_LIMIT);
      connection_close (connection, "output limit exceeded");
      return;
    }
  if (!g_queue_is_empty (&connection->out_queue) && connection->out_source == NULL)
    connection->out_source = server_attach (connection->server,
                                            g_unix_fd_source_new (connection->fd, G_IO_OUT | G_IO_ERR),
                                            G_SOURCE_FUNC (on_writable), connection);
}

/* Sends object with "id" set to id (removed when NULL); object is not modified. */
static void
connection_send (ControlConnection *connection, JsonObject *object, JsonNode *id)
{
  g_autoptr(JsonObject) with_id = qmp_object_copy_with_id (object, id);
  g_autoptr(GBytes) line = NULL;
  gsize length = 0;
  char *text = qmp_object_serialize (with_id, &length);

  line = g_bytes_new_take (text, length);
  connection_queue (connection, line);
}

static JsonObject *
error_object_new (const char *error_class, const char *desc)
{
  JsonObject *body = json_object_new ();
  JsonObject *object = json_object_new ();

  json_object_set_string_member (body, "class", error_class);
  json_object_set_string_member (body, "desc", desc);
  json_object_set_object_member (object, "error", body);
  return object;
}

static void G_GNUC_PRINTF (4, 5)
connection_send_error (ControlConnection *connection, JsonNode *id, const char *error_class,
                       const char *format, ...)
{
  g_autoptr(JsonObject) object = NULL;
  g_autofree char *desc = NULL;
  va_list args;

  va_start (args, format);
  desc = g_strdup_vprintf (format, args);
  va_end (args);
  object = error_object_new (error_class, desc);
  connection_send (connection, object, id);
}

/* ---- requests ---- */

static ControlRequest *
request_new (ControlConnection *connection, const char *command, JsonNode *id)
{
  ControlRequest *request = g_new0 (ControlRequest, 1);

  request->connection = connection_ref (connection);
  request->command = g_strdup (command);
  request->id = id != NULL ? json_node_copy (id) : NULL;
  return request;
}

/* Sends answer (not modified) unless the client is gone, and frees the request. */
static void
request_finish (ControlRequest *request, JsonObject *answer)
{
  if (request->connection->server != NULL)
    connection_send (request->connection, answer, request->id);
  else
    g_debug ("dropping the answer to '%s': its client disconnected", request->command);
  connection_unref (request->connection);
  g_clear_pointer (&request->id, json_node_unref);
  g_free (request->command);
  g_free (request);
}

const ControlPeer *
control_request_get_peer (ControlRequest *request)
{
  g_return_val_if_fail (request != NULL, NULL);

  return &request->connection->peer;
}

const char *
control_request_get_command (ControlRequest *request)
{
  g_return_val_if_fail (request != NULL, NULL);

  return request->command;
}

gboolean
control_request_is_connected (ControlRequest *request)
{
  g_return_val_if_fail (request != NULL, FALSE);

  return request->connection->server != NULL;
}

void
control_request_return (ControlRequest *request, JsonNode *value)
{
  g_autoptr(JsonObject) answer = json_object_new ();

  g_return_if_fail (request != NULL);

  if (value == NULL)
    {
      g_autoptr(JsonObject) empty = json_object_new ();
      value = json_node_init_object (json_node_alloc (), empty);
    }
  json_object_set_member (answer, "return", value);
  request_finish (request, answer);
}

int
control_request_return_and_detach (ControlRequest *request, JsonNode *value)
{
  ControlConnection *connection = connection_ref (request->connection);
  int fd = -1, err = 0;

  control_request_return (request, value);
  /* The answer is small: wait for it to leave (bounded), then hand the socket over. */
  while (connection->server != NULL && connection->out_bytes > 0)
    {
      struct pollfd pfd = { connection->fd, POLLOUT, 0 };

      if (!connection_flush (connection, &err) || (connection->out_bytes > 0 && poll (&pfd, 1, 1000) <= 0))
        break;
    }
  if (connection->server != NULL && connection->out_bytes == 0
      && qmp_line_buffer_get_pending (connection->lines) == 0)
    {
      fd = connection->fd;
      connection->fd = -1;
      connection_close (connection, "detached for a raw stream");
    }
  else
    connection_close (connection, "could not detach (answer unsent, or more requests pipelined)");
  connection_unref (connection);
  return fd;
}

void
control_request_error (ControlRequest *request, const char *error_class, const char *format, ...)
{
  g_autoptr(JsonObject) answer = NULL;
  g_autofree char *desc = NULL;
  va_list args;

  g_return_if_fail (request != NULL && error_class != NULL && format != NULL);

  va_start (args, format);
  desc = g_strdup_vprintf (format, args);
  va_end (args);
  answer = error_object_new (error_class, desc);
  request_finish (request, answer);
}

void
control_request_subscribe_events (ControlRequest *request)
{
  g_return_if_fail (request != NULL);

  request->connection->subscribed = TRUE;
}

void
control_request_send_progress (ControlRequest *request, JsonObject *data)
{
  g_autoptr(JsonObject) line = json_object_new ();

  g_return_if_fail (request != NULL && data != NULL);

  json_object_set_object_member (line, "progress", json_object_ref (data));
  connection_send (request->connection, line, request->id);
}

/* ---- connections: input ---- */

static void
connection_refuse_command (ControlConnection *connection, JsonNode *id, const char *command)
{
  const char *const *allowed = (const char *const *) connection->server->read_only_commands;
  g_autofree char *list = g_strjoinv (", ", (char **) allowed);

  connection_send_error (connection, id, "PermissionDenied",
                         "'%s' needs root: uid %u is a member of group %s, which may only run %s", command,
                         (guint) connection->peer.uid, connection->server->group_name,
                         list[0] != '\0' ? list : "nothing");
}

static void
connection_handle_line (ControlConnection *connection, const char *line, gsize length)
{
  ControlServer *server = connection->server;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(JsonObject) arguments = NULL;
  JsonObject *given_arguments = NULL;
  const char *command = NULL;
  JsonNode *id;

  object = control_line_parse (line, length, &error);
  if (object == NULL)
    {
      connection_send_error (connection, NULL, "InvalidArgument", "bad request: %s", error->message);
      return;
    }
  id = json_object_get_member (object, "id");
  if (!control_request_check (object, &command, &given_arguments, &error))
    {
      connection_send_error (connection, id, "InvalidArgument", "bad request: %s", error->message);
      return;
    }
  if (!control_peer_may_run (&connection->peer, command, (const char *const *) server->read_only_commands))
    {
      connection_refuse_command (connection, id, command);
      return;
    }
  arguments = given_arguments != NULL ? json_object_ref (given_arguments) : json_object_new ();
  server->handler (request_new (connection, command, id), command, arguments, server->user_data);
}

/* Handles every complete line; skips overlong ones with an error reply. */
static void
connection_process_lines (ControlConnection *connection)
{
  while (connection->server != NULL)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *line = NULL;
      gsize length = 0;

      line = qmp_line_buffer_next (connection->lines, &length, &error);
      if (line != NULL)
        {
          connection_handle_line (connection, line, length);
          continue;
        }
      if (error == NULL)
        return;
      connection_send_error (connection, NULL, "InvalidArgument",
                             "bad request: longer than %d bytes, ignored", CONTROL_MAX_REQUEST_LENGTH);
      /* A complete overlong line was skipped by the buffer.  An unterminated one stays in
       * it: drop it and skip the rest of it as it arrives.  Lines are taken out after
       * every read, so only an unterminated line leaves more than the maximum behind. */
      if (qmp_line_buffer_get_pending (connection->lines) > CONTROL_MAX_REQUEST_LENGTH + 1)
        {
          qmp_line_buffer_free (connection->lines);
          connection->lines = qmp_line_buffer_new (CONTROL_MAX_REQUEST_LENGTH);
          connection->discarding = TRUE;
        }
    }
}

static void
connection_feed (ControlConnection *connection, const guint8 *data, gsize length)
{
  if (connection->discarding)
    {
      const guint8 *newline = memchr (data, '\n', length);

      if (newline == NULL)
        return;
      connection->discarding = FALSE;
      length -= (gsize) (newline + 1 - data);
      data = newline + 1;
    }
  qmp_line_buffer_feed (connection->lines, data, length);
}

static void
connection_read (ControlConnection *connection)
{
  for (guint i = 0; i < READS_PER_DISPATCH && connection->server != NULL; i++)
    {
      guint8 *buffer = connection->server->read_buffer;
      gssize received = recv (connection->fd, buffer, READ_CHUNK, MSG_DONTWAIT);
      int saved_errno = errno;

      if (received > 0)
        {
          connection_feed (connection, buffer, (gsize) received);
          connection_process_lines (connection);
          continue;
        }
      if (received == 0 || saved_errno == ECONNRESET)
        {
          connection_close (connection, "the client disconnected");
          return;
        }
      if (saved_errno == EINTR)
        continue;
      if (saved_errno != EAGAIN && saved_errno != EWOULDBLOCK)
        connection_close (connection, g_strerror (saved_errno));
      return;
    }
}

static gboolean
on_readable (int fd G_GNUC_UNUSED, GIOCondition condition G_GNUC_UNUSED, gpointer data)
{
  ControlConnection *connection = connection_ref (data);
  gboolean open;

  /* The handler may answer, close this connection or free the server. */
  connection_read (connection);
  open = connection->server != NULL;
  connection_unref (connection);
  return open ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* ---- accepting ---- */

/* Whether the peer (pid, uid, gid from SO_PEERCRED) belongs to the control group: its
 * primary group or one of the supplementary groups it had when it connected
 * (SO_PEERGROUPS, Linux >= 4.13), the same credentials the kernel checked against the
 * socket file's mode. */
static gboolean
peer_in_group (int fd, const struct ucred *cred, gid_t group)
{
  gid_t on_stack[PEER_GROUPS_ON_STACK];
  g_autofree gid_t *on_heap = NULL;
  gid_t *groups = on_stack;
  socklen_t length = sizeof on_stack;

  if (cred->gid == group)
    return TRUE;
  if (getsockopt (fd, SOL_SOCKET, SO_PEERGROUPS, groups, &length) < 0)
    {
      if (errno != ERANGE)
        {
          g_debug ("SO_PEERGROUPS failed: %s; checking the primary group only", g_strerror (errno));
          return FALSE;
        }
      groups = on_heap = g_malloc (length);
      if (getsockopt (fd, SOL_SOCKET, SO_PEERGROUPS, groups, &length) < 0)
        return FALSE;
    }
  for (gsize i = 0; i < length / sizeof (gid_t); i++)
    if (groups[i] == group)
      return TRUE;
  return FALSE;
}

/* Sends the one line a refused peer gets and closes.  A fresh socket's buffer takes one
 * short line, so a single non-blocking send is enough. */
static void
server_refuse_peer (ControlServer *server, int fd, const struct ucred *cred)
{
  g_autoptr(JsonObject) object = NULL;
  g_autofree char *desc = NULL;
  g_autofree char *text = NULL;
  gsize length = 0;

  if (server->group_name != NULL)
    desc = g_strdup_printf ("uid %u may not use vmherdd (root or members of group %s only)", (guint) cred->uid,
                            server->group_name);
  else
    desc = g_strdup_printf ("uid %u may not use vmherdd (root only)", (guint) cred->uid);
  object = error_object_new ("PermissionDenied", desc);
  text = qmp_object_serialize (object, &length);
  g_message ("control socket: refused uid %u (pid %d): not root and not in group %s", (guint) cred->uid,
             (int) cred->pid, server->group_name != NULL ? server->group_name : "(none)");
  if (send (fd, text, length, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
    g_debug ("cannot tell refused uid %u why: %s", (guint) cred->uid, g_strerror (errno));
}

/* Takes fd: identifies the peer, then refuses it or starts reading its requests. */
static void
server_admit (ControlServer *server, int fd)
{
  g_auto(AutoFd) owned_fd = fd;
  struct ucred cred = { 0 };
  socklen_t length = sizeof cred;
  ControlConnection *connection;
  gboolean may_write, may_read;

  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) < 0)
    {
      g_message ("control socket: cannot identify a client (SO_PEERCRED: %s), closing it", g_strerror (errno));
      return;
    }
  may_write = cred.uid == 0;
  may_read = may_write || (server->have_group && peer_in_group (fd, &cred, server->group_gid));
  if (!may_read)
    {
      server_refuse_peer (server, fd, &cred);
      return;
    }
  connection = g_new0 (ControlConnection, 1);
  connection->refcount = 1; /* the server's */
  connection->server = server;
  connection->fd = g_steal_fd (&owned_fd);
  connection->peer = (ControlPeer) { .pid = cred.pid, .uid = cred.uid, .gid = cred.gid, .may_write = may_write };
  connection->lines = qmp_line_buffer_new (CONTROL_MAX_REQUEST_LENGTH);
  g_queue_init (&connection->out_queue);
  g_queue_push_tail (&server->connections, connection);
  connection->link = server->connections.tail;
  connection->in_source = server_attach (server,
                                         g_unix_fd_source_new (connection->fd, G_IO_IN | G_IO_HUP | G_IO_ERR),
                                         G_SOURCE_FUNC (on_readable), connection);
  g_debug ("control connection from uid %u (pid %d), %s", (guint) cred.uid, (int) cred.pid,
           may_write ? "read-write" : "read-only");
}

static gboolean on_acceptable (int fd, GIOCondition condition, gpointer data);

static gboolean
on_accept_retry (gpointer data)
{
  ControlServer *server = data;

  g_clear_pointer (&server->accept_retry_source, source_drop);
  server->accept_source = server_attach (server, g_unix_fd_source_new (server->listen_fd, G_IO_IN),
                                         G_SOURCE_FUNC (on_acceptable), server);
  return G_SOURCE_REMOVE;
}

static gboolean
on_acceptable (int fd, GIOCondition condition G_GNUC_UNUSED, gpointer data)
{
  ControlServer *server = data;

  for (guint i = 0; i < ACCEPTS_PER_DISPATCH; i++)
    {
      int client_fd = accept4 (fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      int saved_errno = errno;

      if (client_fd >= 0)
        {
          server_admit (server, client_fd);
          continue;
        }
      if (saved_errno == EINTR || saved_errno == ECONNABORTED)
        continue;
      if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)
        break;
      /* Out of fds or memory: the listening socket stays readable, so polling it again at
       * once would spin.  Pause accepting instead. */
      g_message ("control socket %s: cannot accept a connection: %s; retrying in %d ms", server->path,
                 g_strerror (saved_errno), ACCEPT_RETRY_MS);
      g_clear_pointer (&server->accept_source, source_drop);
      server->accept_retry_source = server_attach (server, g_timeout_source_new (ACCEPT_RETRY_MS),
                                                   on_accept_retry, server);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* ---- binding ---- */

/* Handles EADDRINUSE: TRUE when path was a stale socket and is now removed; FALSE with
 * CONTROL_ERROR_IN_USE when a server answers, CONTROL_ERROR_IO otherwise. */
static gboolean
socket_remove_stale (const char *path, const struct sockaddr_un *addr, GError **error)
{
  g_auto(AutoFd) probe = -1;
  struct stat st;
  int saved_errno;

  if (lstat (path, &st) < 0)
    {
      saved_errno = errno;
      if (saved_errno == ENOENT)
        return TRUE; /* gone meanwhile: bind again */
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_IO, "cannot bind %s: %s (and cannot stat it: %s)", path,
                   g_strerror (EADDRINUSE), g_strerror (saved_errno));
      return FALSE;
    }
  if (!S_ISSOCK (st.st_mode))
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_IO,
                   "cannot bind %s: it exists and is not a socket (not removing it)", path);
      return FALSE;
    }
  probe = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe >= 0 && connect (probe, (const struct sockaddr *) addr, sizeof *addr) == 0)
    saved_errno = 0;
  else
    saved_errno = errno;
  /* EAGAIN: a listener whose backlog is full, alive but busy. */
  if (saved_errno == 0 || saved_errno == EAGAIN)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_IN_USE, "vmherdd already running at %s", path);
      return FALSE;
    }
  if (saved_errno != ECONNREFUSED)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_IO, "cannot bind %s: %s (and connecting to it fails: %s)",
                   path, g_strerror (EADDRINUSE), g_strerror (saved_errno));
      return FALSE;
    }
  g_info ("removing the stale control socket %s (nobody listens on it)", path);
  if (unlink (path) < 0 && errno != ENOENT)
    {
      saved_errno = errno;
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_IO, "cannot remove the stale socket %s: %s", path,
                   g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

/* Returns a listening socket bound to path, or -1 with an error. */
static int
socket_listen (const char *path, GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };

  if (strlen (path) >= sizeof addr.sun_path)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_IO, "cannot bind %s: path longer than %zu bytes", path,
                   sizeof addr.sun_path - 1);
      return -1;
    }
  strcpy (addr.sun_path, path);
  for (guint attempt = 0;; attempt++)
    {
      g_auto(AutoFd) fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      int saved_errno;

      if (fd >= 0 && bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0)
        {
          if (listen (fd, LISTEN_BACKLOG) == 0)
            return g_steal_fd (&fd);
          saved_errno = errno;
          unlink (path);
          g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_IO, "cannot listen on %s: %s", path,
                       g_strerror (saved_errno));
          return -1;
        }
      saved_errno = errno;
      if (saved_errno != EADDRINUSE || attempt > 0)
        {
          g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_IO, "cannot bind %s: %s", path,
                       g_strerror (saved_errno));
          return -1;
        }
      if (!socket_remove_stale (path, &addr, error))
        return -1;
    }
}

/* Mode 0660 and the control group (when it exists): the kernel then keeps everybody
 * else from even connecting; SO_PEERCRED is the second check. */
static gboolean
server_set_permissions (ControlServer *server, GError **error)
{
  struct group *group = server->group_name != NULL ? getgrnam (server->group_name) : NULL;
  struct stat st;

  if (group != NULL)
    {
      server->have_group = TRUE;
      server->group_gid = group->gr_gid;
      if (chown (server->path, (uid_t) -1, group->gr_gid) < 0)
        g_message ("control socket %s: cannot give it to group %s: %s; only root may use it, ignoring",
                   server->path, server->group_name, g_strerror (errno));
    }
  if (chmod (server->path, 0660) < 0 || stat (server->path, &st) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_IO, "cannot set the mode of %s: %s", server->path,
                   g_strerror (saved_errno));
      return FALSE;
    }
  server->socket_dev = st.st_dev;
  server->socket_ino = st.st_ino;
  return TRUE;
}

ControlServer *
control_server_new (const char *path, const char *control_group, ControlHandler handler, gpointer user_data,
                    GError **error)
{
  g_autoptr(ControlServer) server = NULL;

  g_return_val_if_fail (path != NULL && handler != NULL, NULL);

  server = g_new0 (ControlServer, 1);
  server->listen_fd = -1;
  server->path = g_strdup (path);
  server->group_name = g_strdup (control_group);
  server->read_only_commands = g_strdupv ((char **) default_read_only_commands);
  server->handler = handler;
  server->user_data = user_data;
  server->context = g_main_context_ref_thread_default ();
  server->read_buffer = g_malloc (READ_CHUNK);
  g_queue_init (&server->connections);
  server->listen_fd = socket_listen (path, error);
  if (server->listen_fd < 0)
    return NULL;
  if (!server_set_permissions (server, error))
    {
      unlink (path);
      return NULL;
    }
  server->accept_source = server_attach (server, g_unix_fd_source_new (server->listen_fd, G_IO_IN),
                                         G_SOURCE_FUNC (on_acceptable), server);
  return g_steal_pointer (&server);
}

void
control_server_free (ControlServer *server)
{
  ControlConnection *connection;
  struct stat st;

  if (server == NULL)
    return;
  while ((connection = g_queue_peek_head (&server->connections)) != NULL)
    connection_close (connection, "the server is shutting down");
  g_clear_pointer (&server->accept_source, source_drop);
  g_clear_pointer (&server->accept_retry_source, source_drop);
  if (server->listen_fd >= 0)
    {
      /* A newer server may have replaced a socket it took for stale: leave that one. */
      if (server->socket_ino != 0 && lstat (server->path, &st) == 0 && st.st_dev == server->socket_dev
          && st.st_ino == server->socket_ino)
        unlink (server->path);
      close (server->listen_fd);
    }
  g_strfreev (server->read_only_commands);
  g_free (server->group_name);
  g_free (server->path);
  g_free (server->read_buffer);
  g_main_context_unref (server->context);
  g_free (server);
}

void
control_server_set_read_only_commands (ControlServer *server, const char *const *commands)
{
  g_return_if_fail (server != NULL);

  g_strfreev (server->read_only_commands);
  server->read_only_commands = g_strdupv ((char **) (commands != NULL ? commands : default_read_only_commands));
}

void
control_server_broadcast_event (ControlServer *server, const char *event, JsonObject *data)
{
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(GBytes) line = NULL;
  gint64 now = g_get_real_time ();
  JsonObject *timestamp;
  gsize length = 0;
  char *text;
  GList *next;

  g_return_if_fail (server != NULL && event != NULL);

  object = json_object_new ();
  timestamp = json_object_new ();
  json_object_set_string_member (object, "event", event);
  json_object_set_object_member (object, "data", data != NULL ? json_object_ref (data) : json_object_new ());
  json_object_set_int_member (timestamp, "seconds", now / G_USEC_PER_SEC);
  json_object_set_int_member (timestamp, "microseconds", now % G_USEC_PER_SEC);
  json_object_set_object_member (object, "timestamp", timestamp);
  text = qmp_object_serialize (object, &length);
  line = g_bytes_new_take (text, length);
  /* Queueing may close a connection (it stopped reading): walk with the next link saved. */
  for (GList *l = server->connections.head; l != NULL; l = next)
    {
      ControlConnection *connection = l->data;

      next = l->next;
      if (connection->subscribed)
        connection_queue (connection, line);
    }
}
