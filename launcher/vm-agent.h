/* vm-agent.h: the guest agent check of [health] guest-agent = yes: qemu-ga pinged over the
 * VM's virtio-serial port while the VM runs (vm-agent.c).  Used by vm.c, vm-describe.c. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "launcher/vm.h"
#include "qmp/qmp-message.h"

typedef struct _VmAgent VmAgent;

/* The VM's state changed from old_state: arms the check when it starts running (first
 * ping at once; failures count after agent-grace from the start of the run, or after the
 * first answer), disarms it otherwise. */
void vm_agent_state_changed (Vm *vm, VmState old_state);
/* Frees vm->agent (NULL-safe), closing its connection. */
void vm_agent_free (Vm *vm);
/* A QMP event of the VM's QEMU: VSERPORT_CHANGE of the agent port says whether a program
 * in the guest holds it open, which a failed ping's reason then tells. */
void vm_agent_qmp_event (Vm *vm, const QmpMessage *event);
/* TRUE while the check runs and has failed agent-failures times in a row. */
gboolean vm_agent_failing (Vm *vm);
/* The `status` member "guest-agent": settings and last result; NULL with guest-agent = no. */
JsonObject *vm_agent_describe (Vm *vm);
