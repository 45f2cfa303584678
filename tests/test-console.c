/* test-console.c: the QMP console and the serial console, through a real vmherdd with
 * real guests: two consoles watch the same events while health checks go on; errors are
 * QEMU's or local as they should be; the direct fallback when vmherdd is gone. */
#include <gio/gunixinputstream.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <pty.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "launcher/control-proto.h"
#include "tests/harness.h"
#include "tests/test-util.h"

static const char *const bios_vm =
  "[vm]\nmemory = 64M\n[health]\npanic = none\nqmp-interval = 100ms\n";

static gint64
health_checks (Host *h, const char *name)
{
  g_autoptr(ControlClient) c = control_client_connect (h->socket, NULL);
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(GError) error = NULL;

  json_object_set_string_member (args, "vm", name);
  ret = control_client_call (c, "status", args, 5000, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (json_object_get_int_member (json_node_get_object (ret), "qmp-misses"), ==, 0);
  return json_object_get_int_member (json_node_get_object (ret), "health-checks");
}

/* Reads event lines until QMP event `name` of vm arrives; returns its data member. */
static JsonObject *
expect_qmp_event (ControlClient *c, const char *vm, const char *name)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(JsonObject) line = control_client_read_line (c, 10000, &error);
      JsonObject *d;

      g_assert_no_error (error);
      d = json_object_get_object_member (line, "data");
      if (g_strcmp0 (json_object_get_string_member (line, "event"), "QMP") == 0
          && g_strcmp0 (json_object_get_string_member (d, "vm"), vm) == 0
          && g_strcmp0 (json_object_get_string_member (d, "event"), name) == 0)
        return json_object_ref (d);
    }
}

static void
test_two_consoles_share_events (void)
{
  Host *h = host_start ("ioc", bios_vm, NULL);
  g_autoptr(ControlClient) a = NULL, b = NULL;
  g_autoptr(JsonObject) ea = NULL, eb = NULL;
  gint64 before;
  TestRun r;

  start_vm (h, "ioc");
  a = host_subscribe_events (h);
  b = host_subscribe_events (h);
  before = health_checks (h, "ioc");
  r = test_run_vmherd (h->config, NULL, "qmp", "ioc", "stop", NULL);
  g_assert_cmpstr (r.out, ==, "{}\n");
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
  ea = expect_qmp_event (a, "ioc", "STOP");
  eb = expect_qmp_event (b, "ioc", "STOP");
  /* QEMU's own timestamp travels with the event. */
  g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (ea, "timestamp"), "seconds"),
                   ==, json_object_get_int_member (json_object_get_object_member (eb, "timestamp"), "seconds"));
  g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (ea, "timestamp"), "seconds"),
                   >, 1700000000);
  r = test_run_vmherd (h->config, NULL, "qmp", "ioc", "cont", NULL);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
  g_clear_pointer (&ea, json_object_unref);
  ea = expect_qmp_event (a, "ioc", "RESUME");
  /* The daemon's own health checks went on through all of it (every 100 ms). */
  test_wait_until (health_checks (h, "ioc") >= before + 3, 10000, "three more health checks");
}

