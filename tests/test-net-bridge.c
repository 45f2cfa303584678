/* test-net-bridge.c: error translation, and bridges created, adopted, deleted and refused,
 * each in a private network namespace (see netns-util.h), checked through sysfs. */
#define _GNU_SOURCE /* unshare (), setresuid () */

#include <linux/if.h>
#include <netlink/errno.h>
#include <string.h>

#include "net/net.h"
#include "tests/netns-util.h"
#include "tests/test-util.h"

static NetLink *
open_link (void)
{
  g_autoptr(GError) error = NULL;
  NetLink *nl = net_link_open (&error);

  g_assert_no_error (error);
  return nl;
}

/* Ensures spec, expecting success; returns the warnings. */
static GPtrArray *
ensure_ok (NetLink *nl, const NetBridgeSpec *spec, gboolean want_created)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *warnings = g_ptr_array_new_with_free_func (g_free);
  gboolean created = !want_created;

  g_assert_true (net_bridge_ensure (nl, spec, &created, warnings, &error));
  g_assert_no_error (error);
  g_assert_cmpint (created, ==, want_created);
  return warnings;
}

static void
test_error_translation (void)
{
  g_autoptr(GError) perm = NULL, missing = NULL, exists = NULL, unsupported = NULL, other = NULL;

  net_error_from_nl (-NLE_PERM, &perm, "cannot create bridge '%s'", "br0");
  g_assert_error (perm, NET_ERROR, NET_ERROR_NETLINK);
  g_assert_cmpstr (perm->message, ==, "cannot create bridge 'br0': permission denied (vmherdd needs CAP_NET_ADMIN)");
  net_error_from_nl (NLE_OBJ_NOTFOUND, &missing, "cannot read 'eth9'");   /* positive works too */
  g_assert_error (missing, NET_ERROR, NET_ERROR_NOT_FOUND);
  g_assert_cmpstr (missing->message, ==, "cannot read 'eth9': no such interface");
  net_error_from_nl (-NLE_EXIST, &exists, "cannot create bridge 'br0'");
  g_assert_error (exists, NET_ERROR, NET_ERROR_EXISTS);
  g_assert_cmpstr (exists->message, ==, "cannot create bridge 'br0': an interface of that name already exists");
  net_error_from_nl (-NLE_OPNOTSUPP, &unsupported, "x");
  g_assert_error (unsupported, NET_ERROR, NET_ERROR_UNSUPPORTED);
  g_assert_cmpstr (unsupported->message, ==, "x: not supported by the running kernel");
  net_error_from_nl (-NLE_SEQ_MISMATCH, &other, "x");                     /* libnl's own text */
  g_assert_error (other, NET_ERROR, NET_ERROR_NETLINK);
  g_assert_cmpstr (other->message, ==, "x: message sequence number mismatch");

  g_assert_cmpstr (net_error_to_string (NET_ERROR_FOREIGN), ==, "foreign");
  g_assert_cmpstr (net_error_to_string (NET_ERROR_UNSUPPORTED), ==, "unsupported");
  g_assert_cmpstr (net_error_to_string ((NetError) 99), ==, "unknown");
}

static void
test_ifname_valid (void)
{
  g_assert_true (net_ifname_is_valid ("br0"));
  g_assert_true (net_ifname_is_valid ("vh-ioc-01-abcde"));      /* 15 */
  g_assert_false (net_ifname_is_valid ("vh-ioc-01-abcdef"));    /* 16 */
  g_assert_false (net_ifname_is_valid (""));
  g_assert_false (net_ifname_is_valid (".."));
  g_assert_false (net_ifname_is_valid ("br%d"));
  g_assert_false (net_ifname_is_valid ("br 0"));
  g_assert_false (net_ifname_is_valid ("br:0"));
  g_assert_false (net_ifname_is_valid ("br/0"));
}

