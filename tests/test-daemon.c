/* test-daemon.c: vmherdd as a real process supervising real QEMUs under TCG, driven through
 * its control socket and the vmherd CLI.
 *
 * Covers supervision's fault list (QEMU killed, exiting at once, wedged by SIGSTOP; vmherdd
 * killed while guests run, then re-adopting them; malformed, silent, non-reading and
 * foreign control clients; a VM file removed while its guest starts), the VM-file
 * lifecycle (new, changed, invalid, half-written, atomically saved, removed; SIGHUP and
 * reload), the stop ladder, restart policies on guest poweroff, shutdown-all's order, and
 * what list, status and the CLI's exit codes say.
 *
 * Guests are BIOS-only (64 MB, no disk, no kernel: QEMU is up in about 0.1 s and ignores
 * system_powerdown) except for the guest-poweroff test, which boots the test guest.
 *
 * Each test runs in a child (g_test_trap_subprocess) inside its own folder.  Whatever the
 * child leaves behind, even after a failed assertion aborted it, the parent kills: every
 * process whose command line names that folder (vmherdd gets --config FOLDER/..., QEMU's
 * argv names FOLDER/log/...), then reaps the orphans it inherits as a child subreaper.
 * Waiting is done on events: STATE, QMP and CONFIG lines from the daemon's `events` stream,
 * READY=1 on a NOTIFY_SOCKET, the test guest's serial console, pidfds. */
#define _GNU_SOURCE /* setgroups() */
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher/control-proto.h"
#include "tests/test-util.h"

#define NOBODY 65534
#define CONTROL_GROUP "staff"   /* in every Debian's base-passwd; nobody is not a member */
#define CALL_TIMEOUT_MS 30000
#define STATE_TIMEOUT_MS 30000
#define READY_TIMEOUT_MS 20000
#define BOOT_TIMEOUT_MS 90000   /* the test guest's userspace: about 7 s alone under TCG */

/* [health] of the guests: lenient, so that a loaded CI machine (two TCG guests booting on
 * two cores) does not make a healthy QEMU look wedged; FAST_HEALTH (a wedged QEMU is found
 * in about 1 s) for the wedge test only. */
#define HEALTH "[health]\npanic = none\nqmp-interval = 1s\nqmp-timeout = 5s\nqmp-failures = 3\n"
#define FAST_HEALTH "[health]\npanic = none\nqmp-interval = 200ms\nqmp-timeout = 500ms\nqmp-failures = 2\n"

typedef struct
{
  char *dir;                    /* this test's folder: every path below is inside it */
  char *conf, *vm_dir, *control;
  char *qemu;
  GSubprocess *daemon;          /* the current vmherdd */
  guint n_daemons;
  ControlClient *ctl;           /* requests */
  ControlClient *events;        /* subscribed with `events`: only events arrive on it */
  GPtrArray *log;               /* JsonObject: every event read from it, in order */
  GPtrArray *strings;           /* what seq() returned, freed at the end */
} Fixture;

/* ---- the folder, shared by the parent and the child ---- */

/* The parent creates it, the child finds it: named after the parent's pid and the test. */
static char *
test_folder (pid_t runner)
{
  const char *leaf = strrchr (g_test_get_path (), '/') + 1;

  /* Short: QEMU's socket paths inside must stay under 108 bytes. */
  return g_strdup_printf ("%s/vmherd-daemon-%d-%s", g_get_tmp_dir (), (int) runner, leaf);
}

/* Waits (on a pidfd) until pid has exited; FALSE when it has not within timeout_ms. */
static gboolean
pidfd_wait_exit (int pidfd, int timeout_ms)
{
  struct pollfd p = { .fd = pidfd, .events = POLLIN };
  int ready;

  do
    ready = poll (&p, 1, timeout_ms);
  while (ready < 0 && errno == EINTR);
  return ready > 0;
}

/* SIGKILLs every process whose command line names folder, waits until each has exited,
 * then reaps the zombies this process inherited as a subreaper. */
static void
kill_everything_in (const char *folder)
{
  g_autoptr(GArray) pidfds = g_array_new (FALSE, FALSE, sizeof (int));
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  const char *name;

  g_assert_nonnull (proc);
  while ((name = g_dir_read_name (proc)) != NULL)
    {
      guint64 pid;
      int pidfd;

      if (!g_ascii_string_to_unsigned (name, 10, 2, G_MAXINT, &pid, NULL) || (pid_t) pid == getpid ())
        continue;
      /* Open the pidfd first, then check: the pid cannot be reused under us. */
      pidfd = (int) syscall (SYS_pidfd_open, (pid_t) pid, 0);
      if (pidfd < 0)
        continue;
      if (!test_cmdline_mentions ((pid_t) pid, folder))
        {
          close (pidfd);
          continue;
        }
      syscall (SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
      g_array_append_val (pidfds, pidfd);
    }
  for (guint i = 0; i < pidfds->len; i++)
    {
      int pidfd = g_array_index (pidfds, int, i);
      if (!pidfd_wait_exit (pidfd, 10000))
        g_printerr ("# a process of %s survived SIGKILL for 10 s\n", folder);
      close (pidfd);
    }
  g_dir_rewind (proc);
  while ((name = g_dir_read_name (proc)) != NULL)
    {
      guint64 pid;

      if (g_ascii_string_to_unsigned (name, 10, 2, G_MAXINT, &pid, NULL)
          && test_process_parent ((pid_t) pid) == getpid () && test_process_state ((pid_t) pid) == 'Z')
        waitpid ((pid_t) pid, NULL, WNOHANG);
    }
}

static void
print_tail (const char *path)
{
  g_autofree char *text = NULL;
  gsize length = 0;

  if (!g_file_get_contents (path, &text, &length, NULL))
    return;
  g_printerr ("# ---- %s%s ----\n%s\n", path, length > 8192 ? " (last 8 KB)" : "",
              length > 8192 ? text + length - 8192 : text);
}

/* After a failure: what vmherdd and the guests logged. */
static void
print_logs (const char *folder)
{
  g_autofree char *log_dir = g_build_filename (folder, "log", NULL);
  g_autoptr(GDir) top = g_dir_open (folder, 0, NULL);
  g_autoptr(GDir) logs = g_dir_open (log_dir, 0, NULL);
  const char *name;

  while (top != NULL && (name = g_dir_read_name (top)) != NULL)
    if (g_str_has_prefix (name, "vmherdd-"))
      {
        g_autofree char *path = g_build_filename (folder, name, NULL);
        print_tail (path);
      }
  while (logs != NULL && (name = g_dir_read_name (logs)) != NULL)
    {
      g_autofree char *path = g_build_filename (log_dir, name, NULL);
      print_tail (path);
    }
}

/* ---- the fixture (in the child) ---- */

static char *
path_in (Fixture *f, const char *relative)
{
  return g_build_filename (f->dir, relative, NULL);
}

static void
fixture_init (Fixture *f)
{
  g_autofree char *host = NULL;

  memset (f, 0, sizeof *f);
  f->dir = test_folder (getppid ());
  g_assert_true (g_file_test (f->dir, G_FILE_TEST_IS_DIR));
  f->qemu = g_find_program_in_path ("qemu-system-x86_64");
  g_assert_nonnull (f->qemu);
  f->conf = path_in (f, "vmherd.conf");
  f->vm_dir = path_in (f, "vms");
  f->control = path_in (f, "run/control");
  f->log = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  f->strings = g_ptr_array_new_with_free_func (g_free);
  g_assert_cmpint (g_mkdir (f->vm_dir, 0755), ==, 0);
  host = g_strdup_printf ("[daemon]\nvm-dir = vms\nrun-dir = run\nstate-dir = state\nlog-dir = log\n"
                          "qemu = %s\nqemu-user = nobody\nqemu-group = nogroup\n"
                          "control-group = " CONTROL_GROUP "\n", f->qemu);
  test_write_file (f->conf, host);
}

static pid_t
daemon_pid (Fixture *f)
{
  const char *id = g_subprocess_get_identifier (f->daemon);

  g_assert_nonnull (id);
  return (pid_t) g_ascii_strtoll (id, NULL, 10);
}

/* The pids in run-dir/vm/NAME/pid of the QEMUs that are alive. */
static GArray *
live_guests (Fixture *f)
{
  g_autofree char *vm_run = path_in (f, "run/vm");
  g_autoptr(GDir) dir = g_dir_open (vm_run, 0, NULL);
  GArray *pids = g_array_new (FALSE, FALSE, sizeof (pid_t));
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (vm_run, name, "pid", NULL);
      g_autofree char *text = NULL;
      pid_t pid;

      if (!g_file_get_contents (path, &text, NULL, NULL))
        continue;
      pid = (pid_t) g_ascii_strtoll (text, NULL, 10);
      if (pid > 0 && test_process_alive (pid))
        g_array_append_val (pids, pid);
    }
  return pids;
}

static void
fixture_finish (Fixture *f)
{
  /* vmherdd must have survived whatever the test did to it; SIGTERM ends it cleanly
   * (under LeakSanitizer: without leaks) and leaves every guest running. */
  if (f->daemon != NULL)
    {
      g_autoptr(GArray) guests = NULL;
      g_autoptr(GError) error = NULL;

      g_assert_true (test_process_alive (daemon_pid (f)));
      guests = live_guests (f);
      g_subprocess_send_signal (f->daemon, SIGTERM);
      g_subprocess_wait (f->daemon, NULL, &error);
      g_assert_no_error (error);
      g_assert_true (g_subprocess_get_if_exited (f->daemon));
      g_assert_cmpint (g_subprocess_get_exit_status (f->daemon), ==, 0);
      for (guint i = 0; i < guests->len; i++)
        g_assert_true (test_process_alive (g_array_index (guests, pid_t, i)));
    }
  g_clear_pointer (&f->ctl, control_client_free);
  g_clear_pointer (&f->events, control_client_free);
  g_clear_object (&f->daemon);    /* the parent kills the guests */
  g_ptr_array_unref (f->log);
  g_ptr_array_unref (f->strings);
  g_free (f->dir);
  g_free (f->conf);
  g_free (f->vm_dir);
  g_free (f->control);
  g_free (f->qemu);
}

