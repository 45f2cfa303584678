/* test-images-overlay.c: qcow2 overlays over base images with the real qemu-img: owner and
 * mode, the base never written, and every bad input with its exact message (missing base,
 * wrong format, directories, a damaged header, a full filesystem, a timeout). */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images/image-info.h"
#include "images/overlay.h"
#include "tests/test-util.h"

#define WAIT_MS 20000
#define TIMEOUT_MS 10000

static const char *
require_qemu_img (void)
{
  static char *qemu_img;

  if (qemu_img == NULL)
    qemu_img = g_find_program_in_path ("qemu-img");
  if (qemu_img == NULL)
    test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "qemu-img is not installed (apt-get install qemu-utils)");
  return qemu_img;
}

/* Runs a setup command; fails the test when it fails.  Returns its stdout. */
static char *
run_tool (const char *line)
{
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  g_spawn_command_line_sync (line, &out, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed: %s", line, err);
  return g_steal_pointer (&out);
}

static char *
image_in (const char *dir, const char *name, const char *format, const char *size)
{
  char *path = g_build_filename (dir, name, NULL);
  g_autofree char *line = g_strdup_printf ("qemu-img create -q -f %s %s %s", format, path, size);

  g_free (run_tool (line));
  return path;
}

static char *
file_sha256 (const char *path)
{
  g_autofree char *contents = NULL;
  gsize length;

  g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, length);
}

