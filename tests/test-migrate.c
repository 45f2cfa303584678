/* test-migrate.c: live migration between real vmherdd, each in its own network namespace
 * ("hosts" a, b, c), joined through veths to a bridge in the test's own namespace, where a
 * pinger stands.  A guest printing a counter every 100 ms moves from a to b without a gap
 * or a reboot and keeps its MAC; each failure (a foreign certificate, a refusal, the
 * destination QEMU or vmherdd killed mid-stream, the link cut, an operator cancel) leaves
 * it running on a with nothing left on b; evacuate spreads three guests over two peers. */
#define _GNU_SOURCE 1   /* unshare() */
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <string.h>
#include <unistd.h>

#include "launcher/vm-config.h"
#include "net/net.h"
#include "tests/harness.h"
#include "tests/test-util.h"

#define GUEST_IP "10.89.0.50"

static char *pki;               /* the group's CA and host certificates */
static char *foreign_pki;       /* another CA: its certificates must be refused */
static int test_round;               /* one per test: interface names never collide with the
                                 * last test's, whose namespaces may still be going away */

static void
sh (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
sh (const char *format, ...)
{
  g_autofree char *command = NULL;
  va_list ap;

  va_start (ap, format);
  command = g_strdup_vprintf (format, ap);
  va_end (ap);
  const char *argv[] = { "/bin/sh", "-c", command, NULL };
  TestRun r = test_run (argv, NULL);
  if (r.status != 0)
    g_error ("`%s` failed (%d): %s", command, r.status, r.err);
  test_run_clear (&r);
}

static gboolean
sh_ok (const char *command)
{
  const char *argv[] = { "/bin/sh", "-c", command, NULL };
  TestRun r = test_run (argv, NULL);
  gboolean ok = r.status == 0;

  test_run_clear (&r);
  return ok;
}

static void
netns_del (gpointer name)
{
  g_autofree char *cmd = g_strdup_printf ("ip netns del %s", (char *) name);

  sh_ok (cmd);
  g_free (name);
}

static void
make_pki (void)
{
  g_autofree char *tool = test_src_path ("tools/vmherd-pki");

  if (pki != NULL)
    return;
  pki = g_dir_make_tmp ("vmherd-pki-XXXXXX", NULL);
  foreign_pki = g_dir_make_tmp ("vmherd-pki-XXXXXX", NULL);
  g_assert_nonnull (pki);
  g_assert_nonnull (foreign_pki);
  sh ("%s ca %s >/dev/null", tool, pki);
  sh ("%s host %s a 10.89.0.11 >/dev/null", tool, pki);
  sh ("%s host %s b 10.89.0.12 >/dev/null", tool, pki);
  sh ("%s host %s c 10.89.0.13 >/dev/null", tool, pki);
  sh ("%s ca %s >/dev/null", tool, foreign_pki);
  sh ("%s host %s b 10.89.0.12 >/dev/null", tool, foreign_pki);
}

/* Host `name` (a, b or c; address 10.89.0.1N) in its own namespace, its bridge brg0
 * plugged into the test's switch bridge; vmherdd started.  cert_dir: where its
 * certificate comes from (pki, or foreign_pki to play an impostor). */
static Host *
peer_host (const char *name, const char *peers, const char *cert_dir, const char *extra)
{
  int n = name[0] - 'a' + 1;
  g_autofree char *ns = g_strdup_printf ("vmh-mig%d-%d%s", (int) getpid (), test_round, name);
  g_autofree char *conf = NULL;
  Host *h;

  sh ("ip netns add %s", ns);
  g_test_queue_destroy (netns_del, g_strdup (ns));
  sh ("ip link add m%d%s type veth peer name up0 netns %s", test_round, name, ns);
  sh ("ip link set m%d%s master brs0 up", test_round, name);
  sh ("ip netns exec %1$s ip link set lo up && ip netns exec %1$s ip link add brg0 type bridge "
      "&& ip netns exec %1$s ip link set up0 master brg0 up && ip netns exec %1$s ip link set brg0 up "
      "&& ip netns exec %1$s ip addr add 10.89.0.1%2$d/24 dev brg0", ns, n);
  conf = g_strdup_printf ("metrics-listen = 10.89.0.1%2$d:9177\n[bridge brg0]\nuplink = up0\n"
                          "[peer]\nname = %1$s\nlisten = 10.89.0.1%2$d:7480\nca = %3$s/ca-cert.pem\n"
                          "cert = %4$s/%1$s-cert.pem\nkey = %4$s/%1$s-key.pem\n%5$s"
                          "[migration]\n%6$s", name, n, pki, cert_dir, peers, extra ? extra : "");
  h = host_new (conf);
  h->netns = g_strdup (ns);
  host_restart_daemon (h);
  return h;
}

static char *
guest_file (const char *ip)
{
  g_autofree char *kernel = NULL, *initrd = NULL;

  g_assert_true (test_require_guest (&kernel, &initrd));
  return g_strdup_printf ("[vm]\nmemory = 256M\n[kernel]\npath = %s\ninitrd = %s\n"
                          "append = console=ttyS0 quiet vmherd.ip=%s/24 vmherd.heartbeat=100\n"
                          "[net lan]\nbridge = brg0\n[health]\npanic = none\n", kernel, initrd, ip);
}

static char *
serial_log (Host *h, const char *vm)
{
  g_autofree char *path = g_strdup_printf ("%s/log/%s.serial.log", h->dir, vm);
  g_autofree char *text = NULL;

  return g_file_get_contents (path, &text, NULL, NULL) ? g_steal_pointer (&text) : g_strdup ("");
}

/* The last (or first) complete "vmherd-heartbeat N" line of a serial log; 0 when none. */
static gint64
heartbeat (const char *log, gboolean last)
{
  g_auto(GStrv) lines = g_strsplit (log, "\n", -1);
  gint64 found = 0;
  guint n = g_strv_length (lines);

  /* The final element has no newline yet: skip it. */
  for (guint i = 0; i + 1 < n; i++)
    {
      const char *l = strstr (lines[i], "vmherd-heartbeat ");
      gint64 v;
      if (l == NULL || !g_ascii_string_to_signed (g_strstrip (lines[i]) + (l - lines[i]) + 17, 10, 1, G_MAXINT64, &v, NULL))
        continue;
      found = v;
      if (!last)
        break;
    }
  return found;
}

static gboolean
heartbeat_past (Host *h, const char *vm, gint64 n)
{
  g_autofree char *log = serial_log (h, vm);

  return heartbeat (log, TRUE) > n;
}

/* Has the guest's shell shown its first prompt (input typed earlier would be flushed when
 * it sets up the terminal)? */
static gboolean
prompt_shown (Host *h, const char *vm)
{
  g_autofree char *log = serial_log (h, vm);

  return strstr (log, "/ # ") != NULL;
}

/* `vmherd status NAME --json` parsed, or NULL when the daemon does not know the VM. */
static JsonObject *
status (Host *h, const char *vm)
{
  TestRun r = test_run_vmherd (h->config, NULL, "status", vm, "--json", NULL);
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *o = NULL;

  if (r.status == 0 && json_parser_load_from_data (parser, r.out, -1, NULL))
    o = json_object_ref (json_node_get_object (json_parser_get_root (parser)));
  test_run_clear (&r);
  return o;
}

/* Whether h's vmherdd knows vm at all. */
static gboolean
knows (Host *h, const char *vm)
{
  g_autoptr(JsonObject) o = status (h, vm);

  return o != NULL;
}

static char *
state_of (Host *h, const char *vm)
{
  g_autoptr(JsonObject) o = status (h, vm);

  return o ? g_strdup (json_object_get_string_member (o, "state")) : g_strdup ("unknown");
}

static void
assert_file (Host *h, const char *file, gboolean exists)
{
  g_autofree char *path = g_build_filename (h->dir, "vms.d", file, NULL);

  if (g_file_test (path, G_FILE_TEST_EXISTS) != exists)
    g_error ("%s should %sexist", path, exists ? "" : "not ");
}

/* Nothing of vm on h: not defined, no file, no incoming file, no QEMU, no tap. */
static void
assert_nothing_left (Host *h, const char *vm)
{
  g_autofree char *dot = g_strdup_printf (".%s.conf.incoming", vm);
  g_autofree char *file = g_strdup_printf ("%s.conf", vm);
  g_autofree char *tap = net_tap_name (vm, "lan");
  g_autofree char *cmd = g_strdup_printf ("ip netns exec %s ip link show %s 2>/dev/null", h->netns, tap);
  g_autofree char *pid = g_strdup_printf ("%s/run/vm/%s/pid", h->dir, vm);
  g_autofree char *run = g_strdup_printf ("%s/run/vm/%s", h->dir, vm);

  test_wait_until (!knows (h, vm), 30000, "the destination to forget the VM");
  assert_file (h, file, FALSE);
  assert_file (h, dot, FALSE);
  test_wait_until (!sh_ok (cmd), 10000, "the destination tap to go");
  if (g_file_test (pid, G_FILE_TEST_EXISTS))
    {
      g_autofree char *text = test_read_file (pid);
      g_assert_false (test_process_alive ((pid_t) g_ascii_strtoll (text, NULL, 10)));
    }
  (void) run;
}

/* The guest still runs on h and its counter still counts. */
static void
assert_still_running (Host *h, const char *vm)
{
  g_autofree char *log = serial_log (h, vm);
  g_autofree char *state = NULL;
  gint64 now = heartbeat (log, TRUE);

  test_wait_until (g_strcmp0 ((g_free (state), state = state_of (h, vm)), "running") == 0, 30000,
                   "the guest to be running on the source");
  test_wait_until (heartbeat_past (h, vm, now + 3), 30000, "the guest's counter to go on");
}

/* `vmherd migrate VM TO --json` in the background; its stdout read line by line. */
typedef struct
{
  GSubprocess *process;
  GDataInputStream *out;
} Migration;

static Migration *
migrate_begin (Host *h, const char *vm, const char *to)
{
  g_autofree char *bin = test_build_path ("vmherd");
  g_autoptr(GError) error = NULL;
  Migration *m = g_new0 (Migration, 1);

  m->process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error,
                                 bin, "--config", h->config, "migrate", vm, to, "--json", NULL);
  g_assert_no_error (error);
  m->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (m->process));
  return m;
}

