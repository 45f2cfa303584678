/* test-qmp-client.c: QmpClient against a fake QMP peer in a thread (blocking I/O on the
 * other end of a socketpair), driven by a script in tests/data/qmp/<case>.qmp:
 *
 *   # comment            blank lines and comments are ignored
 *   <- TEXT              send TEXT + "\r\n", as QEMU does
 *   -> NAME              read the next command; its "execute" must be NAME
 *   -> {JSON}            read the next command; "execute"/"exec-oob" and "arguments" must
 *                        equal JSON's (the id is not compared)
 *   !raw TEXT            send TEXT as is after C unescaping (\r, \n, \377 octal)
 *   !repeat N TEXT       send TEXT + "\r\n" N times, $I replaced by 0 .. N-1
 *   !big N               send {"return": {"blob": "xx..."}, "id": $ID} with N x's
 *   !fd                  the last command carried one fd: the test's file (same st_dev/st_ino)
 *   !close               close the connection; the script ends
 *   !reset               wait for the next command's bytes, close without reading them (the
 *                        client sees ECONNRESET, as after QEMU's "quit"); the script ends
 *   !include FILE        the lines of another script in the same folder
 *
 * In TEXT, $ID is the id of the last command read (as JSON) and $PREV_ID the one before.
 * After the last line the peer keeps the connection open until the client closes it; a
 * further command, a mismatch or an fd the script did not expect is a failure
 * ("FILE:LINE: expected 'X', got 'Y'"), after which the peer closes the connection. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "qmp/qmp-client.h"
#include "tests/test-util.h"

#define WAIT_MS 5000

/* ---- the fake peer ---- */

typedef struct
{
  char *where; /* "file.qmp:LINE" */
  char *text;
} ScriptLine;

typedef struct
{
  char *execute;
  JsonObject *arguments; /* NULL when absent */
  char *id;              /* the id as JSON text, for $ID */
  GArray *fds;           /* int */
} PeerCommand;

typedef struct
{
  GPtrArray *script; /* ScriptLine */
  int fd;
  int listen_fd;     /* >= 0: accept() the client first */
  GThread *thread;
  QmpLineBuffer *lines;
  GQueue commands;   /* PeerCommand read but not yet expected */
  GArray *new_fds;   /* received, for the next command to complete */
  PeerCommand *last;
  PeerCommand *previous;
  gboolean last_fds_checked;
  struct stat expected_file;
  char *failure;     /* written by the thread, read after the join */
  gint finished;     /* atomic: every script line ran */
} FakePeer;

static void
peer_command_free (PeerCommand *command)
{
  if (command == NULL)
    return;
  for (guint i = 0; i < command->fds->len; i++)
    close (g_array_index (command->fds, int, i));
  g_array_unref (command->fds);
  g_free (command->execute);
  g_clear_pointer (&command->arguments, json_object_unref);
  g_free (command->id);
  g_free (command);
}

static void
script_line_free (ScriptLine *line)
{
  g_free (line->where);
  g_free (line->text);
  g_free (line);
}

static void
script_load (GPtrArray *script, const char *name)
{
  g_autofree char *relative = g_build_filename ("tests", "data", "qmp", name, NULL);
  g_autofree char *path = test_src_path (relative);
  g_autofree char *contents = test_read_file (path);
  g_auto(GStrv) lines = g_strsplit (contents, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    {
      ScriptLine *line;

      if (lines[i][0] == '\0' || lines[i][0] == '#')
        continue;
      if (g_str_has_prefix (lines[i], "!include "))
        {
          script_load (script, lines[i] + strlen ("!include "));
          continue;
        }
      line = g_new0 (ScriptLine, 1);
      line->where = g_strdup_printf ("%s:%u", name, i + 1);
      line->text = g_strdup (lines[i]);
      g_ptr_array_add (script, line);
    }
}

static void G_GNUC_PRINTF (2, 3)
peer_fail (FakePeer *peer, const char *format, ...)
{
  va_list args;

  if (peer->failure != NULL)
    return;
  va_start (args, format);
  peer->failure = g_strdup_vprintf (format, args);
  va_end (args);
}

static PeerCommand *
peer_parse_command (const char *line)
{
  g_autoptr(JsonNode) node = json_from_string (line, NULL);
  PeerCommand *command = g_new0 (PeerCommand, 1);
  JsonObject *object;

  command->fds = g_array_new (FALSE, FALSE, sizeof (int));
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    {
      command->execute = g_strdup_printf ("(not a JSON object: %s)", line);
      return command;
    }
  object = json_node_get_object (node);
  command->execute = g_strdup (json_object_get_string_member_with_default (
    object, "execute", json_object_get_string_member_with_default (object, "exec-oob", "(none)")));
  if (json_object_has_member (object, "arguments"))
    command->arguments = json_object_ref (json_object_get_object_member (object, "arguments"));
  if (json_object_has_member (object, "id"))
    command->id = json_to_string (json_object_get_member (object, "id"), FALSE);
  return command;
}

/* Reads with recvmsg() so SCM_RIGHTS fds are seen; FALSE at EOF. */
static gboolean
peer_receive (FakePeer *peer)
{
  char data[65536];
  union
  {
    struct cmsghdr align;
    char buffer[CMSG_SPACE (sizeof (int) * QMP_CLIENT_MAX_FDS)];
  } control;
  struct iovec iov = { .iov_base = data, .iov_len = sizeof data };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                        .msg_controllen = sizeof control.buffer };
  ssize_t received;

  do
    received = recvmsg (peer->fd, &msg, MSG_CMSG_CLOEXEC);
  while (received < 0 && errno == EINTR);
  if (received <= 0)
    return FALSE;
  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg); cmsg != NULL; cmsg = CMSG_NXTHDR (&msg, cmsg))
    if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS)
      g_array_append_vals (peer->new_fds, CMSG_DATA (cmsg), (cmsg->cmsg_len - CMSG_LEN (0)) / sizeof (int));
  qmp_line_buffer_feed (peer->lines, data, (gsize) received);
  return TRUE;
}

