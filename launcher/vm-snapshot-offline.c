/* vm-snapshot-offline.c: delete and revert, the snapshot operations on the files of a
 * stopped guest, with qemu-img on the main loop (images/snapshot.h).
 *
 * Each step that changes the files is followed by a rewrite of the record, ordered so that
 * a crash anywhere leaves a record that describes the chains on disk: delete records the
 * merge before it removes the merged layer; revert forgets the later snapshots before it
 * removes their files, and swaps each emptied layer in by a rename. */
#include "launcher/vm-snapshot.h"

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "images/snapshot.h"

#define MERGE_TIMEOUT_MS (30 * 60 * 1000)   /* commit copies a layer's data */
#define RESET_TIMEOUT_MS 60000              /* an empty layer: metadata only */

typedef struct
{
  VmSnapshots *snapshots;       /* the caller's, changed as the files are */
  char *qemu_img;
  char *tag;
  uid_t owner;
  gid_t group;
  guint done;                   /* disks finished */
  GPtrArray *dropped;           /* revert: tags of the later snapshots dropped */
} OfflineJob;

static void
offline_job_free (OfflineJob *job)
{
  g_free (job->qemu_img);
  g_free (job->tag);
  g_clear_pointer (&job->dropped, g_ptr_array_unref);
  g_free (job);
}

static GTask *
offline_task_new (gpointer source_tag, VmSnapshots *snapshots, const char *qemu_img, const char *tag,
                  GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  OfflineJob *job = g_new0 (OfflineJob, 1);

  g_task_set_source_tag (task, source_tag);
  job->snapshots = snapshots;
  job->qemu_img = g_strdup (qemu_img);
  job->tag = g_strdup (tag);
  g_task_set_task_data (task, job, (GDestroyNotify) offline_job_free);
  return task;
}

/* The layer on d in its disk's chain, or NULL. */
static VmSnapshotDisk *
layer_above (const VmSnapshots *snapshots, const VmSnapshotDisk *d)
{
  g_autoptr(GPtrArray) chain = vm_snapshots_chain (snapshots, d->disk);

  for (guint i = 0; i + 1 < chain->len; i++)
    if (chain->pdata[i] == d)
      return chain->pdata[i + 1];
  return NULL;
}

/* ---- delete ---- */

static void delete_next (GTask *task);

