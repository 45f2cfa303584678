/* test-argv.c: VM files to QEMU argv, against golden files (tests/data/argv/CASE.args, one
 * argument per line; REGENERATE=1 rewrites them). */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

#include "launcher/qemu-argv.h"
#include "launcher/qemu-probe.h"
#include "launcher/vm-check.h"
#include "tests/test-util.h"

static const QemuHostCaps caps = { "pc-q35-7.2", TRUE };

static HostConfig *
test_host (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "vmherd.conf", NULL);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  HostConfig *host;

  test_write_file (path, "[daemon]\nlog-dir = /var/log/vmherd\nqemu = /usr/bin/qemu-system-x86_64\n");
  host = host_config_load (path, errors);
  g_assert_cmpuint (errors->len, ==, 0);
  return host;
}

static VmConfig *
load_case (const char *path)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  VmConfig *vm = vm_config_load (path, errors);

  if (errors->len > 0)
    {
      g_autofree char *first = config_error_format (errors->pdata[0]);
      g_error ("%s", first);
    }
  return vm;
}

static void
test_golden (gconstpointer data)
{
  const char *conf = data;
  g_autoptr(HostConfig) host = test_host ();
  g_autoptr(VmConfig) vm = load_case (conf);
  g_autoptr(QemuCmdline) cmdline = qemu_argv_build (vm, host, &caps);
  g_autofree char *stem = g_strndup (conf, strlen (conf) - strlen (".conf"));
  g_autofree char *golden = g_strconcat (stem, ".args", NULL);
  GString *actual = g_string_new (NULL);

  for (guint i = 0; cmdline->argv->pdata[i] != NULL; i++)
    g_string_append_printf (actual, "%s\n", (char *) cmdline->argv->pdata[i]);
  test_assert_golden (golden, actual->str);
  g_string_free (actual, TRUE);
}

/* The fd plan: QMP at 3, serial at 4, then each NIC's taps and vhost fds in order. */
static void
test_fd_plan (void)
{
  g_autoptr(HostConfig) host = test_host ();
  g_autofree char *path = test_src_path ("tests/data/argv/nics.conf");
  g_autoptr(VmConfig) vm = load_case (path);
  g_autoptr(QemuCmdline) cmdline = qemu_argv_build (vm, host, &caps);
  static const struct { QemuFdKind kind; guint nic, queue; } want[] = {
    { QEMU_FD_QMP, 0, 0 }, { QEMU_FD_SERIAL, 0, 0 },
    { QEMU_FD_TAP, 0, 0 }, { QEMU_FD_TAP, 0, 1 }, { QEMU_FD_VHOST, 0, 0 }, { QEMU_FD_VHOST, 0, 1 },
    { QEMU_FD_TAP, 1, 0 }, { QEMU_FD_TAP, 1, 1 }, { QEMU_FD_VHOST, 1, 0 }, { QEMU_FD_VHOST, 1, 1 },
    { QEMU_FD_TAP, 2, 0 },
  };

  g_assert_cmpuint (cmdline->fds->len, ==, G_N_ELEMENTS (want));
  for (guint i = 0; i < G_N_ELEMENTS (want); i++)
    {
      QemuFd *fd = &g_array_index (cmdline->fds, QemuFd, i);
      g_assert_cmpint (fd->fd, ==, 3 + (int) i);
      g_assert_cmpstr (qemu_fd_kind_to_string (fd->kind), ==, qemu_fd_kind_to_string (want[i].kind));
      g_assert_cmpuint (fd->nic, ==, want[i].nic);
      g_assert_cmpuint (fd->queue, ==, want[i].queue);
    }
}

static void
test_escape (void)
{
  g_autofree char *a = qemu_opt_escape ("/a,b,,c");
  g_autofree char *b = qemu_opt_escape ("plain");

  g_assert_cmpstr (a, ==, "/a,,b,,,,c");
  g_assert_cmpstr (b, ==, "plain");
}

static void
test_shell (void)
{
  char *argv[] = { "/usr/bin/qemu", "-S", "-name", "guest=a,debug-threads=on", "-append",
                   "console=ttyS0 it's", "-blockdev", "{\"a\":1}", NULL };
  g_autofree char *text = qemu_argv_to_shell (argv);

  g_assert_cmpstr (text, ==,
                   "/usr/bin/qemu \\\n  -S \\\n  -name guest=a,debug-threads=on \\\n"
                   "  -append 'console=ttyS0 it'\\''s' \\\n  -blockdev '{\"a\":1}'\n");
}

