/* image-create.c: create, clone and flatten with qemu-img, never leaving a half image. */
#define G_LOG_DOMAIN "vmherd-images"

#include "images/image-create.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fd-util.h"

typedef struct
{
  char *target;                 /* the file the caller asked for */
  char *temp;                   /* clone/flatten: where qemu-img writes; NULL for create */
  gboolean remove_target;       /* create: we made target; remove it on failure */
  gboolean replace;             /* flatten: rename over target */
  int lock_fd;                  /* flatten: holds our lock on the image until renamed */
} ImageJob;

/* Removes what a failed job made and drops the lock; before the task returns, so that
 * the caller's callback already sees the old state. */
static void
image_job_undo (ImageJob *job)
{
  if (job->temp != NULL)
    g_unlink (job->temp);
  g_clear_pointer (&job->temp, g_free);
  if (job->remove_target)
    g_unlink (job->target);
  job->remove_target = FALSE;
  fd_close_if_valid (job->lock_fd);
  job->lock_fd = -1;
}

static void
image_job_free (ImageJob *job)
{
  image_job_undo (job);
  g_free (job->target);
  g_free (job);
}

static void
image_task_fail (GTask *task, GError *error)
{
  image_job_undo (g_task_get_task_data (task));
  g_task_return_error (task, error);
}

static GTask *
image_task_new (gpointer source_tag, const char *name, const char *target, GCancellable *cancellable,
                GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  ImageJob *job = g_new0 (ImageJob, 1);

  g_task_set_source_tag (task, source_tag);
  g_task_set_name (task, name);
  job->target = g_strdup (target);
  job->lock_fd = -1;
  g_task_set_task_data (task, job, (GDestroyNotify) image_job_free);
  return task;
}

/* The end of every run: on success the temporary file becomes the target; on failure
 * image_job_free() removes what we made. */
static void
on_run_done (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  ImageJob *job = g_task_get_task_data (task);
  GError *error = NULL;
  g_autofree char *out = images_qemu_img_run_finish (result, &error);

  if (out == NULL)
    {
      image_task_fail (task, error);
      return;
    }
  if (job->temp != NULL)
    {
      if (!images_rename (job->temp, job->target, "image", job->replace, &error))
        {
          image_task_fail (task, error);
          return;
        }
      g_clear_pointer (&job->temp, g_free);
    }
  job->remove_target = FALSE;
  fd_close_if_valid (job->lock_fd);
  job->lock_fd = -1;
  g_task_return_boolean (task, TRUE);
}

