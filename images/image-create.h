/* image-create.h: new images (create), copies (clone) and standalone images made from an
 * overlay chain (flatten), all with qemu-img on the main loop.
 *
 * A file is only ever created new: create reserves the name with O_EXCL, clone and flatten
 * write a temporary file next to the target (".NAME.clone-XXXXXX") and rename it into place
 * only when qemu-img succeeded, so a failure, a timeout or a full disk leaves the old state
 * (nothing, or the untouched overlay) and no half-written image. */
#pragma once

#include <gio/gio.h>
#include <sys/types.h>

#include "images/images.h"
#include "images/image-files.h"
#include "images/qemu-img.h"

G_BEGIN_DECLS

/* `qemu-img create -f FORMAT PATH SIZE` (format "qcow2" or "raw"); preallocate allocates
 * every byte now (-o preallocation=full), so a full filesystem shows here and not later in
 * the guest.  Mode 0600, owned by owner:group when we are root (_KEEP: as created). */
void images_create_async (const char *qemu_img, const char *path, const char *format, guint64 size,
                          gboolean preallocate, uid_t owner, gid_t group, guint timeout_ms,
                          GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);

/* TRUE when path exists; else IMAGES_ERROR_EXISTS (never replaced), _IS_DIRECTORY,
 * _NOT_FOUND (its folder), _NO_SPACE, _TIMEOUT, _TOOL or G_IO_ERROR_CANCELLED. */
gboolean images_create_finish (GAsyncResult *result, GError **error);

/* `qemu-img convert -p -O target_format SOURCE TARGET`: a standalone copy of source and
 * of everything under it.  source_format NULL lets qemu-img probe (only for files no guest
 * writes).  A source held by a running QEMU fails with LOCKED (a copy would be torn).
 * progress (nullable) is called from the main loop as the copy advances. */
void images_clone_async (const char *qemu_img, const char *source, const char *source_format,
                         const char *target, const char *target_format, uid_t owner, gid_t group,
                         guint timeout_ms, ImagesProgressFunc progress, gpointer progress_data,
                         GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);

/* TRUE when target exists; else as images_create_finish(), plus NOT_FOUND/FORMAT/CORRUPT
 * for the source and LOCKED. */
gboolean images_clone_finish (GAsyncResult *result, GError **error);

/* Replaces image (an overlay, in format) by a standalone copy of its whole chain, with the
 * same owner and mode.  While it runs, image is locked the way QEMU locks it (no QEMU can
 * open it for writing), and an image a QEMU already writes is refused with LOCKED. */
void images_flatten_async (const char *qemu_img, const char *image, const char *format,
                           guint timeout_ms, ImagesProgressFunc progress, gpointer progress_data,
                           GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);

/* TRUE when image is standalone; else IMAGES_ERROR_LOCKED, _NOT_FOUND, _NO_SPACE, _CORRUPT,
 * _FORMAT, _TIMEOUT, _TOOL or G_IO_ERROR_CANCELLED, and image is as it was. */
gboolean images_flatten_finish (GAsyncResult *result, GError **error);

/* For the command-line tool: the same, in a private nested main loop (progress still
 * called, from that loop). */
gboolean images_create_sync (const char *qemu_img, const char *path, const char *format, guint64 size,
                             gboolean preallocate, uid_t owner, gid_t group, guint timeout_ms,
                             GError **error);
gboolean images_clone_sync (const char *qemu_img, const char *source, const char *source_format,
                            const char *target, const char *target_format, uid_t owner, gid_t group,
                            guint timeout_ms, ImagesProgressFunc progress, gpointer progress_data,
                            GError **error);
gboolean images_flatten_sync (const char *qemu_img, const char *image, const char *format,
                              guint timeout_ms, ImagesProgressFunc progress, gpointer progress_data,
                              GError **error);

G_END_DECLS