static void
on_done (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static gboolean
overlay_create (const char *qemu_img, const char *image, const char *base, const char *base_format,
                uid_t owner, gid_t group, guint timeout_ms, GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  images_overlay_create_async (qemu_img, image, base, base_format, owner, group, timeout_ms, NULL,
                               on_done, &result);
  g_assert_null (result);       /* the callback never runs inside the call */
  test_wait_until (result != NULL, WAIT_MS, "images_overlay_create_async()");
  return images_overlay_create_finish (result, error);
}

/* Creating overlay on base fails with code and exactly message, and leaves no image. */
static void
assert_overlay_fails (const char *qemu_img, const char *image, const char *base, const char *base_format,
                      guint timeout_ms, ImagesError code, const char *message)
{
  g_autoptr(GError) error = NULL;
  gboolean existed = g_file_test (image, G_FILE_TEST_EXISTS);

  g_assert_false (overlay_create (qemu_img, image, base, base_format, IMAGES_OWNER_KEEP, IMAGES_GROUP_KEEP,
                                  timeout_ms, &error));
  g_assert_error (error, IMAGES_ERROR, (int) code);
  g_assert_cmpstr (error->message, ==, message);
  g_assert_cmpint (g_file_test (image, G_FILE_TEST_EXISTS), ==, existed);
}

/* The overlay is qcow2 on the base (absolute path, declared format), mode 0600, owned by
 * the given user when we are root; writes land in the overlay and the base's bytes stay. */
static void
test_overlay_created (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *base = NULL, *image = NULL, *qemu_io = NULL, *before = NULL;
  g_autofree char *after = NULL, *line = NULL, *out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;
  const ImagesInfo *top;
  struct passwd *nobody = getpwnam ("nobody");
  uid_t owner = geteuid () == 0 && nobody != NULL ? nobody->pw_uid : IMAGES_OWNER_KEEP;
  gid_t group = geteuid () == 0 && nobody != NULL ? nobody->pw_gid : IMAGES_GROUP_KEEP;
  struct stat st;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  base = image_in (dir, "base.qcow2", "qcow2", "64M");
  image = g_build_filename (dir, "vm.qcow2", NULL);
  qemu_io = g_find_program_in_path ("qemu-io");
  if (qemu_io != NULL)
    {
      line = g_strdup_printf ("%s -f qcow2 -c 'write -P 0xab 0 1M' %s", qemu_io, base);
      out = run_tool (line);
    }
  before = file_sha256 (base);

  g_assert_true (overlay_create (qemu_img, image, base, "qcow2", owner, group, TIMEOUT_MS, &error));
  g_assert_no_error (error);

  g_assert_cmpint (stat (image, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
  if (geteuid () == 0 && nobody != NULL)
    {
      g_assert_cmpuint (st.st_uid, ==, nobody->pw_uid);
      g_assert_cmpuint (st.st_gid, ==, nobody->pw_gid);
    }
  else
    g_assert_cmpuint (st.st_uid, ==, geteuid ());

  chain = images_info_sync (qemu_img, image, "qcow2", TIMEOUT_MS, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (chain->images->len, ==, 2);
  top = chain->images->pdata[0];
  g_assert_cmpstr (top->format, ==, "qcow2");
  g_assert_cmpuint (top->virtual_size, ==, 64 * 1024 * 1024);
  g_assert_cmpstr (top->backing_filename, ==, base);
  g_assert_cmpstr (top->backing_format, ==, "qcow2");

  /* Write through the overlay: the guest's view changes, the base does not. */
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&line, g_free);
  if (qemu_io != NULL)
    {
      line = g_strdup_printf ("%s -f qcow2 -c 'write -P 0xcd 0 64k' -c 'read -P 0xcd 0 64k' "
                              "-c 'read -P 0xab 64k 64k' %s", qemu_io, image);
      out = run_tool (line);
      g_assert_null (strstr (out, "Pattern verification failed"));
    }
  else
    {
      /* Without qemu-io: a full read of the chain through the overlay. */
      g_autofree char *copy = g_build_filename (dir, "copy.raw", NULL);
      line = g_strdup_printf ("%s convert -f qcow2 -O raw %s %s", qemu_img, image, copy);
      out = run_tool (line);
    }
  after = file_sha256 (base);
  g_assert_cmpstr (after, ==, before);
}

/* A relative base is recorded as an absolute path: the overlay must work from anywhere. */
static void
test_overlay_relative_base (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *base = NULL, *image = NULL, *cwd = g_get_current_dir ();
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  base = image_in (dir, "base.qcow2", "qcow2", "1M");
  image = g_build_filename (dir, "vm.qcow2", NULL);
  g_assert_cmpint (chdir (dir), ==, 0);
  g_assert_true (overlay_create (qemu_img, image, "base.qcow2", "qcow2", IMAGES_OWNER_KEEP, IMAGES_GROUP_KEEP,
                                 TIMEOUT_MS, &error));
  g_assert_cmpint (chdir (cwd), ==, 0);
  g_assert_no_error (error);
  chain = images_info_sync (qemu_img, image, "qcow2", TIMEOUT_MS, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (((ImagesInfo *) chain->images->pdata[0])->backing_filename, ==, base);
}

static void
test_overlay_base_missing (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *base = NULL, *image = NULL, *message = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  base = g_build_filename (dir, "missing.qcow2", NULL);
  image = g_build_filename (dir, "vm.qcow2", NULL);
  message = g_strdup_printf ("base image %s does not exist", base);
  assert_overlay_fails (qemu_img, image, base, "qcow2", TIMEOUT_MS, IMAGES_ERROR_NOT_FOUND, message);
}

static void
test_overlay_base_format_mismatch (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *raw = NULL, *qcow2 = NULL, *image = NULL, *message = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  raw = image_in (dir, "base.raw", "raw", "1M");
  qcow2 = image_in (dir, "base.qcow2", "qcow2", "1M");
  image = g_build_filename (dir, "vm.qcow2", NULL);

  message = g_strdup_printf ("base %s is raw, not qcow2 as declared (set base-format = raw, or if it is "
                             "qcow2, its header is damaged)", raw);
  assert_overlay_fails (qemu_img, image, raw, "qcow2", TIMEOUT_MS, IMAGES_ERROR_FORMAT, message);
  g_free (message);
  message = g_strdup_printf ("base %s is qcow2, not raw as declared (set base-format = qcow2)", qcow2);
  assert_overlay_fails (qemu_img, image, qcow2, "raw", TIMEOUT_MS, IMAGES_ERROR_FORMAT, message);
}

static void
test_overlay_directories (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *base = NULL, *image = NULL, *message = NULL, *nowhere = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  base = image_in (dir, "base.qcow2", "qcow2", "1M");
  image = g_build_filename (dir, "vm.qcow2", NULL);
  g_assert_cmpint (mkdir (image, 0755), ==, 0);

  message = g_strdup_printf ("image %s is a directory (name an image file)", image);
  assert_overlay_fails (qemu_img, image, base, "qcow2", TIMEOUT_MS, IMAGES_ERROR_IS_DIRECTORY, message);
  g_free (message);
  message = g_strdup_printf ("base image %s is a directory (name an image file)", dir);
  assert_overlay_fails (qemu_img, image, dir, "qcow2", TIMEOUT_MS, IMAGES_ERROR_IS_DIRECTORY, message);

  nowhere = g_build_filename (dir, "no-such-folder", "vm.qcow2", NULL);
  g_free (message);
  message = g_strdup_printf ("folder %s/no-such-folder of image %s does not exist", dir, nowhere);
  assert_overlay_fails (qemu_img, nowhere, base, "qcow2", TIMEOUT_MS, IMAGES_ERROR_NOT_FOUND, message);
}

/* An overlay is never made over an existing image: that would drop the guest's data. */
static void
test_overlay_exists (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *base = NULL, *image = NULL, *message = NULL, *contents = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  base = image_in (dir, "base.qcow2", "qcow2", "1M");
  image = g_build_filename (dir, "vm.qcow2", NULL);
  test_write_file (image, "the guest's data");
  message = g_strdup_printf ("image %s already exists (remove it first; it was not replaced)", image);
  assert_overlay_fails (qemu_img, image, base, "qcow2", TIMEOUT_MS, IMAGES_ERROR_EXISTS, message);
  contents = test_read_file (image);
  g_assert_cmpstr (contents, ==, "the guest's data");
}

static void
overwrite (const char *path, off_t offset, const void *bytes, gsize n)
{
  int fd = open (path, O_WRONLY);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (pwrite (fd, bytes, n, offset), ==, (gssize) n);
  g_assert_cmpint (close (fd), ==, 0);
}

static void
test_overlay_corrupt_base (void)
{
  const char *qemu_img = require_qemu_img ();
  static const guchar version9[] = { 0, 0, 0, 9 };
  g_autofree char *dir = NULL, *bad_version = NULL, *bad_magic = NULL, *image = NULL, *message = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  bad_version = image_in (dir, "version.qcow2", "qcow2", "1M");
  bad_magic = image_in (dir, "magic.qcow2", "qcow2", "1M");
  overwrite (bad_version, 4, version9, sizeof version9);   /* header: magic, then version */
  overwrite (bad_magic, 0, "XXXX", 4);
  image = g_build_filename (dir, "vm.qcow2", NULL);

  message = g_strdup_printf ("base image %s is damaged: Unsupported qcow2 version 9 (inspect it with "
                             "qemu-img check)", bad_version);
  assert_overlay_fails (qemu_img, image, bad_version, "qcow2", TIMEOUT_MS, IMAGES_ERROR_CORRUPT, message);
  g_free (message);
  /* Without its magic, qemu-img sees raw bytes: the message says both possibilities. */
  message = g_strdup_printf ("base %s is raw, not qcow2 as declared (set base-format = raw, or if it is "
                             "qcow2, its header is damaged)", bad_magic);
  assert_overlay_fails (qemu_img, image, bad_magic, "qcow2", TIMEOUT_MS, IMAGES_ERROR_FORMAT, message);
}

static void
unmount_tmpfs (gpointer path)
{
  if (umount2 (path, MNT_DETACH) < 0)
    g_error ("cannot unmount %s: %s", (char *) path, g_strerror (errno));
  g_free (path);
}

/* A 1 MiB tmpfs at DIR/small, unmounted at the end of the test (before DIR is removed);
 * NULL after a skip when we may not mount. */
static char *
mount_small_tmpfs (const char *dir)
{
  g_autofree char *small = g_build_filename (dir, "small", NULL);

  g_assert_cmpint (mkdir (small, 0755), ==, 0);
  if (mount ("tmpfs", small, "tmpfs", MS_NOSUID | MS_NODEV, "size=1M") < 0)
    {
      g_autofree char *reason = g_strdup_printf ("cannot mount a tmpfs on %s: %s (run as root)", small,
                                                 g_strerror (errno));
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", reason);
      return NULL;
    }
  g_test_queue_destroy (unmount_tmpfs, g_strdup (small));
  return g_steal_pointer (&small);
}

/* Fills the filesystem of dir to the last byte. */
static void
fill_up (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, "filler", NULL);
  static const char block[4096];
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

  g_assert_cmpint (fd, >=, 0);
  while (write (fd, block, sizeof block) > 0)
    ;
  g_assert_cmpint (errno, ==, ENOSPC);
  close (fd);
}

static void
test_overlay_no_space (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *small = NULL, *base = NULL, *image = NULL, *message = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  small = mount_small_tmpfs (dir);
  if (small == NULL)
    return;
  base = image_in (dir, "base.qcow2", "qcow2", "64M");
  image = g_build_filename (small, "vm.qcow2", NULL);
  fill_up (small);
  message = g_strdup_printf ("image %s: no space left on device (free space in %s)", image, small);
  assert_overlay_fails (qemu_img, image, base, "qcow2", TIMEOUT_MS, IMAGES_ERROR_NO_SPACE, message);
}

/* 1 ms is far less than qemu-img needs to start: the run is killed, nothing is left. */
static void
test_overlay_timeout (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *base = NULL, *image = NULL, *message = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  base = image_in (dir, "base.qcow2", "qcow2", "1M");
  image = g_build_filename (dir, "vm.qcow2", NULL);
  message = g_strdup_printf ("qemu-img info on %s did not finish within 1 ms and was killed (is its "
                             "storage hanging?)", base);
  assert_overlay_fails (qemu_img, image, base, "qcow2", 1, IMAGES_ERROR_TIMEOUT, message);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/images/overlay/created", test_overlay_created);
  g_test_add_func ("/images/overlay/relative-base", test_overlay_relative_base);
  g_test_add_func ("/images/overlay/base-missing", test_overlay_base_missing);
  g_test_add_func ("/images/overlay/base-format-mismatch", test_overlay_base_format_mismatch);
  g_test_add_func ("/images/overlay/directories", test_overlay_directories);
  g_test_add_func ("/images/overlay/exists", test_overlay_exists);
  g_test_add_func ("/images/overlay/corrupt-base", test_overlay_corrupt_base);
  g_test_add_func ("/images/overlay/no-space", test_overlay_no_space);
  g_test_add_func ("/images/overlay/timeout", test_overlay_timeout);
  return g_test_run ();
}
