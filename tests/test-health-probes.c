/* test-health-probes.c: [health] probes run by a real vmherdd against BIOS-only guests
 * (64 MB, no disk: QEMU is up in about 0.1 s): exec probes that pass, fail, hang and see
 * %n; action=restart ending the run with the probe's reason; tcp and udp probes against a
 * listener and a responder in this process on 127.0.0.1, with a proxy set in vmherdd's
 * environment that they must not use.
 *
 * Waiting is done on the daemon: each poll a `status` call on the control socket (or
 * PROBE lines of the `events` stream), never a sleep. */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

#include "launcher/control-proto.h"
#include "tests/harness.h"
#include "tests/test-util.h"

#define CALL_TIMEOUT_MS 30000
#define WAIT_MS 30000

/* A BIOS guest with a [health] section holding probes (and fast, lenient QMP checks). */
#define BIOS "[vm]\nmemory = 64M\npowerdown-timeout = 200ms\n" \
             "[health]\npanic = none\nqmp-interval = 1s\nqmp-timeout = 5s\n"

static JsonObject *
vm_status (ControlClient *ctl, const char *vm)
{
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(GError) error = NULL;
  JsonNode *ret;
  JsonObject *o;

  json_object_set_string_member (args, "vm", vm);
  ret = control_client_call (ctl, "status", args, CALL_TIMEOUT_MS, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (ret));
  o = json_object_ref (json_node_get_object (ret));
  json_node_unref (ret);
  return o;
}

/* Probe i's member (a string, "" when null) in a fresh `status`. */
static char *
probe_member (ControlClient *ctl, const char *vm, guint i, const char *member)
{
  g_autoptr(JsonObject) o = vm_status (ctl, vm);
  JsonArray *probes = json_object_get_array_member (o, "probes");
  JsonObject *p = json_array_get_object_element (probes, i);

  if (json_object_get_null_member (p, member))
    return g_strdup ("");
  return g_strdup (json_object_get_string_member (p, member));
}

static gboolean
probe_is (ControlClient *ctl, const char *vm, guint i, const char *state)
{
  g_autofree char *now = probe_member (ctl, vm, i, "state");

  return strcmp (now, state) == 0;
}

static char *
vm_member (ControlClient *ctl, const char *vm, const char *member)
{
  g_autoptr(JsonObject) o = vm_status (ctl, vm);

  if (json_object_get_null_member (o, member))
    return g_strdup ("");
  return g_strdup (json_object_get_string_member (o, member));
}

static gint64
vm_restarts (ControlClient *ctl, const char *vm)
{
  g_autoptr(JsonObject) o = vm_status (ctl, vm);

  return json_object_get_int_member (o, "restarts");
}

static ControlClient *
connect_control (Host *h)
{
  g_autoptr(GError) error = NULL;
  ControlClient *ctl = control_client_connect (h->socket, &error);

  g_assert_no_error (error);
  return ctl;
}

static void
test_exec_report (void)
{
  Host *h;
  g_autoptr(ControlClient) ctl = NULL;
  g_autoptr(ControlClient) events = NULL;
  g_autoptr(JsonNode) sub = NULL;
  g_autoptr(JsonObject) st = NULL, failing = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *err = NULL;
  TestRun r;

  if (test_require_qemu () == NULL)
    return;
  h = host_start ("ioc", BIOS
                  "probe = exec:/bin/true interval=200ms grace=0\n"
                  "probe = \"exec:/bin/sh -c 'test %n = ioc'\" interval=200ms grace=0 failures=1 action=report\n"
                  "probe = exec:/bin/false interval=200ms grace=0 failures=2 action=report\n"
                  "probe = \"exec:/bin/sleep 60\" interval=500ms timeout=300ms grace=0 failures=1 action=report\n",
                  NULL);
  ctl = connect_control (h);
  events = connect_control (h);
  sub = control_client_call (events, "events", NULL, CALL_TIMEOUT_MS, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  start_vm (h, "ioc");

  failing = host_expect_event (events, WAIT_MS, "PROBE", "probe", "exec:/bin/false", "state",
                               "failing", NULL);
  g_assert_cmpstr (json_object_get_string_member (failing, "reason"), ==,
                   "failed 2 times in a row (exited with status 1)");
  test_wait_until (probe_is (ctl, "ioc", 0, "ok"), WAIT_MS, "exec:/bin/true ok");
  test_wait_until (probe_is (ctl, "ioc", 1, "ok"), WAIT_MS, "%n replaced by ioc");
  test_wait_until (probe_is (ctl, "ioc", 3, "failing"), WAIT_MS, "the hanging command failing");
  err = probe_member (ctl, "ioc", 3, "last-error");
  g_assert_cmpstr (err, ==, "timed out after 300 ms, killed");
  g_clear_pointer (&err, g_free);
  err = probe_member (ctl, "ioc", 2, "last-error");
  g_assert_cmpstr (err, ==, "exited with status 1");

  /* Reported only: the guest runs on, and `list` says why it is not healthy. */
  st = vm_status (ctl, "ioc");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "running");
  g_assert_cmpint (json_object_get_int_member (st, "restarts"), ==, 0);
  g_assert_cmpstr (json_object_get_string_member (st, "health"), ==, "probe-failing");
  r = test_run_vmherd (h->config, NULL, "list", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "probe-failing"));
  test_run_clear (&r);
  r = test_run_vmherd (h->config, NULL, "status", "ioc", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "exec:/bin/false (exited with status 1)"));
  test_run_clear (&r);
}

