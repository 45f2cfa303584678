/* test-guest-vlan.c: VLANs end to end.  vmherdd puts three real guests on a bridge with
 * vlan-filtering = yes (a10 and b10 on VLAN 10, c20 on VLAN 20, all in one IP subnet, each
 * configuring its address from the kernel command line); from a namespace attached to the
 * bridge on VLAN 10, ping reaches both VLAN-10 guests and not the VLAN-20 guest, which a
 * namespace on VLAN 20 does reach (so it is up, and only the VLAN keeps the first out).
 * The bridge's uplink, a veth to a namespace standing for the site's switch, carries the
 * guests' VLANs tagged: a VLAN-10 interface there reaches b10, not c20.  Then a10
 * live-migrates to a second vmherdd (host b, in its own namespace, its bridge joined to the
 * first by a VLAN trunk) and keeps its VLAN there: VLAN 10 reaches it, VLAN 20 does not.
 *
 * Where: the CI hosts' kernel has no bridge VLAN filtering, so the test runs inside
 * User-mode Linux (Debian's user-mode-linux package: a Linux 6.1 kernel that runs as a
 * host process, with CONFIG_BRIDGE_VLAN_FILTERING=y and bridge, tun and veth as modules).
 * Its root file system is the host's own, shared read-only through hostfs, so vmherdd,
 * vmherd, QEMU and the test guest are the host's files; /run (TMPDIR=/run/tmp) and /dev
 * are its own, and the host's /tmp stays visible, read-only (a build may live there).
 * The guests are QEMU under TCG inside it: about 2.5 times slower to boot than on the host
 * (13 s instead of 5 s to "vmherd-guest: ready"), because every system call and page fault
 * of a UML process goes through ptrace.  It is much faster than nesting a TCG guest in a
 * TCG guest, and UML boots in about 1.5 s.
 *
 * This binary is both halves: run by make check, it boots UML with an init script (made
 * here) that mounts what the kernel needs, loads the modules, and runs this binary again
 * with VMHERD_TEST_IN_UML=1 inside; that run does the test.  Its TAP output comes back on
 * UML's console (repeated here as "# " lines) and, with its exit status, in a folder of
 * this test's temporary folder mounted read-write through hostfs.
 *
 * ASan cannot run under UML: its shadow memory lies far above the 512 GB address space of
 * a UML process.  A sanitizer build therefore runs the plain build's binaries inside
 * (VMHERD_UML_BUILDDIR, which `make SANITIZE=1 check` sets to build/ and builds first). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "net/tap.h"
#include "tests/harness.h"
#include "tests/test-util.h"

#if defined(__SANITIZE_ADDRESS__)
#define BUILT_WITH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BUILT_WITH_ASAN 1
#endif
#endif

#define UML_TIMEOUT_MS (360 * 1000)   /* 60 to 80 s on the shared 2 cores here */
#define GUEST_TIMEOUT_S 240           /* one guest's first answer, three booting at once */
#define UML_MODULES "/usr/lib/uml/modules"
#define MARKER "vmherd-uml: "

/* ---- inside UML: the test itself ---- */

static void
sh (const char *command)
{
  const char *argv[] = { "/bin/sh", "-c", command, NULL };
  TestRun r = test_run (argv, NULL);

  if (r.status != 0)
    g_error ("`%s` failed (%d): %s%s", command, r.status, r.out, r.err);
  test_run_clear (&r);
}

static int
ping_from (const char *ns, const char *address, int count)
{
  g_autofree char *cmd = g_strdup_printf ("ip netns exec %s ping -n -q -c %d -W 1 %s", ns, count, address);
  const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
  TestRun r = test_run (argv, NULL);
  int status = r.status;

  test_run_clear (&r);
  return status;
}

/* Pings until the guest answers (each ping waits up to a second for its reply). */
static void
wait_for_ping (const char *ns, const char *address, int seconds)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) seconds * G_USEC_PER_SEC;
  gint64 start = g_get_monotonic_time ();

  while (ping_from (ns, address, 1) != 0)
    if (g_get_monotonic_time () > deadline)
      g_error ("%s never answered a ping from %s within %d s", address, ns, seconds);
  g_test_message ("%s answers %s after %.1f s", address, ns,
                  (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC);
}

