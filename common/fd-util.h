/* fd-util.h: the one shared helper for file descriptors (GLib 2.74 has no g_autofd). */
#pragma once

#include <errno.h>
#include <glib.h>
#include <unistd.h>

typedef int AutoFd;

static inline void
fd_close_if_valid (int fd)
{
  if (fd >= 0)
    {
      int saved_errno = errno;
      close (fd);
      errno = saved_errno;
    }
}

G_DEFINE_AUTO_CLEANUP_FREE_FUNC (AutoFd, fd_close_if_valid, -1)