static void
test_qmp_command_line (void)
{
  Host *h = host_start ("ioc", bios_vm, NULL);
  g_autofree char *log_path = g_build_filename (h->dir, "log", "ioc.log", NULL);
  g_autofree char *log = NULL;
  TestRun r;

  start_vm (h, "ioc");
  r = test_run_vmherd (h->config, NULL, "qmp", "ioc", "query-status", NULL);
  g_assert_nonnull (strstr (r.out, "\"status\" : \"running\""));
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);

  r = test_run_vmherd (h->config, NULL, "qmp", "ioc", "no-such-command", NULL);
  g_assert_cmpstr (r.err, ==, "error from QEMU: CommandNotFound: The command no-such-command has not been found\n");
  g_assert_cmpint (r.status, ==, 1);
  test_run_clear (&r);

  r = test_run_vmherd (h->config, NULL, "qmp", "ioc", "device_add", "driver", NULL);
  g_assert_cmpstr (r.err, ==, "malformed argument 'driver' (write key=value; nothing was sent)\n");
  g_assert_cmpint (r.status, ==, 1);
  test_run_clear (&r);

  r = test_run_vmherd (h->config, NULL, "qmp", "nope", "query-status", NULL);
  g_assert_true (g_str_has_prefix (r.err, "no VM named 'nope' in "));
  g_assert_true (g_str_has_suffix (r.err, " (known: ioc)\n"));
  g_assert_cmpint (r.status, ==, 1);
  test_run_clear (&r);

  r = test_run_vmherd (h->config, NULL, "qmp", "ioc", "--read-only", "quit", NULL);
  g_assert_cmpstr (r.err, ==, "'quit' is refused on a read-only console (only query-* commands)\n");
  g_assert_cmpint (r.status, ==, 1);
  test_run_clear (&r);

  /* JSON and qmp-shell lines on standard input run in order. */
  r = test_run_vmherd (h->config, "query-name\n# a comment\n{\"execute\":\"query-uuid\"}\nhmp info status\n",
                       "qmp", "ioc", NULL);
  g_assert_nonnull (strstr (r.out, "\"name\" : \"ioc\""));
  g_assert_nonnull (strstr (r.out, "\"UUID\" : \""));
  g_assert_true (g_str_has_suffix (r.out, "VM status: running\r\n"));
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);

  /* Every command reached the guest's log with the uid that sent it; the malformed one
   * never left the console. */
  log = test_read_file (log_path);
  g_assert_nonnull (strstr (log, "console (uid 0): {\"execute\":\"no-such-command\"}"));
  g_assert_nonnull (strstr (log, "console (uid 0): {\"execute\":\"query-uuid\"}"));
  g_assert_null (strstr (log, "device_add"));
  g_assert_null (strstr (log, "\"quit\""));
}

static void
test_direct_when_daemon_is_gone (void)
{
  Host *h = host_start ("ioc", bios_vm, NULL);
  g_autofree char *expected = NULL;
  TestRun r;

  start_vm (h, "ioc");
  host_kill_daemon (h);
  /* The control socket refuses connections once its process is gone. */
  r = test_run_vmherd (h->config, NULL, "qmp", "ioc", "query-status", NULL);
  expected = g_strdup_printf ("cannot reach vmherdd at %s: Connection refused (is vmherdd running?); "
                              "connecting straight to %s/run/vm/ioc/qmp.sock\n", h->socket, h->dir);
  g_assert_cmpstr (r.err, ==, expected);
  g_assert_nonnull (strstr (r.out, "\"status\" : \"running\""));
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
}

static void
test_serial_console (void)
{
  g_autofree char *kernel = NULL, *initrd = NULL, *vm = NULL, *seen = NULL, *answer = NULL;
  g_autoptr(ControlClient) c = NULL, other = NULL;
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *busy_class = NULL, *bin = test_build_path ("vmherd");
  g_autoptr(GSubprocess) cli = NULL;
  GOutputStream *in;
  Host *h;
  int fd, out_fd;

  if (!test_require_guest (&kernel, &initrd))
    return;
  vm = g_strdup_printf ("[vm]\nmemory = 256M\n[kernel]\npath = %s\ninitrd = %s\n"
                        "append = console=ttyS0 quiet vmherd.heartbeat=300\n[health]\npanic = none\n",
                        kernel, initrd);
  h = host_start ("k", vm, NULL);
  start_vm (h, "k");
  c = control_client_connect (h->socket, &error);
  g_assert_no_error (error);
  json_object_set_string_member (args, "vm", "k");
  ret = control_client_call (c, "console", args, 5000, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  fd = control_client_get_fd (c);
  g_assert_cmpint (write (fd, "", 1), ==, 1);   /* the 0x00 that starts the stream */
  /* The guest's heartbeat arrives through the daemon once the guest is up; input waits
   * for the shell's first prompt (typed earlier, it would be flushed when the shell sets
   * up the terminal). */
  seen = read_until (fd, "vmherd-heartbeat 2", 90000);
  if (strstr (seen, "/ # ") == NULL)
    g_free (read_until (fd, "/ # ", 60000));

  /* One client at a time: a second attach is refused, naming who holds it. */
  other = control_client_connect (h->socket, &error);
  g_assert_no_error (error);
  g_assert_null (control_client_call (other, "console", args, 5000, NULL, NULL, &busy_class, &error));
  g_assert_error (error, CONTROL_ERROR, CONTROL_ERROR_REFUSED);
  g_assert_cmpstr (busy_class, ==, "Busy");
  g_assert_cmpstr (error->message, ==, "the console of vm 'k' is in use by uid 0 (QEMU's serial port takes one client)");
  g_clear_error (&error);

  /* Typing reaches the guest's shell (the quotes keep our echoed input from matching). */
  g_assert_cmpint (write (fd, "echo mark''er-$((6*7))\n", 23), ==, 23);
  answer = read_until (fd, "marker-42", 10000);
  g_clear_pointer (&c, control_client_free);

  /* The CLI does the same for a script: it types, shows the answer, and detaches when its
   * input ends (held open here until the answer shows: a loaded machine may take longer
   * than the second the CLI waits for answers after the end of its input). */
  cli = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                          bin, "--config", h->config, "console", "k", NULL);
  g_assert_no_error (error);
  in = g_subprocess_get_stdin_pipe (cli);
  g_assert_true (g_output_stream_write_all (in, "echo mark''er-$((6*8))\n", 23, NULL, NULL, &error));
  g_assert_no_error (error);
  out_fd = g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (g_subprocess_get_stdout_pipe (cli)));
  g_free (read_until (out_fd, "marker-48", 30000));
  g_assert_true (g_output_stream_close (in, NULL, &error));
  g_assert_true (g_subprocess_wait_check (cli, NULL, &error));
  g_assert_no_error (error);
}

