/* images.h: the images module's error domain, shared by every images/ file.
 *
 * images/ runs qemu-img (never in the caller's thread: see qemu-img.h) and turns what it
 * prints on failure into one of these codes with a message naming the file and the cause. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define IMAGES_ERROR (images_error_quark ())

typedef enum
{
  IMAGES_ERROR_NOT_FOUND,    /* an image, base or backing file (or its folder) does not exist */
  IMAGES_ERROR_FORMAT,       /* not in the declared format, or not a regular file */
  IMAGES_ERROR_CORRUPT,      /* qcow2 header or metadata damaged, or marked corrupt */
  IMAGES_ERROR_NO_SPACE,     /* the target's filesystem is full (ENOSPC, EDQUOT) */
  IMAGES_ERROR_IS_DIRECTORY, /* a path names a folder, not an image file */
  IMAGES_ERROR_LOCKED,       /* another process (a running QEMU) holds the image */
  IMAGES_ERROR_TOOL,         /* qemu-img could not run, or failed for another reason */
  IMAGES_ERROR_TIMEOUT,      /* qemu-img did not finish in time and was killed */
  IMAGES_ERROR_EXISTS,       /* the file to create is already there; nothing was replaced */
} ImagesError;

GQuark images_error_quark (void);

/* Short lower-case name of an error code ("no-space"), for logs and metrics. */
const char *images_error_to_string (ImagesError code);

G_END_DECLS
