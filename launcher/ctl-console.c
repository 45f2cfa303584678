/* ctl-console.c: `vmherd console NAME` (the serial console through vmherdd) and
 * `vmherd logs NAME [-f] [--serial]`. */
#include "launcher/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <termios.h>
#include <unistd.h>

#include "launcher/control-proto.h"
#include "launcher/host-config.h"

#define ESCAPE_CHAR 0x1d        /* Ctrl-] as in telnet and virsh console */

static ControlClient *
connect_daemon (CtlContext *ctx, int *out_status)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = host_config_load (ctx->config_path, errors);
  g_autoptr(GError) error = NULL;
  const char *socket = g_getenv ("VMHERD_CONTROL_SOCKET");
  ControlClient *client;

  *out_status = CTL_EXIT_FAILED;
  if (host == NULL)
    {
      config_errors_print (errors, stderr);
      return NULL;
    }
  client = control_client_connect (socket ? socket : host->control_socket, &error);
  if (client == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      *out_status = CTL_EXIT_UNREACHABLE;
    }
  return client;
}

static JsonNode *
call_vm (ControlClient *client, const char *command, const char *vm, int *out_status)
{
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(GError) error = NULL;
  JsonNode *ret;

  json_object_set_string_member (args, "vm", vm);
  ret = control_client_call (client, command, args, 10000, NULL, NULL, NULL, &error);
  if (ret == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      *out_status = g_error_matches (error, CONTROL_ERROR, CONTROL_ERROR_DISCONNECTED)
                    ? CTL_EXIT_UNREACHABLE : CTL_EXIT_FAILED;
    }
  return ret;
}

static gboolean
write_all (int fd, const void *data, gsize len)
{
  const char *p = data;

  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        {
          struct pollfd pfd = { fd, POLLOUT, 0 };
          poll (&pfd, 1, 1000);
          continue;
        }
      if (n <= 0)
        return FALSE;
      p += n;
      len -= (gsize) n;
    }
  return TRUE;
}

/* Splices the terminal and the socket until Ctrl-] or the guest's side closes. */
static int
splice_terminal (int sock, const char *vm)
{
  struct termios saved, raw;
  gboolean tty = isatty (STDIN_FILENO);
  int status = CTL_EXIT_OK;
  char buf[4096];

  if (tty && tcgetattr (STDIN_FILENO, &saved) == 0)
    {
      raw = saved;
      cfmakeraw (&raw);
      tcsetattr (STDIN_FILENO, TCSANOW, &raw);
    }
  gint64 detach_at = 0;         /* after the input ended: show a second of answers */

  for (;;)
    {
      struct pollfd p[2] = { { detach_at ? -1 : STDIN_FILENO, POLLIN, 0 }, { sock, POLLIN, 0 } };
      gint64 left = detach_at ? (detach_at - g_get_monotonic_time ()) / 1000 : -1;
      ssize_t n;
      int ready = detach_at && left <= 0 ? 0 : poll (p, 2, (int) left);

      if (ready < 0 && errno != EINTR)
        break;
      if (ready == 0)
        break;
      if (p[1].revents & (POLLIN | POLLHUP | POLLERR))
        {
          n = read (sock, buf, sizeof buf);
          if (n <= 0)
            {
              fprintf (stderr, "%s\nvm '%s': the console closed (the guest stopped, or vmherdd went away)\n",
                       tty ? "\r" : "", vm);
              status = CTL_EXIT_FAILED;
              break;
            }
          write_all (STDOUT_FILENO, buf, (gsize) n);
        }
      if (p[0].revents & (POLLIN | POLLHUP))
        {
          n = read (STDIN_FILENO, buf, sizeof buf);
          if (n <= 0)
            {
              detach_at = g_get_monotonic_time () + G_USEC_PER_SEC;
              continue;
            }
          char *esc = tty ? memchr (buf, ESCAPE_CHAR, (size_t) n) : NULL;
          if (!write_all (sock, buf, esc ? (gsize) (esc - buf) : (gsize) n) || esc != NULL)
            break;
        }
    }
  if (tty)
    tcsetattr (STDIN_FILENO, TCSANOW, &saved);
  return status;
}

int
ctl_cmd_console (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(ControlClient) client = NULL;
  g_autoptr(JsonNode) ret = NULL;
  int status;
  int sock;
  int flags;

  if (argc != 2 || argv[1][0] == '-')
    return ctl_usage (ctx, "console");
  client = connect_daemon (ctx, &status);
  if (client == NULL)
    return status;
  ret = call_vm (client, "console", argv[1], &status);
  if (ret == NULL)
    return status;
  sock = control_client_get_fd (client);
  flags = fcntl (sock, F_GETFL);
  fcntl (sock, F_SETFL, flags & ~O_NONBLOCK);
  if (!write_all (sock, "", 1))   /* the 0x00 that starts the stream */
    return CTL_EXIT_UNREACHABLE;
  if (isatty (STDIN_FILENO))
    fprintf (stderr, "Connected to the serial console of vm '%s'. Escape character is ^] (Ctrl-]).\n",
             argv[1]);
  return splice_terminal (sock, argv[1]);
}

/* Prints path from offset on; returns the new offset. */
static goffset
cat_from (const char *path, goffset offset)
{
  char buf[65536];
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd < 0)
    return offset;
  if (lseek (fd, 0, SEEK_END) < offset)
    offset = 0;                 /* truncated or replaced: start over */
  lseek (fd, offset, SEEK_SET);
  while ((n = read (fd, buf, sizeof buf)) > 0)
    {
      write_all (STDOUT_FILENO, buf, (gsize) n);
      offset += n;
    }
  close (fd);
  return offset;
}

int
ctl_cmd_logs (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(ControlClient) client = NULL;
  g_autoptr(JsonNode) ret = NULL;
  gboolean follow = FALSE, serial = FALSE;
  const char *vm = NULL, *path;
  goffset offset;
  int status, in;

  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "-f") == 0 || strcmp (argv[i], "--follow") == 0)
      follow = TRUE;
    else if (strcmp (argv[i], "--serial") == 0)
      serial = TRUE;
    else if (argv[i][0] != '-' && vm == NULL)
      vm = argv[i];
    else
      return ctl_usage (ctx, "logs");
  if (vm == NULL)
    return ctl_usage (ctx, "logs");
  client = connect_daemon (ctx, &status);
  if (client == NULL)
    return status;
  ret = call_vm (client, "logs", vm, &status);
  if (ret == NULL)
    return status;
  path = json_object_get_string_member (json_node_get_object (ret), serial ? "serial-log" : "log");
  if (access (path, R_OK) < 0)
    {
      fprintf (stderr, "cannot read %s: %s\n", path, g_strerror (errno));
      return CTL_EXIT_FAILED;
    }
  offset = cat_from (path, 0);
  if (!follow)
    return CTL_EXIT_OK;
  /* Follow with inotify: woken by writes, never polling on a timer. */
  in = inotify_init1 (IN_CLOEXEC);
  if (in < 0 || inotify_add_watch (in, path, IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF) < 0)
    {
      fprintf (stderr, "cannot follow %s: %s\n", path, g_strerror (errno));
      return CTL_EXIT_FAILED;
    }
  for (;;)
    {
      char events[4096];
      if (read (in, events, sizeof events) <= 0 && errno != EINTR)
        break;
      offset = cat_from (path, offset);
    }
  close (in);
  return CTL_EXIT_OK;
}