/* Blocks until a progress line shows bytes going over. */
static void
migrate_wait_streaming (Migration *m)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *line = g_data_input_stream_read_line (m->out, NULL, NULL, &error);
      g_assert_no_error (error);
      if (line == NULL)
        g_error ("vmherd migrate ended before any data went over");
      if (strstr (line, "\"status\":\"active\"") != NULL && strstr (line, "\"transferred\":0,") == NULL)
        return;
    }
}

/* Waits for the end: exit status, stdout rest and stderr. */
static TestRun
migrate_end (Migration *m)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *err = NULL;
  TestRun r = { 0 };
  GString *out = g_string_new (NULL);
  char *line;

  while ((line = g_data_input_stream_read_line (m->out, NULL, NULL, NULL)) != NULL)
    {
      g_string_append_printf (out, "%s\n", line);
      g_free (line);
    }
  g_assert_true (g_subprocess_communicate_utf8 (m->process, NULL, NULL, NULL, &err, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (m->process));
  r.status = g_subprocess_get_exit_status (m->process);
  r.out = g_string_free (out, FALSE);
  r.err = g_steal_pointer (&err);
  g_object_unref (m->out);
  g_object_unref (m->process);
  g_free (m);
  return r;
}

/* The migration in the background ended as a failure at step, saying why; the guest
 * runs on a. */