/* The next command, or NULL at EOF.  fds ride on a command's first byte, and the kernel
 * never merges them into a read that already holds earlier bytes. */
static PeerCommand *
peer_next_command (FakePeer *peer)
{
  while (g_queue_is_empty (&peer->commands))
    {
      g_autofree char *line = NULL;
      gsize length = 0;

      line = qmp_line_buffer_next (peer->lines, &length, NULL);
      if (line == NULL)
        {
          if (!peer_receive (peer))
            return NULL;
          continue;
        }
      g_queue_push_tail (&peer->commands, peer_parse_command (line));
      g_array_append_vals (((PeerCommand *) peer->commands.tail->data)->fds, peer->new_fds->data,
                           peer->new_fds->len);
      g_array_set_size (peer->new_fds, 0);
    }
  return g_queue_pop_head (&peer->commands);
}

static void
peer_send (FakePeer *peer, const ScriptLine *line, const char *data, gsize length)
{
  while (length > 0)
    {
      ssize_t sent = send (peer->fd, data, length, MSG_NOSIGNAL);

      if (sent < 0 && errno == EINTR)
        continue;
      if (sent < 0)
        {
          peer_fail (peer, "%s: cannot send: %s", line->where, g_strerror (errno));
          return;
        }
      data += sent;
      length -= (gsize) sent;
    }
}

static char *
peer_substitute (FakePeer *peer, const char *text)
{
  GString *result = g_string_new (text);

  g_string_replace (result, "$PREV_ID", peer->previous != NULL ? peer->previous->id : "null", 0);
  g_string_replace (result, "$ID", peer->last != NULL ? peer->last->id : "null", 0);
  return g_string_free (result, FALSE);
}

static void
peer_check_fds (FakePeer *peer, const ScriptLine *line)
{
  if (peer->last != NULL && !peer->last_fds_checked && peer->last->fds->len > 0)
    peer_fail (peer, "%s: '%s' carried %u fds the script did not expect", line->where, peer->last->execute,
               peer->last->fds->len);
}

static void
peer_expect (FakePeer *peer, const ScriptLine *line, const char *expected)
{
  g_autoptr(JsonNode) want = expected[0] == '{' ? json_from_string (expected, NULL) : NULL;
  const char *want_execute = expected;
  JsonObject *want_args = NULL;
  PeerCommand *command;

  peer_check_fds (peer, line);
  if (want != NULL)
    {
      JsonObject *object = json_node_get_object (want);

      want_execute = json_object_get_string_member_with_default (
        object, "execute", json_object_get_string_member_with_default (object, "exec-oob", ""));
      if (json_object_has_member (object, "arguments"))
        want_args = json_object_get_object_member (object, "arguments");
    }
  command = peer_next_command (peer);
  if (command == NULL)
    {
      peer_fail (peer, "%s: expected '%s', got EOF", line->where, want_execute);
      return;
    }
  peer_command_free (peer->previous);
  peer->previous = g_steal_pointer (&peer->last);
  peer->last = command;
  peer->last_fds_checked = FALSE;
  if (!g_str_equal (command->execute, want_execute))
    peer_fail (peer, "%s: expected '%s', got '%s'", line->where, want_execute, command->execute);
  else if (want != NULL && (want_args == NULL) != (command->arguments == NULL))
    peer_fail (peer, "%s: '%s' arguments present/absent unlike the script", line->where, want_execute);
  else if (want_args != NULL && !json_object_equal (want_args, command->arguments))
    peer_fail (peer, "%s: '%s' has other arguments than the script", line->where, want_execute);
}

static void
peer_check_fd (FakePeer *peer, const ScriptLine *line)
{
  struct stat got;

  peer->last_fds_checked = TRUE;
  if (peer->last == NULL || peer->last->fds->len != 1)
    peer_fail (peer, "%s: expected 1 fd, got %u", line->where, peer->last != NULL ? peer->last->fds->len : 0);
  else if (fstat (g_array_index (peer->last->fds, int, 0), &got) < 0)
    peer_fail (peer, "%s: fstat on the received fd: %s", line->where, g_strerror (errno));
  else if (got.st_dev != peer->expected_file.st_dev || got.st_ino != peer->expected_file.st_ino)
    peer_fail (peer, "%s: the received fd is not the test's file", line->where);
}

static void
peer_send_line (FakePeer *peer, const ScriptLine *line, const char *text)
{
  g_autofree char *substituted = peer_substitute (peer, text);
  g_autofree char *with_end = g_strconcat (substituted, "\r\n", NULL);

  peer_send (peer, line, with_end, strlen (with_end));
}

