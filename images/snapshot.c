/* snapshot.c: snapshot names, the QMP transaction that takes them, and the offline work
 * on a chain of snapshot layers (merge, reset) with qemu-img. */
#define G_LOG_DOMAIN "vmherd-images"

#include "images/snapshot.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "images/image-files.h"
#include "images/qemu-img.h"

gboolean
images_snapshot_tag_is_valid (const char *tag, char **out_problem)
{
  gsize len = strlen (tag);

  if (len == 0)
    {
      *out_problem = g_strdup ("is empty");
      return FALSE;
    }
  if (len > IMAGES_SNAPSHOT_TAG_MAX)
    {
      *out_problem = g_strdup_printf ("is longer than %d characters", IMAGES_SNAPSHOT_TAG_MAX);
      return FALSE;
    }
  if (tag[0] == '.' || tag[0] == '-')
    {
      *out_problem = g_strdup_printf ("starts with '%c'", tag[0]);
      return FALSE;
    }
  for (const char *p = tag; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      {
        *out_problem = g_strdup_printf ("contains '%c' (use letters, digits, '-', '_' and '.')", *p);
        return FALSE;
      }
  return TRUE;
}

char *
images_snapshot_file_name (const char *image, const char *tag)
{
  static const char *const endings[] = { ".qcow2", ".raw", ".img" };
  g_autofree char *problem = NULL;
  gsize len = strlen (image);

  g_return_val_if_fail (images_snapshot_tag_is_valid (tag, &problem), NULL);

  for (guint i = 0; i < G_N_ELEMENTS (endings); i++)
    if (g_str_has_suffix (image, endings[i]) && len > strlen (endings[i])
        && image[len - strlen (endings[i]) - 1] != '/')
      {
        len -= strlen (endings[i]);
        break;
      }
  return g_strdup_printf ("%.*s.%s.qcow2", (int) len, image, tag);
}

JsonObject *
images_snapshot_transaction_args (const ImagesSnapshotDisk *disks, guint n_disks)
{
  JsonObject *args;
  JsonArray *actions;

  g_return_val_if_fail (disks != NULL && n_disks > 0, NULL);

  args = json_object_new ();
  actions = json_array_new ();

  for (guint i = 0; i < n_disks; i++)
    {
      JsonObject *action = json_object_new ();
      JsonObject *data = json_object_new ();

      json_object_set_string_member (data, "node-name", disks[i].node_name);
      json_object_set_string_member (data, "snapshot-file", disks[i].snapshot_file);
      json_object_set_string_member (data, "snapshot-node-name", disks[i].snapshot_node_name);
      json_object_set_string_member (data, "format", "qcow2");
      json_object_set_string_member (data, "mode", "absolute-paths");
      json_object_set_string_member (action, "type", "blockdev-snapshot-sync");
      json_object_set_object_member (action, "data", data);
      json_array_add_object_element (actions, action);
    }
  json_object_set_array_member (args, "actions", actions);
  return args;
}

JsonObject *
images_snapshot_attach_args (const char *const *nodes, const char *const *overlays, guint n)
{
  JsonObject *args;
  JsonArray *actions;

  g_return_val_if_fail (nodes != NULL && overlays != NULL && n > 0, NULL);

  args = json_object_new ();
  actions = json_array_new ();
  for (guint i = 0; i < n; i++)
    {
      JsonObject *action = json_object_new ();
      JsonObject *data = json_object_new ();

      json_object_set_string_member (data, "node", nodes[i]);
      json_object_set_string_member (data, "overlay", overlays[i]);
      json_object_set_string_member (action, "type", "blockdev-snapshot");
      json_object_set_object_member (action, "data", data);
      json_array_add_object_element (actions, action);
    }
  json_object_set_array_member (args, "actions", actions);
  return args;
}

/* ---- merge: commit a layer into the one below, rebase the one above ---- */

typedef struct
{
  char *qemu_img;
  char *overlay, *above, *backing, *backing_format;
  guint timeout_ms;
} MergeJob;

static void
merge_job_free (MergeJob *job)
{
  g_free (job->qemu_img);
  g_free (job->overlay);
  g_free (job->above);
  g_free (job->backing);
  g_free (job->backing_format);
  g_free (job);
}

static void
on_rebased (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;
  g_autofree char *out = images_qemu_img_run_finish (result, &error);

  if (out == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
on_committed (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  MergeJob *job = g_task_get_task_data (task);
  GError *error = NULL;
  g_autofree char *out = images_qemu_img_run_finish (result, &error);

  if (out == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  if (job->above == NULL)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }
  {
    /* -u: only the header changes; what above shows is the same, since backing now holds
     * everything overlay held. */
    const ImagesFile files[] = { { job->above, "snapshot overlay", NULL },
                                 { job->backing, "image", NULL } };
    const char *args[] = { "rebase", "-q", "-u", "-f", "qcow2", "-b", job->backing,
                           "-F", job->backing_format, job->above, NULL };

    images_qemu_img_run_async (job->qemu_img, args, files, G_N_ELEMENTS (files), job->timeout_ms,
                               NULL, NULL, g_task_get_cancellable (task), on_rebased,
                               g_steal_pointer (&task));
  }
}

void
images_snapshot_merge_async (const char *qemu_img, const char *overlay, const char *above,
                             const char *backing, const char *backing_format, guint timeout_ms,
                             GCancellable *cancellable, GAsyncReadyCallback callback,
                             gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  MergeJob *job;

  g_return_if_fail (qemu_img != NULL && overlay != NULL && backing != NULL);
  g_return_if_fail (images_format_is_supported (backing_format));

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, images_snapshot_merge_async);
  g_task_set_name (task, "images-snapshot-merge");
  job = g_new0 (MergeJob, 1);
  job->qemu_img = g_strdup (qemu_img);
  job->overlay = g_strdup (overlay);
  job->above = g_strdup (above);
  job->backing = g_strdup (backing);
  job->backing_format = g_strdup (backing_format);
  job->timeout_ms = timeout_ms;
  g_task_set_task_data (task, job, (GDestroyNotify) merge_job_free);
  {
    /* -d: overlay is removed afterwards; emptying it first would only cost time. */
    const ImagesFile files[] = { { job->overlay, "snapshot overlay", NULL },
                                 { job->backing, "image", NULL } };
    const char *args[] = { "commit", "-q", "-d", "-f", "qcow2", job->overlay, NULL };

    images_qemu_img_run_async (qemu_img, args, files, G_N_ELEMENTS (files), timeout_ms, NULL, NULL,
                               cancellable, on_committed, g_steal_pointer (&task));
  }
}

gboolean
images_snapshot_merge_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == images_snapshot_merge_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- reset: an empty layer in place of one ---- */

typedef struct
{
  char *overlay;
  char *temp;                   /* where qemu-img writes; removed on failure */
} ResetJob;

static void
reset_job_free (ResetJob *job)
{
  if (job->temp != NULL)
    g_unlink (job->temp);
  g_free (job->temp);
  g_free (job->overlay);
  g_free (job);
}

static void
on_reset_created (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  ResetJob *job = g_task_get_task_data (task);
  GError *error = NULL;
  g_autofree char *out = images_qemu_img_run_finish (result, &error);

  if (out == NULL || !images_rename (job->temp, job->overlay, "snapshot overlay", TRUE, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  g_clear_pointer (&job->temp, g_free);
  g_task_return_boolean (task, TRUE);
}

void
images_snapshot_reset_async (const char *qemu_img, const char *overlay, const char *backing,
                             const char *backing_format, uid_t owner, gid_t group, guint timeout_ms,
                             GCancellable *cancellable, GAsyncReadyCallback callback,
                             gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;
  ResetJob *job;
  int fd;

  g_return_if_fail (qemu_img != NULL && overlay != NULL && backing != NULL);
  g_return_if_fail (images_format_is_supported (backing_format));

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, images_snapshot_reset_async);
  g_task_set_name (task, "images-snapshot-reset");
  job = g_new0 (ResetJob, 1);
  job->overlay = g_strdup (overlay);
  g_task_set_task_data (task, job, (GDestroyNotify) reset_job_free);

  if (!images_check_source (backing, "image", &error))
    {
      g_task_return_error (task, error);
      return;
    }
  /* The temporary file keeps its inode, mode and owner through qemu-img create. */
  fd = images_create_temp (overlay, "revert", "snapshot overlay", &job->temp, &error);
  if (fd < 0 || !images_set_owner (fd, job->temp, "snapshot overlay", owner, group, &error))
    {
      if (fd >= 0)
        close (fd);
      g_task_return_error (task, error);
      return;
    }
  close (fd);
  {
    const ImagesFile files[] = { { job->temp, "snapshot overlay", overlay },
                                 { backing, "image", NULL } };
    const char *args[] = { "create", "-q", "-f", "qcow2", "-b", backing, "-F", backing_format,
                           job->temp, NULL };

    images_qemu_img_run_async (qemu_img, args, files, G_N_ELEMENTS (files), timeout_ms, NULL, NULL,
                               cancellable, on_reset_created, g_steal_pointer (&task));
  }
}

gboolean
images_snapshot_reset_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == images_snapshot_reset_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
