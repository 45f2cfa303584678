/* migrate-source.h: moving a running guest from this host to a peer (QMP-NOTES 2.1):
 * connect, the peer prepares an incoming QEMU, capabilities and parameters over QMP,
 * `migrate` with progress and downtime escalation, switchover, and a rollback that keeps
 * the guest running here whenever anything fails before the peer has it running. */
#pragma once

#include "launcher/daemon-private.h"

typedef struct _MigrateOut MigrateOut;

/* Steps, for "failed at step X" messages. */
typedef enum
{
  MIGRATE_STEP_CONNECT,         /* the peer link to the destination */
  MIGRATE_STEP_PREPARE,         /* the destination checks the VM and starts its QEMU */
  MIGRATE_STEP_SETUP,           /* capabilities, TLS, parameters on the source QEMU */
  MIGRATE_STEP_STORAGE,         /* --copy-storage: the disks mirrored to the destination */
  MIGRATE_STEP_TRANSFER,        /* RAM going over */
  MIGRATE_STEP_SWITCHOVER,      /* source stopped; the destination resumes the guest */
  MIGRATE_STEP_DONE,
} MigrateStep;

const char *migrate_step_to_string (MigrateStep step);

/* progress: {"vm", "to", "status", "transferred", "remaining", "total", "dirty-rate",
 * "pass", "mbps", "elapsed-ms", "eta-ms", "downtime-limit-ms"}; borrowed. */
typedef void (*MigrateProgressFunc) (JsonObject *progress, gpointer user_data);
/* result (on success, borrowed): {"vm", "to", "total-ms", "downtime-ms", "qemu-downtime-ms",
 * "setup-ms", "transferred", "passes"}; error says which step failed and what happened
 * to the guest.  The job is freed after this returns. */
typedef void (*MigrateOutDone) (const GError *error, JsonObject *result, gpointer user_data);

/* Starts moving vm to the peer host `to`.  FALSE (nothing started) when the VM or the
 * request is not fit: not running, has snapshot layers, its file changed since it started,
 * (copy_storage: its disks are copied to the destination, which creates them, instead of
 * being on storage both reach),
 * `to` is not a configured peer, already migrating. */
MigrateOut *migrate_out_start (Daemon *daemon, Vm *vm, const char *to, gboolean postcopy,
                               gboolean copy_storage,
                               MigrateProgressFunc progress, MigrateOutDone done,
                               gpointer user_data, GError **error);
/* Cancels (an operator's `migrate --cancel`): FALSE when the switchover already began. */
gboolean migrate_out_cancel (MigrateOut *job, const char *why, GError **error);
/* The VM's state changed (daemon observer): a source QEMU that died ends the job. */
void migrate_out_vm_state_changed (MigrateOut *job, VmState old_state);
const char *migrate_out_get_destination (MigrateOut *job);
