/* vm-storage-check.h: does a disk's storage answer?  Checked in a thread (a hung NFS
 * server blocks open() and read() for as long as it is hung): a file image is opened and
 * its first 4 KiB read (with free space asked for too after an ENOSPC); an NBD server is
 * connected and asked for the export (the fixed-newstyle handshake, NBD_OPT_INFO), then
 * left with NBD_OPT_ABORT.  Used by vm-storage.c only. */
#pragma once

#include <glib.h>

#include "launcher/vm-config.h"

/* Called once, in the caller's main context, when the thread is done: error is NULL when
 * every disk answered, else (owned) "disk NAME: what failed".  There is no way to stop a
 * thread blocked in the kernel: a caller that wants a limit keeps its own timer and
 * starts no second check while one runs. */
typedef void (*VmStorageCheckDone) (char *error, gpointer data);

/* Checks each disk of disks (VmDisk, copied: the config may change meanwhile).
 * need_space: the last error was ENOSPC, so a file must also have free space.
 * timeout_ms bounds each network step of an NBD check. */
void vm_storage_check_async (GPtrArray *disks, gboolean need_space, guint timeout_ms,
                             VmStorageCheckDone done, gpointer data);