/* The interactive console on a real terminal (a pty): completion from the guest's QEMU,
 * a reply, an event arriving while idle, history kept across sessions. */
static void
test_interactive (void)
{
  Host *h = host_start ("ioc", bios_vm, NULL);
  g_autofree char *bin = test_build_path ("vmherd");
  g_autofree char *home = test_tmpdir ();
  g_autofree char *history_path = g_build_filename (home, ".vmherd_qmp_history", NULL);
  g_autofree char *seen = NULL, *history = NULL;
  int master, status;
  pid_t pid;
  TestRun r;

  start_vm (h, "ioc");
  pid = forkpty (&master, NULL, NULL, NULL);
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      g_setenv ("HOME", home, TRUE);
      g_setenv ("TERM", "xterm", TRUE);
      g_setenv ("NO_COLOR", "1", TRUE);
      execl (bin, bin, "--config", h->config, "qmp", "ioc", (char *) NULL);
      _exit (127);
    }
  g_free (read_until (master, "(qmp ioc) ", 10000));
  /* Tab completes the command name from query-commands ("query-na" alone is no command,
   * so the reply proves the completion) ... */
  g_assert_cmpint (write (master, "query-na\t\r", 10), ==, 10);
  g_free (read_until (master, "\"name\" : \"ioc\"", 10000));
  /* ... and argument names from query-qmp-schema: the value reaches QEMU. */
  g_assert_cmpint (write (master, "migrate-set-parameters downtime-l\t77\r", 37), ==, 37);
  g_free (read_until (master, "(qmp ioc) ", 10000));
  g_assert_cmpint (write (master, "query-migrate-parameters\r", 25), ==, 25);
  g_free (read_until (master, "\"downtime-limit\" : 77", 10000));
  /* An event that happens while the operator types is shown at once. */
  r = test_run_vmherd (h->config, NULL, "pause", "ioc", NULL);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
  seen = read_until (master, "event STOP", 10000);
  g_assert_cmpint (write (master, "\x04", 1), ==, 1);   /* Ctrl-D leaves */
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
  close (master);
  history = test_read_file (history_path);
  g_assert_nonnull (strstr (history, "query-name"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (test_require_qemu () == NULL)
    return g_test_run ();
  g_test_add_func ("/console/two-consoles-share-events", test_two_consoles_share_events);
  g_test_add_func ("/console/qmp-command-line", test_qmp_command_line);
  g_test_add_func ("/console/direct-when-daemon-is-gone", test_direct_when_daemon_is_gone);
  g_test_add_func ("/console/serial", test_serial_console);
  g_test_add_func ("/console/interactive", test_interactive);
  return g_test_run ();
}
