/* test-storage-check.c: vm-storage-check.c's answers on real storage: a file image that
 * reads, one that is gone; a real qemu-nbd with the export asked for, with another export,
 * gone; a server that accepts and never speaks (a hung one) answered by the timeout. */
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>

#include "launcher/vm-storage-check.h"
#include "tests/test-util.h"

typedef struct
{
  gboolean done;
  char *error;
} Answer;

static void
on_done (char *error, gpointer data)
{
  Answer *a = data;

  a->done = TRUE;
  a->error = error;
}

static VmDisk *
disk_new (const char *name, const char *image)
{
  VmDisk *disk = g_new0 (VmDisk, 1);
  g_autofree char *problem = NULL;

  disk->section.name = g_strdup (name);
  disk->image = g_strdup (image);
  if (g_str_has_prefix (image, "nbd"))
    {
      disk->nbd = vm_nbd_parse (image, &problem);
      g_assert_null (problem);
    }
  return disk;
}

static void
disk_free (VmDisk *disk)
{
  g_free (disk->section.name);
  g_free (disk->image);
  vm_nbd_free (disk->nbd);
  g_free (disk);
}

/* Checks one disk; its error (owned), NULL when it answered. */
static char *
check (const char *image, guint timeout_ms)
{
  g_autoptr(GPtrArray) disks = g_ptr_array_new_with_free_func ((GDestroyNotify) disk_free);
  Answer a = { FALSE, NULL };

  g_ptr_array_add (disks, disk_new ("d", image));
  vm_storage_check_async (disks, FALSE, timeout_ms, on_done, &a);
  test_wait_until (a.done, 30000, "the storage check's answer");
  return a.error;
}

static void
test_file (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *image = g_build_filename (dir, "a.raw", NULL);
  g_autofree char *gone = g_build_filename (dir, "gone.raw", NULL);
  g_autofree char *expected = g_strdup_printf ("disk d: cannot open %s: No such file or directory", gone);
  g_autofree char *ok = NULL, *error = NULL;

  test_write_file (image, "data");
  ok = check (image, 1000);
  g_assert_null (ok);
  error = check (gone, 1000);
  g_assert_cmpstr (error, ==, expected);
}

static void
nbd_stop (gpointer pidfile)
{
  g_autofree char *text = NULL;

  if (g_file_get_contents (pidfile, &text, NULL, NULL))
    kill ((pid_t) g_ascii_strtoll (text, NULL, 10), SIGKILL);
  g_free (pidfile);
}

static void
test_nbd (void)
{
  g_autofree char *nbd_path = g_find_program_in_path ("qemu-nbd");
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *image = g_build_filename (dir, "a.raw", NULL);
  g_autofree char *socket = g_build_filename (dir, "nbd.sock", NULL);
  char *pidfile = g_build_filename (dir, "nbd.pid", NULL);
  g_autofree char *right = g_strdup_printf ("nbd+unix:///data?socket=%s", socket);
  g_autofree char *wrong = g_strdup_printf ("nbd+unix:///other?socket=%s", socket);
  g_autofree char *nobody = g_strdup_printf ("nbd+unix:///data?socket=%s/none.sock", dir);
  g_autofree char *ok = NULL, *refused = NULL, *absent = NULL;
  const char *argv[] = { "qemu-nbd", "--fork", "--persistent", "--shared=2", "--format=raw",
                         "--export-name=data", "--socket", socket, "--pid-file", pidfile, image, NULL };
  TestRun r;

  if (nbd_path == NULL)
    {
      g_free (pidfile);
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "no /usr/bin/qemu-nbd (apt-get install qemu-utils)");
      return;
    }
  test_write_file (image, "data");
  g_test_queue_destroy (nbd_stop, pidfile);
  r = test_run (argv, NULL);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);

  ok = check (right, 5000);
  g_assert_null (ok);
  /* Asked twice: the check leaves the server as it found it (persistent, free slots). */
  g_clear_pointer (&ok, g_free);
  ok = check (right, 5000);
  g_assert_null (ok);
  refused = check (wrong, 5000);
  g_assert_true (g_str_has_prefix (refused, "disk d: NBD server "));
  g_assert_nonnull (strstr (refused, ": the NBD server refused export 'other'"));
  absent = check (nobody, 5000);
  g_assert_true (g_str_has_prefix (absent, "disk d: NBD server "));
  g_assert_nonnull (strstr (absent, "No such file or directory"));
}

/* Accepts (the kernel does, from the backlog) and never says a word: a hung server. */
static void
test_nbd_silent (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "silent.sock", NULL);
  g_autofree char *url = g_strdup_printf ("nbd+unix:///data?socket=%s", path);
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                              G_SOCKET_PROTOCOL_DEFAULT, &error);
  g_autofree char *answer = NULL;
  gint64 t0;

  g_assert_no_error (error);
  g_assert_true (g_socket_bind (listener, address, FALSE, &error));
  g_assert_true (g_socket_listen (listener, &error));
  t0 = g_get_monotonic_time ();
  answer = check (url, 1000);
  g_assert_true (g_str_has_prefix (answer, "disk d: NBD server "));
  g_assert_nonnull (strstr (answer, "timed out"));
  g_assert_cmpint ((g_get_monotonic_time () - t0) / 1000, >=, 900);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/storage-check/file", test_file);
  g_test_add_func ("/storage-check/nbd", test_nbd);
  g_test_add_func ("/storage-check/nbd-silent", test_nbd_silent);
  return g_test_run ();
}