static void
expect_failed (Migration *m, const char *step, const char *why, Host *a, const char *vm)
{
  TestRun r = migrate_end (m);
  g_autofree char *what = g_strdup_printf ("migration of '%s' to b failed at step '%s': %s", vm, step, why);

  g_test_message ("%s", r.err);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, what));
  g_assert_nonnull (strstr (r.err, "the guest keeps running on this host"));
  test_run_clear (&r);
  assert_still_running (a, vm);
}

static pid_t
qemu_pid (Host *h, const char *vm)
{
  g_autofree char *path = g_strdup_printf ("%s/run/vm/%s/pid", h->dir, vm);
  g_autofree char *text = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return 0;
  return (pid_t) g_ascii_strtoll (text, NULL, 10);
}

static void
switch_up (void)
{
  static gboolean done;

  test_round++;
  if (done)
    return;
  done = TRUE;
  sh ("ip link set lo up && ip link add brs0 type bridge && ip link set brs0 up "
      "&& ip addr add 10.89.0.1/24 dev brs0");
}

/* The host's Prometheus metrics (metrics-listen on its bridge address, reached through
 * the switch). */
static char *
metrics (Host *h)
{
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 30, NULL);
  g_autofree char *conf = test_read_file (h->config);
  const char *listen = strstr (conf, "metrics-listen = ");
  g_autofree char *uri = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = NULL;

  g_assert_nonnull (listen);
  uri = g_strdup_printf ("http://%.*s/metrics", (int) strcspn (listen + 17, "\n"), listen + 17);
  msg = soup_message_new ("GET", uri);
  soup_session_set_proxy_resolver (session, NULL);   /* never through $http_proxy */
  body = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  return g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
}

