/* test-net-kernel.c: test-net-bridge and test-net-tap run again inside Debian's own kernel,
 * booted under QEMU, with VMHERD_TEST_REQUIRE_NETNS=1, VMHERD_TEST_REQUIRE_BRIDGE_VLAN=1 and
 * VMHERD_TEST_REQUIRE_VHOST_NET=1.  A host kernel without bridge VLAN filtering leaves the
 * VLAN tests out of the host run (netns_add_vlan_test()) and one without vhost_net tests only
 * the error; this run covers the rest, on any host that has QEMU and the test guest.
 *
 * The initramfs is three archives back to back, which the kernel unpacks in order:
 *   - the test guest's initrd.img (tests/guest/build-guest): busybox, /dev/console;
 *   - its net-modules.img: bridge, tun, veth, vhost_net... from the same kernel package;
 *   - an uncompressed one made here: /vmherd-net-kernel (the init below), the two test
 *     binaries of $VMHERD_BUILDDIR and every library `ldd` lists for them, dynamic loader
 *     included, so a sanitizer build brings its libasan and libubsan along.
 * It is cached as $VMHERD_BUILDDIR/tests/net-kernel/initrd-KEY.img; KEY hashes the init, the
 * binaries' contents and the size and mtime of every other file in it, so a rebuilt test or
 * an upgraded library (or guest) makes a new one, and the older one is removed.
 *
 * The init prints each binary's TAP on the serial console between markers, which this test
 * reads line by line from QEMU's stdout and repeats as "# " lines; then it powers off. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "tests/test-util.h"

#define TIMEOUT_MS (300 * 1000)  /* it takes 12 s (plain) to 25 s (ASan) under TCG on 2 idle cores */
#define MARKER "vmherd-net-kernel: "

static const char *const inner_tests[] = { "test-net-bridge", "test-net-tap" };

/* What a host kernel without bridge VLAN filtering or vhost_net leaves out or tests only in
 * part: each must appear here as "ok", not skipped. */
static const struct
{
  const char *binary, *path;
} must_pass[] = {
  { "test-net-bridge", "/net/bridge/create-vlan-filtering" },
  { "test-net-tap", "/net/tap/vlan-access" },
  { "test-net-tap", "/net/tap/vlan-trunk" },
  { "test-net-tap", "/net/tap/vlan-trunk-large" },
  { "test-net-tap", "/net/tap/frames-vlan" },
  { "test-net-tap", "/net/tap/vhost" },
};