/* Has the last run of ioc ended with a failure whose reason starts with prefix? */
static gboolean
restarted_by (ControlClient *ctl, const char *prefix)
{
  g_autofree char *failure = vm_member (ctl, "ioc", "last-failure");

  return g_str_has_prefix (failure, prefix);
}

static void
test_exec_restart (void)
{
  Host *h;
  g_autoptr(ControlClient) ctl = NULL;
  g_autoptr(JsonObject) st = NULL;

  if (test_require_qemu () == NULL)
    return;
  h = host_start ("ioc", BIOS "probe = exec:/bin/false failures=2 interval=200ms grace=0 action=restart\n",
                  NULL);
  ctl = connect_control (h);
  start_vm (h, "ioc");
  test_wait_until (restarted_by (ctl, "probe exec:/bin/false failed 2 times (exited with status 1)"),
                   WAIT_MS, "the run ended by the probe");
  st = vm_status (ctl, "ioc");
  g_assert_cmpstr (json_object_get_string_member (st, "restart-policy"), ==, "on-failure");
  test_wait_until (vm_restarts (ctl, "ioc") >= 1, WAIT_MS, "a restart after the probe failure");
}

static gint64
probe_int (ControlClient *ctl, const char *vm, guint i, const char *member)
{
  g_autoptr(JsonObject) o = vm_status (ctl, vm);
  JsonObject *p = json_array_get_object_element (json_object_get_array_member (o, "probes"), i);

  return json_object_get_int_member (p, member);
}

/* The grace period is a start period: checks run from the start, failures in it are not
 * counted until the first success, which ends it.  A probe on a file's existence, with
 * grace=1h, so nothing here depends on time. */
static void
test_grace (void)
{
  Host *h;
  g_autoptr(ControlClient) ctl = NULL;
  g_autofree char *conf = NULL, *err = NULL, *flag = NULL, *reason = NULL;

  if (test_require_qemu () == NULL)
    return;
  h = host_new (NULL);
  flag = g_build_filename (h->dir, "up", NULL);
  conf = g_strdup_printf (BIOS "probe = \"exec:/bin/test -e %s\" interval=200ms grace=1h failures=1 action=restart\n",
                          flag);
  host_add_vm (h, "ioc", conf);
  host_restart_daemon (h);
  ctl = connect_control (h);
  start_vm (h, "ioc");

  /* Booting: checks run and fail, none counted, nothing restarted. */
  test_wait_until (probe_int (ctl, "ioc", 0, "checks") >= 3, WAIT_MS, "three checks in the grace period");
  g_assert_true (probe_is (ctl, "ioc", 0, "pending"));
  g_assert_cmpint (probe_int (ctl, "ioc", 0, "failures"), ==, 0);
  err = probe_member (ctl, "ioc", 0, "last-error");
  g_assert_cmpstr (err, ==, "exited with status 1");
  g_assert_cmpint (vm_restarts (ctl, "ioc"), ==, 0);

  /* Up: ok at once, however long the grace period. */
  test_write_file (flag, "");
  test_wait_until (probe_is (ctl, "ioc", 0, "ok"), WAIT_MS, "ok at the first success");

  /* The first success ended the grace period: the next failure counts (failures=1). */
  g_assert_cmpint (g_unlink (flag), ==, 0);
  reason = g_strdup_printf ("probe exec:/bin/test -e %s failed 1 times (exited with status 1)", flag);
  test_wait_until (restarted_by (ctl, reason), WAIT_MS, "the run ended by the probe");
}

