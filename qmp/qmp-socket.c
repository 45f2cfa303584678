/* qmp-socket.c: connect, SCM_RIGHTS sendmsg and recv for the QMP client. */
#define G_LOG_DOMAIN "vmherd-qmp"

#include "qmp/qmp-socket.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fd-util.h"

int
qmp_socket_connect (const char *path, GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_auto(AutoFd) fd = -1;

  g_return_val_if_fail (path != NULL, -1);

  if (strlen (path) >= sizeof addr.sun_path)
    {
      g_set_error (error, QMP_ERROR, QMP_ERROR_IO, "cannot connect to %s: path longer than %zu bytes",
                   path, sizeof addr.sun_path - 1);
      return -1;
    }
  strcpy (addr.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    {
      int saved_errno = errno;
      g_set_error (error, QMP_ERROR, QMP_ERROR_IO, "cannot create a socket for %s: %s", path,
                   g_strerror (saved_errno));
      return -1;
    }
  /* A unix-socket connect() completes at once: QEMU's listening socket (or its backlog,
   * when QEMU is stopped) accepts it, or it fails. */
  while (connect (fd, (struct sockaddr *) &addr, sizeof addr) < 0)
    {
      int saved_errno = errno;

      if (saved_errno == EINTR)
        continue;
      g_set_error (error, QMP_ERROR, QMP_ERROR_IO, "cannot connect to %s: %s", path,
                   g_strerror (saved_errno));
      return -1;
    }
  return g_steal_fd (&fd);
}

gboolean
qmp_socket_prepare (int fd, GError **error)
{
  int type = 0;
  socklen_t length = sizeof type;
  int flags;

  if (getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0 || type != SOCK_STREAM)
    {
      g_set_error (error, QMP_ERROR, QMP_ERROR_IO, "fd %d is not a stream socket", fd);
      return FALSE;
    }
  flags = fcntl (fd, F_GETFL);
  if (flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl (fd, F_SETFD, FD_CLOEXEC) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, QMP_ERROR, QMP_ERROR_IO, "cannot make fd %d non-blocking: %s", fd,
                   g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

void
qmp_socket_close_fds (int *fds, guint n_fds)
{
  for (guint i = 0; fds != NULL && i < n_fds; i++)
    fd_close_if_valid (fds[i]);
  g_free (fds);
}

int *
qmp_socket_dup_fds (const int *fds, guint n_fds, GError **error)
{
  int *copies = g_new (int, MAX (n_fds, 1));

  for (guint i = 0; i < n_fds; i++)
    {
      copies[i] = fcntl (fds[i], F_DUPFD_CLOEXEC, 3);
      if (copies[i] < 0)
        {
          int saved_errno = errno;
          g_set_error (error, QMP_ERROR, QMP_ERROR_IO, "cannot duplicate fd %d: %s", fds[i],
                       g_strerror (saved_errno));
          qmp_socket_close_fds (copies, i);
          return NULL;
        }
    }
  return copies;
}

gssize
qmp_socket_send (int fd, const void *data, gsize length, const int *fds, guint n_fds, GError **error)
{
  struct iovec iov = { .iov_base = (void *) data, .iov_len = length };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
  union
  {
    struct cmsghdr align;
    char buffer[CMSG_SPACE (sizeof (int) * QMP_SOCKET_MAX_FDS)];
  } control;

  g_return_val_if_fail (n_fds <= QMP_SOCKET_MAX_FDS, -1);

  if (n_fds > 0)
    {
      struct cmsghdr *cmsg;

      memset (&control, 0, sizeof control);
      msg.msg_control = control.buffer;
      msg.msg_controllen = CMSG_SPACE (sizeof (int) * n_fds);
      cmsg = CMSG_FIRSTHDR (&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN (sizeof (int) * n_fds);
      memcpy (CMSG_DATA (cmsg), fds, sizeof (int) * n_fds);
    }
  for (;;)
    {
      gssize sent = sendmsg (fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      int saved_errno = errno;

      if (sent >= 0)
        return sent;
      if (saved_errno == EINTR)
        continue;
      if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)
        return 0;
      g_set_error (error, QMP_ERROR, QMP_ERROR_DISCONNECTED, "cannot write to the QMP socket: %s",
                   g_strerror (saved_errno));
      return -1;
    }
}

gssize
qmp_socket_recv (int fd, void *buffer, gsize size, GError **error)
{
  for (;;)
    {
      gssize received = recv (fd, buffer, size, MSG_DONTWAIT);
      int saved_errno = errno;

      if (received >= 0)
        return received;
      if (saved_errno == EINTR)
        continue;
      /* A unix-socket peer that closes with our bytes unread makes the kernel report
       * ECONNRESET, after every byte it sent was read.  QEMU does so on each "quit": it
       * reads QMP input a byte at a time and stops once a command is dispatched, so the
       * "\n" after "quit" is never read.  That is an orderly close, like EOF. */
      if (saved_errno == ECONNRESET)
        return 0;
      if (saved_errno != EAGAIN && saved_errno != EWOULDBLOCK)
        g_set_error (error, QMP_ERROR, QMP_ERROR_DISCONNECTED, "cannot read from the QMP socket: %s",
                     g_strerror (saved_errno));
      return -1;
    }
}