/* Runs one script line; FALSE when the script ends here (!close). */
static gboolean
peer_step (FakePeer *peer, const ScriptLine *line)
{
  const char *text = line->text;

  if (g_str_has_prefix (text, "<- "))
    peer_send_line (peer, line, text + 3);
  else if (g_str_has_prefix (text, "-> "))
    peer_expect (peer, line, text + 3);
  else if (g_str_has_prefix (text, "!raw "))
    {
      g_autofree char *substituted = peer_substitute (peer, text + 5);
      g_autofree char *raw = g_strcompress (substituted);

      peer_send (peer, line, raw, strlen (raw));
    }
  else if (g_str_has_prefix (text, "!repeat "))
    {
      char *rest = NULL;
      guint64 count = g_ascii_strtoull (text + 8, &rest, 10);

      for (guint64 i = 0; i < count && peer->failure == NULL; i++)
        {
          g_autofree char *index = g_strdup_printf ("%" G_GUINT64_FORMAT, i);
          GString *one = g_string_new (rest + 1);

          g_string_replace (one, "$I", index, 0);
          peer_send_line (peer, line, one->str);
          g_string_free (one, TRUE);
        }
    }
  else if (g_str_has_prefix (text, "!big "))
    {
      g_autofree char *blob = g_strnfill (g_ascii_strtoull (text + 5, NULL, 10), 'x');
      g_autofree char *reply = g_strdup_printf ("{\"return\": {\"blob\": \"%s\"}, \"id\": $ID}", blob);

      peer_send_line (peer, line, reply);
    }
  else if (g_str_equal (text, "!fd"))
    peer_check_fd (peer, line);
  else if (g_str_equal (text, "!close"))
    return FALSE;
  else if (g_str_equal (text, "!reset"))
    {
      char byte;

      if (recv (peer->fd, &byte, 1, MSG_PEEK) != 1)
        peer_fail (peer, "%s: no command came to leave unread", line->where);
      return FALSE;
    }
  else
    peer_fail (peer, "%s: unknown script line '%s'", line->where, text);
  return TRUE;
}

static gpointer
peer_run (gpointer data)
{
  FakePeer *peer = data;
  PeerCommand *extra;
  guint i;

  if (peer->listen_fd >= 0)
    peer->fd = accept (peer->listen_fd, NULL, NULL);
  for (i = 0; i < peer->script->len && peer->failure == NULL; i++)
    if (!peer_step (peer, g_ptr_array_index (peer->script, i)))
      break;
  if (peer->failure == NULL)
    g_atomic_int_set (&peer->finished, 1);
  if (peer->failure == NULL && i == peer->script->len)
    {
      ScriptLine end = { .where = (char *) "end of script" };

      peer_check_fds (peer, &end);
      while (peer->failure == NULL && (extra = peer_next_command (peer)) != NULL)
        {
          peer_fail (peer, "unexpected command '%s' after the end of the script", extra->execute);
          peer_command_free (extra);
        }
    }
  close (peer->fd); /* on a failure too, so the client sees EOF instead of waiting */
  return NULL;
}

/* Starts a peer on fd (or on the first connection to listen_fd: pass fd = -1).
 * expected_fd (or -1): the file that "!fd" lines compare received fds with. */
static FakePeer *
fake_peer_start (const char *case_name, int fd, int listen_fd, int expected_fd)
{
  FakePeer *peer = g_new0 (FakePeer, 1);
  g_autofree char *file = g_strconcat (case_name, ".qmp", NULL);

  if (expected_fd >= 0)
    g_assert_no_errno (fstat (expected_fd, &peer->expected_file));
  peer->script = g_ptr_array_new_with_free_func ((GDestroyNotify) script_line_free);
  script_load (peer->script, file);
  peer->fd = fd;
  peer->listen_fd = listen_fd;
  peer->lines = qmp_line_buffer_new (QMP_MAX_LINE_LENGTH);
  peer->new_fds = g_array_new (FALSE, FALSE, sizeof (int));
  g_queue_init (&peer->commands);
  peer->thread = g_thread_new ("fake-qmp-peer", peer_run, peer);
  return peer;
}

/* Joins the peer (the client must have closed or been freed) and returns its failure. */
static char *
fake_peer_finish (FakePeer *peer, gboolean *out_finished)
{
  char *failure;

  g_thread_join (peer->thread);
  failure = g_steal_pointer (&peer->failure);
  *out_finished = g_atomic_int_get (&peer->finished);
  g_queue_clear_full (&peer->commands, (GDestroyNotify) peer_command_free);
  peer_command_free (peer->last);
  peer_command_free (peer->previous);
  g_array_unref (peer->new_fds);
  qmp_line_buffer_free (peer->lines);
  g_ptr_array_unref (peer->script);
  g_free (peer);
  return failure;
}

static void
fake_peer_assert_done (FakePeer *peer)
{
  gboolean finished = FALSE;
  g_autofree char *failure = fake_peer_finish (peer, &finished);

  g_assert_cmpstr (failure, ==, NULL);
  g_assert_true (finished);
}

/* ---- calls ---- */

typedef struct
{
  QmpClient *client;
  gboolean done;
  GError *error;
  JsonNode *result;
  QmpMessage *reply;
  JsonObject *raw;
} Call;

