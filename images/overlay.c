/* overlay.c: qcow2 overlays over base images (check the base, then qemu-img create). */
#define G_LOG_DOMAIN "vmherd-images"

#include "images/overlay.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "images/image-info.h"
#include "images/qemu-img.h"

typedef struct
{
  char *qemu_img;
  char *image;
  char *base;                   /* absolute */
  char *base_format;
  uid_t owner;
  gid_t group;
  guint timeout_ms;
  gboolean created;             /* we made image: remove it on failure */
} OverlayJob;

static void
overlay_job_free (OverlayJob *job)
{
  g_free (job->qemu_img);
  g_free (job->image);
  g_free (job->base);
  g_free (job->base_format);
  g_free (job);
}

static void
overlay_fail (GTask *task, GError *error)
{
  OverlayJob *job = g_task_get_task_data (task);

  if (job->created)
    g_unlink (job->image);
  job->created = FALSE;
  g_task_return_error (task, error);
}

static void
on_created (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;
  g_autofree char *out = images_qemu_img_run_finish (result, &error);

  if (out == NULL)
    {
      overlay_fail (task, error);
      return;
    }
  g_task_return_boolean (task, TRUE);
}

/* The base's own format must be the declared one: QEMU opens it by the declared format,
 * and a raw file read as qcow2 (or the reverse) is garbage to the guest. */
static gboolean
check_base_chain (OverlayJob *job, const ImagesChain *chain, GError **error)
{
  const ImagesInfo *base = chain->images->pdata[0];

  if (g_strcmp0 (base->format, job->base_format) != 0)
    {
      gboolean damaged = strcmp (job->base_format, "qcow2") == 0 && g_strcmp0 (base->format, "raw") == 0;

      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_FORMAT,
                   "base %s is %s, not %s as declared (set base-format = %s%s)", job->base,
                   base->format, job->base_format, base->format,
                   damaged ? ", or if it is qcow2, its header is damaged" : "");
      return FALSE;
    }
  for (guint i = 0; i < chain->images->len; i++)
    {
      const ImagesInfo *info = chain->images->pdata[i];

      if (info->corrupt)
        {
          g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_CORRUPT,
                       "%s %s is marked corrupt (inspect it with qemu-img check)",
                       i == 0 ? "base image" : "backing file", info->filename);
          return FALSE;
        }
    }
  return TRUE;
}

static void
on_base_info (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  OverlayJob *job = g_task_get_task_data (task);
  GError *error = NULL;
  g_autofree char *out = images_qemu_img_run_finish (result, &error);
  g_autoptr(ImagesChain) chain = NULL;
  int fd;

  if (out == NULL
      || (chain = images_chain_parse (out, job->base, &error)) == NULL
      || !check_base_chain (job, chain, &error))
    {
      overlay_fail (task, error);
      return;
    }
  /* Reserve the name with our mode and owner; qemu-img create keeps the inode. */
  fd = images_create_placeholder (job->image, "image", job->owner, job->group, &error);
  if (fd < 0)
    {
      overlay_fail (task, error);
      return;
    }
  close (fd);
  job->created = TRUE;
  {
    const ImagesFile files[] = { { job->image, "image", NULL }, { job->base, "base image", NULL } };
    const char *args[] = { "create", "-q", "-f", "qcow2", "-b", job->base, "-F", job->base_format,
                           job->image, NULL };

    GCancellable *cancellable = g_task_get_cancellable (task);

    images_qemu_img_run_async (job->qemu_img, args, files, G_N_ELEMENTS (files), job->timeout_ms,
                               NULL, NULL, cancellable, on_created, g_steal_pointer (&task));
  }
}

/* The image must not exist (an overlay is never recreated over a guest's data) and its
 * folder must. */
static gboolean
check_new_image (const char *image, GError **error)
{
  g_autofree char *folder = g_path_get_dirname (image);

  if (g_file_test (image, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_IS_DIRECTORY, "image %s is a directory (name an image file)",
                   image);
      return FALSE;
    }
  if (g_file_test (image, G_FILE_TEST_EXISTS) || g_file_test (image, G_FILE_TEST_IS_SYMLINK))
    {
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_EXISTS,
                   "image %s already exists (remove it first; it was not replaced)", image);
      return FALSE;
    }
  if (!g_file_test (folder, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_NOT_FOUND, "folder %s of image %s does not exist",
                   folder, image);
      return FALSE;
    }
  return TRUE;
}

void
images_overlay_create_async (const char *qemu_img, const char *image, const char *base,
                             const char *base_format, uid_t owner, gid_t group, guint timeout_ms,
                             GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;
  OverlayJob *job;

  g_return_if_fail (qemu_img != NULL && image != NULL && base != NULL);
  g_return_if_fail (images_format_is_supported (base_format));

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, images_overlay_create_async);
  g_task_set_name (task, "images-overlay-create");
  job = g_new0 (OverlayJob, 1);
  job->qemu_img = g_strdup (qemu_img);
  job->image = g_strdup (image);
  job->base = g_canonicalize_filename (base, NULL);
  job->base_format = g_strdup (base_format);
  job->owner = owner;
  job->group = group;
  job->timeout_ms = timeout_ms;
  g_task_set_task_data (task, job, (GDestroyNotify) overlay_job_free);

  if (!images_check_source (job->base, "base image", &error) || !check_new_image (image, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  {
    const ImagesFile files[] = { { job->base, "base image", NULL } };
    const char *args[] = { "info", "--output=json", "--backing-chain", "-U", job->base, NULL };

    images_qemu_img_run_async (qemu_img, args, files, G_N_ELEMENTS (files), timeout_ms, NULL, NULL,
                               cancellable, on_base_info, g_steal_pointer (&task));
  }
}

gboolean
images_overlay_create_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == images_overlay_create_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

gboolean
images_overlay_create_sync (const char *qemu_img, const char *image, const char *base,
                            const char *base_format, uid_t owner, gid_t group, guint timeout_ms,
                            GError **error)
{
  ImagesSync sync;
  gboolean ok;

  images_sync_init (&sync);
  images_overlay_create_async (qemu_img, image, base, base_format, owner, group, timeout_ms, sync.cancellable,
                               images_sync_done, &sync);
  ok = images_overlay_create_finish (images_sync_wait (&sync), error);
  images_sync_clear (&sync);
  return ok;
}
