/* daemon-console.c: `vmherd console NAME`, the guest's serial console through vmherdd.
 *
 * QEMU's serial chardev serves one client; the daemon connects to it for the operator and
 * splices bytes between it and the operator's control connection, which leaves the JSON
 * protocol after the answer.  The client sends one 0x00 byte when it is ready, so no serial
 * output can be mistaken for the answer.  QEMU itself keeps logging the serial output.
 * Output for a client that does not read is dropped past a bound: a console never blocks
 * the daemon. */
#include "launcher/daemon-private.h"

#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "launcher/qemu-spawn.h"

#define CONSOLE_BUFFER_MAX (256 * 1024)

typedef struct
{
  int fd;
  guint watch;
  GByteArray *out;              /* waiting to be written to fd */
  guint out_watch;
} ConsoleEnd;

struct _DaemonConsole
{
  Daemon *daemon;
  char *vm;
  uid_t uid;
  ConsoleEnd client, serial;
  gboolean started;             /* the client's 0x00 arrived */
};

static void
console_end_clear (ConsoleEnd *end)
{
  g_clear_handle_id (&end->watch, g_source_remove);
  g_clear_handle_id (&end->out_watch, g_source_remove);
  fd_close_if_valid (end->fd);
  end->fd = -1;
  g_clear_pointer (&end->out, g_byte_array_unref);
}

static void
console_close (DaemonConsole *console, const char *why)
{
  g_message ("vm '%s': console of uid %u closed: %s", console->vm, (guint) console->uid, why);
  console_end_clear (&console->client);
  console_end_clear (&console->serial);
  g_hash_table_remove (console->daemon->consoles, console->vm);   /* frees console */
}

static void
console_free (DaemonConsole *console)
{
  console_end_clear (&console->client);
  console_end_clear (&console->serial);
  g_free (console->vm);
  g_free (console);
}

static gboolean on_end_writable (int fd, GIOCondition condition, gpointer data);

/* Writes what end->fd takes now; watches for the rest. */
static gboolean
console_end_flush (DaemonConsole *console, ConsoleEnd *end)
{
  while (end->out->len > 0)
    {
      ssize_t n = send (end->fd, end->out->data, end->out->len, MSG_NOSIGNAL | MSG_DONTWAIT);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        return FALSE;
      g_byte_array_remove_range (end->out, 0, (guint) n);
    }
  if (end->out->len > 0 && end->out_watch == 0)
    end->out_watch = g_unix_fd_add (end->fd, G_IO_OUT, on_end_writable, console);
  return TRUE;
}

static gboolean
on_end_writable (int fd, GIOCondition condition G_GNUC_UNUSED, gpointer data)
{
  DaemonConsole *console = data;
  ConsoleEnd *end = fd == console->client.fd ? &console->client : &console->serial;

  end->out_watch = 0;
  if (!console_end_flush (console, end))
    {
      console_close (console, "write failed");
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_REMOVE;
}

static gboolean
on_end_readable (int fd, GIOCondition condition G_GNUC_UNUSED, gpointer data)
{
  DaemonConsole *console = data;
  gboolean from_client = fd == console->client.fd;
  ConsoleEnd *to = from_client ? &console->serial : &console->client;
  guint8 buf[4096];
  ssize_t n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
  guint8 *data_start = buf;

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  if (n <= 0)
    {
      (from_client ? &console->client : &console->serial)->watch = 0;
      console_close (console, from_client ? "the operator detached" : "the guest's serial port closed");
      return G_SOURCE_REMOVE;
    }
  if (from_client && !console->started)
    {
      if (buf[0] != 0)
        {
          console->client.watch = 0;
          console_close (console, "the client did not start with 0x00");
          return G_SOURCE_REMOVE;
        }
      console->started = TRUE;
      data_start++;
      n--;
    }
  if (to->out->len + (gsize) n > CONSOLE_BUFFER_MAX)
    g_debug ("vm '%s': console buffer full, dropping %zd bytes", console->vm, n);
  else
    g_byte_array_append (to->out, data_start, (guint) n);
  if (!console_end_flush (console, to))
    {
      (from_client ? &console->client : &console->serial)->watch = 0;
      console_close (console, "write failed");
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static int
connect_serial (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_auto(AutoFd) fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

  if (fd < 0 || strlen (path) >= sizeof addr.sun_path)
    return -1;
  strcpy (addr.sun_path, path);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) < 0)
    return -1;
  return g_steal_fd (&fd);
}

void
daemon_cmd_console (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  Vm *vm = daemon_request_vm (daemon, request, args);
  const char *name;
  g_autofree char *dir = NULL, *path = NULL;
  DaemonConsole *console;
  int serial, client;

  if (vm == NULL)
    return;
  name = vm_get_name (vm);
  if (g_hash_table_contains (daemon->consoles, name))
    {
      DaemonConsole *other = g_hash_table_lookup (daemon->consoles, name);
      return control_request_error (request, "Busy", "the console of vm '%s' is in use by uid %u "
                                    "(QEMU's serial port takes one client)", name, (guint) other->uid);
    }
  dir = qemu_instance_dir (daemon->host, name);
  path = g_build_filename (dir, "serial.sock", NULL);
  if (vm_get_qmp (vm) == NULL || (serial = connect_serial (path)) < 0)
    return control_request_error (request, "Busy", "vm '%s' is %s: no serial console to attach to",
                                  name, vm_state_to_string (vm_get_state (vm)));
  console = g_new0 (DaemonConsole, 1);
  console->daemon = daemon;
  console->vm = g_strdup (name);
  console->uid = control_request_get_peer (request)->uid;
  console->serial.fd = serial;
  client = control_request_return_and_detach (request, NULL);
  if (client < 0)
    {
      close (serial);
      console_free (console);
      return;
    }
  console->client.fd = client;
  console->client.out = g_byte_array_new ();
  console->serial.out = g_byte_array_new ();
  console->client.watch = g_unix_fd_add (client, G_IO_IN | G_IO_HUP | G_IO_ERR, on_end_readable, console);
  console->serial.watch = g_unix_fd_add (serial, G_IO_IN | G_IO_HUP | G_IO_ERR, on_end_readable, console);
  g_hash_table_insert (daemon->consoles, g_strdup (name), console);
  vm_log (vm, "serial console attached by uid %u", (guint) console->uid);
}

void
daemon_consoles_free (Daemon *daemon)
{
  g_clear_pointer (&daemon->consoles, g_hash_table_unref);
}

GHashTable *
daemon_consoles_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) console_free);
}
