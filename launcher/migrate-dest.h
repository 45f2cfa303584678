/* migrate-dest.h: the destination side of a live migration.  A peer asks
 * "migrate-prepare" with the VM's file; this host checks it exactly as `check` would, plus
 * memory, bridges and images here, starts the same QEMU with -incoming defer on a one-time
 * TLS port, and resumes the guest when the stream completes.  The file moves into vm-dir
 * only then; until then it waits as vm-dir/.NAME.conf.incoming, and anything that goes
 * wrong (the source's link closes, "migrate-abort", QEMU dies) removes every trace. */
#pragma once

#include "launcher/daemon-private.h"
#include "launcher/peer-link.h"

typedef struct _MigrateIn MigrateIn;

void migrate_in_free (MigrateIn *job);

void migrate_in_prepare (Daemon *daemon, PeerRequest *request, JsonObject *args);
void migrate_in_finish (Daemon *daemon, PeerRequest *request, JsonObject *args);
void migrate_in_abort (Daemon *daemon, PeerRequest *request, JsonObject *args);
/* The VM's state changed (daemon observer). */
void migrate_in_vm_state_changed (MigrateIn *job, VmState old_state);
/* At daemon start: incoming files and QEMUs a killed vmherdd left behind. */
void migrate_in_cleanup_leftovers (Daemon *daemon);
