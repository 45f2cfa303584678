/* test-config.c: VM and host config files, their errors (golden), and the checks that
 * need the host or several files. */
#include <glib/gstdio.h>
#include <string.h>

#include "launcher/host-config.h"
#include "launcher/vm-check.h"
#include "launcher/vm-config.h"
#include "tests/test-util.h"

/* Errors of one file as "LINE: message" lines, the form of tests/data/config/CASE.err. */
static char *
errors_text (ConfigErrors *errors)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < errors->len; i++)
    {
      const ConfigError *e = errors->pdata[i];
      g_string_append_printf (s, "%d: %s\n", e->line, e->message);
    }
  return g_string_free (s, FALSE);
}

static void
test_golden_errors (gconstpointer data)
{
  const char *conf = data;
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(VmConfig) vm = vm_config_load (conf, errors);
  g_autofree char *stem = g_strndup (conf, strlen (conf) - strlen (".conf"));
  g_autofree char *golden = g_strconcat (stem, ".err", NULL);
  g_autofree char *text = errors_text (errors);

  g_assert_true ((vm == NULL) == (errors->len > 0));
  test_assert_golden (golden, text);
}

static VmConfig *
load_string (const char *dir, const char *name, const char *text, ConfigErrors *errors)
{
  g_autofree char *file = g_strdup_printf ("%s.conf", name);
  g_autofree char *path = g_build_filename (dir, file, NULL);

  test_write_file (path, text);
  return vm_config_load (path, errors);
}

static void
test_defaults (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(VmConfig) vm = load_string (dir, "ioc-01", "[vm]\nmemory = 2G\n\n[net lan]\n"
                                        "bridge = br0\n[disk root]\nimage = r.qcow2\n"
                                        "format = qcow2\n", errors);

  g_assert_cmpuint (errors->len, ==, 0);
  g_assert_cmpstr (vm->name, ==, "ioc-01");
  g_assert_cmpuint (vm->memory, ==, G_GUINT64_CONSTANT (2) << 30);
  g_assert_cmpint (vm->cpus, ==, 1);
  g_assert_cmpint (vm->restart, ==, VM_RESTART_ON_FAILURE);
  g_assert_cmpstr (vm->cpu_model, ==, "qemu64");
  g_assert_cmpstr (vm->accel, ==, "kvm:tcg");
  g_assert_null (vm->machine);
  g_assert_false (vm->autostart);
  /* Derived identity is the same on every host, and a pure function of the names. */
  g_autofree char *uuid = vm_derive_uuid ("ioc-01");
  g_assert_cmpstr (vm->uuid, ==, uuid);
  g_assert_true (g_uuid_string_is_valid (vm->uuid));
  g_assert_cmpstr (((VmNic *) vm->nics->pdata[0])->mac, ==, "52:54:7f:ae:09:4a");
  /* Relative image paths are relative to the VM file. */
  g_autofree char *image = g_build_filename (dir, "r.qcow2", NULL);
  g_assert_cmpstr (((VmDisk *) vm->disks->pdata[0])->image, ==, image);
  g_assert_cmpint (((VmDisk *) vm->disks->pdata[0])->cache, ==, VM_CACHE_NONE);
  g_assert_cmpint (((VmDisk *) vm->disks->pdata[0])->on_error, ==, VM_ON_ERROR_STOP);
}

static void
test_derived_identity (void)
{
  g_autofree char *mac1 = vm_derive_mac ("web", "lan");
  g_autofree char *mac2 = vm_derive_mac ("web", "lan2");
  g_autofree char *mac3 = vm_derive_mac ("webl", "an");
  g_autofree char *uuid = vm_derive_uuid ("web");

  g_assert_true (g_str_has_prefix (mac1, "52:54:"));
  g_assert_cmpstr (mac1, !=, mac2);
  g_assert_cmpstr (mac1, !=, mac3);      /* names are hashed with a separator */
  g_assert_cmpint (uuid[14], ==, '5');   /* version 5 layout */
  g_assert_nonnull (strchr ("89ab", uuid[19]));
}

