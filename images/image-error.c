/* image-error.c: the IMAGES_ERROR domain. */
#define G_LOG_DOMAIN "vmherd-images"

#include "images/images.h"

G_DEFINE_QUARK (vmherd-images-error-quark, images_error)

static const char *const images_error_names[] = {
  [IMAGES_ERROR_NOT_FOUND] = "not-found",
  [IMAGES_ERROR_FORMAT] = "format",
  [IMAGES_ERROR_CORRUPT] = "corrupt",
  [IMAGES_ERROR_NO_SPACE] = "no-space",
  [IMAGES_ERROR_IS_DIRECTORY] = "is-directory",
  [IMAGES_ERROR_LOCKED] = "locked",
  [IMAGES_ERROR_TOOL] = "tool",
  [IMAGES_ERROR_TIMEOUT] = "timeout",
  [IMAGES_ERROR_EXISTS] = "exists",
};

const char *
images_error_to_string (ImagesError code)
{
  if ((guint) code >= G_N_ELEMENTS (images_error_names))
    return "unknown";
  return images_error_names[code];
}
