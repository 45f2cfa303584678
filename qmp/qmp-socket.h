/* qmp-socket.h: the few socket system calls the QMP client makes (internal to qmp/).
 * Every fd returned or used here is non-blocking and close-on-exec. */
#pragma once

#include <glib.h>

#include "qmp/qmp.h"

G_BEGIN_DECLS

/* At most this many fds ride on one command (QEMU's chardev accepts 16 per message). */
#define QMP_SOCKET_MAX_FDS 16

/* Connects to a unix stream socket.  Returns the fd, or -1 with QMP_ERROR_IO. */
int qmp_socket_connect (const char *path, GError **error);

/* Makes an adopted fd non-blocking and close-on-exec; QMP_ERROR_IO when it is no socket. */
gboolean qmp_socket_prepare (int fd, GError **error);

/* Duplicates fds (close-on-exec) so the caller may close its own at once.  Returns a new
 * array of n_fds fds, or NULL with QMP_ERROR_IO (nothing left open). */
int *qmp_socket_dup_fds (const int *fds, guint n_fds, GError **error);

/* Closes and frees an array from qmp_socket_dup_fds(). */
void qmp_socket_close_fds (int *fds, guint n_fds);

/* One non-blocking sendmsg(); fds ride as SCM_RIGHTS on its first byte.  Returns the
 * bytes sent, 0 when the socket is full, or -1 with QMP_ERROR_DISCONNECTED. */
gssize qmp_socket_send (int fd, const void *data, gsize length, const int *fds, guint n_fds,
                        GError **error);

/* One non-blocking recv().  Returns the bytes read, 0 at EOF (or ECONNRESET, see there),
 * -1 when nothing is there yet (error unset) or with QMP_ERROR_DISCONNECTED (error set). */
gssize qmp_socket_recv (int fd, void *buffer, gsize size, GError **error);

G_END_DECLS