static void
test_names (void)
{
  g_autofree char *problem = NULL;
  g_autofree char *long_name = g_strnfill (49, 'a');
  g_autofree char *name = NULL;

  g_assert_true (vm_name_is_valid ("ioc_01.b-2", NULL));
  g_assert_false (vm_name_is_valid ("a/b", &problem));
  g_assert_cmpstr (problem, ==, "may hold only letters, digits, '-', '_' and '.'");
  g_assert_false (vm_name_is_valid (long_name, NULL));
  g_assert_false (vm_name_is_valid (".hidden", NULL));
  g_assert_null (vm_name_from_file ("web.conf~"));
  g_assert_null (vm_name_from_file (".web.conf.swp"));
  g_assert_null (vm_name_from_file ("web.conf.dpkg-old"));
  g_assert_null (vm_name_from_file (".conf"));
  name = vm_name_from_file ("web.conf");
  g_assert_cmpstr (name, ==, "web");
}

static void
test_parsers (void)
{
  guint64 bytes;
  gint64 ms;

  g_assert_true (config_parse_size ("512M", &bytes));
  g_assert_cmpuint (bytes, ==, 512u << 20);
  g_assert_true (config_parse_size ("2GiB", &bytes));
  g_assert_cmpuint (bytes, ==, G_GUINT64_CONSTANT (2) << 30);
  g_assert_false (config_parse_size ("4X", &bytes));
  g_assert_false (config_parse_size ("-1G", &bytes));
  g_assert_false (config_parse_size ("99999999999999999999T", &bytes));
  g_assert_true (config_parse_duration ("500ms", &ms));
  g_assert_cmpint (ms, ==, 500);
  g_assert_true (config_parse_duration ("2m", &ms));
  g_assert_cmpint (ms, ==, 120000);
  g_assert_true (config_parse_duration ("7", &ms));
  g_assert_cmpint (ms, ==, 7000);
  g_assert_false (config_parse_duration ("5 s", &ms));
}

static void
test_long_line (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autofree char *append = g_strnfill (5000, 'x');
  g_autofree char *text = g_strdup_printf ("[vm]\nmemory = 512M\n[kernel]\npath = /k\n"
                                           "append = %s\ninitrd = /i\n", append);
  g_autoptr(VmConfig) vm = load_string (dir, "long", text, errors);
  g_autofree char *got = errors_text (errors);

  g_assert_null (vm);
  g_assert_cmpstr (got, ==, "5: line longer than 4093 characters\n");
}

static void
test_kernel_append_kept_literally (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(VmConfig) vm = load_string (dir, "k", "[vm]\nmemory=512M\n[kernel]\npath=/k\n"
                                        "append = console=ttyS0 ip=1.2.3.4 ; not a comment\n",
                                        errors);

  g_assert_cmpuint (errors->len, ==, 0);
  g_assert_cmpstr (vm->append, ==, "console=ttyS0 ip=1.2.3.4 ; not a comment");
}

static HostConfig *
host_for (const char *dir, const char *extra)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autofree char *path = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *text = g_strdup_printf ("[daemon]\nvm-dir = vms.d\nqemu-user = nobody\n%s",
                                           extra);
  HostConfig *host;

  test_write_file (path, text);
  host = host_config_load (path, errors);
  g_assert_cmpuint (errors->len, ==, 0);
  return host;
}

static void
test_host_config (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autoptr(HostConfig) host = host_for (dir, "[bridge br0]\nuplink = eth0\nmtu = 9000\n"
                                         "vlan-filtering = yes\n");
  g_autofree char *vm_dir = g_build_filename (dir, "vms.d", NULL);
  const HostBridge *br;

  g_assert_cmpstr (host->vm_dir, ==, vm_dir);
  g_assert_cmpstr (host->run_dir, ==, "/run/vmherd");
  g_assert_cmpstr (host->control_socket, ==, "/run/vmherd/control");
  g_assert_cmpstr (host->qemu_user, ==, "nobody");
  br = host_config_find_bridge (host, "br0");
  g_assert_nonnull (br);
  g_assert_cmpstr (br->uplink, ==, "eth0");
  g_assert_cmpint (br->mtu, ==, 9000);
  g_assert_true (br->vlan_filtering);
  g_assert_false (br->stp);
  g_assert_cmpint (br->forward_delay_ms, ==, 0);
}

