/* test-guest-net.c: real guests on a real bridge, in a private network namespace: they
 * answer pings, announce themselves after a start, keep their taps across a kill -9 of
 * vmherdd, come back after their bridge was deleted and `vmherd reload`, and a foreign
 * interface with a tap's name is never touched. */
#define _GNU_SOURCE 1   /* unshare() */
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "launcher/vm-config.h"
#include "net/net.h"
#include "tests/harness.h"
#include "tests/test-util.h"

static void
sh (const char *command)
{
  const char *argv[] = { "/bin/sh", "-c", command, NULL };
  TestRun r = test_run (argv, NULL);

  if (r.status != 0)
    g_error ("`%s` failed (%d): %s", command, r.status, r.err);
  test_run_clear (&r);
}

/* Pings until the guest answers (each ping waits up to a second for its reply). */
static void
wait_for_ping (const char *address, int seconds)
{
  g_autofree char *cmd = g_strdup_printf ("ping -n -q -c 1 -W 1 %s", address);
  const char *argv[] = { "/bin/sh", "-c", cmd, NULL };

  for (int i = 0;; i++)
    {
      TestRun r = test_run (argv, NULL);
      int status = r.status;

      test_run_clear (&r);
      if (status == 0)
        return;
      if (i >= seconds)
        g_error ("%s never answered a ping within %d s", address, seconds);
    }
}

static char *
vm_file (const char *kernel, const char *initrd, const char *ip)
{
  return g_strdup_printf ("[vm]\nmemory = 256M\n[kernel]\npath = %s\ninitrd = %s\n"
                          "append = console=ttyS0 quiet vmherd.ip=%s\n[net lan]\nbridge = brg0\n"
                          "[health]\npanic = none\n", kernel, initrd, ip);
}

/* Waits for a RARP frame (QEMU's self-announcement) from mac on the packet socket. */
static void
expect_announcement (int sock, const char *mac_text)
{
  guint8 mac[6];
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  g_assert_cmpint (sscanf (mac_text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2],
                           &mac[3], &mac[4], &mac[5]), ==, 6);
  for (;;)
    {
      guint8 frame[2048];
      struct pollfd p = { sock, POLLIN, 0 };
      int left = (int) ((deadline - g_get_monotonic_time ()) / 1000);
      ssize_t n;

      if (left <= 0 || poll (&p, 1, left) <= 0)
        g_error ("no self-announcement from %s within 10 s", mac_text);
      n = recv (sock, frame, sizeof frame, 0);
      if (n >= 14 && frame[12] == 0x80 && frame[13] == 0x35 && memcmp (frame + 6, mac, 6) == 0)
        return;
    }
}

/* `ip -o link show NAME` (sysfs shows the host's namespace, not ours), or NULL. */
static char *
link_line (const char *name)
{
  g_autofree char *cmd = g_strdup_printf ("ip -o link show dev %s", name);
  const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
  TestRun r = test_run (argv, NULL);
  char *line = r.status == 0 ? g_strdup (r.out) : NULL;

  test_run_clear (&r);
  return line;
}

static char *
tap_master (const char *tap)
{
  g_autofree char *line = link_line (tap);
  const char *m = line ? strstr (line, " master ") : NULL;

  return m ? g_strndup (m + 8, strcspn (m + 8, " ")) : NULL;
}

static const char *
nic_link (Host *h, const char *vm)
{
  TestRun r = test_run_vmherd (h->config, NULL, "status", vm, "--json", NULL);
  const char *link;

  g_assert_cmpint (r.status, ==, 0);
  link = strstr (r.out, "\"link\" : \"detached\"") ? "detached"
         : strstr (r.out, "\"link\" : \"attached\"") ? "attached" : "?";
  test_run_clear (&r);
  return link;
}