static void
test_live_migration (void)
{
  g_autofree char *guest = NULL, *mac = NULL, *src_log = NULL, *dst_log = NULL;
  g_autofree char *ping_out = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(JsonObject) st = NULL;
  g_autoptr(GSubprocess) ping = NULL;
  g_autoptr(GError) error = NULL;
  Host *a, *b;
  TestRun r;
  gint64 last_src, first_dst, downtime, last_seq = 0, received = 0;
  const char *p;

  g_autofree char *gk = NULL, *gi = NULL;

  if (!test_require_guest (&gk, &gi))
    return;
  switch_up ();
  make_pki ();
  a = peer_host ("a", "host = b 10.89.0.12:7480\n", pki, NULL);
  b = peer_host ("b", "host = a 10.89.0.11:7480\n", pki, NULL);
  guest = guest_file (GUEST_IP);
  host_add_vm (a, "g", guest);
  r = test_run_vmherd (a->config, NULL, "reload", NULL);
  test_run_clear (&r);
  start_vm (a, "g");
  test_wait_until (heartbeat_past (a, "g", 20), 120000, "the guest's counter on a");
  sh ("ping -n -q -c 1 -W 5 " GUEST_IP " >/dev/null || ping -n -q -c 1 -W 5 " GUEST_IP " >/dev/null");

  /* A ping every 500 ms from the third namespace across the whole migration (the pause
   * is tens of ms on an idle machine, a few hundred on a loaded one). */
  ping = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, "ping", "-n", "-i", "0.5",
                           GUEST_IP, NULL);
  g_assert_no_error (error);
  r = test_run_vmherd (a->config, NULL, "migrate", "g", "b", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_test_message ("%s", r.err);
  g_assert_true (g_str_has_prefix (r.out, "g: migrated to b in "));
  /* Progress is polled every 100 ms while the stream is set up: a migration that took a
   * second showed some (the time includes the preparation, a few hundred ms at most). */
  if (g_ascii_strtod (r.out + strlen ("g: migrated to b in "), NULL) >= 1.0)
    g_assert_nonnull (strstr (r.err, "g -> b: active, pass "));
  p = strstr (r.out, "downtime ");
  g_assert_nonnull (p);
  downtime = g_ascii_strtoll (p + 9, NULL, 10);
  g_test_message ("%s", r.out);
  test_run_clear (&r);

  /* The guest runs on b, from b's vm-dir; a has forgotten it. */
  st = status (b, "g");
  g_assert_nonnull (st);
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "running");
  assert_file (b, "g.conf", TRUE);
  assert_file (a, "g.conf", FALSE);
  test_wait_until (!knows (a, "g"), 30000, "a to forget the guest");

  /* Same MAC; the counter goes on without a reboot and without a gap larger than the
   * pause: b's first heartbeat follows a's last. */
  mac = vm_derive_mac ("g", "lan");
  {
    g_autoptr(JsonNode) node = json_node_init_object (json_node_alloc (), st);
    g_autofree char *text = json_to_string (node, FALSE);
    g_assert_nonnull (strstr (text, mac));
  }
  test_wait_until (heartbeat_past (b, "g", 0), 30000, "the counter on b");
  src_log = serial_log (a, "g");
  dst_log = serial_log (b, "g");
  last_src = heartbeat (src_log, TRUE);
  first_dst = heartbeat (dst_log, FALSE);
  g_test_message ("counter: last on a %" G_GINT64_FORMAT ", first on b %" G_GINT64_FORMAT
                  ", downtime %" G_GINT64_FORMAT " ms", last_src, first_dst, downtime);
  g_assert_null (strstr (dst_log, "vmherd-guest: ready"));
  g_assert_cmpint (first_dst, >, last_src);
  g_assert_cmpint (first_dst - last_src, <=, 2 + downtime / 100);

  /* Both ends count it; the source knows how long it took. */
  {
    g_autofree char *ma = metrics (a);
    g_autofree char *mb = metrics (b);
    g_assert_nonnull (strstr (ma, "vmherd_migrations_total{direction=\"out\",result=\"ok\"} 1\n"));
    g_assert_nonnull (strstr (ma, "vmherd_migration_last_duration_seconds "));
    g_assert_nonnull (strstr (mb, "vmherd_migrations_total{direction=\"in\",result=\"ok\"} 1\n"));
  }

  /* The ping lost at most one packet: of the requests up to the last answered one (the
   * one in flight when ping is stopped is not lost), one at most had no reply. */
  test_wait_until (heartbeat_past (b, "g", first_dst + 20), 30000, "two seconds of the guest on b");
  g_subprocess_send_signal (ping, SIGINT);
  g_assert_true (g_subprocess_communicate_utf8 (ping, NULL, NULL, &ping_out, NULL, &error));
  lines = g_strsplit (ping_out, "\n", -1);
  for (guint n = 0; lines[n] != NULL; n++)
    if (strstr (lines[n], " bytes from ") != NULL && strstr (lines[n], "(DUP!)") == NULL
        && (p = strstr (lines[n], " icmp_seq=")) != NULL)
      {
        last_seq = MAX (last_seq, g_ascii_strtoll (p + 10, NULL, 10));
        received++;
      }
  g_test_message ("ping: %" G_GINT64_FORMAT " answered of the first %" G_GINT64_FORMAT,
                  received, last_seq);
  g_assert_cmpint (last_seq, >, 3);
  g_assert_cmpint (last_seq - received, <=, 1);
}