/* A namespace NAME with a veth whose peer is a port of bridge on vlan (PVID, untagged). */
static void
namespace_on_vlan (const char *name, const char *bridge, int vlan, const char *address)
{
  g_autofree char *cmd = g_strdup_printf (
    "ip netns add %1$s && ip link add %1$s-br type veth peer name %1$s-in"
    " && ip link set %1$s-in netns %1$s && ip link set %1$s-br master %2$s"
    " && bridge vlan add dev %1$s-br vid %3$d pvid untagged && bridge vlan del dev %1$s-br vid 1"
    " && ip link set %1$s-br up && ip -n %1$s link set lo up && ip -n %1$s link set %1$s-in up"
    " && ip -n %1$s addr add %4$s dev %1$s-in", name, bridge, vlan, address);

  sh (cmd);
}

/* The VLANs of a bridge port (in namespace ns, nullable), from `bridge -j vlan show dev PORT`: "10PU" is VLAN 10 as
 * PVID, egress untagged; "1PU 10 20" adds 10 and 20, tagged. */
static char *
port_vlans_in (const char *ns, const char *port)
{
  g_autofree char *cmd = g_strdup_printf ("%s%s%sbridge -j vlan show dev %s", ns ? "ip netns exec " : "",
                                          ns ? ns : "", ns ? " " : "", port);
  const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
  TestRun r = test_run (argv, NULL);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  GString *out = g_string_new (NULL);
  JsonArray *ports, *vlans;

  g_assert_cmpint (r.status, ==, 0);
  json_parser_load_from_data (parser, r.out, -1, &error);
  g_assert_no_error (error);
  ports = json_node_get_array (json_parser_get_root (parser));
  g_assert_cmpuint (json_array_get_length (ports), ==, 1);
  vlans = json_object_get_array_member (json_array_get_object_element (ports, 0), "vlans");
  for (guint i = 0; i < json_array_get_length (vlans); i++)
    {
      JsonObject *v = json_array_get_object_element (vlans, i);
      gint64 first = json_object_get_int_member (v, "vlan");
      gint64 last = json_object_get_int_member_with_default (v, "vlanEnd", first);
      JsonArray *flags = json_object_has_member (v, "flags") ? json_object_get_array_member (v, "flags") : NULL;
      gboolean pvid = FALSE, untagged = FALSE;

      for (guint f = 0; flags != NULL && f < json_array_get_length (flags); f++)
        {
          pvid |= g_str_equal (json_array_get_string_element (flags, f), "PVID");
          untagged |= g_str_equal (json_array_get_string_element (flags, f), "Egress Untagged");
        }
      for (gint64 vid = first; vid <= last; vid++)
        g_string_append_printf (out, "%s%" G_GINT64_FORMAT "%s%s", out->len ? " " : "", vid,
                                pvid ? "P" : "", untagged ? "U" : "");
    }
  test_run_clear (&r);
  return g_string_free (out, FALSE);
}

static char *
port_vlans (const char *port)
{
  return port_vlans_in (NULL, port);
}

/* The tap of vm's NIC "lan" has exactly VLAN vlan, as its PVID, untagged (the kernel's
 * default VLAN 1 removed). */
static void
assert_tap_vlan_in (const char *ns, const char *vm, int vlan)
{
  g_autofree char *tap = net_tap_name (vm, "lan");
  g_autofree char *have = port_vlans_in (ns, tap);
  g_autofree char *want = g_strdup_printf ("%dPU", vlan);

  g_assert_cmpstr (have, ==, want);
}

static void
assert_tap_vlan (const char *vm, int vlan)
{
  assert_tap_vlan_in (NULL, vm, vlan);
}

static char *
vm_file (const char *ip, int vlan)
{
  g_autofree char *kernel = NULL, *initrd = NULL;

  g_assert_true (test_require_guest (&kernel, &initrd));
  return g_strdup_printf ("[vm]\nmemory = 128M\n[kernel]\npath = %s\ninitrd = %s\n"
                          "append = console=ttyS0 quiet vmherd.ip=%s\n"
                          "[net lan]\nbridge = brv0\nvlan = %d\n[health]\npanic = none\n",
                          kernel, initrd, ip, vlan);
}

/* [peer] of host name (a: 10.90.0.1, b: 10.90.0.2, on the management link), certificates
 * from pki, the other host as its peer. */
static char *
peer_config (const char *pki, const char *name)
{
  const char *other = strcmp (name, "a") == 0 ? "b" : "a";

  return g_strdup_printf ("[peer]\nname = %1$s\nlisten = 10.90.0.%3$d:7480\nca = %2$s/ca-cert.pem\n"
                          "cert = %2$s/%1$s-cert.pem\nkey = %2$s/%1$s-key.pem\n"
                          "host = %4$s 10.90.0.%5$d:7480\n", name, pki, name[0] - 'a' + 1, other,
                          other[0] - 'a' + 1);
}