/* Sanitizer settings reach the inner binaries as they reach this one (make check sets them). */
static const char *const forwarded_env[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" };

/* PID 1 of the guest, around the variables written by init_script(): $tests. */
#define INIT_HEAD                                                                         \
  "#!/bin/sh\n"                                                                           \
  "# Made by tests/test-net-kernel.c, which reads its output on the serial console.\n"   \
  "export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root\n"                                \
  "mount -t devtmpfs devtmpfs /dev\n"                                                     \
  "exec </dev/console >/dev/console 2>&1\n"                                               \
  "mount -t proc proc /proc\n"                                                            \
  "mount -t sysfs sysfs /sys\n"                                                           \
  "mount -t tmpfs tmpfs /tmp\n"                                                           \
  "while read -r m; do\n"                                                                 \
  "  insmod \"/lib/modules/net/$m.ko\" || echo \"" MARKER "cannot load module $m\"\n"     \
  "done </lib/modules/net/load-order\n"                                                   \
  "export G_DEBUG=fatal-warnings VMHERD_TEST_REQUIRE_NETNS=1\n"                           \
  "export VMHERD_TEST_REQUIRE_BRIDGE_VLAN=1 VMHERD_TEST_REQUIRE_VHOST_NET=1\n"
#define INIT_TAIL                                                                         \
  "status=''\n"                                                                           \
  "for t in $tests; do\n"                                                                 \
  "  echo \"" MARKER "run $t\"\n"                                                         \
  "  \"/vmherd/$t\"\n"                                                                    \
  "  status=\"$status $t=$?\"\n"                                                          \
  "done\n"                                                                                \
  "echo \"" MARKER "exit$status\"\n"                                                      \
  "poweroff -f\n"

static char *
init_script (void)
{
  GString *script = g_string_new (INIT_HEAD);

  for (guint i = 0; i < G_N_ELEMENTS (forwarded_env); i++)
    {
      const char *value = g_getenv (forwarded_env[i]);
      g_autofree char *quoted = value != NULL ? g_shell_quote (value) : NULL;

      if (quoted != NULL)
        g_string_append_printf (script, "export %s=%s\n", forwarded_env[i], quoted);
    }
  g_string_append (script, "tests='");
  for (guint i = 0; i < G_N_ELEMENTS (inner_tests); i++)
    g_string_append_printf (script, "%s%s", i ? " " : "", inner_tests[i]);
  g_string_append (script, "'\n" INIT_TAIL);
  return g_string_free (script, FALSE);
}

/* ---- the initramfs ---- */

/* A file of the archive: its name there (no leading slash) and where it comes from. */
typedef struct
{
  char *name;
  char *host_path;
  gboolean hash_contents;       /* the test binaries; the rest is keyed by size and mtime */
} Member;

static void
member_free (gpointer data)
{
  Member *m = data;

  g_free (m->name);
  g_free (m->host_path);
  g_free (m);
}

static void
members_add (GPtrArray *members, const char *name, const char *host_path, gboolean hash_contents)
{
  Member *m = g_new0 (Member, 1);

  m->name = g_strdup (name);
  m->host_path = g_strdup (host_path);
  m->hash_contents = hash_contents;
  g_ptr_array_add (members, m);
}

/* The library path of one line of ldd's output, or NULL (linux-vdso, which is no file):
 *   "libglib-2.0.so.0 => /lib/x86_64-linux-gnu/libglib-2.0.so.0 (0x...)"
 *   "/lib64/ld-linux-x86-64.so.2 (0x...)" */
static char *
ldd_line_path (const char *binary, char *line)
{
  char *arrow = strstr (g_strstrip (line), "=> ");
  char *path = arrow != NULL ? arrow + 3 : line;
  char *end = strstr (path, " (");

  if (strstr (line, "not found") != NULL)
    g_error ("ldd %s: %s (so it cannot run in the guest)", binary, line);
  if (path[0] != '/')
    return NULL;
  return end != NULL ? g_strndup (path, (gsize) (end - path)) : g_strdup (path);
}

/* Adds every library ldd lists for binary to libs (a set of host paths). */
static void
ldd_add_libraries (const char *binary, GHashTable *libs)
{
  const char *argv[] = { "ldd", binary, NULL };
  TestRun run = test_run (argv, NULL);
  g_auto(GStrv) lines = NULL;

  if (run.status != 0)
    g_error ("ldd %s exited with status %d: %s%s", binary, run.status, run.out, run.err);
  lines = g_strsplit (run.out, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      char *path = ldd_line_path (binary, lines[i]);

      if (path != NULL)
        g_hash_table_add (libs, path);
    }
  test_run_clear (&run);
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The test binaries at vmherd/NAME, then their libraries at their own paths, sorted. */
static GPtrArray *
initramfs_members (void)
{
  GPtrArray *members = g_ptr_array_new_with_free_func (member_free);
  g_autoptr(GHashTable) libs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree gpointer *sorted = NULL;
  guint n_libs;

  for (guint i = 0; i < G_N_ELEMENTS (inner_tests); i++)
    {
      g_autofree char *relative = g_build_filename ("tests", inner_tests[i], NULL);
      g_autofree char *binary = test_build_path (relative);
      g_autofree char *name = g_build_filename ("vmherd", inner_tests[i], NULL);

      if (!g_file_test (binary, G_FILE_TEST_IS_EXECUTABLE))
        g_error ("no %s to run in the guest (build it first: make check builds every test "
                 "before it runs any)", binary);
      members_add (members, name, binary, TRUE);
      ldd_add_libraries (binary, libs);
    }
  sorted = g_hash_table_get_keys_as_array (libs, &n_libs);
  qsort (sorted, n_libs, sizeof *sorted, compare_strings);
  for (guint i = 0; i < n_libs; i++)
    members_add (members, (const char *) sorted[i] + 1, sorted[i], FALSE);
  return members;
}

static void
checksum_stat (GChecksum *sum, const char *path)
{
  GStatBuf st;
  g_autofree char *line = NULL;

  if (g_stat (path, &st) < 0)
    g_error ("cannot read %s: %s", path, g_strerror (errno));
  line = g_strdup_printf ("%s %" G_GINT64_FORMAT " %" G_GINT64_FORMAT ".%09ld\n", path,
                          (gint64) st.st_size, (gint64) st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  g_checksum_update (sum, (const guchar *) line, -1);
}

/* 16 hex digits naming everything that goes into the initramfs. */
static char *
initramfs_key (const char *init, const char *const *guest_parts, GPtrArray *members)
{
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);

  g_checksum_update (sum, (const guchar *) init, -1);
  for (guint i = 0; guest_parts[i] != NULL; i++)
    checksum_stat (sum, guest_parts[i]);
  for (guint i = 0; i < members->len; i++)
    {
      const Member *m = members->pdata[i];
      g_autofree char *contents = NULL;
      gsize length;

      g_checksum_update (sum, (const guchar *) m->name, (gssize) strlen (m->name) + 1);
      if (!m->hash_contents)
        {
          checksum_stat (sum, m->host_path);
          continue;
        }
      if (!g_file_get_contents (m->host_path, &contents, &length, NULL))
        g_error ("cannot read %s", m->host_path);
      g_checksum_update (sum, (const guchar *) contents, (gssize) length);
    }
  return g_strndup (g_checksum_get_string (sum), 16);
}

/* Zeros up to a multiple of 4 bytes: newc aligns headers and data so, and the kernel expects
 * an uncompressed archive that follows a compressed one at such an offset. */
static void
pad4 (GByteArray *out)
{
  static const guint8 zeros[4];

  g_byte_array_append (out, zeros, (4 - out->len % 4) % 4);
}

/* One newc ("070701") entry: owner root, mtime 0, a single link. */
static void
cpio_entry (GByteArray *out, guint ino, const char *name, guint32 mode, const guint8 *data, gsize size)
{
  g_autofree char *header = NULL;

  header = g_strdup_printf ("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode,
                            0u, 0u, 1u, 0u, (guint) size, 0u, 0u, 0u, 0u, (guint) strlen (name) + 1, 0u);
  g_byte_array_append (out, (const guint8 *) header, (guint) strlen (header));
  g_byte_array_append (out, (const guint8 *) name, (guint) strlen (name) + 1);
  pad4 (out);
  if (size > 0)
    g_byte_array_append (out, data, (guint) size);
  pad4 (out);
}

/* Entries for the folders above name that no earlier entry made.  The kernel creates no
 * missing parents, and a folder the guest's archive already has is left as it is. */
static void
cpio_parents (GByteArray *out, guint *ino, GHashTable *made, const char *name)
{
  g_autofree char *parent = g_path_get_dirname (name);

  if (g_str_equal (parent, ".") || g_hash_table_contains (made, parent))
    return;
  cpio_parents (out, ino, made, parent);
  cpio_entry (out, (*ino)++, parent, 040755, NULL, 0);
  g_hash_table_add (made, g_steal_pointer (&parent));
}

/* The archive made here: the init and the members, each file executable. */
static void
cpio_append (GByteArray *out, const char *init, GPtrArray *members)
{
  g_autoptr(GHashTable) made = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  guint ino = 1;

  cpio_entry (out, ino++, "vmherd-net-kernel", 0100755, (const guint8 *) init, strlen (init));
  for (guint i = 0; i < members->len; i++)
    {
      const Member *m = members->pdata[i];
      g_autofree char *contents = NULL;
      gsize length;
      g_autoptr(GError) error = NULL;

      g_file_get_contents (m->host_path, &contents, &length, &error);
      g_assert_no_error (error);
      cpio_parents (out, &ino, made, m->name);
      cpio_entry (out, ino++, m->name, 0100755, (const guint8 *) contents, length);
    }
  cpio_entry (out, ino, "TRAILER!!!", 0, NULL, 0);
}

/* Removes the cache's other initramfs files: each is tens of MB and never used again. */
static void
cache_prune (const char *dir, const char *keep)
{
  g_autoptr(GDir) listing = g_dir_open (dir, 0, NULL);
  const char *name;

  while (listing != NULL && (name = g_dir_read_name (listing)) != NULL)
    if (g_str_has_prefix (name, "initrd-") && !g_str_equal (name, keep))
      {
        g_autofree char *path = g_build_filename (dir, name, NULL);

        g_unlink (path);
      }
}

/* The initramfs for this build and guest, from the cache or made now. */
static char *
initramfs_get (const char *guest_initrd, const char *net_modules)
{
  const char *guest_parts[] = { guest_initrd, net_modules, NULL };
  g_autofree char *init = init_script ();
  g_autoptr(GPtrArray) members = initramfs_members ();
  g_autofree char *key = initramfs_key (init, guest_parts, members);
  g_autofree char *dir = test_build_path ("tests/net-kernel");
  g_autofree char *file = g_strdup_printf ("initrd-%s.img", key);
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_autoptr(GByteArray) image = NULL;
  g_autoptr(GError) error = NULL;

  if (g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_test_message ("initramfs %s (cached)", path);
      return g_steal_pointer (&path);
    }
  image = g_byte_array_new ();
  for (guint i = 0; guest_parts[i] != NULL; i++)
    {
      g_autofree char *contents = NULL;
      gsize length;

      g_file_get_contents (guest_parts[i], &contents, &length, &error);
      g_assert_no_error (error);
      g_byte_array_append (image, (const guint8 *) contents, (guint) length);
      pad4 (image);
    }
  cpio_append (image, init, members);
  g_assert_no_errno (g_mkdir_with_parents (dir, 0755));
  g_file_set_contents (path, (const char *) image->data, image->len, &error);  /* atomic */
  g_assert_no_error (error);
  cache_prune (dir, file);
  g_test_message ("initramfs %s (made: %u files, %u bytes)", path, members->len + 1, image->len);
  return g_steal_pointer (&path);
}

/* ---- the guest's serial console ---- */

typedef struct
{
  GDataInputStream *serial;
  gboolean eof, exited;
  char *current;                /* the test binary whose output is coming, or NULL */
  gint64 current_start;
  GHashTable *plans;            /* binary -> its "1..N", as a string */
  GHashTable *oks;              /* binary -> number of "ok" lines (GUINT_TO_POINTER) */
  GHashTable *passed;           /* "binary path" of every "ok" line without a SKIP */
  GPtrArray *problems;          /* "not ok", "# SKIP" and module lines, with their binary */
  char *statuses;               /* " test-net-bridge=0 ..." from the final marker, or NULL */
} Console;

static void
console_clear (Console *con)
{
  g_clear_object (&con->serial);
  g_clear_pointer (&con->current, g_free);
  g_clear_pointer (&con->plans, g_hash_table_unref);
  g_clear_pointer (&con->oks, g_hash_table_unref);
  g_clear_pointer (&con->passed, g_hash_table_unref);
  g_clear_pointer (&con->problems, g_ptr_array_unref);
  g_clear_pointer (&con->statuses, g_free);
}

/* The line without "\r", terminal escapes' ESC and other control characters. */
static char *
console_clean (const char *raw)
{
  GString *clean = g_string_new (NULL);

  for (const char *p = raw; *p != '\0'; p++)
    if ((guchar) *p >= 0x20 || *p == '\t')
      g_string_append_c (clean, *p);
  return g_strchomp (g_string_free (clean, FALSE));
}

static void
console_marker (Console *con, const char *text)
{
  if (con->current != NULL)
    g_test_message ("(%s took %.1f s)", con->current,
                    (double) (g_get_monotonic_time () - con->current_start) / G_USEC_PER_SEC);
  g_clear_pointer (&con->current, g_free);
  if (g_str_has_prefix (text, "run "))
    {
      con->current = g_strdup (text + strlen ("run "));
      con->current_start = g_get_monotonic_time ();
    }
  else if (g_str_has_prefix (text, "exit"))
    con->statuses = g_strdup (text + strlen ("exit"));
  else
    g_ptr_array_add (con->problems, g_strdup (text));
}

/* One line of a test binary's TAP. */
static void
console_tap (Console *con, const char *line)
{
  char *path;

  if (g_str_has_prefix (line, "not ok") || g_str_has_prefix (line, "Bail out!")
      || strstr (line, "# SKIP") != NULL)
    g_ptr_array_add (con->problems, g_strdup_printf ("%s: %s", con->current, line));
  if (g_str_has_prefix (line, "1.."))
    g_hash_table_insert (con->plans, g_strdup (con->current), g_strdup (line + 3));
  if (!g_str_has_prefix (line, "ok "))
    return;
  g_hash_table_insert (con->oks, g_strdup (con->current),
                       GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (con->oks, con->current)) + 1));
  path = strchr (line + 3, ' ');
  if (path != NULL && strstr (line, "# SKIP") == NULL)
    g_hash_table_add (con->passed, g_strdup_printf ("%s %s", con->current, path + 1));
}

