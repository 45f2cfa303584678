/* test-control.c: the control socket.  The server runs in the test's main loop with a
 * scripted handler; the blocking client (control-proto.c) runs in a thread, and raw
 * sockets play clients that misbehave.  Peer-credential tests fork a child that drops to
 * uid 65534 (nobody), so they need root.
 *
 * The handler's commands:
 *   echo        returns its arguments
 *   fail        answers with error class arguments.class and desc arguments.desc
 *   hold        is kept in fixture->held until the test answers it
 *   later       is answered {"later":true} from an idle callback
 *   events      subscribes to events, returns {}
 *   progress    sends {"step":1} and {"step":2} as progress, returns {"steps":2}
 *   big         returns {"blob":"xx..."} with arguments.size x's
 *   shutdown    answers {}, then frees the server (as vmherdd's own command would)
 *   status      returns {"command":"status"} (a read-only command)
 *   start       returns {"command":"start"} (a writing command)
 *   anything else: GenericError "unknown command 'NAME'" */
#define _GNU_SOURCE /* setgroups() */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "launcher/control.h"
#include "qmp/qmp-message.h"
#include "tests/test-util.h"

#define WAIT_MS 2000
#define NO_GROUP "vmherd-test-no-such-group"
#define NOBODY 65534
#define NOGROUP_NAME "nogroup"

/* ---- the fixture: a server with the scripted handler ---- */

typedef struct
{
  char *dir;
  char *path;
  ControlServer *server;
  GQueue held;                  /* ControlRequest from "hold" */
  guint n_handled;
  guint n_subscribed;
  ControlPeer last_peer;
  char *last_command;
} Fixture;

static JsonNode *
node_from_json (const char *text)
{
  g_autoptr(GError) error = NULL;
  JsonNode *node = json_from_string (text, &error);

  g_assert_no_error (error);
  return node;
}

static JsonObject *
object_from_json (const char *text)
{
  g_autoptr(JsonNode) node = node_from_json (text);

  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
  return json_object_ref (json_node_get_object (node));
}

static char *
node_to_json (JsonNode *node)
{
  return json_to_string (node, FALSE);
}

static char *
object_to_json (JsonObject *object)
{
  g_autoptr(JsonNode) node = json_node_init_object (json_node_alloc (), object);

  return json_to_string (node, FALSE);
}

static gboolean
answer_later (gpointer data)
{
  control_request_return (data, node_from_json ("{\"later\":true}"));
  return G_SOURCE_REMOVE;
}

static void
handle_request (ControlRequest *request, const char *command, JsonObject *arguments, gpointer user_data)
{
  Fixture *fixture = user_data;

  g_assert_cmpstr (control_request_get_command (request), ==, command);
  g_assert_true (control_request_is_connected (request));
  fixture->n_handled++;
  fixture->last_peer = *control_request_get_peer (request);
  g_free (fixture->last_command);
  fixture->last_command = g_strdup (command);

  if (g_str_equal (command, "echo"))
    control_request_return (request, json_node_init_object (json_node_alloc (), arguments));
  else if (g_str_equal (command, "fail"))
    control_request_error (request, json_object_get_string_member (arguments, "class"), "%s",
                           json_object_get_string_member (arguments, "desc"));
  else if (g_str_equal (command, "hold"))
    g_queue_push_tail (&fixture->held, request);
  else if (g_str_equal (command, "later"))
    g_idle_add (answer_later, request);
  else if (g_str_equal (command, "events"))
    {
      control_request_subscribe_events (request);
      fixture->n_subscribed++;
      control_request_return (request, NULL);
    }
  else if (g_str_equal (command, "progress"))
    {
      for (int step = 1; step <= 2; step++)
        {
          g_autoptr(JsonObject) data = json_object_new ();

          json_object_set_int_member (data, "step", step);
          control_request_send_progress (request, data);
        }
      control_request_return (request, node_from_json ("{\"steps\":2}"));
    }
  else if (g_str_equal (command, "big"))
    {
      gsize size = (gsize) json_object_get_int_member (arguments, "size");
      g_autofree char *blob = g_malloc (size + 1);
      g_autoptr(JsonObject) result = json_object_new ();

      memset (blob, 'x', size);
      blob[size] = '\0';
      json_object_set_string_member (result, "blob", blob);
      control_request_return (request, json_node_init_object (json_node_alloc (), result));
    }
  else if (g_str_equal (command, "shutdown"))
    {
      control_request_return (request, NULL);
      g_clear_pointer (&fixture->server, control_server_free);
    }
  else if (g_str_equal (command, "status") || g_str_equal (command, "start"))
    {
      g_autoptr(JsonObject) result = json_object_new ();

      json_object_set_string_member (result, "command", command);
      control_request_return (request, json_node_init_object (json_node_alloc (), result));
    }
  else
    control_request_error (request, "GenericError", "unknown command '%s'", command);
}

static ControlServer *
fixture_server_new (Fixture *fixture, const char *path, const char *group)
{
  g_autoptr(GError) error = NULL;
  ControlServer *server = control_server_new (path, group, handle_request, fixture, &error);

  g_assert_no_error (error);
  g_assert_nonnull (server);
  return server;
}

