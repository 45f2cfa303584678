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
