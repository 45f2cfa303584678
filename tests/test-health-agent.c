/* test-health-agent.c: [health] guest-agent = yes through a real vmherdd, QEMU and the test
 * guest running Debian's qemu-ga (tests/guest: agent.img appended to initrd.img, started
 * by vmherd.agent=1).  Pings answered: ok in `status`, `list`, an AGENT event and the
 * metrics.  `killall qemu-ga` typed on the console: pings time out and after
 * agent-failures the action happens: report leaves the guest running (the agent started
 * again is ok again, through the requests that piled up while it was gone); restart ends
 * the run and a new QEMU starts.  The protocol's edge cases (stale replies, garbage) are
 * in test-qmp-qga.c against a fake agent. */
#include <gio/gio.h>
#include <libsoup/soup.h>
#include <string.h>
#include <unistd.h>

#include "launcher/control-proto.h"
#include "tests/harness.h"
#include "tests/test-util.h"

#define EVENT_WAIT_MS 90000     /* TCG guests on a loaded 2-core machine */

/* The console once the shell runs, the agent having said it holds its port. */
static ControlClient *
agent_console_ready (Host *h, const char *vm, int *out_fd)
{
  g_autofree char *seen = NULL;
  ControlClient *c = host_console_ready (h, vm, out_fd, &seen);

  g_assert_nonnull (strstr (seen, "vmherd-guest: agent /dev/vport"));
  return c;
}

/* A host whose VM `name` boots the test guest with qemu-ga and has these [health] lines;
 * the initrd is initrd.img + agent.img in the host's folder.  NULL after a skip. */
static Host *
agent_host (const char *name, const char *health, const char *extra_host_config)
{
  g_autofree char *kernel = NULL, *initrd = NULL, *dir = NULL, *agent = NULL;
  g_autofree char *base = NULL, *agent_img = NULL, *joined = NULL, *path = NULL, *vm = NULL;
  gsize base_len, agent_len;
  Host *h;

  if (!test_require_guest (&kernel, &initrd))
    return NULL;
  dir = g_path_get_dirname (initrd);
  agent = g_build_filename (dir, "agent.img", NULL);
  if (!g_file_test (agent, G_FILE_TEST_EXISTS))
    {
      g_autofree char *reason = g_strdup_printf ("no %s (run tests/guest/build-guest)", agent);
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", reason);
      return NULL;
    }
  h = host_new (extra_host_config);
  g_assert_true (g_file_get_contents (initrd, &base, &base_len, NULL));
  g_assert_true (g_file_get_contents (agent, &agent_img, &agent_len, NULL));
  /* The kernel unpacks concatenated archives in order: agent.img adds qemu-ga. */
  joined = g_malloc (base_len + agent_len);
  memcpy (joined, base, base_len);
  memcpy (joined + base_len, agent_img, agent_len);
  path = g_build_filename (h->dir, "initrd-agent.img", NULL);
  g_assert_true (g_file_set_contents_full (path, joined, (gssize) (base_len + agent_len),
                                           G_FILE_SET_CONTENTS_NONE, 0644, NULL));
  vm = g_strdup_printf ("[vm]\nmemory = 256M\n[kernel]\npath = %s\ninitrd = %s\n"
                        "append = console=ttyS0 quiet vmherd.agent=1\n"
                        "[health]\npanic = none\nguest-agent = yes\n%s", kernel, path, health);
  host_add_vm (h, name, vm);
  host_restart_daemon (h);
  return h;
}

/* The line of /metrics that starts with `sample` (name and labels), e.g. "... 1". */
static char *
metrics_line (guint16 port, const char *sample)
{
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 30, NULL);
  g_autofree char *uri = g_strdup_printf ("http://127.0.0.1:%u/metrics", port);
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", uri);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autofree char *text = NULL;
  g_autofree char *prefix = g_strdup_printf ("\n%s ", sample);
  const char *line;

  soup_session_set_proxy_resolver (session, NULL);   /* never through $http_proxy */
  body = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (msg), ==, 200);
  text = g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
  line = strstr (text, prefix);
  if (line == NULL)
    g_error ("no sample %s in: %s", sample, text);
  return g_strndup (line + 1, strcspn (line + 1, "\n"));
}

/* agent-action = report: ok while qemu-ga answers; once it is killed, failing after two
 * missed pings, reported only (same QEMU, no restart); started again, ok again. */
