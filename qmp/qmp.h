/* qmp.h: the QMP module's error domain, shared by the codec and the client. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QMP_ERROR (qmp_error_quark ())

typedef enum
{
  QMP_ERROR_DISCONNECTED, /* not connected, or the connection closed (EOF, read/write error) */
  QMP_ERROR_TIMEOUT,      /* no greeting, capabilities reply or command reply in time */
  QMP_ERROR_PROTOCOL,     /* malformed message: invalid UTF-8 or JSON, unknown shape, line too long */
  QMP_ERROR_COMMAND,      /* QEMU answered with an error; the message is "Class: desc" */
  QMP_ERROR_CANCELLED,    /* the caller's GCancellable fired, or the client was freed */
  QMP_ERROR_IO,           /* a local system call failed: socket(), connect(), dup() */
} QmpError;

GQuark qmp_error_quark (void);

/* Short lower-case name of an error code ("timeout"), for logs and metrics. */
const char *qmp_error_to_string (QmpError code);

G_END_DECLS