static void
on_merged (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  OfflineJob *job = g_task_get_task_data (task);
  GError *error = NULL;
  guint index;
  VmSnapshot *s = vm_snapshots_find (job->snapshots, job->tag, &index);
  VmSnapshotDisk *d = s->disks->pdata[0];
  VmSnapshotDisk *above = layer_above (job->snapshots, d);
  g_autofree char *merged = g_strdup (d->overlay);

  if (!images_snapshot_merge_finish (result, &error))
    {
      g_prefix_error (&error, "disk '%s': ", d->disk);
      if (job->done > 0)
        g_prefix_error (&error, "%u of its disks merged already (delete it again to finish); ", job->done);
      g_task_return_error (task, error);
      return;
    }
  /* The layer above now sits on what d sat on; d leaves the record, then the disk. */
  if (above != NULL)
    {
      g_free (above->backing);
      above->backing = g_strdup (d->backing);
      above->backing_format = d->backing_format;
    }
  g_ptr_array_remove_index (s->disks, 0);
  if (s->disks->len == 0)
    g_ptr_array_remove_index (job->snapshots->snapshots, index);
  if (!vm_snapshots_save (job->snapshots, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  g_unlink (merged);
  job->done++;
  delete_next (g_steal_pointer (&task));
}

static void
delete_next (GTask *task)
{
  OfflineJob *job = g_task_get_task_data (task);
  VmSnapshot *s = vm_snapshots_find (job->snapshots, job->tag, NULL);
  VmSnapshotDisk *d, *above;

  if (s == NULL)
    {
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
      return;
    }
  /* Always the first disk left: each one merged leaves the snapshot. */
  d = s->disks->pdata[0];
  above = layer_above (job->snapshots, d);
  images_snapshot_merge_async (job->qemu_img, d->overlay, above ? above->overlay : NULL, d->backing,
                               vm_image_format_to_string (d->backing_format), MERGE_TIMEOUT_MS,
                               g_task_get_cancellable (task), on_merged, task);
}

void
vm_snapshots_delete_async (VmSnapshots *snapshots, const char *qemu_img, const char *tag,
                           GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (vm_snapshots_find (snapshots, tag, NULL) != NULL);
  delete_next (offline_task_new (vm_snapshots_delete_async, snapshots, qemu_img, tag, cancellable,
                                 callback, user_data));
}

gboolean
vm_snapshots_delete_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == vm_snapshots_delete_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- revert ---- */

static void revert_next (GTask *task);

static void
on_reset (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  OfflineJob *job = g_task_get_task_data (task);
  VmSnapshot *s = vm_snapshots_find (job->snapshots, job->tag, NULL);
  const VmSnapshotDisk *d = s->disks->pdata[job->done];
  GError *error = NULL;

  if (!images_snapshot_reset_finish (result, &error))
    {
      g_prefix_error (&error, "disk '%s': ", d->disk);
      g_task_return_error (task, error);
      return;
    }
  job->done++;
  revert_next (g_steal_pointer (&task));
}

static void
revert_next (GTask *task)
{
  OfflineJob *job = g_task_get_task_data (task);
  VmSnapshot *s = vm_snapshots_find (job->snapshots, job->tag, NULL);
  const VmSnapshotDisk *d;

  if (job->done == s->disks->len)
    {
      g_ptr_array_add (job->dropped, NULL);
      g_task_return_pointer (task, g_strdupv ((char **) job->dropped->pdata), (GDestroyNotify) g_strfreev);
      g_object_unref (task);
      return;
    }
  d = s->disks->pdata[job->done];
  images_snapshot_reset_async (job->qemu_img, d->overlay, d->backing,
                               vm_image_format_to_string (d->backing_format), job->owner, job->group,
                               RESET_TIMEOUT_MS, g_task_get_cancellable (task), on_reset, task);
}

/* The later snapshots leave the record first, then their files. */
static gboolean
revert_drop_later (OfflineJob *job, guint index, GError **error)
{
  g_autoptr(GPtrArray) later = g_ptr_array_new_with_free_func ((GDestroyNotify) vm_snapshot_free);
  GPtrArray *all = job->snapshots->snapshots;

  while (all->len > index + 1)
    g_ptr_array_add (later, g_ptr_array_steal_index (all, index + 1));
  if (later->len == 0)
    return TRUE;
  if (!vm_snapshots_save (job->snapshots, error))
    return FALSE;
  for (guint i = 0; i < later->len; i++)
    {
      const VmSnapshot *s = later->pdata[i];

      g_ptr_array_add (job->dropped, g_strdup (s->tag));
      for (guint j = 0; j < s->disks->len; j++)
        g_unlink (((VmSnapshotDisk *) s->disks->pdata[j])->overlay);
    }
  return TRUE;
}

void
vm_snapshots_revert_async (VmSnapshots *snapshots, const char *qemu_img, const char *tag, uid_t owner,
                           gid_t group, GCancellable *cancellable, GAsyncReadyCallback callback,
                           gpointer user_data)
{
  GTask *task;
  OfflineJob *job;
  GError *error = NULL;
  guint index;

  g_return_if_fail (vm_snapshots_find (snapshots, tag, &index) != NULL);
  task = offline_task_new (vm_snapshots_revert_async, snapshots, qemu_img, tag, cancellable, callback,
                           user_data);
  job = g_task_get_task_data (task);
  job->owner = owner;
  job->group = group;
  job->dropped = g_ptr_array_new_with_free_func (g_free);
  if (!revert_drop_later (job, index, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }
  revert_next (task);
}

char **
vm_snapshots_revert_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == vm_snapshots_revert_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