static void
test_agent_report (void)
{
  guint16 port = test_free_port ();
  g_autofree char *listen = g_strdup_printf ("metrics-listen = 127.0.0.1:%u\n", port);
  Host *h = agent_host ("ga", "agent-interval = 1s\nagent-timeout = 2s\nagent-failures = 2\n"
                        "agent-grace = 0\nagent-action = report\n", listen);
  g_autoptr(ControlClient) events = NULL, console = NULL;
  g_autoptr(JsonObject) ok = NULL, failing = NULL, again = NULL, before = NULL, after = NULL;
  g_autofree char *metric = NULL;
  JsonObject *a;
  TestRun r;
  int fd;

  if (h == NULL)
    return;
  events = host_subscribe_events (h);
  start_vm (h, "ga");
  before = host_vm_status (h, "ga");
  a = json_object_get_object_member (before, "guest-agent");
  g_assert_cmpstr (json_object_get_string_member (a, "action"), ==, "report");
  g_assert_cmpint (json_object_get_int_member (a, "interval-ms"), ==, 1000);
  g_assert_cmpint (json_object_get_int_member (a, "timeout-ms"), ==, 2000);
  g_assert_cmpint (json_object_get_int_member (a, "failures-before-action"), ==, 2);
  g_assert_cmpint (json_object_get_int_member (a, "grace-ms"), ==, 0);
  console = agent_console_ready (h, "ga", &fd);

  /* Pinged from the start, before qemu-ga ran: those requests reach it when it starts,
   * their replies come first, and the sync skips them. */
  ok = host_expect_event (events, EVENT_WAIT_MS, "AGENT", "vm", "ga", "state", "ok", NULL);
  g_assert_true (g_str_has_prefix (json_object_get_string_member (ok, "reason"), "answered in "));
  g_clear_pointer (&before, json_object_unref);
  before = host_vm_status (h, "ga");
  g_assert_cmpstr (json_object_get_string_member (before, "health"), ==, "ok");
  a = json_object_get_object_member (before, "guest-agent");
  g_assert_cmpstr (json_object_get_string_member (a, "state"), ==, "ok");
  g_assert_cmpint (json_object_get_int_member (a, "failures"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (a, "checks"), >=, 1);
  g_assert_nonnull (json_object_get_string_member (a, "last-time"));
  g_assert_cmpfloat (json_object_get_double_member (a, "latency-ms"), >, 0);
  g_assert_cmpfloat (json_object_get_double_member (a, "latency-ms"), <, 2000);
  g_assert_true (json_object_get_null_member (a, "last-error"));
  g_assert_true (json_object_get_boolean_member (a, "port-open"));
  r = test_run_vmherd (h->config, NULL, "status", "ga", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "\nguest-agent     ok, failures 0/2  last "));
  g_assert_nonnull (strstr (r.out, "  port open  action report\n"));
  test_run_clear (&r);
  metric = metrics_line (port, "vmherd_vm_agent_ok{vm=\"ga\"}");
  g_assert_cmpstr (metric, ==, "vmherd_vm_agent_ok{vm=\"ga\"} 1");
  g_clear_pointer (&metric, g_free);

  console_type (fd, "killall qemu-ga\n");
  failing = host_expect_event (events, EVENT_WAIT_MS, "AGENT", "vm", "ga", "state", "failing", NULL);
  /* QEMU saw qemu-ga close the port (VSERPORT_CHANGE): the reason says so. */
  g_assert_cmpstr (json_object_get_string_member (failing, "reason"), ==,
                   "failed 2 times in a row (no answer within 2000 ms; no agent has the port "
                   "open in the guest)");
  after = host_vm_status (h, "ga");
  g_assert_cmpstr (json_object_get_string_member (after, "state"), ==, "running");
  g_assert_cmpint (json_object_get_int_member (after, "pid"), ==,
                   json_object_get_int_member (before, "pid"));
  g_assert_cmpint (json_object_get_int_member (after, "restarts"), ==, 0);
  g_assert_true (json_object_get_null_member (after, "last-failure"));
  g_assert_cmpstr (json_object_get_string_member (after, "health"), ==, "agent-failing");
  a = json_object_get_object_member (after, "guest-agent");
  g_assert_cmpstr (json_object_get_string_member (a, "state"), ==, "failing");
  g_assert_cmpint (json_object_get_int_member (a, "failures"), >=, 2);
  g_assert_cmpstr (json_object_get_string_member (a, "last-error"), ==,
                   "no answer within 2000 ms; no agent has the port open in the guest");
  g_assert_false (json_object_get_boolean_member (a, "port-open"));
  r = test_run_vmherd (h->config, NULL, "list", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, " agent-failing"));
  test_run_clear (&r);
  metric = metrics_line (port, "vmherd_vm_agent_ok{vm=\"ga\"}");
  g_assert_cmpstr (metric, ==, "vmherd_vm_agent_ok{vm=\"ga\"} 0");

  /* The agent again: the pings sent meanwhile wait in the channel and are answered
   * first; the sync finds the current one's reply behind them. */
  console_type (fd, "vmherd-agent\n");
  again = host_expect_event (events, EVENT_WAIT_MS, "AGENT", "vm", "ga", "state", "ok", NULL);
  g_clear_pointer (&after, json_object_unref);
  after = host_vm_status (h, "ga");
  g_assert_cmpint (json_object_get_int_member (after, "pid"), ==,
                   json_object_get_int_member (before, "pid"));
  a = json_object_get_object_member (after, "guest-agent");
  g_assert_cmpstr (json_object_get_string_member (a, "state"), ==, "ok");
  g_assert_true (json_object_get_null_member (a, "last-error"));
  g_assert_true (json_object_get_boolean_member (a, "port-open"));
}

