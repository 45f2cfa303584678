/* qmp-error.c: the QMP_ERROR domain. */
#define G_LOG_DOMAIN "vmherd-qmp"

#include "qmp/qmp.h"

G_DEFINE_QUARK (vmherd-qmp-error-quark, qmp_error)

static const char *const qmp_error_names[] = {
  [QMP_ERROR_DISCONNECTED] = "disconnected",
  [QMP_ERROR_TIMEOUT] = "timeout",
  [QMP_ERROR_PROTOCOL] = "protocol",
  [QMP_ERROR_COMMAND] = "command",
  [QMP_ERROR_CANCELLED] = "cancelled",
  [QMP_ERROR_IO] = "io",
};

const char *
qmp_error_to_string (QmpError code)
{
  if ((guint) code >= G_N_ELEMENTS (qmp_error_names))
    return "unknown";
  return qmp_error_names[code];
}