/* Accepts one connection and reads it to its end (a migration stream nobody loads). */
static gpointer
sink_thread (gpointer data)
{
  GSocket *listener = data;
  g_autoptr(GSocket) conn = g_socket_accept (listener, NULL, NULL);
  char buf[65536];

  while (conn != NULL && g_socket_receive (conn, buf, sizeof buf, NULL, NULL) > 0)
    ;
  return NULL;
}

static gboolean
qmp_says (Host *h, const char *vm, const char *command, const char *text)
{
  TestRun r = test_run_vmherd (h->config, NULL, "qmp", vm, command, NULL);
  gboolean found = r.status == 0 && strstr (r.out, text) != NULL;

  test_run_clear (&r);
  return found;
}

/* The source vmherdd died after a switchover: the next one finds the QEMU in postmigrate
 * (made here by hand: a plain migration into a sink, through QMP directly since the
 * daemon is down), quits it and moves the file aside, so it never runs the guest again. */
static void
check_postmigrate_adoption (Host *a, const char *vm)
{
  g_autoptr(GSocket) listener = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string ("10.89.0.1");
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (inet, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autofree char *uri = NULL, *aside = g_strdup_printf (".%s.conf.migrated", vm);
  g_autofree char *file = g_strdup_printf ("%s.conf", vm);
  GThread *sink;
  pid_t pid = qemu_pid (a, vm);
  TestRun r;

  g_assert_true (g_socket_bind (listener, any, TRUE, NULL));
  g_assert_true (g_socket_listen (listener, NULL));
  bound = g_socket_get_local_address (listener, NULL);
  uri = g_strdup_printf ("uri=tcp:10.89.0.1:%u", g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  sink = g_thread_new ("sink", sink_thread, listener);
  host_kill_daemon (a);
  /* Plain TCP, no return path: the earlier migrations' settings stay in QEMU. */
  r = test_run_vmherd (a->config, NULL, "qmp", vm, "migrate-set-parameters", "tls-creds=", NULL);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
  r = test_run_vmherd (a->config, NULL, "qmp", vm, "migrate-set-capabilities",
                       "capabilities=[{\"capability\":\"return-path\",\"state\":false}]", NULL);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
  r = test_run_vmherd (a->config, NULL, "qmp", vm, "migrate", uri, NULL);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
  test_wait_until (qmp_says (a, vm, "query-status", "postmigrate"), 60000, "the QEMU to reach postmigrate");
  g_thread_join (sink);
  host_restart_daemon (a);
  test_wait_until (!test_process_alive (pid), 30000, "the postmigrate QEMU to be quit");
  assert_file (a, file, FALSE);
  assert_file (a, aside, TRUE);
  test_wait_until (!knows (a, vm), 30000, "a to forget the guest");
}

/* One guest on a; each fault in turn; after each the guest runs on a, b has nothing. */
static void
test_failures_keep_the_guest (void)
{
  g_autofree char *guest = NULL;
  Host *a, *b, *impostor;
  Migration *m;
  TestRun r;
  pid_t pid;

  g_autofree char *gk = NULL, *gi = NULL;

  if (!test_require_guest (&gk, &gi))
    return;
  switch_up ();
  make_pki ();
  /* 40 Mbit/s: the stream takes seconds, so a fault lands in the middle of it. */
  a = peer_host ("a", "host = b 10.89.0.12:7480\nhost = c 10.89.0.13:7480\n", pki,
                 "bandwidth = 40\nstall-timeout = 8s\n");
  b = peer_host ("b", "host = a 10.89.0.11:7480\n", pki, NULL);
  impostor = peer_host ("c", "host = a 10.89.0.11:7480\n", foreign_pki, NULL);
  guest = guest_file ("10.89.0.51");
  host_add_vm (a, "f", guest);
  r = test_run_vmherd (a->config, NULL, "reload", NULL);
  test_run_clear (&r);
  start_vm (a, "f");
  test_wait_until (heartbeat_past (a, "f", 5), 120000, "the guest's counter on a");

  /* A peer whose certificate comes from another CA: refused at connect. */
  r = test_run_vmherd (a->config, NULL, "migrate", "f", "c", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, "migration of 'f' to c failed at step 'connect': "));
  g_assert_nonnull (strstr (r.err, "the guest keeps running on this host"));
  test_run_clear (&r);
  assert_still_running (a, "f");
  assert_nothing_left (impostor, "f");

  /* The destination refuses: it has a VM of that name already. */
  host_add_vm (b, "f", guest);
  r = test_run_vmherd (b->config, NULL, "reload", NULL);
  test_run_clear (&r);
  r = test_run_vmherd (a->config, NULL, "migrate", "f", "b", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, "migration of 'f' to b failed at step 'prepare': b refused: "
                                   "a VM named 'f' is already defined on b"));
  test_run_clear (&r);
  assert_still_running (a, "f");
  {
    g_autofree char *path = g_strdup_printf ("%s/vms.d/f.conf", b->dir);
    g_assert_cmpint (unlink (path), ==, 0);
  }
  r = test_run_vmherd (b->config, NULL, "reload", NULL);
  test_run_clear (&r);
  assert_nothing_left (b, "f");

  /* The destination QEMU killed mid-stream. */
  m = migrate_begin (a, "f", "b");
  migrate_wait_streaming (m);
  pid = qemu_pid (b, "f");
  g_assert_cmpint (pid, >, 0);
  kill (pid, SIGKILL);
  expect_failed (m, "transfer", "QEMU: ", a, "f");
  assert_nothing_left (b, "f");

  /* The destination vmherdd killed mid-stream: its QEMU goes with the link. */
  m = migrate_begin (a, "f", "b");
  migrate_wait_streaming (m);
  pid = qemu_pid (b, "f");
  host_kill_daemon (b);
  expect_failed (m, "transfer", "the link to b closed", a, "f");
  test_wait_until (!test_process_alive (pid), 30000, "the orphaned destination QEMU to exit");
  host_restart_daemon (b);
  assert_nothing_left (b, "f");

  /* The link cut (b's uplink down): a stalled stream is given up after stall-timeout. */
  m = migrate_begin (a, "f", "b");
  migrate_wait_streaming (m);
  sh ("ip netns exec %s ip link set up0 down", b->netns);
  expect_failed (m, "transfer", "no data went over for 8 s", a, "f");
  /* Back up: b learns that the source gave up (the closed connections) and cleans up. */
  sh ("ip netns exec %s ip link set up0 up", b->netns);
  assert_nothing_left (b, "f");

  /* An operator's cancel. */
  m = migrate_begin (a, "f", "b");
  migrate_wait_streaming (m);
  r = test_run_vmherd (a->config, NULL, "migrate", "--cancel", "f", NULL);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
  expect_failed (m, "transfer", "cancelled by the operator", a, "f");
  assert_nothing_left (b, "f");
  assert_file (a, "f.conf", TRUE);

  check_postmigrate_adoption (a, "f");
}


