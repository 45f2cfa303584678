/* qemu-argv.h: a VM config (+ the host's) to the exact QEMU argv.  Pure: no I/O. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "launcher/host-config.h"
#include "launcher/vm-config.h"

/* What the argv depends on besides the configs; probed once per host (qemu-probe.h). */
typedef struct
{
  const char *default_machine;  /* "pc-q35-7.2": the installed QEMU's q35 */
  gboolean vhost_net;           /* /dev/vhost-net exists */
} QemuHostCaps;

/* File descriptors the spawner must place at fd numbers before exec. */
typedef enum { QEMU_FD_QMP, QEMU_FD_SERIAL, QEMU_FD_AGENT, QEMU_FD_TAP, QEMU_FD_VHOST } QemuFdKind;

const char *qemu_fd_kind_to_string (QemuFdKind kind);

/* The id of the guest agent's virtserialport (guest-agent = yes), in VSERPORT_CHANGE. */
#define QEMU_AGENT_PORT_ID "agent0"

typedef struct
{
  QemuFdKind kind;
  guint nic;                    /* QEMU_FD_TAP/VHOST: index into config->nics */
  guint queue;                  /* QEMU_FD_TAP/VHOST: queue number */
  int fd;                       /* the number QEMU is told about */
} QemuFd;

typedef struct
{
  GPtrArray *argv;              /* char *, NULL-terminated, argv[0] is the QEMU binary */
  GArray *fds;                  /* QemuFd, in increasing fd order from 3 */
} QemuCmdline;

void qemu_cmdline_free (QemuCmdline *cmdline);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QemuCmdline, qemu_cmdline_free)

/* Builds the argv.  Never fails: everything it needs was validated by vm_config_load(). */
QemuCmdline *qemu_argv_build (const VmConfig *vm, const HostConfig *host,
                              const QemuHostCaps *caps);

/* The format node of snapshot layer `layer` of disk (0: the image itself): "d-root",
 * "s1d-root", ...  The device's drive is the node of the top layer. */
char *qemu_argv_disk_node (const VmDisk *disk, guint layer);

/* The file and format nodes of snapshot layer `layer` (>= 1) of disk, a qcow2 file, as
 * blockdev-add arguments for a snapshot taken live: the options the argv gives that layer
 * at the next start, with "backing": null (blockdev-snapshot attaches the layer below). */
void qemu_argv_disk_layer_nodes (const VmDisk *disk, guint layer, const char *filename,
                                 JsonNode **out_file_node, JsonNode **out_format_node);

/* Number of queues (tap fds) a NIC of vm gets: one per vCPU, at most 8. */
guint qemu_argv_nic_queues (const VmConfig *vm);

/* value with each ',' doubled, as QEMU's option parser wants inside "key=value,...". */
char *qemu_opt_escape (const char *value);

/* The argv shell-quoted, an option and its value per line, joined with " \\\n  ". */
char *qemu_argv_to_shell (char **argv);

/* Where a VM's serial log goes when [serial] log is not set. */
char *qemu_argv_serial_log (const VmConfig *vm, const HostConfig *host);
