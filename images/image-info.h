/* image-info.h: what `qemu-img info --output=json --backing-chain` says about an image
 * and every file under it, as structs. */
#pragma once

#include <gio/gio.h>

#include "images/images.h"

G_BEGIN_DECLS

/* One element of a chain: the image itself, then its backing file, and so on. */
typedef struct
{
  char *filename;               /* as qemu-img names it */
  char *format;                 /* "qcow2", "raw", ... */
  guint64 virtual_size;         /* bytes the guest sees */
  gint64 actual_size;           /* bytes allocated on the host; -1: qemu-img did not say */
  char *backing_filename;       /* as written in the image, or NULL */
  char *full_backing_filename;  /* resolved (relative names made absolute), or NULL */
  char *backing_format;         /* NULL when the image does not record it */
  gboolean dirty;               /* "dirty-flag": not closed cleanly (lazy refcounts) */
  gboolean corrupt;             /* qcow2 "corrupt" bit: QEMU refuses to write it */
} ImagesInfo;

void images_info_free (ImagesInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ImagesInfo, images_info_free)

typedef struct
{
  GPtrArray *images;            /* ImagesInfo, the image first; never empty */
  char *json;                   /* qemu-img's output, as it printed it */
} ImagesChain;

void images_chain_free (ImagesChain *chain);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ImagesChain, images_chain_free)

/* Pure: parses qemu-img info's JSON (an array with --backing-chain, else one object).
 * path names the image in messages.  Fails with IMAGES_ERROR_TOOL when the text is not
 * what qemu-img prints ("qemu-img info printed unexpected JSON for image /x: ..."). */
ImagesChain *images_chain_parse (const char *json, const char *path, GError **error);

/* Runs `qemu-img info --output=json --backing-chain -U [-f FORMAT] PATH`.  -U (force-share)
 * reads the metadata of an image a running QEMU holds; format NULL lets qemu-img probe
 * (do that only for images no guest writes).  timeout_ms 0: no limit. */
void images_info_async (const char *qemu_img, const char *path, const char *format,
                        guint timeout_ms, GCancellable *cancellable, GAsyncReadyCallback callback,
                        gpointer user_data);

/* The chain (owned), or NULL with IMAGES_ERROR_NOT_FOUND (the image or a backing file),
 * _FORMAT, _CORRUPT, _IS_DIRECTORY, _TIMEOUT, _TOOL, or G_IO_ERROR_CANCELLED. */
ImagesChain *images_info_finish (GAsyncResult *result, GError **error);

/* For the command-line tool: the same, in a private nested main loop. */
ImagesChain *images_info_sync (const char *qemu_img, const char *path, const char *format,
                               guint timeout_ms, GError **error);

G_END_DECLS