static char *
vm_file (Fixture *f, const char *name)
{
  g_autofree char *file = g_strdup_printf ("%s.conf", name);

  return g_build_filename (f->vm_dir, file, NULL);
}

/* Writes in place (open, truncate, write, close), as `cat > FILE` does. */
static void
write_in_place (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, text, strlen (text)), ==, (gssize) strlen (text));
  g_assert_cmpint (close (fd), ==, 0);
}

/* A BIOS-only guest: vm_keys go into [vm], sections follow [health]. */
static char *
bios_vm (const char *vm_keys, const char *sections)
{
  return g_strdup_printf ("[vm]\nmemory = 64M\n%s" HEALTH "%s", vm_keys ? vm_keys : "",
                          sections ? sections : "");
}

static void
write_vm (Fixture *f, const char *name, const char *vm_keys, const char *sections)
{
  g_autofree char *path = vm_file (f, name);
  g_autofree char *text = bios_vm (vm_keys, sections);

  write_in_place (path, text);
}

/* ---- vmherdd ---- */

static void
connect_clients (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = NULL;

  g_clear_pointer (&f->ctl, control_client_free);
  g_clear_pointer (&f->events, control_client_free);
  f->ctl = control_client_connect (f->control, &error);
  g_assert_no_error (error);
  f->events = control_client_connect (f->control, &error);
  g_assert_no_error (error);
  ret = control_client_call (f->events, "events", NULL, CALL_TIMEOUT_MS, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
}

/* Starts vmherdd -f and returns once it said READY=1 on $NOTIFY_SOCKET (it listens on the
 * control socket by then), subscribed to its events. */
static void
daemon_start (Fixture *f)
{
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autofree char *vmherdd = test_build_path ("vmherdd");
  g_autofree char *log_name = g_strdup_printf ("vmherdd-%u.log", ++f->n_daemons);
  g_autofree char *log_path = path_in (f, log_name);
  g_autofree char *notify_path = path_in (f, "notify.sock");
  g_autoptr(GError) error = NULL;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct pollfd fds[2];
  char message[64] = "";
  gssize received;
  int ready;

  g_unlink (notify_path);
  g_assert_cmpuint (strlen (notify_path), <, sizeof addr.sun_path);
  strcpy (addr.sun_path, notify_path);
  fds[0] = (struct pollfd) { .fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), .events = POLLIN };
  g_assert_cmpint (fds[0].fd, >=, 0);
  g_assert_cmpint (bind (fds[0].fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  g_subprocess_launcher_setenv (launcher, "NOTIFY_SOCKET", notify_path, TRUE);
  g_subprocess_launcher_set_stdin_file_path (launcher, "/dev/null");
  g_subprocess_launcher_set_stdout_file_path (launcher, log_path);
  g_subprocess_launcher_set_stderr_file_path (launcher, log_path);
  g_clear_object (&f->daemon);
  f->daemon = g_subprocess_launcher_spawn (launcher, &error, vmherdd, "-f", "--config", f->conf, NULL);
  g_assert_no_error (error);
  /* Readiness, or the daemon's death: never a fixed delay. */
  fds[1] = (struct pollfd) { .fd = (int) syscall (SYS_pidfd_open, daemon_pid (f), 0), .events = POLLIN };
  g_assert_cmpint (fds[1].fd, >=, 0);
  do
    ready = poll (fds, 2, READY_TIMEOUT_MS);
  while (ready < 0 && errno == EINTR);
  if (ready <= 0 || !(fds[0].revents & POLLIN))
    {
      g_autofree char *log = test_read_file (log_path);
      g_error ("vmherdd %s within %d ms; its log:\n%s",
               ready > 0 ? "exited before it was ready" : "did not say READY=1", READY_TIMEOUT_MS, log);
    }
  received = recv (fds[0].fd, message, sizeof message - 1, 0);
  g_assert_cmpint (received, >, 0);
  g_assert_cmpstr (message, ==, "READY=1");
  close (fds[0].fd);
  close (fds[1].fd);
  g_unlink (notify_path);
  connect_clients (f);
}

/* kill -9 vmherdd; returns once it is gone. */
static void
daemon_kill (Fixture *f)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_force_exit (f->daemon);
  g_subprocess_wait (f->daemon, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_signaled (f->daemon));
  g_assert_cmpint (g_subprocess_get_term_sig (f->daemon), ==, SIGKILL);
  g_clear_object (&f->daemon);
  g_clear_pointer (&f->ctl, control_client_free);
  g_clear_pointer (&f->events, control_client_free);
}

/* SIGSTOPs vmherdd and returns once it is stopped (SIGCONT lets it go on). */
static void
daemon_freeze (Fixture *f)
{
  siginfo_t info = { 0 };

  g_assert_cmpint (kill (daemon_pid (f), SIGSTOP), ==, 0);
  /* WNOWAIT: GLib's child watch still gets the exit, whenever it comes. */
  g_assert_cmpint (waitid (P_PID, (id_t) daemon_pid (f), &info, WSTOPPED | WNOWAIT), ==, 0);
  g_assert_cmpint (info.si_code, ==, CLD_STOPPED);
}

static JsonObject *json_args (const char *format, ...) G_GNUC_PRINTF (1, 2);

/* Arguments from JSON text: json_args ("{\"vm\":\"%s\"}", name). */
static JsonObject *
json_args (const char *format, ...)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  JsonObject *object;
  va_list ap;

  va_start (ap, format);
  text = g_strdup_vprintf (format, ap);
  va_end (ap);
  object = control_line_parse (text, strlen (text), &error);
  g_assert_no_error (error);
  return object;
}

static JsonNode *
call (Fixture *f, const char *command, JsonObject *args)
{
  g_autoptr(GError) error = NULL;
  JsonNode *ret = control_client_call (f->ctl, command, args, CALL_TIMEOUT_MS, NULL, NULL, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (ret);
  return ret;
}

static void
call_vm (Fixture *f, const char *command, const char *vm)
{
  g_autoptr(JsonObject) args = json_args ("{\"vm\":\"%s\"}", vm);

  json_node_unref (call (f, command, args));
}

static JsonObject *
status (Fixture *f, const char *vm)
{
  g_autoptr(JsonObject) args = json_args ("{\"vm\":\"%s\"}", vm);
  g_autoptr(JsonNode) ret = call (f, "status", args);

  g_assert_true (JSON_NODE_HOLDS_OBJECT (ret));
  return json_object_ref (json_node_get_object (ret));
}

static pid_t
vm_pid (Fixture *f, const char *vm)
{
  g_autoptr(JsonObject) st = status (f, vm);

  return (pid_t) json_object_get_int_member (st, "pid");
}

static char *
vm_state (Fixture *f, const char *vm)
{
  g_autoptr(JsonObject) st = status (f, vm);

  return g_strdup (json_object_get_string_member (st, "state"));
}

/* The names in `list`, space-separated. */
static char *
list_names (Fixture *f)
{
  g_autoptr(JsonNode) ret = call (f, "list", NULL);
  JsonArray *list = json_node_get_array (ret);
  GString *names = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (list); i++)
    g_string_append_printf (names, "%s%s", i ? " " : "",
                            json_object_get_string_member (json_array_get_object_element (list, i), "name"));
  return g_string_free (names, FALSE);
}

/* ---- events ---- */

static const char *
event_member (JsonObject *event, const char *member)
{
  JsonObject *data = json_object_get_object_member (event, "data");

  if (data == NULL || !json_object_has_member (data, member))
    return NULL;
  return json_object_get_string_member (data, member);
}

static gboolean
event_is (JsonObject *event, const char *kind, const char *vm)
{
  return g_strcmp0 (json_object_get_string_member (event, "event"), kind) == 0
         && g_strcmp0 (event_member (event, "vm"), vm) == 0;
}

/* "STATE web running, CONFIG web pending, ..." for messages. */
static char *
log_summary (Fixture *f, guint from)
{
  GString *s = g_string_new (NULL);

  for (guint i = from; i < f->log->len; i++)
    {
      JsonObject *e = f->log->pdata[i];
      const char *kind = json_object_get_string_member (e, "event");
      const char *detail = g_strcmp0 (kind, "STATE") == 0 ? event_member (e, "state")
                           : g_strcmp0 (kind, "CONFIG") == 0 ? event_member (e, "change")
                           : event_member (e, "event");
      g_string_append_printf (s, "%s%s %s %s", s->len ? ", " : "", kind, event_member (e, "vm"), detail);
    }
  return g_string_free (s, FALSE);
}

/* Reads the next event into f->log; fails the test at the deadline. */
static JsonObject *
read_event (Fixture *f, gint64 deadline, const char *what)
{
  g_autoptr(GError) error = NULL;
  gint64 left_ms = (deadline - g_get_monotonic_time ()) / 1000;
  JsonObject *event;

  if (left_ms <= 0)
    {
      g_autofree char *seen = log_summary (f, 0);
      g_error ("timed out waiting for %s; events so far: %s", what, seen);
    }
  event = control_client_read_line (f->events, (guint) left_ms, &error);
  if (event == NULL)
    {
      g_autofree char *seen = log_summary (f, 0);
      g_error ("waiting for %s: %s; events so far: %s", what, error->message, seen);
    }
  g_ptr_array_add (f->log, event);
  return event;
}