static void
on_serial_line (GObject *source, GAsyncResult *result, gpointer data)
{
  Console *con = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *raw = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result,
                                                               NULL, &error);
  g_autofree char *line = NULL;

  g_assert_no_error (error);
  if (raw == NULL)
    {
      con->eof = TRUE;
      return;
    }
  line = console_clean (raw);
  if (g_str_has_prefix (line, MARKER))
    console_marker (con, line + strlen (MARKER));
  else if (con->current != NULL)
    console_tap (con, line);
  if (line[0] != '\0')
    g_test_message ("%s", line);
  g_data_input_stream_read_line_async (con->serial, G_PRIORITY_DEFAULT, NULL, on_serial_line, con);
}

static void
on_qemu_exited (GObject *source G_GNUC_UNUSED, GAsyncResult *result G_GNUC_UNUSED, gpointer data)
{
  Console *con = data;

  con->exited = TRUE;
}

static void
child_setup (gpointer data G_GNUC_UNUSED)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);   /* an aborted test leaves no QEMU behind */
}

/* Boots the guest and reads its console until QEMU exits (the init powers off).  TCG unless
 * VMHERD_TEST_ACCEL says otherwise: the CI hosts are nested, where KVM is present but the
 * guest hangs in early boot, and kvm:tcg would choose it. */
