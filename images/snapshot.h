/* snapshot.h: external snapshots.  Taking one (over QMP, by the daemon) puts a new qcow2
 * overlay on top of each disk of a running guest, all disks in one `transaction` so the
 * set is consistent across disks: the layers under the overlay are then frozen and hold
 * the disks as they were at that instant; the overlay takes every later write.
 *
 * Here: tag names, overlay file names, the QMP arguments, and the offline work on a chain
 * (merging a layer into the one below, emptying a layer again) with qemu-img. */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

#include "images/images.h"

G_BEGIN_DECLS

#define IMAGES_SNAPSHOT_TAG_MAX 32

/* TRUE when tag may name a snapshot (letters, digits, '-', '_', '.'; 1..32; not '.' or '-'
 * first); else FALSE and out_problem (owned) says why: "starts with '.'". */
gboolean images_snapshot_tag_is_valid (const char *tag, char **out_problem);

/* The file of a snapshot overlay: IMAGE.TAG.qcow2 next to image, with a ".qcow2", ".raw" or
 * ".img" ending of image dropped first: /v/web.qcow2 + "pre-upgrade" -> /v/web.pre-upgrade.qcow2.
 * tag must be valid. */
char *images_snapshot_file_name (const char *image, const char *tag);

typedef struct
{
  const char *node_name;          /* the format node the guest's disk uses now ("d-root") */
  const char *snapshot_file;      /* the new overlay, created by QEMU */
  const char *snapshot_node_name; /* the new overlay's node name (< 32 characters) */
} ImagesSnapshotDisk;

/* The arguments of a QMP `transaction` taking a blockdev-snapshot-sync of each disk
 * (format qcow2, mode absolute-paths: QEMU creates the file over the current image), as
 * {"actions": [{"type": "blockdev-snapshot-sync", "data": {...}}, ...]}.  n_disks >= 1.
 * QEMU creates the files as its own user, in the image's folder, which that user usually
 * may not write: vmherdd uses images_snapshot_attach_args() instead. */
JsonObject *images_snapshot_transaction_args (const ImagesSnapshotDisk *disks, guint n_disks);

/* The arguments of a QMP `transaction` of one blockdev-snapshot per disk: overlays[i], a
 * node already added with blockdev-add and "backing": null, goes on top of nodes[i], every
 * disk at the same instant:
 * {"actions": [{"type": "blockdev-snapshot", "data": {"node": N, "overlay": O}}, ...]}.
 * This is what vmherdd uses: the daemon makes the overlay files itself (owner, mode, in a
 * folder QEMU may not write), and QEMU only opens them.  n >= 1. */
JsonObject *images_snapshot_attach_args (const char *const *nodes, const char *const *overlays, guint n);

/* Takes a snapshot point out of a chain, offline: `qemu-img commit -d` writes the clusters
 * of overlay (a qcow2 layer) into the file under it, backing; then, when above is not
 * NULL (the layer on overlay), `qemu-img rebase -u` makes above sit on backing
 * (backing_format) directly.  What every layer above backing shows is unchanged; backing
 * now also holds overlay's writes.  overlay itself is left for the caller to remove once
 * nothing names it.  No QEMU may have the files open (LOCKED).  timeout_ms bounds each
 * qemu-img run (0: no limit).  The callback fires once, from the main loop. */
void images_snapshot_merge_async (const char *qemu_img, const char *overlay, const char *above,
                                  const char *backing, const char *backing_format, guint timeout_ms,
                                  GCancellable *cancellable, GAsyncReadyCallback callback,
                                  gpointer user_data);

/* TRUE when merged; else IMAGES_ERROR_LOCKED, _NOT_FOUND, _NO_SPACE, _CORRUPT, _FORMAT,
 * _TIMEOUT, _TOOL or G_IO_ERROR_CANCELLED.  A failed commit leaves the chain's content as
 * it was (overlay still covers what was copied); a failed rebase leaves above on overlay. */
gboolean images_snapshot_merge_finish (GAsyncResult *result, GError **error);

/* Replaces overlay by an empty qcow2 layer on backing (backing_format), mode 0600, owned
 * by owner:group (IMAGES_OWNER_KEEP / _GROUP_KEEP: as created): what reverting to a
 * snapshot does to the layer that took the writes after it.  The new layer is made under
 * a temporary name next to overlay and renamed over it only once qemu-img succeeded, so a
 * failure leaves overlay as it was.  The callback fires once, from the main loop. */
void images_snapshot_reset_async (const char *qemu_img, const char *overlay, const char *backing,
                                  const char *backing_format, uid_t owner, gid_t group,
                                  guint timeout_ms, GCancellable *cancellable,
                                  GAsyncReadyCallback callback, gpointer user_data);

/* TRUE when overlay is empty on backing; else IMAGES_ERROR_NOT_FOUND (backing or the
 * folder), _NO_SPACE, _TIMEOUT, _TOOL or G_IO_ERROR_CANCELLED, and overlay is untouched. */
gboolean images_snapshot_reset_finish (GAsyncResult *result, GError **error);

G_END_DECLS
