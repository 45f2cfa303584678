/* vm.h: one guest's state machine.
 *
 * Every transition goes through vm_handle_event().  The VM owns its QEMU process (or the
 * adopted pid), its QMP connection and its timers; it tells the daemon what happened
 * through a VmObserver. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

#include "launcher/host-config.h"
#include "launcher/qemu-argv.h"
#include "launcher/vm-config.h"
#include "qmp/qmp-client.h"

typedef enum
{
  VM_STATE_STOPPED,
  VM_STATE_STARTING,
  VM_STATE_RUNNING,
  VM_STATE_PAUSED,
  VM_STATE_STOPPING,
  VM_STATE_BACKOFF,
  VM_STATE_FAILED,
  VM_STATE_MIGRATING,
} VmState;

typedef enum
{
  VM_EVENT_START,               /* an operator or autostart asks for the guest */
  VM_EVENT_QMP_READY,           /* QMP negotiated and `cont` answered */
  VM_EVENT_START_FAILED,        /* spawn or QMP setup failed */
  VM_EVENT_EXITED,              /* the QEMU process is gone */
  VM_EVENT_SHUTDOWN,            /* QEMU reported SHUTDOWN (guest poweroff, panic, quit) */
  VM_EVENT_HEALTH_TIMEOUT,      /* query-status missed too often: QEMU is wedged */
  VM_EVENT_STOP,                /* an operator asks it to stop */
  VM_EVENT_STOP_STEP_TIMEOUT,   /* the current step of the stop ladder took too long */
  VM_EVENT_BACKOFF_DONE,        /* the restart delay is over */
  VM_EVENT_PAUSED,              /* QEMU reported STOP (vCPUs stopped) */
  VM_EVENT_RESUMED,             /* QEMU reported RESUME */
  VM_EVENT_PROBE_FAILED,        /* a probe with action=restart failed too often */
  VM_EVENT_GUEST_FAILED,        /* panic, watchdog poweroff, internal-error: vm->guest.failure */
} VmEvent;

typedef enum
{
  VM_STOP_STEP_NONE,
  VM_STOP_STEP_POWERDOWN,       /* system_powerdown, wait for the guest */
  VM_STOP_STEP_QUIT,            /* QMP quit */
  VM_STOP_STEP_TERM,            /* SIGTERM */
  VM_STOP_STEP_KILL,            /* SIGKILL */
} VmStopStep;

const char *vm_state_to_string (VmState state);
const char *vm_event_to_string (VmEvent event);
const char *vm_stop_step_to_string (VmStopStep step);

typedef struct _Vm Vm;

typedef struct
{
  /* The state changed; reason is a phrase for logs and `status`. */
  void (*state_changed) (Vm *vm, VmState old_state, const char *reason, gpointer user_data);
  /* A QMP event of the guest, forwarded to `vmherd events` listeners. */
  void (*qmp_event) (Vm *vm, const QmpMessage *event, gpointer user_data);
  /* The guest's health devices spoke (event "WATCHDOG", "PANIC"; data has a "reason"), or
   * a [health] probe became ok or failing ("PROBE": "probe", "state", "reason"). */
  void (*guest_event) (Vm *vm, const char *event, JsonObject *data, gpointer user_data);
} VmObserver;

/* A VM defined by config (taken).  host, caps and observer must outlive it. */
Vm *vm_new (VmConfig *config, const HostConfig *host, const QemuHostCaps *caps,
            const VmObserver *observer, gpointer observer_data);
void vm_free (Vm *vm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Vm, vm_free)

void vm_handle_event (Vm *vm, VmEvent event);

/* Re-adopts a QEMU left running by an earlier vmherdd: checks run-dir/vm/NAME/pid against
 * /proc/PID/cmdline and the saved argv, reconnects QMP.  FALSE when there is none alive
 * (stale runtime files are removed). */
gboolean vm_adopt (Vm *vm);

/* Starts, stops, and so on, for operators; FALSE with a message when the state forbids it
 * ("vm 'web' is already running"). */
gboolean vm_request_start (Vm *vm, GError **error);
gboolean vm_request_stop (Vm *vm, gboolean force, gint64 timeout_ms, GError **error);
/* QMP commands passed through for reset, pause and resume. */
gboolean vm_request_qmp (Vm *vm, const char *command, GError **error);

/* A newer valid config (taken): used at the next start, or at once when no QEMU runs on
 * the old one (then TRUE); `summary` says what changed. */
gboolean vm_set_pending_config (Vm *vm, VmConfig *config, const char *summary);
/* The file says what runs again: forget a pending config. */
void vm_drop_pending_config (Vm *vm);
/* Why the VM's file was last rejected ("FILE:LINE: msg"), shown by `status`; NULL once a
 * good file was read. */
void vm_set_config_error (Vm *vm, const char *error);
/* The config file is gone: stop gracefully; vm_is_removable() once stopped. */
void vm_mark_removed (Vm *vm);
gboolean vm_is_removable (Vm *vm);

const char *vm_get_name (Vm *vm);
VmState vm_get_state (Vm *vm);
const VmConfig *vm_get_config (Vm *vm);
QmpClient *vm_get_qmp (Vm *vm);   /* NULL unless connected */

/* The daemon's netlink handle (borrowed), for the VM's taps; NULL: NICs cannot start. */
typedef struct _NetLink NetLink;   /* net/netlink.h */
void vm_set_netlink (Vm *vm, NetLink *netlink);
/* Puts the running VM's taps back on their bridges (after a bridge was recreated). */
void vm_net_reattach (Vm *vm);

/* A line in the VM's log (log-dir/NAME.log) and the daemon's log: "vm 'NAME': ...". */
void vm_log (Vm *vm, const char *format, ...) G_GNUC_PRINTF (2, 3);

/* Live migration (vm-migrate.c); the daemon's migration jobs drive these.
 * Source: vm_migration_begin() (RUNNING or PAUSED -> MIGRATING), then either
 * vm_migration_rolled_back() (back to what QEMU says) or vm_migration_moved() (the guest
 * runs on `to` now: quit QEMU, STOPPED "migrated to HOST").
 * Destination: vm_start_incoming() spawns QEMU paused with -incoming defer (MIGRATING);
 * ready is called once its QMP answers (error NULL) or it could not start; then
 * vm_incoming_done() (RUNNING) or vm_incoming_abort() (QEMU killed, STOPPED). */
typedef void (*VmIncomingReady) (Vm *vm, const GError *error, gpointer user_data);
gboolean vm_migration_begin (Vm *vm, const char *to, gboolean *out_was_running, GError **error);
void vm_migration_rolled_back (Vm *vm, gboolean running, const char *reason);
void vm_migration_moved (Vm *vm, const char *to);
void vm_start_incoming (Vm *vm, const char *from, VmIncomingReady ready, gpointer user_data);
void vm_incoming_done (Vm *vm);
void vm_incoming_abort (Vm *vm, const char *reason);
gboolean vm_is_incoming (Vm *vm);
/* Where the guest went (vm_migration_moved()), or NULL. */
const char *vm_get_migrated_to (Vm *vm);
pid_t vm_get_pid (Vm *vm);

/* Everything known, for `list` (brief) and `status` (full). */
JsonNode *vm_describe (Vm *vm, gboolean full);