/* agent-action = restart: qemu-ga killed, two missed pings end the run as a failure and
 * the guest starts again in a new QEMU. */
static void
test_agent_restart (void)
{
  /* The grace period covers the boot (about 6 s here, more on a loaded machine): the
   * restarted guest is not failed before its agent is up.  It costs nothing: the agent is
   * ok at its first answer. */
  Host *h = agent_host ("gr", "agent-interval = 1s\nagent-timeout = 2s\nagent-failures = 2\n"
                        "agent-grace = 120s\n", NULL);
  g_autoptr(ControlClient) events = NULL, console = NULL;
  g_autoptr(JsonObject) ok = NULL, backoff = NULL, running = NULL, before = NULL, after = NULL;
  JsonObject *a;
  int fd;

  if (h == NULL)
    return;
  events = host_subscribe_events (h);
  start_vm (h, "gr");
  console = agent_console_ready (h, "gr", &fd);
  ok = host_expect_event (events, EVENT_WAIT_MS, "AGENT", "vm", "gr", "state", "ok", NULL);
  before = host_vm_status (h, "gr");
  a = json_object_get_object_member (before, "guest-agent");
  g_assert_cmpstr (json_object_get_string_member (a, "action"), ==, "restart");   /* default */
  g_assert_cmpstr (json_object_get_string_member (a, "state"), ==, "ok");

  console_type (fd, "killall qemu-ga\n");
  backoff = host_expect_event (events, EVENT_WAIT_MS, "STATE", "vm", "gr", "state", "backoff", NULL);
  g_assert_true (g_str_has_prefix (json_object_get_string_member (backoff, "reason"),
                                   "guest agent failed 2 times (no answer within 2000 ms; no "
                                   "agent has the port open in the guest); QEMU "));
  running = host_expect_event (events, EVENT_WAIT_MS, "STATE", "vm", "gr", "state", "running", NULL);
  after = host_vm_status (h, "gr");
  g_assert_cmpint (json_object_get_int_member (after, "pid"), !=,
                   json_object_get_int_member (before, "pid"));
  g_assert_cmpint (json_object_get_int_member (after, "restarts"), ==, 1);
  g_assert_true (g_str_has_prefix (json_object_get_string_member (after, "last-failure"),
                                   "guest agent failed 2 times (no answer within 2000 ms; no "
                                   "agent has the port open in the guest)"));
  /* A new run: fresh results; pings of the booting guest fail uncounted in its grace
   * period. */
  a = json_object_get_object_member (after, "guest-agent");
  g_assert_cmpstr (json_object_get_string_member (a, "state"), ==, "pending");
  g_assert_cmpint (json_object_get_int_member (a, "failures"), ==, 0);
  g_assert_true (json_object_get_null_member (a, "port-open"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (test_require_qemu () == NULL)
    return g_test_run ();
  g_test_add_func ("/health-agent/report", test_agent_report);
  g_test_add_func ("/health-agent/restart", test_agent_restart);
  return g_test_run ();
}
