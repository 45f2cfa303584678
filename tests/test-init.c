/* test-init.c: the SysV init scripts (init/vmherdd, init/vmherd-guests) driving a real
 * vmherdd and a real QEMU under TCG, as an operator or sysvinit would run them.
 *
 * vmherdd's script: start (returns once the daemon listens), start again (nothing), status,
 * stop (the guest keeps running), stop again, start (the guest is re-adopted, same pid),
 * restart (the same), reload (SIGHUP, the daemon stays).  vmherd-guests: restart does not
 * touch the guest, status lists it, stop shuts it down through `vmherd shutdown-all`, and
 * stop without a daemon is not an error.  Exit codes are LSB's: status says 0 running,
 * 3 stopped.
 *
 * The scripts take their settings from the environment (DAEMON, DAEMON_ARGS, PIDFILE,
 * VMHERD, VMHERD_ARGS, GUEST_SHUTDOWN_TIMEOUT; VMHERD_DEFAULTS points at no file, so a
 * host's /etc/default/vmherdd cannot interfere); every path of the host config is in this
 * test's folder.  The guest is BIOS-only (64 MB, no disk, ignores the power button).
 *
 * vmherdd daemonizes, so it is nobody's child: the test process is a child subreaper,
 * adopts each vmherdd and reaps it with a child watch (start-stop-daemon waits for it to be
 * gone).  Waiting for a guest's state polls `vmherd list --json`: each poll blocks on that
 * child process, never on a timer.
 * The test runs in a child (g_test_trap_subprocess); the parent then kills whatever still
 * names the folder on its command line (vmherdd gets --config FOLDER/..., QEMU's argv names
 * FOLDER/log/...), even after a failed assertion, and reaps what it inherited. */
#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test-util.h"

#define COMMAND_TIMEOUT_MS 60000    /* one script action; stop waits for vmherdd to exit */
#define STATE_TIMEOUT_MS 30000      /* a BIOS guest runs within a second under TCG */
#define EXIT_TIMEOUT_MS 10000

/* LSB init script exit codes (status action). */
#define LSB_RUNNING 0
#define LSB_NOT_RUNNING 3

/* vmherd's exit codes (vmherd(1)). */
#define VMHERD_UNREACHABLE 3

typedef struct
{
  pid_t pid;
  guint watch;
  gboolean exited;
} AdoptedDaemon;

typedef struct
{
  char *dir;                    /* this test's folder: every path below is inside it */
  char *conf, *pidfile, *vm;
  char *vmherdd_script, *guests_script;
  char *vmherd;                 /* the CLI in the build */
  GStrv env;                    /* what every command runs with */
  GPtrArray *daemons;           /* AdoptedDaemon: every vmherdd adopted, in order */
} Fixture;

/* ---- processes ---- */

/* Live processes whose command line holds text, as `pgrep -f text` finds them. */
static GArray *
processes_mentioning (const char *text)
{
  GArray *pids = g_array_new (FALSE, FALSE, sizeof (pid_t));
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  const char *name;

  g_assert_nonnull (proc);
  while ((name = g_dir_read_name (proc)) != NULL)
    {
      guint64 pid;

      if (g_ascii_string_to_unsigned (name, 10, 2, G_MAXINT, &pid, NULL) && (pid_t) pid != getpid ()
          && test_process_alive ((pid_t) pid) && test_cmdline_mentions ((pid_t) pid, text))
        g_array_append_val (pids, pid);
    }
  return pids;
}

/* Reaps the zombies this process inherited as a subreaper, each by its pid. */
static void
reap_adopted_zombies (void)
{
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  const char *name;

  while (proc != NULL && (name = g_dir_read_name (proc)) != NULL)
    {
      guint64 pid;

      if (g_ascii_string_to_unsigned (name, 10, 2, G_MAXINT, &pid, NULL)
          && test_process_parent ((pid_t) pid) == getpid () && test_process_state ((pid_t) pid) == 'Z')
        waitpid ((pid_t) pid, NULL, WNOHANG);
    }
}

