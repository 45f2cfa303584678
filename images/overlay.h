/* overlay.h: a VM's qcow2 overlay over a shared base image.
 *
 * The base is only read (its format checked with qemu-img info -U, its size taken by
 * qemu-img create); it is never opened for writing, so any number of running guests may
 * use it while an overlay is made. */
#pragma once

#include <gio/gio.h>
#include <sys/types.h>

#include "images/images.h"
#include "images/image-files.h"

G_BEGIN_DECLS

/* Creates image as `qemu-img create -f qcow2 -b BASE -F base_format IMAGE`, mode 0600 and,
 * when we are root, owned by owner:group (IMAGES_OWNER_KEEP / IMAGES_GROUP_KEEP: leave as
 * created).  A relative base is made absolute first, so the overlay names it from anywhere.
 * timeout_ms bounds each of the two qemu-img runs (0: no limit).  On failure nothing is
 * left behind: the new file is removed.  The callback fires once, from the main loop. */
void images_overlay_create_async (const char *qemu_img, const char *image, const char *base,
                                  const char *base_format, uid_t owner, gid_t group, guint timeout_ms,
                                  GCancellable *cancellable, GAsyncReadyCallback callback,
                                  gpointer user_data);

/* TRUE when the overlay exists; else IMAGES_ERROR_NOT_FOUND (the base, a backing file or
 * image's folder), _IS_DIRECTORY, _EXISTS (image is already there: never replaced), _FORMAT
 * (the base is not a regular file, or not in base_format: "base /x is raw, not qcow2 as
 * declared (set base-format = raw)"), _CORRUPT, _NO_SPACE, _TIMEOUT, _TOOL, or
 * G_IO_ERROR_CANCELLED. */
gboolean images_overlay_create_finish (GAsyncResult *result, GError **error);

/* For the command-line tool: the same, in a private nested main loop. */
gboolean images_overlay_create_sync (const char *qemu_img, const char *image, const char *base,
                                     const char *base_format, uid_t owner, gid_t group,
                                     guint timeout_ms, GError **error);

G_END_DECLS