static void
test_host_config_errors (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "vmherd.conf", NULL);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = NULL;
  g_autofree char *text = NULL;

  test_write_file (path, "[daemon]\nqemu-user = \nfrob = 1\n[bridge this-name-is-too-long]\n"
                   "[bridge br0]\nmtu = 10\nuplink = a/b\n[peers]\n"
                   "[migration]\nbandwidth = fast\ndowntime = 0ms\nstall-timeout = 2h\nspeed = 1\n[migration]\n");
  host = host_config_load (path, errors);
  g_assert_null (host);
  text = errors_text (errors);
  g_assert_cmpstr (text, ==,
                   "2: qemu-user: empty value (use e.g. vmherd-qemu)\n"
                   "3: frob: unknown key in [daemon] (known: vm-dir, run-dir, state-dir, log-dir, "
                   "qemu, qemu-img, qemu-user, qemu-group, control-socket, control-group, "
                   "parallel-starts, metrics-listen)\n"
                   "4: [bridge this-name-is-too-long]: not an interface name (1 to 15 characters, "
                   "no '/', ':' or spaces; e.g. [bridge br0])\n"
                   "6: mtu: 10 is out of range (use a number from 68 to 65535)\n"
                   "7: uplink: \"a/b\" is not an interface name (e.g. eth0 or bond0)\n"
                   "8: unknown section [peers] (known: [daemon], [bridge NAME], [peer], [migration])\n"
                   "10: bandwidth: \"fast\" is not a whole number (use Mbit/s, a number from 0 (no cap) to 1000000)\n"
                   "11: downtime: 0ms is out of range (use a duration from 1ms to 2000s, e.g. 50ms)\n"
                   "12: stall-timeout: 2h is out of range (use a duration from 1s to 1h, e.g. 30s)\n"
                   "13: speed: unknown key in [migration] (known: address, bandwidth, downtime, "
                   "max-downtime, timeout, stall-timeout)\n"
                   "14: [migration] appears twice (first at line 9; merge the two)\n");
}

/* [migration]: defaults, and each key read. */
static void
test_host_config_migration (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "vmherd.conf", NULL);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) defaults = NULL, host = NULL;

  test_write_file (path, "[daemon]\n");
  defaults = host_config_load (path, errors);
  g_assert_nonnull (defaults);
  g_assert_null (defaults->migrate_address);
  g_assert_cmpint (defaults->migrate_bandwidth_mbit, ==, 0);
  g_assert_cmpint (defaults->migrate_downtime_ms, ==, 50);
  g_assert_cmpint (defaults->migrate_max_downtime_ms, ==, 1000);
  g_assert_cmpint (defaults->migrate_timeout_ms, ==, 600000);
  g_assert_cmpint (defaults->migrate_stall_timeout_ms, ==, 30000);
  test_write_file (path, "[migration]\naddress = 10.1.0.1\nbandwidth = 1000\ndowntime = 30ms\n"
                   "max-downtime = 2s\ntimeout = 5min\nstall-timeout = 10s\n");
  host = host_config_load (path, errors);
  g_assert_cmpuint (errors->len, ==, 0);
  g_assert_cmpstr (host->migrate_address, ==, "10.1.0.1");
  g_assert_cmpint (host->migrate_bandwidth_mbit, ==, 1000);
  g_assert_cmpint (host->migrate_downtime_ms, ==, 30);
  g_assert_cmpint (host->migrate_max_downtime_ms, ==, 2000);
  g_assert_cmpint (host->migrate_timeout_ms, ==, 300000);
  g_assert_cmpint (host->migrate_stall_timeout_ms, ==, 10000);
}