static void
test_create (void)
{
  NetBridgeSpec spec = { .name = "br0", .mtu = 9000 };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GPtrArray) warnings = NULL, again = NULL;
  g_autoptr(GError) error = NULL;
  NetBridgeInfo info;

  NETNS_TEST (FALSE);
  nl = open_link ();
  g_assert_false (net_bridge_exists (nl, "br0"));
  warnings = ensure_ok (nl, &spec, TRUE);
  g_assert_cmpuint (warnings->len, ==, 0);

  g_assert_cmpuint (netns_sysfs_uint ("br0", "mtu"), ==, 9000);
  g_assert_cmpuint (netns_sysfs_uint ("br0", "bridge/stp_state"), ==, 0);
  g_assert_cmpuint (netns_sysfs_uint ("br0", "bridge/forward_delay"), ==, 0);
  g_assert_true (netns_is_up ("br0"));
  g_assert_true (net_bridge_exists (nl, "br0"));

  g_assert_true (net_bridge_get_info (nl, "br0", &info, &error));
  g_assert_no_error (error);
  g_assert_cmpint (info.ifindex, ==, (int) netns_sysfs_uint ("br0", "ifindex"));
  g_assert_cmpuint (info.mtu, ==, 9000);
  g_assert_true (info.up);
  g_assert_false (info.stp);
  g_assert_cmpuint (info.forward_delay_ms, ==, 0);

  /* The second time (a reload, a restart) it is adopted, and nothing changes. */
  again = ensure_ok (nl, &spec, FALSE);
  g_assert_cmpuint (again->len, ==, 0);
  g_assert_cmpint ((int) netns_sysfs_uint ("br0", "ifindex"), ==, info.ifindex);
}

static void
test_create_stp (void)
{
  NetBridgeSpec spec = { .name = "br-stp", .stp = TRUE, .forward_delay_ms = 4000 };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  g_autoptr(GError) error = NULL;
  NetBridgeInfo info;

  NETNS_TEST (FALSE);
  nl = open_link ();
  warnings = ensure_ok (nl, &spec, TRUE);
  g_assert_cmpuint (netns_sysfs_uint ("br-stp", "bridge/stp_state"), ==, 1);       /* kernel STP */
  g_assert_cmpuint (netns_sysfs_uint ("br-stp", "bridge/forward_delay"), ==, 400); /* 1/100 s */
  g_assert_cmpuint (netns_sysfs_uint ("br-stp", "mtu"), ==, 1500);                 /* left alone */
  g_assert_true (net_bridge_get_info (nl, "br-stp", &info, &error));
  g_assert_true (info.stp);
  g_assert_cmpuint (info.forward_delay_ms, ==, 4000);
}