static void
fixture_set_up (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  fixture->dir = test_tmpdir ();
  fixture->path = g_build_filename (fixture->dir, "control", NULL);
  g_queue_init (&fixture->held);
  fixture->server = fixture_server_new (fixture, fixture->path, NO_GROUP);
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_assert_cmpuint (fixture->held.length, ==, 0);
  g_clear_pointer (&fixture->server, control_server_free);
  /* Let idle answers and closed sources go before the next test. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_free (fixture->last_command);
  g_free (fixture->path);
  g_free (fixture->dir);
}

/* ---- raw clients: non-blocking sockets read while the main loop runs ---- */

typedef struct
{
  int fd;
  QmpLineBuffer *lines;
  gboolean eof;
} Raw;

static Raw *
raw_connect (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  Raw *raw = g_new0 (Raw, 1);

  g_assert_cmpuint (strlen (path), <, sizeof addr.sun_path);
  strcpy (addr.sun_path, path);
  raw->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  g_assert_cmpint (raw->fd, >=, 0);
  g_assert_cmpint (connect (raw->fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  raw->lines = qmp_line_buffer_new (64 * 1024 * 1024);
  return raw;
}

static void
raw_free (Raw *raw)
{
  close (raw->fd);
  qmp_line_buffer_free (raw->lines);
  g_free (raw);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Raw, raw_free)

/* Sends everything, letting the server read when the socket is full. */
static void
raw_send_bytes (Raw *raw, const char *data, gsize length)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * 1000;
  gsize offset = 0;

  while (offset < length)
    {
      gssize sent = send (raw->fd, data + offset, length - offset, MSG_NOSIGNAL | MSG_DONTWAIT);

      if (sent > 0)
        {
          offset += (gsize) sent;
          continue;
        }
      g_assert_cmpint (errno, ==, EAGAIN);
      if (g_get_monotonic_time () > deadline)
        g_error ("the server did not read %" G_GSIZE_FORMAT " bytes within %d ms", length - offset, WAIT_MS);
      test_iterate_once (deadline);
    }
}

static void
raw_send (Raw *raw, const char *text)
{
  raw_send_bytes (raw, text, strlen (text));
}

/* The next line if one has arrived, without blocking. */
static char *
raw_try_line (Raw *raw)
{
  char buffer[65536];
  gsize length = 0;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      char *line = qmp_line_buffer_next (raw->lines, &length, &error);
      gssize received;

      g_assert_no_error (error);
      if (line != NULL)
        return line;
      received = recv (raw->fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (received <= 0)
        {
          if (received == 0 || errno == ECONNRESET)
            raw->eof = TRUE;
          else
            g_assert_cmpint (errno, ==, EAGAIN);
          return NULL;
        }
      qmp_line_buffer_feed (raw->lines, buffer, (gsize) received);
    }
}

static char *
raw_read_line (Raw *raw)
{
  char *line = NULL;

  test_wait_until ((line = raw_try_line (raw)) != NULL, WAIT_MS, "a line from the control server");
  return line;
}

static void
raw_expect (Raw *raw, const char *expected)
{
  g_autofree char *line = raw_read_line (raw);

  g_assert_cmpstr (line, ==, expected);
}

/* Runs the main loop until nothing is pending, then checks that no line arrived. */
static void
raw_expect_nothing (Raw *raw)
{
  g_autofree char *line = NULL;

  while (g_main_context_iteration (NULL, FALSE))
    ;
  line = raw_try_line (raw);
  g_assert_null (line);
}

/* ---- the blocking client in a thread ---- */

typedef struct _Call Call;
typedef void (*CallFunc) (Call *call, ControlClient *client);

struct _Call
{
  char *path;
  char *command;                /* NULL: connect, then go straight to `then` */
  JsonObject *arguments;
  guint timeout_ms;
  CallFunc then;                /* runs after the call, on the same client */
  GAsyncQueue *go;              /* for `then`: the test says when to go on */
  gint step;                    /* for `then`: how far it got */

  JsonNode *result;
  GError *error;
  char *error_class;
  GPtrArray *lines;             /* on_line, as JSON text */
  JsonObject *event;            /* read after the call by call_read_event */
  GError *then_error;
  JsonNode *then_result;
  gint done;
  GThread *thread;
};

static void
call_on_line (JsonObject *line, gpointer data)
{
  Call *call = data;

  g_ptr_array_add (call->lines, object_to_json (line));
}

static gpointer
call_thread (gpointer data)
{
  Call *call = data;
  g_autoptr(ControlClient) client = control_client_connect (call->path, &call->error);

  if (client != NULL)
    {
      if (call->command != NULL)
        call->result = control_client_call (client, call->command, call->arguments, call->timeout_ms,
                                            call_on_line, call, &call->error_class, &call->error);
      if (call->then != NULL)
        call->then (call, client);
    }
  g_atomic_int_set (&call->done, 1);
  g_main_context_wakeup (NULL); /* test_wait_until() in the main thread looks again now */
  return NULL;
}

/* Starts command with arguments (JSON text, nullable) in a thread. */
static Call *
call_start_full (const char *path, const char *command, const char *arguments, guint timeout_ms, CallFunc then)
{
  Call *call = g_new0 (Call, 1);

  call->path = g_strdup (path);
  call->command = g_strdup (command);
  call->arguments = arguments != NULL ? object_from_json (arguments) : NULL;
  call->timeout_ms = timeout_ms;
  call->then = then;
  call->go = g_async_queue_new ();
  call->lines = g_ptr_array_new_with_free_func (g_free);
  call->thread = g_thread_new ("control-client", call_thread, call);
  return call;
}

static Call *
call_start (const char *path, const char *command, const char *arguments)
{
  return call_start_full (path, command, arguments, WAIT_MS, NULL);
}

/* Runs the main loop (the server) until the thread is done. */
static void
call_finish (Call *call)
{
  test_wait_until (g_atomic_int_get (&call->done), WAIT_MS, "the client thread");
  g_thread_join (g_steal_pointer (&call->thread));
}

static void
call_free (Call *call)
{
  if (call->thread != NULL)
    call_finish (call);
  g_free (call->path);
  g_free (call->command);
  g_clear_pointer (&call->arguments, json_object_unref);
  g_async_queue_unref (call->go);
  g_clear_pointer (&call->result, json_node_unref);
  g_clear_error (&call->error);
  g_free (call->error_class);
  g_ptr_array_unref (call->lines);
  g_clear_pointer (&call->event, json_object_unref);
  g_clear_error (&call->then_error);
  g_clear_pointer (&call->then_result, json_node_unref);
  g_free (call);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Call, call_free)

static void
assert_result (Call *call, const char *expected)
{
  g_autofree char *text = NULL;

  g_assert_no_error (call->error);
  g_assert_nonnull (call->result);
  text = node_to_json (call->result);
  g_assert_cmpstr (text, ==, expected);
}

/* ---- requests and answers ---- */

static void
test_answer (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(Call) call = call_start (fixture->path, "echo", "{\"vm\":\"web\",\"n\":[1,2]}");

  call_finish (call);
  assert_result (call, "{\"vm\":\"web\",\"n\":[1,2]}");
  g_assert_cmpuint (fixture->n_handled, ==, 1);
  g_assert_cmpstr (fixture->last_command, ==, "echo");
  g_assert_cmpint (fixture->last_peer.pid, ==, getpid ());
  g_assert_cmpuint (fixture->last_peer.uid, ==, getuid ());
  g_assert_cmpuint (fixture->last_peer.gid, ==, getgid ());
  g_assert_cmpint (fixture->last_peer.may_write, ==, getuid () == 0);
}

static void
test_arguments_absent (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(Raw) raw = raw_connect (fixture->path);

  /* The handler gets {} for absent arguments; an absent id stays absent. */
  raw_send (raw, "{\"execute\":\"echo\"}\n");
  raw_expect (raw, "{\"return\":{}}");
  raw_send (raw, "{\"execute\":\"nosuch\",\"id\":3}\n");
  raw_expect (raw, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"unknown command 'nosuch'\"},\"id\":3}");
}

static gboolean
answer_held (gpointer data)
{
  Fixture *fixture = data;

  control_request_return (g_queue_pop_head (&fixture->held), node_from_json ("{\"answered\":\"later\"}"));
  return G_SOURCE_REMOVE;
}

static void
test_async_answer (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(Raw) raw = raw_connect (fixture->path);
  g_autoptr(Call) call = NULL;

  /* Held, then answered from an idle; the request after it is answered first. */
  raw_send (raw, "{\"execute\":\"hold\",\"id\":\"a\"}\n"
                 "{\"execute\":\"echo\",\"arguments\":{\"b\":1},\"id\":\"b\"}\n");
  test_wait_until (fixture->held.length == 1, WAIT_MS, "the held request");
  raw_expect (raw, "{\"return\":{\"b\":1},\"id\":\"b\"}");
  raw_expect_nothing (raw);
  g_idle_add (answer_held, fixture);
  raw_expect (raw, "{\"return\":{\"answered\":\"later\"},\"id\":\"a\"}");

  call = call_start (fixture->path, "later", NULL);
  call_finish (call);
  assert_result (call, "{\"later\":true}");
}

static void
test_error_reply (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  static const char arguments[] = "{\"class\":\"NotFound\",\"desc\":\"no VM named 'web' in /etc/vmherd/vms.d\"}";
  g_autoptr(Call) call = call_start (fixture->path, "fail", arguments);

  call_finish (call);
  g_assert_null (call->result);
  g_assert_error (call->error, CONTROL_ERROR, CONTROL_ERROR_REFUSED);
  g_assert_cmpstr (call->error->message, ==, "no VM named 'web' in /etc/vmherd/vms.d");
  g_assert_cmpstr (call->error_class, ==, "NotFound");
}

static void
test_progress (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(Call) call = call_start (fixture->path, "progress", NULL);

  call_finish (call);
  assert_result (call, "{\"steps\":2}");
  g_assert_cmpuint (call->lines->len, ==, 2);
  g_assert_cmpstr (call->lines->pdata[0], ==, "{\"progress\":{\"step\":1},\"id\":1}");
  g_assert_cmpstr (call->lines->pdata[1], ==, "{\"progress\":{\"step\":2},\"id\":1}");
}

static void
test_big_answer (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  /* One line larger than the output cap still goes out whole to a client that reads. */
  g_autofree char *arguments = g_strdup_printf ("{\"size\":%d}", CONTROL_OUTPUT_LIMIT + 1024 * 1024);
  g_autoptr(Call) call = call_start (fixture->path, "big", arguments);
  JsonObject *result;

  call_finish (call);
  g_assert_no_error (call->error);
  result = json_node_get_object (call->result);
  g_assert_cmpuint (strlen (json_object_get_string_member (result, "blob")), ==,
                    CONTROL_OUTPUT_LIMIT + 1024 * 1024);
}

/* ---- malformed requests ---- */

typedef struct
{
  const char *request;
  const char *answer;
} Exchange;

static void
test_malformed (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  static const Exchange exchanges[] = {
    { "not json\n",
      "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: invalid JSON at 1:3: Parse error: "
      "unexpected identifier `not', expected value\"}}" },
    { "[1,2]\n",
      "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: an array, not a JSON object\"}}" },
    { "\"start\"\n",
      "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: a string, not a JSON object\"}}" },
    { "null\n", "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: null, not a JSON object\"}}" },
    { "{\"execute\":\"echo\",\"id\":1}{\"execute\":\"echo\",\"id\":2}\n",
      "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: invalid JSON: more than one "
      "value on the line\"}}" },
    { "{\"execute\":\"\xff\"}\n",
      "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: invalid UTF-8 at byte 12\"}}" },
    { "{\"arguments\":{},\"id\":5}\n",
      "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: no 'execute' member (expected "
      "{\\\"execute\\\": COMMAND, \\\"arguments\\\": {...}, \\\"id\\\": ID})\"},\"id\":5}" },
    { "{\"execute\":42,\"id\":\"x\"}\n",
      "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: 'execute' is a number, not a "
      "string\"},\"id\":\"x\"}" },
    { "{\"execute\":\"echo\",\"arguments\":[1],\"id\":[1,2]}\n",
      "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: 'arguments' of 'echo' is an array, not "
      "an object\"},\"id\":[1,2]}" },
    { "{\"execute\":\"echo\",\"argument\":{},\"id\":6}\n",
      "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: unexpected member 'argument' (expected "
      "execute, arguments and id)\"},\"id\":6}" },
    /* Empty lines are skipped without an answer. */
    { "\n\r\n{\"execute\":\"echo\",\"arguments\":{\"ok\":true},\"id\":9}\n",
      "{\"return\":{\"ok\":true},\"id\":9}" },
  };
  g_autoptr(Raw) raw = raw_connect (fixture->path);

  for (gsize i = 0; i < G_N_ELEMENTS (exchanges); i++)
    {
      raw_send (raw, exchanges[i].request);
      raw_expect (raw, exchanges[i].answer);
    }
  g_assert_cmpuint (fixture->n_handled, ==, 1);
}

static void
test_long_lines (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  static const char too_long[] =
    "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"bad request: longer than 1048576 bytes, ignored\"}}";
  g_autoptr(Raw) raw = raw_connect (fixture->path);
  gsize pad = CONTROL_MAX_REQUEST_LENGTH + 512 * 1024;
  g_autofree char *padding = g_malloc (pad + 1);
  g_autofree char *line = NULL;

  memset (padding, 'x', pad);
  padding[pad] = '\0';

  /* A complete line over the limit. */
  line = g_strdup_printf ("{\"execute\":\"echo\",\"arguments\":{\"pad\":\"%s\"},\"id\":1}\n", padding);
  raw_send (raw, line);
  raw_expect (raw, too_long);
  raw_send (raw, "{\"execute\":\"echo\",\"id\":2}\n");
  raw_expect (raw, "{\"return\":{},\"id\":2}");

  /* An unterminated one: refused as soon as it passes the limit, then skipped to its end. */
  raw_send (raw, "{\"execute\":\"echo\",\"id\":3,\"pad\":\"");
  raw_send (raw, padding);
  raw_expect (raw, too_long);
  raw_send (raw, padding);
  raw_send (raw, "\"}\n{\"execute\":\"echo\",\"id\":4}\n");
  raw_expect (raw, "{\"return\":{},\"id\":4}");
  raw_expect_nothing (raw);
  g_assert_cmpuint (fixture->n_handled, ==, 2);
}

static void
test_id_verbatim (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  static const char *const ids[] = {
    "\"abc\"", "42", "-7", "1.5", "{\"a\":[1,\"b\",null],\"c\":{}}", "true", "null", "\"\\u00e9\\n\"",
  };
  g_autoptr(Raw) raw = raw_connect (fixture->path);

  for (gsize i = 0; i < G_N_ELEMENTS (ids); i++)
    {
      g_autofree char *request = g_strdup_printf ("{\"id\":%s,\"execute\":\"echo\"}\n", ids[i]);
      g_autoptr(JsonNode) expected_id = node_from_json (ids[i]);
      g_autofree char *expected_text = node_to_json (expected_id);
      g_autofree char *expected = g_strdup_printf ("{\"return\":{},\"id\":%s}", expected_text);

      raw_send (raw, request);
      raw_expect (raw, expected);
    }
}

/* ---- connections that misbehave ---- */

static void
test_slow_clients (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(Raw) idle = raw_connect (fixture->path);
  g_autoptr(Raw) stuck = raw_connect (fixture->path);
  g_autoptr(JsonObject) payload = json_object_new ();
  g_autofree char *pad = g_malloc (64 * 1024 + 1);
  g_autoptr(Call) call = NULL;
  char buffer[65536];
  guint n_events = 0, n_sent;
  gssize received;

  memset (pad, 'p', 64 * 1024);
  pad[64 * 1024] = '\0';
  json_object_set_string_member (payload, "pad", pad);

  /* stuck subscribes, then never reads: its output passes the cap and it is closed. */
  raw_send (stuck, "{\"execute\":\"events\",\"id\":1}\n");
  raw_expect (stuck, "{\"return\":{},\"id\":1}");
  g_test_expect_message ("vmherd-control", G_LOG_LEVEL_MESSAGE,
                         "control socket: closing the connection of uid * (pid *): more than 4194304 bytes of "
                         "output unread (is the client stuck?)");
  n_sent = 2 * CONTROL_OUTPUT_LIMIT / (64 * 1024);
  for (guint i = 0; i < n_sent; i++)
    control_server_broadcast_event (fixture->server, "FLOOD", payload);
  g_test_assert_expected_messages ();

  /* Meanwhile another client is answered at once, and idle costs nothing. */
  call = call_start_full (fixture->path, "echo", "{\"quick\":true}", 1000, NULL);
  call_finish (call);
  assert_result (call, "{\"quick\":true}");
  raw_expect_nothing (idle);
  g_assert_false (idle->eof);

  /* stuck finds what the kernel had taken, then the end. */
  while ((received = recv (stuck->fd, buffer, sizeof buffer, MSG_DONTWAIT)) > 0)
    {
      for (gssize i = 0; i < received; i++)
        n_events += buffer[i] == '\n';
    }
  g_assert_cmpint (received, ==, 0);
  g_assert_cmpuint (n_events, >, 0);
  g_assert_cmpuint (n_events, <, n_sent);
}

static void
test_disconnect_before_answer (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(Raw) raw = raw_connect (fixture->path);
  g_autoptr(Raw) other = NULL;
  g_autofree char *line = NULL;
  ControlRequest *request;

  raw_send (raw, "{\"execute\":\"hold\",\"id\":1}\n");
  test_wait_until (fixture->held.length == 1, WAIT_MS, "the held request");
  request = g_queue_pop_head (&fixture->held);
  g_clear_pointer (&raw, raw_free);
  test_wait_until (!control_request_is_connected (request), WAIT_MS, "the server to see the client go");
  g_assert_cmpuint (control_request_get_peer (request)->uid, ==, getuid ());
  control_request_return (request, node_from_json ("{\"dropped\":true}"));

  /* The same when the server goes first: the request outlives it. */
  other = raw_connect (fixture->path);
  raw_send (other, "{\"execute\":\"hold\",\"id\":2}\n");
  test_wait_until (fixture->held.length == 1, WAIT_MS, "the second held request");
  request = g_queue_pop_head (&fixture->held);
  g_clear_pointer (&fixture->server, control_server_free);
  g_assert_false (control_request_is_connected (request));
  g_assert_false (g_file_test (fixture->path, G_FILE_TEST_EXISTS));
  control_request_error (request, "GenericError", "%s", "nobody hears this");
  test_wait_until ((line = raw_try_line (other)) != NULL || other->eof, WAIT_MS, "the end of the connection");
  g_assert_null (line);
  g_assert_true (other->eof);
}

static void
test_free_in_handler (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(Raw) raw = raw_connect (fixture->path);
  g_autoptr(Raw) other = raw_connect (fixture->path);
  g_autofree char *line = NULL;

  /* Both requests arrive in one read: the second is not run once the server is gone. */
  raw_send (raw, "{\"execute\":\"shutdown\",\"id\":1}\n{\"execute\":\"echo\",\"id\":2}\n");
  raw_expect (raw, "{\"return\":{},\"id\":1}");
  test_wait_until ((line = raw_try_line (raw)) != NULL || raw->eof, WAIT_MS, "the end of the connection");
  g_assert_null (line);
  g_assert_true (raw->eof);
  g_assert_null (fixture->server);
  g_assert_cmpuint (fixture->n_handled, ==, 1);
  test_wait_until ((line = raw_try_line (other)) != NULL || other->eof, WAIT_MS, "the other connection's end");
  g_assert_null (line);
  g_assert_false (g_file_test (fixture->path, G_FILE_TEST_EXISTS));
}

static void
test_events (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(Raw) subscriber = raw_connect (fixture->path);
  g_autoptr(Raw) other = raw_connect (fixture->path);
  g_autoptr(JsonObject) data = object_from_json ("{\"vm\":\"web\",\"state\":\"running\"}");
  g_autoptr(JsonObject) event = NULL;
  g_autofree char *line = NULL;
  g_autofree char *data_text = NULL;
  JsonObject *timestamp;
  gint64 before, after, seconds, microseconds, when;

  raw_send (subscriber, "{\"execute\":\"events\",\"id\":1}\n");
  raw_expect (subscriber, "{\"return\":{},\"id\":1}");
  raw_send (other, "{\"execute\":\"echo\",\"id\":1}\n");
  raw_expect (other, "{\"return\":{},\"id\":1}");

  before = g_get_real_time ();
  control_server_broadcast_event (fixture->server, "VM_STATE", data);
  control_server_broadcast_event (fixture->server, "NO_DATA", NULL);
  after = g_get_real_time ();

  line = raw_read_line (subscriber);
  event = object_from_json (line);
  g_assert_cmpstr (json_object_get_string_member (event, "event"), ==, "VM_STATE");
  data_text = object_to_json (json_object_get_object_member (event, "data"));
  g_assert_cmpstr (data_text, ==, "{\"vm\":\"web\",\"state\":\"running\"}");
  timestamp = json_object_get_object_member (event, "timestamp");
  seconds = json_object_get_int_member (timestamp, "seconds");
  microseconds = json_object_get_int_member (timestamp, "microseconds");
  g_assert_cmpint (microseconds, >=, 0);
  g_assert_cmpint (microseconds, <, G_USEC_PER_SEC);
  when = seconds * G_USEC_PER_SEC + microseconds;
  g_assert_cmpint (when, >=, before);
  g_assert_cmpint (when, <=, after);
  g_assert_cmpuint (json_object_get_size (event), ==, 3);
  g_clear_pointer (&line, g_free);
  line = raw_read_line (subscriber);
  g_assert_true (g_str_has_prefix (line, "{\"event\":\"NO_DATA\",\"data\":{},\"timestamp\":{\"seconds\":"));

  /* The other client got no event: its next line is the next answer. */
  raw_send (other, "{\"execute\":\"echo\",\"id\":2}\n");
  raw_expect (other, "{\"return\":{},\"id\":2}");
}

static void
call_read_event (Call *call, ControlClient *client)
{
  g_atomic_int_set (&call->step, 1);
  g_main_context_wakeup (NULL);
  call->event = control_client_read_line (client, WAIT_MS, &call->then_error);
}

static void
test_client_events (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(Call) call = call_start_full (fixture->path, "events", NULL, WAIT_MS, call_read_event);
  g_autoptr(JsonObject) data = object_from_json ("{\"vm\":\"web\"}");

  test_wait_until (g_atomic_int_get (&call->step) == 1, WAIT_MS, "the client to subscribe");
  control_server_broadcast_event (fixture->server, "VM_STARTED", data);
  call_finish (call);
  assert_result (call, "{}");
  g_assert_no_error (call->then_error);
  g_assert_cmpstr (json_object_get_string_member (call->event, "event"), ==, "VM_STARTED");
  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (call->event, "data"), "vm"), ==,
                   "web");
}