static void
call_clear (Call *call)
{
  g_clear_error (&call->error);
  g_clear_pointer (&call->result, json_node_unref);
  g_clear_pointer (&call->reply, qmp_message_free);
  g_clear_pointer (&call->raw, json_object_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Call, call_clear)

static void
on_connected (GObject *source, GAsyncResult *result, gpointer data)
{
  Call *call = data;

  g_assert_null (source);
  g_assert_false (call->done);
  qmp_client_connect_finish (call->client, result, &call->error);
  call->done = TRUE;
}

static void
on_executed (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  Call *call = data;

  g_assert_false (call->done);
  call->result = qmp_client_execute_finish (call->client, result, &call->error);
  call->done = TRUE;
}

static void
on_executed_full (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  Call *call = data;

  call->reply = qmp_client_execute_finish_full (call->client, result, &call->error);
  call->done = TRUE;
}

static void
on_raw (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  Call *call = data;

  call->raw = qmp_client_execute_raw_finish (call->client, result, &call->error);
  call->done = TRUE;
}

static void
execute (QmpClient *client, const char *command, JsonObject *arguments, guint timeout_ms, Call *call)
{
  call->client = client;
  qmp_client_execute_async (client, command, arguments, NULL, 0, timeout_ms, NULL, on_executed, call);
  g_assert_false (call->done); /* never from inside the call */
}

static void
call_wait (Call *call, const char *what)
{
  test_wait_until (call->done, WAIT_MS, what);
}

static void
assert_json (JsonNode *node, const char *expected)
{
  g_autoptr(JsonNode) want = json_from_string (expected, NULL);
  g_autofree char *got = node != NULL ? json_to_string (node, FALSE) : g_strdup ("(null)");

  g_assert_nonnull (want);
  if (node == NULL || !json_node_equal (node, want))
    g_error ("JSON differs: got %s, expected %s", got, expected);
}

static void
assert_json_object (JsonObject *object, const char *expected)
{
  g_autoptr(JsonNode) node = json_node_init_object (json_node_alloc (), object);

  assert_json (node, expected);
}

/* A client READY on a socketpair whose other end runs case_name. */
static QmpClient *
connect_peer_full (const char *case_name, int expected_fd, FakePeer **out_peer)
{
  int sv[2];
  g_auto(Call) call = { 0 };
  QmpClient *client = qmp_client_new ();

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  *out_peer = fake_peer_start (case_name, sv[1], -1, expected_fd);
  call.client = client;
  qmp_client_open_fd_async (client, sv[0], WAIT_MS, NULL, on_connected, &call);
  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_CONNECTING);
  call_wait (&call, "negotiation");
  g_assert_no_error (call.error);
  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_READY);
  return client;
}

static QmpClient *
connect_peer (const char *case_name, FakePeer **out_peer)
{
  return connect_peer_full (case_name, -1, out_peer);
}

/* Connects to case_name and returns the connect error (the peer is joined). */
static GError *
connect_peer_fail (const char *case_name, guint timeout_ms, const char *const *capabilities)
{
  int sv[2];
  g_auto(Call) call = { 0 };
  g_autoptr(QmpClient) client = qmp_client_new ();
  FakePeer *peer;

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  peer = fake_peer_start (case_name, sv[1], -1, -1);
  call.client = client;
  qmp_client_set_capabilities (client, capabilities);
  qmp_client_open_fd_async (client, sv[0], timeout_ms, NULL, on_connected, &call);
  call_wait (&call, "negotiation");
  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_CLOSED);
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
  return g_steal_pointer (&call.error);
}

typedef struct
{
  guint count;
  GError *reason;
} Closed;

static void
on_closed (QmpClient *client G_GNUC_UNUSED, const GError *reason, gpointer data)
{
  Closed *closed = data;

  closed->count++;
  g_clear_error (&closed->reason);
  closed->reason = g_error_copy (reason);
}

/* ---- tests ---- */

static void
test_negotiate (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("query-status", &peer);
  const QmpMessage *greeting = qmp_client_get_greeting (client);
  g_auto(Call) status = { 0 };

  g_assert_cmpuint (greeting->version_major, ==, 7);
  g_assert_cmpuint (greeting->version_minor, ==, 2);
  g_assert_cmpuint (greeting->version_micro, ==, 22);
  g_assert_cmpstr (greeting->capabilities[0], ==, "oob");
  execute (client, "query-status", NULL, 1000, &status);
  call_wait (&status, "query-status");
  g_assert_no_error (status.error);
  assert_json (status.result, "{\"status\": \"prelaunch\", \"singlestep\": false, \"running\": false}");
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_negotiate_oob (void)
{
  const char *const wanted[] = { "oob", "x-not-offered", NULL };
  int sv[2];
  g_auto(Call) call = { 0 };
  g_autoptr(QmpClient) client = qmp_client_new ();
  FakePeer *peer;

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  peer = fake_peer_start ("negotiate-oob", sv[1], -1, -1);
  qmp_client_set_capabilities (client, wanted);
  call.client = client;
  qmp_client_open_fd_async (client, sv[0], WAIT_MS, NULL, on_connected, &call);
  call_wait (&call, "negotiation");
  g_assert_no_error (call.error);
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_negotiate_refused (void)
{
  g_autoptr(GError) error = connect_peer_fail ("negotiate-refused", WAIT_MS, NULL);

  g_assert_error (error, QMP_ERROR, QMP_ERROR_COMMAND);
  g_assert_cmpstr (error->message, ==, "qmp_capabilities refused: CommandNotFound: "
                                       "Capabilities negotiation is already complete, command ignored");
}

static void
test_greeting_timeout (void)
{
  g_autoptr(GError) error = connect_peer_fail ("silent", 100, NULL);

  g_assert_error (error, QMP_ERROR, QMP_ERROR_TIMEOUT);
  g_assert_cmpstr (error->message, ==,
                   "no QMP greeting within 100 ms (is QEMU stopped, or is another client connected?)");
}

static void
test_not_greeting_first (void)
{
  g_autoptr(GError) error = connect_peer_fail ("not-greeting-first", WAIT_MS, NULL);

  g_assert_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL);
  g_assert_cmpstr (error->message, ==, "expected the QMP greeting, got a 'return' message");
}

static void
test_connect_path (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "qmp.sock", NULL);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_auto(AutoFd) listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_autoptr(QmpClient) client = qmp_client_new ();
  g_auto(Call) call = { .client = client };
  FakePeer *peer;

  g_strlcpy (addr.sun_path, path, sizeof addr.sun_path);
  g_assert_no_errno (bind (listen_fd, (struct sockaddr *) &addr, sizeof addr));
  g_assert_no_errno (listen (listen_fd, 1));
  peer = fake_peer_start ("negotiate", -1, listen_fd, -1);
  qmp_client_connect_async (client, path, WAIT_MS, NULL, on_connected, &call);
  call_wait (&call, "connect + negotiation");
  g_assert_no_error (call.error);
  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_READY);
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_connect_missing (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "absent.sock", NULL);
  g_autofree char *expected = g_strdup_printf ("cannot connect to %s: No such file or directory", path);
  g_autoptr(QmpClient) client = qmp_client_new ();
  g_auto(Call) call = { .client = client };

  qmp_client_connect_async (client, path, WAIT_MS, NULL, on_connected, &call);
  g_assert_false (call.done);
  call_wait (&call, "connect failure");
  g_assert_error (call.error, QMP_ERROR, QMP_ERROR_IO);
  g_assert_cmpstr (call.error->message, ==, expected);
  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_CLOSED);
}

