/* image-files.c: checks, placeholders, temporary files and renames for new images. */
#define _GNU_SOURCE /* renameat2 (), RENAME_NOREPLACE */
#define G_LOG_DOMAIN "vmherd-images"

#include "images/image-files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

void
images_set_errno_error (int saved_errno, const char *action, const char *role, const char *path,
                        GError **error)
{
  g_autofree char *folder = g_path_get_dirname (path);

  switch (saved_errno)
    {
    case ENOENT:
    case ENOTDIR:
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_NOT_FOUND, "cannot %s %s %s: folder %s does not exist",
                   action, role, path, folder);
      break;
    case EEXIST:
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_EXISTS,
                   "%s %s already exists (remove it first; it was not replaced)", role, path);
      break;
    case EISDIR:
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_IS_DIRECTORY, "%s %s is a directory (name an image file)",
                   role, path);
      break;
    case ENOSPC:
    case EDQUOT:
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_NO_SPACE,
                   "%s %s: no space left on device (free space in %s)", role, path, folder);
      break;
    default:
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL, "cannot %s %s %s: %s", action, role, path,
                   g_strerror (saved_errno));
    }
}

gboolean
images_check_source (const char *path, const char *role, GError **error)
{
  struct stat st;

  if (stat (path, &st) < 0)
    {
      int saved_errno = errno;

      if (saved_errno == ENOENT || saved_errno == ENOTDIR)
        g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_NOT_FOUND, "%s %s does not exist", role, path);
      else
        images_set_errno_error (saved_errno, "read", role, path, error);
      return FALSE;
    }
  if (S_ISDIR (st.st_mode))
    {
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_IS_DIRECTORY, "%s %s is a directory (name an image file)",
                   role, path);
      return FALSE;
    }
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_FORMAT, "%s %s is not a regular file (name an image file)",
                   role, path);
      return FALSE;
    }
  return TRUE;
}

gboolean
images_set_owner (int fd, const char *path, const char *role, uid_t owner, gid_t group, GError **error)
{
  if (geteuid () != 0 || (owner == IMAGES_OWNER_KEEP && group == IMAGES_GROUP_KEEP))
    return TRUE;
  if (fchown (fd, owner, group) < 0)
    {
      images_set_errno_error (errno, "change the owner of", role, path, error);
      return FALSE;
    }
  return TRUE;
}

int
images_create_placeholder (const char *path, const char *role, uid_t owner, gid_t group, GError **error)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);

  if (fd < 0)
    {
      int saved_errno = errno;

      if (saved_errno == EEXIST && g_file_test (path, G_FILE_TEST_IS_DIR))
        saved_errno = EISDIR;
      images_set_errno_error (saved_errno, "create", role, path, error);
      return -1;
    }
  if (!images_set_owner (fd, path, role, owner, group, error))
    {
      close (fd);
      g_unlink (path);
      return -1;
    }
  return fd;
}

int
images_create_temp (const char *target, const char *suffix, const char *role, char **out_path,
                    GError **error)
{
  g_autofree char *folder = g_path_get_dirname (target);
  g_autofree char *name = g_path_get_basename (target);
  g_autofree char *file = g_strdup_printf (".%s.%s-XXXXXX", name, suffix);
  g_autofree char *path = g_build_filename (folder, file, NULL);
  int fd = g_mkstemp_full (path, O_RDWR | O_CLOEXEC, 0600);

  if (fd < 0)
    {
      images_set_errno_error (errno, "create a temporary file for", role, target, error);
      return -1;
    }
  *out_path = g_steal_pointer (&path);
  return fd;
}

gboolean
images_rename (const char *from, const char *to, const char *role, gboolean replace, GError **error)
{
  int rc = replace ? rename (from, to) : renameat2 (AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);

  if (rc < 0)
    {
      int saved_errno = errno;

      if (saved_errno == EEXIST && g_file_test (to, G_FILE_TEST_IS_DIR))
        saved_errno = EISDIR;
      images_set_errno_error (saved_errno, "rename the new file to", role, to, error);
      return FALSE;
    }
  return TRUE;
}

#define QEMU_LOCK_PERM_WRITE 101      /* RAW_LOCK_PERM_BASE + BLK_PERM_WRITE's bit */
#define QEMU_LOCK_SHARED_WRITE 201    /* RAW_LOCK_SHARED_BASE + the same bit */

static int
ofd_lock (int fd, int command, short type, off_t byte, struct flock *out)
{
  struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
  int rc = fcntl (fd, command, &fl);

  if (out != NULL)
    *out = fl;
  return rc;
}

gboolean
images_lock_against_writers (int fd, const char *role, const char *path, GError **error)
{
  struct flock held;

  if (ofd_lock (fd, F_OFD_SETLK, F_RDLCK, QEMU_LOCK_SHARED_WRITE, NULL) < 0)
    {
      int saved_errno = errno;

      if (saved_errno == EAGAIN || saved_errno == EACCES)
        {
          g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_LOCKED,
                       "%s %s is in use by another process, probably a running QEMU (stop the VM first)",
                       role, path);
          return FALSE;
        }
      g_debug ("no OFD locks on %s (%s), going on without", path, g_strerror (saved_errno));
      return TRUE;
    }
  if (ofd_lock (fd, F_OFD_GETLK, F_WRLCK, QEMU_LOCK_PERM_WRITE, &held) == 0 && held.l_type != F_UNLCK)
    {
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_LOCKED,
                   "%s %s is in use by another process, probably a running QEMU (stop the VM first)",
                   role, path);
      return FALSE;
    }
  return TRUE;
}