/* ---- the client's own contract ---- */

static void
call_again_after_late_answer (Call *call, ControlClient *client)
{
  g_autoptr(JsonObject) arguments = object_from_json ("{\"n\":2}");

  g_atomic_int_set (&call->step, 1);
  g_main_context_wakeup (NULL);
  g_async_queue_pop (call->go);
  call->then_result = control_client_call (client, "echo", arguments, WAIT_MS, NULL, NULL, NULL,
                                           &call->then_error);
}

static void
test_client_timeout (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(Call) call = call_start_full (fixture->path, "hold", NULL, 50, call_again_after_late_answer);
  g_autofree char *text = NULL;

  test_wait_until (g_atomic_int_get (&call->step) == 1, WAIT_MS, "the first call to time out");
  g_assert_null (call->result);
  g_assert_error (call->error, CONTROL_ERROR, CONTROL_ERROR_TIMEOUT);
  g_assert_cmpstr (call->error->message, ==, "no answer from vmherdd to 'hold' within 50 ms");
  /* The late answer reaches the client before its next call: that call skips it.  (The
   * server reads "hold" in this main loop, which may not have run since the timeout.) */
  test_wait_until (fixture->held.length == 1, WAIT_MS, "the server to hold the request");
  answer_held (fixture);
  g_async_queue_push (call->go, GINT_TO_POINTER (1));
  call_finish (call);
  g_assert_no_error (call->then_error);
  text = node_to_json (call->then_result);
  g_assert_cmpstr (text, ==, "{\"n\":2}");
}