/* SIGKILLs every process whose command line names folder, waits until each has exited
 * (pidfds: a pid cannot be reused under us), then reaps what this process inherited. */
static void
kill_everything_in (const char *folder)
{
  g_autoptr(GArray) pids = processes_mentioning (folder);

  for (guint i = 0; i < pids->len; i++)
    {
      pid_t pid = g_array_index (pids, pid_t, i);
      int pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
      struct pollfd p = { .fd = pidfd, .events = POLLIN };

      if (pidfd < 0 || !test_cmdline_mentions (pid, folder))
        {
          if (pidfd >= 0)
            close (pidfd);
          continue;
        }
      syscall (SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
      while (poll (&p, 1, 10000) < 0 && errno == EINTR)
        ;
      close (pidfd);
    }
  reap_adopted_zombies ();
}

static void
print_file (const char *path)
{
  g_autofree char *text = NULL;
  gsize length = 0;

  if (g_file_get_contents (path, &text, &length, NULL))
    g_printerr ("# ---- %s%s ----\n%s\n", path, length > 8192 ? " (last 8 KB)" : "",
                length > 8192 ? text + length - 8192 : text);
}

/* After a failure: what vmherdd and QEMU logged. */
static void
print_logs (const char *folder)
{
  g_autofree char *daemon_log = g_build_filename (folder, "vmherdd.log", NULL);
  g_autofree char *log_dir = g_build_filename (folder, "log", NULL);
  g_autoptr(GDir) logs = g_dir_open (log_dir, 0, NULL);
  const char *name;

  print_file (daemon_log);
  while (logs != NULL && (name = g_dir_read_name (logs)) != NULL)
    {
      g_autofree char *path = g_build_filename (log_dir, name, NULL);
      print_file (path);
    }
}

/* ---- running commands ---- */

typedef struct
{
  gboolean done;
  int status;                   /* exit status, or 128 + signal */
  char *out, *err;
} Run;

static void
on_communicated (GObject *source, GAsyncResult *result, gpointer data)
{
  GSubprocess *process = G_SUBPROCESS (source);
  Run *run = data;
  g_autoptr(GError) error = NULL;

  g_subprocess_communicate_utf8_finish (process, result, &run->out, &run->err, &error);
  g_assert_no_error (error);
  run->status = g_subprocess_get_if_exited (process) ? g_subprocess_get_exit_status (process)
                                                     : 128 + g_subprocess_get_term_sig (process);
  run->done = TRUE;
}

/* Runs argv with the fixture's environment and returns its exit status; the main context
 * runs meanwhile (vmherdd's child watches reap it while a script waits for it to go). */
static int
run_argv (Fixture *f, char **out_stdout, const char *const *argv)
{
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *what = g_strjoinv (" ", (char **) argv);
  Run run = { 0 };

  g_subprocess_launcher_set_environ (launcher, f->env);
  process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (process, NULL, NULL, on_communicated, &run);
  test_wait_until (run.done, COMMAND_TIMEOUT_MS, what);
  g_test_message ("%s -> %d\n%s%s", what, run.status, run.out, run.err);
  if (out_stdout != NULL)
    *out_stdout = g_steal_pointer (&run.out);
  g_free (run.out);
  g_free (run.err);
  return run.status;
}

/* One action of an init script. */
static int
script (Fixture *f, const char *path, const char *action, char **out_stdout)
{
  const char *argv[] = { path, action, NULL };

  return run_argv (f, out_stdout, argv);
}

static int
vmherd (Fixture *f, char **out_stdout, const char *command, const char *arg)
{
  const char *argv[] = { f->vmherd, "--config", f->conf, command, arg, NULL };

  return run_argv (f, out_stdout, argv);
}

/* ---- vmherdd and the guest ---- */

static void
on_daemon_exited (GPid pid G_GNUC_UNUSED, gint status G_GNUC_UNUSED, gpointer data)
{
  AdoptedDaemon *d = data;

  d->watch = 0;
  d->exited = TRUE;
}

static pid_t
read_pidfile (Fixture *f)
{
  g_autofree char *text = test_read_file (f->pidfile);
  gint64 pid = 0;

  g_assert_true (g_ascii_string_to_signed (g_strstrip (text), 10, 2, G_MAXINT, &pid, NULL));
  return (pid_t) pid;
}

/* The vmherdd the script just started: named by the pidfile, orphaned by its double fork,
 * so ours (we are a subreaper) to reap. */
static AdoptedDaemon *
adopt_daemon (Fixture *f)
{
  AdoptedDaemon *d = g_new0 (AdoptedDaemon, 1);

  d->pid = read_pidfile (f);
  g_assert_true (test_process_alive (d->pid));
  g_assert_true (test_cmdline_mentions (d->pid, f->conf));
  /* Its parent exits right after forking it, long before it is ready. */
  test_wait_until (test_process_parent (d->pid) == getpid (), EXIT_TIMEOUT_MS,
                   "vmherdd to be orphaned and adopted by the test");
  d->watch = g_child_watch_add (d->pid, on_daemon_exited, d);
  g_ptr_array_add (f->daemons, d);
  return d;
}

static void
daemon_wait_exited (AdoptedDaemon *d)
{
  test_wait_until (d->exited, EXIT_TIMEOUT_MS, "vmherdd to exit");
}

/* The guest's entry in `vmherd list --json`, or NULL when vmherdd cannot be reached. */
static JsonObject *
guest_entry (Fixture *f)
{
  g_autofree char *out = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonArray *list;
  int status = vmherd (f, &out, "list", "--json");

  if (status == VMHERD_UNREACHABLE)
    return NULL;
  g_assert_cmpint (status, ==, 0);
  json_parser_load_from_data (parser, out, -1, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_ARRAY (json_parser_get_root (parser)));
  list = json_node_get_array (json_parser_get_root (parser));
  for (guint i = 0; i < json_array_get_length (list); i++)
    {
      JsonObject *o = json_array_get_object_element (list, i);
      if (g_strcmp0 (json_object_get_string_member (o, "name"), f->vm) == 0)
        return json_object_ref (o);
    }
  g_error ("no guest '%s' in vmherd list --json:\n%s", f->vm, out);
}

/* Polls `vmherd list --json` until the guest is in state (and has pid, unless 0); returns
 * its pid.  Each poll waits for vmherd to answer, never for a timer. */
static pid_t
wait_guest (Fixture *f, const char *state, pid_t pid)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) STATE_TIMEOUT_MS * 1000;
  g_autofree char *last = g_strdup ("vmherdd unreachable");

  for (;;)
    {
      g_autoptr(JsonObject) o = guest_entry (f);

      if (o != NULL)
        {
          const char *s = json_object_get_string_member (o, "state");
          pid_t p = (pid_t) json_object_get_int_member (o, "pid");

          if (g_strcmp0 (s, state) == 0 && (pid == 0 || p == pid))
            return p;
          g_free (last);
          last = g_strdup_printf ("%s, pid %d", s, (int) p);
        }
      if (g_get_monotonic_time () > deadline)
        g_error ("guest '%s' not %s (pid %d) within %d ms; last seen: %s", f->vm, state, (int) pid,
                 STATE_TIMEOUT_MS, last);
    }
}

