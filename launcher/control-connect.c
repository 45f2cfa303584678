/* control-connect.c: reaching vmherdd's control socket (control-connect.h). */
#include "launcher/control-connect.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fd-util.h"

G_DEFINE_QUARK (vmherd-control-error-quark, control_error)

static const char *const control_error_names[] = {
  [CONTROL_ERROR_UNREACHABLE] = "unreachable",
  [CONTROL_ERROR_REFUSED] = "refused",
  [CONTROL_ERROR_PROTOCOL] = "protocol",
  [CONTROL_ERROR_TIMEOUT] = "timeout",
  [CONTROL_ERROR_DISCONNECTED] = "disconnected",
  [CONTROL_ERROR_IN_USE] = "in-use",
  [CONTROL_ERROR_IO] = "io",
};

const char *
control_error_to_string (ControlError code)
{
  if ((guint) code >= G_N_ELEMENTS (control_error_names))
    return "unknown";
  return control_error_names[code];
}

int
control_connect (const char *path, GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct timeval connect_timeout = { .tv_sec = CONTROL_CONNECT_TIMEOUT_MS / 1000,
                                     .tv_usec = CONTROL_CONNECT_TIMEOUT_MS % 1000 * 1000 };
  g_auto(AutoFd) fd = -1;
  int flags;

  g_return_val_if_fail (path != NULL, -1);

  if (strlen (path) >= sizeof addr.sun_path)
    {
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_UNREACHABLE,
                   "cannot reach vmherdd at %s: path longer than %zu bytes", path, sizeof addr.sun_path - 1);
      return -1;
    }
  strcpy (addr.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    {
      int saved_errno = errno;
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_UNREACHABLE, "cannot reach vmherdd at %s: %s", path,
                   g_strerror (saved_errno));
      return -1;
    }
  /* A unix connect() completes at once unless the daemon's accept backlog is full; then
   * the send timeout bounds the wait (Linux applies SO_SNDTIMEO to connect()). */
  (void) setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &connect_timeout, sizeof connect_timeout);
  while (connect (fd, (struct sockaddr *) &addr, sizeof addr) < 0)
    {
      int saved_errno = errno;

      if (saved_errno == EINTR)
        continue;
      if (saved_errno == EAGAIN)
        g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_TIMEOUT,
                     "vmherdd at %s did not accept the connection within %d ms (is it stuck?)", path,
                     CONTROL_CONNECT_TIMEOUT_MS);
      else
        g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_UNREACHABLE,
                     "cannot reach vmherdd at %s: %s (is vmherdd running?)", path, g_strerror (saved_errno));
      return -1;
    }
  flags = fcntl (fd, F_GETFL);
  if (flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, CONTROL_ERROR, CONTROL_ERROR_UNREACHABLE, "cannot reach vmherdd at %s: %s", path,
                   g_strerror (saved_errno));
      return -1;
    }
  return g_steal_fd (&fd);
}
