/* vm-disks.c: a VM's disks made ready before QEMU starts.  A missing image with a base
 * becomes a qcow2 overlay on it (owned by the QEMU user); an existing one must still sit on
 * the base the VM file names, since the argv attaches that base explicitly (a flattened
 * image under a stale base = would show the base through its holes).  qemu-img runs
 * asynchronously, bounded by a timeout: the main loop never waits on storage. */
#include "launcher/vm-private.h"

#include <gio/gio.h>
#include <string.h>

#include "images/image-info.h"
#include "images/images.h"
#include "images/overlay.h"

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

static void
on_info (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  DiskPrep *prep = data;
  GError *error = NULL;
  g_autoptr(ImagesChain) chain = images_info_finish (result, &error);
  const ImagesInfo *top;
  const VmDisk *disk;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return prep_finish (prep, error);   /* the VM may be gone: touch nothing of it */
  disk = prep->vm->config->disks->pdata[prep->next];
  if (chain == NULL && prep_failed (prep, error, disk))
    return;
  top = chain->images->pdata[0];
  if (top->full_backing_filename == NULL || strcmp (top->full_backing_filename, disk->base) != 0)
    {
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "image %s %s%s, but the VM file names base = %s (%s)", disk->image,
                   top->full_backing_filename ? "sits on " : "has no backing file",
                   top->full_backing_filename ? top->full_backing_filename : "", disk->base,
                   top->full_backing_filename ? "name its real base" : "it was flattened: remove base =");
      prep_failed (prep, error, disk);
      return;
    }
  prep->next++;
  prep_next (prep);
}

static void
prep_next (DiskPrep *prep)
{
  Vm *vm = prep->vm;
  GError *error = NULL;
  uid_t uid;
  gid_t gid;

  while (prep->next < vm->config->disks->len
         && ((VmDisk *) vm->config->disks->pdata[prep->next])->base == NULL)
    prep->next++;
  if (prep->next == vm->config->disks->len)
    return prep_finish (prep, NULL);
  const VmDisk *disk = vm->config->disks->pdata[prep->next];
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
  for (guint i = 0; i < vm->config->disks->len; i++)
    if (((VmDisk *) vm->config->disks->pdata[i])->base != NULL)
      return TRUE;
  return FALSE;
}

void
vm_disks_prepare_async (Vm *vm, VmDisksDone done)
{
  DiskPrep *prep = g_new0 (DiskPrep, 1);

  prep->vm = vm;
  prep->done = done;
  prep_next (prep);
}
