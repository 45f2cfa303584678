/* test-net-tap.c: tap names, VLAN specs, and taps created, refused, detached, reattached and
 * carrying real frames, each in a private network namespace (see netns-util.h).  Port VLANs
 * are read back with netns_port_vlans(), a plain AF_BRIDGE dump, not with net/'s reader. */
#define _GNU_SOURCE /* unshare (), setresuid () */

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "net/net.h"
#include "tests/netns-util.h"
#include "tests/test-util.h"

#define VNET_HDR_LEN 10        /* struct virtio_net_hdr: the taps have IFF_VNET_HDR */
#define TEST_ETHERTYPE 0x88b5  /* IEEE 802 local experimental */
#define FRAME_WAIT_MS 2000     /* a frame that is coming arrives in microseconds */
#define NO_FRAME_WAIT_MS 200   /* a frame the bridge floods arrives with the others */

static NetLink *
open_link (void)
{
  g_autoptr(GError) error = NULL;
  NetLink *nl = net_link_open (&error);

  g_assert_no_error (error);
  return nl;
}

static void
bridge_add (NetLink *nl, const char *name, gboolean vlan_filtering, guint mtu)
{
  NetBridgeSpec spec = { .name = name, .vlan_filtering = vlan_filtering, .mtu = mtu };
  g_autoptr(GError) error = NULL;
  gboolean created = FALSE;

  g_assert_true (net_bridge_ensure (nl, &spec, &created, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (created);
}

static NetTapSpec
tap_spec (const char *vm, const char *nic, const char *bridge, char **name_storage)
{
  NetTapSpec spec = { .vm = vm, .nic = nic, .bridge = bridge, .queues = 1 };

  *name_storage = net_tap_name (vm, nic);
  spec.name = *name_storage;
  return spec;
}

/* Creates the tap of spec, expecting success; returns its first queue's fd. */
static int
tap_create_ok (NetLink *nl, const NetTapSpec *spec)
{
  g_autoptr(GError) error = NULL;
  int fds[NET_TAP_MAX_QUEUES];

  g_assert_true (net_tap_create (nl, spec, fds, &error));
  g_assert_no_error (error);
  for (guint q = 1; q < spec->queues; q++)
    close (fds[q]);
  g_assert_cmpint (fds[0], >=, 0);
  return fds[0];
}

/* ---- names and VLAN specs (no namespace) ---- */

static void
test_name (void)
{
  g_autofree char *lan = net_tap_name ("ioc-01", "lan");
  g_autofree char *ctrl = net_tap_name ("ioc-01", "ctrl");
  g_autofree char *other = net_tap_name ("ioc-02", "lan");
  g_autofree char *longest = net_tap_name ("a-virtual-ioc-with-a-very-long-name-of-48-chars", "lan");
  g_autofree char *odd = net_tap_name ("x%y z", "lan");
  g_autofree char *trailing = net_tap_name ("ioc---x", "lan");
  g_autofree char *alias = net_tap_alias ("ioc-01", "lan");

  /* Fixed by the scheme in tap.h: every host computes these. */
  g_assert_cmpstr (lan, ==, "vh-ioc-01-dlqri");
  g_assert_cmpstr (ctrl, ==, "vh-ioc-01-rmluw");
  g_assert_true (g_str_has_prefix (other, "vh-ioc-02-"));
  g_assert_cmpuint (strlen (longest), ==, 15);
  g_assert_true (g_str_has_prefix (longest, "vh-a-virt-"));
  g_assert_true (g_str_has_prefix (odd, "vh-x_y_z-"));
  g_assert_true (g_str_has_prefix (trailing, "vh-ioc-"));
  g_assert_cmpuint (strlen (trailing), ==, strlen ("vh-ioc-") + 5);
  g_assert_true (net_ifname_is_valid (lan) && net_ifname_is_valid (longest) && net_ifname_is_valid (odd));
  g_assert_cmpstr (alias, ==, "vmherd:ioc-01:lan");
}

static void
test_vlan_spec (void)
{
  const guint16 trunk_ids[] = { 22, 10, 20, 21, 4094, 10 };
  const guint16 bad_ids[] = { 10, 4095 };
  NetVlan none = { .mode = NET_VLAN_MODE_NONE };
  NetVlan access = { .mode = NET_VLAN_MODE_ACCESS, .pvid = 10 };
  NetVlan trunk = { .mode = NET_VLAN_MODE_TRUNK, .vids = trunk_ids, .n_vids = G_N_ELEMENTS (trunk_ids) };
  NetVlan bad_access = { .mode = NET_VLAN_MODE_ACCESS, .pvid = 0 };
  NetVlan bad_trunk = { .mode = NET_VLAN_MODE_TRUNK, .vids = bad_ids, .n_vids = G_N_ELEMENTS (bad_ids) };
  NetVlan empty_trunk = { .mode = NET_VLAN_MODE_TRUNK };
  g_autofree char *s_none = net_vlan_to_string (&none);
  g_autofree char *s_access = net_vlan_to_string (&access);
  g_autofree char *s_trunk = net_vlan_to_string (&trunk);

  g_assert_cmpstr (s_none, ==, "none");
  g_assert_cmpstr (s_access, ==, "access 10");
  g_assert_cmpstr (s_trunk, ==, "trunk 10,20-22,4094");
  g_assert_true (net_vlan_is_valid (&none) && net_vlan_is_valid (&access) && net_vlan_is_valid (&trunk));
  g_assert_false (net_vlan_is_valid (&bad_access));
  g_assert_false (net_vlan_is_valid (&bad_trunk));
  g_assert_false (net_vlan_is_valid (&empty_trunk));
  g_assert_cmpstr (net_vlan_mode_to_string (NET_VLAN_MODE_TRUNK), ==, "trunk");
}

/* ---- frames, as a guest writes and reads them on its tap fd ---- */

/* A broadcast frame carrying payload, tagged with vid unless 0. */
static void
frame_send (int fd, guint16 vid, const char *payload)
{
  guint8 buf[VNET_HDR_LEN + 64] = { 0 };        /* a zero virtio_net_hdr: no offloads */
  guint8 *eth = buf + VNET_HDR_LEN;
  gsize type = 12;

  memset (eth, 0xff, 6);
  memcpy (eth + 6, "\x02\x00\x00\x00\x00\x01", 6);
  if (vid != 0)
    {
      eth[12] = 0x81;
      eth[13] = 0x00;
      eth[14] = (guint8) (vid >> 8);
      eth[15] = (guint8) vid;
      type = 16;
    }
  eth[type] = TEST_ETHERTYPE >> 8;
  eth[type + 1] = TEST_ETHERTYPE & 0xff;
  g_strlcpy ((char *) eth + type + 2, payload, 64 - type - 2);
  g_assert_cmpint (write (fd, buf, sizeof buf), ==, (gssize) sizeof buf);
}

/* The next test frame on fd within timeout_ms as "untagged PAYLOAD" or "vlan N PAYLOAD", or
 * NULL.  Other traffic (the kernel's IPv6 chatter on new interfaces) is skipped. */
static char *
frame_receive (int fd, int timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      gint64 left_ms = (deadline - g_get_monotonic_time ()) / 1000;
      guint8 buf[VNET_HDR_LEN + 2048];
      const guint8 *eth = buf + VNET_HDR_LEN;
      guint type, vid = 0, payload = 14;
      gssize length;
      int ready;

      if (left_ms < 0)
        return NULL;
      ready = poll (&pfd, 1, (int) left_ms);
      g_assert_cmpint (ready, >=, 0);
      if (ready == 0)
        return NULL;
      length = read (fd, buf, sizeof buf);
      g_assert_cmpint (length, >=, VNET_HDR_LEN + 18);
      type = (guint) eth[12] << 8 | eth[13];
      if (type == 0x8100)
        {
          vid = ((guint) eth[14] << 8 | eth[15]) & 0xfff;
          type = (guint) eth[16] << 8 | eth[17];
          payload = 18;
        }
      if (type != TEST_ETHERTYPE)
        continue;
      {
        g_autofree char *text = g_strndup ((const char *) eth + payload, (gsize) length - VNET_HDR_LEN - payload);

        return vid ? g_strdup_printf ("vlan %u %s", vid, text) : g_strdup_printf ("untagged %s", text);
      }
    }
}

static void
assert_frame (int fd, const char *expected)
{
  g_autofree char *got = frame_receive (fd, FRAME_WAIT_MS);

  g_assert_cmpstr (got, ==, expected);
}

static void
assert_no_frame (int fd)
{
  g_autofree char *got = frame_receive (fd, NO_FRAME_WAIT_MS);

  g_assert_null (got);
}

/* ---- taps ---- */

static void
test_create (void)
{
  g_autofree char *name = NULL, *master = NULL, *alias = NULL, *address = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(NetTapInfo) info = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "lan", "br0", &name);
  int fd;

  NETNS_TEST (FALSE);
  nl = open_link ();
  bridge_add (nl, "br0", FALSE, 9000);
  fd = tap_create_ok (nl, &spec);

  g_assert_cmphex (netns_sysfs_uint (name, "tun_flags"), ==, 0x5002);  /* TAP|NO_PI|VNET_HDR, not persistent */
  master = netns_master (name);
  g_assert_cmpstr (master, ==, "br0");
  g_assert_true (netns_is_up (name));
  g_assert_cmpuint (netns_sysfs_uint (name, "carrier"), ==, 1);
  g_assert_cmpuint (netns_sysfs_uint (name, "mtu"), ==, 9000);        /* the bridge's */
  alias = netns_sysfs (name, "ifalias");
  g_assert_cmpstr (alias, ==, "vmherd:ioc-01:lan");
  address = netns_sysfs (name, "address");
  g_assert_cmpstr (address, ==, "fe:53:fa:4a:1f:f5");   /* fe: + bytes 5..9 of the names' hash */
  g_assert_cmpuint (netns_sysfs_uint ("br0", "mtu"), ==, 9000);

  info = net_tap_get_info (nl, name, &error);
  g_assert_no_error (error);
  g_assert_true (info->is_tap);
  g_assert_true (net_tap_info_is_owned (info, "ioc-01", "lan"));
  g_assert_false (net_tap_info_is_owned (info, "ioc-01", "ctrl"));
  g_assert_cmpstr (info->master, ==, "br0");
  g_assert_cmpint (info->master_ifindex, ==, (int) netns_sysfs_uint ("br0", "ifindex"));
  g_assert_true (info->up);
  g_assert_true (info->carrier);
  g_assert_nonnull (info->vlans);

  /* Not persistent: the tap lives as long as a queue is open (QEMU's, later). */
  close (fd);
  g_assert_false (netns_if_exists (name));
  g_clear_pointer (&info, net_tap_info_free);
  info = net_tap_get_info (nl, name, &error);
  g_assert_null (info);
  g_assert_error (error, NET_ERROR, NET_ERROR_NOT_FOUND);
}

