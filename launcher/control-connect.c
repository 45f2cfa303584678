/* control-connect.c: reaching vmherdd's control socket (control-connect.h). */
#include "launcher/control-connect.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

/* Milliseconds left until deadline for poll(): -1 forever, 0 when passed. */
static int
poll_timeout (gint64 deadline)
{
  gint64 left;

  if (deadline < 0)
    return -1;
  left = deadline - g_get_monotonic_time ();
  if (left <= 0)
    return 0;
  return (int) MIN ((left + 999) / 1000, G_MAXINT);
}

gint64
control_deadline_from (guint timeout_ms)
{
  return timeout_ms == 0 ? -1 : g_get_monotonic_time () + (gint64) timeout_ms * 1000;
}

gboolean
control_wait (int fd, short events, gint64 deadline)
{
  for (;;)
    {
      struct pollfd pfd = { .fd = fd, .events = events };
      int ready = poll (&pfd, 1, poll_timeout (deadline));

      if (ready > 0)
        return TRUE;
      if (ready == 0)
        return FALSE;
      if (errno != EINTR)
        return TRUE; /* let the read or write report the problem */
    }
}