/* metrics-listen: an IP literal (IPv6 in brackets) and a port, else a file:line error. */
static void
test_host_metrics_listen (void)
{
  static const char *const good[] = { "127.0.0.1:9177", "0.0.0.0:1", "[::1]:9177", "[::]:65535" };
  static const char *const bad[] = { "x", "localhost:9177", "127.0.0.1", "127.0.0.1:0",
                                     "127.0.0.1:65536", "::1:9177", "[::1]9177", "[1.2.3.4]:80",
                                     "127.0.0.1:91x", ":9177" };
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "vmherd.conf", NULL);

  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autofree char *extra = g_strdup_printf ("metrics-listen = %s\n", good[i]);
      g_autoptr(HostConfig) host = host_for (dir, extra);
      g_assert_cmpstr (host->metrics_listen, ==, good[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(ConfigErrors) errors = config_errors_new ();
      g_autofree char *text = g_strdup_printf ("[daemon]\nqemu-user = nobody\nmetrics-listen = %s\n",
                                               bad[i]);
      g_autofree char *expected = g_strdup_printf ("%s:3: metrics-listen: \"%s\" is not ADDR:PORT "
                                                   "(e.g. 127.0.0.1:9177)", path, bad[i]);
      g_autofree char *got = NULL;
      g_autoptr(HostConfig) host = NULL;

      test_write_file (path, text);
      host = host_config_load (path, errors);
      g_assert_null (host);
      g_assert_cmpuint (errors->len, ==, 1);
      got = config_error_format (errors->pdata[0]);
      g_assert_cmpstr (got, ==, expected);
    }
  {
    g_autoptr(HostConfig) host = host_for (dir, "");
    g_assert_null (host->metrics_listen);   /* off by default */
  }
}

static void
test_missing_host_config (void)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = host_config_load ("/nonexistent/vmherd.conf", errors);
  g_autofree char *text = NULL;

  g_assert_null (host);
  text = config_error_format (errors->pdata[0]);
  g_assert_cmpstr (text, ==, "/nonexistent/vmherd.conf: cannot read: No such file or directory");
}

/* Host checks: the image, the bridge. */
static void
test_host_checks (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autoptr(HostConfig) host = host_for (dir, "[bridge br0]\n");
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(VmConfig) vm = NULL;
  g_autofree char *text = NULL;
  g_autofree char *expected = NULL;

  g_mkdir (host->vm_dir, 0755);
  vm = load_string (host->vm_dir, "web",
                    "[vm]\nmemory = 512M\n[disk root]\nimage = /nonexistent/web.qcow2\n"
                    "format = qcow2\n[disk data]\nimage = /tmp\nformat = raw\n"
                    "[net lan]\nbridge = br0\n[net mgmt]\nbridge = vmherd-nobr0\n", errors);
  g_assert_nonnull (vm);
  vm_check_host (vm, host, NULL, errors);
  text = errors_text (errors);
  expected = g_strdup_printf (
      "4: image: /nonexistent/web.qcow2 does not exist and there is no base to create it from "
      "(create it with `vmherd image create`, or set base =)\n"
      "7: image: /tmp is a directory (name an image file)\n"
      "12: bridge: no bridge vmherd-nobr0 on this host and none declared in %s/vmherd.conf "
      "(add [bridge vmherd-nobr0] there, or name an existing bridge)\n", dir);
  g_assert_cmpstr (text, ==, expected);
}

