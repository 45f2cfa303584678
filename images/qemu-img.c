/* qemu-img.c: one qemu-img run on the main loop (spawn, read both pipes, wait, time out,
 * cancel), and qemu-img's stderr turned into IMAGES_ERROR codes. */
#define G_LOG_DOMAIN "vmherd-images"

#include "images/qemu-img.h"

#include <errno.h>
#include <glib-unix.h>
#include <signal.h>
#include <string.h>

/* ---- stderr -> GError ---- */

/* The path in the last "Could not open 'X'" / "Could not create 'X'", the innermost file
 * of a chain ("Could not open 'overlay': Could not open backing file: Could not open
 * '/base': ..."), else the X of "Is another process using the image [X]?". */
static char *
named_path (const char *text)
{
  static const char *const openers[] = { "Could not open '", "Could not create '" };
  const char *best = NULL;
  const char *lock;

  for (guint i = 0; i < G_N_ELEMENTS (openers); i++)
    for (const char *p = strstr (text, openers[i]); p != NULL; p = strstr (p + 1, openers[i]))
      if (best == NULL || p + strlen (openers[i]) > best)
        best = p + strlen (openers[i]);
  if (best != NULL)
    {
      const char *end = strchr (best, '\'');
      if (end != NULL)
        return g_strndup (best, (gsize) (end - best));
    }
  lock = strstr (text, "using the image [");
  if (lock != NULL)
    {
      const char *start = lock + strlen ("using the image [");
      const char *end = strstr (start, "]?");
      if (end != NULL)
        return g_strndup (start, (gsize) (end - start));
    }
  return NULL;
}

/* "qemu-img: X: cause" where X is one of files. */
static const ImagesFile *
prefixed_file (const char *text, const ImagesFile *files, guint n_files)
{
  const char *rest = g_str_has_prefix (text, "qemu-img: ") ? text + strlen ("qemu-img: ") : text;

  for (guint i = 0; i < n_files; i++)
    {
      gsize len = strlen (files[i].path);
      if (strncmp (rest, files[i].path, len) == 0 && strncmp (rest + len, ": ", 2) == 0)
        return &files[i];
    }
  return NULL;
}

/* The first line without "qemu-img: " and without the file prefixes qemu-img repeats:
 * "qemu-img: Could not open 'x': Could not open 'x': No such file" -> "No such file". */
static char *
stderr_cause (const char *text)
{
  g_autofree char *line = NULL;
  const char *end = strchr (text, '\n');
  char *p;
  gboolean stripped = TRUE;

  line = end != NULL ? g_strndup (text, (gsize) (end - text)) : g_strdup (text);
  p = line;
  if (g_str_has_prefix (p, "qemu-img: "))
    p += strlen ("qemu-img: ");
  while (stripped)
    {
      const char *q = strstr (p, "': ");
      stripped = FALSE;
      if ((g_str_has_prefix (p, "Could not open '") || g_str_has_prefix (p, "Could not create '"))
          && q != NULL)
        {
          p = (char *) q + 3;
          stripped = TRUE;
        }
      else if ((q = strstr (p, ": ")) != NULL && memchr (p, ' ', (gsize) (q - p)) == NULL)
        {
          p = (char *) q + 2;   /* "file.qcow2: cause": a leading word without spaces */
          stripped = TRUE;
        }
    }
  return g_strdup (g_strstrip (p));
}

static gboolean
contains_any (const char *text, const char *const *needles)
{
  for (; *needles != NULL; needles++)
    if (strstr (text, *needles) != NULL)
      return TRUE;
  return FALSE;
}

/* What qcow2 (and the other format drivers) say when a header or its tables do not make
 * sense: only believed after "Could not open", so that a usage error never reads as a
 * damaged image. */
static const char *const corrupt_words[] = {
  "corrupt", "Unsupported qcow2 version", "header too short", "Invalid ", "too large",
  "too small", "Too many", "Unsupported cluster size", "incompatible feature",
  "header extension", "Could not read qcow2 header", NULL,
};