/* The one QEMU of the guest, found as `pgrep -f guest=NAME,` would. */
static pid_t
guest_qemu (Fixture *f)
{
  g_autofree char *needle = g_strdup_printf ("guest=%s,", f->vm);
  g_autoptr(GArray) pids = processes_mentioning (needle);

  g_assert_cmpuint (pids->len, ==, 1);
  return g_array_index (pids, pid_t, 0);
}

/* The reason of the guest's last state change, from `vmherd status NAME --json`. */
static char *
last_reason (Fixture *f)
{
  const char *argv[] = { f->vmherd, "--config", f->conf, "status", f->vm, "--json", NULL };
  g_autofree char *out = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonArray *history;

  g_assert_cmpint (run_argv (f, &out, argv), ==, 0);
  json_parser_load_from_data (parser, out, -1, &error);
  g_assert_no_error (error);
  history = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)),
                                          "history");
  g_assert_cmpuint (json_array_get_length (history), >, 0);
  return g_strdup (json_object_get_string_member (
    json_array_get_object_element (history, json_array_get_length (history) - 1), "reason"));
}

/* ---- the fixture (in the child) ---- */

/* The parent creates it, the child finds it: named after the parent's pid and the test. */
static char *
test_folder (pid_t runner)
{
  g_autofree char *slug = g_strdelimit (g_strdup (g_test_get_path ()), "/", '-');

  return g_strdup_printf ("%s/vmherd-init-%d%s", g_get_tmp_dir (), (int) runner, slug);
}

