/* vm-guest-health.h: what the guest's own health devices say (the i6300esb watchdog,
 * pvpanic) and the run states QEMU reports without being asked, acted on per the VM's
 * [health] policy.  Used by vm.c, vm-qemu.c and vm-describe.c only. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "qmp/qmp-message.h"

#define VM_PANIC_TAIL_LINES 200              /* of the serial log, kept with a panic */
#define VM_PANIC_TAIL_READ_MAX (256 * 1024)  /* bytes of the serial log read to find them */

typedef struct
{
  guint watchdog_fired;         /* WATCHDOG events since the daemon started (rate-limited) */
  gint64 watchdog_last;         /* real time, us, of the latest one; 0: never */
  char *watchdog_last_action;   /* QEMU's action of the latest one */
  gint64 panic_time;            /* real time, us, of the latest panic; 0: never */
  char *panic_action;           /* what the daemon did: "restart" or "pause" */
  char *panic_tail;             /* the serial log's last lines at that panic */
  char *pause_reason;           /* why QEMU's next STOP happens (watchdog, panic, I/O error) */
  char *failure;                /* why VM_EVENT_GUEST_FAILED ends the run */
  char *reported_status;        /* the latest unrequested run state logged */
} VmGuestHealth;

typedef struct _Vm Vm;

void vm_guest_health_clear (VmGuestHealth *health);
/* A QMP event of the VM's QEMU (before the state machine sees STOP/RESUME/SHUTDOWN). */
void vm_guest_health_qmp_event (Vm *vm, const QmpMessage *event);
/* QEMU's query-status answer `status`, before it replaces vm->run_status. */
void vm_guest_health_run_status (Vm *vm, const char *status);
/* Why the vCPUs stopped, for the paused state (owned): "vCPUs stopped (QMP STOP)" unless
 * the watchdog, a panic or an I/O error said more.  Consumes that reason. */
char *vm_guest_health_take_pause_reason (Vm *vm);
/* `status` members "watchdog" and "last-panic". */
void vm_guest_health_describe (Vm *vm, JsonObject *o);