/* Which file a message is about, and how to name it. */
static void
blamed_file (const char *text, const char *named, const ImagesFile *files, guint n_files,
             const char **out_role, const char **out_shown)
{
  const ImagesFile *file = NULL;

  for (guint i = 0; named != NULL && i < n_files; i++)
    if (strcmp (files[i].path, named) == 0)
      file = &files[i];
  if (file == NULL && named == NULL && strstr (text, "Could not open backing image") != NULL)
    for (guint i = 0; i < n_files && file == NULL; i++)
      if (strcmp (files[i].role, "base image") == 0)
        file = &files[i];     /* "qemu-img: OVERLAY: <why>\nCould not open backing image." */
  if (file == NULL && named == NULL)
    file = prefixed_file (text, files, n_files);
  if (file == NULL && named != NULL)
    {
      *out_role = "backing file";   /* qemu-img opens no other file we did not name */
      *out_shown = named;
      return;
    }
  if (file == NULL)
    file = &files[0];
  *out_role = file->role;
  *out_shown = file->shown != NULL ? file->shown : file->path;
}

void
images_qemu_img_set_error (const char *stderr_text, const ImagesFile *files, guint n_files,
                           GError **error)
{
  static const char *const lock_words[] = { "Failed to get shared \"write\" lock",
                                            "Failed to get \"write\" lock", "Is another process using",
                                            "Failed to lock byte", NULL };
  static const char *const space_words[] = { "No space left on device", "Disk quota exceeded", NULL };
  const char *text = stderr_text != NULL ? stderr_text : "";
  g_autofree char *named = named_path (text);
  g_autofree char *cause = stderr_cause (text);
  g_autofree char *folder = NULL;
  const char *role, *shown;

  g_return_if_fail (n_files > 0);
  blamed_file (text, named, files, n_files, &role, &shown);

  if (contains_any (text, lock_words))
    g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_LOCKED,
                 "%s %s is in use by another process, probably a running QEMU (stop the VM first)",
                 role, shown);
  else if (contains_any (text, space_words))
    {
      folder = g_path_get_dirname (shown);
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_NO_SPACE,
                   "%s %s: no space left on device (free space in %s)", role, shown, folder);
    }
  else if (strstr (text, "Is a directory") != NULL)
    g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_IS_DIRECTORY,
                 "%s %s is a directory (name an image file)", role, shown);
  else if (strstr (text, "No such file or directory") != NULL)
    g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_NOT_FOUND, "%s %s does not exist", role, shown);
  else if (strstr (text, "Image is not in ") != NULL)
    {
      g_autofree char *format = g_strdup (strstr (text, "Image is not in ") + strlen ("Image is not in "));
      char *space = strchr (format, ' ');

      if (space != NULL)
        *space = '\0';
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_FORMAT,
                   "%s %s is not in %s format (check its declared format; if it is %s, its "
                   "header is damaged)", role, shown, format, format);
    }
  else if (named != NULL && contains_any (text, corrupt_words))
    g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_CORRUPT,
                 "%s %s is damaged: %s (inspect it with qemu-img check)", role, shown, cause);
  else if (cause[0] == '\0')
    g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL, "qemu-img failed on %s %s without saying why",
                 role, shown);
  else
    g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL, "qemu-img failed on %s %s: %s", role, shown,
                 cause);
}

gboolean
images_progress_parse (const char *text, double *out_percent)
{
  gssize len = (gssize) strlen (text);
  const char *mark;

  while ((mark = g_strrstr_len (text, len, "/100%)")) != NULL)
    {
      const char *open = mark;
      char *end = NULL;
      double value;

      while (open > text && open[-1] != '(' && open[-1] != ')')
        open--;
      if (open > text && open[-1] == '(')
        {
          value = g_ascii_strtod (open, &end);
          if (end == mark && value >= 0.0 && value <= 100.0)
            {
              *out_percent = value;
              return TRUE;
            }
        }
      len = mark - text;        /* a malformed one: look at the one before */
    }
  return FALSE;
}