static void
test_multiqueue (void)
{
  g_autofree char *name = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "lan", "br0", &name);
  int fds[2] = { -1, -1 };

  NETNS_TEST (FALSE);
  nl = open_link ();
  bridge_add (nl, "br0", FALSE, 0);
  spec.queues = 2;
  g_assert_true (net_tap_create (nl, &spec, fds, &error));
  g_assert_no_error (error);
  g_assert_cmpint (fds[0], >=, 0);
  g_assert_cmpint (fds[1], >=, 0);
  g_assert_cmpint (fds[0], !=, fds[1]);
  g_assert_cmphex (netns_sysfs_uint (name, "tun_flags"), ==, 0x5102);  /* | MULTI_QUEUE */
  g_assert_cmpint (fcntl (fds[1], F_GETFD), ==, FD_CLOEXEC);
  close (fds[0]);
  g_assert_true (netns_if_exists (name));
  close (fds[1]);
  g_assert_false (netns_if_exists (name));
}

/* An interface with the tap's name that vmherd did not make: refused, untouched. */
static void
test_foreign (void)
{
  g_autofree char *name = NULL, *master = NULL, *alias = NULL, *expected = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(NetTapInfo) info = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "lan", "br0", &name);
  int fds[1] = { -1 };

  NETNS_TEST (FALSE);
  nl = open_link ();
  bridge_add (nl, "br0", FALSE, 9000);
  netns_veth_add (name, "foreign-peer");
  g_assert_false (net_tap_create (nl, &spec, fds, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_FOREIGN);
  expected = g_strdup_printf ("vm 'ioc-01' nic 'lan': interface '%s' exists and is not this NIC's tap "
                              "(no vmherd alias); vmherdd leaves it alone: remove or rename it, or "
                              "rename the NIC", name);
  g_assert_cmpstr (error->message, ==, expected);
  g_assert_cmpint (fds[0], ==, -1);

  master = netns_master (name);
  g_assert_null (master);
  g_assert_false (netns_is_up (name));
  g_assert_cmpuint (netns_sysfs_uint (name, "mtu"), ==, 1500);
  alias = netns_sysfs (name, "ifalias");
  g_assert_cmpstr (alias, ==, "");
  g_clear_error (&error);
  g_assert_false (net_tap_attach (nl, &spec, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_FOREIGN);
  g_clear_pointer (&master, g_free);
  master = netns_master (name);
  g_assert_null (master);

  info = net_tap_get_info (nl, name, NULL);
  g_assert_false (info->is_tap);
  g_assert_false (net_tap_info_is_owned (info, "ioc-01", "lan"));
}

/* Two NICs whose names hash to the same tap name: the second is refused. */
static void
test_name_collision (void)
{
  g_autofree char *name = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec first = tap_spec ("ioc-01", "lan", "br0", &name);
  NetTapSpec second = first;
  int fd, fds[1];

  NETNS_TEST (FALSE);
  nl = open_link ();
  bridge_add (nl, "br0", FALSE, 0);
  fd = tap_create_ok (nl, &first);
  second.vm = "ioc-99";
  g_assert_false (net_tap_create (nl, &second, fds, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_FOREIGN);
  g_assert_nonnull (strstr (error->message, "(alias 'vmherd:ioc-01:lan')"));
  g_clear_error (&error);

  /* The same NIC again: its tap is still held (its QEMU runs). */
  g_assert_false (net_tap_create (nl, &first, fds, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_EXISTS);
  g_assert_true (netns_is_up (name));
  close (fd);
}

/* A failure after the tap exists (here: the kernel refuses the bridge's MTU on a tap, whose
 * maximum is lower) leaves nothing behind, and the kernel's reason is in the message. */
static void
test_failure_leaves_nothing (void)
{
  g_autofree char *name = NULL, *expected = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "lan", "br0", &name);
  int fds[1] = { -1 };

  NETNS_TEST (FALSE);
  nl = open_link ();
  bridge_add (nl, "br0", FALSE, 65535);
  g_assert_false (net_tap_create (nl, &spec, fds, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_NETLINK);
  expected = g_strdup_printf ("cannot set up tap '%s': the kernel rejected the request as invalid "
                              "(kernel: mtu greater than device maximum)", name);
  g_assert_cmpstr (error->message, ==, expected);
  g_assert_cmpint (fds[0], ==, -1);
  g_assert_false (netns_if_exists (name));
}

static void
test_no_bridge (void)
{
  g_autofree char *name = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "lan", "br9", &name);
  int fds[1];

  NETNS_TEST (FALSE);
  nl = open_link ();
  g_assert_false (net_tap_create (nl, &spec, fds, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "vm 'ioc-01' nic 'lan': bridge 'br9' does not exist "
                   "(declare it as [bridge br9] in vmherd.conf, or create it)");
  g_assert_false (netns_if_exists (name));
}

static void
test_vlan_needs_filtering (void)
{
  g_autofree char *name = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "lan", "br0", &name);
  int fds[1];

  NETNS_TEST (FALSE);
  nl = open_link ();
  bridge_add (nl, "br0", FALSE, 0);
  spec.vlan = (NetVlan) { .mode = NET_VLAN_MODE_ACCESS, .pvid = 10 };
  g_assert_false (net_tap_create (nl, &spec, fds, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_BRIDGE);
  g_assert_cmpstr (error->message, ==, "vm 'ioc-01' nic 'lan': bridge 'br0' does not filter VLANs, so "
                   "access 10 would not isolate this NIC (set vlan-filtering = yes in [bridge br0])");
  g_assert_false (netns_if_exists (name));
}

/* The bridge deleted by hand under a running guest, then recreated (a reload). */
static void
detach_and_reattach (NetLink *nl, const NetTapSpec *spec, gboolean vlan_filtering)
{
  g_autoptr(NetTapInfo) detached = NULL, attached = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *master = NULL;

  g_assert_true (net_bridge_delete (nl, spec->bridge, &error));
  detached = net_tap_get_info (nl, spec->name, &error);
  g_assert_no_error (error);
  g_assert_cmpint (detached->master_ifindex, ==, 0);
  g_assert_null (detached->master);
  g_assert_null (detached->vlans);
  g_assert_true (detached->up);

  bridge_add (nl, spec->bridge, vlan_filtering, 0);
  g_assert_true (net_tap_attach (nl, spec, &error));
  g_assert_no_error (error);
  attached = net_tap_get_info (nl, spec->name, &error);
  g_assert_cmpstr (attached->master, ==, spec->bridge);
  g_assert_true (attached->up);
  g_assert_true (net_vlan_port_matches (attached->vlans, &spec->vlan));
  master = netns_master (spec->name);
  g_assert_cmpstr (master, ==, spec->bridge);

  g_assert_true (net_tap_attach (nl, spec, &error));             /* idempotent */
  g_assert_no_error (error);
}

static void
test_detach_reattach (void)
{
  g_autofree char *name = NULL;
  g_autoptr(NetLink) nl = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "lan", "br0", &name);
  int fd;

  NETNS_TEST (FALSE);
  nl = open_link ();
  bridge_add (nl, "br0", FALSE, 0);
  fd = tap_create_ok (nl, &spec);
  detach_and_reattach (nl, &spec, FALSE);
  close (fd);
}

static void
test_vlan_access (void)
{
  g_autofree char *name = NULL, *vlans = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(NetTapInfo) info = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "lan", "br0", &name);
  int fd;

  NETNS_TEST (TRUE);
  nl = open_link ();
  bridge_add (nl, "br0", TRUE, 0);
  spec.vlan = (NetVlan) { .mode = NET_VLAN_MODE_ACCESS, .pvid = 10 };
  fd = tap_create_ok (nl, &spec);
  vlans = netns_port_vlans (name);
  g_assert_cmpstr (vlans, ==, "pvid 10 vids 10 untagged 10");   /* VLAN 1 is gone */
  info = net_tap_get_info (nl, name, NULL);
  g_assert_cmpuint (info->vlans->pvid, ==, 10);
  g_assert_true (net_vlan_port_matches (info->vlans, &spec.vlan));
  detach_and_reattach (nl, &spec, TRUE);
  g_clear_pointer (&vlans, g_free);
  vlans = netns_port_vlans (name);
  g_assert_cmpstr (vlans, ==, "pvid 10 vids 10 untagged 10");
  close (fd);
}

static void
test_vlan_trunk (void)
{
  const guint16 ids[] = { 30, 10, 31, 20, 32 };
  g_autofree char *name = NULL, *vlans = NULL, *uplink = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "trunk", "br0", &name);
  int fd;

  NETNS_TEST (TRUE);
  nl = open_link ();
  bridge_add (nl, "br0", TRUE, 0);
  spec.vlan = (NetVlan) { .mode = NET_VLAN_MODE_TRUNK, .vids = ids, .n_vids = G_N_ELEMENTS (ids) };
  fd = tap_create_ok (nl, &spec);
  vlans = netns_port_vlans (name);
  g_assert_cmpstr (vlans, ==, "pvid - vids 10 20 30-32 untagged");
  detach_and_reattach (nl, &spec, TRUE);

  /* An uplink keeps its own PVID and gains the guests' VLANs, tagged. */
  netns_veth_add ("up0", "up0-peer");
  netns_enslave ("up0", "br0");
  g_assert_true (net_vlan_port_add_tagged (nl, "up0", ids, 2, &error));
  g_assert_no_error (error);
  uplink = netns_port_vlans ("up0");
  g_assert_cmpstr (uplink, ==, "pvid 1 vids 1 10 30 untagged 1");
  close (fd);
}