/* Host b, in namespace vlb: its own bridge brv0 with VLAN filtering, whose uplink is a
 * veth trunk to host a's brv0 (VLANs 10 and 20 tagged on a's end), and a management link
 * to host a that carries the peer link and the migration stream.  a10 moves there and
 * keeps its VLAN: its tap on b is on VLAN 10 alone, b's uplink carries 10, the namespace on
 * VLAN 10 reaches it through the trunk, the one on VLAN 20 still does not. */
static void
migrate_keeps_vlan (Host *a, const char *pki)
{
  g_autofree char *b_peer = peer_config (pki, "b");
  g_autofree char *b_config = NULL, *b_uplink = NULL, *bin = test_build_path ("vmherd");
  const char *argv[] = { bin, "--config", a->config, "migrate", "a10", "b", NULL };
  TestRun r;
  Host *b;

  sh ("ip link add vltr-a type veth peer name vltr-b netns vlb && ip link set vltr-a master brv0"
      " && bridge vlan add dev vltr-a vid 10 && bridge vlan add dev vltr-a vid 20"
      " && ip link set vltr-a up && ip -n vlb link set vltr-b up");
  b_config = g_strdup_printf ("[bridge brv0]\nvlan-filtering = yes\nuplink = vltr-b\n%s", b_peer);
  b = host_new (b_config);
  b->netns = g_strdup ("vlb");
  host_restart_daemon (b);

  r = test_run (argv, NULL);
  g_test_message ("vmherd migrate a10 b: %s%s", r.out, r.err);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);

  assert_tap_vlan_in ("vlb", "a10", 10);
  b_uplink = port_vlans_in ("vlb", "vltr-b");
  g_assert_cmpstr (b_uplink, ==, "1PU 10");
  wait_for_ping ("vlt10", "10.89.0.2", 10);
  g_assert_cmpint (ping_from ("vlt20", "10.89.0.2", 2), !=, 0);
}

static void
test_vlans_inside (void)
{
  g_autofree char *a10 = vm_file ("10.89.0.2/24", 10);
  g_autofree char *b10 = vm_file ("10.89.0.3/24", 10);
  g_autofree char *c20 = vm_file ("10.89.0.4/24", 20);
  g_autofree char *uplink_vlans = NULL, *a_config = NULL, *a_peer = NULL;
  g_autofree char *pki = g_dir_make_tmp ("vmherd-pki-XXXXXX", NULL);
  g_autofree char *pki_tool = test_src_path ("tools/vmherd-pki");
  g_autofree char *make_pki = g_strdup_printf ("%1$s ca %2$s && %1$s host %2$s a 10.90.0.1 && "
                                               "%1$s host %2$s b 10.90.0.2", pki_tool, pki);
  Host *h;

  /* The uplink: a veth whose far end, in namespace vlup, stands for the site's network
   * switch, with VLAN 10 tagged on it. */
  sh ("ip netns add vlup && ip link add vlup-br type veth peer name vlup-in"
      " && ip link set vlup-in netns vlup && ip link set vlup-br up && ip -n vlup link set lo up"
      " && ip -n vlup link set vlup-in up"
      " && ip -n vlup link add link vlup-in name vlup-in.10 type vlan id 10"
      " && ip -n vlup link set vlup-in.10 up && ip -n vlup addr add 10.89.0.30/24 dev vlup-in.10");
  /* Host b's namespace and the management link between the two hosts (see
   * migrate_keeps_vlan), which must be there before a's vmherdd listens on it. */
  sh (make_pki);
  sh ("ip netns add vlb && ip -n vlb link set lo up"
      " && ip link add vlm-a type veth peer name vlm-b netns vlb"
      " && ip addr add 10.90.0.1/24 dev vlm-a && ip link set vlm-a up"
      " && ip -n vlb addr add 10.90.0.2/24 dev vlm-b && ip -n vlb link set vlm-b up");
  a_peer = peer_config (pki, "a");
  a_config = g_strdup_printf ("[bridge brv0]\nvlan-filtering = yes\nuplink = vlup-br\n%s", a_peer);
  h = host_start_with (a_config, "a10", a10, "b10", b10, "c20", c20, NULL);

  start_vm (h, "a10");
  start_vm (h, "b10");
  start_vm (h, "c20");
  assert_tap_vlan ("a10", 10);
  assert_tap_vlan ("b10", 10);
  assert_tap_vlan ("c20", 20);
  /* The uplink carries the guests' VLANs, tagged, and keeps its own default VLAN 1. */
  uplink_vlans = port_vlans ("vlup-br");
  g_assert_cmpstr (uplink_vlans, ==, "1PU 10 20");
  namespace_on_vlan ("vlt10", "brv0", 10, "10.89.0.1/24");
  namespace_on_vlan ("vlt20", "brv0", 20, "10.89.0.9/24");

  /* Each guest answers on its own VLAN: all three are up and configured. */
  wait_for_ping ("vlt10", "10.89.0.2", GUEST_TIMEOUT_S);
  wait_for_ping ("vlt10", "10.89.0.3", GUEST_TIMEOUT_S);
  wait_for_ping ("vlt20", "10.89.0.4", GUEST_TIMEOUT_S);
  wait_for_ping ("vlup", "10.89.0.3", 10);     /* through the uplink, tagged */

  /* Across VLANs nothing passes, though all share one subnet: not even ARP. */
  g_assert_cmpint (ping_from ("vlt10", "10.89.0.4", 3), !=, 0);
  g_assert_cmpint (ping_from ("vlt20", "10.89.0.2", 2), !=, 0);
  g_assert_cmpint (ping_from ("vlup", "10.89.0.4", 2), !=, 0);
  wait_for_ping ("vlt10", "10.89.0.2", 5);     /* and the first still answers */

  migrate_keeps_vlan (h, pki);
}

