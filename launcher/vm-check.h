/* vm-check.h: what `vmherd check` verifies beyond one file's syntax: the host (images,
 * bridges, machine types) and the set of files together (MACs, writable images). */
#pragma once

#include <glib.h>

#include "launcher/host-config.h"
#include "launcher/qemu-probe.h"
#include "launcher/vm-config.h"

/* Sorted names of the VM files in dir ("web.conf"); other files are ignored.  Fails when
 * dir cannot be read. */
GPtrArray *vm_dir_list (const char *dir, GError **error);

/* Checks one parsed VM against this host; problems go to errors.  probe may be NULL
 * (QEMU not installed): machine types are then not checked. */
void vm_check_host (const VmConfig *vm, const HostConfig *host, const QemuProbe *probe,
                    ConfigErrors *errors);

/* Checks the VMs against each other (duplicate MACs, images written by two guests, a base
 * that another guest writes).  Errors name both files. */
void vm_check_set (GPtrArray *vms, ConfigErrors *errors);

/* Loads and checks every VM file of host->vm_dir.  Returns the VMs whose files have no
 * problems (VmConfig, owned); every problem goes to errors.  out_files: files seen. */
GPtrArray *vm_check_dir (const HostConfig *host, const QemuProbe *probe, ConfigErrors *errors,
                         guint *out_files);

/* Runs the installed QEMU's probe; prints why not (as an error when required, else as a
 * warning: machine types go unchecked) and returns NULL when it cannot. */
QemuProbe *vm_check_probe (const HostConfig *host, gboolean required);

/* `vmherd check` and `vmherdd --check`: every problem to stderr as file:line, a summary
 * line to stdout unless quiet; returns the exit code, 0 or 1. */
int vm_check_report (const char *config_path, gboolean quiet);