/* Index in f->log of the first event at or after from that is `kind` for vm with member
 * == value (STATE: state, CONFIG: change, QMP: event); reads events until there is one. */
static guint
wait_event (Fixture *f, guint from, const char *kind, const char *vm, const char *value, guint timeout_ms)
{
  const char *member = strcmp (kind, "STATE") == 0 ? "state" : strcmp (kind, "CONFIG") == 0 ? "change" : "event";
  g_autofree char *what = g_strdup_printf ("%s %s %s", kind, vm, value);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (guint i = from;; i++)
    {
      JsonObject *e = i < f->log->len ? f->log->pdata[i] : read_event (f, deadline, what);
      if (event_is (e, kind, vm) && g_strcmp0 (event_member (e, member), value) == 0)
        return i;
    }
}

static guint
wait_state_event (Fixture *f, guint from, const char *vm, const char *state)
{
  return wait_event (f, from, "STATE", vm, state, STATE_TIMEOUT_MS);
}

static guint
wait_config_event (Fixture *f, guint from, const char *vm, const char *change)
{
  return wait_event (f, from, "CONFIG", vm, change, STATE_TIMEOUT_MS);
}

/* The values of one kind of event for vm in f->log[from..to], space-separated:
 * seq (f, "STATE", "web", 3, 9) = "stopping stopped".  Owned by f. */
static const char *
seq (Fixture *f, const char *kind, const char *vm, guint from, guint to)
{
  const char *member = strcmp (kind, "STATE") == 0 ? "state" : strcmp (kind, "CONFIG") == 0 ? "change" : "event";
  GString *s = g_string_new (NULL);

  for (guint i = from; i <= to && i < f->log->len; i++)
    if (event_is (f->log->pdata[i], kind, vm))
      g_string_append_printf (s, "%s%s", s->len ? " " : "", event_member (f->log->pdata[i], member));
  g_ptr_array_add (f->strings, g_string_free (s, FALSE));
  return f->strings->pdata[f->strings->len - 1];
}

static const char *
state_seq (Fixture *f, const char *vm, guint from, guint to)
{
  return seq (f, "STATE", vm, from, to);
}

/* The reason of a STATE or CONFIG event. */
static const char *
reason_at (Fixture *f, guint index)
{
  return event_member (f->log->pdata[index], "reason");
}

/* Starts vm and reads its events up to running; returns its QEMU's pid. */
static pid_t
start_vm (Fixture *f, const char *vm)
{
  guint m = f->log->len, i;

  call_vm (f, "start", vm);
  i = wait_state_event (f, m, vm, "running");
  g_assert_cmpstr (state_seq (f, vm, m, i), ==, "starting running");
  return vm_pid (f, vm);
}

/* Reads the events already sent into f->log, without waiting for more. */
static void
drain_events (Fixture *f)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) CALL_TIMEOUT_MS * 1000;

  for (;;)
    {
      struct pollfd p = { .fd = control_client_get_fd (f->events), .events = POLLIN };

      if (!control_client_has_buffered_line (f->events) && poll (&p, 1, 0) <= 0)
        return;
      read_event (f, deadline, "the rest of an event line");
    }
}

/* Waits until `status` says vm is in state: for guests that vmherdd started (or adopted)
 * before this test could subscribe.  Each round blocks on the next event.  On return the
 * events sent before the answer are in f->log, so a mark taken then sees only newer ones. */
static void
wait_state (Fixture *f, const char *vm, const char *state)
{
  g_autofree char *what = g_strdup_printf ("vm %s to be %s", vm, state);
  gint64 deadline = g_get_monotonic_time () + (gint64) STATE_TIMEOUT_MS * 1000;

  for (;;)
    {
      g_autofree char *now = vm_state (f, vm);
      if (strcmp (now, state) == 0)
        break;
      read_event (f, deadline, what);
    }
  drain_events (f);
}

/* ---- the vmherd CLI ---- */

typedef struct
{
  gboolean in_group;            /* nobody, plus CONTROL_GROUP as a supplementary group */
  gid_t group;
} Nobody;

static void
become_nobody (gpointer data)
{
  const Nobody *n = data;

  if (setgroups (n->in_group ? 1 : 0, &n->group) < 0 || setgid (NOBODY) < 0 || setuid (NOBODY) < 0)
    _exit (125);
}

/* Runs vmherd --config CONF ARGS... (as nobody when as != NULL; with
 * VMHERD_CONTROL_SOCKET=socket when set) and returns its exit status. */
static int
cli_full (Fixture *f, const Nobody *as, const char *socket, char **out, char **err, va_list ap)
{
  g_autofree char *vmherd = test_build_path ("vmherd");
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_auto(GStrv) envp = g_get_environ ();
  g_autoptr(GError) error = NULL;
  const char *arg;
  int wait_status = 0;

  if (as != NULL)
    {
      /* nobody may not reach the build tree (a clone in a 0700 folder): run copies from
       * this test's folder, which is 0755; the front execs vmherd-full beside it. */
      static const char *const programs[] = { "vmherd", "vmherd-full" };

      for (gsize i = 0; i < G_N_ELEMENTS (programs); i++)
        {
          g_autofree char *built = test_build_path (programs[i]);
          g_autofree char *copy = g_build_filename (f->dir, programs[i], NULL);
          g_autoptr(GFile) from = g_file_new_for_path (built);
          g_autoptr(GFile) to = g_file_new_for_path (copy);

          if (!g_file_test (copy, G_FILE_TEST_EXISTS))
            {
              g_file_copy (from, to, G_FILE_COPY_NONE, NULL, NULL, NULL, &error);
              g_assert_no_error (error);
              g_assert_cmpint (g_chmod (copy, 0755), ==, 0);
            }
        }
      g_free (vmherd);
      vmherd = g_build_filename (f->dir, "vmherd", NULL);
    }
  g_ptr_array_add (argv, vmherd);
  g_ptr_array_add (argv, "--config");
  g_ptr_array_add (argv, f->conf);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, (char *) arg);
  g_ptr_array_add (argv, NULL);
  if (socket != NULL)
    envp = g_environ_setenv (envp, "VMHERD_CONTROL_SOCKET", socket, TRUE);
  g_free (*out);
  g_free (*err);
  g_spawn_sync (NULL, (char **) argv->pdata, envp, G_SPAWN_DEFAULT, as ? become_nobody : NULL,
                (gpointer) as, out, err, &wait_status, &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (wait_status));
  return WEXITSTATUS (wait_status);
}

static int
cli (Fixture *f, char **out, char **err, ...)
{
  va_list ap;
  int status;

  va_start (ap, err);
  status = cli_full (f, NULL, NULL, out, err, ap);
  va_end (ap);
  return status;
}

static int
cli_as (Fixture *f, const Nobody *as, const char *socket, char **out, char **err, ...)
{
  va_list ap;
  int status;

  va_start (ap, err);
  status = cli_full (f, as, socket, out, err, ap);
  va_end (ap);
  return status;
}

/* ---- raw clients, for what the blocking client will not do ---- */

static int
raw_connect (Fixture *f)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct timeval timeout = { .tv_sec = 10 };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  strcpy (addr.sun_path, f->control);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  /* A send that blocks this long means the daemon stopped reading: fail, do not hang. */
  g_assert_cmpint (setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout), ==, 0);
  return fd;
}

static void
raw_send (int fd, const char *text)
{
  gsize length = strlen (text);

  g_assert_cmpint (send (fd, text, length, MSG_NOSIGNAL), ==, (gssize) length);
}

/* Reads one line (buffering what follows in `in`) and parses it. */
static JsonObject *
raw_read (int fd, GString *in)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) CALL_TIMEOUT_MS * 1000;
  g_autoptr(GError) error = NULL;
  JsonObject *object;
  char *newline;

  while ((newline = memchr (in->str, '\n', in->len)) == NULL)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      char buffer[4096];
      gssize n;

      g_assert_cmpint (poll (&p, 1, (int) MAX (0, (deadline - g_get_monotonic_time ()) / 1000)), ==, 1);
      n = recv (fd, buffer, sizeof buffer, 0);
      g_assert_cmpint (n, >, 0);
      g_string_append_len (in, buffer, n);
    }
  object = control_line_parse (in->str, (gsize) (newline - in->str), &error);
  g_assert_no_error (error);
  g_string_erase (in, 0, newline - in->str + 1);
  return object;
}

static const char *
error_member (JsonObject *answer, const char *member)
{
  g_assert_true (json_object_has_member (answer, "error"));
  return json_object_get_string_member (json_object_get_object_member (answer, "error"), member);
}

/* ---- the tests ---- */

/* start, list, status, the CLI's exit codes; stop --timeout 1 of a guest that ignores
 * system_powerdown walks the ladder to `quit` and reaches stopped. */
