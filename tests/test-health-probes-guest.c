/* test-health-probes-guest.c: tcp probes against services inside the test guest, on a
 * real bridge in a private network namespace.  The guest runs two TCP services (ports 5000
 * and 5001); a probe with action=report watches the first, one with action=restart the
 * second.  Each service is stopped with a command on the serial console: the report probe
 * only reports (same QEMU, no restart), the restart probe ends the run after its threshold
 * and a new QEMU starts.  (tcp and udp probes against host listeners, and exec probes, are
 * in test-health-probes.c.) */
#define _GNU_SOURCE 1   /* unshare() */
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "launcher/control-proto.h"
#include "tests/harness.h"
#include "tests/test-util.h"

#define WAIT_MS 90000
#define GUEST_IP "10.89.0.2"
#define REPORT_PROBE "tcp:" GUEST_IP ":5000"
#define RESTART_PROBE "tcp:" GUEST_IP ":5001"

static void
sh (const char *command)
{
  const char *argv[] = { "/bin/sh", "-c", command, NULL };
  TestRun r = test_run (argv, NULL);

  if (r.status != 0)
    g_error ("`%s` failed (%d): %s", command, r.status, r.err);
  test_run_clear (&r);
}

/* Is event line `line` a PROBE event of probe with state ok? */
static gboolean
probe_ok (JsonObject *line, const char *probe)
{
  JsonObject *d = json_object_get_object_member (line, "data");

  return g_strcmp0 (json_object_get_string_member (line, "event"), "PROBE") == 0
         && g_strcmp0 (json_object_get_string_member (d, "probe"), probe) == 0
         && g_strcmp0 (json_object_get_string_member (d, "state"), "ok") == 0;
}

/* Reads event lines until both probes have reported ok, in whichever order: their checks
 * start together and their answers race. */
static void
expect_both_ok (ControlClient *c)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;
  gboolean report_ok = FALSE, restart_ok = FALSE;

  while (!report_ok || !restart_ok)
    {
      g_autoptr(JsonObject) line = host_next_event (c, deadline, "PROBE state=ok of both probes");

      report_ok = report_ok || probe_ok (line, REPORT_PROBE);
      restart_ok = restart_ok || probe_ok (line, RESTART_PROBE);
    }
}

/* Probe i (in file order) of a status. */
static JsonObject *
probe_of (JsonObject *st, guint i)
{
  return json_array_get_object_element (json_object_get_array_member (st, "probes"), i);
}

static void
test_guest_service_stops (void)
{
  g_autofree char *kernel = NULL, *initrd = NULL, *vm = NULL;
  g_autoptr(ControlClient) events = NULL, console = NULL;
  g_autoptr(JsonObject) report = NULL, restart = NULL, st = NULL, before = NULL, backoff = NULL;
  g_autoptr(JsonObject) again = NULL;
  Host *h;
  int fd;

  if (!test_require_guest (&kernel, &initrd))
    return;
  /* The grace period covers the boot (about 10 s under TCG here, more on a loaded CI); it
   * costs nothing, a probe is ok at its first success. */
  vm = g_strdup_printf ("[vm]\nmemory = 256M\n[kernel]\npath = %s\ninitrd = %s\n"
                        "append = console=ttyS0 quiet vmherd.ip=" GUEST_IP "/24 vmherd.tcp=5000,5001\n"
                        "[net lan]\nbridge = brp0\n"
                        "[health]\npanic = none\nqmp-interval = 1s\nqmp-timeout = 5s\n"
                        "probe = " REPORT_PROBE " interval=500ms timeout=1s failures=3 grace=120s action=report\n"
                        "probe = " RESTART_PROBE " interval=500ms timeout=1s failures=3 grace=120s action=restart\n",
                        kernel, initrd);
  h = host_start_with ("[bridge brp0]\nstp = no\n", "svc", vm, NULL);
  sh ("ip addr add 10.89.0.1/24 dev brp0");
  events = host_subscribe_events (h);
  start_vm (h, "svc");
  console = host_console_ready (h, "svc", &fd, NULL);
  expect_both_ok (events);
  before = host_vm_status (h, "svc");

  /* action=report: failing after 3 misses, reported, nothing restarted. */
  console_type (fd, "kill $(cat /run/tcp-5000.pid)\n");
  report = host_expect_event (events, WAIT_MS, "PROBE", "probe", REPORT_PROBE, "state", "failing", NULL);
  g_assert_cmpstr (json_object_get_string_member (report, "reason"), ==,
                   "failed 3 times in a row (connection refused)");
  st = host_vm_status (h, "svc");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "running");
  g_assert_cmpstr (json_object_get_string_member (st, "health"), ==, "probe-failing");
  g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, json_object_get_int_member (before, "pid"));
  g_assert_cmpint (json_object_get_int_member (st, "restarts"), ==, 0);
  g_assert_cmpstr (json_object_get_string_member (probe_of (st, 0), "state"), ==, "failing");
  g_assert_cmpstr (json_object_get_string_member (probe_of (st, 0), "last-error"), ==, "connection refused");
  g_assert_cmpstr (json_object_get_string_member (probe_of (st, 1), "state"), ==, "ok");

  /* action=restart: failing after 3 misses ends the run; a new QEMU starts. */
  console_type (fd, "kill $(cat /run/tcp-5001.pid)\n");
  restart = host_expect_event (events, WAIT_MS, "PROBE", "probe", RESTART_PROBE, "state", "failing", NULL);
  g_assert_cmpstr (json_object_get_string_member (restart, "reason"), ==,
                   "failed 3 times in a row (connection refused)");
  backoff = host_expect_event (events, WAIT_MS, "STATE", "state", "backoff", NULL);
  g_assert_true (g_str_has_prefix (json_object_get_string_member (backoff, "reason"),
                                   "probe " RESTART_PROBE " failed 3 times (connection refused)"));
  again = host_expect_event (events, WAIT_MS, "STATE", "state", "running", NULL);
  g_clear_pointer (&st, json_object_unref);
  st = host_vm_status (h, "svc");
  g_assert_cmpint (json_object_get_int_member (st, "restarts"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (st, "pid"), !=, json_object_get_int_member (before, "pid"));
  g_assert_true (g_str_has_prefix (json_object_get_string_member (st, "last-failure"),
                                   "probe " RESTART_PROBE " failed 3 times"));
  /* The new run's probes start over: the booting guest's failures are not counted. */
  g_assert_cmpstr (json_object_get_string_member (probe_of (st, 1), "state"), ==, "pending");
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
  if (test_require_qemu () == NULL)
    return g_test_run ();
  /* Everything below, vmherdd and its guest included, lives in a private namespace. */
  if (unshare (CLONE_NEWNET) < 0)
    {
      g_test_add_func ("/health-probes-guest/service-stops", test_no_namespace);
      return g_test_run ();
    }
  sh ("ip link set lo up");
  g_test_add_func ("/health-probes-guest/service-stops", test_guest_service_stops);
  return g_test_run ();
}