static void
test_unreachable (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *missing = g_build_filename (dir, "missing", NULL);
  g_autofree char *stale = g_build_filename (dir, "stale", NULL);
  g_autofree char *expected = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ControlClient) client = NULL;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_auto(AutoFd) fd = -1;

  client = control_client_connect (missing, &error);
  g_assert_null (client);
  g_assert_error (error, CONTROL_ERROR, CONTROL_ERROR_UNREACHABLE);
  expected = g_strdup_printf ("cannot reach vmherdd at %s: No such file or directory (is vmherdd running?)",
                              missing);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);

  /* A socket file nobody listens on. */
  strcpy (addr.sun_path, stale);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (bind (fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  client = control_client_connect (stale, &error);
  g_assert_null (client);
  g_assert_error (error, CONTROL_ERROR, CONTROL_ERROR_UNREACHABLE);
  g_free (expected);
  expected = g_strdup_printf ("cannot reach vmherdd at %s: Connection refused (is vmherdd running?)", stale);
  g_assert_cmpstr (error->message, ==, expected);
}

/* A fake daemon for the client's side of the protocol: blocking reads and writes on an
 * accepted socket (the client runs in its thread). */
static char *
fake_read_line (int fd)
{
  GString *line = g_string_new (NULL);
  char c;

  while (read (fd, &c, 1) == 1 && c != '\n')
    g_string_append_c (line, c);
  return g_string_free (line, FALSE);
}

static void
fake_write (int fd, const char *text)
{
  g_assert_cmpint (write (fd, text, strlen (text)), ==, (gssize) strlen (text));
}

/* Accepts one connection, checks its request line, then sends reply (NULL: closes). */
static void
fake_exchange (int listen_fd, const char *expected_request, const char *reply)
{
  g_auto(AutoFd) fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
  g_autofree char *request = NULL;

  g_assert_cmpint (fd, >=, 0);
  request = fake_read_line (fd);
  g_assert_cmpstr (request, ==, expected_request);
  if (reply != NULL)
    fake_write (fd, reply);
}

static void
call_twice (Call *call, ControlClient *client)
{
  call->then_result = control_client_call (client, "echo", NULL, WAIT_MS, NULL, NULL, NULL, &call->then_error);
}

/* Waits until the test says go, then calls echo (the result goes where a call's does). */
static void
call_echo_after_go (Call *call, ControlClient *client)
{
  g_async_queue_pop (call->go);
  call->result = control_client_call (client, "echo", NULL, WAIT_MS, NULL, NULL, &call->error_class, &call->error);
}

static void
test_client_protocol (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "fake", NULL);
  g_autofree char *expected = NULL;
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_auto(AutoFd) listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_auto(AutoFd) fd = -1;
  g_autoptr(Call) call = NULL;

  strcpy (addr.sun_path, path);
  g_assert_cmpint (bind (listen_fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  g_assert_cmpint (listen (listen_fd, 4), ==, 0);

  /* Garbage instead of an answer. */
  call = call_start (path, "echo", NULL);
  fake_exchange (listen_fd, "{\"execute\":\"echo\",\"id\":1}", "garbage\n");
  call_finish (call);
  g_assert_error (call->error, CONTROL_ERROR, CONTROL_ERROR_PROTOCOL);
  expected = g_strdup_printf ("vmherdd at %s sent a bad line: invalid JSON at 1:7: Parse error: unexpected "
                              "identifier `garbage', expected value", path);
  g_assert_cmpstr (call->error->message, ==, expected);
  g_clear_pointer (&call, call_free);

  /* Closed before answering. */
  call = call_start (path, "echo", NULL);
  fake_exchange (listen_fd, "{\"execute\":\"echo\",\"id\":1}", NULL);
  call_finish (call);
  g_assert_error (call->error, CONTROL_ERROR, CONTROL_ERROR_DISCONNECTED);
  g_free (expected);
  expected = g_strdup_printf ("vmherdd at %s closed the connection", path);
  g_assert_cmpstr (call->error->message, ==, expected);
  g_clear_pointer (&call, call_free);

  /* An error without an id answers the call: the daemon refusing the peer. */
  call = call_start (path, "echo", NULL);
  fake_exchange (listen_fd, "{\"execute\":\"echo\",\"id\":1}",
                 "{\"error\":{\"class\":\"PermissionDenied\",\"desc\":\"uid 1000 may not use vmherdd\"}}\n");
  call_finish (call);
  g_assert_error (call->error, CONTROL_ERROR, CONTROL_ERROR_REFUSED);
  g_assert_cmpstr (call->error->message, ==, "uid 1000 may not use vmherdd");
  g_assert_cmpstr (call->error_class, ==, "PermissionDenied");
  g_clear_pointer (&call, call_free);

  /* The same when the daemon has closed before the request goes out (EPIPE): the reason it
   * sent is still the answer. */
  call = call_start_full (path, NULL, NULL, WAIT_MS, call_echo_after_go);
  fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
  fake_write (fd, "{\"error\":{\"class\":\"PermissionDenied\",\"desc\":\"uid 1000 may not use vmherdd\"}}\n");
  fd_close_if_valid (g_steal_fd (&fd));
  g_async_queue_push (call->go, GINT_TO_POINTER (1));
  call_finish (call);
  g_assert_error (call->error, CONTROL_ERROR, CONTROL_ERROR_REFUSED);
  g_assert_cmpstr (call->error->message, ==, "uid 1000 may not use vmherdd");
  g_assert_cmpstr (call->error_class, ==, "PermissionDenied");
  g_clear_pointer (&call, call_free);

  /* Ids count up per client; an event and an answer to another id are skipped. */
  call = call_start_full (path, "echo", NULL, WAIT_MS, call_twice);
  fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
  first = fake_read_line (fd);
  g_assert_cmpstr (first, ==, "{\"execute\":\"echo\",\"id\":1}");
  fake_write (fd, "{\"return\":1,\"id\":1}\n");
  second = fake_read_line (fd);
  g_assert_cmpstr (second, ==, "{\"execute\":\"echo\",\"id\":2}");
  fake_write (fd, "{\"event\":\"X\",\"data\":{}}\n{\"return\":0,\"id\":7}\n{\"return\":2,\"id\":2}\n");
  call_finish (call);
  assert_result (call, "1");
  g_assert_no_error (call->then_error);
  g_assert_cmpint (json_node_get_int (call->then_result), ==, 2);
}

/* ---- the socket file ---- */

static void
test_stale_socket (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "control", NULL);
  Fixture fixture = { 0 };
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_auto(AutoFd) fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_autoptr(ControlServer) server = NULL;
  g_autoptr(Call) call = NULL;

  /* Bound but never listening: what a crashed daemon leaves behind. */
  strcpy (addr.sun_path, path);
  g_assert_cmpint (bind (fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  g_queue_init (&fixture.held);
  server = fixture_server_new (&fixture, path, NO_GROUP);
  call = call_start (path, "echo", "{\"fresh\":true}");
  call_finish (call);
  assert_result (call, "{\"fresh\":true}");
  g_free (fixture.last_command);
}

static void
test_live_socket (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ControlServer) second = control_server_new (fixture->path, NO_GROUP, handle_request, fixture, &error);
  g_autofree char *expected = g_strdup_printf ("vmherdd already running at %s", fixture->path);
  g_autoptr(Call) call = NULL;

  g_assert_null (second);
  g_assert_error (error, CONTROL_ERROR, CONTROL_ERROR_IN_USE);
  g_assert_cmpstr (error->message, ==, expected);
  /* The first server keeps its socket. */
  call = call_start (fixture->path, "echo", "{\"still\":\"here\"}");
  call_finish (call);
  assert_result (call, "{\"still\":\"here\"}");
}

static void
test_not_a_socket (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  g_autofree char *path = g_build_filename (fixture->dir, "file", NULL);
  g_autofree char *expected = g_strdup_printf ("cannot bind %s: it exists and is not a socket (not removing it)",
                                               path);
  g_autofree char *contents = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ControlServer) server = NULL;

  test_write_file (path, "precious\n");
  server = control_server_new (path, NO_GROUP, handle_request, fixture, &error);
  g_assert_null (server);
  g_assert_error (error, CONTROL_ERROR, CONTROL_ERROR_IO);
  g_assert_cmpstr (error->message, ==, expected);
  contents = test_read_file (path);
  g_assert_cmpstr (contents, ==, "precious\n");
}

static void
test_socket_mode (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  struct group *nogroup = getgrnam (NOGROUP_NAME);
  struct stat st;

  g_assert_cmpint (stat (fixture->path, &st), ==, 0);
  g_assert_true (S_ISSOCK (st.st_mode));
  g_assert_cmpint (st.st_mode & 07777, ==, 0660);
  g_assert_cmpuint (st.st_gid, ==, getegid ()); /* the group does not exist: unchanged */

  if (nogroup != NULL && getuid () == 0)
    {
      g_autofree char *path = g_build_filename (fixture->dir, "grouped", NULL);
      g_autoptr(ControlServer) server = fixture_server_new (fixture, path, NOGROUP_NAME);

      g_assert_nonnull (server);
      g_assert_cmpint (stat (path, &st), ==, 0);
      g_assert_cmpint (st.st_mode & 07777, ==, 0660);
      g_assert_cmpuint (st.st_gid, ==, nogroup->gr_gid);
    }
}

/* ---- peer credentials ---- */

typedef struct
{
  gid_t gid;
  gid_t supplementary;          /* (gid_t) -1: none */
  const char *requests;
  int lines;                    /* stop after this many lines (0: at EOF) */
} ChildPlan;

/* In the forked child: only system calls, no allocation.  Exits 0 after copying what the
 * server sent to out_fd, or 10 + the step that failed. */
static void G_GNUC_NORETURN
child_run (const char *path, const ChildPlan *plan, int out_fd)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  char buffer[4096];
  int fd, newlines = 0;
  ssize_t n;

  if (plan->supplementary != (gid_t) -1 ? setgroups (1, &plan->supplementary) < 0 : setgroups (0, NULL) < 0)
    _exit (10);
  if (setgid (plan->gid) < 0 || setuid (NOBODY) < 0)
    _exit (11);
  strncpy (addr.sun_path, path, sizeof addr.sun_path - 1);
  fd = socket (AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &addr, sizeof addr) < 0)
    _exit (12);
  /* A refused peer may be closed before its request goes out: read the reason anyway. */
  if (send (fd, plan->requests, strlen (plan->requests), MSG_NOSIGNAL) != (ssize_t) strlen (plan->requests)
      && errno != EPIPE && errno != ECONNRESET)
    _exit (13);
  while ((n = read (fd, buffer, sizeof buffer)) > 0)
    {
      if (write (out_fd, buffer, (size_t) n) != n)
        _exit (14);
      for (ssize_t i = 0; i < n; i++)
        newlines += buffer[i] == '\n';
      if (plan->lines > 0 && newlines >= plan->lines)
        break;
    }
  if (n < 0 && errno != ECONNRESET)
    _exit (15);
  _exit (0);
}