/* 2047 separate VLANs (the largest request: 16 KiB), then the whole range, then back to an
 * access port: each change is exact, and reading back does not overflow a message. */
static void
test_vlan_trunk_large (void)
{
  g_autofree guint16 *even = g_new (guint16, 2047), *all = g_new (guint16, NET_VLAN_ID_MAX);
  g_autofree char *name = NULL, *vlans = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(NetTapInfo) info = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "trunk", "br0", &name);
  int fd;

  NETNS_TEST (TRUE);
  for (guint i = 0; i < 2047; i++)
    even[i] = (guint16) (2 + 2 * i);
  for (guint i = 0; i < NET_VLAN_ID_MAX; i++)
    all[i] = (guint16) (i + 1);
  nl = open_link ();
  bridge_add (nl, "br0", TRUE, 0);
  spec.vlan = (NetVlan) { .mode = NET_VLAN_MODE_TRUNK, .vids = even, .n_vids = 2047 };
  fd = tap_create_ok (nl, &spec);
  info = net_tap_get_info (nl, name, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (info->vlans->vids->len, ==, 2047);
  g_assert_cmpuint (g_array_index (info->vlans->vids, guint16, 2046), ==, 4094);
  g_assert_true (net_vlan_port_matches (info->vlans, &spec.vlan));

  spec.vlan = (NetVlan) { .mode = NET_VLAN_MODE_TRUNK, .vids = all, .n_vids = NET_VLAN_ID_MAX };
  g_assert_true (net_tap_attach (nl, &spec, &error));
  g_assert_no_error (error);
  vlans = netns_port_vlans (name);
  g_assert_cmpstr (vlans, ==, "pvid - vids 1-4094 untagged");
  g_clear_pointer (&info, net_tap_info_free);
  info = net_tap_get_info (nl, name, &error);
  g_assert_cmpuint (info->vlans->vids->len, ==, NET_VLAN_ID_MAX);

  spec.vlan = (NetVlan) { .mode = NET_VLAN_MODE_ACCESS, .pvid = 7 };
  g_assert_true (net_tap_attach (nl, &spec, &error));
  g_clear_pointer (&vlans, g_free);
  vlans = netns_port_vlans (name);
  g_assert_cmpstr (vlans, ==, "pvid 7 vids 7 untagged 7");
  close (fd);
}