static void
console_run (Console *con, const char *kernel, const char *initramfs)
{
  const char *accel = g_getenv ("VMHERD_TEST_ACCEL");
  g_autofree char *machine = g_strdup_printf ("q35,accel=%s", accel != NULL ? accel : "tcg");
  const char *argv[] = { test_require_qemu (), "-machine", machine, "-cpu", "max",
                         "-m", "512", "-nodefaults", "-display", "none", "-no-reboot",
                         "-kernel", kernel, "-initrd", initramfs, "-serial", "stdio",
                         "-append", "console=ttyS0 quiet panic=-1 rdinit=/vmherd-net-kernel", NULL };
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) qemu = NULL;
  g_autoptr(GError) error = NULL;

  /* stdin stays an open pipe: QEMU's stdio chardev reads it. */
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                        | G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  qemu = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  con->serial = g_data_input_stream_new (g_subprocess_get_stdout_pipe (qemu));
  g_data_input_stream_read_line_async (con->serial, G_PRIORITY_DEFAULT, NULL, on_serial_line, con);
  g_subprocess_wait_async (qemu, NULL, on_qemu_exited, con);
  test_wait_until (con->exited && con->eof, TIMEOUT_MS, "the guest to run the net tests and power off");
  if (!g_subprocess_get_if_exited (qemu) || g_subprocess_get_exit_status (qemu) != 0)
    g_error ("QEMU ended with wait status %d (its messages are above)", g_subprocess_get_status (qemu));
}

