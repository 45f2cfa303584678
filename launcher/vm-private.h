/* vm-private.h: the Vm struct, shared by vm.c (state machine), vm-qemu.c (process and QMP
 * plumbing) and vm-describe.c (what list and status show).  Nothing else includes it. */
#pragma once

#include <sys/types.h>

#include "launcher/qemu-spawn.h"
#include "launcher/vm-agent.h"
#include "launcher/vm-guest-health.h"
#include "launcher/vm-storage.h"
#include "launcher/vm.h"
#include "net/net.h"

#define VM_HISTORY_MAX 32
#define VM_BACKOFF_MIN_MS 1000
#define VM_BACKOFF_MAX_MS (5 * 60 * 1000)
#define VM_BACKOFF_RESET_MS (10 * 60 * 1000)   /* this long running resets the backoff */
#define VM_QMP_CONNECT_TIMEOUT_MS 10000
#define VM_QMP_COMMAND_TIMEOUT_MS 10000
#define VM_STDERR_LINES 20             /* of QEMU's stderr in `status` of a failed VM */
#define VM_STDERR_READ_MAX (64 * 1024) /* bytes of the log read to find them */

typedef struct
{
  gint64 time;                  /* real time, us */
  VmState state;
  char *reason;
} VmHistoryEntry;

struct _Vm
{
  VmConfig *config;             /* the last good config: what runs */
  VmConfig *pending;            /* a newer good config, for the next start */
  char *pending_summary;
  char *config_error;           /* the file's last rejection, or NULL */
  const HostConfig *host;
  const QemuHostCaps *caps;
  NetLink *netlink;             /* the daemon's, or NULL without CAP_NET_ADMIN */
  const VmObserver *observer;
  gpointer observer_data;

  VmState state;
  GQueue history;               /* VmHistoryEntry, newest last */

  /* The QEMU process: spawned (inst->process) or adopted (pidfd). */
  QemuInstance *inst;
  pid_t pid;
  int pidfd;
  guint pidfd_watch;
  gboolean adopting;
  guint reconnect_timer;        /* adopting: QMP tried again after a silence */
  char *exit_status;            /* "exit status 1", "killed by signal 9" */
  gint64 log_offset;            /* size of the VM's log when this run's QEMU started; -1 adopted */
  GCancellable *cancel;         /* cancels everything of the current run */

  QmpClient *qmp;
  char *shutdown_reason;        /* of QEMU's SHUTDOWN event this run, or NULL */

  gboolean admin_stop;          /* the current stop was asked for: never restart */
  gboolean stop_force;          /* skip the guest's own shutdown: start at `quit` */
  gboolean removed;             /* the config file is gone */
  char *failing;                /* why the current stop is a failure (wedged QEMU) */
  VmStopStep stop_step;
  guint stop_timer;
  gint64 stop_timeout_ms;       /* `stop --timeout` for the powerdown step; 0: config's */

  guint health_timer;
  guint health_misses;
  gint64 health_last_ok;        /* real time, us */
  gint64 health_last_check;     /* real time, us, of the latest answer or miss; 0: none */
  char *health_last_result;     /* "ok" or why the latest query-status missed */
  guint64 health_answers;       /* query-status answered, since the daemon started */
  char *run_status;             /* QEMU's query-status answer */
  VmGuestHealth guest;          /* watchdog, panics, unrequested run states */
  VmStorage storage;            /* paused for a disk error: checks, resume (vm-storage.c) */

  GPtrArray *probes;            /* VmProbeRun of the current or last run (vm-probe.c) */
  char *probe_failure;          /* why a probe sent VM_EVENT_PROBE_FAILED */
  VmAgent *agent;               /* guest-agent check of the current or last run (vm-agent.c) */

  guint backoff_timer;
  gint64 backoff_ms;
  GQueue failures;              /* monotonic us of each failure */
  guint restarts;
  char *last_failure;
  gint64 last_start;            /* monotonic us of the latest start, for the backoff */
  gint64 run_started;           /* monotonic us when RUNNING began, or 0 */
  gint64 run_started_real;

  /* Live migration (vm-migrate.c) */
  gboolean incoming;            /* QEMU started with -incoming defer, not yet running here */
  char *migration_peer;         /* the other host while MIGRATING */
  char *migrated_to;            /* the guest moved there: this QEMU's exit ends it here */
  VmIncomingReady incoming_ready;
  gpointer incoming_data;
};

void vm_set_state (Vm *vm, VmState state, const char *format, ...) G_GNUC_PRINTF (3, 4);

/* vm-disks.c: called with NULL, or an error (owned) that says which disk and why. */
typedef void (*VmDisksDone) (Vm *vm, GError *error);
gboolean vm_disks_need_preparing (Vm *vm);
void vm_disks_prepare_async (Vm *vm, VmDisksDone done);

/* vm-net.c: the taps of every NIC, fds in the argv plan's order (owned; close them once
 * QEMU has its copies), or NULL with an error naming the NIC. */
GArray *vm_net_open (Vm *vm, GError **error);
void vm_net_close_fds (GArray *fds);
JsonArray *vm_net_describe (Vm *vm);
/* Asks QEMU to announce the guest's MACs (after a start, a migration, a failover). */
void vm_net_announce (Vm *vm);

/* vm-describe.c: when QEMU's stderr since its start says an image's lock is held by
 * another process, the reason naming the image ("image /x is in use by another process,
 * probably a running QEMU (stop the VM first)"); else NULL. */
char *vm_qemu_lock_failure (Vm *vm);

/* vm-qemu.c */
gboolean vm_qemu_spawn (Vm *vm, GError **error);
void vm_qemu_connect (Vm *vm);
void vm_qemu_signal (Vm *vm, int signo);
/* TRUE when /proc/PID/stat says the QEMU is stopped by a signal (state T). */
gboolean vm_qemu_is_stopped (Vm *vm);
void vm_qemu_command (Vm *vm, const char *command);
void vm_qemu_release (Vm *vm);    /* drop QMP, watches, timers of the run */
void vm_health_start (Vm *vm);

/* vm.c, for vm-migrate.c */
void vm_enter_stop_step (Vm *vm, VmStopStep step);

/* vm-migrate.c: QMP of an incoming QEMU is up (or failed: error). */
void vm_incoming_qmp_up (Vm *vm, const GError *error);

/* vm-probe.c: the [health] probes, run while the VM is running. */
void vm_probes_state_changed (Vm *vm, VmState old_state);
void vm_probes_free (Vm *vm);
gboolean vm_probes_failing (Vm *vm);
JsonArray *vm_probes_describe (Vm *vm);