static void
test_stop_ladder_and_cli (Fixture *f)
{
  g_autofree char *out = NULL, *err = NULL, *expected = NULL, *nosuch = NULL, *log_text = NULL;
  g_autofree char *path = vm_file (f, "alpha");
  g_autofree char *vm_log = path_in (f, "log/alpha.log");
  g_autoptr(JsonObject) st = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonObject *json, *last;
  JsonArray *argv, *history;
  guint m, i;
  pid_t pid;

  write_vm (f, "alpha", "powerdown-timeout = 30s\n", NULL);
  daemon_start (f);

  g_assert_cmpint (cli (f, &out, &err, "list", NULL), ==, 0);
  g_assert_cmpstr (out, ==,
                   "NAME                 STATE          PID    UPTIME  MEMORY RESTARTS HEALTH    \n"
                   "alpha                stopped          -         -     64M        0 -         \n");
  g_assert_cmpstr (err, ==, "");

  m = f->log->len;
  g_assert_cmpint (cli (f, &out, &err, "start", "alpha", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "vm 'alpha': running\n");
  i = wait_state_event (f, m, "alpha", "running");
  g_assert_cmpstr (state_seq (f, "alpha", m, i), ==, "starting running");
  pid = vm_pid (f, "alpha");
  g_assert_true (test_process_alive (pid));
  g_assert_true (test_cmdline_mentions (pid, "guest=alpha,debug-threads=on"));
  expected = g_strdup_printf ("QMP ready, guest running (pid %d)", (int) pid);
  g_assert_cmpstr (reason_at (f, i), ==, expected);

  /* list: one row with the live values. */
  g_assert_cmpint (cli (f, &out, &err, "list", NULL), ==, 0);
  g_clear_pointer (&expected, g_free);
  expected = g_strdup_printf ("\nalpha +running +%d +(-|0m0[0-9]s) +64M +0 +(ok|pending) *\n$", (int) pid);
  g_assert_true (g_regex_match_simple (expected, out, 0, 0));

  /* status --json: everything known. */
  g_assert_cmpint (cli (f, &out, &err, "status", "alpha", "--json", NULL), ==, 0);
  json_parser_load_from_data (parser, out, -1, &error);
  g_assert_no_error (error);
  json = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (json, "name"), ==, "alpha");
  g_assert_cmpstr (json_object_get_string_member (json, "state"), ==, "running");
  g_assert_cmpint (json_object_get_int_member (json, "pid"), ==, pid);
  g_assert_cmpint (json_object_get_int_member (json, "memory"), ==, 64 << 20);
  g_assert_cmpint (json_object_get_int_member (json, "cpus"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (json, "restarts"), ==, 0);
  g_assert_cmpstr (json_object_get_string_member (json, "config-file"), ==, path);
  g_assert_cmpstr (json_object_get_string_member (json, "restart-policy"), ==, "on-failure");
  g_assert_false (json_object_get_boolean_member (json, "autostart"));
  g_assert_false (json_object_get_boolean_member (json, "pending-config"));
  g_assert_true (json_object_get_null_member (json, "pending"));
  g_assert_true (json_object_get_null_member (json, "last-failure"));
  g_assert_true (json_object_get_null_member (json, "config-error"));
  g_assert_false (json_object_has_member (json, "qemu-stderr"));
  g_assert_true (g_regex_match_simple ("^(ok|pending)$", json_object_get_string_member (json, "health"), 0, 0));
  g_clear_pointer (&expected, g_free);
  expected = path_in (f, "run/vm/alpha/qmp.sock");
  g_assert_cmpstr (json_object_get_string_member (json, "qmp-socket"), ==, expected);
  g_assert_cmpstr (json_object_get_string_member (json, "log"), ==, vm_log);
  argv = json_object_get_array_member (json, "argv");
  g_assert_cmpstr (json_array_get_string_element (argv, 0), ==, f->qemu);
  g_assert_cmpstr (json_array_get_string_element (argv, 1), ==, "-name");
  g_assert_cmpstr (json_array_get_string_element (argv, 2), ==, "guest=alpha,debug-threads=on");
  history = json_object_get_array_member (json, "history");
  g_assert_cmpuint (json_array_get_length (history), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (history, 0), "state"), ==,
                   "starting");
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (history, 0), "reason"), ==,
                   "starting QEMU");
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (history, 1), "state"), ==,
                   "running");

  /* status as text, one "key value" line each. */
  g_assert_cmpint (cli (f, &out, &err, "status", "alpha", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "\nstate           running\n"));
  g_assert_nonnull (strstr (out, "\nrestart-policy  on-failure\n"));
  g_assert_nonnull (strstr (out, "\nhistory\n"));

  /* Exit codes: 1 refused, 2 usage, 3 unreachable. */
  g_assert_cmpint (cli (f, &out, &err, "start", "alpha", NULL), ==, 1);
  g_assert_cmpstr (err, ==, "vm 'alpha' is already running\n");
  g_assert_cmpint (cli (f, &out, &err, "status", "nosuch", NULL), ==, 1);
  nosuch = g_strdup_printf ("no VM named 'nosuch' in %s (known: alpha)\n", f->vm_dir);
  g_assert_cmpstr (err, ==, nosuch);
  g_assert_cmpint (cli (f, &out, &err, NULL), ==, 2);
  g_assert_cmpint (cli (f, &out, &err, "status", NULL), ==, 2);
  g_assert_cmpstr (err, ==, "usage: vmherd status NAME [--json]\n");
  g_assert_cmpint (cli (f, &out, &err, "stop", "alpha", "--timeout", "soon", NULL), ==, 2);
  g_assert_cmpint (cli (f, &out, &err, "frobnicate", NULL), ==, 2);
  g_assert_true (g_str_has_prefix (err, "vmherd: unknown command 'frobnicate'\n"));
  g_clear_pointer (&expected, g_free);
  expected = path_in (f, "run/no-daemon-here");
  g_assert_cmpint (cli_as (f, NULL, expected, &out, &err, "list", NULL), ==, 3);
  g_clear_pointer (&expected, g_free);
  expected = g_strdup_printf ("cannot reach vmherdd at %s/run/no-daemon-here: No such file or directory "
                              "(is vmherdd running?)\n", f->dir);
  g_assert_cmpstr (err, ==, expected);
  g_assert_true (test_process_alive (pid));

  /* The ladder: powerdown (ignored by the BIOS) for 1 s instead of the file's 30 s, then quit. */
  m = f->log->len;
  g_assert_cmpint (cli (f, &out, &err, "stop", "alpha", "--timeout", "1", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "vm 'alpha': stopped\n");
  i = wait_state_event (f, m, "alpha", "stopped");
  g_assert_cmpstr (state_seq (f, "alpha", m, i), ==, "stopping stopped");
  g_assert_cmpstr (seq (f, "QMP", "alpha", m, i), ==, "POWERDOWN SHUTDOWN");
  g_assert_cmpstr (reason_at (f, i), ==, "stopped by operator (QEMU exited with status 0)");
  log_text = test_read_file (vm_log);
  g_assert_nonnull (strstr (log_text, " vmherd: stop: powerdown (next step in 1000 ms)\n"));
  g_assert_nonnull (strstr (log_text, " vmherd: stop: quit (next step in 5000 ms)\n"));
  g_assert_null (strstr (log_text, " vmherd: stop: term"));
  g_assert_false (test_process_alive (pid));

  st = status (f, "alpha");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "stopped");
  g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (st, "uptime"), ==, 0);
  g_assert_cmpstr (json_object_get_string_member (st, "exit-status"), ==, "exited with status 0");
  g_assert_true (json_object_get_null_member (st, "last-failure"));
  history = json_object_get_array_member (st, "history");
  last = json_array_get_object_element (history, json_array_get_length (history) - 1);
  g_assert_cmpstr (json_object_get_string_member (last, "state"), ==, "stopped");
  g_assert_cmpint (cli (f, &out, &err, "stop", "alpha", NULL), ==, 1);
  g_assert_cmpstr (err, ==, "vm 'alpha' is already stopped\n");
}

/* kill -9 of a QEMU: restarted after 1 s, then after 2 s (the delay doubles). */
static void
test_qemu_killed (Fixture *f)
{
  g_autoptr(JsonObject) st = NULL;
  pid_t pid1, pid2, pid3;
  guint m, i;

  write_vm (f, "k", "restart-limit = 3\nrestart-window = 10m\n", NULL);
  daemon_start (f);
  pid1 = start_vm (f, "k");

  m = f->log->len;
  g_assert_cmpint (kill (pid1, SIGKILL), ==, 0);
  i = wait_state_event (f, m, "k", "running");
  g_assert_cmpstr (state_seq (f, "k", m, i), ==, "backoff starting running");
  g_assert_cmpstr (reason_at (f, wait_state_event (f, m, "k", "backoff")), ==,
                   "QEMU was killed by signal 9 (Killed) unexpectedly; restarting with a backoff of 1000 ms from its last start (attempt 1 of 3)");
  pid2 = vm_pid (f, "k");
  g_assert_cmpint (pid2, !=, pid1);
  g_assert_true (test_process_alive (pid2));

  m = f->log->len;
  g_assert_cmpint (kill (pid2, SIGKILL), ==, 0);
  i = wait_state_event (f, m, "k", "running");
  g_assert_cmpstr (state_seq (f, "k", m, i), ==, "backoff starting running");
  g_assert_cmpstr (reason_at (f, wait_state_event (f, m, "k", "backoff")), ==,
                   "QEMU was killed by signal 9 (Killed) unexpectedly; restarting with a backoff of 2000 ms from its last start (attempt 2 of 3)");
  pid3 = vm_pid (f, "k");
  g_assert_true (test_process_alive (pid3));
  g_assert_cmpint (pid3, !=, pid2);

  st = status (f, "k");
  g_assert_cmpint (json_object_get_int_member (st, "restarts"), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (st, "last-failure"), ==,
                   "QEMU was killed by signal 9 (Killed) unexpectedly");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "running");
}

/* A QEMU that exits at once (a bad option through the escape hatch): FAILED after the
 * limit, QEMU's own words in status; an operator's start tries again from zero. */
