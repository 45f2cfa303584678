/* test-qemu-boot.c: the test guest started from a generated argv under real QEMU (TCG),
 * the way the daemon starts it (qemu_spawn), seen alive on its serial console. */
#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "launcher/qemu-probe.h"
#include "launcher/qemu-spawn.h"
#include "qmp/qmp-client.h"
#include "tests/test-util.h"

typedef struct
{
  GString *serial;
  guint serial_watch;
  QmpClient *qmp;
  gboolean connected;
  JsonNode *reply;
  GError *error;
  gboolean replied;
  gboolean exited;
  GPtrArray *events;
} Boot;

static gboolean
on_serial (int fd, GIOCondition cond G_GNUC_UNUSED, gpointer data)
{
  Boot *b = data;
  char buf[4096];
  ssize_t n = read (fd, buf, sizeof buf);

  if (n <= 0)
    {
      b->serial_watch = 0;
      close (fd);
      return G_SOURCE_REMOVE;
    }
  g_string_append_len (b->serial, buf, n);
  return G_SOURCE_CONTINUE;
}

static int
connect_unix (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  g_strlcpy (addr.sun_path, path, sizeof addr.sun_path);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  return fd;
}

static void
on_connected (GObject *source G_GNUC_UNUSED, GAsyncResult *res, gpointer data)
{
  Boot *b = data;

  b->connected = qmp_client_connect_finish (b->qmp, res, &b->error);
}

static void
on_reply (GObject *source G_GNUC_UNUSED, GAsyncResult *res, gpointer data)
{
  Boot *b = data;

  g_clear_pointer (&b->reply, json_node_unref);
  b->reply = qmp_client_execute_finish (b->qmp, res, &b->error);
  b->replied = TRUE;
}

static void
on_event (QmpClient *client G_GNUC_UNUSED, const QmpMessage *event, gpointer data)
{
  Boot *b = data;

  g_ptr_array_add (b->events, g_strdup (event->event));
}

static void
on_qemu_exited (GObject *source G_GNUC_UNUSED, GAsyncResult *res G_GNUC_UNUSED, gpointer data)
{
  ((Boot *) data)->exited = TRUE;
}

static JsonNode *
execute (Boot *b, const char *command)
{
  b->replied = FALSE;
  qmp_client_execute_async (b->qmp, command, NULL, NULL, 0, 5000, NULL, on_reply, b);
  test_wait_until (b->replied, 10000, command);
  g_assert_no_error (b->error);
  return b->reply;
}

static VmConfig *
write_vm (const char *dir, const char *kernel, const char *initrd)
{
  g_autofree char *path = g_build_filename (dir, "boot.conf", NULL);
  g_autofree char *text = g_strdup_printf ("[vm]\nmemory = 256M\n[kernel]\npath = %s\n"
                                           "initrd = %s\nappend = console=ttyS0 panic=-1 "
                                           "vmherd.heartbeat=200\n[health]\npanic = none\n",
                                           kernel, initrd);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  VmConfig *vm;

  test_write_file (path, text);
  vm = vm_config_load (path, errors);
  g_assert_cmpuint (errors->len, ==, 0);
  return vm;
}

static HostConfig *
write_host (const char *dir, const char *qemu)
{
  g_autofree char *path = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *text = g_strdup_printf ("[daemon]\nrun-dir = run\nlog-dir = log\nqemu = %s\n"
                                           "qemu-user = nobody\nqemu-group = nogroup\n", qemu);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  HostConfig *host;

  test_write_file (path, text);
  host = host_config_load (path, errors);
  g_assert_cmpuint (errors->len, ==, 0);
  return host;
}

static void
test_boot_heartbeat (void)
{
  g_autofree char *kernel = NULL, *initrd = NULL, *dir = NULL, *log = NULL;
  g_autoptr(HostConfig) host = NULL;
  g_autoptr(VmConfig) vm = NULL;
  g_autoptr(QemuProbe) probe = NULL;
  g_autoptr(QemuCmdline) cmdline = NULL;
  g_autoptr(QemuInstance) inst = NULL;
  g_autoptr(GError) error = NULL;
  Boot b = { .serial = g_string_new (NULL), .events = g_ptr_array_new_with_free_func (g_free) };
  JsonNode *status;

  if (!test_require_guest (&kernel, &initrd))
    return;
  dir = test_tmpdir ();
  g_assert_cmpint (g_chmod (dir, 0755), ==, 0);   /* QEMU runs as nobody and opens its log */
  host = write_host (dir, test_require_qemu ());
  vm = write_vm (dir, kernel, initrd);
  probe = qemu_probe_run (host->qemu, &error);
  g_assert_no_error (error);
  cmdline = qemu_argv_build (vm, host, &probe->caps);
  inst = qemu_spawn (vm, host, cmdline, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (inst->pid, >, 0);

  b.serial_watch = g_unix_fd_add (connect_unix (inst->serial_path), G_IO_IN | G_IO_HUP, on_serial, &b);
  b.qmp = qmp_client_new ();
  qmp_client_subscribe (b.qmp, on_event, &b, NULL);
  qmp_client_connect_async (b.qmp, inst->qmp_path, 5000, NULL, on_connected, &b);
  test_wait_until (b.connected || b.error != NULL, 10000, "QMP ready");
  g_assert_no_error (b.error);

  status = execute (&b, "query-status");
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (status), "status"), ==, "prelaunch");
  execute (&b, "cont");
  /* The guest's init prints a heartbeat every 200 ms once userspace is up (~10 s under TCG). */
  test_wait_until (strstr (b.serial->str, "vmherd-heartbeat 3\r") != NULL
                   || strstr (b.serial->str, "vmherd-heartbeat 3\n") != NULL, 90000,
                   "the guest's third heartbeat on the serial console");
  g_assert_nonnull (strstr (b.serial->str, "vmherd-guest: booted"));
  status = execute (&b, "query-status");
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (status), "status"), ==, "running");

  /* The serial log is written by QEMU itself, and QEMU ran as nobody, without privilege. */
  log = qemu_argv_serial_log (vm, host);
  g_autofree char *log_text = test_read_file (log);
  g_assert_nonnull (strstr (log_text, "vmherd-heartbeat 1"));
  g_autofree char *proc_status_path = g_strdup_printf ("/proc/%d/status", inst->pid);
  g_autofree char *proc_status = test_read_file (proc_status_path);
  if (geteuid () == 0)
    g_assert_nonnull (strstr (proc_status, "\nUid:\t65534\t65534\t65534\t65534\n"));
  g_assert_nonnull (strstr (proc_status, "\nNoNewPrivs:\t1\n"));
  g_assert_nonnull (strstr (proc_status, "\nSeccomp:\t2\n"));

  g_subprocess_wait_async (inst->process, NULL, on_qemu_exited, &b);
  execute (&b, "quit");
  test_wait_until (b.exited, 10000, "QEMU to exit after quit");
  g_assert_true (g_ptr_array_find_with_equal_func (b.events, "SHUTDOWN", g_str_equal, NULL));

  g_clear_pointer (&b.qmp, qmp_client_free);
  g_clear_handle_id (&b.serial_watch, g_source_remove);
  g_clear_pointer (&b.reply, json_node_unref);
  g_ptr_array_unref (b.events);
  g_string_free (b.serial, TRUE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/qemu-boot/heartbeat", test_boot_heartbeat);
  return g_test_run ();
}