static void
test_guests_on_a_bridge (void)
{
  g_autofree char *kernel = NULL, *initrd = NULL, *g1 = NULL, *g2 = NULL, *g3 = NULL;
  g_autofree char *tap1 = NULL, *tap3 = NULL, *master = NULL, *mac1 = NULL, *veth = NULL;
  struct sockaddr_ll addr = { .sll_family = AF_PACKET, .sll_protocol = htons (ETH_P_ALL) };
  Host *h;
  TestRun r;
  int sock;

  if (!test_require_guest (&kernel, &initrd))
    return;
  g1 = vm_file (kernel, initrd, "10.88.0.2/24");
  g2 = vm_file (kernel, initrd, "10.88.0.3/24");
  g3 = vm_file (kernel, initrd, "10.88.0.4/24");
  h = host_start_with ("[bridge brg0]\nstp = no\n", "g1", g1, "g2", g2, "g3", g3, NULL);
  sh ("ip addr add 10.88.0.1/24 dev brg0");

  /* A start announces the guest's MAC on its bridge at once (announce-self). */
  sock = socket (AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons (ETH_P_ALL));
  g_assert_cmpint (sock, >=, 0);
  addr.sll_ifindex = (int) if_nametoindex ("brg0");
  g_assert_cmpint (bind (sock, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  start_vm (h, "g1");
  mac1 = vm_derive_mac ("g1", "lan");
  expect_announcement (sock, mac1);
  close (sock);
  start_vm (h, "g2");
  wait_for_ping ("10.88.0.2", 90);
  wait_for_ping ("10.88.0.3", 90);

  /* kill -9 of vmherdd: the tap stays, still enslaved; a new vmherdd re-adopts. */
  tap1 = net_tap_name ("g1", "lan");
  host_kill_daemon (h);
  master = tap_master (tap1);
  g_assert_cmpstr (master, ==, "brg0");
  wait_for_ping ("10.88.0.2", 5);
  host_restart_daemon (h);
  g_assert_cmpstr (nic_link (h, "g1"), ==, "attached");

  /* The bridge deleted by hand: the NICs show detached; reload brings it all back. */
  sh ("ip link del brg0");
  g_assert_cmpstr (nic_link (h, "g1"), ==, "detached");
  r = test_run_vmherd (h->config, NULL, "reload", NULL);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
  g_assert_cmpstr (nic_link (h, "g1"), ==, "attached");
  sh ("ip addr add 10.88.0.1/24 dev brg0");
  wait_for_ping ("10.88.0.2", 10);
  wait_for_ping ("10.88.0.3", 10);

  /* A foreign interface with a tap's name: refused, and left as it was. */
  tap3 = net_tap_name ("g3", "lan");
  veth = g_strdup_printf ("ip link add %s type veth peer name vmh-peer0", tap3);
  sh (veth);
  r = test_run_vmherd (h->config, NULL, "start", "g3", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, "vm 'g3' did not start: NIC 'lan': "));
  g_assert_nonnull (strstr (r.err, tap3));
  test_run_clear (&r);
  g_autofree char *veth_line = link_line (tap3);
  g_assert_nonnull (strstr (veth_line, "@vmh-peer0"));    /* still the veth we made */

  /* A stopped guest's tap is gone with its QEMU. */
  r = test_run_vmherd (h->config, NULL, "stop", "--force", "g1", NULL);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
  g_autofree char *gone = link_line (tap1);
  g_assert_null (gone);
}

static void
test_no_namespace (void)
{
  test_skip_or_fail ("VMHERD_TEST_REQUIRE_NETNS", "cannot create a network namespace (needs root)");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* Everything below, vmherdd and its guests included, lives in a private namespace. */
  if (unshare (CLONE_NEWNET) < 0)
    {
      g_test_add_func ("/guest-net/guests-on-a-bridge", test_no_namespace);
      return g_test_run ();
    }
  sh ("ip link set lo up");
  g_test_add_func ("/guest-net/guests-on-a-bridge", test_guests_on_a_bridge);
  return g_test_run ();
}
