/* test-cli.c: the vmherd binary as an operator runs it, without a daemon: check,
 * show-cmdline, usage and unreachable-daemon exit codes, exact messages. */
#include <glib/gstdio.h>
#include <string.h>

#include "tests/test-util.h"

typedef TestRun Run;

static void
run_clear (Run *r)
{
  test_run_clear (r);
}

static Run
run_vmherd (const char *config, const char *const *args)
{
  g_autofree char *bin = test_build_path ("vmherd");
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();

  g_ptr_array_add (argv, bin);
  g_ptr_array_add (argv, "--config");
  g_ptr_array_add (argv, (char *) config);
  for (; *args != NULL; args++)
    g_ptr_array_add (argv, (char *) *args);
  g_ptr_array_add (argv, NULL);
  return test_run ((const char *const *) argv->pdata, NULL);
}

static char *
host_dir (void)
{
  char *dir = test_tmpdir ();
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *vms = g_build_filename (dir, "vms.d", NULL);

  test_write_file (conf, "[daemon]\nvm-dir = vms.d\nrun-dir = run\nlog-dir = /var/log/vmherd\n"
                         "control-socket = run/control\n[bridge br-test]\nvlan-filtering = yes\n");
  g_assert_cmpint (g_mkdir (vms, 0755), ==, 0);
  return dir;
}

static void
write_vm (const char *dir, const char *name, const char *text)
{
  g_autofree char *file = g_strdup_printf ("vms.d/%s.conf", name);
  g_autofree char *path = g_build_filename (dir, file, NULL);

  test_write_file (path, text);
}

/* One broken file among ten: exactly its problems, all of them, with lines; exit 1. */
static void
test_check_one_broken_of_ten (void)
{
  g_autofree char *dir = host_dir ();
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *expected = NULL;
  const char *args[] = { "check", NULL };
  Run r;

  for (int i = 0; i < 9; i++)
    {
      g_autofree char *name = g_strdup_printf ("ioc-%02d", i);
      write_vm (dir, name, "[vm]\nmemory = 512M\n[net lan]\nbridge = br-test\nvlan = 10\n");
    }
  write_vm (dir, "broken", "[vm]\nmemory = 4X\ncpus = -1\n[disk root]\nimage = /nonexistent/broken.qcow2\n"
                           "format = qcow2\n[net lan]\nbridge = br-nowhere\n");
  g_autofree char *backup = g_build_filename (dir, "vms.d", "broken.conf~", NULL);
  g_autofree char *swap = g_build_filename (dir, "vms.d", ".broken.conf.swp", NULL);
  test_write_file (backup, "this editor backup is ignored\n");
  test_write_file (swap, "and so is this swap file\n");
  r = run_vmherd (conf, args);
  expected = g_strdup_printf ("%1$s/vms.d/broken.conf:2: memory: \"4X\" is not a size (use e.g. 512M or 2G)\n"
                              "%1$s/vms.d/broken.conf:3: cpus: -1 is out of range (use a number from 1 to 255)\n",
                              dir);
  g_assert_cmpstr (r.err, ==, expected);
  g_free (expected);
  expected = g_strdup_printf ("10 VM files in %s/vms.d, 1 with problems\n", dir);
  g_assert_cmpstr (r.out, ==, expected);   /* a summary; nothing about the good files */
  g_assert_cmpint (r.status, ==, 1);
  run_clear (&r);

  /* Fixed values reveal the checks that need the host. */
  write_vm (dir, "broken", "[vm]\nmemory = 512M\n[disk root]\nimage = /nonexistent/broken.qcow2\n"
                           "format = qcow2\n[net lan]\nbridge = br-nowhere\n");
  r = run_vmherd (conf, args);
  g_free (expected);
  expected = g_strdup_printf (
      "%1$s/vms.d/broken.conf:4: image: /nonexistent/broken.qcow2 does not exist and there is no base "
      "to create it from (create it with `vmherd image create`, or set base =)\n"
      "%1$s/vms.d/broken.conf:7: bridge: no bridge br-nowhere on this host and none declared in "
      "%1$s/vmherd.conf (add [bridge br-nowhere] there, or name an existing bridge)\n", dir);
  g_assert_cmpstr (r.err, ==, expected);
  g_assert_cmpint (r.status, ==, 1);
  run_clear (&r);

  /* And a clean directory: exit 0 and a summary. */
  g_autofree char *broken = g_build_filename (dir, "vms.d/broken.conf", NULL);
  g_unlink (broken);
  r = run_vmherd (conf, args);
  g_assert_cmpstr (r.err, ==, "");
  g_free (expected);
  expected = g_strdup_printf ("9 VM files in %s/vms.d, 0 with problems\n", dir);
  g_assert_cmpstr (r.out, ==, expected);
  g_assert_cmpint (r.status, ==, 0);
  run_clear (&r);
}