static void
test_qemu_exits_at_once (Fixture *f)
{
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr(JsonObject) st = NULL;
  const char *stderr_text;
  guint m, i;

  write_vm (f, "bad", "restart-limit = 2\nrestart-window = 10m\n", "[qemu]\nextra-args = -no-such-option\n");
  daemon_start (f);

  m = f->log->len;
  g_assert_cmpint (cli (f, &out, &err, "start", "bad", NULL), ==, 1);
  g_assert_true (g_str_has_prefix (err, "vm 'bad' did not start: "));
  i = wait_state_event (f, m, "bad", "failed");
  g_assert_cmpstr (state_seq (f, "bad", m, i), ==, "starting backoff starting backoff starting failed");
  /* QMP closing or the exit may be seen first: either way the reason has QEMU's status. */
  g_assert_true (g_str_has_suffix (reason_at (f, wait_state_event (f, m, "bad", "backoff")),
                                   "QEMU exited with status 1; restarting with a backoff of 1000 ms from its last start (attempt 1 of 2)")
                 || g_str_has_suffix (reason_at (f, wait_state_event (f, m, "bad", "backoff")),
                                      "QEMU exited with status 1 unexpectedly while starting; restarting with a "
                                      "backoff of 1000 ms from its last start (attempt 1 of 2)"));
  g_assert_true (g_str_has_suffix (reason_at (f, i), "; 3 failures within 600 s, giving up until an "
                                                     "operator starts it"));

  st = status (f, "bad");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "failed");
  g_assert_cmpint (json_object_get_int_member (st, "restarts"), ==, 2);
  g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, 0);
  stderr_text = json_object_get_string_member (st, "qemu-stderr");
  /* QEMU's lines of the last run only: none of our own, none of the two runs before. */
  g_assert_cmpstr (stderr_text, ==, "qemu-system-x86_64: -no-such-option: invalid option");
  g_assert_cmpint (cli (f, &out, &err, "status", "bad", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "\nqemu-stderr\n"));
  g_assert_nonnull (strstr (out, "-no-such-option: invalid option\n"));

  /* FAILED stays failed until asked; an operator's start counts from zero again. */
  m = f->log->len;
  g_assert_cmpint (cli (f, &out, &err, "start", "bad", NULL), ==, 1);
  i = wait_state_event (f, m, "bad", "backoff");
  g_assert_cmpstr (state_seq (f, "bad", m, i), ==, "starting backoff");
  g_assert_true (g_str_has_suffix (reason_at (f, i), "; restarting with a backoff of 1000 ms from its last start (attempt 1 of 2)"));
  g_clear_pointer (&st, json_object_unref);
  st = status (f, "bad");
  g_assert_nonnull (strstr (json_object_get_string_member (st, "qemu-stderr"), "-no-such-option: invalid option"));
  g_assert_cmpint (cli (f, &out, &err, "stop", "bad", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "vm 'bad': stopped\n");
  g_clear_pointer (&st, json_object_unref);
  st = status (f, "bad");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "stopped");
  g_assert_false (json_object_has_member (st, "qemu-stderr"));
}

static gint64
health_checks (Fixture *f, const char *vm)
{
  g_autoptr(JsonObject) st = status (f, vm);

  return json_object_get_int_member (st, "health-checks");
}

/* The daemon's real time of event index, in us. */
static gint64
event_time (Fixture *f, guint index)
{
  JsonObject *ts = json_object_get_object_member (f->log->pdata[index], "timestamp");

  return json_object_get_int_member (ts, "seconds") * G_USEC_PER_SEC
         + json_object_get_int_member (ts, "microseconds");
}

/* SIGSTOP of a QEMU: QMP stops answering; the health check finds it after qmp-failures
 * misses, and the wedged QEMU is stopped (SIGTERM, then SIGCONT so that the stopped
 * process gets it: QEMU exits at once instead of waiting term-timeout for SIGKILL) and
 * restarted.  Timed on the daemon's event stamps: found within qmp-interval x
 * qmp-failures + qmp-timeout of the SIGSTOP, and running again within that + the stop + one
 * start (the longer of the first start and this one).  The daemon's timers may fire a
 * little late on a loaded machine: 250 ms are allowed for that. */
static void
test_qemu_wedged (Fixture *f)
{
  g_autofree char *log_path = path_in (f, "log/wedge.log");
  g_autofree char *wedge_path = vm_file (f, "wedge");
  g_autofree char *log_text = NULL;
  const gint64 detect_max_ms = 200 * 2 + 500 + 250;      /* FAST_HEALTH, + late timers */
  gint64 t_stop, first_start_ms, detect_ms, kill_ms, restart_ms, one_start_ms, total_ms;
  guint m0, i0, m, i;
  pid_t pid1, pid2;

  write_in_place (wedge_path, "[vm]\nmemory = 64M\nterm-timeout = 500ms\n" FAST_HEALTH);
  daemon_start (f);
  m0 = f->log->len;
  pid1 = start_vm (f, "wedge");
  i0 = wait_state_event (f, m0, "wedge", "running");
  first_start_ms = (event_time (f, i0) - event_time (f, wait_state_event (f, m0, "wedge", "starting"))) / 1000;
  /* Past the 1 s between starts (the restart backoff) and answering: a healthy run. */
  test_wait_until (health_checks (f, "wedge") >= 6, STATE_TIMEOUT_MS, "6 answered health checks");

  m = f->log->len;
  t_stop = g_get_real_time ();
  g_assert_cmpint (kill (pid1, SIGSTOP), ==, 0);
  i = wait_state_event (f, m, "wedge", "running");
  detect_ms = (event_time (f, wait_state_event (f, m, "wedge", "stopping")) - t_stop) / 1000;
  kill_ms = (event_time (f, wait_state_event (f, m, "wedge", "starting"))
             - event_time (f, wait_state_event (f, m, "wedge", "stopping"))) / 1000;
  restart_ms = (event_time (f, i) - event_time (f, wait_state_event (f, m, "wedge", "starting"))) / 1000;
  one_start_ms = MAX (first_start_ms, restart_ms);
  total_ms = (event_time (f, i) - t_stop) / 1000;
  g_test_message ("SIGSTOP: found after %" G_GINT64_FORMAT " ms (at most %" G_GINT64_FORMAT
                  "), killed in %" G_GINT64_FORMAT " ms, started in %" G_GINT64_FORMAT " ms "
                  "(first start %" G_GINT64_FORMAT " ms): running again after %" G_GINT64_FORMAT " ms",
                  detect_ms, detect_max_ms, kill_ms, restart_ms, first_start_ms, total_ms);
  g_assert_cmpint (detect_ms, <=, detect_max_ms);
  g_assert_cmpint (kill_ms, <=, 500);
  g_assert_cmpint (total_ms, <=, detect_max_ms + kill_ms + one_start_ms);
  g_assert_cmpstr (state_seq (f, "wedge", m, i), ==, "stopping backoff starting running");
  g_assert_cmpstr (reason_at (f, wait_state_event (f, m, "wedge", "stopping")), ==,
                   "QEMU stopped answering QMP (2 query-status missed)");
  g_assert_cmpstr (reason_at (f, wait_state_event (f, m, "wedge", "backoff")), ==,
                   "QEMU stopped answering QMP (2 query-status missed); QEMU exited with status 0; "
                   "restarting with a backoff of 1000 ms from its last start (attempt 1 of 5)");
  pid2 = vm_pid (f, "wedge");
  g_assert_cmpint (pid2, !=, pid1);
  g_assert_false (test_process_alive (pid1));
  g_assert_true (test_process_alive (pid2));
  log_text = test_read_file (log_path);
  g_assert_nonnull (strstr (log_text, " vmherd: stop: term (next step in 500 ms)\n"));
  g_assert_null (strstr (log_text, " vmherd: stop: kill "));
}

/* kill -9 of vmherdd while 5 guests run: they all keep running, a new vmherdd re-adopts
 * each (same pid), and a kill -9 of an adopted QEMU is still noticed and restarted. */
static void
test_daemon_killed (Fixture *f)
{
  const char *const names[] = { "g1", "g2", "g3", "g4", "g5" };
  g_autoptr(JsonObject) st = NULL;
  pid_t pids[G_N_ELEMENTS (names)], pid;
  guint m, i;

  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    write_vm (f, names[n], "autostart = yes\n", NULL);
  daemon_start (f);
  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    {
      wait_state (f, names[n], "running");
      pids[n] = vm_pid (f, names[n]);
    }

  daemon_kill (f);
  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    g_assert_true (test_process_alive (pids[n]));

  daemon_start (f);
  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    {
      g_autofree char *found = g_strdup_printf ("found QEMU pid %d from an earlier vmherdd", (int) pids[n]);
      g_autofree char *adopted = g_strdup_printf ("re-adopted a running QEMU (pid %d)", (int) pids[n]);
      JsonArray *history;

      wait_state (f, names[n], "running");
      g_clear_pointer (&st, json_object_unref);
      st = status (f, names[n]);
      g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, pids[n]);
      history = json_object_get_array_member (st, "history");
      g_assert_cmpuint (json_array_get_length (history), ==, 2);
      g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (history, 0), "reason"), ==,
                       found);
      g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (history, 1), "reason"), ==,
                       adopted);
      g_assert_true (test_process_alive (pids[n]));
    }

  m = f->log->len;
  g_assert_cmpint (kill (pids[2], SIGKILL), ==, 0);
  i = wait_state_event (f, m, "g3", "running");
  g_assert_cmpstr (state_seq (f, "g3", m, i), ==, "backoff starting running");
  g_assert_cmpstr (reason_at (f, wait_state_event (f, m, "g3", "backoff")), ==,
                   "QEMU exited (adopted process: status unknown) unexpectedly; restarting with a "
                   "backoff of 1000 ms from its last start (attempt 1 of 5)");
  pid = vm_pid (f, "g3");
  g_assert_cmpint (pid, !=, pids[2]);
  g_assert_true (test_process_alive (pid));
  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    if (n != 2)
      {
        g_autofree char *state = vm_state (f, names[n]);
        g_assert_cmpstr (state, ==, "running");
        g_assert_cmpint (vm_pid (f, names[n]), ==, pids[n]);
      }
}

