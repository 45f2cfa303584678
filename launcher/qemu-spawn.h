/* qemu-spawn.h: start one QEMU from a built argv, the way the daemon always does it.
 *
 * The daemon opens everything QEMU needs (QMP and serial listening sockets, taps, the log)
 * and hands over the fds at the numbers in the QemuCmdline's plan.  QEMU runs in its own
 * session, as the host's qemu-user when we are root (uid/gid dropped before exec, never
 * -runas), so it outlives the daemon and needs no privilege. */
#pragma once

#include <gio/gio.h>
#include <sys/types.h>

#include "launcher/host-config.h"
#include "launcher/qemu-argv.h"
#include "launcher/vm-config.h"

typedef struct
{
  char *dir;                    /* run-dir/vm/NAME */
  char *qmp_path;               /* DIR/qmp.sock: connect here for QMP */
  char *serial_path;            /* DIR/serial.sock: the serial console */
  char *agent_path;             /* DIR/agent.sock, or NULL without guest-agent */
  char *log_path;               /* log-dir/NAME.log: QEMU's stderr and our lifecycle lines */
  GSubprocess *process;
  pid_t pid;
} QemuInstance;

void qemu_instance_free (QemuInstance *instance);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QemuInstance, qemu_instance_free)

/* The folder of a VM's runtime files. */
char *qemu_instance_dir (const HostConfig *host, const char *vm_name);

/* Prepares the runtime folder and sockets, writes DIR/argv, spawns QEMU and writes DIR/pid.
 * nic_fds: for each QEMU_FD_TAP / QEMU_FD_VHOST entry of the plan, in plan order, the fd
 * to hand over (may be NULL when the plan has none).  The caller keeps its fds. */
QemuInstance *qemu_spawn (const VmConfig *vm, const HostConfig *host, const QemuCmdline *cmdline,
                          const int *nic_fds, GError **error);

/* Appends a timestamped lifecycle line to the VM's log. */
void qemu_log_line (const char *log_path, const char *format, ...) G_GNUC_PRINTF (2, 3);

/* The uid and gid QEMU runs as, for files QEMU must own (overlays); (uid_t) -1 and
 * (gid_t) -1 when we are not root and files keep our own owner. */
gboolean qemu_spawn_owner (const HostConfig *host, uid_t *out_uid, gid_t *out_gid, GError **error);
