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

/* Parses the output of `-machine help`; pure, for tests. */
QemuProbe *qemu_probe_parse (const char *machine_help, gboolean vhost_net, GError **error);

gboolean qemu_probe_has_machine (const QemuProbe *probe, const char *machine);