static void
on_child_exit (GPid pid G_GNUC_UNUSED, int status, gpointer data)
{
  *(int *) data = status;
}

/* Forks a child that connects as uid 65534 with plan; returns what it read. */
static char *
run_child (const char *path, const ChildPlan *plan, pid_t *out_pid)
{
  int pipe_fds[2];
  int status = -1;
  pid_t pid;
  GString *output = g_string_new (NULL);
  char buffer[4096];
  ssize_t n;

  g_assert_cmpint (pipe2 (pipe_fds, O_CLOEXEC), ==, 0);
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      close (pipe_fds[0]);
      child_run (path, plan, pipe_fds[1]);
    }
  close (pipe_fds[1]);
  g_child_watch_add (pid, on_child_exit, &status);
  test_wait_until (status != -1, WAIT_MS, "the uid 65534 child to exit");
  g_assert_cmpint (status, ==, 0); /* exited with 0; see child_run() for the others */
  while ((n = read (pipe_fds[0], buffer, sizeof buffer)) > 0)
    g_string_append_len (output, buffer, n);
  close (pipe_fds[0]);
  *out_pid = pid;
  return g_string_free (output, FALSE);
}

static gboolean
require_root (void)
{
  if (getuid () == 0)
    return TRUE;
  test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "needs root: the test forks a child that setuid()s to 65534 (nobody)");
  return FALSE;
}