static void
test_stp_forward_delay_refused (void)
{
  NetBridgeSpec spec = { .name = "br0", .stp = TRUE, .forward_delay_ms = 0 };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;

  NETNS_TEST (FALSE);
  nl = open_link ();
  g_assert_false (net_bridge_ensure (nl, &spec, NULL, NULL, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_BRIDGE);
  g_assert_cmpstr (error->message, ==,
                   "bridge 'br0': forward-delay 0.000s is out of range with stp = yes (use 2s to 30s)");
  g_assert_false (netns_if_exists ("br0"));
}

/* A bridge that cannot be configured after it was made is removed again. */
static void
test_failure_leaves_nothing (void)
{
  NetBridgeSpec spec = { .name = "br0", .mtu = 65536 };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;

  NETNS_TEST (FALSE);
  nl = open_link ();
  g_assert_false (net_bridge_ensure (nl, &spec, NULL, NULL, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_NETLINK);
  g_assert_cmpstr (error->message, ==, "cannot set the MTU of bridge 'br0': the kernel rejected the request "
                   "as invalid (kernel: mtu greater than device maximum)");
  g_assert_false (netns_if_exists ("br0"));
}

/* On a kernel with VLAN filtering the bridge filters; on one without, the request is refused
 * with a reason and no bridge is left half made.  VMHERD_TEST_REQUIRE_BRIDGE_VLAN=1 (as in
 * test-net-kernel) insists on the first. */
static void
test_create_vlan_filtering (void)
{
  NetBridgeSpec spec = { .name = "br0", .vlan_filtering = TRUE };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;
  gboolean created = FALSE, ensured;
  NetBridgeInfo info;

  NETNS_TEST (FALSE);
  nl = open_link ();
  if (!netns_kernel_filters_vlans () && !netns_required ("VMHERD_TEST_REQUIRE_BRIDGE_VLAN"))
    {
      g_assert_false (net_bridge_ensure (nl, &spec, &created, NULL, &error));
      g_assert_error (error, NET_ERROR, NET_ERROR_UNSUPPORTED);
      g_assert_true (g_str_has_prefix (error->message, "cannot create bridge 'br0' with vlan-filtering = yes: "
                                       "the running kernel has no bridge VLAN filtering"));
      g_assert_false (netns_if_exists ("br0"));
      return;
    }
  ensured = net_bridge_ensure (nl, &spec, &created, NULL, &error);
  g_assert_no_error (error);            /* first, so a kernel without filtering says so */
  g_assert_true (ensured);
  g_assert_true (created);
  g_assert_cmpuint (netns_sysfs_uint ("br0", "bridge/vlan_filtering"), ==, 1);
  g_assert_true (net_bridge_get_info (nl, "br0", &info, &error));
  g_assert_true (info.vlan_filtering);
}

static void
test_uplink (void)
{
  NetBridgeSpec spec = { .name = "br0", .mtu = 9000, .uplink = "up0" };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GPtrArray) warnings = NULL, again = NULL;
  g_autofree char *master = NULL;

  NETNS_TEST (FALSE);
  netns_veth_add ("up0", "up0-peer");
  nl = open_link ();
  warnings = ensure_ok (nl, &spec, TRUE);
  g_assert_cmpuint (warnings->len, ==, 0);
  master = netns_master ("up0");
  g_assert_cmpstr (master, ==, "br0");
  /* The MTU was set, not derived: a 1500-byte uplink does not lower it. */
  g_assert_cmpuint (netns_sysfs_uint ("up0", "mtu"), ==, 1500);
  g_assert_cmpuint (netns_sysfs_uint ("br0", "mtu"), ==, 9000);

  again = ensure_ok (nl, &spec, FALSE);
  g_assert_cmpuint (again->len, ==, 0);
}

/* The MAC of ifname set to text (with libnl, as the test's own namespace tool). */
static void
set_mac (const char *ifname, const char *text)
{
  struct rtnl_link *link = NULL, *changes = rtnl_link_alloc ();
  struct nl_addr *mac = NULL;

  g_assert_cmpint (nl_addr_parse (text, AF_LLC, &mac), ==, 0);
  g_assert_cmpint (rtnl_link_get_kernel (netns_sock (), 0, ifname, &link), ==, 0);
  rtnl_link_set_addr (changes, mac);
  g_assert_cmpint (rtnl_link_change (netns_sock (), link, changes, 0), ==, 0);
  nl_addr_put (mac);
  rtnl_link_put (link);
  rtnl_link_put (changes);
}

/* The bridge keeps its MAC (the uplink's) when a port with a lower MAC joins, as a guest's
 * tap would: else the host's address on it would go silent until neighbours re-ARP. */
static void
test_mac_pinned (void)
{
  NetBridgeSpec spec = { .name = "br0", .uplink = "up0" };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  g_autofree char *before = NULL, *type = NULL, *after = NULL;

  NETNS_TEST (FALSE);
  netns_veth_add ("up0", "up0-peer");
  netns_veth_add ("low0", "low0-peer");
  set_mac ("up0", "fe:ff:ff:00:00:01");
  set_mac ("low0", "02:00:00:00:00:01");
  nl = open_link ();
  warnings = ensure_ok (nl, &spec, TRUE);
  g_assert_cmpuint (warnings->len, ==, 0);
  before = netns_sysfs ("br0", "address");
  g_assert_cmpstr (before, ==, "fe:ff:ff:00:00:01");
  type = netns_sysfs ("br0", "addr_assign_type");
  g_assert_cmpstr (type, ==, "3");   /* NET_ADDR_SET: the kernel no longer picks it */
  netns_enslave ("low0", "br0");
  after = netns_sysfs ("br0", "address");
  g_assert_cmpstr (after, ==, "fe:ff:ff:00:00:01");
}

static void
test_uplink_missing (void)
{
  NetBridgeSpec spec = { .name = "br0", .uplink = "nosuch0" };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GPtrArray) warnings = NULL;

  NETNS_TEST (FALSE);
  nl = open_link ();
  warnings = ensure_ok (nl, &spec, TRUE);
  g_assert_true (netns_if_exists ("br0"));
  g_assert_true (netns_is_up ("br0"));
  g_assert_cmpuint (warnings->len, ==, 1);
  g_assert_cmpstr (warnings->pdata[0], ==,
                   "bridge 'br0': uplink 'nosuch0' does not exist, continuing without it "
                   "(check uplink in [bridge br0])");
}