static void
test_connect_cancelled (void)
{
  int sv[2];
  g_autoptr(QmpClient) client = qmp_client_new ();
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_auto(Call) call = { .client = client };
  FakePeer *peer;

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  peer = fake_peer_start ("silent", sv[1], -1, -1);
  qmp_client_open_fd_async (client, sv[0], 0, cancellable, on_connected, &call);
  g_cancellable_cancel (cancellable);
  call_wait (&call, "cancelled connect");
  g_assert_error (call.error, QMP_ERROR, QMP_ERROR_CANCELLED);
  g_assert_cmpstr (call.error->message, ==, "connecting to QEMU cancelled");
  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_CLOSED);
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_open_fd_not_socket (void)
{
  int pipe_fds[2];
  g_autoptr(QmpClient) client = qmp_client_new ();
  g_auto(Call) call = { .client = client };
  g_autofree char *expected = NULL;

  g_assert_no_errno (pipe (pipe_fds));
  close (pipe_fds[1]);
  expected = g_strdup_printf ("fd %d is not a stream socket", pipe_fds[0]);
  qmp_client_open_fd_async (client, pipe_fds[0], WAIT_MS, NULL, on_connected, &call); /* takes the fd */
  call_wait (&call, "refusal");
  g_assert_error (call.error, QMP_ERROR, QMP_ERROR_IO);
  g_assert_cmpstr (call.error->message, ==, expected);
  g_assert_cmpint (fcntl (pipe_fds[0], F_GETFD), ==, -1); /* closed by the client */
}

static void
test_not_ready (void)
{
  g_autoptr(QmpClient) client = qmp_client_new ();
  g_auto(Call) call = { 0 };

  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_DISCONNECTED);
  g_assert_null (qmp_client_get_greeting (client));
  execute (client, "query-status", NULL, 0, &call);
  call_wait (&call, "refusal");
  g_assert_error (call.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_cmpstr (call.error->message, ==, "cannot send 'query-status': QMP client is disconnected");
}

