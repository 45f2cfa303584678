/* control-connect.h: reaching vmherdd's control socket, and the errors of the control
 * protocol.  GLib only: the lean `vmherd` front (front-main.c) uses it as well as the
 * json-glib client of control-proto.h. */
#pragma once

#include <glib.h>

#define CONTROL_ERROR (control_error_quark ())
GQuark control_error_quark (void);

typedef enum
{
  CONTROL_ERROR_UNREACHABLE,    /* no daemon listening at the path: exit 3 */
  CONTROL_ERROR_REFUSED,        /* the daemon answered {"error": ...}: exit 1 */
  CONTROL_ERROR_PROTOCOL,       /* a reply that is not one JSON object per line */
  CONTROL_ERROR_TIMEOUT,        /* no answer (or line) within the timeout */
  CONTROL_ERROR_DISCONNECTED,   /* the daemon closed the connection (or a read or write
                                 * failed) before the answer; its outcome is unknown */
  CONTROL_ERROR_IN_USE,         /* server: a live vmherdd already listens at the path */
  CONTROL_ERROR_IO,             /* server: socket(), bind(), listen() or chmod() failed */
} ControlError;

/* Short lower-case name of an error code ("timeout"), for logs. */
const char *control_error_to_string (ControlError code);

/* Longest line either side accepts, in bytes, without its "\n".  Requests are small; a
 * longer request line is answered with InvalidArgument and skipped.  Answers (logs, image
 * info) may be larger, up to CONTROL_MAX_ANSWER_LENGTH. */
#define CONTROL_MAX_REQUEST_LENGTH (1024 * 1024)
#define CONTROL_MAX_ANSWER_LENGTH (64 * 1024 * 1024)

/* How long control_client_connect() waits when the daemon's accept backlog is full. */
#define CONTROL_CONNECT_TIMEOUT_MS 5000

/* Connects to the control socket at path; returns the connected socket, non-blocking and
 * close-on-exec, or -1 with CONTROL_ERROR_UNREACHABLE ("cannot reach vmherdd at PATH:
 * REASON (is vmherdd running?)") or CONTROL_ERROR_TIMEOUT when the daemon does not accept
 * within CONTROL_CONNECT_TIMEOUT_MS. */
int control_connect (const char *path, GError **error);

/* The monotonic time (µs) timeout_ms from now; -1 (no deadline) for 0. */
gint64 control_deadline_from (guint timeout_ms);

/* Waits for events (POLLIN, POLLOUT) on fd until deadline (control_deadline_from); FALSE
 * at the deadline, TRUE when ready or on an error (which the next read or write reports).
 * EINTR restarts the wait with the time left. */
gboolean control_wait (int fd, short events, gint64 deadline);
