/* harness.c: a real vmherdd for tests (see harness.h). */
#include "tests/harness.h"

#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests/test-util.h"

/* When a test fails (g_error traps, failed assertions abort), the end of each live host's
 * vmherdd.log goes to stderr: in CI that is all there is to read afterwards.  The paths
 * are built beforehand; the handler only opens, reads and writes. */
#define LOG_TAIL 8192
static char *live_logs[8];

static void
write_all (int fd, const char *text, size_t len)
{
  while (len > 0)
    {
      ssize_t n = write (fd, text, len);
      if (n <= 0)
        return;
      text += n;
      len -= (size_t) n;
    }
}

static void
on_abort (int sig)
{
  static char buf[LOG_TAIL];

  for (guint i = 0; i < G_N_ELEMENTS (live_logs); i++)
    {
      int fd = live_logs[i] ? open (live_logs[i], O_RDONLY | O_CLOEXEC) : -1;
      off_t end;
      ssize_t n;

      if (fd < 0)
        continue;
      end = lseek (fd, 0, SEEK_END);
      lseek (fd, end > LOG_TAIL ? end - LOG_TAIL : 0, SEEK_SET);
      n = read (fd, buf, sizeof buf);
      close (fd);
      write_all (2, "---- the end of ", 16);
      write_all (2, live_logs[i], strlen (live_logs[i]));
      write_all (2, " ----\n", 6);
      if (n > 0)
        write_all (2, buf, (size_t) n);
      write_all (2, "---- end ----\n", 14);
    }
  signal (sig, SIG_DFL);
  raise (sig);
}

static void
live_log_add (const char *path)
{
  static gboolean installed;

  if (!installed)
    {
      signal (SIGABRT, on_abort);
      signal (SIGTRAP, on_abort);
      installed = TRUE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (live_logs); i++)
    if (live_logs[i] == NULL)
      {
        live_logs[i] = g_strdup (path);
        return;
      }
}

static void
live_log_remove (const char *path)
{
  for (guint i = 0; i < G_N_ELEMENTS (live_logs); i++)
    if (g_strcmp0 (live_logs[i], path) == 0)
      g_clear_pointer (&live_logs[i], g_free);
}

static void
host_stop (gpointer data)
{
  Host *h = data;
  g_autofree char *pid_text = NULL;
  g_autoptr(GDir) d = NULL;
  g_autofree char *vmdir = g_build_filename (h->dir, "run", "vm", NULL);
  g_autofree char *log = g_build_filename (h->dir, "vmherdd.log", NULL);
  const char *name;

  live_log_remove (log);
  if (g_file_get_contents (h->pidfile, &pid_text, NULL, NULL))
    kill ((pid_t) g_ascii_strtoll (pid_text, NULL, 10), SIGKILL);
  /* Guests outlive the daemon: end them by their pid files. */
  d = g_dir_open (vmdir, 0, NULL);
  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *pidfile = g_build_filename (vmdir, name, "pid", NULL);
      g_autofree char *text = NULL;
      if (g_file_get_contents (pidfile, &text, NULL, NULL))
        kill ((pid_t) g_ascii_strtoll (text, NULL, 10), SIGKILL);
    }
  g_free (h->dir);
  g_free (h->config);
  g_free (h->socket);
  g_free (h->pidfile);
  g_free (h->netns);
  g_free (h);
}

Host *
host_new (const char *extra_host_config)
{
  Host *h = g_new0 (Host, 1);
  g_autofree char *vms = NULL;
  g_autofree char *text = NULL;
  g_autofree char *log = NULL;

  h->dir = test_tmpdir ();
  g_assert_cmpint (g_chmod (h->dir, 0755), ==, 0);   /* QEMU runs as nobody */
  h->config = g_build_filename (h->dir, "vmherd.conf", NULL);
  h->socket = g_build_filename (h->dir, "run", "control", NULL);
  h->pidfile = g_build_filename (h->dir, "vmherdd.pid", NULL);
  vms = g_build_filename (h->dir, "vms.d", NULL);
  g_mkdir (vms, 0755);
  text = g_strdup_printf ("[daemon]\nvm-dir = vms.d\nrun-dir = run\nstate-dir = state\n"
                          "log-dir = log\nqemu-user = nobody\n%s",
                          extra_host_config ? extra_host_config : "");
  test_write_file (h->config, text);
  g_test_queue_destroy (host_stop, h);
  log = g_build_filename (h->dir, "vmherdd.log", NULL);
  live_log_add (log);
  return h;
}

void
host_add_vm (Host *h, const char *name, const char *text)
{
  g_autofree char *file = g_strdup_printf ("%s/vms.d/%s.conf", h->dir, name);

  test_write_file (file, text);
}

/* A host with the VM files given as name, text, ..., NULL; vmherdd started and ready. */
Host *
host_start_with (const char *extra_host_config, const char *first_name, ...)
{
  Host *h = host_new (extra_host_config);
  const char *name;
  va_list ap;

  va_start (ap, first_name);
  for (name = first_name; name != NULL; name = va_arg (ap, const char *))
    host_add_vm (h, name, va_arg (ap, const char *));
  va_end (ap);
  host_restart_daemon (h);
  return h;
}

void
start_vm (Host *h, const char *name)
{
  TestRun r = test_run_vmherd (h->config, NULL, "start", name, NULL);
  g_autofree char *expected = g_strdup_printf ("vm '%s': running\n", name);

  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpstr (r.out, ==, expected);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
}

