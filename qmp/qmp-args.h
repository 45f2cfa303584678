/* qmp-args.h: pure builders for the "arguments" of the commands vmherd sends.
 * Each returns a new JsonObject (unref it, or hand it to qmp_client_execute_async()). */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* qmp_capabilities: {"enable": [...]}; enable may be NULL or empty for {}. */
JsonObject *qmp_build_capabilities_args (const char *const *enable);

/* getfd / closefd: {"fdname": NAME}; getfd needs the fd attached (SCM_RIGHTS). */
JsonObject *qmp_build_getfd_args (const char *fdname);
JsonObject *qmp_build_closefd_args (const char *fdname);

/* add-fd: {"fdset-id": ID, "opaque": TEXT}; fdset_id < 0 lets QEMU pick, opaque may be NULL. */
JsonObject *qmp_build_add_fd_args (gint64 fdset_id, const char *opaque);

/* migrate / migrate-incoming: {"uri": URI}. */
JsonObject *qmp_build_migrate_args (const char *uri);

/* migrate-set-capabilities: {"capabilities": [{"capability": NAME, "state": STATE}, ...]}. */
JsonObject *qmp_build_migrate_capabilities_args (const char *const *capabilities, gboolean state);

G_END_DECLS
