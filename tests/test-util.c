/* test-util.c: waiting, paths, temporary folders and skips for the tests. */
#include "tests/test-util.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

static gboolean
wake_up (gpointer data)
{
  guint *id = data;

  *id = 0;
  return G_SOURCE_REMOVE;
}

void
test_iterate_once (gint64 deadline)
{
  gint64 left_ms = (deadline - g_get_monotonic_time ()) / 1000;
  guint id = g_timeout_add ((guint) CLAMP (left_ms, 1, 100), wake_up, &id);

  /* Blocks until any source fires; the timeout bounds the wait so the caller can
   * check its deadline. */
  g_main_context_iteration (NULL, TRUE);
  g_clear_handle_id (&id, g_source_remove);
}

static char *
env_path (const char *var, const char *relative)
{
  const char *base = g_getenv (var);

  if (base == NULL)
    base = ".";
  return g_build_filename (base, relative, NULL);
}

char *
test_src_path (const char *relative)
{
  return env_path ("VMHERD_SRCDIR", relative);
}

char *
test_build_path (const char *relative)
{
  return env_path ("VMHERD_BUILDDIR", relative);
}

void
test_rm_rf (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    while ((name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *child = g_build_filename (path, name, NULL);

        if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
          test_rm_rf (child);
        else
          g_unlink (child);
      }
  g_rmdir (path);
}

static void
rm_rf_destroy (gpointer path)
{
  test_rm_rf (path);
  g_free (path);
}

char *
test_tmpdir (void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp ("vmherd-test-XXXXXX", &error);

  g_assert_no_error (error);
  g_test_queue_destroy (rm_rf_destroy, g_strdup (dir));
  return dir;
}

void
test_skip_or_fail (const char *require_var, const char *reason)
{
  const char *required = g_getenv (require_var);

  if (required != NULL && g_str_equal (required, "1"))
    g_error ("%s=1 but %s", require_var, reason);
  g_test_skip (reason);
}

const char *
test_require_qemu (void)
{
  static char *qemu;

  if (qemu == NULL)
    qemu = g_find_program_in_path ("qemu-system-x86_64");
  if (qemu == NULL)
    test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU",
                       "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
  return qemu;
}

static char *
guest_dir (void)
{
  const char *dir = g_getenv ("VMHERD_GUEST_DIR");

  if (dir != NULL)
    return g_strdup (dir);
  return g_strdup ("/var/tmp/vmherd-guest");   /* tests/guest/build-guest's default */
}

gboolean
test_require_guest (char **out_kernel, char **out_initrd)
{
  g_autofree char *dir = guest_dir ();
  g_autofree char *kernel = g_build_filename (dir, "vmlinuz", NULL);
  g_autofree char *initrd = g_build_filename (dir, "initrd.img", NULL);

  if (test_require_qemu () == NULL)
    return FALSE;
  if (!g_file_test (kernel, G_FILE_TEST_EXISTS) || !g_file_test (initrd, G_FILE_TEST_EXISTS))
    {
      g_autofree char *reason = g_strdup_printf ("no test guest in %s (run tests/guest/build-guest)", dir);
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", reason);
      return FALSE;
    }
  *out_kernel = g_steal_pointer (&kernel);
  *out_initrd = g_steal_pointer (&initrd);
  return TRUE;
}

char *
test_read_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  char *contents = NULL;

  g_file_get_contents (path, &contents, NULL, &error);
  g_assert_no_error (error);
  return contents;
}

void
test_write_file (const char *path, const char *contents)
{
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, contents, -1, &error);
  g_assert_no_error (error);
}

void
test_assert_golden (const char *path, const char *actual)
{
  g_autofree char *expected = NULL;
  g_auto(GStrv) want = NULL, got = NULL;
  guint i;

  if (g_strcmp0 (g_getenv ("REGENERATE"), "1") == 0)
    {
      test_write_file (path, actual);
      return;
    }
  if (!g_file_get_contents (path, &expected, NULL, NULL))
    g_error ("missing %s (run REGENERATE=1 make check and review it)", path);
  want = g_strsplit (expected, "\n", -1);
  got = g_strsplit (actual, "\n", -1);
  for (i = 0; want[i] != NULL && got[i] != NULL; i++)
    if (strcmp (want[i], got[i]) != 0)
      g_error ("%s:%u differs (REGENERATE=1 make check rewrites it):\n  want: %s\n  got:  %s",
               path, i + 1, want[i], got[i]);
  if (want[i] != NULL || got[i] != NULL)
    g_error ("%s:%u: %s", path, i + 1, want[i] ? "the output ends early" : "the output has more lines");
}

typedef struct
{
  gboolean done;
  char *out, *err;
  GError *error;
} RunState;

static void
on_communicated (GObject *source, GAsyncResult *result, gpointer data)
{
  RunState *st = data;

  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, &st->out, &st->err, &st->error);
  st->done = TRUE;
}

TestRun
test_run (const char *const *argv, const char *stdin_text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  RunState st = { 0 };
  TestRun run = { 0 };

  proc = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                  | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (proc, stdin_text ? stdin_text : "", NULL, on_communicated, &st);
  test_wait_until (st.done, 120000, argv[0]);
  g_assert_no_error (st.error);
  g_subprocess_wait (proc, NULL, &error);
  g_assert_no_error (error);
  if (!g_subprocess_get_if_exited (proc))
    g_error ("%s was killed by signal %d; stderr: %s", argv[0], g_subprocess_get_term_sig (proc), st.err);
  run.out = st.out;
  run.err = st.err;
  run.status = g_subprocess_get_exit_status (proc);
  return run;
}

void
test_run_clear (TestRun *run)
{
  g_clear_pointer (&run->out, g_free);
  g_clear_pointer (&run->err, g_free);
}

TestRun
test_run_vmherd (const char *config, const char *stdin_text, ...)
{
  g_autofree char *bin = test_build_path ("vmherd");
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  const char *arg;
  va_list ap;

  g_ptr_array_add (argv, bin);
  g_ptr_array_add (argv, "--config");
  g_ptr_array_add (argv, (char *) config);
  va_start (ap, stdin_text);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (argv, (char *) arg);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  return test_run ((const char *const *) argv->pdata, stdin_text);
}

gboolean
test_cmdline_mentions (pid_t pid, const char *text)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/cmdline", (int) pid);
  g_autofree char *cmdline = NULL;
  gsize length = 0;

  if (!g_file_get_contents (path, &cmdline, &length, NULL))
    return FALSE;
  for (gsize i = 0; i + 1 < length; i++)
    if (cmdline[i] == '\0')
      cmdline[i] = ' ';
  return strstr (cmdline, text) != NULL;
}

/* 'R', 'S', 'T', 'Z', ... from /proc/PID/stat, or 0 when there is no such process. */
char
test_process_state (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *stat = NULL;
  const char *paren;

  if (!g_file_get_contents (path, &stat, NULL, NULL) || (paren = strrchr (stat, ')')) == NULL)
    return 0;
  return paren[2];
}

gboolean
test_process_alive (pid_t pid)
{
  char state = test_process_state (pid);

  return state != 0 && state != 'Z' && state != 'X';
}

pid_t
test_process_parent (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *stat = NULL;
  const char *paren;

  if (!g_file_get_contents (path, &stat, NULL, NULL) || (paren = strrchr (stat, ')')) == NULL)
    return 0;
  return (pid_t) g_ascii_strtoll (paren + 4, NULL, 10);
}