/* A bridge the host made: its ports, STP and forward delay stay; the uplink joins; the MTU
 * asked for is applied; being down is reported, not changed. */
static void
test_adopt (void)
{
  NetBridgeSpec spec = { .name = "br0", .uplink = "up0", .mtu = 1400, .stp = TRUE, .forward_delay_ms = 5000 };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  g_autofree char *port_master = NULL, *uplink_master = NULL;
  guint64 forward_delay, ifindex;

  NETNS_TEST (FALSE);
  netns_plain_bridge_add ("br0");
  netns_veth_add ("p0", "p0-peer");
  netns_veth_add ("up0", "up0-peer");
  netns_enslave ("p0", "br0");
  forward_delay = netns_sysfs_uint ("br0", "bridge/forward_delay");
  ifindex = netns_sysfs_uint ("br0", "ifindex");

  nl = open_link ();
  warnings = ensure_ok (nl, &spec, FALSE);
  port_master = netns_master ("p0");
  uplink_master = netns_master ("up0");
  g_assert_cmpstr (port_master, ==, "br0");
  g_assert_cmpstr (uplink_master, ==, "br0");
  g_assert_cmpuint (netns_sysfs_uint ("br0", "ifindex"), ==, ifindex);
  g_assert_cmpuint (netns_sysfs_uint ("br0", "bridge/stp_state"), ==, 0);
  g_assert_cmpuint (netns_sysfs_uint ("br0", "bridge/forward_delay"), ==, forward_delay);
  g_assert_cmpuint (netns_sysfs_uint ("br0", "mtu"), ==, 1400);
  g_assert_false (netns_is_up ("br0"));
  g_assert_cmpuint (warnings->len, ==, 1);
  g_assert_cmpstr (warnings->pdata[0], ==,
                   "bridge 'br0' is down; vmherdd leaves an existing bridge's state to the host's "
                   "network configuration (bring it up there)");
}

static void
test_adopt_uplink_elsewhere (void)
{
  NetBridgeSpec spec = { .name = "br0", .uplink = "up0" };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  g_autofree char *master = NULL;

  NETNS_TEST (FALSE);
  netns_plain_bridge_add ("br-host");
  netns_veth_add ("up0", "up0-peer");
  netns_enslave ("up0", "br-host");
  nl = open_link ();
  warnings = ensure_ok (nl, &spec, TRUE);
  master = netns_master ("up0");
  g_assert_cmpstr (master, ==, "br-host");
  g_assert_cmpuint (warnings->len, ==, 1);
  g_assert_cmpstr (warnings->pdata[0], ==,
                   "bridge 'br0': uplink 'up0' is already a port of 'br-host', leaving it there");
}