/* Malformed requests get an error line each; the connection and the daemon carry on. */
static void
test_control_malformed (Fixture *f)
{
  static const struct
  {
    const char *line;
    const char *class;
    const char *desc;           /* a prefix (the codec's own words are tested in test-control) */
  } cases[] = {
    { "this is not json\n", "InvalidArgument", "bad request: " },
    { "[1, 2]\n", "InvalidArgument", "bad request: " },
    { "{\"execute\": 42, \"id\": 1}\n", "InvalidArgument", "bad request: " },
    { "{\"execute\": \"list\", \"arguments\": [1], \"id\": 2}\n", "InvalidArgument", "bad request: " },
    { "{\"execute\": \"frobnicate\", \"id\": 3}\n", "CommandNotFound", "unknown command 'frobnicate'" },
    { "{\"execute\": \"status\", \"id\": 4}\n", "InvalidArgument", "missing argument \"vm\" (a VM name)" },
    { "{\"execute\": \"status\", \"arguments\": {\"vm\": \"../etc\"}, \"id\": 5}\n", "InvalidArgument",
      "'../etc' is not a valid VM name: it starts with '.' or '-'" },
    { "{\"execute\": \"status\", \"arguments\": {\"vm\": {\"name\": \"m\"}}, \"id\": 6}\n", "InvalidArgument",
      "argument \"vm\" is an object, not a string" },
    { "{\"execute\": \"status\", \"arguments\": {\"vm\": 7}, \"id\": 7}\n", "InvalidArgument",
      "argument \"vm\" is a number, not a string" },
    { "{\"execute\": \"stop\", \"arguments\": {\"vm\": \"m\", \"timeout\": [1]}, \"id\": 8}\n",
      "InvalidArgument", "argument \"timeout\" is an array, not a whole number" },
    { "{\"execute\": \"stop\", \"arguments\": {\"vm\": \"m\", \"timeout\": -5}, \"id\": 9}\n",
      "InvalidArgument", "argument \"timeout\" is -5" },
    { "{\"execute\": \"stop\", \"arguments\": {\"vm\": \"m\", \"force\": {}}, \"id\": 10}\n",
      "InvalidArgument", "argument \"force\" is an object, not a boolean" },
    { "{\"execute\": \"start\", \"arguments\": {\"vm\": \"nosuch\"}, \"id\": 11}\n", "NotFound",
      "no VM named 'nosuch'" },
  };
  g_autoptr(GString) in = g_string_new (NULL);
  g_autoptr(JsonObject) version = NULL;
  g_autofree char *state = NULL;
  int fd;

  write_vm (f, "m", NULL, NULL);
  daemon_start (f);
  fd = raw_connect (f);
  for (guint n = 0; n < G_N_ELEMENTS (cases); n++)
    {
      g_autoptr(JsonObject) answer = NULL;
      g_autofree char *start = NULL;

      raw_send (fd, cases[n].line);
      answer = raw_read (fd, in);

      start = g_strndup (error_member (answer, "desc"), strlen (cases[n].desc));
      g_assert_cmpstr (error_member (answer, "class"), ==, cases[n].class);
      g_assert_cmpstr (start, ==, cases[n].desc);
      if (json_object_has_member (answer, "id"))
        g_assert_cmpint (json_object_get_int_member (answer, "id"), ==, n - 1);
      else
        g_assert_cmpuint (n, <, 2);
    }
  /* The same connection still works, and so does everybody else's. */
  raw_send (fd, "{\"execute\": \"version\", \"id\": \"v\"}\n");
  version = raw_read (fd, in);
  g_assert_cmpstr (json_object_get_string_member (version, "id"), ==, "v");
  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (version, "return"), "version"),
                   ==, VMHERD_VERSION);
  call_vm (f, "start", "m");
  state = vm_state (f, "m");
  g_assert_cmpstr (state, ==, "running");
  close (fd);
}

/* Clients that never send, stop in the middle of a line, or never read their answers do
 * not hold up anyone else; the one that does not read is cut off at the output limit. */
static void
test_control_stalled_clients (Fixture *f)
{
  static const char request[] = "{\"execute\": \"status\", \"arguments\": {\"vm\": \"s\"}}\n";
  g_autoptr(GString) in_a = g_string_new (NULL), in_b = g_string_new (NULL);
  g_autoptr(JsonObject) answer_a = NULL, answer_b = NULL;
  g_autoptr(GString) batch = g_string_new (NULL);
  g_autofree char *names = NULL, *state = NULL;
  gsize sent = 0;
  int silent, half, deaf, error_code = 0;
  guint m, i;

  write_vm (f, "s", NULL, NULL);
  daemon_start (f);
  silent = raw_connect (f);
  half = raw_connect (f);
  raw_send (half, "{\"execute\": \"list\"");
  deaf = raw_connect (f);
  raw_send (deaf, "{\"execute\": \"events\"}\n");

  /* The deaf client asks for status after status and reads nothing: the daemon queues its
   * answers up to CONTROL_OUTPUT_LIMIT (4 MiB), then closes it, and a send fails. */
  for (guint n = 0; n < 100; n++)
    g_string_append (batch, request);
  while (error_code == 0)
    {
      gssize n = send (deaf, batch->str, batch->len, MSG_NOSIGNAL);
      g_autofree char *listed = NULL;

      if (n < 0)
        {
          error_code = errno;
          break;
        }
      sent += (gsize) n;
      g_assert_cmpuint (sent, <, 64 << 20);
      /* Meanwhile everybody else is served at once. */
      listed = list_names (f);
      g_assert_cmpstr (listed, ==, "s");
    }
  g_assert_true (error_code == EPIPE || error_code == ECONNRESET);

  m = f->log->len;
  call_vm (f, "start", "s");
  i = wait_state_event (f, m, "s", "running");
  g_assert_cmpstr (state_seq (f, "s", m, i), ==, "starting running");
  names = list_names (f);
  g_assert_cmpstr (names, ==, "s");

  /* The half line is completed later and answered; the silent client speaks at last. */
  raw_send (half, "}\n");
  answer_b = raw_read (half, in_b);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (answer_b, "return")), ==, 1);
  raw_send (silent, "{\"execute\": \"version\"}\n");
  answer_a = raw_read (silent, in_a);
  g_assert_true (json_object_has_member (answer_a, "return"));
  state = vm_state (f, "s");
  g_assert_cmpstr (state, ==, "running");
  close (silent);
  close (half);
  close (deaf);
}

/* Peers: nobody is kept out by the socket's mode (0660, group staff), and by SO_PEERCRED
 * when the mode would let it in; a member of the control group may only read. */
static void
test_control_peers (Fixture *f)
{
  g_autofree char *out = NULL, *err = NULL, *expected = NULL, *state = NULL;
  struct group *group = getgrnam (CONTROL_GROUP);
  Nobody outsider = { FALSE, 0 }, member = { TRUE, 0 };
  struct stat st;

  g_assert_nonnull (group);
  outsider.group = member.group = group->gr_gid;
  write_vm (f, "p", NULL, NULL);
  daemon_start (f);
  g_assert_cmpint (stat (f->control, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0660);
  g_assert_cmpint (st.st_gid, ==, group->gr_gid);

  g_assert_cmpint (cli_as (f, &outsider, NULL, &out, &err, "list", NULL), ==, 3);
  expected = g_strdup_printf ("cannot reach vmherdd at %s: Permission denied (is vmherdd running?)\n", f->control);
  g_assert_cmpstr (err, ==, expected);

  g_assert_cmpint (chmod (f->control, 0666), ==, 0);
  g_assert_cmpint (cli_as (f, &outsider, NULL, &out, &err, "list", NULL), ==, 1);
  g_assert_cmpstr (err, ==, "uid 65534 may not use vmherdd (root or members of group " CONTROL_GROUP " only)\n");
  g_assert_cmpstr (out, ==, "");

  g_assert_cmpint (cli_as (f, &member, NULL, &out, &err, "list", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "NAME "));
  g_assert_nonnull (strstr (out, "\np "));
  g_assert_cmpint (cli_as (f, &member, NULL, &out, &err, "start", "p", NULL), ==, 1);
  g_assert_true (g_str_has_prefix (err, "'start' needs root: uid 65534 is a member of group " CONTROL_GROUP
                                        ", which may only run list, status, "));
  state = vm_state (f, "p");
  g_assert_cmpstr (state, ==, "stopped");
  g_assert_cmpint (cli (f, &out, &err, "start", "p", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "vm 'p': running\n");
}

/* The file is removed while its guest starts: the start is answered, the QEMU stopped and
 * the VM forgotten, and vmherdd carries on. */
static void
test_file_removed_while_starting (Fixture *f)
{
  g_autofree char *path = vm_file (f, "doomed");
  g_autoptr(GString) in = g_string_new (NULL);
  g_autoptr(JsonObject) reload = NULL, start = NULL;
  g_autofree char *names = NULL;
  guint m, i;
  int fd;

  write_vm (f, "doomed", NULL, NULL);
  write_vm (f, "other", NULL, NULL);
  daemon_start (f);
  m = f->log->len;
  fd = raw_connect (f);
  /* vmherdd is stopped while the file goes and both requests arrive, so it reads them at
   * once when it goes on, and the rescan of `reload` finds the guest starting (the file
   * watch would rescan only RESCAN_DELAY_MS later). */
  daemon_freeze (f);
  g_assert_cmpint (g_unlink (path), ==, 0);
  raw_send (fd, "{\"execute\": \"start\", \"arguments\": {\"vm\": \"doomed\"}, \"id\": 1}\n"
                "{\"execute\": \"reload\", \"id\": 2}\n");
  g_assert_cmpint (kill (daemon_pid (f), SIGCONT), ==, 0);
  reload = raw_read (fd, in);
  g_assert_cmpint (json_object_get_int_member (reload, "id"), ==, 2);
  /* Still 2: doomed is forgotten only once its QEMU is gone. */
  g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (reload, "return"), "vms"), ==, 2);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (
                        json_object_get_object_member (reload, "return"), "defined")), ==, 0);
  start = raw_read (fd, in);
  g_assert_cmpint (json_object_get_int_member (start, "id"), ==, 1);
  g_assert_cmpstr (error_member (start, "class"), ==, "GenericError");
  g_assert_true (g_str_has_prefix (error_member (start, "desc"), "vm 'doomed' did not start: its file is gone"));
  i = wait_config_event (f, m, "doomed", "forgotten");
  g_assert_cmpstr (state_seq (f, "doomed", m, i), ==, "starting stopping stopped");
  g_assert_cmpstr (seq (f, "CONFIG", "doomed", m, i), ==, "removed forgotten");
  names = list_names (f);
  g_assert_cmpstr (names, ==, "other");
  call_vm (f, "start", "other");
  close (fd);
}