static void
test_frames (void)
{
  g_autofree char *name_a = NULL, *name_b = NULL, *name_c = NULL;
  g_autoptr(NetLink) nl = NULL;
  NetTapSpec a = tap_spec ("ioc-01", "lan", "br0", &name_a);
  NetTapSpec b = tap_spec ("ioc-02", "lan", "br0", &name_b);
  NetTapSpec c = tap_spec ("ioc-03", "lan", "br1", &name_c);
  g_auto(AutoFd) fd_a = -1, fd_b = -1, fd_c = -1;

  NETNS_TEST (FALSE);
  nl = open_link ();
  bridge_add (nl, "br0", FALSE, 0);
  bridge_add (nl, "br1", FALSE, 0);
  fd_a = tap_create_ok (nl, &a);
  fd_b = tap_create_ok (nl, &b);
  fd_c = tap_create_ok (nl, &c);

  frame_send (fd_a, 0, "from-a");
  assert_frame (fd_b, "untagged from-a");
  assert_no_frame (fd_c);                  /* another bridge */
  assert_no_frame (fd_a);                  /* no echo */
}

/* Two access ports on VLAN 10, one on VLAN 20, a trunk carrying both. */
static void
test_frames_vlan (void)
{
  const guint16 both[] = { 10, 20 };
  g_autofree char *name_a = NULL, *name_b = NULL, *name_c = NULL, *name_t = NULL;
  g_autoptr(NetLink) nl = NULL;
  NetTapSpec a = tap_spec ("ioc-01", "lan", "br0", &name_a);
  NetTapSpec b = tap_spec ("ioc-02", "lan", "br0", &name_b);
  NetTapSpec c = tap_spec ("ioc-03", "lan", "br0", &name_c);
  NetTapSpec t = tap_spec ("router", "trunk", "br0", &name_t);
  g_auto(AutoFd) fd_a = -1, fd_b = -1, fd_c = -1, fd_t = -1;

  NETNS_TEST (TRUE);
  nl = open_link ();
  bridge_add (nl, "br0", TRUE, 0);
  a.vlan = b.vlan = (NetVlan) { .mode = NET_VLAN_MODE_ACCESS, .pvid = 10 };
  c.vlan = (NetVlan) { .mode = NET_VLAN_MODE_ACCESS, .pvid = 20 };
  t.vlan = (NetVlan) { .mode = NET_VLAN_MODE_TRUNK, .vids = both, .n_vids = 2 };
  fd_a = tap_create_ok (nl, &a);
  fd_b = tap_create_ok (nl, &b);
  fd_c = tap_create_ok (nl, &c);
  fd_t = tap_create_ok (nl, &t);

  frame_send (fd_a, 0, "from-a");
  assert_frame (fd_b, "untagged from-a");
  assert_frame (fd_t, "vlan 10 from-a");
  assert_no_frame (fd_c);

  frame_send (fd_t, 20, "from-t");
  assert_frame (fd_c, "untagged from-t");
  assert_no_frame (fd_a);
  assert_no_frame (fd_b);

  frame_send (fd_c, 10, "smuggled");       /* a tagged frame from an access port is dropped */
  assert_no_frame (fd_a);
  assert_no_frame (fd_t);
}