static void
test_check_duplicate_mac (void)
{
  g_autofree char *dir = host_dir ();
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *expected = NULL;
  const char *args[] = { "check", "-q", NULL };
  Run r;

  write_vm (dir, "a", "[vm]\nmemory = 512M\n[net lan]\nbridge = br-test\nmac = 52:54:00:00:00:0a\n");
  write_vm (dir, "b", "[vm]\nmemory = 512M\n[net lan]\nbridge = br-test\nmac = 52:54:00:00:00:0A\n");
  r = run_vmherd (conf, args);
  expected = g_strdup_printf ("%1$s/vms.d/b.conf:5: mac: 52:54:00:00:00:0a is already used by another "
                              "NIC (give one of them another mac =) (%1$s/vms.d/a.conf:5, VM 'a')\n", dir);
  g_assert_cmpstr (r.err, ==, expected);
  g_assert_cmpstr (r.out, ==, "");
  g_assert_cmpint (r.status, ==, 1);
  run_clear (&r);
}

static void
test_show_cmdline (void)
{
  g_autofree char *dir = host_dir ();
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  const char *args[] = { "show-cmdline", "ioc", NULL };
  const char *slash[] = { "show-cmdline", "a/b", NULL };
  const char *missing[] = { "show-cmdline", "nope", NULL };
  g_autofree char *expected = NULL;
  Run r;

  if (test_require_qemu () == NULL)
    return;
  write_vm (dir, "ioc", "[vm]\nmemory = 512M\nuuid = 4c3a1e2e-8f1b-4b7a-9c1d-2e3f4a5b6c7d\n"
                        "[kernel]\npath = /boot/k\nappend = console=ttyS0 quiet\n[health]\npanic = none\n");
  r = run_vmherd (conf, args);
  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (g_str_has_prefix (r.out, "/usr/bin/qemu-system-x86_64 \\\n  -name guest=ioc,debug-threads=on \\\n  -S \\\n"));
  g_assert_nonnull (strstr (r.out, "  -uuid 4c3a1e2e-8f1b-4b7a-9c1d-2e3f4a5b6c7d \\\n"));
  g_assert_nonnull (strstr (r.out, "  -append 'console=ttyS0 quiet'\n"));
  g_assert_nonnull (strstr (r.out, "  -machine pc-q35-"));
  run_clear (&r);

  r = run_vmherd (conf, slash);
  g_assert_cmpstr (r.err, ==, "'a/b' is not a valid VM name: it may hold only letters, digits, '-', '_' and '.'\n");
  g_assert_cmpint (r.status, ==, 1);
  run_clear (&r);

  r = run_vmherd (conf, missing);
  expected = g_strdup_printf ("no VM named 'nope' in %s/vms.d (known: ioc)\n", dir);
  g_assert_cmpstr (r.err, ==, expected);
  g_assert_cmpint (r.status, ==, 1);
  run_clear (&r);
}

static void
test_usage_and_unreachable (void)
{
  g_autofree char *dir = host_dir ();
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *expected = NULL;
  const char *bogus[] = { "frobnicate", NULL };
  const char *no_name[] = { "status", NULL };
  const char *list[] = { "list", NULL };
  Run r;

  r = run_vmherd (conf, bogus);
  g_assert_true (g_str_has_prefix (r.err, "vmherd: unknown command 'frobnicate'\nusage: vmherd [--config FILE] COMMAND"));
  g_assert_cmpint (r.status, ==, 2);
  run_clear (&r);

  r = run_vmherd (conf, no_name);
  g_assert_cmpstr (r.err, ==, "usage: vmherd status NAME [--json]\n");
  g_assert_cmpint (r.status, ==, 2);
  run_clear (&r);

  r = run_vmherd (conf, list);
  expected = g_strdup_printf ("cannot reach vmherdd at %s/run/control: No such file or directory "
                              "(is vmherdd running?)\n", dir);
  g_assert_cmpstr (r.err, ==, expected);
  g_assert_cmpint (r.status, ==, 3);
  run_clear (&r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/check-one-broken-of-ten", test_check_one_broken_of_ten);
  g_test_add_func ("/cli/check-duplicate-mac", test_check_duplicate_mac);
  g_test_add_func ("/cli/show-cmdline", test_show_cmdline);
  g_test_add_func ("/cli/usage-and-unreachable", test_usage_and_unreachable);
  return g_test_run ();
}