gboolean
images_format_is_supported (const char *format)
{
  return g_strcmp0 (format, "qcow2") == 0 || g_strcmp0 (format, "raw") == 0;
}

/* ---- one run ---- */

typedef struct
{
  GSubprocess *process;
  GCancellable *io_cancel;      /* stops our reads once the task has returned */
  GSource *timeout_source;
  GSource *cancel_source;
  GString *out, *err;
  char out_buf[4096];
  char err_buf[4096];
  guint pending;                /* reads and the wait still running */
  guint timeout_ms;
  gboolean returned;
  ImagesProgressFunc progress;
  gpointer progress_data;
  double last_percent;
  char *command;                /* "convert", for messages */
  GPtrArray *strings;           /* owns what files point to */
  GArray *files;                /* ImagesFile */
} QemuImgRun;

static void
source_drop (GSource *source)
{
  g_source_destroy (source);
  g_source_unref (source);
}

static void
qemu_img_run_free (QemuImgRun *run)
{
  g_clear_pointer (&run->timeout_source, source_drop);
  g_clear_pointer (&run->cancel_source, source_drop);
  g_clear_object (&run->process);
  g_clear_object (&run->io_cancel);
  g_string_free (run->out, TRUE);
  g_string_free (run->err, TRUE);
  g_free (run->command);
  g_ptr_array_unref (run->strings);
  g_array_unref (run->files);
  g_free (run);
}

static QemuImgRun *
qemu_img_run_new (const char *command, const ImagesFile *files, guint n_files)
{
  QemuImgRun *run = g_new0 (QemuImgRun, 1);

  run->out = g_string_new (NULL);
  run->err = g_string_new (NULL);
  run->command = g_strdup (command);
  run->last_percent = -1.0;
  run->io_cancel = g_cancellable_new ();
  run->strings = g_ptr_array_new_with_free_func (g_free);
  run->files = g_array_sized_new (FALSE, TRUE, sizeof (ImagesFile), n_files);
  for (guint i = 0; i < n_files; i++)
    {
      ImagesFile copy = { g_strdup (files[i].path), g_strdup (files[i].role), g_strdup (files[i].shown) };

      g_ptr_array_add (run->strings, (char *) copy.path);
      g_ptr_array_add (run->strings, (char *) copy.role);
      g_ptr_array_add (run->strings, (char *) copy.shown);
      g_array_append_val (run->files, copy);
    }
  return run;
}

static const char *
run_subject (QemuImgRun *run)
{
  const ImagesFile *f = &g_array_index (run->files, ImagesFile, 0);

  return f->shown != NULL ? f->shown : f->path;
}

/* Returns the task once; whatever is still running (reads of a killed process) finds
 * run->returned set and only drops its reference. */
static void
run_return (GTask *task, char *out, GError *error)
{
  QemuImgRun *run = g_task_get_task_data (task);

  g_assert (!run->returned);
  run->returned = TRUE;
  g_clear_pointer (&run->timeout_source, source_drop);
  g_clear_pointer (&run->cancel_source, source_drop);
  g_cancellable_cancel (run->io_cancel);
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, out, g_free);
}

static void
run_maybe_finish (GTask *task)
{
  QemuImgRun *run = g_task_get_task_data (task);
  GError *error = NULL;

  if (run->returned || run->pending > 0)
    return;
  if (*run->err->str != '\0')
    g_debug ("qemu-img %s: %.*s", run->command, (int) strcspn (run->err->str, "\n"), run->err->str);
  if (g_subprocess_get_if_exited (run->process) && g_subprocess_get_exit_status (run->process) == 0)
    {
      run_return (task, g_strdup (run->out->str), NULL);
      return;
    }
  if (g_subprocess_get_if_signaled (run->process))
    error = g_error_new (IMAGES_ERROR, IMAGES_ERROR_TOOL, "qemu-img %s on %s was killed by signal %d",
                         run->command, run_subject (run), g_subprocess_get_term_sig (run->process));
  else
    images_qemu_img_set_error (run->err->str, (const ImagesFile *) (void *) run->files->data,
                               run->files->len, &error);
  run_return (task, NULL, error);
}

