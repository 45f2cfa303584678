/* test-health-guest.c: the guest's own health devices through a real vmherdd and the
 * test guest: the i6300esb watchdog fires (action reset: same QEMU, the guest boots
 * again) and a kernel panic seen through pvpanic (panic = restart: a new QEMU, the serial
 * log's tail kept in the PANIC event and in `status`). */
#include <string.h>
#include <unistd.h>

#include "launcher/control-proto.h"
#include "tests/harness.h"
#include "tests/test-util.h"

#define EVENT_WAIT_MS 90000     /* TCG guests on a loaded 2-core machine */

static char *
guest_vm (const char *append, const char *health)
{
  g_autofree char *kernel = NULL, *initrd = NULL;

  if (!test_require_guest (&kernel, &initrd))
    return NULL;
  return g_strdup_printf ("[vm]\nmemory = 256M\n[kernel]\npath = %s\ninitrd = %s\n"
                          "append = console=ttyS0 quiet %s\n[health]\n%s", kernel, initrd,
                          append, health);
}

/* watchdog = reset: the guest stops petting, QEMU resets it in the same process; the
 * daemon counts the firing, says so, and restarts nothing. */
static void
test_watchdog_reset (void)
{
  g_autofree char *vm = guest_vm ("vmherd.watchdog=1 vmherd.watchdog_timeout=3",
                                  "watchdog = reset\npanic = none\n");
  g_autoptr(ControlClient) events = NULL, console = NULL;
  g_autoptr(JsonObject) fired = NULL, before = NULL, after = NULL;
  JsonObject *w;
  Host *h;
  int fd;

  if (vm == NULL)
    return;
  h = host_start ("wd", vm, NULL);
  events = host_subscribe_events (h);
  start_vm (h, "wd");
  before = host_vm_status (h, "wd");
  console = host_console_ready (h, "wd", &fd, NULL);
  g_assert_cmpint (write (fd, "killall watchdog\n", 17), ==, 17);

  fired = host_expect_event (events, EVENT_WAIT_MS, "WATCHDOG", "vm", "wd", NULL);
  g_assert_cmpstr (json_object_get_string_member (fired, "action"), ==, "reset");
  g_assert_cmpstr (json_object_get_string_member (fired, "reason"), ==, "watchdog fired (action reset)");
  g_assert_cmpint (json_object_get_int_member (fired, "fired"), ==, 1);
  /* QEMU reset the guest: it boots again on the same console. */
  g_free (read_until (fd, "vmherd-guest: booted", 60000));

  after = host_vm_status (h, "wd");
  g_assert_cmpstr (json_object_get_string_member (after, "state"), ==, "running");
  g_assert_cmpint (json_object_get_int_member (after, "pid"), ==,
                   json_object_get_int_member (before, "pid"));
  g_assert_cmpint (json_object_get_int_member (after, "restarts"), ==, 0);
  g_assert_true (json_object_get_null_member (after, "last-failure"));
  w = json_object_get_object_member (after, "watchdog");
  g_assert_cmpstr (json_object_get_string_member (w, "action"), ==, "reset");
  g_assert_cmpint (json_object_get_int_member (w, "fired"), >=, 1);
  g_assert_cmpstr (json_object_get_string_member (w, "last-action"), ==, "reset");
  g_assert_nonnull (json_object_get_string_member (w, "last"));
  g_assert_true (json_object_get_null_member (after, "last-panic"));
}

/* panic = restart: a kernel panic ends the run as a failure and a new QEMU starts; the
 * serial log's tail, with the kernel's panic line, is in the event and in `status`. */
static void
test_panic_restart (void)
{
  g_autofree char *vm = guest_vm ("", "panic = restart\n");
  g_autoptr(ControlClient) events = NULL, console = NULL;
  g_autoptr(JsonObject) panic = NULL, backoff = NULL, running = NULL, before = NULL, after = NULL;
  JsonObject *last;
  Host *h;
  TestRun r;
  int fd;

  if (vm == NULL)
    return;
  h = host_start ("p", vm, NULL);
  events = host_subscribe_events (h);
  start_vm (h, "p");
  before = host_vm_status (h, "p");
  g_assert_true (json_object_get_null_member (before, "last-panic"));
  console = host_console_ready (h, "p", &fd, NULL);
  g_assert_cmpint (write (fd, "echo c > /proc/sysrq-trigger\n", 29), ==, 29);

  panic = host_expect_event (events, EVENT_WAIT_MS, "PANIC", "vm", "p", NULL);
  g_assert_cmpstr (json_object_get_string_member (panic, "action"), ==, "restart");
  g_assert_nonnull (strstr (json_object_get_string_member (panic, "serial-tail"), "Kernel panic"));
  backoff = host_expect_event (events, EVENT_WAIT_MS, "STATE", "vm", "p", "state", "backoff", NULL);
  g_assert_true (g_str_has_prefix (json_object_get_string_member (backoff, "reason"),
                                   "the guest panicked; QEMU "));
  running = host_expect_event (events, EVENT_WAIT_MS, "STATE", "vm", "p", "state", "running", NULL);

  after = host_vm_status (h, "p");
  g_assert_cmpint (json_object_get_int_member (after, "pid"), !=,
                   json_object_get_int_member (before, "pid"));
  g_assert_cmpint (json_object_get_int_member (after, "restarts"), ==, 1);
  g_assert_true (g_str_has_prefix (json_object_get_string_member (after, "last-failure"),
                                   "the guest panicked"));
  last = json_object_get_object_member (after, "last-panic");
  g_assert_nonnull (last);
  g_assert_cmpstr (json_object_get_string_member (last, "action"), ==, "restart");
  g_assert_nonnull (json_object_get_string_member (last, "time"));
  g_assert_nonnull (strstr (json_object_get_string_member (last, "serial-tail"), "Kernel panic"));

  /* The CLI shows the panic with the serial log below it. */
  r = test_run_vmherd (h->config, NULL, "status", "p", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "\nwatchdog        none, never fired\n"));
  g_assert_nonnull (strstr (r.out, " (panic = restart); the serial log before it:\n"));
  g_assert_nonnull (strstr (r.out, "\n  [")); /* the kernel's lines, indented */
  test_run_clear (&r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (test_require_qemu () == NULL)
    return g_test_run ();
  g_test_add_func ("/health-guest/watchdog-reset", test_watchdog_reset);
  g_test_add_func ("/health-guest/panic-restart", test_panic_restart);
  return g_test_run ();
}