static int
serial_connect (Host *h, const char *vm)
{
  g_autofree char *path = g_strdup_printf ("%s/run/vm/%s/serial.sock", h->dir, vm);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpuint (strlen (path), <, sizeof addr.sun_path);
  strcpy (addr.sun_path, path);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  return fd;
}

/* Types command on the guest's serial console, then has it print the MD5 of /dev/vda as
 * read from the disk itself (caches dropped first); returns the 32 hex digits. */
static char *
guest_md5 (Host *h, const char *vm, const char *before)
{
  g_autofree char *command = g_strdup_printf ("%s sync; echo 3 > /proc/sys/vm/drop_caches; "
                                              "echo \"vmherd-md5 $(md5sum /dev/vda | cut -c1-32) done\"\n",
                                              before);
  g_autofree char *got = NULL;
  g_autoptr(GRegex) re = g_regex_new ("vmherd-md5 ([0-9a-f]{32}) done\r?\n", 0, 0, NULL);
  g_autoptr(GMatchInfo) match = NULL;
  int fd = serial_connect (h, vm);

  g_assert_cmpint (write (fd, command, strlen (command)), ==, (gssize) strlen (command));
  got = read_until (fd, " done\r\n", 120000);
  close (fd);
  g_assert_true (g_regex_match (re, got, 0, &match));
  return g_match_info_fetch (match, 1);
}