/* ---- on the host: UML around it ---- */

/* Environment variables the inner run gets as this one has them. */
static const char *const forwarded_env[] = {
  "VMHERD_SRCDIR", "VMHERD_GUEST_DIR", "VMHERD_TEST_REQUIRE_QEMU", "VMHERD_TEST_REQUIRE_NETNS",
  "G_DEBUG", "UBSAN_OPTIONS",
};

/* The build whose binaries run inside UML: this one, unless it is a sanitizer build. */
static char *
inner_build_dir (void)
{
  const char *uml_build = g_getenv ("VMHERD_UML_BUILDDIR");

  if (uml_build != NULL)
    return g_strdup (uml_build);
#ifdef BUILT_WITH_ASAN
  g_error ("an ASan build cannot run under UML (its shadow memory is above UML's address "
           "space): set VMHERD_UML_BUILDDIR to a plain build (make SANITIZE=1 check does)");
#endif
  return test_build_path ("");
}

/* PID 1 of UML.  Its root is the host's, read-only; out_dir is the host folder where the
 * inner run leaves its TAP and exit status. */
static char *
init_script (const char *out_dir, const char *build_dir)
{
  GString *s = g_string_new ("#!/bin/sh\n# Made by tests/test-guest-vlan.c: PID 1 of User-mode Linux.\n"
                             "export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/run/tmp\n"
                             "mount -t proc proc /proc && mount -t sysfs sysfs /sys\n"
                             "mount -t tmpfs tmpfs /run\n"
                             "mkdir -p /dev/pts /dev/shm /run/out /run/modroot/lib /run/tmp\n"
                             "chmod 1777 /run/tmp\n"
                             "mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm\n");
  g_autofree char *q_out = g_shell_quote (out_dir);
  g_autofree char *q_build = g_shell_quote (build_dir);
  g_autofree char *q_bin = NULL;

  g_string_append_printf (s, "mount -t hostfs none /run/out -o %s\n", q_out);
  /* modprobe -d ROOT reads ROOT/lib/modules/$(uname -r): the package's modules. */
  g_string_append (s, "ln -s " UML_MODULES " /run/modroot/lib/modules\n"
                      "for m in bridge tun veth 8021q; do\n"
                      "  modprobe -d /run/modroot $m || echo '" MARKER "cannot load module' $m\n"
                      "done\n"
                      "ip link set lo up\n"
                      "export VMHERD_TEST_IN_UML=1\n");
  g_string_append_printf (s, "export VMHERD_BUILDDIR=%s\n", q_build);
  for (guint i = 0; i < G_N_ELEMENTS (forwarded_env); i++)
    {
      const char *value = g_getenv (forwarded_env[i]);
      g_autofree char *quoted = value != NULL ? g_shell_quote (value) : NULL;

      if (quoted != NULL)
        g_string_append_printf (s, "export %s=%s\n", forwarded_env[i], quoted);
    }
  {
    g_autofree char *bin = g_build_filename (build_dir, "tests", "test-guest-vlan", NULL);
    q_bin = g_shell_quote (bin);
  }
  g_string_append_printf (s, "echo '" MARKER "run'\n"
                             "{ %s; echo $? >/run/out/status; } 2>&1 | tee /run/out/tap\n"
                             "echo '" MARKER "done'\n"
                             "poweroff -f\n", q_bin);
  return g_string_free (s, FALSE);
}

