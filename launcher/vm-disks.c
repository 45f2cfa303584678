/* vm-disks.c: a VM's disks made ready before QEMU starts.  A missing image with a base
 * becomes a qcow2 overlay on it (owned by the QEMU user); an existing one must still sit on
 * the base the VM file names, since the argv attaches that base explicitly (a flattened
 * image under a stale base = would show the base through its holes).  The snapshot layers
 * recorded for the VM (vm-snapshot.h) go into the config, and each chain on disk must be
 * the one recorded, for the same reason.  qemu-img runs asynchronously, bounded by a
 * timeout: the main loop never waits on storage. */
#include "launcher/vm-private.h"

#include <gio/gio.h>
#include <string.h>

#include "images/image-info.h"
#include "images/images.h"
#include "images/overlay.h"
#include "launcher/vm-snapshot.h"

#define VM_DISK_TIMEOUT_MS 60000

typedef struct
{
  Vm *vm;
  guint next;                   /* index of the disk to look at */
  VmDisksDone done;
} DiskPrep;

static void prep_next (DiskPrep *prep);

static void
prep_finish (DiskPrep *prep, GError *error)
{
  Vm *vm = prep->vm;
  VmDisksDone done = prep->done;

  g_free (prep);
  done (vm, error);
}

static gboolean
prep_failed (DiskPrep *prep, GError *error, const VmDisk *disk)
{
  if (error == NULL)
    return FALSE;
  if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_prefix_error (&error, "disk '%s': ", disk->section.name);
  prep_finish (prep, error);
  return TRUE;
}

static void
on_overlay (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  DiskPrep *prep = data;
  GError *error = NULL;
  gboolean ok = images_overlay_create_finish (result, &error);
  const VmDisk *disk;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return prep_finish (prep, error);   /* the VM may be gone: touch nothing of it */
  disk = prep->vm->config->disks->pdata[prep->next];
  if (!ok && prep_failed (prep, error, disk))
    return;
  vm_log (prep->vm, "disk '%s': created %s as an overlay on %s", disk->section.name, disk->image,
          disk->base);
  prep->next++;
  prep_next (prep);
}

/* The files a disk's chain must show, top first: its snapshot layers, newest first, the
 * image, then the base (when declared). */
static GPtrArray *
expected_chain (const VmDisk *disk)
{
  GPtrArray *files = g_ptr_array_new ();

  for (guint i = disk->overlays ? disk->overlays->len : 0; i > 0; i--)
    g_ptr_array_add (files, disk->overlays->pdata[i - 1]);
  g_ptr_array_add (files, disk->image);
  if (disk->base != NULL)
    g_ptr_array_add (files, disk->base);
  return files;
}

/* TRUE when each file of chain sits on the next one of expected; else error says where
 * they part. */
static gboolean
check_chain (const VmDisk *disk, const ImagesChain *chain, GError **error)
{
  g_autoptr(GPtrArray) expected = expected_chain (disk);

  for (guint i = 0; i + 1 < expected->len; i++)
    {
      const ImagesInfo *info = i < chain->images->len ? chain->images->pdata[i] : NULL;
      const char *file = expected->pdata[i], *under = expected->pdata[i + 1];
      const char *real = info != NULL ? info->full_backing_filename : NULL;

      if (real != NULL && strcmp (real, under) == 0)
        continue;
      if (file == disk->image)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                     "image %s %s%s, but the VM file names base = %s (%s)", disk->image,
                     real ? "sits on " : "has no backing file", real ? real : "", disk->base,
                     real ? "name its real base" : "it was flattened: remove base =");
      else
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                     "snapshot layer %s %s%s, but the snapshot record says %s (was it replaced "
                     "by hand? put the recorded one back)", file, real ? "sits on " : "has no backing file",
                     real ? real : "", under);
      return FALSE;
    }
  /* The argv opens the bottom qcow2 alone ("backing": null) when there is no base: a
   * backing file there would be ignored, and the guest would see zeros for its data. */
  if (disk->base == NULL && disk->format == VM_FORMAT_QCOW2 && expected->len - 1 < chain->images->len)
    {
      const ImagesInfo *bottom = chain->images->pdata[expected->len - 1];

      if (bottom->full_backing_filename != NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "image %s sits on %s, and the VM file names no base (add base = %s)",
                       disk->image, bottom->full_backing_filename, bottom->full_backing_filename);
          return FALSE;
        }
    }
  return TRUE;
}

