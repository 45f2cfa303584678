/* qemu-probe.h: what the installed QEMU offers, asked once (`qemu -machine help`). */
#pragma once

#include <glib.h>

#include "launcher/qemu-argv.h"

typedef struct
{
  QemuHostCaps caps;            /* caps.default_machine points into this struct */
  char *default_machine;
  GStrv machines;               /* every machine type the binary knows */
} QemuProbe;

void qemu_probe_free (QemuProbe *probe);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QemuProbe, qemu_probe_free)

/* Runs `qemu -machine help` (bounded: a few tens of ms) and checks /dev/vhost-net.
 * Fails when the binary cannot run or offers no versioned q35. */
QemuProbe *qemu_probe_run (const char *qemu, GError **error);

/* qemu_probe_run(), with the output of `-machine help` kept in cache_path: used as long as
 * the binary is the same file (device, inode, size, modification and change times), asked
 * again when it differs (an upgrade) or the cache is unreadable.  A cache that cannot be
 * written is not an error.  vmherdd keeps it in state-dir: its start then skips a QEMU run
 * of 20 to 80 ms (bench/FINDINGS.md, 2.). */
QemuProbe *qemu_probe_run_cached (const char *qemu, const char *cache_path, GError **error);

/* Parses the output of `-machine help`; pure, for tests. */
QemuProbe *qemu_probe_parse (const char *machine_help, gboolean vhost_net, GError **error);

gboolean qemu_probe_has_machine (const QemuProbe *probe, const char *machine);
