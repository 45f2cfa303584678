/* qemu-img.h: run qemu-img without blocking the main loop, and turn its complaints into
 * IMAGES_ERROR codes whose messages name the file and the cause.
 *
 * Every run is a GSubprocess on the thread-default main context of the caller: its output
 * is read asynchronously, a timeout kills it (SIGKILL) and a GCancellable stops it.  Nothing
 * here waits for a child in the caller's thread except the *_sync helpers at the end, which
 * are for the command-line tool only (they run a private nested main loop). */
#pragma once

#include <gio/gio.h>

#include "images/images.h"

G_BEGIN_DECLS

/* A file an operation touches, so that errors can say which one is at fault:
 * "base image /x does not exist".  shown (NULL: path) is what messages print for it. */
typedef struct
{
  const char *path;
  const char *role;             /* "image", "base image", "source image", ... */
  const char *shown;
} ImagesFile;

/* Percent done (0..100) of a long qemu-img run, parsed from its -p output; called from the
 * main loop each time the value changes. */
typedef void (*ImagesProgressFunc) (double percent, gpointer user_data);

/* Runs `qemu_img ARGS...` (args NULL-terminated, without the program name), LC_ALL=C,
 * stdin from /dev/null.  files[0] is the subject of messages that name no file (a full
 * filesystem, a timeout); the array and its strings are copied.  timeout_ms 0: no limit.
 * progress (nullable) gets the "(12.34/100%)" values of `-p`.  The callback fires once,
 * from the main loop, never from inside this call. */
void images_qemu_img_run_async (const char *qemu_img, const char *const *args,
                                const ImagesFile *files, guint n_files, guint timeout_ms,
                                ImagesProgressFunc progress, gpointer progress_data,
                                GCancellable *cancellable, GAsyncReadyCallback callback,
                                gpointer user_data);

/* qemu-img's stdout (owned) when it exited with status 0; else NULL with IMAGES_ERROR_TIMEOUT
 * (killed after timeout_ms), G_IO_ERROR_CANCELLED, IMAGES_ERROR_TOOL (could not be started,
 * killed by a signal) or the code images_qemu_img_set_error() finds in its stderr. */
char *images_qemu_img_run_finish (GAsyncResult *result, GError **error);

/* Pure: sets error from what a failed qemu-img printed on stderr.  The file a message is
 * about is the one qemu-img names (matched against files; an unknown one is a backing file),
 * else files[0].  Codes: LOCKED, NO_SPACE, IS_DIRECTORY, NOT_FOUND, FORMAT, CORRUPT, and
 * TOOL for everything else (with qemu-img's own words). */
void images_qemu_img_set_error (const char *stderr_text, const ImagesFile *files, guint n_files,
                                GError **error);

/* Pure: the last complete "(12.34/100%)" in text, as 12.34.  FALSE when there is none. */
gboolean images_progress_parse (const char *text, double *out_percent);

/* Pure: "qcow2" and "raw", the formats images/ creates. */
gboolean images_format_is_supported (const char *format);

/* For the command-line tool's *_sync wrappers: a private main context, pushed as the
 * thread default from init to clear, iterated by wait until images_sync_done() ran.
 * SIGINT and SIGTERM while it is pushed cancel `cancellable` (pass it to the operation):
 * qemu-img is killed and partial files removed before the command-line tool exits. */
typedef struct
{
  GMainContext *context;
  GAsyncResult *result;
  GCancellable *cancellable;
  GSource *signals[2];
} ImagesSync;

void images_sync_init (ImagesSync *sync);
/* The GAsyncReadyCallback to pass, with the ImagesSync as user_data. */
void images_sync_done (GObject *source, GAsyncResult *result, gpointer user_data);
/* Iterates the private context until the operation finished; returns its result (borrowed). */
GAsyncResult *images_sync_wait (ImagesSync *sync);
void images_sync_clear (ImagesSync *sync);

/* Sync wrapper of images_qemu_img_run_async(), for the command-line tool. */
char *images_qemu_img_run_sync (const char *qemu_img, const char *const *args,
                                const ImagesFile *files, guint n_files, guint timeout_ms,
                                GError **error);

G_END_DECLS
