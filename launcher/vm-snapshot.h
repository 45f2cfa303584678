/* vm-snapshot.h: a VM's external snapshots, as recorded in state-dir/snapshots/NAME.json.
 *
 * Taking snapshot TAG of a running guest puts a new qcow2 layer, IMAGE.TAG.qcow2
 * (images_snapshot_file_name() of the disk's image), on top of every disk: from then on
 * the guest writes there, and the layers under it hold the disk as it was at TAG.  So the
 * file named after a tag holds what changed *since* that tag.
 *
 * The VM file is never rewritten: its `image` stays the bottom of the chain (over its
 * base, if any), and this record says which layers sit on it, oldest first; the last is
 * what the guest writes.  vm-disks.c applies the record to the config before each start
 * (VmDisk.overlays), and the argv opens image and the lower layers read-only.
 *
 * Disks with read-only = yes (never written) or shared = yes (another QEMU writes them
 * too) get no layers.  A snapshot lists the disks it covers; a disk's chain is the layers
 * of the snapshots that list it, in order. */
#pragma once

#include <gio/gio.h>
#include <sys/types.h>

#include "launcher/host-config.h"
#include "launcher/vm-config.h"
#include "launcher/vm.h"

#define VM_SNAPSHOT_MAX 32     /* a longer chain slows every read that misses the top */

typedef struct
{
  char *disk;                   /* [disk NAME] */
  char *overlay;                /* the layer that took the writes after the snapshot */
  char *backing;                /* the file under it: the disk's image or an earlier layer */
  int backing_format;           /* VmImageFormat */
} VmSnapshotDisk;

typedef struct
{
  char *tag;
  gint64 time;                  /* when it was taken, seconds since the epoch */
  GPtrArray *disks;             /* VmSnapshotDisk, in the VM file's order */
} VmSnapshot;

typedef struct
{
  char *path;                   /* state-dir/snapshots/NAME.json */
  GPtrArray *snapshots;         /* VmSnapshot, oldest first */
} VmSnapshots;

void vm_snapshot_disk_free (VmSnapshotDisk *disk);
void vm_snapshot_free (VmSnapshot *snapshot);
void vm_snapshots_free (VmSnapshots *snapshots);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmSnapshot, vm_snapshot_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmSnapshots, vm_snapshots_free)

/* TRUE when a disk gets snapshot layers: written by this guest alone. */
gboolean vm_disk_takes_snapshots (const VmDisk *disk);

/* Reads the record of vm_name; no file means no snapshots.  Fails with
 * G_IO_ERROR_INVALID_DATA when the file is unreadable or not what we write
 * ("/var/lib/vmherd/snapshots/web.json: snapshot 2 has no \"tag\""). */
VmSnapshots *vm_snapshots_load (const HostConfig *host, const char *vm_name, GError **error);

/* Writes the record whole (temporary file + rename: a crash leaves the old or the new);
 * with no snapshots left, removes it. */
gboolean vm_snapshots_save (const VmSnapshots *snapshots, GError **error);

/* The snapshot called tag (borrowed) and its index, or NULL. */
VmSnapshot *vm_snapshots_find (const VmSnapshots *snapshots, const char *tag, guint *out_index);
/* The entry of disk in snapshot (borrowed), or NULL. */
VmSnapshotDisk *vm_snapshot_find_disk (const VmSnapshot *snapshot, const char *disk);
/* The layers of disk, oldest first: VmSnapshotDisk (borrowed) of each snapshot listing it. */
GPtrArray *vm_snapshots_chain (const VmSnapshots *snapshots, const char *disk);
/* "t1, t2" (owned), or "none". */
char *vm_snapshots_tags (const VmSnapshots *snapshots, guint from, guint to);

/* Sets each disk's overlays (VmDisk.overlays) of config from the record, after checking
 * that each chain is linked: the first layer sits on the disk's image, each next one on
 * the one before.  Fails with G_IO_ERROR_INVALID_DATA naming the disk, the layer and what
 * to do; config is then untouched.  Disks the record has and config lacks are ignored. */
gboolean vm_snapshots_apply (const VmSnapshots *snapshots, VmConfig *config, GError **error);

/* The same for the config a VM runs on (what `status` shows), after a snapshot was taken
 * live.  FALSE when a chain is not linked (nothing changed then). */
gboolean vm_snapshots_apply_to_vm (const VmSnapshots *snapshots, Vm *vm, GError **error);

/* vm-snapshot-offline.c: the operations on the files of a stopped guest (no QEMU may have
 * them open; their locks make qemu-img fail with IMAGES_ERROR_LOCKED).  snapshots is
 * changed as the files are, and rewritten after each step, in an order that leaves a
 * record matching the files if the daemon dies half-way; it must outlive the operation.
 * tag must be one of its snapshots.  The callback fires once, from the main loop. */

/* Takes snapshot tag out, keeping the data: each disk's layer is merged into the file
 * under it (images_snapshot_merge_async()), the layer above made to sit on that file, the
 * merged layer removed.  Errors name the disk ("disk 'data': ..."), and say how many disks
 * were done when some were ("1 of its disks merged already (delete it again to finish)"). */
void vm_snapshots_delete_async (VmSnapshots *snapshots, const char *qemu_img, const char *tag,
                                GCancellable *cancellable, GAsyncReadyCallback callback,
                                gpointer user_data);
gboolean vm_snapshots_delete_finish (GAsyncResult *result, GError **error);

/* Makes the disks what they were at tag: the snapshots after it are dropped (record, then
 * files), and each disk's tag layer is replaced by an empty one (owned by owner:group) on
 * the same file.  tag stays.  Returns the dropped tags (owned, NULL-terminated, maybe
 * empty), or NULL with an error naming the disk. */
void vm_snapshots_revert_async (VmSnapshots *snapshots, const char *qemu_img, const char *tag,
                                uid_t owner, gid_t group, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data);
char **vm_snapshots_revert_finish (GAsyncResult *result, GError **error);

/* The snapshot operation running on vm_name ("create", "delete", "revert"), or NULL.  One
 * at a time per VM; while one runs, the VM does not start (vm-disks.c refuses).  Kept in
 * the daemon's memory only: a daemon restart ends every operation with it. */
const char *vm_snapshot_busy (const char *vm_name);
/* Marks vm_name as busy with action (a static string), or not busy (NULL). */
void vm_snapshot_set_busy (const char *vm_name, const char *action);
