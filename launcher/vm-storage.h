/* vm-storage.h: a guest paused by a disk error (werror/rerror = stop: BLOCK_IO_ERROR, run
 * state io-error) is resumed once its storage answers again, and reported stuck when it
 * does not for [health] storage-stuck-after.  Such a guest is never restarted: that would
 * throw away its state.  Used by vm.c, vm-guest-health.c and vm-describe.c. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct _VmStorageCall VmStorageCall;

typedef struct
{
  gboolean outage;              /* paused (or pausing) for a disk error, not yet over */
  gint64 since;                 /* real us of the outage's first error */
  char *disk;                   /* the failing disk's name; NULL: not known (check all) */
  char *error;                  /* "write: Input/output error" */
  gboolean nospace;             /* the last error was ENOSPC */
  gboolean stuck;               /* reported stuck this outage */
  gboolean qmp_silent_logged;   /* said once that a silent QEMU is not killed */
  guint resumes;                /* `cont` sent this outage */
  gint64 next_cont;             /* monotonic us: no `cont` before (backoff) */
  guint timer;
  VmStorageCall *call;          /* the check in flight, or NULL */
  gint64 call_started;          /* monotonic us */
  gboolean call_late;           /* counted as failed for taking too long */
  gint64 last_check;            /* real us of the latest check's end; 0: never */
  char *last_result;            /* "ok" or what failed */
  guint outages;                /* since vmherdd started */
  gint64 last_outage_ms;        /* how long the latest finished outage paused the guest */
} VmStorage;

typedef struct _Vm Vm;

void vm_storage_clear (VmStorage *storage);
/* QEMU stopped the guest for a disk error (node: QEMU's node-name, nullable; operation
 * "read"/"write"; reason QEMU's strerror text), or query-status said io-error (then all
 * NULL): begins checking the storage, unless already doing so. */
void vm_storage_io_error (Vm *vm, const char *node, const char *operation, const char *reason,
                          gboolean nospace);
/* vm_set_state() tells: a guest running again ends the outage (after one quiet interval),
 * any state but running or paused forgets it. */
void vm_storage_state_changed (Vm *vm);
/* TRUE while the guest is paused for a disk error: never restart it. */
gboolean vm_storage_outage (Vm *vm);
/* `status` member "storage". */
void vm_storage_describe (Vm *vm, JsonObject *o);
