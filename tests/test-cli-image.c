/* test-cli-image.c: `vmherd image info|create|clone|flatten` as an operator runs them
 * (the built binary, real qemu-img, a real QEMU under TCG holding an image): exit codes and
 * exact output. */
#define _GNU_SOURCE /* F_OFD_GETLK */

#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test-util.h"

#define WAIT_MS 30000

typedef struct
{
  char *out, *err;
  int status;
} Run;

static void
run_clear (Run *r)
{
  g_clear_pointer (&r->out, g_free);
  g_clear_pointer (&r->err, g_free);
}

/* vmherd --config DIR/vmherd.conf image ARGS... */
static Run
run_image (const char *dir, ...)
{
  g_autofree char *bin = test_build_path ("vmherd");
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  Run r = { 0 };
  const char *arg;
  va_list ap;
  int wait_status;

  g_ptr_array_add (argv, bin);
  g_ptr_array_add (argv, "--config");
  g_ptr_array_add (argv, conf);
  g_ptr_array_add (argv, "image");
  va_start (ap, dir);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, (char *) arg);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDIN_FROM_DEV_NULL, NULL, NULL, &r.out, &r.err,
                &wait_status, &error);
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (wait_status));
  r.status = WEXITSTATUS (wait_status);
  return r;
}

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

static gboolean
have_qemu_img (void)
{
  g_autofree char *path = g_find_program_in_path ("qemu-img");

  if (path == NULL)
    test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "qemu-img is not installed (apt-get install qemu-utils)");
  return path != NULL;
}

/* A host whose images belong to nobody (when we are root), and VM 'web': disk root an
 * overlay DIR/img/web.qcow2 on DIR/img/base.qcow2 (line 6: base), disk data raw. */
static char *
host_dir (void)
{
  char *dir = test_tmpdir ();
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *vms = g_build_filename (dir, "vms.d", NULL);
  g_autofree char *img = g_build_filename (dir, "img", NULL);
  g_autofree char *vm = g_build_filename (dir, "vms.d", "web.conf", NULL);
  g_autofree char *vm_text = NULL;

  test_write_file (conf, "[daemon]\nvm-dir = vms.d\nrun-dir = run\nlog-dir = log\nqemu-img = /usr/bin/qemu-img\n"
                         "qemu-user = nobody\n");
  g_assert_cmpint (g_mkdir (vms, 0755), ==, 0);
  g_assert_cmpint (g_mkdir (img, 0755), ==, 0);
  vm_text = g_strdup_printf ("[vm]\nmemory = 64M\n[disk root]\nimage = %1$s/img/web.qcow2\nformat = qcow2\n"
                             "base = %1$s/img/base.qcow2\nbase-format = qcow2\n[disk data]\n"
                             "image = %1$s/img/data.raw\nformat = raw\n", dir);
  test_write_file (vm, vm_text);
  return dir;
}

static void
make_images (const char *dir)
{
  run_tool ("qemu-img create -q -f qcow2 %s/img/base.qcow2 64M", dir);
  run_tool ("qemu-io -f qcow2 -c 'write -P 0x11 0 1M' %s/img/base.qcow2", dir);
  run_tool ("qemu-img create -q -f qcow2 -b %1$s/img/base.qcow2 -F qcow2 %1$s/img/web.qcow2", dir);
  run_tool ("qemu-io -f qcow2 -c 'write -P 0x22 8M 1M' %s/img/web.qcow2", dir);
  run_tool ("qemu-img create -q -f raw %s/img/data.raw 16M", dir);
}