static char *
absolute (char *path)
{
  char *result = g_canonicalize_filename (path, NULL);

  g_free (path);
  return result;
}

static void
fixture_init (Fixture *f, const char *qemu)
{
  g_autofree char *vm_dir = NULL, *vm_file = NULL, *host = NULL, *daemon_args = NULL;
  g_autofree char *vmherd_args = NULL, *vmherdd = NULL, *log = NULL, *no_defaults = NULL;

  memset (f, 0, sizeof *f);
  f->dir = test_folder (getppid ());
  g_assert_true (g_file_test (f->dir, G_FILE_TEST_IS_DIR));
  f->conf = g_build_filename (f->dir, "vmherd.conf", NULL);
  f->pidfile = g_build_filename (f->dir, "vmherdd.pid", NULL);
  f->vm = g_strdup_printf ("init%d", (int) getppid ());
  f->vmherdd_script = absolute (test_src_path ("init/vmherdd"));
  f->guests_script = absolute (test_src_path ("init/vmherd-guests"));
  f->vmherd = absolute (test_build_path ("vmherd"));
  f->daemons = g_ptr_array_new ();
  vmherdd = absolute (test_build_path ("vmherdd"));
  log = g_build_filename (f->dir, "vmherdd.log", NULL);
  no_defaults = g_build_filename (f->dir, "no-such-defaults", NULL);

  host = g_strdup_printf ("[daemon]\nvm-dir = %s/vms\nrun-dir = %s/run\nstate-dir = %s/state\n"
                          "log-dir = %s/log\ncontrol-socket = %s/run/control\nqemu = %s\n"
                          "qemu-user = nobody\n", f->dir, f->dir, f->dir, f->dir, f->dir, qemu);
  test_write_file (f->conf, host);
  vm_dir = g_build_filename (f->dir, "vms", NULL);
  g_assert_cmpint (g_mkdir (vm_dir, 0755), ==, 0);
  vm_file = g_strdup_printf ("%s/%s.conf", vm_dir, f->vm);
  test_write_file (vm_file, "[vm]\nmemory = 64M\nautostart = yes\n[health]\npanic = none\n");

  daemon_args = g_strdup_printf ("--config %s --log %s", f->conf, log);
  vmherd_args = g_strdup_printf ("--config %s", f->conf);
  f->env = g_get_environ ();
  /* A developer's own vmherdd must not answer, nor a test runner's systemd be notified. */
  f->env = g_environ_unsetenv (f->env, "VMHERD_CONTROL_SOCKET");
  f->env = g_environ_unsetenv (f->env, "NOTIFY_SOCKET");
  f->env = g_environ_setenv (f->env, "VMHERD_DEFAULTS", no_defaults, TRUE);
  f->env = g_environ_setenv (f->env, "DAEMON", vmherdd, TRUE);
  f->env = g_environ_setenv (f->env, "DAEMON_ARGS", daemon_args, TRUE);
  f->env = g_environ_setenv (f->env, "PIDFILE", f->pidfile, TRUE);
  f->env = g_environ_setenv (f->env, "VMHERD", f->vmherd, TRUE);
  f->env = g_environ_setenv (f->env, "VMHERD_ARGS", vmherd_args, TRUE);
  /* The BIOS guest ignores the power button: QMP quit follows after 1 s. */
  f->env = g_environ_setenv (f->env, "GUEST_SHUTDOWN_TIMEOUT", "1", TRUE);
}