static void
on_info (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  DiskPrep *prep = data;
  GError *error = NULL;
  g_autoptr(ImagesChain) chain = images_info_finish (result, &error);
  const VmDisk *disk;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return prep_finish (prep, error);   /* the VM may be gone: touch nothing of it */
  disk = prep->vm->config->disks->pdata[prep->next];
  if (chain == NULL && prep_failed (prep, error, disk))
    return;
  if (!check_chain (disk, chain, &error))
    {
      prep_failed (prep, error, disk);
      return;
    }
  prep->next++;
  prep_next (prep);
}

/* Overlays, snapshot layers, and any qcow2 image (it could carry a backing file). */
static gboolean
disk_needs_look (const VmDisk *disk)
{
  return disk->base != NULL || disk->overlays != NULL
         || (disk->format == VM_FORMAT_QCOW2 && !disk->shared && g_file_test (disk->image, G_FILE_TEST_EXISTS));
}

static void
prep_next (DiskPrep *prep)
{
  Vm *vm = prep->vm;
  GError *error = NULL;
  const VmDisk *disk;
  uid_t uid;
  gid_t gid;

  while (prep->next < vm->config->disks->len && !disk_needs_look (vm->config->disks->pdata[prep->next]))
    prep->next++;
  if (prep->next == vm->config->disks->len)
    return prep_finish (prep, NULL);
  disk = vm->config->disks->pdata[prep->next];
  if (disk->overlays != NULL)
    return images_info_async (vm->host->qemu_img, g_ptr_array_index (disk->overlays, disk->overlays->len - 1),
                              "qcow2", VM_DISK_TIMEOUT_MS, vm->cancel, on_info, prep);
  if (g_file_test (disk->image, G_FILE_TEST_EXISTS))
    return images_info_async (vm->host->qemu_img, disk->image, vm_image_format_to_string (disk->format),
                              VM_DISK_TIMEOUT_MS, vm->cancel, on_info, prep);
  if (!qemu_spawn_owner (vm->host, &uid, &gid, &error))
    {
      prep_failed (prep, error, disk);
      return;
    }
  images_overlay_create_async (vm->host->qemu_img, disk->image, disk->base,
                               vm_image_format_to_string (disk->base_format), uid, gid,
                               VM_DISK_TIMEOUT_MS, vm->cancel, on_overlay, prep);
}

gboolean
vm_disks_need_preparing (Vm *vm)
{
  /* Every start reads the snapshot record, whatever the disks. */
  return vm->config->disks->len > 0;
}

/* The snapshot layers of the record go into the config: what the argv opens. */
static gboolean
apply_snapshots (Vm *vm, GError **error)
{
  g_autoptr(VmSnapshots) snapshots = NULL;
  const char *busy = vm_snapshot_busy (vm->config->name);

  if (busy != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "a snapshot %s is in progress (start it "
                   "again once that is done)", busy);
      return FALSE;
    }
  snapshots = vm_snapshots_load (vm->host, vm->config->name, error);
  return snapshots != NULL && vm_snapshots_apply (snapshots, vm->config, error);
}

void
vm_disks_prepare_async (Vm *vm, VmDisksDone done)
{
  DiskPrep *prep = g_new0 (DiskPrep, 1);
  GError *error = NULL;

  prep->vm = vm;
  prep->done = done;
  if (!apply_snapshots (vm, &error))
    return prep_finish (prep, error);
  prep_next (prep);
}