static void
on_progress (QemuImgRun *run)
{
  double percent;

  if (run->progress != NULL && images_progress_parse (run->out->str, &percent)
      && percent != run->last_percent)
    {
      run->last_percent = percent;
      run->progress (percent, run->progress_data);
    }
}

static void read_pipe (GTask *task, gboolean is_stdout);

static void
on_read (GObject *source, GAsyncResult *result, gpointer user_data, gboolean is_stdout)
{
  g_autoptr(GTask) task = user_data;
  QemuImgRun *run = g_task_get_task_data (task);
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);

  if (n > 0 && !run->returned)
    {
      g_string_append_len (is_stdout ? run->out : run->err,
                           is_stdout ? run->out_buf : run->err_buf, n);
      if (is_stdout)
        on_progress (run);
      read_pipe (g_steal_pointer (&task), is_stdout);
      return;
    }
  run->pending--;
  run_maybe_finish (task);
}

static void
on_read_out (GObject *source, GAsyncResult *result, gpointer user_data)
{
  on_read (source, result, user_data, TRUE);
}

static void
on_read_err (GObject *source, GAsyncResult *result, gpointer user_data)
{
  on_read (source, result, user_data, FALSE);
}

/* Takes the task reference. */
static void
read_pipe (GTask *task, gboolean is_stdout)
{
  QemuImgRun *run = g_task_get_task_data (task);
  GInputStream *stream = is_stdout ? g_subprocess_get_stdout_pipe (run->process)
                                   : g_subprocess_get_stderr_pipe (run->process);

  g_input_stream_read_async (stream, is_stdout ? run->out_buf : run->err_buf,
                             is_stdout ? sizeof run->out_buf : sizeof run->err_buf,
                             G_PRIORITY_DEFAULT, run->io_cancel,
                             is_stdout ? on_read_out : on_read_err, task);
}

static void
on_exited (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  QemuImgRun *run = g_task_get_task_data (task);

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  run->pending--;
  run_maybe_finish (task);
}

static gboolean
on_timeout (gpointer user_data)
{
  GTask *task = user_data;
  QemuImgRun *run = g_task_get_task_data (task);

  /* A qemu-img stuck on hung storage may not even die at once (state D); the caller
   * hears of it now, and GSubprocess reaps the child whenever it goes. */
  g_subprocess_force_exit (run->process);
  run_return (task, NULL, g_error_new (IMAGES_ERROR, IMAGES_ERROR_TIMEOUT,
                                       "qemu-img %s on %s did not finish within %u ms and was killed "
                                       "(is its storage hanging?)", run->command, run_subject (run),
                                       run->timeout_ms));
  return G_SOURCE_REMOVE;
}

static gboolean
on_cancelled (GCancellable *cancellable G_GNUC_UNUSED, gpointer user_data)
{
  GTask *task = user_data;
  QemuImgRun *run = g_task_get_task_data (task);

  g_subprocess_force_exit (run->process);
  run_return (task, NULL, g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED, "qemu-img %s on %s cancelled",
                                       run->command, run_subject (run)));
  return G_SOURCE_REMOVE;
}

static GSource *
attach_source (GSource *source, GTask *task, GSourceFunc func)
{
  g_source_set_callback (source, func, g_object_ref (task), g_object_unref);
  g_source_attach (source, g_task_get_context (task));
  return source;
}

