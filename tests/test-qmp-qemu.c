/* test-qmp-qemu.c: QmpClient against a real qemu-system-x86_64 under TCG, started paused
 * (-S) with a QMP listening socket we bind ourselves and hand over as fd 3, the way
 * vmherdd does.  Every QEMU started here is killed at the end of its test, and by
 * PR_SET_PDEATHSIG if the test process dies first. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "qmp/qmp-args.h"
#include "qmp/qmp-client.h"
#include "tests/test-util.h"

#define WAIT_MS 10000

typedef struct
{
  GSubprocess *process;
  char *socket_path;
  gboolean exited;
} Qemu;

static void
on_qemu_exited (GObject *source G_GNUC_UNUSED, GAsyncResult *result G_GNUC_UNUSED, gpointer data)
{
  ((Qemu *) data)->exited = TRUE;
}

static void
qemu_stop (gpointer data)
{
  Qemu *qemu = data;

  if (!qemu->exited)
    {
      g_subprocess_force_exit (qemu->process); /* SIGKILL: works on a stopped QEMU too */
      test_wait_until (qemu->exited, WAIT_MS, "QEMU to die after SIGKILL");
    }
  g_object_unref (qemu->process);
  g_free (qemu->socket_path);
  g_free (qemu);
}

static void
child_setup (gpointer data G_GNUC_UNUSED)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL); /* an aborted test leaves no QEMU behind */
}

static int
listen_unix (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpuint (strlen (path), <, sizeof addr.sun_path);
  strcpy (addr.sun_path, path);
  g_assert_no_errno (bind (fd, (struct sockaddr *) &addr, sizeof addr));
  g_assert_no_errno (listen (fd, 1));
  return fd;
}

/* Starts a paused QEMU whose QMP monitor listens on a socket bound here (fd 3). */
static Qemu *
qemu_start (const char *binary)
{
  g_autofree char *dir = test_tmpdir ();
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  g_autoptr(GError) error = NULL;
  const char *argv[] = { binary, "-machine", "pc-q35-7.2,accel=tcg", "-m", "64", "-nodefaults",
                         "-display", "none", "-S", "-no-shutdown",
                         "-chardev", "socket,id=qmp,fd=3,server=on,wait=off",
                         "-mon", "chardev=qmp,mode=control", NULL };
  Qemu *qemu = g_new0 (Qemu, 1);

  qemu->socket_path = g_build_filename (dir, "qmp.sock", NULL);
  g_subprocess_launcher_take_fd (launcher, listen_unix (qemu->socket_path), 3);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  qemu->process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  g_test_queue_destroy (qemu_stop, qemu);
  g_subprocess_wait_async (qemu->process, NULL, on_qemu_exited, qemu);
  return qemu;
}

static void
qemu_signal (Qemu *qemu, int signal_number)
{
  g_assert_no_errno (kill (atoi (g_subprocess_get_identifier (qemu->process)), signal_number));
}

typedef struct
{
  QmpClient *client;
  gboolean done;
  GError *error;
  JsonNode *result;
} Call;

static void
on_done (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  Call *call = data;

  if (g_async_result_is_tagged (result, qmp_client_connect_async))
    qmp_client_connect_finish (call->client, result, &call->error);
  else
    call->result = qmp_client_execute_finish (call->client, result, &call->error);
  call->done = TRUE;
}

/* Connects with timeout_ms; returns the error (NULL when READY). */
static GError *
connect_qemu (QmpClient *client, Qemu *qemu, guint timeout_ms)
{
  Call call = { .client = client };

  qmp_client_connect_async (client, qemu->socket_path, timeout_ms, NULL, on_done, &call);
  test_wait_until (call.done, WAIT_MS, "QMP negotiation");
  return call.error;
}