static char *
file_md5 (const char *path)
{
  g_autofree char *data = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  return g_compute_checksum_for_data (G_CHECKSUM_MD5, (const guchar *) data, len);
}

/* A disk that only the source has: the destination makes it, the blocks go over NBD,
 * and what the guest wrote before is what it reads there. */
static void
test_copy_storage (void)
{
  g_autofree char *gk = NULL, *gi = NULL, *guest = NULL, *src = NULL, *dst = NULL;
  g_autofree char *before = NULL, *after = NULL, *on_disk = NULL;
  Host *a, *b;
  TestRun r;

  if (!test_require_guest (&gk, &gi))
    return;
  switch_up ();
  make_pki ();
  a = peer_host ("a", "host = b 10.89.0.12:7480\n", pki, NULL);
  b = peer_host ("b", "host = a 10.89.0.11:7480\n", pki, NULL);
  /* A relative image is in each host's own vm-dir: local storage. */
  src = g_strdup_printf ("%s/vms.d/s-data.raw", a->dir);
  dst = g_strdup_printf ("%s/vms.d/s-data.raw", b->dir);
  sh ("head -c 16777216 /dev/urandom > %s && chown nobody %s", src, src);
  guest = g_strdup_printf ("[vm]\nmemory = 256M\n[kernel]\npath = %s\ninitrd = %s\n"
                           "append = console=ttyS0 quiet vmherd.heartbeat=100\n"
                           "[disk data]\nimage = s-data.raw\nformat = raw\n[health]\npanic = none\n", gk, gi);
  host_add_vm (a, "s", guest);
  r = test_run_vmherd (a->config, NULL, "reload", NULL);
  test_run_clear (&r);
  start_vm (a, "s");
  test_wait_until (heartbeat_past (a, "s", 5), 120000, "the guest's counter on a");
  test_wait_until (prompt_shown (a, "s"), 60000, "the guest's shell on a");
  before = guest_md5 (a, "s", "dd if=/dev/urandom of=/dev/vda bs=1M count=2 seek=4 conv=fsync 2>/dev/null;");

  /* Without --copy-storage, b has no such image: refused, nothing made. */
  r = test_run_vmherd (a->config, NULL, "migrate", "s", "b", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, "failed at step 'prepare': b refused: "));
  g_assert_nonnull (strstr (r.err, "s-data.raw"));
  test_run_clear (&r);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
  assert_nothing_left (b, "s");

  r = test_run_vmherd (a->config, NULL, "migrate", "s", "b", "--copy-storage", NULL);
  g_test_message ("%s", r.out);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (g_str_has_prefix (r.out, "s: migrated to b in "));
  test_run_clear (&r);
  g_assert_true (g_file_test (dst, G_FILE_TEST_EXISTS));
  after = guest_md5 (b, "s", "");
  g_assert_cmpstr (after, ==, before);
  on_disk = file_md5 (dst);
  g_assert_cmpstr (on_disk, ==, before);
}