void
images_qemu_img_run_async (const char *qemu_img, const char *const *args, const ImagesFile *files,
                           guint n_files, guint timeout_ms, ImagesProgressFunc progress,
                           gpointer progress_data, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  QemuImgRun *run;

  g_return_if_fail (qemu_img != NULL && args != NULL && args[0] != NULL);
  g_return_if_fail (files != NULL && n_files > 0);

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, images_qemu_img_run_async);
  g_task_set_name (task, "qemu-img");
  run = qemu_img_run_new (args[0], files, n_files);
  run->timeout_ms = timeout_ms;
  run->progress = progress;
  run->progress_data = progress_data;
  g_task_set_task_data (task, run, (GDestroyNotify) qemu_img_run_free);

  if (g_task_return_error_if_cancelled (task))
    return;

  g_ptr_array_add (argv, (char *) qemu_img);
  for (const char *const *a = args; *a != NULL; a++)
    g_ptr_array_add (argv, (char *) *a);
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_stdin_file_path (launcher, "/dev/null");
  g_subprocess_launcher_setenv (launcher, "LC_ALL", "C", TRUE);
  run->process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  if (run->process == NULL)
    {
      run->returned = TRUE;
      g_task_return_new_error (task, IMAGES_ERROR, IMAGES_ERROR_TOOL,
                               "cannot run %s: %s (install qemu-utils, or set qemu-img = in vmherd.conf)",
                               qemu_img, error->message);
      return;
    }
  g_debug ("running %s %s ...", qemu_img, args[0]);

  run->pending = 3;
  read_pipe (g_object_ref (task), TRUE);
  read_pipe (g_object_ref (task), FALSE);
  g_subprocess_wait_async (run->process, run->io_cancel, on_exited, g_object_ref (task));
  if (timeout_ms > 0)
    run->timeout_source = attach_source (g_timeout_source_new (timeout_ms), task, on_timeout);
  if (cancellable != NULL)
    run->cancel_source = attach_source (g_cancellable_source_new (cancellable), task,
                                        (GSourceFunc) (void (*) (void)) on_cancelled);
}

char *
images_qemu_img_run_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == images_qemu_img_run_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- sync, for the command-line tool ---- */

static gboolean
on_sync_signal (gpointer user_data)
{
  ImagesSync *sync = user_data;

  g_cancellable_cancel (sync->cancellable);
  return G_SOURCE_CONTINUE;
}

void
images_sync_init (ImagesSync *sync)
{
  static const int signals[] = { SIGINT, SIGTERM };

  sync->context = g_main_context_new ();
  sync->result = NULL;
  sync->cancellable = g_cancellable_new ();
  for (guint i = 0; i < G_N_ELEMENTS (signals); i++)
    {
      sync->signals[i] = g_unix_signal_source_new (signals[i]);
      g_source_set_callback (sync->signals[i], on_sync_signal, sync, NULL);
      g_source_attach (sync->signals[i], sync->context);
    }
  g_main_context_push_thread_default (sync->context);
}

void
images_sync_done (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  ImagesSync *sync = user_data;

  sync->result = g_object_ref (result);
}

GAsyncResult *
images_sync_wait (ImagesSync *sync)
{
  while (sync->result == NULL)
    g_main_context_iteration (sync->context, TRUE);
  return sync->result;
}

void
images_sync_clear (ImagesSync *sync)
{
  g_clear_object (&sync->result);
  /* Let the sources of finished runs (reads cancelled after a timeout) drop their refs. */
  while (g_main_context_iteration (sync->context, FALSE))
    ;
  for (guint i = 0; i < G_N_ELEMENTS (sync->signals); i++)
    g_clear_pointer (&sync->signals[i], source_drop);
  g_main_context_pop_thread_default (sync->context);
  g_clear_pointer (&sync->context, g_main_context_unref);
  g_clear_object (&sync->cancellable);
}

char *
images_qemu_img_run_sync (const char *qemu_img, const char *const *args, const ImagesFile *files,
                          guint n_files, guint timeout_ms, GError **error)
{
  ImagesSync sync;
  char *out;

  images_sync_init (&sync);
  images_qemu_img_run_async (qemu_img, args, files, n_files, timeout_ms, NULL, NULL, sync.cancellable,
                             images_sync_done, &sync);
  out = images_qemu_img_run_finish (images_sync_wait (&sync), error);
  images_sync_clear (&sync);
  return out;
}