/* Reads from fd until text shows up (or fails after timeout_ms); returns all read. */
char *
read_until (int fd, const char *text, int timeout_ms)
{
  GString *got = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (strstr (got->str, text) == NULL)
    {
      struct pollfd p = { fd, POLLIN, 0 };
      char buf[4096];
      ssize_t n;
      int left = (int) ((deadline - g_get_monotonic_time ()) / 1000);

      if (left <= 0 || poll (&p, 1, left) <= 0)
        g_error ("no '%s' on the serial console within %d ms; got: %s", text, timeout_ms, got->str);
      n = read (fd, buf, sizeof buf);
      g_assert_cmpint (n, >, 0);
      g_string_append_len (got, buf, n);
    }
  return g_string_free (got, FALSE);
}

void
host_kill_daemon (Host *h)
{
  g_autofree char *pid_text = test_read_file (h->pidfile);
  pid_t pid = (pid_t) g_ascii_strtoll (pid_text, NULL, 10);
  int pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  struct pollfd p = { pidfd, POLLIN, 0 };

  g_assert_cmpint (pidfd, >=, 0);
  g_assert_cmpint (kill (pid, SIGKILL), ==, 0);
  g_assert_cmpint (poll (&p, 1, 10000), ==, 1);   /* gone, with its listening socket */
  close (pidfd);
}

void
host_restart_daemon (Host *h)
{
  g_autofree char *bin = test_build_path ("vmherdd");
  g_autofree char *log = g_build_filename (h->dir, "vmherdd.log", NULL);
  const char *argv[] = { "ip", "netns", "exec", h->netns, bin, "--config", h->config, "--pidfile",
                        h->pidfile, "--log", log, NULL };
  TestRun r;

  /* Without -f, vmherdd returns once its control socket listens: no waiting here. */
  r = test_run (h->netns ? argv : argv + 4, NULL);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
}

ControlClient *
host_subscribe_events (Host *h)
{
  g_autoptr(GError) error = NULL;
  ControlClient *c = control_client_connect (h->socket, &error);
  g_autoptr(JsonNode) ret = NULL;

  g_assert_no_error (error);
  ret = control_client_call (c, "events", NULL, 5000, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  return c;
}

JsonObject *
host_next_event (ControlClient *c, gint64 deadline, const char *what)
{
  g_autoptr(GError) error = NULL;
  gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
  JsonObject *line;

  if (left <= 0)
    g_error ("no %s in time", what);
  line = control_client_read_line (c, (guint) left, &error);
  if (line == NULL)
    g_error ("no %s: %s", what, error->message);
  return line;
}

/* Does every key, value pair of ap match a string member of data? */
static gboolean
data_matches (JsonObject *data, va_list ap)
{
  const char *key;

  while ((key = va_arg (ap, const char *)) != NULL)
    {
      const char *value = va_arg (ap, const char *);
      JsonNode *member = data ? json_object_get_member (data, key) : NULL;

      if (member == NULL || json_node_get_value_type (member) != G_TYPE_STRING
          || g_strcmp0 (json_node_get_string (member), value) != 0)
        return FALSE;
    }
  return TRUE;
}

JsonObject *
host_expect_event (ControlClient *c, int timeout_ms, const char *name, ...)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  g_autoptr(GString) what = g_string_new (name);
  const char *key;
  va_list ap;

  va_start (ap, name);
  while ((key = va_arg (ap, const char *)) != NULL)
    g_string_append_printf (what, " %s=%s", key, va_arg (ap, const char *));
  va_end (ap);
  g_string_append_printf (what, " event within %d ms", timeout_ms);
  for (;;)
    {
      g_autoptr(JsonObject) line = host_next_event (c, deadline, what->str);
      JsonObject *data = json_object_get_object_member (line, "data");
      gboolean match;

      if (g_strcmp0 (json_object_get_string_member_with_default (line, "event", NULL), name) != 0)
        continue;
      va_start (ap, name);
      match = data_matches (data, ap);
      va_end (ap);
      if (match)
        return json_object_ref (data);
    }
}

JsonObject *
host_vm_status (Host *h, const char *vm)
{
  g_autoptr(ControlClient) c = control_client_connect (h->socket, NULL);
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(GError) error = NULL;

  json_object_set_string_member (args, "vm", vm);
  ret = control_client_call (c, "status", args, 5000, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  return json_object_ref (json_node_get_object (ret));
}

guint16
test_free_port (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                       G_SOCKET_PROTOCOL_TCP, &error);
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  g_assert_no_error (error);
  g_assert_true (g_socket_bind (s, any, FALSE, &error));
  g_assert_no_error (error);
  bound = g_socket_get_local_address (s, &error);
  g_assert_no_error (error);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

ControlClient *
host_console_ready (Host *h, const char *vm, int *out_fd, char **out_seen)
{
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(GError) error = NULL;
  ControlClient *c = control_client_connect (h->socket, &error);
  char *seen;

  g_assert_no_error (error);
  json_object_set_string_member (args, "vm", vm);
  ret = control_client_call (c, "console", args, 5000, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  *out_fd = control_client_get_fd (c);
  g_assert_cmpint (write (*out_fd, "", 1), ==, 1);   /* the 0x00 that starts the stream */
  seen = read_until (*out_fd, "vmherd-guest: ready", 120000);
  if (strstr (strstr (seen, "vmherd-guest: ready"), "/ # ") == NULL)
    {
      char *more = read_until (*out_fd, "/ # ", 60000);
      char *all = g_strconcat (seen, more, NULL);
      g_free (seen);
      g_free (more);
      seen = all;
    }
  if (out_seen != NULL)
    *out_seen = seen;
  else
    g_free (seen);
  return c;
}

void
console_type (int fd, const char *text)
{
  g_assert_cmpint (write (fd, text, strlen (text)), ==, (gssize) strlen (text));
}
