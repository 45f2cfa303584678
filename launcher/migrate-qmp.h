/* migrate-qmp.h: QMP commands run one after another for a migration step, and the
 * settings both ends share. */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "launcher/host-config.h"
#include "qmp/qmp-client.h"

#define MIGRATE_TLS_OBJECT "vmherd-migrate-tls"
#define MIGRATE_QMP_TIMEOUT_MS 30000

typedef struct _MigrateQmpSeq MigrateQmpSeq;

/* Called once: error NULL and the last command's reply (borrowed), or the command that
 * failed and why.  Not called when cancelled. */
typedef void (*MigrateQmpDone) (JsonNode *last_reply, const char *failed_command,
                                const GError *error, gpointer user_data);

MigrateQmpSeq *migrate_qmp_seq_new (void);
void migrate_qmp_seq_free (MigrateQmpSeq *seq);   /* one never run */
/* Appends a command; arguments (nullable) are taken.  may_fail: an error is logged and the
 * sequence goes on (object-del of a leftover object). */
void migrate_qmp_seq_add (MigrateQmpSeq *seq, const char *command, JsonObject *arguments,
                          gboolean may_fail);
/* Runs seq (taken) on qmp. */
void migrate_qmp_seq_run (MigrateQmpSeq *seq, QmpClient *qmp, GCancellable *cancellable,
                          MigrateQmpDone done, gpointer user_data);

/* {"capabilities": [{"capability": NAME, "state": true}, ...]} for names (NULL-ended). */
JsonObject *migrate_qmp_capabilities (const char *const *names);

/* Copies the host's peer CA, certificate and key into run-dir/migrate-tls/NAME in the layout
 * QEMU's tls-creds-x509 reads (ca-cert.pem, server-* or client-*), readable by the QEMU
 * user only.  Returns the folder, or NULL with an error naming the file. */
char *migrate_tls_dir_create (const HostConfig *host, const char *vm_name, gboolean server,
                              GError **error);
void migrate_tls_dir_remove (const char *dir);
/* object-add arguments for that folder. */
JsonObject *migrate_tls_object (const char *dir, gboolean server);

/* MemAvailable of /proc/meminfo in bytes, or -1. */
gint64 migrate_mem_available (void);

/* The migrate-incoming URI of this host: tcp:ADDR:0 on [migration] address, else on the
 * [peer] listen address. */
char *migrate_listen_address (const HostConfig *host);
/* The bare address of that (for the NBD server of --copy-storage). */
char *migrate_listen_host (const HostConfig *host);
/* A TCP port free on address right now (bound and released), or -1 with an error. */
gint64 migrate_free_port (const char *address, GError **error);