/* Runs one command to completion: its "return", or NULL with the error. */
static JsonNode *
run (QmpClient *client, const char *command, JsonObject *arguments, const int *fds, guint n_fds,
     guint timeout_ms, GError **error)
{
  Call call = { .client = client };

  qmp_client_execute_async (client, command, arguments, fds, n_fds, timeout_ms, NULL, on_done, &call);
  test_wait_until (call.done, WAIT_MS, command);
  if (call.error != NULL)
    g_propagate_error (error, call.error);
  return call.result;
}

static char *
run_status (QmpClient *client)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) result = run (client, "query-status", NULL, NULL, 0, 2000, &error);

  g_assert_no_error (error);
  return g_strdup (json_object_get_string_member (json_node_get_object (result), "status"));
}

static void
run_ok (QmpClient *client, const char *command, JsonObject *arguments, const int *fds, guint n_fds)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) result = run (client, command, arguments, fds, n_fds, 2000, &error);

  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (result));
}

static void
run_fails (QmpClient *client, const char *command, JsonObject *arguments, const char *message)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) result = run (client, command, arguments, NULL, 0, 2000, &error);

  g_assert_null (result);
  g_assert_error (error, QMP_ERROR, QMP_ERROR_COMMAND);
  g_assert_cmpstr (error->message, ==, message);
}

typedef struct
{
  GPtrArray *seen; /* "NAME" or "NAME {data}" */
  guint closed;
  GError *closed_reason;
} Log;

static void
on_event (QmpClient *client G_GNUC_UNUSED, const QmpMessage *event, gpointer data)
{
  Log *log = data;
  g_autoptr(JsonNode) node = event->data != NULL ? json_node_init_object (json_node_alloc (), event->data) : NULL;
  g_autofree char *json = node != NULL ? json_to_string (node, FALSE) : NULL;

  g_assert_cmpint (event->timestamp_seconds, >, 1600000000); /* QEMU's wall clock */
  g_ptr_array_add (log->seen, json != NULL ? g_strdup_printf ("%s %s", event->event, json) : g_strdup (event->event));
}

static void
on_closed (QmpClient *client G_GNUC_UNUSED, const GError *reason, gpointer data)
{
  Log *log = data;

  log->closed++;
  log->closed_reason = g_error_copy (reason);
}

static gboolean
log_has (Log *log, const char *entry)
{
  for (guint i = 0; i < log->seen->len; i++)
    if (g_str_equal (log->seen->pdata[i], entry))
      return TRUE;
  return FALSE;
}

static void
check_fd_commands (QmpClient *client)
{
  g_autoptr(JsonObject) getfd = qmp_build_getfd_args ("test0");
  g_autoptr(JsonObject) closefd = qmp_build_closefd_args ("test0");
  g_auto(AutoFd) fd = open ("/dev/null", O_RDWR | O_CLOEXEC);

  g_assert_cmpint (fd, >=, 0);
  run_ok (client, "getfd", getfd, &fd, 1);
  run_ok (client, "closefd", closefd, NULL, 0);
  run_fails (client, "closefd", closefd, "GenericError: File descriptor named 'test0' not found");
  run_fails (client, "getfd", getfd, "GenericError: No file descriptor supplied via SCM_RIGHTS");
}