static void
test_peer_refused (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  ChildPlan plan = { .gid = NOBODY, .supplementary = (gid_t) -1,
                     .requests = "{\"execute\":\"start\",\"id\":1}\n" };
  g_autofree char *output = NULL;
  pid_t pid;

  if (!require_root ())
    return;
  /* Let nobody past the file mode, so the SO_PEERCRED check is what refuses it. */
  g_assert_cmpint (chmod (fixture->dir, 0755), ==, 0);
  g_assert_cmpint (chmod (fixture->path, 0666), ==, 0);
  g_test_expect_message ("vmherd-control", G_LOG_LEVEL_MESSAGE,
                         "control socket: refused uid 65534 (pid *): not root and not in group " NO_GROUP);
  output = run_child (fixture->path, &plan, &pid);
  g_test_assert_expected_messages ();
  g_assert_cmpstr (output, ==,
                   "{\"error\":{\"class\":\"PermissionDenied\",\"desc\":\"uid 65534 may not use vmherdd (root or "
                   "members of group " NO_GROUP " only)\"}}\n");
  g_assert_cmpuint (fixture->n_handled, ==, 0);
}

static void
test_peer_read_only (Fixture *fixture, gconstpointer test_data G_GNUC_UNUSED)
{
  static const char *const read_only[] = { "status", "list", NULL };
  struct group *nogroup = getgrnam (NOGROUP_NAME);
  g_autofree char *path = g_build_filename (fixture->dir, "ro", NULL);
  g_autoptr(ControlServer) server = NULL;
  /* Member through the primary group, then through a supplementary one (SO_PEERGROUPS). */
  gid_t primaries[] = { 0, 1 };

  if (!require_root ())
    return;
  if (nogroup == NULL)
    {
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "no group '" NOGROUP_NAME "' on this host");
      return;
    }
  primaries[0] = nogroup->gr_gid;
  g_assert_cmpint (chmod (fixture->dir, 0755), ==, 0);
  server = fixture_server_new (fixture, path, NOGROUP_NAME);
  control_server_set_read_only_commands (server, read_only);
  for (gsize i = 0; i < G_N_ELEMENTS (primaries); i++)
    {
      ChildPlan plan = { .gid = primaries[i], .supplementary = i == 0 ? (gid_t) -1 : nogroup->gr_gid,
                         .requests = "{\"execute\":\"status\",\"id\":1}\n"
                                     "{\"execute\":\"start\",\"arguments\":{\"vm\":\"web\"},\"id\":2}\n",
                         .lines = 2 };
      g_autofree char *output = NULL;
      pid_t pid;

      /* The socket is root:nogroup 0660: the kernel lets the child in through the group. */
      fixture->n_handled = 0;
      output = run_child (path, &plan, &pid);
      g_assert_cmpstr (output, ==,
                       "{\"return\":{\"command\":\"status\"},\"id\":1}\n"
                       "{\"error\":{\"class\":\"PermissionDenied\",\"desc\":\"'start' needs root: uid 65534 is a "
                       "member of group " NOGROUP_NAME ", which may only run status, list\"},\"id\":2}\n");
      g_assert_cmpuint (fixture->n_handled, ==, 1);
      g_assert_cmpint (fixture->last_peer.pid, ==, pid);
      g_assert_cmpuint (fixture->last_peer.uid, ==, NOBODY);
      g_assert_cmpuint (fixture->last_peer.gid, ==, primaries[i]);
      g_assert_false (fixture->last_peer.may_write);
    }
}

