/* test-util.h: helpers shared by every test binary (links glib only). */
#pragma once

#include <glib.h>
#include <sys/types.h>

/* Iterates the default main context until cond(data) is true.  Fails the test with
 * `what` when timeout_ms passes first.  Never sleeps. */
#define test_wait_until(cond_expr, timeout_ms, what)                                    \
  G_STMT_START {                                                                         \
    gint64 _deadline = g_get_monotonic_time () + (gint64) (timeout_ms) * 1000;           \
    while (!(cond_expr))                                                                 \
      {                                                                                  \
        if (g_get_monotonic_time () > _deadline)                                         \
          g_error ("timed out after %d ms waiting for %s", (int) (timeout_ms), (what));  \
        test_iterate_once (_deadline);                                                   \
      }                                                                                  \
  } G_STMT_END

/* One main-context iteration that blocks at most until deadline (monotonic us). */
void test_iterate_once (gint64 deadline);

/* Absolute path of a file in the source tree (VMHERD_SRCDIR) or build (VMHERD_BUILDDIR). */
char *test_src_path (const char *relative);
char *test_build_path (const char *relative);

/* A fresh temporary directory, removed recursively at the end of the test. */
char *test_tmpdir (void);
void test_rm_rf (const char *path);

/* Path of qemu-system-x86_64, or NULL after g_test_skip() (a failure when
 * VMHERD_TEST_REQUIRE_QEMU=1, as in CI). */
const char *test_require_qemu (void);

/* Kernel and initrd of the test guest built by tests/guest/build-guest, or FALSE after a
 * skip (a failure when VMHERD_TEST_REQUIRE_QEMU=1). */
gboolean test_require_guest (char **out_kernel, char **out_initrd);

/* Skips (or, when VMHERD_TEST_REQUIRE_<what>=1, fails) with the reason. */
void test_skip_or_fail (const char *require_var, const char *reason);

/* Reads a whole file; fails the test when it cannot. */
char *test_read_file (const char *path);
void test_write_file (const char *path, const char *contents);

/* Compares actual with the golden file at path, line by line, failing with the first
 * differing line; REGENERATE=1 rewrites the file instead (review the diff like code). */
void test_assert_golden (const char *path, const char *actual);

/* A finished command: its output and exit status. */
typedef struct
{
  char *out;
  char *err;
  int status;                   /* exit status; a signal fails the test */
} TestRun;

/* Runs argv (NULL-terminated) to completion with stdin_text (nullable) on its standard
 * input, from the main loop (so the test's own sources keep running). */
TestRun test_run (const char *const *argv, const char *stdin_text);
void test_run_clear (TestRun *run);

/* Runs $VMHERD_BUILDDIR/vmherd --config config ARGS... */
TestRun test_run_vmherd (const char *config, const char *stdin_text, ...) G_GNUC_NULL_TERMINATED;

/* /proc look-ups for tests that watch processes they did not start (QEMU, daemons). */
gboolean test_cmdline_mentions (pid_t pid, const char *text);   /* argv joined by spaces */
char test_process_state (pid_t pid);          /* 'R', 'S', 'T', 'Z', ...; 0: no such process */
gboolean test_process_alive (pid_t pid);      /* exists and is not a zombie */
pid_t test_process_parent (pid_t pid);        /* 0 when unknown */
