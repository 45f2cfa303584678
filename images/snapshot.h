/* snapshot.h: pure helpers for external snapshots, which the daemon takes over QMP: a new
 * qcow2 overlay per disk on top of the running image, all disks in one transaction so the
 * set is consistent across disks. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

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
 * {"actions": [{"type": "blockdev-snapshot-sync", "data": {...}}, ...]}.  n_disks >= 1. */
JsonObject *images_snapshot_transaction_args (const ImagesSnapshotDisk *disks, guint n_disks);

G_END_DECLS