static void
test_evacuate (void)
{
  Host *a, *b, *c;
  TestRun r;
  guint on_b = 0, on_c = 0;
  const char *names[] = { "e1", "e2", "e3" };

  g_autofree char *gk = NULL, *gi = NULL;

  if (!test_require_guest (&gk, &gi))
    return;
  switch_up ();
  make_pki ();
  a = peer_host ("a", "host = b 10.89.0.12:7480\nhost = c 10.89.0.13:7480\n", pki, NULL);
  b = peer_host ("b", "host = a 10.89.0.11:7480\nhost = c 10.89.0.13:7480\n", pki, NULL);
  c = peer_host ("c", "host = a 10.89.0.11:7480\nhost = b 10.89.0.12:7480\n", pki, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *ip = g_strdup_printf ("10.89.0.6%u", i);
      g_autofree char *guest = guest_file (ip);
      host_add_vm (a, names[i], guest);
    }
  r = test_run_vmherd (a->config, NULL, "reload", NULL);
  test_run_clear (&r);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    start_vm (a, names[i]);
  r = test_run_vmherd (a->config, NULL, "evacuate", NULL);
  g_test_message ("%s%s", r.out, r.err);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "3 moved, 0 stayed"));
  test_run_clear (&r);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *sb = state_of (b, names[i]);
      g_autofree char *sc = state_of (c, names[i]);
      on_b += strcmp (sb, "running") == 0;
      on_c += strcmp (sc, "running") == 0;
      test_wait_until (!knows (a, names[i]), 30000, "a to forget the guest");
    }
  g_assert_cmpuint (on_b + on_c, ==, 3);
  g_assert_cmpuint (on_b, >=, 1);
  g_assert_cmpuint (on_c, >=, 1);
}

static void
test_no_namespace (void)
{
  test_skip_or_fail ("VMHERD_TEST_REQUIRE_NETNS", "cannot create a network namespace (needs root)");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* The test's own namespace is the switch between the hosts. */
  if (unshare (CLONE_NEWNET) < 0)
    {
      g_test_add_func ("/migrate/live", test_no_namespace);
      return g_test_run ();
    }
  g_test_add_func ("/migrate/live", test_live_migration);
  g_test_add_func ("/migrate/failures-keep-the-guest", test_failures_keep_the_guest);
  g_test_add_func ("/migrate/copy-storage", test_copy_storage);
  g_test_add_func ("/migrate/evacuate", test_evacuate);
  return g_test_run ();
}