static void
test_duplicate_mac_across_files (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autoptr(HostConfig) host = host_for (dir, "[bridge br0]\n");
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(GPtrArray) good = NULL;
  g_autofree char *a = NULL, *b = NULL, *expected = NULL;
  guint files;

  g_mkdir (host->vm_dir, 0755);
  a = g_build_filename (host->vm_dir, "a.conf", NULL);
  b = g_build_filename (host->vm_dir, "b.conf", NULL);
  test_write_file (a, "[vm]\nmemory = 512M\n[net lan]\nbridge = br0\nmac = 52:54:00:00:00:01\n");
  test_write_file (b, "[vm]\nmemory = 512M\n\n[net lan]\nbridge = br0\n"
                      "mac = 52:54:00:00:00:01\n");
  good = vm_check_dir (host, NULL, errors, &files);
  g_assert_cmpuint (files, ==, 2);
  g_assert_cmpuint (good->len, ==, 1);
  g_assert_cmpuint (errors->len, ==, 1);
  expected = g_strdup_printf ("%s:6: mac: 52:54:00:00:00:01 is already used by another NIC "
                              "(give one of them another mac =) (%s:5, VM 'a')", b, a);
  g_autofree char *got = config_error_format (errors->pdata[0]);
  g_assert_cmpstr (got, ==, expected);
}

static void
test_shared_image_and_written_base (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autoptr(HostConfig) host = host_for (dir, "");
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(GPtrArray) good = NULL;
  g_autofree char *img = g_build_filename (dir, "a.qcow2", NULL);
  g_autofree char *text = NULL;
  guint files;

  g_mkdir (host->vm_dir, 0755);
  test_write_file (img, "");
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *p = g_strdup_printf ("%s/v%d.conf", host->vm_dir, i);
      g_autofree char *t = g_strdup_printf ("[vm]\nmemory = 512M\n[disk root]\nformat = qcow2\n%s = %s\n%s",
                                            i < 2 ? "image" : "base", img,
                                            i < 2 ? "" : "image = /nonexistent/v2.qcow2\n");
      test_write_file (p, t);
    }
  good = vm_check_dir (host, NULL, errors, &files);
  g_assert_cmpuint (good->len, ==, 1);
  g_assert_cmpuint (errors->len, ==, 2);
  text = config_error_format (errors->pdata[0]);
  g_assert_nonnull (strstr (text, "v1.conf:5: image: "));
  g_assert_nonnull (strstr (text, "is already written by another disk"));
  g_free (text);
  text = config_error_format (errors->pdata[1]);
  g_assert_nonnull (strstr (text, "v2.conf:5: base: "));
  g_assert_nonnull (strstr (text, "is the writable image of VM 'v0'"));
}

int
main (int argc, char **argv)
{
  g_autofree char *data = NULL;
  g_autoptr(GPtrArray) cases = NULL;

  g_test_init (&argc, &argv, NULL);
  data = test_src_path ("tests/data/config");
  cases = vm_dir_list (data, NULL);
  g_assert_nonnull (cases);
  for (guint i = 0; i < cases->len; i++)
    {
      g_autofree char *name = g_strdup_printf ("/config/golden/%s", (char *) cases->pdata[i]);
      char *path = g_build_filename (data, cases->pdata[i], NULL);
      g_test_add_data_func_full (name, path, test_golden_errors, g_free);
    }
  g_test_add_func ("/config/defaults", test_defaults);
  g_test_add_func ("/config/derived-identity", test_derived_identity);
  g_test_add_func ("/config/names", test_names);
  g_test_add_func ("/config/parsers", test_parsers);
  g_test_add_func ("/config/long-line", test_long_line);
  g_test_add_func ("/config/append-literal", test_kernel_append_kept_literally);
  g_test_add_func ("/config/host", test_host_config);
  g_test_add_func ("/config/host-errors", test_host_config_errors);
  g_test_add_func ("/config/host-migration", test_host_config_migration);
  g_test_add_func ("/config/host-missing", test_missing_host_config);
  g_test_add_func ("/config/host-metrics-listen", test_host_metrics_listen);
  g_test_add_func ("/check/host", test_host_checks);
  g_test_add_func ("/check/duplicate-mac", test_duplicate_mac_across_files);
  g_test_add_func ("/check/images", test_shared_image_and_written_base);
  return g_test_run ();
}