/* The VM folder, watched: a new file defines (and autostarts) its guest; a changed one is
 * pending until the next restart; an invalid or half-written one is reported with
 * file:line and the guest runs on; none of this, nor an atomic save, stops the guest; a
 * removed file stops the guest gracefully and forgets it. */
static void
test_vm_files (Fixture *f)
{
  g_autofree char *path = vm_file (f, "web");
  g_autofree char *v1 = bios_vm ("autostart = yes\npowerdown-timeout = 200ms\n", NULL);
  g_autofree char *v2 = g_strdup_printf ("[vm]\nmemory = 96M\n%s", strstr (v1, "autostart"));
  g_autofree char *out = NULL, *err = NULL, *expected = NULL, *names = NULL;
  g_autoptr(JsonObject) st = NULL;
  JsonArray *errors;
  gsize half;
  pid_t pid;
  guint m, i;
  int fd;

  daemon_start (f);

  /* Written atomically, as the next ones: an in-place write could be seen half done. */
  m = f->log->len;
  test_write_file (path, v1);
  i = wait_state_event (f, m, "web", "running");
  g_assert_cmpstr (seq (f, "CONFIG", "web", m, i), ==, "defined");
  g_assert_cmpstr (state_seq (f, "web", m, i), ==, "starting running");
  pid = vm_pid (f, "web");

  /* An atomic save (write a temporary file, rename it over): pending, not applied. */
  m = f->log->len;
  test_write_file (path, v2);
  i = wait_config_event (f, m, "web", "pending");
  g_assert_cmpstr (reason_at (f, i), ==, "command line differs from argument 16: '64M' -> '96M'");
  st = status (f, "web");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "running");
  g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, pid);
  g_assert_true (json_object_get_boolean_member (st, "pending-config"));
  g_assert_cmpstr (json_object_get_string_member (st, "pending"), ==,
                   "command line differs from argument 16: '64M' -> '96M'");
  g_assert_cmpint (cli (f, &out, &err, "status", "web", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "\npending         command line differs from argument 16: '64M' -> '96M'\n"));

  /* An invalid file: reported with file:line; the guest runs on its last good config. */
  test_write_file (path, "[vm]\nmemory = 4X\n");
  i = wait_config_event (f, m, "web", "invalid");
  expected = g_strdup_printf ("%s:2: memory: \"4X\" is not a size (use e.g. 512M or 2G)", path);
  errors = json_object_get_array_member (json_object_get_object_member (f->log->pdata[i], "data"), "errors");
  g_assert_cmpuint (json_array_get_length (errors), ==, 1);
  g_assert_cmpstr (json_array_get_string_element (errors, 0), ==, expected);
  g_clear_pointer (&st, json_object_unref);
  st = status (f, "web");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "running");
  g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, pid);
  g_assert_cmpstr (json_object_get_string_member (st, "config-error"), ==, expected);
  g_assert_cmpstr (json_object_get_string_member (st, "pending"), ==,
                   "command line differs from argument 16: '64M' -> '96M'");

  /* A half-written file (the writer still busy), then the rest of it. */
  m = f->log->len;
  fd = open (path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  half = (gsize) (strstr (v1, "autostart = yes") + strlen ("autostart = y") - v1);
  g_assert_cmpint (write (fd, v1, half), ==, (gssize) half);
  g_clear_pointer (&expected, g_free);
  expected = g_strdup_printf ("%s:3: autostart: \"y\" is not yes or no", path);
  /* (A rescan between the truncation and the write sees an empty file: invalid too.) */
  for (i = wait_config_event (f, m, "web", "invalid"); !g_str_has_prefix (reason_at (f, i), expected);)
    i = wait_config_event (f, i + 1, "web", "invalid");
  g_assert_cmpint (write (fd, v1 + half, strlen (v1) - half), ==, (gssize) (strlen (v1) - half));
  g_assert_cmpint (close (fd), ==, 0);
  i = wait_config_event (f, i + 1, "web", "current");
  g_assert_cmpstr (reason_at (f, i), ==, "the file matches the running config again");
  g_clear_pointer (&st, json_object_unref);
  st = status (f, "web");
  g_assert_false (json_object_get_boolean_member (st, "pending-config"));
  g_assert_true (json_object_get_null_member (st, "config-error"));
  g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, pid);
  g_assert_cmpstr (state_seq (f, "web", 0, f->log->len), ==, "starting running");

  /* Removed: powerdown (ignored), quit, stopped, forgotten. */
  m = f->log->len;
  g_assert_cmpint (g_unlink (path), ==, 0);
  i = wait_config_event (f, m, "web", "forgotten");
  g_assert_cmpstr (seq (f, "CONFIG", "web", m, i), ==, "removed forgotten");
  g_assert_cmpstr (state_seq (f, "web", m, i), ==, "stopping stopped");
  g_assert_cmpstr (seq (f, "QMP", "web", m, i), ==, "POWERDOWN SHUTDOWN");
  g_assert_false (test_process_alive (pid));
  names = list_names (f);
  g_assert_cmpstr (names, ==, "");
}

/* SIGHUP and `vmherd reload` rescan what the folder watch cannot see: VM files that are
 * symlinks into another folder (as configuration managers make them).  A restart applies
 * what is pending. */
static void
test_reload_and_sighup (Fixture *f)
{
  g_autofree char *real_dir = path_in (f, "real");
  g_autofree char *real_sym = path_in (f, "real/sym.conf");
  g_autofree char *real_late = path_in (f, "real/late.conf");
  g_autofree char *link_sym = vm_file (f, "sym");
  g_autofree char *link_late = vm_file (f, "late");
  g_autofree char *v1 = bios_vm ("powerdown-timeout = 200ms\n", NULL), *v2 = NULL, *v3 = NULL, *late = NULL;
  g_autofree char *out = NULL, *err = NULL, *state = NULL;
  g_autoptr(JsonObject) st = NULL;
  pid_t pid;
  guint m, i;

  v2 = g_strdup_printf ("[vm]\nmemory = 96M\n%s", strchr (strchr (v1, '\n') + 1, '\n') + 1);
  v3 = g_strdup_printf ("[vm]\nmemory = 128M\n%s", strchr (strchr (v1, '\n') + 1, '\n') + 1);
  late = bios_vm ("autostart = yes\n", NULL);
  g_assert_cmpint (g_mkdir (real_dir, 0755), ==, 0);
  write_in_place (real_sym, v1);
  g_assert_cmpint (symlink ("../real/sym.conf", link_sym), ==, 0);
  g_assert_cmpint (symlink ("../real/late.conf", link_late), ==, 0);   /* dangling for now */
  daemon_start (f);
  pid = start_vm (f, "sym");

  m = f->log->len;
  write_in_place (real_sym, v2);
  write_in_place (real_late, late);
  g_assert_cmpint (kill (daemon_pid (f), SIGHUP), ==, 0);
  i = wait_config_event (f, m, "sym", "pending");
  g_assert_cmpstr (reason_at (f, i), ==, "command line differs from argument 16: '64M' -> '96M'");
  i = wait_state_event (f, m, "late", "running");
  g_assert_cmpstr (seq (f, "CONFIG", "late", m, i), ==, "defined");
  g_assert_cmpstr (state_seq (f, "late", m, i), ==, "starting running");

  m = f->log->len;
  write_in_place (real_sym, v3);
  g_assert_cmpint (cli (f, &out, &err, "reload", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "reloaded: 2 VMs defined\n");
  i = wait_config_event (f, m, "sym", "pending");
  g_assert_cmpstr (reason_at (f, i), ==, "command line differs from argument 16: '64M' -> '128M'");
  state = vm_state (f, "sym");
  g_assert_cmpstr (state, ==, "running");
  g_assert_cmpstr (state_seq (f, "sym", m, f->log->len), ==, "");
  g_assert_true (test_cmdline_mentions (pid, " -m 64M "));

  m = f->log->len;
  g_assert_cmpint (cli (f, &out, &err, "restart", "sym", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "vm 'sym': running\n");
  i = wait_state_event (f, m, "sym", "running");
  g_assert_cmpstr (state_seq (f, "sym", m, i), ==, "stopping stopped starting running");
  st = status (f, "sym");
  g_assert_false (json_object_get_boolean_member (st, "pending-config"));
  g_assert_true (json_object_get_null_member (st, "pending"));
  g_assert_cmpint (json_object_get_int_member (st, "memory"), ==, 128 << 20);
  pid = (pid_t) json_object_get_int_member (st, "pid");
  g_assert_true (test_cmdline_mentions (pid, " -m 128M "));
}

/* Autostart goes up the start-order, one group at a time; shutdown-all comes down it. */
static void
test_shutdown_all_order (Fixture *f)
{
  const char *const names[] = { "o1", "o2", "o3" };
  g_autoptr(GDateTime) previous_running = NULL;
  g_autofree char *out = NULL, *err = NULL;
  GString *order = g_string_new (NULL);
  guint m, i;

  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    {
      g_autofree char *keys = g_strdup_printf ("autostart = yes\nstart-order = %u\npowerdown-timeout = 200ms\n",
                                               3 - n);
      write_vm (f, names[2 - n], keys, NULL);
    }
  daemon_start (f);
  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    {
      g_autoptr(JsonObject) st = NULL;
      g_autoptr(GDateTime) starting = NULL;
      JsonArray *history;

      wait_state (f, names[n], "running");
      st = status (f, names[n]);
      history = json_object_get_array_member (st, "history");
      g_assert_cmpuint (json_array_get_length (history), ==, 2);
      starting = g_date_time_new_from_iso8601 (
          json_object_get_string_member (json_array_get_object_element (history, 0), "time"), NULL);
      g_assert_nonnull (starting);
      if (previous_running != NULL)
        g_assert_cmpint (g_date_time_compare (previous_running, starting), <=, 0);
      g_clear_pointer (&previous_running, g_date_time_unref);
      previous_running = g_date_time_new_from_iso8601 (
          json_object_get_string_member (json_array_get_object_element (history, 1), "time"), NULL);
    }

  m = f->log->len;
  g_assert_cmpint (cli (f, &out, &err, "shutdown-all", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "every guest is stopped\n");
  i = wait_state_event (f, m, "o1", "stopped");
  for (guint n = m; n <= i; n++)
    if (g_strcmp0 (json_object_get_string_member (f->log->pdata[n], "event"), "STATE") == 0
        && g_str_has_prefix (event_member (f->log->pdata[n], "state"), "stop"))
      g_string_append_printf (order, "%s%s:%s", order->len ? " " : "", event_member (f->log->pdata[n], "vm"),
                              event_member (f->log->pdata[n], "state"));
  g_assert_cmpstr (order->str, ==, "o3:stopping o3:stopped o2:stopping o2:stopped o1:stopping o1:stopped");
  g_string_free (order, TRUE);
}

/* Reads the serial console until marker shows. */
static void
serial_wait_for (int fd, GString *console, const char *marker)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) BOOT_TIMEOUT_MS * 1000;

  while (strstr (console->str, marker) == NULL)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      gint64 left_ms = (deadline - g_get_monotonic_time ()) / 1000;
      char buffer[4096];
      gssize n;

      if (left_ms <= 0 || poll (&p, 1, (int) left_ms) <= 0)
        g_error ("no '%s' on the serial console within %d ms; it printed:\n%s", marker, BOOT_TIMEOUT_MS,
                 console->str);
      n = read (fd, buffer, sizeof buffer);
      if (n <= 0)
        g_error ("the serial console closed before '%s'; it printed:\n%s", marker, console->str);
      g_string_append_len (console, buffer, n);
    }
}