static void
test_usage (void)
{
  g_autofree char *dir = host_dir ();
  Run r = run_image (dir, NULL);

  g_assert_cmpint (r.status, ==, 2);
  g_assert_cmpstr (r.out, ==, "");
  g_assert_true (g_str_has_prefix (r.err, "usage: vmherd image info NAME [--json]\n"));
  run_clear (&r);

  r = run_image (dir, "resize", "web", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (g_str_has_prefix (r.err, "vmherd image: unknown command 'resize'\nusage: "));
  run_clear (&r);

  r = run_image (dir, "create", "/tmp/x.qcow2", "--size", "4X", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_cmpstr (r.err, ==, "--size: \"4X\" is not a size (use e.g. 512M or 8G)\n");
  run_clear (&r);

  r = run_image (dir, "create", "/tmp/x.qcow2", "--size", "1G", "--format", "vmdk", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_cmpstr (r.err, ==, "--format: 'vmdk' is not a format vmherd creates (use qcow2 or raw)\n");
  run_clear (&r);
}

static void
test_create (void)
{
  g_autofree char *dir = NULL, *path = NULL, *expected = NULL;
  struct passwd *nobody = getpwnam ("nobody");
  struct stat st;
  Run r;

  if (!have_qemu_img ())
    return;
  dir = host_dir ();
  path = g_build_filename (dir, "img", "new.qcow2", NULL);
  r = run_image (dir, "create", path, "--size", "64M", NULL);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  expected = g_strdup_printf ("created %s (qcow2, 64.0 MiB)\n", path);
  g_assert_cmpstr (r.out, ==, expected);
  run_clear (&r);
  g_assert_cmpint (stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
  if (geteuid () == 0 && nobody != NULL)
    g_assert_cmpuint (st.st_uid, ==, nobody->pw_uid);

  r = run_image (dir, "create", path, "--size", "64M", "--format", "raw", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_free (expected);
  expected = g_strdup_printf ("image %s already exists (remove it first; it was not replaced)\n", path);
  g_assert_cmpstr (r.err, ==, expected);
  run_clear (&r);
}

/* Not on a terminal: one line per 10% step, every step, however qemu-img's output was
 * read. */
#define STEPS "0%%\n10%%\n20%%\n30%%\n40%%\n50%%\n60%%\n70%%\n80%%\n90%%\n100%%\n"   /* in formats */

static void
test_clone (void)
{
  g_autofree char *dir = NULL, *source = NULL, *target = NULL, *suffix = NULL;
  Run r;

  if (!have_qemu_img ())
    return;
  dir = host_dir ();
  make_images (dir);
  source = g_build_filename (dir, "img", "web.qcow2", NULL);
  target = g_build_filename (dir, "img", "copy.raw", NULL);
  r = run_image (dir, "clone", source, target, "--format", "raw", NULL);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  suffix = g_strdup_printf (STEPS "cloned %s to %s (raw)\n", source, target);
  g_assert_cmpstr (r.out, ==, suffix);
  run_clear (&r);
  run_tool ("qemu-img compare -f qcow2 -F raw %s %s", source, target);

  r = run_image (dir, "clone", target, source, NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_free (suffix);
  suffix = g_strdup_printf ("image %s already exists (remove it first; it was not replaced)\n", source);
  g_assert_cmpstr (r.err, ==, suffix);
  run_clear (&r);
}

/* Asserts that line starts with prefix (sizes on disk depend on the filesystem). */
static void
assert_line_prefix (char **lines, guint i, const char *prefix)
{
  g_assert_nonnull (lines[i]);
  if (!g_str_has_prefix (lines[i], prefix))
    g_error ("line %u: want prefix '%s', got '%s'", i + 1, prefix, lines[i]);
}

static void
test_info (void)
{
  g_autofree char *dir = NULL, *line = NULL;
  g_auto(GStrv) lines = NULL;
  Run r;

  if (!have_qemu_img ())
    return;
  dir = host_dir ();
  make_images (dir);
  r = run_image (dir, "info", "web", NULL);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  lines = g_strsplit (r.out, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 6);
  line = g_strdup_printf ("disk root: %s/img/web.qcow2", dir);
  g_assert_cmpstr (lines[0], ==, line);
  g_free (line);
  line = g_strdup_printf ("  image    %s/img/web.qcow2  qcow2  virtual 64.0 MiB  on disk ", dir);
  assert_line_prefix (lines, 1, line);
  g_free (line);
  line = g_strdup_printf ("  backing  %s/img/base.qcow2  qcow2  virtual 64.0 MiB  on disk ", dir);
  assert_line_prefix (lines, 2, line);
  g_free (line);
  line = g_strdup_printf ("disk data: %s/img/data.raw", dir);
  g_assert_cmpstr (lines[3], ==, line);
  g_free (line);
  line = g_strdup_printf ("  image    %s/img/data.raw  raw  virtual 16.0 MiB  on disk ", dir);
  assert_line_prefix (lines, 4, line);
  g_assert_cmpstr (lines[5], ==, "");
  run_clear (&r);

  r = run_image (dir, "info", "nope", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_free (line);
  line = g_strdup_printf ("no VM named 'nope' in %s/vms.d (known: web)\n", dir);
  g_assert_cmpstr (r.err, ==, line);
  run_clear (&r);
}

/* An overlay not created yet: its base is shown. */
static void
test_info_not_created (void)
{
  g_autofree char *dir = NULL, *expected = NULL, *line = NULL, *image = NULL;
  g_auto(GStrv) lines = NULL;
  Run r;

  if (!have_qemu_img ())
    return;
  dir = host_dir ();
  make_images (dir);
  image = g_build_filename (dir, "img", "web.qcow2", NULL);
  g_assert_cmpint (g_unlink (image), ==, 0);
  r = run_image (dir, "info", "web", NULL);
  g_assert_cmpint (r.status, ==, 0);
  lines = g_strsplit (r.out, "\n", -1);
  expected = g_strdup_printf ("disk root: %s/img/web.qcow2 (not created yet: vmherdd makes it an overlay "
                              "on its base at start)", dir);
  g_assert_cmpstr (lines[0], ==, expected);
  line = g_strdup_printf ("  backing  %s/img/base.qcow2  qcow2  virtual 64.0 MiB  on disk ", dir);
  assert_line_prefix (lines, 1, line);
  run_clear (&r);
}

static void
test_info_json (void)
{
  g_autofree char *dir = NULL, *base = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonObject *root, *disk;
  JsonArray *disks, *chain;
  Run r;

  if (!have_qemu_img ())
    return;
  dir = host_dir ();
  make_images (dir);
  r = run_image (dir, "info", "web", "--json", NULL);
  g_assert_cmpint (r.status, ==, 0);
  json_parser_load_from_data (parser, r.out, -1, &error);
  g_assert_no_error (error);
  root = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (root, "vm"), ==, "web");
  disks = json_object_get_array_member (root, "disks");
  g_assert_cmpuint (json_array_get_length (disks), ==, 2);
  disk = json_array_get_object_element (disks, 0);
  g_assert_cmpstr (json_object_get_string_member (disk, "disk"), ==, "root");
  g_assert_true (json_object_get_boolean_member (disk, "exists"));
  chain = json_object_get_array_member (disk, "chain");
  g_assert_cmpuint (json_array_get_length (chain), ==, 2);
  base = g_build_filename (dir, "img", "base.qcow2", NULL);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (chain, 1), "filename"), ==,
                   base);
  g_assert_cmpint (json_object_get_int_member (json_array_get_object_element (chain, 0), "virtual-size"), ==,
                   64 * 1024 * 1024);
  run_clear (&r);
}

static void
test_flatten (void)
{
  g_autofree char *dir = NULL, *image = NULL, *reference = NULL, *expected = NULL;
  Run r;

  if (!have_qemu_img ())
    return;
  dir = host_dir ();
  make_images (dir);
  image = g_build_filename (dir, "img", "web.qcow2", NULL);
  reference = g_build_filename (dir, "reference.raw", NULL);
  run_tool ("qemu-img convert -f qcow2 -O raw %s %s", image, reference);

  r = run_image (dir, "flatten", "web", NULL);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  expected = g_strdup_printf ("disk root: flattening %1$s\n" STEPS "disk root: %1$s is standalone now\n"
                              "disk root: remove 'base = %2$s/img/base.qcow2' at %2$s/vms.d/web.conf:6 before "
                              "'web' starts again\n"
                              "disk data: %2$s/img/data.raw is already standalone\n", image, dir);
  g_assert_cmpstr (r.out, ==, expected);
  run_clear (&r);
  run_tool ("qemu-img compare -f qcow2 -F raw %s %s", image, reference);
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

/* QEMU (paused, as vmherdd starts it) writes the overlay: flatten is refused, naming it. */
static void
test_flatten_locked (void)
{
  const char *qemu = test_require_qemu ();
  g_autofree char *dir = NULL, *image = NULL, *file_node = NULL, *expected = NULL;
  g_autoptr(GError) error = NULL;
  GSubprocess *process;
  Run r;

  if (qemu == NULL || !have_qemu_img ())
    return;
  dir = host_dir ();
  make_images (dir);
  image = g_build_filename (dir, "img", "web.qcow2", NULL);
  file_node = g_strdup_printf ("driver=file,filename=%s,node-name=f", image);
  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error,
                              qemu, "-accel", "tcg", "-nodefaults", "-display", "none", "-S", "-m", "64",
                              "-blockdev", file_node, "-blockdev", "driver=qcow2,file=f,node-name=d",
                              "-device", "virtio-blk-pci,drive=d", NULL);
  g_assert_no_error (error);
  g_test_queue_destroy (stop_qemu, process);
  test_wait_until (has_writer (image), WAIT_MS, "QEMU to lock the overlay");

  r = run_image (dir, "flatten", "web", NULL);
  g_assert_cmpint (r.status, ==, 1);
  expected = g_strdup_printf ("disk root: flattening %s\n", image);
  g_assert_cmpstr (r.out, ==, expected);
  g_free (expected);
  expected = g_strdup_printf ("vm 'web': disk 'root': image %s is in use by another process, probably a "
                              "running QEMU (stop the VM first)\n", image);
  g_assert_cmpstr (r.err, ==, expected);
  run_clear (&r);

  /* info still works on the running guest's images. */
  r = run_image (dir, "info", "web", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_cmpstr (r.err, ==, "");
  run_clear (&r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/image/usage", test_usage);
  g_test_add_func ("/cli/image/create", test_create);
  g_test_add_func ("/cli/image/clone", test_clone);
  g_test_add_func ("/cli/image/info", test_info);
  g_test_add_func ("/cli/image/info-not-created", test_info_not_created);
  g_test_add_func ("/cli/image/info-json", test_info_json);
  g_test_add_func ("/cli/image/flatten", test_flatten);
  g_test_add_func ("/cli/image/flatten-locked", test_flatten_locked);
  return g_test_run ();
}