/* ---- the test ---- */

static void
console_assert (Console *con)
{
  g_autoptr(GString) want = g_string_new (NULL);
  g_autofree char *problems = NULL;

  g_ptr_array_add (con->problems, NULL);
  problems = g_strjoinv ("\n  ", (char **) con->problems->pdata);
  if (problems[0] != '\0')
    g_error ("the guest reported:\n  %s", problems);
  for (guint i = 0; i < G_N_ELEMENTS (inner_tests); i++)
    g_string_append_printf (want, " %s=0", inner_tests[i]);
  g_assert_cmpstr (con->statuses, ==, want->str);     /* NULL: the guest stopped early */

  for (guint i = 0; i < G_N_ELEMENTS (inner_tests); i++)
    {
      const char *plan = g_hash_table_lookup (con->plans, inner_tests[i]);
      guint oks = GPOINTER_TO_UINT (g_hash_table_lookup (con->oks, inner_tests[i]));
      g_autofree char *ran = g_strdup_printf ("%u", oks);

      g_assert_nonnull (plan);
      g_assert_cmpstr (ran, ==, plan);
    }
  for (guint i = 0; i < G_N_ELEMENTS (must_pass); i++)
    {
      g_autofree char *key = g_strdup_printf ("%s %s", must_pass[i].binary, must_pass[i].path);

      if (!g_hash_table_contains (con->passed, key))
        g_error ("%s did not run and pass %s in the guest", must_pass[i].binary, must_pass[i].path);
    }
}

static void
test_debian_kernel (void)
{
  g_autofree char *kernel = NULL, *initrd = NULL, *guest = NULL, *net_modules = NULL;
  g_autofree char *initramfs = NULL;
  Console con = { 0 };

  if (!test_require_guest (&kernel, &initrd))
    return;
  guest = g_path_get_dirname (initrd);
  net_modules = g_build_filename (guest, "net-modules.img", NULL);
  if (!g_file_test (net_modules, G_FILE_TEST_EXISTS))
    {
      g_autofree char *reason = g_strdup_printf ("no net-modules.img in %s (run tests/guest/build-guest)", guest);

      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", reason);
      return;
    }
  initramfs = initramfs_get (initrd, net_modules);
  con.plans = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  con.oks = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  con.passed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  con.problems = g_ptr_array_new_with_free_func (g_free);
  console_run (&con, kernel, initramfs);
  console_assert (&con);
  console_clear (&con);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/net/kernel/debian", test_debian_kernel);
  return g_test_run ();
}