typedef struct
{
  GDataInputStream *console;
  gboolean eof, exited;
} Uml;

static void
on_console_line (GObject *source, GAsyncResult *result, gpointer data)
{
  Uml *uml = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result,
                                                                NULL, &error);

  g_assert_no_error (error);
  if (line == NULL)
    {
      uml->eof = TRUE;
      return;
    }
  g_strchomp (line);
  if (line[0] != '\0')
    g_test_message ("%s", line);
  g_data_input_stream_read_line_async (uml->console, G_PRIORITY_DEFAULT, NULL, on_console_line, uml);
}

static void
on_uml_exited (GObject *source G_GNUC_UNUSED, GAsyncResult *result G_GNUC_UNUSED, gpointer data)
{
  Uml *uml = data;

  uml->exited = TRUE;
}

static void
child_setup (gpointer data G_GNUC_UNUSED)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);   /* an aborted test leaves no UML behind (--kill-child) */
}

/* Boots UML with init and relays its console until it powers off. */
static void
uml_run (const char *linux_uml, const char *init)
{
  g_autofree char *init_arg = g_strdup_printf ("init=%s", init);
  /* UML in its own PID namespace, as its PID 1: when it dies, so do its helper processes,
   * which a SIGKILL of UML alone (an aborted test) would leave behind. */
  const char *argv[] = { "unshare", "--pid", "--fork", "--kill-child", linux_uml, "mem=1024M",
                         "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro", init_arg,
                         "con=null", "con0=fd:0,fd:1", "quiet", NULL };
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) uml_proc = NULL;
  g_autoptr(GError) error = NULL;
  Uml uml = { 0 };
  gint64 start = g_get_monotonic_time ();

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  uml_proc = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  uml.console = g_data_input_stream_new (g_subprocess_get_stdout_pipe (uml_proc));
  g_data_input_stream_read_line_async (uml.console, G_PRIORITY_DEFAULT, NULL, on_console_line, &uml);
  g_subprocess_wait_async (uml_proc, NULL, on_uml_exited, &uml);
  test_wait_until (uml.exited && uml.eof, UML_TIMEOUT_MS, "User-mode Linux to run the VLAN test and power off");
  g_test_message ("UML ran for %.1f s", (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC);
  g_clear_object (&uml.console);
}

static void
test_vlans_in_uml (void)
{
  g_autofree char *kernel = NULL, *initrd = NULL, *linux_uml = NULL, *dir = NULL, *out = NULL;
  g_autofree char *init = NULL, *script = NULL, *build = NULL, *inner = NULL;
  g_autofree char *status = NULL, *tap = NULL, *status_path = NULL, *tap_path = NULL;

  if (!test_require_guest (&kernel, &initrd))
    return;
  linux_uml = g_find_program_in_path ("linux.uml");
  if (linux_uml == NULL || !g_file_test (UML_MODULES, G_FILE_TEST_IS_DIR))
    {
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "no User-mode Linux, whose kernel filters VLANs "
                         "(apt-get install user-mode-linux)");
      return;
    }
  build = inner_build_dir ();
  inner = g_build_filename (build, "tests", "test-guest-vlan", NULL);
  if (!g_file_test (inner, G_FILE_TEST_IS_EXECUTABLE))
    g_error ("no %s to run inside UML (build it first)", inner);

  dir = test_tmpdir ();
  out = g_build_filename (dir, "out", NULL);
  g_assert_no_errno (g_mkdir (out, 0755));
  init = g_build_filename (dir, "init", NULL);
  script = init_script (out, build);
  test_write_file (init, script);
  g_assert_no_errno (g_chmod (init, 0755));
  g_assert_no_errno (g_chmod (dir, 0755));

  uml_run (linux_uml, init);

  status_path = g_build_filename (out, "status", NULL);
  tap_path = g_build_filename (out, "tap", NULL);
  if (!g_file_get_contents (status_path, &status, NULL, NULL))
    g_error ("the run inside UML left no exit status (its console is above)");
  tap = test_read_file (tap_path);
  g_assert_cmpstr (g_strstrip (status), ==, "0");
  g_assert_nonnull (strstr (tap, "\nok 1 /guest-vlan/inside\n"));
  g_assert_null (strstr (tap, "# SKIP"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (g_getenv ("VMHERD_TEST_IN_UML") != NULL)
    g_test_add_func ("/guest-vlan/inside", test_vlans_inside);
  else
    g_test_add_func ("/guest-vlan/uml", test_vlans_in_uml);
  return g_test_run ();
}