static void
fixture_finish (Fixture *f)
{
  for (guint i = 0; i < f->daemons->len; i++)
    {
      AdoptedDaemon *d = f->daemons->pdata[i];
      g_clear_handle_id (&d->watch, g_source_remove);
      g_free (d);
    }
  g_ptr_array_unref (f->daemons);
  reap_adopted_zombies ();
  g_strfreev (f->env);
  g_free (f->dir);
  g_free (f->conf);
  g_free (f->pidfile);
  g_free (f->vm);
  g_free (f->vmherdd_script);
  g_free (f->guests_script);
  g_free (f->vmherd);
}

/* ---- the tests ---- */

static void
test_sysv_lifecycle (Fixture *f)
{
  g_autofree char *out = NULL, *reason = NULL;
  AdoptedDaemon *first, *second, *third;
  pid_t qemu;

  /* start: returns once vmherdd listens; the autostart guest comes up. */
  g_assert_cmpint (script (f, f->vmherdd_script, "start", NULL), ==, 0);
  first = adopt_daemon (f);
  qemu = wait_guest (f, "running", 0);
  g_assert_cmpint (qemu, ==, guest_qemu (f));
  g_assert_cmpint (script (f, f->vmherdd_script, "status", &out), ==, LSB_RUNNING);
  g_assert_nonnull (strstr (out, "is running"));
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (vmherd (f, &out, "list", NULL), ==, 0);
  g_assert_nonnull (strstr (out, f->vm));
  g_assert_nonnull (strstr (out, "running"));
  g_clear_pointer (&out, g_free);

  /* start while running: nothing happens, the same vmherdd keeps its pidfile. */
  g_assert_cmpint (script (f, f->vmherdd_script, "start", NULL), ==, 0);
  g_assert_cmpint (read_pidfile (f), ==, first->pid);
  g_assert_true (test_process_alive (first->pid));

  /* stop: vmherdd exits, the guest does not. */
  g_assert_cmpint (script (f, f->vmherdd_script, "stop", NULL), ==, 0);
  daemon_wait_exited (first);
  g_assert_false (g_file_test (f->pidfile, G_FILE_TEST_EXISTS));
  g_assert_true (test_process_alive (qemu));
  g_assert_cmpint (guest_qemu (f), ==, qemu);
  g_assert_cmpint (script (f, f->vmherdd_script, "status", NULL), ==, LSB_NOT_RUNNING);
  g_assert_cmpint (vmherd (f, NULL, "list", NULL), ==, VMHERD_UNREACHABLE);
  g_assert_cmpint (script (f, f->vmherdd_script, "stop", NULL), ==, 0);

  /* start again: the new vmherdd re-adopts the same QEMU instead of starting one. */
  g_assert_cmpint (script (f, f->vmherdd_script, "start", NULL), ==, 0);
  second = adopt_daemon (f);
  g_assert_cmpint (second->pid, !=, first->pid);
  g_assert_cmpint (wait_guest (f, "running", qemu), ==, qemu);
  reason = last_reason (f);
  g_assert_true (g_str_has_prefix (reason, "re-adopted a running QEMU"));
  g_assert_cmpint (guest_qemu (f), ==, qemu);

  /* restart: another vmherdd, the same guest. */
  g_assert_cmpint (script (f, f->vmherdd_script, "restart", NULL), ==, 0);
  daemon_wait_exited (second);
  third = adopt_daemon (f);
  g_assert_cmpint (wait_guest (f, "running", qemu), ==, qemu);

  /* reload: SIGHUP, which vmherdd survives. */
  g_assert_cmpint (script (f, f->vmherdd_script, "reload", NULL), ==, 0);
  g_assert_cmpint (script (f, f->vmherdd_script, "status", NULL), ==, LSB_RUNNING);
  g_assert_cmpint (read_pidfile (f), ==, third->pid);
  g_assert_false (third->exited);

  /* vmherd-guests: restart leaves the guest alone, status lists it, stop shuts it down. */
  g_assert_cmpint (script (f, f->guests_script, "restart", NULL), ==, 0);
  g_assert_cmpint (script (f, f->guests_script, "start", NULL), ==, 0);
  g_assert_cmpint (wait_guest (f, "running", qemu), ==, qemu);
  g_assert_cmpint (script (f, f->guests_script, "status", &out), ==, LSB_RUNNING);
  g_assert_nonnull (strstr (out, f->vm));
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (script (f, f->guests_script, "stop", NULL), ==, 0);
  /* shutdown-all answers once QEMU has exited. */
  g_assert_false (test_process_alive (qemu));
  g_assert_cmpint (wait_guest (f, "stopped", 0), ==, 0);
  g_assert_true (test_process_alive (third->pid));

  /* The daemon's stop at the very end of a host shutdown. */
  g_assert_cmpint (script (f, f->vmherdd_script, "stop", NULL), ==, 0);
  daemon_wait_exited (third);
  g_assert_cmpint (script (f, f->guests_script, "status", NULL), ==, LSB_NOT_RUNNING);
  /* Without vmherdd there is nothing to stop: a warning, not a failed shutdown. */
  g_assert_cmpint (script (f, f->guests_script, "stop", NULL), ==, 0);
  g_autoptr(GArray) left = processes_mentioning (f->dir);
  g_assert_cmpuint (left->len, ==, 0);
}