static void
test_probe_parse (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QemuProbe) probe = qemu_probe_parse (
      "Supported machines are:\n"
      "pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)\n"
      "q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)\n"
      "pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)\n"
      "pc-q35-7.1           Standard PC (Q35 + ICH9, 2009)\n"
      "none                 empty machine\n", FALSE, &error);
  g_autoptr(QemuProbe) none = NULL;

  g_assert_no_error (error);
  g_assert_cmpstr (probe->caps.default_machine, ==, "pc-q35-7.2");
  g_assert_true (qemu_probe_has_machine (probe, "pc-q35-7.1"));
  g_assert_false (qemu_probe_has_machine (probe, "pc-q35-9.9"));
  none = qemu_probe_parse ("Supported machines are:\nnone   empty machine\n", FALSE, &error);
  g_assert_null (none);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
}

/* The installed QEMU (when there is one) must accept what we build: ask it. */
static void
test_probe_real (void)
{
  const char *qemu = test_require_qemu ();
  g_autoptr(GError) error = NULL;
  g_autoptr(QemuProbe) probe = NULL;

  if (qemu == NULL)
    return;
  probe = qemu_probe_run (qemu, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (probe->default_machine, "pc-q35-"));
  g_assert_true (qemu_probe_has_machine (probe, probe->default_machine));
}

/* The probe's cache: a fake QEMU that counts its runs is asked once, then not again until
 * the binary changes (an upgrade) or the cache is damaged. */
static void
test_probe_cache (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *qemu = g_build_filename (dir, "qemu", NULL);
  g_autofree char *runs = g_build_filename (dir, "runs", NULL);
  g_autofree char *cache = g_build_filename (dir, "qemu-probe", NULL);
  const char *versions[] = { "7.2", "8.1" };

  for (gsize v = 0; v < G_N_ELEMENTS (versions); v++)
    {
      g_autofree char *text = g_strdup_printf (
        "#!/bin/sh\necho run >>%s\necho 'Supported machines are:'\n"
        "echo 'q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-%s)'\n"
        "echo 'pc-q35-%s           Standard PC (Q35 + ICH9, 2009)'\n", runs, versions[v], versions[v]);
      g_autofree char *want = g_strdup_printf ("pc-q35-%s", versions[v]);

      /* A new binary: v 0 the first install, v 1 an upgrade (a new file, as dpkg writes). */
      test_write_file (qemu, text);
      g_assert_no_errno (g_chmod (qemu, 0755));
      for (int i = 0; i < 2; i++)
        {
          g_autoptr(GError) error = NULL;
          g_autoptr(QemuProbe) probe = qemu_probe_run_cached (qemu, cache, &error);
          g_autofree char *log = test_read_file (runs);

          g_assert_no_error (error);
          g_assert_cmpstr (probe->default_machine, ==, want);
          g_assert_cmpuint (strlen (log), ==, (v + 1) * strlen ("run\n"));  /* once per binary */
        }
    }
  /* A damaged cache is asked again, and rewritten. */
  test_write_file (cache, "garbage\n");
  for (int i = 0; i < 2; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(QemuProbe) probe = qemu_probe_run_cached (qemu, cache, &error);
      g_autofree char *log = test_read_file (runs);

      g_assert_no_error (error);
      g_assert_cmpstr (probe->default_machine, ==, "pc-q35-8.1");
      g_assert_cmpuint (strlen (log), ==, 3 * strlen ("run\n"));
    }
  /* A cache that cannot be written (its folder is gone) is no error. */
  {
    g_autofree char *nowhere = g_build_filename (dir, "gone", "qemu-probe", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(QemuProbe) probe = qemu_probe_run_cached (qemu, nowhere, &error);

    g_assert_no_error (error);
    g_assert_nonnull (probe);
  }
}

int
main (int argc, char **argv)
{
  g_autofree char *data = NULL;
  g_autoptr(GPtrArray) cases = NULL;

  g_test_init (&argc, &argv, NULL);
  data = test_src_path ("tests/data/argv");
  cases = vm_dir_list (data, NULL);
  g_assert_nonnull (cases);
  g_assert_cmpuint (cases->len, >, 0);
  for (guint i = 0; i < cases->len; i++)
    {
      g_autofree char *name = g_strdup_printf ("/argv/golden/%s", (char *) cases->pdata[i]);
      g_test_add_data_func_full (name, g_build_filename (data, cases->pdata[i], NULL),
                                 test_golden, g_free);
    }
  g_test_add_func ("/argv/fd-plan", test_fd_plan);
  g_test_add_func ("/argv/escape", test_escape);
  g_test_add_func ("/argv/shell", test_shell);
  g_test_add_func ("/argv/probe-parse", test_probe_parse);
  g_test_add_func ("/argv/probe-real", test_probe_real);
  g_test_add_func ("/argv/probe-cache", test_probe_cache);
  return g_test_run ();
}