static gboolean
propagate_boolean (GAsyncResult *result, gpointer source_tag, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- create ---- */

void
images_create_async (const char *qemu_img, const char *path, const char *format, guint64 size,
                     gboolean preallocate, uid_t owner, gid_t group, guint timeout_ms,
                     GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autofree char *size_text = g_strdup_printf ("%" G_GUINT64_FORMAT, size);
  const ImagesFile files[] = { { path, "image", NULL } };
  const char *args[] = { "create", "-q", "-f", format, path, size_text, NULL, NULL, NULL };
  GError *error = NULL;
  ImageJob *job;
  int fd;

  g_return_if_fail (qemu_img != NULL && path != NULL && size > 0);
  g_return_if_fail (images_format_is_supported (format));

  task = image_task_new (images_create_async, "images-create", path, cancellable, callback, user_data);
  job = g_task_get_task_data (task);
  /* O_EXCL: qemu-img create itself would truncate an existing image without asking. */
  fd = images_create_placeholder (path, "image", owner, group, &error);
  if (fd < 0)
    {
      image_task_fail (task, error);
      return;
    }
  close (fd);
  job->remove_target = TRUE;
  if (preallocate)
    {
      args[4] = "-o";
      args[5] = "preallocation=full";
      args[6] = path;
      args[7] = size_text;
    }
  images_qemu_img_run_async (qemu_img, args, files, G_N_ELEMENTS (files), timeout_ms, NULL, NULL,
                             cancellable, on_run_done, g_steal_pointer (&task));
}

gboolean
images_create_finish (GAsyncResult *result, GError **error)
{
  return propagate_boolean (result, images_create_async, error);
}

/* ---- clone ---- */

void
images_clone_async (const char *qemu_img, const char *source, const char *source_format,
                    const char *target, const char *target_format, uid_t owner, gid_t group,
                    guint timeout_ms, ImagesProgressFunc progress, gpointer progress_data,
                    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  g_auto(AutoFd) fd = -1;
  GError *error = NULL;
  ImageJob *job;

  g_return_if_fail (qemu_img != NULL && source != NULL && target != NULL);
  g_return_if_fail (images_format_is_supported (target_format));

  task = image_task_new (images_clone_async, "images-clone", target, cancellable, callback, user_data);
  job = g_task_get_task_data (task);
  if (!images_check_source (source, "source image", &error))
    {
      image_task_fail (task, error);
      return;
    }
  if (g_file_test (target, G_FILE_TEST_EXISTS) || g_file_test (target, G_FILE_TEST_IS_SYMLINK))
    {
      images_set_errno_error (g_file_test (target, G_FILE_TEST_IS_DIR) ? EISDIR : EEXIST, "create",
                              "image", target, &error);
      image_task_fail (task, error);
      return;
    }
  fd = images_create_temp (target, "clone", "image", &job->temp, &error);
  if (fd < 0 || !images_set_owner (fd, job->temp, "image", owner, group, &error))
    {
      image_task_fail (task, error);
      return;
    }

  g_ptr_array_add (args, "convert");
  g_ptr_array_add (args, "-p");
  g_ptr_array_add (args, "-t");         /* flushed before qemu-img exits, so before the rename */
  g_ptr_array_add (args, "writeback");
  if (source_format != NULL)
    {
      g_ptr_array_add (args, "-f");
      g_ptr_array_add (args, (char *) source_format);
    }
  g_ptr_array_add (args, "-O");
  g_ptr_array_add (args, (char *) target_format);
  g_ptr_array_add (args, (char *) source);
  g_ptr_array_add (args, job->temp);
  g_ptr_array_add (args, NULL);
  {
    const ImagesFile files[] = { { job->temp, "image", target }, { source, "source image", NULL } };

    images_qemu_img_run_async (qemu_img, (const char *const *) args->pdata, files, G_N_ELEMENTS (files),
                               timeout_ms, progress, progress_data, cancellable, on_run_done,
                               g_steal_pointer (&task));
  }
}

gboolean
images_clone_finish (GAsyncResult *result, GError **error)
{
  return propagate_boolean (result, images_clone_async, error);
}

/* ---- flatten ---- */

/* Locks image against writers and makes the temporary copy with its owner and mode. */
static gboolean
flatten_prepare (ImageJob *job, GError **error)
{
  g_auto(AutoFd) temp_fd = -1;
  struct stat st;

  if (!images_check_source (job->target, "image", error))
    return FALSE;
  job->lock_fd = open (job->target, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (job->lock_fd < 0)
    {
      images_set_errno_error (errno, "open", "image", job->target, error);
      return FALSE;
    }
  if (!images_lock_against_writers (job->lock_fd, "image", job->target, error))
    return FALSE;
  if (fstat (job->lock_fd, &st) < 0)
    {
      images_set_errno_error (errno, "read", "image", job->target, error);
      return FALSE;
    }
  temp_fd = images_create_temp (job->target, "flatten", "image", &job->temp, error);
  if (temp_fd < 0 || !images_set_owner (temp_fd, job->temp, "image", st.st_uid, st.st_gid, error))
    return FALSE;
  if (fchmod (temp_fd, st.st_mode & 07777) < 0)
    {
      images_set_errno_error (errno, "set the mode of", "image", job->temp, error);
      return FALSE;
    }
  return TRUE;
}

void
images_flatten_async (const char *qemu_img, const char *image, const char *format, guint timeout_ms,
                      ImagesProgressFunc progress, gpointer progress_data, GCancellable *cancellable,
                      GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;
  ImageJob *job;

  g_return_if_fail (qemu_img != NULL && image != NULL);
  g_return_if_fail (images_format_is_supported (format));

  task = image_task_new (images_flatten_async, "images-flatten", image, cancellable, callback, user_data);
  job = g_task_get_task_data (task);
  job->replace = TRUE;
  if (!flatten_prepare (job, &error))
    {
      image_task_fail (task, error);
      return;
    }
  {
    /* The source is opened by qemu-img without -U: it takes the same locks we hold. */
    const ImagesFile files[] = { { job->temp, "flattened copy of image", image }, { image, "image", NULL } };
    const char *args[] = { "convert", "-p", "-t", "writeback", "-f", format, "-O", format, image,
                           job->temp, NULL };

    images_qemu_img_run_async (qemu_img, args, files, G_N_ELEMENTS (files), timeout_ms, progress,
                               progress_data, cancellable, on_run_done, g_steal_pointer (&task));
  }
}

gboolean
images_flatten_finish (GAsyncResult *result, GError **error)
{
  return propagate_boolean (result, images_flatten_async, error);
}

/* ---- sync, for the command-line tool ---- */

gboolean
images_create_sync (const char *qemu_img, const char *path, const char *format, guint64 size,
                    gboolean preallocate, uid_t owner, gid_t group, guint timeout_ms, GError **error)
{
  ImagesSync sync;
  gboolean ok;

  images_sync_init (&sync);
  images_create_async (qemu_img, path, format, size, preallocate, owner, group, timeout_ms, sync.cancellable,
                       images_sync_done, &sync);
  ok = images_create_finish (images_sync_wait (&sync), error);
  images_sync_clear (&sync);
  return ok;
}

gboolean
images_clone_sync (const char *qemu_img, const char *source, const char *source_format,
                   const char *target, const char *target_format, uid_t owner, gid_t group,
                   guint timeout_ms, ImagesProgressFunc progress, gpointer progress_data, GError **error)
{
  ImagesSync sync;
  gboolean ok;

  images_sync_init (&sync);
  images_clone_async (qemu_img, source, source_format, target, target_format, owner, group, timeout_ms,
                      progress, progress_data, sync.cancellable, images_sync_done, &sync);
  ok = images_clone_finish (images_sync_wait (&sync), error);
  images_sync_clear (&sync);
  return ok;
}

gboolean
images_flatten_sync (const char *qemu_img, const char *image, const char *format, guint timeout_ms,
                     ImagesProgressFunc progress, gpointer progress_data, GError **error)
{
  ImagesSync sync;
  gboolean ok;

  images_sync_init (&sync);
  images_flatten_async (qemu_img, image, format, timeout_ms, progress, progress_data, sync.cancellable,
                        images_sync_done, &sync);
  ok = images_flatten_finish (images_sync_wait (&sync), error);
  images_sync_clear (&sync);
  return ok;
}