static void
test_may_run (void)
{
  static const char *const custom[] = { "list", NULL };
  static const char *const none[] = { NULL };
  ControlPeer root = { .pid = 1, .uid = 0, .gid = 0, .may_write = TRUE };
  ControlPeer member = { .pid = 2, .uid = 1000, .gid = 1000, .may_write = FALSE };

  g_assert_true (control_peer_may_run (&root, "start", NULL));
  g_assert_true (control_peer_may_run (&root, "shutdown-all", none));
  g_assert_true (control_peer_may_run (&root, "anything", custom));

  for (const char *const *c = (const char *const[]) { "list", "status", "events", "version", "logs", "image-info",
                                                      NULL };
       *c != NULL; c++)
    g_assert_true (control_peer_may_run (&member, *c, NULL));
  g_assert_false (control_peer_may_run (&member, "start", NULL));
  g_assert_false (control_peer_may_run (&member, "stop", NULL));
  g_assert_false (control_peer_may_run (&member, "qmp", NULL));
  g_assert_false (control_peer_may_run (&member, "", NULL));
  g_assert_false (control_peer_may_run (&member, "Status", NULL));
  g_assert_true (control_peer_may_run (&member, "list", custom));
  g_assert_false (control_peer_may_run (&member, "status", custom));
  g_assert_false (control_peer_may_run (&member, "list", none));
}