static void
test_command_error (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("command-error", &peer);
  g_autoptr(JsonObject) args = json_object_new ();
  g_auto(Call) plain = { 0 };
  g_auto(Call) full = { .client = client };

  json_object_set_string_member (args, "id", "nope");
  execute (client, "device_del", args, 1000, &plain);
  call_wait (&plain, "device_del");
  g_assert_error (plain.error, QMP_ERROR, QMP_ERROR_COMMAND);
  g_assert_cmpstr (plain.error->message, ==, "DeviceNotFound: Device 'nope' not found");
  g_assert_null (plain.result);

  qmp_client_execute_async (client, "device_del", args, NULL, 0, 1000, NULL, on_executed_full, &full);
  call_wait (&full, "device_del (full)");
  g_assert_no_error (full.error);
  g_assert_cmpint (full.reply->kind, ==, QMP_MESSAGE_ERROR);
  g_assert_cmpstr (full.reply->error_class, ==, "DeviceNotFound");
  g_assert_cmpint (json_node_get_int (full.reply->id), ==, 3);
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_timeout_late_reply (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("timeout-late-reply", &peer);
  g_auto(Call) status = { 0 };
  g_auto(Call) name = { 0 };

  execute (client, "query-status", NULL, 50, &status);
  call_wait (&status, "query-status timeout");
  g_assert_error (status.error, QMP_ERROR, QMP_ERROR_TIMEOUT);
  g_assert_cmpstr (status.error->message, ==, "no reply to 'query-status' within 50 ms");
  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_READY);

  g_test_expect_message ("vmherd-qmp", G_LOG_LEVEL_DEBUG, "return reply with unknown id 2 *dropping");
  g_test_expect_message ("vmherd-qmp", G_LOG_LEVEL_DEBUG, "return reply with unknown id 999 *dropping");
  execute (client, "query-name", NULL, 1000, &name);
  call_wait (&name, "query-name");
  g_assert_no_error (name.error);
  assert_json (name.result, "{\"name\": \"web\"}");
  g_test_assert_expected_messages ();
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_idless_error (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("idless-error", &peer);
  g_auto(Call) status = { 0 };
  g_auto(Call) name = { 0 };

  execute (client, "query-status", NULL, 1000, &status);
  execute (client, "query-name", NULL, 1000, &name);
  call_wait (&name, "query-name");
  g_assert_true (status.done);
  g_assert_error (status.error, QMP_ERROR, QMP_ERROR_COMMAND);
  g_assert_cmpstr (status.error->message, ==, "GenericError: JSON parse error, invalid keyword 'bogus'");
  g_assert_no_error (name.error);
  assert_json (name.result, "{\"name\": \"web\"}");
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

typedef struct
{
  GPtrArray *seen; /* "NAME seconds.micro data" */
  guint destroyed;
  guint unsubscribe_id; /* unsubscribe from the callback at the second event */
  QmpClient *client;
} Events;

static void
on_event (QmpClient *client, const QmpMessage *event, gpointer data)
{
  Events *events = data;
  g_autoptr(JsonNode) node = event->data != NULL ? json_node_init_object (json_node_alloc (), event->data) : NULL;
  g_autofree char *json = node != NULL ? json_to_string (node, FALSE) : g_strdup ("-");

  g_assert_true (client == events->client);
  g_assert_cmpint (event->kind, ==, QMP_MESSAGE_EVENT);
  g_ptr_array_add (events->seen, g_strdup_printf ("%s %" G_GINT64_FORMAT ".%06" G_GINT64_FORMAT " %s", event->event,
                                                  event->timestamp_seconds, event->timestamp_microseconds, json));
  if (events->unsubscribe_id != 0 && events->seen->len == 2)
    qmp_client_unsubscribe (client, events->unsubscribe_id);
}

static void
on_events_destroyed (gpointer data)
{
  ((Events *) data)->destroyed++;
}

static void
events_clear (Events *events)
{
  g_clear_pointer (&events->seen, g_ptr_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Events, events_clear)

static void
test_events_queued (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("events-queued", &peer);
  g_auto(Events) events = { .seen = g_ptr_array_new_with_free_func (g_free), .client = client };
  g_auto(Call) first = { 0 };
  g_auto(Call) second = { 0 };

  /* The reply comes after the events, so they are queued by now. */
  execute (client, "query-status", NULL, 1000, &first);
  call_wait (&first, "query-status");
  qmp_client_subscribe (client, on_event, &events, on_events_destroyed);
  g_assert_cmpuint (events.seen->len, ==, 0); /* delivered from the main loop, not from subscribe */
  test_wait_until (events.seen->len == 3, WAIT_MS, "3 queued events");
  g_assert_cmpstr (events.seen->pdata[0], ==, "MIGRATION 1795672669.252767 {\"status\":\"setup\"}");
  g_assert_cmpstr (events.seen->pdata[1], ==, "STOP 1795672671.254282 -");
  g_assert_cmpstr (events.seen->pdata[2], ==, "RESUME 1795672671.291108 -");

  execute (client, "query-status", NULL, 1000, &second);
  call_wait (&second, "query-status");
  g_assert_cmpuint (events.seen->len, ==, 4); /* the event came before the reply */
  g_assert_cmpstr (events.seen->pdata[3], ==,
                   "SHUTDOWN 1795672672.000001 {\"guest\":false,\"reason\":\"host-qmp-quit\"}");
  g_clear_pointer (&client, qmp_client_free);
  g_assert_cmpuint (events.destroyed, ==, 1);
  fake_peer_assert_done (peer);
}

static void
test_events_overflow (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("events-overflow", &peer);
  g_auto(Events) events = { .seen = g_ptr_array_new_with_free_func (g_free), .client = client };
  g_auto(Call) status = { 0 };

  execute (client, "query-status", NULL, WAIT_MS, &status);
  call_wait (&status, "query-status after 1030 events");
  qmp_client_subscribe (client, on_event, &events, NULL);
  test_wait_until (events.seen->len == QMP_CLIENT_MAX_QUEUED_EVENTS, WAIT_MS, "1024 queued events");
  g_assert_cmpstr (events.seen->pdata[0], ==, "RTC_CHANGE 1795672669.000006 {\"offset\":6}");
  g_assert_cmpstr (events.seen->pdata[1023], ==, "RTC_CHANGE 1795672669.001029 {\"offset\":1029}");
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_unsubscribe_in_callback (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("events-unsubscribe", &peer);
  g_auto(Events) first = { .seen = g_ptr_array_new_with_free_func (g_free), .client = client };
  g_auto(Events) second = { .seen = g_ptr_array_new_with_free_func (g_free), .client = client };
  g_auto(Call) status = { 0 };

  first.unsubscribe_id = qmp_client_subscribe (client, on_event, &first, on_events_destroyed);
  qmp_client_subscribe (client, on_event, &second, on_events_destroyed);
  execute (client, "query-status", NULL, 1000, &status);
  call_wait (&status, "query-status");
  g_assert_cmpuint (first.seen->len, ==, 2);
  g_assert_cmpuint (first.destroyed, ==, 1);
  g_assert_cmpuint (second.seen->len, ==, 3);
  g_assert_cmpstr (second.seen->pdata[2], ==, "STOP 3.000003 -");
  g_clear_pointer (&client, qmp_client_free);
  g_assert_cmpuint (first.destroyed, ==, 1);
  g_assert_cmpuint (second.destroyed, ==, 1);
  fake_peer_assert_done (peer);
}

/* Sends query-status into case_name, which breaks the connection; checks both reports. */
static void
assert_closes (const char *case_name, gint code, const char *reason)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer (case_name, &peer);
  g_autofree char *pending_message = g_strconcat ("no reply to 'query-status': ", reason, NULL);
  Closed closed = { 0 };
  g_auto(Call) status = { 0 };
  g_auto(Call) after = { 0 };

  qmp_client_set_closed_func (client, on_closed, &closed, NULL);
  execute (client, "query-status", NULL, WAIT_MS, &status);
  call_wait (&status, "query-status");
  g_assert_error (status.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_cmpstr (status.error->message, ==, pending_message);
  g_assert_cmpuint (closed.count, ==, 1);
  g_assert_error (closed.reason, QMP_ERROR, code);
  g_assert_cmpstr (closed.reason->message, ==, reason);
  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_CLOSED);
  execute (client, "query-status", NULL, 0, &after);
  call_wait (&after, "query-status after close");
  g_assert_error (after.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_cmpstr (after.error->message, ==, "cannot send 'query-status': QMP client is closed");
  g_clear_pointer (&client, qmp_client_free);
  g_assert_cmpuint (closed.count, ==, 1);
  g_clear_error (&closed.reason);
  fake_peer_assert_done (peer);
}

static void
test_garbage_utf8 (void)
{
  assert_closes ("garbage-utf8", QMP_ERROR_PROTOCOL, "invalid message from QEMU: invalid UTF-8 at byte 0");
}

static void
test_garbage_json (void)
{
  assert_closes ("garbage-json", QMP_ERROR_PROTOCOL,
                 "invalid message from QEMU: invalid JSON at 1:26: Parse error: unexpected identifier `oops', "
                 "expected value");
}

static void
test_mid_message_close (void)
{
  assert_closes ("mid-message-close", QMP_ERROR_DISCONNECTED,
                 "QEMU closed the QMP connection in the middle of a message (16 bytes unterminated)");
}

static void
test_big_reply (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("big-reply", &peer);
  g_auto(Call) big = { 0 };
  g_auto(Call) status = { 0 };
  const char *blob;

  execute (client, "query-big", NULL, WAIT_MS, &big);
  call_wait (&big, "1 MiB reply");
  g_assert_no_error (big.error);
  blob = json_object_get_string_member (json_node_get_object (big.result), "blob");
  g_assert_cmpuint (strlen (blob), ==, 1048576);
  execute (client, "query-status", NULL, 1000, &status);
  call_wait (&status, "query-status after the big reply");
  g_assert_no_error (status.error);
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_disconnect_fails_pending (void)
{
  static const char *const commands[] = { "query-status", "query-name", "query-version" };
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("disconnect-pending", &peer);
  Closed closed = { 0 };
  Call calls[G_N_ELEMENTS (commands)] = { { 0 } };

  qmp_client_set_closed_func (client, on_closed, &closed, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    execute (client, commands[i], NULL, 0, &calls[i]);
  test_wait_until (closed.count == 1, WAIT_MS, "the connection to close");
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_autofree char *expected = g_strdup_printf ("no reply to '%s': QEMU closed the QMP connection", commands[i]);

      g_assert_true (calls[i].done);
      g_assert_error (calls[i].error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
      g_assert_cmpstr (calls[i].error->message, ==, expected);
      call_clear (&calls[i]);
    }
  g_assert_error (closed.reason, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_clear_error (&closed.reason);
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

/* ECONNRESET after everything was read is an orderly close (QEMU after "quit"). */
static void
test_reset_by_peer (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("reset-by-peer", &peer);
  Closed closed = { 0 };
  g_auto(Call) status = { 0 };
  g_auto(Call) name = { 0 };

  qmp_client_set_closed_func (client, on_closed, &closed, NULL);
  execute (client, "query-status", NULL, 1000, &status);
  call_wait (&status, "query-status");
  g_assert_no_error (status.error);
  execute (client, "query-name", NULL, 0, &name);
  call_wait (&name, "query-name to fail");
  g_assert_error (name.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_cmpstr (name.error->message, ==, "no reply to 'query-name': QEMU closed the QMP connection");
  g_assert_cmpuint (closed.count, ==, 1);
  g_assert_cmpstr (closed.reason->message, ==, "QEMU closed the QMP connection");
  g_clear_error (&closed.reason);
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_fd_passing (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "migration-fd", NULL);
  FakePeer *peer;
  g_autoptr(QmpClient) client = NULL;
  g_autoptr(JsonObject) getfd = json_object_new ();
  g_autoptr(JsonObject) closefd = json_object_new ();
  g_auto(Call) get = { 0 };
  g_auto(Call) close_call = { 0 };
  int fd;

  test_write_file (path, "payload");
  fd = open (path, O_RDONLY | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  client = connect_peer_full ("fd-passing", fd, &peer);
  json_object_set_string_member (getfd, "fdname", "mig0");
  json_object_set_string_member (closefd, "fdname", "mig0");
  get.client = client;
  qmp_client_execute_async (client, "getfd", getfd, &fd, 1, 1000, NULL, on_executed, &get);
  close (fd); /* the client sends its own duplicate */
  call_wait (&get, "getfd");
  g_assert_no_error (get.error);
  assert_json (get.result, "{}");
  execute (client, "closefd", closefd, 1000, &close_call);
  call_wait (&close_call, "closefd");
  g_assert_no_error (close_call.error);
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_raw_passthrough (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("raw-passthrough", &peer);
  g_autoptr(JsonNode) with_id = json_from_string ("{\"execute\": \"query-status\", \"id\": \"console-7\"}", NULL);
  g_autoptr(JsonNode) without_id = json_from_string ("{\"execute\": \"no-such-cmd\"}", NULL);
  g_auto(Call) first = { .client = client };
  g_auto(Call) second = { .client = client };

  qmp_client_execute_raw_async (client, json_node_get_object (with_id), NULL, 0, 1000, NULL, on_raw, &first);
  call_wait (&first, "raw query-status");
  g_assert_no_error (first.error);
  assert_json_object (first.raw, "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, "
                                 "\"id\": \"console-7\"}");
  assert_json (with_id, "{\"execute\": \"query-status\", \"id\": \"console-7\"}"); /* untouched */

  qmp_client_execute_raw_async (client, json_node_get_object (without_id), NULL, 0, 1000, NULL, on_raw, &second);
  call_wait (&second, "raw no-such-cmd");
  g_assert_no_error (second.error);
  assert_json_object (second.raw, "{\"error\": {\"class\": \"CommandNotFound\", "
                                  "\"desc\": \"The command no-such-cmd has not been found\"}}");
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_cancel (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("no-reply", &peer);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_auto(Call) call = { .client = client };

  qmp_client_execute_async (client, "query-status", NULL, NULL, 0, 0, cancellable, on_executed, &call);
  g_cancellable_cancel (cancellable);
  g_assert_false (call.done);
  call_wait (&call, "cancellation");
  g_assert_error (call.error, QMP_ERROR, QMP_ERROR_CANCELLED);
  g_assert_cmpstr (call.error->message, ==, "'query-status' cancelled");
  g_clear_pointer (&client, qmp_client_free);
  fake_peer_assert_done (peer);
}

static void
test_free_with_pending (void)
{
  FakePeer *peer;
  QmpClient *client = connect_peer ("no-reply", &peer);
  g_auto(Call) call = { 0 };

  execute (client, "query-status", NULL, 0, &call);
  test_wait_until (g_atomic_int_get (&peer->finished), WAIT_MS, "the peer to read query-status");
  qmp_client_free (client);
  g_assert_false (call.done); /* never from inside qmp_client_free() */
  call_wait (&call, "the cancelled callback");
  g_assert_error (call.error, QMP_ERROR, QMP_ERROR_CANCELLED);
  g_assert_cmpstr (call.error->message, ==, "'query-status' cancelled: QMP client freed");
  fake_peer_assert_done (peer);
}

typedef struct
{
  QmpClient *client;
  guint events;
} FreeOnEvent;

static void
on_event_free_client (QmpClient *client, const QmpMessage *event G_GNUC_UNUSED, gpointer data)
{
  FreeOnEvent *state = data;

  g_assert_true (client == state->client);
  state->events++;
  g_clear_pointer (&state->client, qmp_client_free);
}

static void
test_free_in_callback (void)
{
  FakePeer *peer;
  FreeOnEvent state = { 0 };
  g_auto(Call) quit = { 0 };

  state.client = connect_peer ("free-in-callback", &peer);
  qmp_client_subscribe (state.client, on_event_free_client, &state, NULL);
  execute (state.client, "quit", NULL, 0, &quit);
  call_wait (&quit, "quit");
  /* Freed by the SHUTDOWN handler, before the reply and the STOP after it were read. */
  g_assert_null (state.client);
  g_assert_cmpuint (state.events, ==, 1);
  g_assert_error (quit.error, QMP_ERROR, QMP_ERROR_CANCELLED);
  fake_peer_assert_done (peer);
}

static void
test_fake_peer_mismatch (void)
{
  FakePeer *peer;
  g_autoptr(QmpClient) client = connect_peer ("mismatch", &peer);
  g_auto(Call) call = { 0 };
  g_autofree char *failure = NULL;
  gboolean finished = TRUE;

  execute (client, "query-name", NULL, 0, &call);
  call_wait (&call, "the peer to hang up");
  g_assert_error (call.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_clear_pointer (&client, qmp_client_free);
  failure = fake_peer_finish (peer, &finished);
  g_assert_cmpstr (failure, ==, "mismatch.qmp:2: expected 'query-status', got 'query-name'");
  g_assert_false (finished);
}

static void
test_state_to_string (void)
{
  g_assert_cmpstr (qmp_client_state_to_string (QMP_CLIENT_STATE_CONNECTING), ==, "connecting");
  g_assert_cmpstr (qmp_client_state_to_string (QMP_CLIENT_STATE_NEGOTIATING), ==, "negotiating");
  g_assert_cmpstr (qmp_client_state_to_string (QMP_CLIENT_STATE_READY), ==, "ready");
  g_assert_cmpstr (qmp_client_state_to_string ((QmpClientState) 42), ==, "unknown");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/qmp/client/negotiate", test_negotiate);
  g_test_add_func ("/qmp/client/negotiate-oob", test_negotiate_oob);
  g_test_add_func ("/qmp/client/negotiate-refused", test_negotiate_refused);
  g_test_add_func ("/qmp/client/greeting-timeout", test_greeting_timeout);
  g_test_add_func ("/qmp/client/not-greeting-first", test_not_greeting_first);
  g_test_add_func ("/qmp/client/connect-path", test_connect_path);
  g_test_add_func ("/qmp/client/connect-missing", test_connect_missing);
  g_test_add_func ("/qmp/client/connect-cancelled", test_connect_cancelled);
  g_test_add_func ("/qmp/client/open-fd-not-socket", test_open_fd_not_socket);
  g_test_add_func ("/qmp/client/not-ready", test_not_ready);
  g_test_add_func ("/qmp/client/command-error", test_command_error);
  g_test_add_func ("/qmp/client/timeout-late-reply", test_timeout_late_reply);
  g_test_add_func ("/qmp/client/idless-error", test_idless_error);
  g_test_add_func ("/qmp/client/events-queued", test_events_queued);
  g_test_add_func ("/qmp/client/events-overflow", test_events_overflow);
  g_test_add_func ("/qmp/client/unsubscribe-in-callback", test_unsubscribe_in_callback);
  g_test_add_func ("/qmp/client/garbage-utf8", test_garbage_utf8);
  g_test_add_func ("/qmp/client/garbage-json", test_garbage_json);
  g_test_add_func ("/qmp/client/mid-message-close", test_mid_message_close);
  g_test_add_func ("/qmp/client/big-reply", test_big_reply);
  g_test_add_func ("/qmp/client/disconnect-fails-pending", test_disconnect_fails_pending);
  g_test_add_func ("/qmp/client/reset-by-peer", test_reset_by_peer);
  g_test_add_func ("/qmp/client/fd-passing", test_fd_passing);
  g_test_add_func ("/qmp/client/raw-passthrough", test_raw_passthrough);
  g_test_add_func ("/qmp/client/cancel", test_cancel);
  g_test_add_func ("/qmp/client/free-with-pending", test_free_with_pending);
  g_test_add_func ("/qmp/client/free-in-callback", test_free_in_callback);
  g_test_add_func ("/qmp/client/fake-peer-mismatch", test_fake_peer_mismatch);
  g_test_add_func ("/qmp/client/state-to-string", test_state_to_string);
  return g_test_run ();
}
