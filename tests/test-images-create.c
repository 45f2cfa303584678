/* test-images-create.c: create, clone and flatten with the real qemu-img (and a real QEMU
 * under TCG holding an image): results, progress, owner and mode kept, and failures that
 * leave nothing behind: existing files, a full filesystem, a timeout, a locked image. */
#define _GNU_SOURCE /* F_OFD_GETLK */

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images/image-create.h"
#include "images/image-info.h"
#include "images/overlay.h"
#include "tests/test-util.h"

#define WAIT_MS 30000
#define TIMEOUT_MS 20000

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

/* Runs a setup command; fails the test when it fails. */
static void
run_tool (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
run_tool (const char *format, ...)
{
  g_autofree char *line = NULL, *out = NULL, *err = NULL;
  g_autoptr(GError) error = NULL;
  va_list ap;
  int status;

  va_start (ap, format);
  line = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_spawn_command_line_sync (line, &out, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed: %s%s", line, out, err);
}

static char *
file_sha256 (const char *path)
{
  g_autofree char *contents = NULL;
  gsize length;

  g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, length);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The names in dir, sorted, joined by spaces: proves no temporary file was left. */
static char *
dir_listing (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (char **) names->pdata);
}

static void
on_done (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static GAsyncResult *
wait_result (GAsyncResult **result, const char *what)
{
  g_assert_null (*result);      /* never inside the call */
  test_wait_until (*result != NULL, WAIT_MS, what);
  return *result;
}

static gboolean
do_create (const char *path, const char *format, guint64 size, gboolean preallocate, guint timeout_ms,
        GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  images_create_async (require_qemu_img (), path, format, size, preallocate, IMAGES_OWNER_KEEP,
                       IMAGES_GROUP_KEEP, timeout_ms, NULL, on_done, &result);
  return images_create_finish (wait_result (&result, "images_create_async()"), error);
}

typedef struct
{
  GArray *values;               /* double */
} Progress;

static void
on_progress (double percent, gpointer user_data)
{
  Progress *progress = user_data;

  g_array_append_val (progress->values, percent);
}

static gboolean
do_clone (const char *source, const char *target, const char *format, Progress *progress, GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  images_clone_async (require_qemu_img (), source, NULL, target, format, IMAGES_OWNER_KEEP,
                      IMAGES_GROUP_KEEP, TIMEOUT_MS, progress ? on_progress : NULL, progress, NULL,
                      on_done, &result);
  return images_clone_finish (wait_result (&result, "images_clone_async()"), error);
}

static gboolean
do_flatten (const char *image, Progress *progress, GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  images_flatten_async (require_qemu_img (), image, "qcow2", TIMEOUT_MS, progress ? on_progress : NULL,
                        progress, NULL, on_done, &result);
  return images_flatten_finish (wait_result (&result, "images_flatten_async()"), error);
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

/* ---- create ---- */

static void
test_create (void)
{
  g_autofree char *dir = NULL, *qcow2 = NULL, *raw = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;
  const ImagesInfo *info;
  struct stat st;

  if (require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  qcow2 = g_build_filename (dir, "new.qcow2", NULL);
  raw = g_build_filename (dir, "new.raw", NULL);

  g_assert_true (do_create (qcow2, "qcow2", 64 * 1024 * 1024, FALSE, TIMEOUT_MS, &error));
  g_assert_no_error (error);
  g_assert_cmpint (stat (qcow2, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
  chain = images_info_sync (require_qemu_img (), qcow2, "qcow2", TIMEOUT_MS, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (chain->images->len, ==, 1);
  info = chain->images->pdata[0];
  g_assert_cmpstr (info->format, ==, "qcow2");
  g_assert_cmpuint (info->virtual_size, ==, 64 * 1024 * 1024);

  /* Preallocated raw: every byte is on disk now. */
  g_assert_true (do_create (raw, "raw", 1024 * 1024, TRUE, TIMEOUT_MS, &error));
  g_assert_no_error (error);
  g_assert_cmpint (stat (raw, &st), ==, 0);
  g_assert_cmpint (st.st_size, ==, 1024 * 1024);
  g_assert_cmpint (st.st_blocks * 512, >=, 1024 * 1024);
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
}

static void
test_create_refused (void)
{
  g_autofree char *dir = NULL, *existing = NULL, *folder = NULL, *nowhere = NULL, *message = NULL;
  g_autofree char *contents = NULL;
  g_autoptr(GError) error = NULL;

  if (require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  existing = g_build_filename (dir, "data.raw", NULL);
  test_write_file (existing, "keep me");
  g_assert_false (do_create (existing, "raw", 1024 * 1024, FALSE, TIMEOUT_MS, &error));
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_EXISTS);
  message = g_strdup_printf ("image %s already exists (remove it first; it was not replaced)", existing);
  g_assert_cmpstr (error->message, ==, message);
  contents = test_read_file (existing);
  g_assert_cmpstr (contents, ==, "keep me");

  g_clear_error (&error);
  folder = g_build_filename (dir, "folder", NULL);
  g_assert_cmpint (mkdir (folder, 0755), ==, 0);
  g_assert_false (do_create (folder, "qcow2", 1024 * 1024, FALSE, TIMEOUT_MS, &error));
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_IS_DIRECTORY);
  g_free (message);
  message = g_strdup_printf ("image %s is a directory (name an image file)", folder);
  g_assert_cmpstr (error->message, ==, message);

  g_clear_error (&error);
  nowhere = g_build_filename (dir, "nowhere", "x.qcow2", NULL);
  g_assert_false (do_create (nowhere, "qcow2", 1024 * 1024, FALSE, TIMEOUT_MS, &error));
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_NOT_FOUND);
  g_free (message);
  message = g_strdup_printf ("cannot create image %s: folder %s/nowhere does not exist", nowhere, dir);
  g_assert_cmpstr (error->message, ==, message);
}

/* A fully allocated 1 GiB image on a 1 MiB filesystem. */
static void
test_create_no_space (void)
{
  g_autofree char *dir = NULL, *small = NULL, *image = NULL, *message = NULL, *listing = NULL;
  g_autoptr(GError) error = NULL;

  if (require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  if ((small = mount_small_tmpfs (dir)) == NULL)
    return;
  image = g_build_filename (small, "big.raw", NULL);
  g_assert_false (do_create (image, "raw", 1024 * 1024 * 1024, TRUE, TIMEOUT_MS, &error));
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_NO_SPACE);
  message = g_strdup_printf ("image %s: no space left on device (free space in %s)", image, small);
  g_assert_cmpstr (error->message, ==, message);
  listing = dir_listing (small);
  g_assert_cmpstr (listing, ==, "");
}

/* Writing 8 GiB of zeros takes far longer than 100 ms: killed, and the file removed. */
static void
test_create_timeout (void)
{
  g_autofree char *dir = NULL, *image = NULL, *message = NULL, *listing = NULL;
  g_autoptr(GError) error = NULL;

  if (require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  image = g_build_filename (dir, "slow.raw", NULL);
  g_assert_false (do_create (image, "raw", G_GUINT64_CONSTANT (8) << 30, TRUE, 100, &error));
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_TIMEOUT);
  message = g_strdup_printf ("qemu-img create on %s did not finish within 100 ms and was killed (is its "
                             "storage hanging?)", image);
  g_assert_cmpstr (error->message, ==, message);
  listing = dir_listing (dir);
  g_assert_cmpstr (listing, ==, "");
}

/* ---- clone ---- */

static void
test_clone (void)
{
  g_autofree char *dir = NULL, *source = NULL, *target = NULL, *listing = NULL, *before = NULL;
  g_autofree char *after = NULL;
  g_autoptr(GError) error = NULL;
  Progress progress = { g_array_new (FALSE, FALSE, sizeof (double)) };
  struct stat st;

  if (require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  source = g_build_filename (dir, "base.qcow2", NULL);
  target = g_build_filename (dir, "copy.raw", NULL);
  run_tool ("qemu-img create -q -f qcow2 %s 64M", source);
  run_tool ("qemu-io -f qcow2 -c 'write -P 0x5a 0 8M' -c 'write -P 0xa5 32M 8M' %s", source);
  before = file_sha256 (source);

  g_assert_true (do_clone (source, target, "raw", &progress, &error));
  g_assert_no_error (error);
  run_tool ("qemu-img compare -f qcow2 -F raw %s %s", source, target);
  after = file_sha256 (source);
  g_assert_cmpstr (after, ==, before);
  g_assert_cmpint (stat (target, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
  listing = dir_listing (dir);
  g_assert_cmpstr (listing, ==, "base.qcow2 copy.raw");

  /* qemu-img -p reports from 0 to 100, never going back; each read of its output gives
   * the latest value, so a loaded machine may see the first one later than 0, or only
   * 100. */
  g_assert_cmpuint (progress.values->len, >=, 1);
  g_assert_cmpfloat (g_array_index (progress.values, double, 0), >=, 0.0);
  g_assert_cmpfloat (g_array_index (progress.values, double, progress.values->len - 1), ==, 100.0);
  for (guint i = 1; i < progress.values->len; i++)
    g_assert_cmpfloat (g_array_index (progress.values, double, i), >, g_array_index (progress.values, double, i - 1));
  g_array_unref (progress.values);
}

static void
test_clone_refused (void)
{
  g_autofree char *dir = NULL, *source = NULL, *target = NULL, *missing = NULL, *message = NULL;
  g_autofree char *listing = NULL, *other = NULL;
  g_autoptr(GError) error = NULL;

  if (require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  source = g_build_filename (dir, "base.qcow2", NULL);
  target = g_build_filename (dir, "copy.qcow2", NULL);
  other = g_build_filename (dir, "other.qcow2", NULL);
  missing = g_build_filename (dir, "missing.qcow2", NULL);
  run_tool ("qemu-img create -q -f qcow2 %s 1M", source);
  test_write_file (target, "keep me");

  g_assert_false (do_clone (missing, other, "qcow2", NULL, &error));
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_NOT_FOUND);
  message = g_strdup_printf ("source image %s does not exist", missing);
  g_assert_cmpstr (error->message, ==, message);

  g_clear_error (&error);
  g_assert_false (do_clone (source, target, "qcow2", NULL, &error));
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_EXISTS);
  g_free (message);
  message = g_strdup_printf ("image %s already exists (remove it first; it was not replaced)", target);
  g_assert_cmpstr (error->message, ==, message);
  listing = dir_listing (dir);
  g_assert_cmpstr (listing, ==, "base.qcow2 copy.qcow2");
}

/* Converting 4 MiB of data into a 1 MiB filesystem. */
static void
test_clone_no_space (void)
{
  g_autofree char *dir = NULL, *small = NULL, *source = NULL, *target = NULL, *message = NULL;
  g_autofree char *listing = NULL;
  g_autoptr(GError) error = NULL;

  if (require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  if ((small = mount_small_tmpfs (dir)) == NULL)
    return;
  source = g_build_filename (dir, "base.qcow2", NULL);
  target = g_build_filename (small, "copy.qcow2", NULL);
  run_tool ("qemu-img create -q -f qcow2 %s 16M", source);
  run_tool ("qemu-io -f qcow2 -c 'write -P 0x5a 0 4M' %s", source);

  g_assert_false (do_clone (source, target, "qcow2", NULL, &error));
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_NO_SPACE);
  message = g_strdup_printf ("image %s: no space left on device (free space in %s)", target, small);
  g_assert_cmpstr (error->message, ==, message);
  listing = dir_listing (small);
  g_assert_cmpstr (listing, ==, "");
}

/* ---- flatten ---- */

/* base (data at 0) <- overlay (data at 16M), mode 0640, owned by nobody when root. */
static void
make_chain (const char *dir, char **out_base, char **out_overlay)
{
  g_autofree char *base = g_build_filename (dir, "base.qcow2", NULL);
  g_autofree char *overlay = g_build_filename (dir, "vm.qcow2", NULL);

  run_tool ("qemu-img create -q -f qcow2 %s 32M", base);
  run_tool ("qemu-io -f qcow2 -c 'write -P 0x11 0 2M' %s", base);
  run_tool ("qemu-img create -q -f qcow2 -b %s -F qcow2 %s", base, overlay);
  run_tool ("qemu-io -f qcow2 -c 'write -P 0x22 16M 2M' %s", overlay);
  *out_base = g_steal_pointer (&base);
  *out_overlay = g_steal_pointer (&overlay);
}

static void
test_flatten (void)
{
  g_autofree char *dir = NULL, *base = NULL, *overlay = NULL, *reference = NULL, *before = NULL;
  g_autofree char *after = NULL, *listing = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;
  Progress progress = { g_array_new (FALSE, FALSE, sizeof (double)) };
  struct passwd *nobody = getpwnam ("nobody");
  gboolean chown_it = geteuid () == 0 && nobody != NULL;
  struct stat st;

  if (require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  make_chain (dir, &base, &overlay);
  g_assert_cmpint (chmod (overlay, 0640), ==, 0);
  if (chown_it)
    g_assert_cmpint (chown (overlay, nobody->pw_uid, nobody->pw_gid), ==, 0);
  reference = g_build_filename (dir, "reference.raw", NULL);
  run_tool ("qemu-img convert -f qcow2 -O raw %s %s", overlay, reference);
  before = file_sha256 (base);

  g_assert_true (do_flatten (overlay, &progress, &error));
  g_assert_no_error (error);

  chain = images_info_sync (require_qemu_img (), overlay, "qcow2", TIMEOUT_MS, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (chain->images->len, ==, 1);
  g_assert_null (((ImagesInfo *) chain->images->pdata[0])->backing_filename);
  run_tool ("qemu-img compare -f qcow2 -F raw %s %s", overlay, reference);
  g_assert_cmpint (stat (overlay, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0640);
  if (chown_it)
    g_assert_cmpuint (st.st_uid, ==, nobody->pw_uid);
  after = file_sha256 (base);
  g_assert_cmpstr (after, ==, before);
  listing = dir_listing (dir);
  g_assert_cmpstr (listing, ==, "base.qcow2 reference.raw vm.qcow2");
  g_assert_cmpfloat (g_array_index (progress.values, double, progress.values->len - 1), ==, 100.0);
  g_array_unref (progress.values);
}

/* The overlay is on the small filesystem, its 2 MiB of data are not. */
static void
test_flatten_no_space (void)
{
  g_autofree char *dir = NULL, *small = NULL, *base = NULL, *overlay = NULL, *message = NULL;
  g_autofree char *before = NULL, *after = NULL, *listing = NULL;
  g_autoptr(GError) error = NULL;

  if (require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  if ((small = mount_small_tmpfs (dir)) == NULL)
    return;
  base = g_build_filename (dir, "base.qcow2", NULL);
  overlay = g_build_filename (small, "vm.qcow2", NULL);
  run_tool ("qemu-img create -q -f qcow2 %s 32M", base);
  run_tool ("qemu-io -f qcow2 -c 'write -P 0x11 0 4M' %s", base);
  run_tool ("qemu-img create -q -f qcow2 -b %s -F qcow2 %s", base, overlay);
  before = file_sha256 (overlay);

  g_assert_false (do_flatten (overlay, NULL, &error));
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_NO_SPACE);
  message = g_strdup_printf ("flattened copy of image %s: no space left on device (free space in %s)",
                             overlay, small);
  g_assert_cmpstr (error->message, ==, message);
  after = file_sha256 (overlay);
  g_assert_cmpstr (after, ==, before);
  listing = dir_listing (small);
  g_assert_cmpstr (listing, ==, "vm.qcow2");
}

static gboolean
has_writer (const char *path)
{
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 101, .l_len = 1 };
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  gboolean held;

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (fcntl (fd, F_OFD_GETLK, &fl), ==, 0);
  held = fl.l_type != F_UNLCK;
  close (fd);
  return held;
}

static void
stop_qemu (gpointer data)
{
  GSubprocess *qemu = data;

  g_subprocess_force_exit (qemu);
  g_subprocess_wait (qemu, NULL, NULL);
  g_object_unref (qemu);
}

/* A paused QEMU (as vmherdd starts it) writes the overlay and reads the base: flatten is
 * refused and changes nothing, while info and a second overlay on the same base work. */
static void
test_flatten_locked (void)
{
  const char *qemu = test_require_qemu ();
  g_autofree char *dir = NULL, *base = NULL, *overlay = NULL, *message = NULL, *before = NULL;
  g_autofree char *after = NULL, *listing = NULL, *second = NULL;
  g_autofree char *base_node = NULL, *overlay_node = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;
  GSubprocess *process;

  if (qemu == NULL || require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  make_chain (dir, &base, &overlay);
  base_node = g_strdup_printf ("driver=file,filename=%s,node-name=bf,read-only=on", base);
  overlay_node = g_strdup_printf ("driver=file,filename=%s,node-name=f", overlay);
  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error,
                              qemu, "-accel", "tcg", "-nodefaults", "-display", "none", "-S", "-m", "64",
                              "-blockdev", base_node,
                              "-blockdev", "driver=qcow2,file=bf,node-name=bd,read-only=on",
                              "-blockdev", overlay_node,
                              "-blockdev", "driver=qcow2,file=f,node-name=d,backing=bd",
                              "-device", "virtio-blk-pci,drive=d", NULL);
  g_assert_no_error (error);
  g_test_queue_destroy (stop_qemu, process);
  test_wait_until (has_writer (overlay), WAIT_MS, "QEMU to lock the overlay");
  before = file_sha256 (overlay);

  g_assert_false (do_flatten (overlay, NULL, &error));
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_LOCKED);
  message = g_strdup_printf ("image %s is in use by another process, probably a running QEMU (stop the "
                             "VM first)", overlay);
  g_assert_cmpstr (error->message, ==, message);
  after = file_sha256 (overlay);
  g_assert_cmpstr (after, ==, before);
  listing = dir_listing (dir);
  g_assert_cmpstr (listing, ==, "base.qcow2 vm.qcow2");

  /* Reading metadata (-U) and new overlays on the shared base still work. */
  g_clear_error (&error);
  chain = images_info_sync (require_qemu_img (), overlay, "qcow2", TIMEOUT_MS, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (chain->images->len, ==, 2);
  second = g_build_filename (dir, "vm2.qcow2", NULL);
  g_assert_true (images_overlay_create_sync (require_qemu_img (), second, base, "qcow2", IMAGES_OWNER_KEEP,
                                             IMAGES_GROUP_KEEP, TIMEOUT_MS, &error));
  g_assert_no_error (error);
}

/* While flatten holds its lock, a QEMU that wants to write the image cannot start. */
static void
test_lock_keeps_qemu_out (void)
{
  const char *qemu = test_require_qemu ();
  g_autofree char *dir = NULL, *base = NULL, *overlay = NULL, *file_node = NULL, *err = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) process = NULL;
  int fd;

  if (qemu == NULL || require_qemu_img () == NULL)
    return;
  dir = test_tmpdir ();
  make_chain (dir, &base, &overlay);
  fd = open (overlay, O_RDONLY | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  g_assert_true (images_lock_against_writers (fd, "image", overlay, &error));
  g_assert_no_error (error);

  file_node = g_strdup_printf ("driver=file,filename=%s,node-name=f", overlay);
  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error,
                              qemu, "-accel", "tcg", "-nodefaults", "-display", "none", "-S", "-m", "64",
                              "-blockdev", file_node, "-blockdev", "driver=qcow2,file=f,node-name=d",
                              "-device", "virtio-blk-pci,drive=d", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (process, NULL, NULL, NULL, &err, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 1);
  g_assert_nonnull (strstr (err, "Failed to get \"write\" lock"));
  close (fd);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/images/create/create", test_create);
  g_test_add_func ("/images/create/refused", test_create_refused);
  g_test_add_func ("/images/create/no-space", test_create_no_space);
  g_test_add_func ("/images/create/timeout", test_create_timeout);
  g_test_add_func ("/images/clone/clone", test_clone);
  g_test_add_func ("/images/clone/refused", test_clone_refused);
  g_test_add_func ("/images/clone/no-space", test_clone_no_space);
  g_test_add_func ("/images/flatten/flatten", test_flatten);
  g_test_add_func ("/images/flatten/no-space", test_flatten_no_space);
  g_test_add_func ("/images/flatten/locked", test_flatten_locked);
  g_test_add_func ("/images/flatten/lock-keeps-qemu-out", test_lock_keeps_qemu_out);
  return g_test_run ();
}