static void
test_error_names (void)
{
  g_assert_cmpstr (control_error_to_string (CONTROL_ERROR_UNREACHABLE), ==, "unreachable");
  g_assert_cmpstr (control_error_to_string (CONTROL_ERROR_IO), ==, "io");
  g_assert_cmpstr (control_error_to_string ((ControlError) 99), ==, "unknown");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func) g_test_add ("/control/" name, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("answer", test_answer);
  ADD ("arguments-absent", test_arguments_absent);
  ADD ("async-answer", test_async_answer);
  ADD ("error-reply", test_error_reply);
  ADD ("progress", test_progress);
  ADD ("big-answer", test_big_answer);
  ADD ("malformed", test_malformed);
  ADD ("long-lines", test_long_lines);
  ADD ("id-verbatim", test_id_verbatim);
  ADD ("slow-clients", test_slow_clients);
  ADD ("disconnect-before-answer", test_disconnect_before_answer);
  ADD ("free-in-handler", test_free_in_handler);
  ADD ("events", test_events);
  ADD ("client-events", test_client_events);
  ADD ("client-timeout", test_client_timeout);
  ADD ("live-socket", test_live_socket);
  ADD ("not-a-socket", test_not_a_socket);
  ADD ("socket-mode", test_socket_mode);
  ADD ("peer-refused", test_peer_refused);
  ADD ("peer-read-only", test_peer_read_only);
#undef ADD
  g_test_add_func ("/control/stale-socket", test_stale_socket);
  g_test_add_func ("/control/unreachable", test_unreachable);
  g_test_add_func ("/control/client-protocol", test_client_protocol);
  g_test_add_func ("/control/may-run", test_may_run);
  g_test_add_func ("/control/error-names", test_error_names);

  return g_test_run ();
}