static void
test_foreign_name (void)
{
  NetBridgeSpec spec = { .name = "br0", .mtu = 9000, .vlan_filtering = TRUE };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;

  NETNS_TEST (FALSE);
  netns_veth_add ("br0", "br0-peer");
  nl = open_link ();
  g_assert_false (net_bridge_ensure (nl, &spec, NULL, NULL, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_FOREIGN);
  g_assert_cmpstr (error->message, ==, "cannot use bridge 'br0': interface 'br0' is not a bridge (it is a veth)");
  g_assert_false (net_bridge_exists (nl, "br0"));
  g_assert_cmpuint (netns_sysfs_uint ("br0", "mtu"), ==, 1500);
  g_assert_false (netns_is_up ("br0"));
}

static void
test_delete (void)
{
  NetBridgeSpec spec = { .name = "br0", .uplink = "up0" };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *master = NULL;

  NETNS_TEST (FALSE);
  netns_veth_add ("up0", "up0-peer");
  netns_veth_add ("veth0", "veth0-peer");
  nl = open_link ();
  warnings = ensure_ok (nl, &spec, TRUE);

  g_assert_true (net_bridge_delete (nl, "br0", &error));
  g_assert_no_error (error);
  g_assert_false (netns_if_exists ("br0"));
  g_assert_true (netns_if_exists ("up0"));              /* ports are released, not deleted */
  master = netns_master ("up0");
  g_assert_null (master);

  g_assert_true (net_bridge_delete (nl, "br0", &error));  /* already gone */
  g_assert_no_error (error);

  g_assert_false (net_bridge_delete (nl, "veth0", &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_FOREIGN);
  g_assert_cmpstr (error->message, ==, "cannot delete bridge 'veth0': interface 'veth0' is not a bridge (it is a veth)");
  g_assert_true (netns_if_exists ("veth0"));
}

/* Without CAP_NET_ADMIN the message says what is missing. */
static void
test_permission_denied (void)
{
  NetBridgeSpec spec = { .name = "br0" };
  g_autoptr(NetLink) nl = NULL;
  g_autoptr(GError) error = NULL;

  NETNS_TEST (FALSE);
  g_assert_cmpint (setresgid (65534, 65534, 65534), ==, 0);
  g_assert_cmpint (setresuid (65534, 65534, 65534), ==, 0);   /* drops every capability */
  nl = open_link ();
  g_assert_false (net_bridge_ensure (nl, &spec, NULL, NULL, &error));
  g_assert_error (error, NET_ERROR, NET_ERROR_NETLINK);
  g_assert_cmpstr (error->message, ==, "cannot create bridge 'br0': permission denied (vmherdd needs CAP_NET_ADMIN)");
  g_assert_false (netns_if_exists ("br0"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  netns_probe ();

  g_test_add_func ("/net/error/translation", test_error_translation);
  g_test_add_func ("/net/ifname/valid", test_ifname_valid);
  g_test_add_func ("/net/bridge/create", test_create);
  g_test_add_func ("/net/bridge/create-stp", test_create_stp);
  g_test_add_func ("/net/bridge/stp-forward-delay-refused", test_stp_forward_delay_refused);
  g_test_add_func ("/net/bridge/failure-leaves-nothing", test_failure_leaves_nothing);
  g_test_add_func ("/net/bridge/create-vlan-filtering", test_create_vlan_filtering);
  g_test_add_func ("/net/bridge/uplink", test_uplink);
  g_test_add_func ("/net/bridge/uplink-missing", test_uplink_missing);
  g_test_add_func ("/net/bridge/mac-pinned", test_mac_pinned);
  g_test_add_func ("/net/bridge/adopt", test_adopt);
  g_test_add_func ("/net/bridge/adopt-uplink-elsewhere", test_adopt_uplink_elsewhere);
  g_test_add_func ("/net/bridge/foreign-name", test_foreign_name);
  g_test_add_func ("/net/bridge/delete", test_delete);
  g_test_add_func ("/net/bridge/permission-denied", test_permission_denied);
  return g_test_run ();
}