static void
test_lifecycle (void)
{
  const char *binary = test_require_qemu ();
  g_autoptr(QmpClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) quit = NULL;
  g_autofree char *prelaunch = NULL, *running = NULL, *paused = NULL;
  const QmpMessage *greeting;
  Log log = { .seen = g_ptr_array_new_with_free_func (g_free) };
  Qemu *qemu;

  if (binary == NULL)
    return;
  qemu = qemu_start (binary);
  client = qmp_client_new ();
  qmp_client_subscribe (client, on_event, &log, NULL);
  qmp_client_set_closed_func (client, on_closed, &log, NULL);
  error = connect_qemu (client, qemu, 5000);
  g_assert_no_error (error);
  greeting = qmp_client_get_greeting (client);
  g_assert_true (greeting->version_major > 7 || (greeting->version_major == 7 && greeting->version_minor >= 2));

  prelaunch = run_status (client);
  g_assert_cmpstr (prelaunch, ==, "prelaunch");
  run_ok (client, "cont", NULL, NULL, 0);
  test_wait_until (log_has (&log, "RESUME"), WAIT_MS, "the RESUME event");
  running = run_status (client);
  g_assert_cmpstr (running, ==, "running");
  run_ok (client, "stop", NULL, NULL, 0);
  test_wait_until (log_has (&log, "STOP"), WAIT_MS, "the STOP event");
  paused = run_status (client);
  g_assert_cmpstr (paused, ==, "paused");
  check_fd_commands (client);

  /* QEMU 7.2 sends SHUTDOWN, then the reply, then closes (QMP-NOTES 8). */
  quit = run (client, "quit", NULL, NULL, 0, 2000, &error);
  g_assert_no_error (error);
  g_assert_true (log_has (&log, "SHUTDOWN {\"guest\":false,\"reason\":\"host-qmp-quit\"}"));
  test_wait_until (log.closed == 1, WAIT_MS, "QEMU to close the QMP connection");
  g_assert_error (log.closed_reason, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_cmpstr (log.closed_reason->message, ==, "QEMU closed the QMP connection");
  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_CLOSED);
  test_wait_until (qemu->exited, WAIT_MS, "QEMU to exit");
  g_assert_true (g_subprocess_get_if_exited (qemu->process));
  g_assert_cmpint (g_subprocess_get_exit_status (qemu->process), ==, 0);
  g_clear_pointer (&client, qmp_client_free);
  g_clear_error (&log.closed_reason);
  g_ptr_array_unref (log.seen);
}

/* A stopped QEMU's socket still accepts connect() (the kernel backlog), then stays silent. */
static void
test_stopped_greeting_timeout (void)
{
  const char *binary = test_require_qemu ();
  g_autoptr(QmpClient) client = NULL;
  g_autoptr(GError) error = NULL;
  Qemu *qemu;

  if (binary == NULL)
    return;
  qemu = qemu_start (binary);
  qemu_signal (qemu, SIGSTOP);
  client = qmp_client_new ();
  error = connect_qemu (client, qemu, 300);
  g_assert_error (error, QMP_ERROR, QMP_ERROR_TIMEOUT);
  g_assert_cmpstr (error->message, ==,
                   "no QMP greeting within 300 ms (is QEMU stopped, or is another client connected?)");
  g_assert_cmpint (qmp_client_get_state (client), ==, QMP_CLIENT_STATE_CLOSED);
}

static void
test_stopped_command_timeout (void)
{
  const char *binary = test_require_qemu ();
  g_autoptr(QmpClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) connect_error = NULL;
  g_autoptr(JsonNode) result = NULL;
  g_autofree char *status = NULL;
  Qemu *qemu;

  if (binary == NULL)
    return;
  qemu = qemu_start (binary);
  client = qmp_client_new ();
  connect_error = connect_qemu (client, qemu, 5000);
  g_assert_no_error (connect_error);
  qemu_signal (qemu, SIGSTOP);
  result = run (client, "query-status", NULL, NULL, 0, 300, &error);
  g_assert_null (result);
  g_assert_error (error, QMP_ERROR, QMP_ERROR_TIMEOUT);
  g_assert_cmpstr (error->message, ==, "no reply to 'query-status' within 300 ms");

  /* Once QEMU runs again, the reply to the timed-out command (id 2) arrives and is dropped. */
  g_test_expect_message ("vmherd-qmp", G_LOG_LEVEL_DEBUG, "return reply with unknown id 2 *dropping");
  qemu_signal (qemu, SIGCONT);
  status = run_status (client);
  g_assert_cmpstr (status, ==, "prelaunch");
  g_test_assert_expected_messages ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/qmp/qemu/lifecycle", test_lifecycle);
  g_test_add_func ("/qmp/qemu/stopped-greeting-timeout", test_stopped_greeting_timeout);
  g_test_add_func ("/qmp/qemu/stopped-command-timeout", test_stopped_command_timeout);
  return g_test_run ();
}
