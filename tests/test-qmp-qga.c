/* test-qmp-qga.c: the guest agent ping (qmp/qga-ping.h): the scanner on its own, and
 * qga_ping_async() against a fake agent on a socketpair for the edge cases a real qemu-ga
 * does not produce on demand: stale replies and garbage before the sync reply, an error
 * answer, silence (cancelled), a closed channel.  The real qemu-ga is in
 * test-health-agent.c. */
#include <gio/gio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp/qga-ping.h"
#include "tests/test-util.h"

/* The scanner's next object as compact JSON, or NULL. */
static char *
next_text (QgaScanner *s)
{
  g_autoptr(JsonNode) node = qga_scanner_next (s);

  return node ? json_to_string (node, FALSE) : NULL;
}

static void
test_scanner (void)
{
  g_autoptr(QgaScanner) s = qga_scanner_new ();
  static const char stream[] =
    "{\"return\": 1}\n"                         /* before the delimiter: dropped */
    "\xff" "noise {\"error\": {\"desc\": \"a } in \\\"quotes\\\" {\"}}\n"
    "{broken json}\n"                           /* skipped */
    "{\"return\": {\"a\": [1, {\"b\": 2}]}}\r\n"
    "{\"return\": \"cut\xff" "{\"return\": 7}";
  g_autofree char *first = NULL, *second = NULL, *third = NULL;

  qga_scanner_wait_delimiter (s);
  /* Fed a byte at a time: objects may be split anywhere. */
  for (gsize i = 0; i + 1 < sizeof stream; i++)
    {
      qga_scanner_feed (s, stream + i, 1);
      if (first == NULL)
        first = next_text (s);
      else if (second == NULL)
        second = next_text (s);
      else if (third == NULL)
        third = next_text (s);
      else
        g_assert_null (next_text (s));
    }
  g_assert_cmpstr (first, ==, "{\"error\":{\"desc\":\"a } in \\\"quotes\\\" {\"}}");
  g_assert_cmpstr (second, ==, "{\"return\":{\"a\":[1,{\"b\":2}]}}");
  /* The object cut by a 0xFF is dropped; what follows the 0xFF counts. */
  g_assert_cmpstr (third, ==, "{\"return\":7}");
  g_assert_null (next_text (s));

  /* Nothing but noise while waiting: all of it dropped, nothing returned. */
  qga_scanner_wait_delimiter (s);
  qga_scanner_feed (s, "{\"return\": 5}\n", 14);
  g_assert_null (next_text (s));
  qga_scanner_feed (s, "\xff{\"return\": 6}\n", 15);
  g_free (first);
  first = next_text (s);
  g_assert_cmpstr (first, ==, "{\"return\":6}");
}

/* An object larger than QGA_OBJECT_MAX is dropped up to the next delimiter. */
static void
test_scanner_oversized (void)
{
  g_autoptr(QgaScanner) s = qga_scanner_new ();
  g_autofree char *big = g_strnfill (QGA_OBJECT_MAX + 10, 'x');
  g_autofree char *text = NULL;

  qga_scanner_feed (s, "{\"return\": \"", 12);
  qga_scanner_feed (s, big, strlen (big));
  g_assert_null (next_text (s));
  qga_scanner_feed (s, "\"}\n{\"return\": 1}\n", 17);
  g_assert_null (next_text (s));
  qga_scanner_feed (s, "\xff{\"return\": 2}\n", 15);
  text = next_text (s);
  g_assert_cmpstr (text, ==, "{\"return\":2}");
}

/* The fake agent: what it answers to the sync and to the ping. */
typedef struct
{
  int fd;
  const char *sync_reply;       /* ID stands for the sync's id; NULL: silence */
  const char *ping_reply;       /* NULL: close the channel */
  GString *got;                 /* every byte the client wrote */
} FakeAgent;

/* Reads one request line into got; FALSE on EOF. */
static gboolean
read_line (FakeAgent *a)
{
  char c;

  for (;;)
    {
      ssize_t n = read (a->fd, &c, 1);
      if (n <= 0)
        return FALSE;
      g_string_append_c (a->got, c);
      if (c == '\n')
        return TRUE;
    }
}

static void
write_text (int fd, const char *text)
{
  g_assert_cmpint (write (fd, text, strlen (text)), ==, (gssize) strlen (text));
}

static gpointer
fake_agent_run (gpointer data)
{
  FakeAgent *a = data;
  const char *id_text;
  g_autoptr(GString) reply = NULL;
  g_autofree char *id = NULL;

  if (!read_line (a))
    return NULL;
  if (a->sync_reply == NULL)
    {
      read_line (a);            /* silent until the client goes */
      return NULL;
    }
  id_text = strstr (a->got->str, "\"id\":");
  g_assert_nonnull (id_text);
  reply = g_string_new (a->sync_reply);
  id = g_strndup (id_text + 5, strspn (id_text + 5, "0123456789"));
  g_string_replace (reply, "ID", id, 0);
  write_text (a->fd, reply->str);
  if (!read_line (a))
    return NULL;
  if (a->ping_reply == NULL)
    {
      shutdown (a->fd, SHUT_RDWR);
      return NULL;
    }
  write_text (a->fd, a->ping_reply);
  read_line (a);                /* until the client closes */
  return NULL;
}

typedef struct
{
  gboolean done, ok;
  GError *error;
} PingResult;

