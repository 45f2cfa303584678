/* image-files.h: the file-system side of creating images (checks, placeholders, temporary
 * copies, renames), shared by overlay.c and image-create.c.  Short syscalls only. */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "images/images.h"

G_BEGIN_DECLS

/* (uid_t) -1 / (gid_t) -1: keep the owner or group we create files with. */
#define IMAGES_OWNER_KEEP ((uid_t) -1)
#define IMAGES_GROUP_KEEP ((gid_t) -1)

/* TRUE when path is an existing regular file; else NOT_FOUND ("base image /x does not
 * exist"), IS_DIRECTORY or FORMAT ("... is not a regular file"). */
gboolean images_check_source (const char *path, const char *role, GError **error);

/* Creates path empty with mode 0600 and O_EXCL, owned by owner:group when we are root, and
 * returns its fd.  Fails (-1) with EXISTS, IS_DIRECTORY, NOT_FOUND (the folder), NO_SPACE,
 * TOOL (anything else, with strerror). */
int images_create_placeholder (const char *path, const char *role, uid_t owner, gid_t group,
                               GError **error);

/* Creates an empty mode-0600 file next to target (".NAME.SUFFIX-XXXXXX") and returns its fd;
 * *out_path is set on success.  Errors as images_create_placeholder(). */
int images_create_temp (const char *target, const char *suffix, const char *role,
                        char **out_path, GError **error);

/* fchown (fd, owner, group) when we are root and either is not _KEEP. */
gboolean images_set_owner (int fd, const char *path, const char *role, uid_t owner, gid_t group,
                           GError **error);

/* rename (from, to), failing with EXISTS when to exists (RENAME_NOREPLACE) unless replace. */
gboolean images_rename (const char *from, const char *to, const char *role, gboolean replace,
                        GError **error);

/* QEMU's image locking (file-posix.c, since QEMU 2.10): a user of an image holds an OFD
 * read lock on byte 100 + n for each permission n it has (n = 1: write) and on byte 200 + n
 * for each one it does not share with others.  Takes our own "no other writer" lock
 * (byte 201) on fd, then fails with LOCKED when someone already writes (byte 101).  Keep
 * fd open as long as no QEMU may open the image for writing.  File systems without OFD
 * locks are let through, as QEMU's locking=auto does. */
gboolean images_lock_against_writers (int fd, const char *role, const char *path, GError **error);

/* Message for a failed syscall on a file, with the errno mapped to a code. */
void images_set_errno_error (int saved_errno, const char *action, const char *role, const char *path,
                             GError **error);

G_END_DECLS