static void
test_delete (void)
{
  g_autofree char *name = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "lan", "br0", &name);
  int fd;

  NETNS_TEST (FALSE);
  nl = open_link ();
  bridge_add (nl, "br0", FALSE, 0);
  fd = tap_create_ok (nl, &spec);

  g_assert_false (net_tap_delete (nl, name, "ioc-01", "ctrl", &error));   /* not that NIC's */
  g_assert_error (error, NET_ERROR, NET_ERROR_FOREIGN);
  g_assert_true (netns_if_exists (name));
  g_clear_error (&error);

  g_assert_true (net_tap_delete (nl, name, "ioc-01", "lan", &error));
  g_assert_no_error (error);
  g_assert_false (netns_if_exists (name));             /* even though fd is still open */
  g_assert_true (net_tap_delete (nl, name, "ioc-01", "lan", &error));   /* already gone */
  g_assert_no_error (error);
  close (fd);

  netns_veth_add ("veth0", "veth0-peer");
  g_assert_false (net_tap_delete (nl, "veth0", "ioc-01", "lan", &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_FOREIGN);
  g_assert_true (netns_if_exists ("veth0"));
}

static void
test_permission_denied (void)
{
  g_autofree char *name = NULL;
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;
  NetTapSpec spec = tap_spec ("ioc-01", "lan", "br0", &name);
  int fds[1];

  NETNS_TEST (FALSE);
  nl = open_link ();
  bridge_add (nl, "br0", FALSE, 0);
  g_assert_cmpint (setresgid (65534, 65534, 65534), ==, 0);
  g_assert_cmpint (setresuid (65534, 65534, 65534), ==, 0);
  g_assert_false (net_tap_create (nl, &spec, fds, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_TAP);
  g_assert_cmpstr (error->message, ==,
                   "cannot open /dev/net/tun: Permission denied (vmherdd needs to run as root)");
  g_assert_false (netns_if_exists (name));
}

static void
test_vhost (void)
{
  g_autoptr(GError) error = NULL;
  int fds[2] = { -1, -1 };

  /* Hosts without vhost_net test the error; test-net-kernel tests the device, and requires it. */
  if (!g_file_test ("/dev/vhost-net", G_FILE_TEST_EXISTS))
    {
      if (netns_required ("VMHERD_TEST_REQUIRE_VHOST_NET"))
        g_error ("VMHERD_TEST_REQUIRE_VHOST_NET=1 but there is no /dev/vhost-net (modprobe vhost_net)");
      g_assert_false (net_tap_open_vhost (2, fds, &error));
      g_assert_error (error, NET_ERROR, NET_ERROR_NOT_FOUND);
      g_assert_cmpstr (error->message, ==, "cannot open /dev/vhost-net: No such file or directory "
                       "(modprobe vhost_net, or run without vhost)");
      g_assert_cmpint (fds[0], ==, -1);
      return;
    }
  g_assert_true (net_tap_open_vhost (2, fds, &error));
  g_assert_no_error (error);
  g_assert_cmpint (fds[0], >=, 0);
  g_assert_cmpint (fds[1], >=, 0);
  g_assert_cmpint (fcntl (fds[0], F_GETFD), ==, FD_CLOEXEC);
  close (fds[0]);
  close (fds[1]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  netns_probe ();

  g_test_add_func ("/net/tap/name", test_name);
  g_test_add_func ("/net/vlan/spec", test_vlan_spec);
  g_test_add_func ("/net/tap/create", test_create);
  g_test_add_func ("/net/tap/multiqueue", test_multiqueue);
  g_test_add_func ("/net/tap/foreign", test_foreign);
  g_test_add_func ("/net/tap/name-collision", test_name_collision);
  g_test_add_func ("/net/tap/failure-leaves-nothing", test_failure_leaves_nothing);
  g_test_add_func ("/net/tap/no-bridge", test_no_bridge);
  g_test_add_func ("/net/tap/vlan-needs-filtering", test_vlan_needs_filtering);
  g_test_add_func ("/net/tap/detach-reattach", test_detach_reattach);
  netns_add_vlan_test ("/net/tap/vlan-access", test_vlan_access);
  netns_add_vlan_test ("/net/tap/vlan-trunk", test_vlan_trunk);
  netns_add_vlan_test ("/net/tap/vlan-trunk-large", test_vlan_trunk_large);
  g_test_add_func ("/net/tap/frames", test_frames);
  netns_add_vlan_test ("/net/tap/frames-vlan", test_frames_vlan);
  g_test_add_func ("/net/tap/delete", test_delete);
  g_test_add_func ("/net/tap/permission-denied", test_permission_denied);
  g_test_add_func ("/net/tap/vhost", test_vhost);
  return g_test_run ();
}