/* The udp responder: answers every datagram with "pong". */
static gboolean
on_udp_request (GSocket *socket, GIOCondition condition G_GNUC_UNUSED, gpointer data G_GNUC_UNUSED)
{
  g_autoptr(GSocketAddress) from = NULL;
  char buf[512];

  if (g_socket_receive_from (socket, &from, buf, sizeof buf, NULL, NULL) >= 0 && from != NULL)
    g_socket_send_to (socket, from, "pong", 4, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

static GSocket *
local_socket (GSocketType type, guint16 *out_port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) bound = NULL;
  GSocket *s = g_socket_new (G_SOCKET_FAMILY_IPV4, type, G_SOCKET_PROTOCOL_DEFAULT, &error);

  g_assert_no_error (error);
  g_assert_true (g_socket_bind (s, any, TRUE, &error));
  if (type == G_SOCKET_TYPE_STREAM)
    g_assert_true (g_socket_listen (s, &error));   /* the kernel accepts: enough for a probe */
  bound = g_socket_get_local_address (s, &error);
  g_assert_no_error (error);
  *out_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  return s;
}

static void
test_tcp_udp (void)
{
  Host *h;
  g_autoptr(ControlClient) ctl = NULL;
  g_autoptr(GSocket) tcp = NULL, udp = NULL;
  g_autofree char *conf = NULL, *err = NULL;
  GSource *responder;
  guint16 tcp_port, udp_port;

  if (test_require_qemu () == NULL)
    return;
  tcp = local_socket (G_SOCKET_TYPE_STREAM, &tcp_port);
  udp = local_socket (G_SOCKET_TYPE_DATAGRAM, &udp_port);
  responder = g_socket_create_source (udp, G_IO_IN, NULL);
  g_source_set_callback (responder, G_SOURCE_FUNC (on_udp_request), NULL, NULL);
  g_source_attach (responder, NULL);
  conf = g_strdup_printf (BIOS "probe = tcp:127.0.0.1:%u interval=200ms timeout=200ms failures=1 grace=0 action=report\n"
                          "probe = udp:127.0.0.1:%u:70696e67 interval=300ms timeout=300ms failures=1 grace=0 action=report\n",
                          tcp_port, udp_port);
  h = host_start ("svc", conf, NULL);
  ctl = connect_control (h);
  start_vm (h, "svc");
  test_wait_until (probe_is (ctl, "svc", 0, "ok"), WAIT_MS, "the tcp probe ok (not through the proxy)");
  test_wait_until (probe_is (ctl, "svc", 1, "ok"), WAIT_MS, "the udp probe ok");

  /* The listener closes, the responder goes quiet (its socket stays: no ICMP answer). */
  g_socket_close (tcp, NULL);
  g_source_destroy (responder);
  g_source_unref (responder);
  test_wait_until (probe_is (ctl, "svc", 0, "failing"), WAIT_MS, "the tcp probe failing");
  test_wait_until (probe_is (ctl, "svc", 1, "failing"), WAIT_MS, "the udp probe failing");
  err = probe_member (ctl, "svc", 0, "last-error");
  g_assert_cmpstr (err, ==, "connection refused");
  g_clear_pointer (&err, g_free);
  err = probe_member (ctl, "svc", 1, "last-error");
  g_assert_cmpstr (err, ==, "no answer within 300 ms");
  g_clear_pointer (&err, g_free);
  err = vm_member (ctl, "svc", "health");
  g_assert_cmpstr (err, ==, "probe-failing");
}

int
main (int argc, char **argv)
{
  g_autofree char *proxy = NULL;

  g_test_init (&argc, &argv, NULL);
  /* Sites often set a proxy for the whole host (/etc/environment), and vmherdd inherits it:
   * probes must go to the guest itself, never through it.  This proxy does not exist.  Set
   * here, before any thread, for every vmherdd this test starts. */
  proxy = g_strdup_printf ("http://127.0.0.1:%u", test_free_port ());
  g_setenv ("http_proxy", proxy, TRUE);
  g_setenv ("all_proxy", proxy, TRUE);
  g_unsetenv ("no_proxy");
  g_test_add_func ("/health-probes/exec-report", test_exec_report);
  g_test_add_func ("/health-probes/exec-restart", test_exec_restart);
  g_test_add_func ("/health-probes/grace", test_grace);
  g_test_add_func ("/health-probes/tcp-udp", test_tcp_udp);
  return g_test_run ();
}