static int
serial_connect (Fixture *f, const char *vm)
{
  g_autofree char *relative = g_strdup_printf ("run/vm/%s/serial.sock", vm);
  g_autofree char *path = path_in (f, relative);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  strcpy (addr.sun_path, path);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  return fd;
}

/* The guest powers itself off: restart = always starts it again, restart = on-failure
 * leaves it stopped, and neither counts as a failure. */
static void
test_guest_poweroff (Fixture *f)
{
  const char *const names[] = { "always", "onfail" };
  g_autofree char *kernel = NULL, *initrd = NULL;
  g_autoptr(JsonObject) st_always = NULL, st_onfail = NULL;
  int consoles[G_N_ELEMENTS (names)];
  guint m, i;

  g_assert_true (test_require_guest (&kernel, &initrd));
  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    {
      g_autofree char *path = vm_file (f, names[n]);
      g_autofree char *text = g_strdup_printf ("[vm]\nmemory = 256M\nrestart = %s\n[kernel]\npath = %s\n"
                                               "initrd = %s\nappend = console=ttyS0 quiet\n" HEALTH,
                                               n == 0 ? "always" : "on-failure", kernel, initrd);
      write_in_place (path, text);
    }
  daemon_start (f);
  m = f->log->len;
  /* Connected at once: the console shows only what comes after, and the kernel says
   * nothing for seconds. */
  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    {
      call_vm (f, "start", names[n]);
      consoles[n] = serial_connect (f, names[n]);
    }
  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    {
      g_autoptr(GString) console = g_string_new (NULL);

      /* The shell's first prompt: a command typed before it would be flushed when the
       * shell sets up the terminal. */
      serial_wait_for (consoles[n], console, "vmherd-guest: ready");
      serial_wait_for (consoles[n], console, "/ # ");
      /* Kept open: QEMU takes the bytes as the UART drains, and drops what is left
       * when the client hangs up. */
      g_assert_cmpint (write (consoles[n], "poweroff -f\n", 12), ==, 12);
    }

  i = wait_state_event (f, m, "onfail", "stopped");
  g_assert_cmpstr (state_seq (f, "onfail", m, i), ==, "starting running stopping stopped");
  g_assert_cmpstr (reason_at (f, wait_state_event (f, m, "onfail", "stopping")), ==,
                   "QEMU reported SHUTDOWN (guest-shutdown)");
  g_assert_cmpstr (reason_at (f, i), ==, "the guest powered off");

  i = wait_state_event (f, wait_state_event (f, m, "always", "stopping"), "always", "running");
  g_assert_cmpstr (state_seq (f, "always", m, i), ==, "starting running stopping backoff starting running");
  g_assert_cmpstr (reason_at (f, wait_state_event (f, m, "always", "backoff")), ==,
                   "the guest powered off; restart = always");
  for (guint n = 0; n < G_N_ELEMENTS (names); n++)
    close (consoles[n]);

  st_always = status (f, "always");
  g_assert_cmpint (json_object_get_int_member (st_always, "restarts"), ==, 1);
  g_assert_true (json_object_get_null_member (st_always, "last-failure"));
  st_onfail = status (f, "onfail");
  g_assert_cmpstr (json_object_get_string_member (st_onfail, "state"), ==, "stopped");
  g_assert_cmpint (json_object_get_int_member (st_onfail, "restarts"), ==, 0);
  g_assert_true (json_object_get_null_member (st_onfail, "last-failure"));
}

/* ---- running each test in a child ---- */

typedef struct
{
  const char *path;
  void (*func) (Fixture *f);
  guint timeout_s;
  gboolean needs_guest;
  gboolean needs_root;          /* runs the CLI as uid 65534 */
} DaemonTest;

static void
run_daemon_test (gconstpointer data)
{
  const DaemonTest *t = data;
  g_autofree char *folder = NULL, *kernel = NULL, *initrd = NULL;

  if (g_test_subprocess ())
    {
      Fixture f;

      fixture_init (&f);
      t->func (&f);
      fixture_finish (&f);
      return;
    }
  if (test_require_qemu () == NULL)
    return;
  if (t->needs_guest && !test_require_guest (&kernel, &initrd))
    return;
  if (t->needs_root && geteuid () != 0)
    {
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "needs root: runs vmherd as uid 65534");
      return;
    }
  folder = test_folder (getpid ());
  test_rm_rf (folder);
  g_assert_cmpint (g_mkdir (folder, 0755), ==, 0);   /* QEMU runs as nobody and opens its logs */
  g_test_trap_subprocess (NULL, (guint64) t->timeout_s * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  kill_everything_in (folder);
  if (!g_test_trap_has_passed ())
    print_logs (folder);
  test_rm_rf (folder);
  g_test_trap_assert_passed ();
}

static const DaemonTest tests[] = {
  { "/vmherdd/stop-ladder-and-cli", test_stop_ladder_and_cli, 60, FALSE, FALSE },
  { "/vmherdd/fault/qemu-killed", test_qemu_killed, 60, FALSE, FALSE },
  { "/vmherdd/fault/qemu-exits-at-once", test_qemu_exits_at_once, 60, FALSE, FALSE },
  { "/vmherdd/fault/qemu-wedged", test_qemu_wedged, 60, FALSE, FALSE },
  { "/vmherdd/fault/daemon-killed", test_daemon_killed, 90, FALSE, FALSE },
  { "/vmherdd/fault/control-malformed", test_control_malformed, 60, FALSE, FALSE },
  { "/vmherdd/fault/control-stalled-clients", test_control_stalled_clients, 90, FALSE, FALSE },
  { "/vmherdd/fault/control-peers", test_control_peers, 60, FALSE, TRUE },
  { "/vmherdd/fault/file-removed-while-starting", test_file_removed_while_starting, 60, FALSE, FALSE },
  { "/vmherdd/vm-files", test_vm_files, 60, FALSE, FALSE },
  { "/vmherdd/reload-and-sighup", test_reload_and_sighup, 60, FALSE, FALSE },
  { "/vmherdd/shutdown-all-order", test_shutdown_all_order, 60, FALSE, FALSE },
  { "/vmherdd/guest-poweroff", test_guest_poweroff, 180, TRUE, FALSE },
};

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* Guests whose vmherdd died become our children: reaped after each test, not left as
   * zombies of an init that may never reap them. */
  if (!g_test_subprocess ())
    prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  for (guint i = 0; i < G_N_ELEMENTS (tests); i++)
    g_test_add_data_func (tests[i].path, &tests[i], run_daemon_test);
  return g_test_run ();
}