/* ---- running the test in a child ---- */

typedef struct
{
  const char *path;
  void (*func) (Fixture *f);
} InitTest;

static void
run_init_test (gconstpointer data)
{
  const InitTest *t = data;
  g_autofree char *folder = NULL;
  const char *qemu = test_require_qemu ();

  if (qemu == NULL)
    return;
  if (g_test_subprocess ())
    {
      Fixture f;

      /* vmherdd's double fork orphans it: as a subreaper we inherit it and can reap it. */
      g_assert_cmpint (prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), ==, 0);
      fixture_init (&f, qemu);
      t->func (&f);
      fixture_finish (&f);
      return;
    }
  if (geteuid () != 0)
    {
      /* Only root may change state on the control socket (vmherd shutdown-all). */
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "the init scripts are tested as root only");
      return;
    }
  folder = test_folder (getpid ());
  test_rm_rf (folder);
  g_assert_cmpint (g_mkdir (folder, 0755), ==, 0);   /* QEMU runs as nobody and opens its logs */
  g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  kill_everything_in (folder);
  if (!g_test_trap_has_passed ())
    print_logs (folder);
  test_rm_rf (folder);
  g_test_trap_assert_passed ();
}

/* Every shell script parses (sh -n), including the OpenRC ones. */
static void
test_scripts_parse (void)
{
  static const char *const scripts[] = {
    "init/vmherdd", "init/vmherd-guests", "init/vmherdd.openrc", "init/vmherd-guests.openrc",
  };

  for (guint i = 0; i < G_N_ELEMENTS (scripts); i++)
    {
      g_autofree char *path = test_src_path (scripts[i]);
      g_autofree char *err = NULL;
      const char *argv[] = { "/bin/sh", "-n", path, NULL };
      g_autoptr(GError) error = NULL;
      int status = -1;

      g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, &err, &status,
                    &error);
      g_assert_no_error (error);
      if (!g_spawn_check_wait_status (status, NULL))
        g_error ("sh -n %s: %s", path, err);
      g_assert_true (g_file_test (path, G_FILE_TEST_IS_EXECUTABLE));
    }
}

static const InitTest tests[] = {
  { "/init/sysv/lifecycle", test_sysv_lifecycle },
};

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* What a failed test leaves behind (vmherdd, QEMU) becomes ours: reaped after the kill. */
  if (!g_test_subprocess ())
    prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  g_test_add_func ("/init/scripts-parse", test_scripts_parse);
  for (guint i = 0; i < G_N_ELEMENTS (tests); i++)
    g_test_add_data_func (tests[i].path, &tests[i], run_init_test);
  return g_test_run ();
}