static void
on_pinged (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  PingResult *r = data;

  r->ok = qga_ping_finish (result, &r->error);
  r->done = TRUE;
}

static void
cancel_now (gpointer data)
{
  g_cancellable_cancel (data);
}

/* One ping with sync id 4242 against a fake agent; cancel_after_ms > 0 cancels it then. */
static PingResult
ping_fake (FakeAgent *agent, guint cancel_after_ms, GString **out_got)
{
  int fds[2];
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GCancellable) cancel = g_cancellable_new ();
  GThread *thread;
  PingResult r = { 0 };

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), ==, 0);
  agent->fd = fds[1];
  agent->got = g_string_new (NULL);
  socket = g_socket_new_from_fd (fds[0], &error);
  g_assert_no_error (error);
  connection = g_socket_connection_factory_create_connection (socket);
  thread = g_thread_new ("fake-qga", fake_agent_run, agent);
  qga_ping_async (G_IO_STREAM (connection), 4242, cancel, on_pinged, &r);
  g_assert_false (r.done);      /* never from inside the call */
  if (cancel_after_ms > 0)       /* the caller's timeout; the only way these pings end */
    g_timeout_add_once (cancel_after_ms, cancel_now, cancel);
  test_wait_until (r.done, 10000, "the ping's end");
  g_assert_true (g_cancellable_is_cancelled (cancel) == (cancel_after_ms > 0));
  g_socket_close (socket, NULL);
  g_thread_join (thread);
  close (fds[1]);
  *out_got = agent->got;
  return r;
}

/* Stale answers (to an old ping, to an old sync with its own 0xFF), a parse error for our
 * 0xFF and noise all come before the reply to our sync: skipped, the ping succeeds. */
static void
test_ping_resync (void)
{
  FakeAgent agent = {
    .sync_reply = "{\"return\": {}}\n\xff{\"return\": 99}\n"
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n"
                  "garbage\n\xff{\"return\": ID}\n",
    .ping_reply = "{\"return\": {}}\n",
  };
  g_autoptr(GString) got = NULL;
  PingResult r = ping_fake (&agent, 0, &got);

  g_assert_no_error (r.error);
  g_assert_true (r.ok);
  g_assert_cmpstr (got->str, ==, "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":4242}}\n"
                                 "{\"execute\":\"guest-ping\"}\n");
}

static void
test_ping_error (void)
{
  FakeAgent agent = {
    .sync_reply = "\xff{\"return\": ID}\n",
    .ping_reply = "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"guest-ping is disabled\"}}\n",
  };
  g_autoptr(GString) got = NULL;
  PingResult r = ping_fake (&agent, 0, &got);

  g_assert_false (r.ok);
  g_assert_error (r.error, QMP_ERROR, QMP_ERROR_COMMAND);
  g_assert_cmpstr (r.error->message, ==, "CommandNotFound: guest-ping is disabled");
  g_clear_error (&r.error);
}

/* A reply to our sync id without the 0xFF before it is not taken: only a silence follows,
 * and the caller's timeout (here a cancel) ends the ping. */
static void
test_ping_silent_cancelled (void)
{
  FakeAgent agent = { .sync_reply = NULL };
  g_autoptr(GString) got = NULL;
  PingResult r = ping_fake (&agent, 200, &got);

  g_assert_false (r.ok);
  g_assert_error (r.error, QMP_ERROR, QMP_ERROR_CANCELLED);
  g_clear_error (&r.error);
}

static void
test_ping_undelimited_cancelled (void)
{
  FakeAgent agent = { .sync_reply = "{\"return\": ID}\n", .ping_reply = "{\"return\": {}}\n" };
  g_autoptr(GString) got = NULL;
  PingResult r = ping_fake (&agent, 300, &got);

  g_assert_error (r.error, QMP_ERROR, QMP_ERROR_CANCELLED);
  g_clear_error (&r.error);
  /* The ping was never sent. */
  g_assert_null (strstr (got->str, "guest-ping\""));
}

static void
test_ping_closed (void)
{
  FakeAgent agent = { .sync_reply = "\xff{\"return\": ID}\n", .ping_reply = NULL };
  g_autoptr(GString) got = NULL;
  PingResult r = ping_fake (&agent, 0, &got);

  g_assert_error (r.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_cmpstr (r.error->message, ==, "the agent channel closed");
  g_clear_error (&r.error);
}

static void
test_sync_id (void)
{
  gint64 a = qga_sync_id_new (), b = qga_sync_id_new ();

  g_assert_cmpint (a, >, 0);
  g_assert_cmpint (a, <=, G_GINT64_CONSTANT (1) << 53);
  g_assert_cmpint (a, !=, b);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/qmp-qga/scanner", test_scanner);
  g_test_add_func ("/qmp-qga/scanner-oversized", test_scanner_oversized);
  g_test_add_func ("/qmp-qga/ping-resync", test_ping_resync);
  g_test_add_func ("/qmp-qga/ping-error", test_ping_error);
  g_test_add_func ("/qmp-qga/ping-silent-cancelled", test_ping_silent_cancelled);
  g_test_add_func ("/qmp-qga/ping-undelimited-cancelled", test_ping_undelimited_cancelled);
  g_test_add_func ("/qmp-qga/ping-closed", test_ping_closed);
  g_test_add_func ("/qmp-qga/sync-id", test_sync_id);
  return g_test_run ();
}
