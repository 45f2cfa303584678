/* netns-util.h: running a net/ test in a private network namespace, and looking at that
 * namespace independently of net/ (sysfs, plain libnl requests).  Shared by test-net-*.c.
 *
 * Each test body runs in a g_test_trap_subprocess() child that unshares its network and mount
 * namespaces and mounts its own sysfs, so /sys/class/net shows the namespace's interfaces
 * only; the host's interfaces are never seen or touched.  The namespace (and every bridge,
 * veth and tap in it) disappears when the child exits.
 *
 *   static void
 *   test_something (void)
 *   {
 *     NETNS_TEST (FALSE);            -- TRUE: the test needs bridge VLAN filtering
 *     ...runs in the child...
 *   }
 *
 * Whether namespaces (and VLAN filtering) are available is probed once, before the tests
 * run, in a forked child: a skip with the reason, or a failure under
 * VMHERD_TEST_REQUIRE_NETNS=1 (VMHERD_TEST_REQUIRE_BRIDGE_VLAN=1 for VLAN filtering).
 *
 * Tests that need VLAN filtering are registered with netns_add_vlan_test(): on a kernel
 * without it they are left out, with one diagnostic line, instead of skipping, because
 * test-net-kernel runs this binary again under Debian's kernel with
 * VMHERD_TEST_REQUIRE_BRIDGE_VLAN=1 (and VMHERD_TEST_REQUIRE_VHOST_NET=1), where they must
 * run and pass. */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_bridge.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/net.h"
#include "tests/test-util.h"

typedef struct
{
  gboolean probed;
  char *no_netns;      /* why there is no namespace, or NULL */
  char *no_vlan;       /* why there is no bridge VLAN filtering, or NULL */
} NetnsProbe;

static NetnsProbe netns_probe_result;

static inline void
netns_enter (void)
{
  if (unshare (CLONE_NEWNET | CLONE_NEWNS) < 0)
    g_error ("unshare(CLONE_NEWNET | CLONE_NEWNS): %s", g_strerror (errno));
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0
      || mount ("sysfs", "/sys", "sysfs", 0, NULL) < 0)
    g_error ("cannot mount a private sysfs: %s", g_strerror (errno));
}

/* Forked child: 0 namespaces and VLAN filtering work, 1 no namespace, 2 no VLAN filtering. */
static inline int
netns_probe_child (void)
{
  NetBridgeSpec spec = { .name = "probe0", .vlan_filtering = TRUE };
  g_autoptr(GError) error = NULL;
  g_autoptr(NetLink) nl = NULL;

  if (unshare (CLONE_NEWNET | CLONE_NEWNS) < 0 || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0
      || mount ("sysfs", "/sys", "sysfs", 0, NULL) < 0)
    return 1;
  nl = net_link_open (NULL);
  if (nl == NULL)
    return 1;
  if (!net_bridge_ensure (nl, &spec, NULL, NULL, &error))
    return g_error_matches (error, NET_ERROR, NET_ERROR_UNSUPPORTED) ? 2 : 1;
  return 0;
}

/* Call from main() before g_test_run(), while the process has a single thread. */
static inline void
netns_probe (void)
{
  int status = 0;
  pid_t pid;

  fflush (NULL);
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      int null = open ("/dev/null", O_WRONLY);    /* keep its g_debug() out of the TAP output */

      if (null >= 0)
        dup2 (null, STDOUT_FILENO);
      _exit (netns_probe_child ());
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  netns_probe_result.probed = TRUE;
  if (!WIFEXITED (status) || WEXITSTATUS (status) == 1)
    netns_probe_result.no_netns =
      g_strdup ("cannot create a network namespace with its own sysfs (run the tests as root)");
  else if (WEXITSTATUS (status) == 2)
    netns_probe_result.no_vlan =
      g_strdup ("the running kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)");
}

static inline gboolean
netns_kernel_filters_vlans (void)
{
  return netns_probe_result.no_netns == NULL && netns_probe_result.no_vlan == NULL;
}

/* VMHERD_TEST_REQUIRE_<what>=1: what the host lacks fails the test instead of changing it. */
static inline gboolean
netns_required (const char *require_var)
{
  return g_strcmp0 (g_getenv (require_var), "1") == 0;
}

/* Registers a test that needs bridge VLAN filtering, unless namespaces work but the kernel
 * cannot filter VLANs and VMHERD_TEST_REQUIRE_BRIDGE_VLAN is not 1: then the test is left
 * out (test-net-kernel runs it under Debian's kernel) and the first call says so once.
 * Without namespaces it is registered and skips with the others.  Call after netns_probe(). */
static inline void
netns_add_vlan_test (const char *path, GTestFunc func)
{
  static gboolean told;

  g_assert_true (netns_probe_result.probed);
  if (netns_probe_result.no_vlan == NULL || netns_required ("VMHERD_TEST_REQUIRE_BRIDGE_VLAN"))
    {
      g_test_add_func (path, func);
      return;
    }
  if (!told)
    g_test_message ("VLAN tests run inside Debian's kernel in test-net-kernel: "
                    "this kernel has no bridge VLAN filtering");
  told = TRUE;
}

static inline struct nl_sock *
netns_sock (void)
{
  static struct nl_sock *sock;

  if (sock == NULL)
    {
      sock = nl_socket_alloc ();
      g_assert_nonnull (sock);
      g_assert_cmpint (nl_connect (sock, NETLINK_ROUTE), ==, 0);
    }
  return sock;
}

static inline void
netns_link_set_up (const char *name)
{
  struct rtnl_link *link = NULL, *changes = rtnl_link_alloc ();

  g_assert_cmpint (rtnl_link_get_kernel (netns_sock (), 0, name, &link), ==, 0);
  rtnl_link_set_flags (changes, IFF_UP);
  g_assert_cmpint (rtnl_link_change (netns_sock (), link, changes, 0), ==, 0);
  rtnl_link_put (changes);
  rtnl_link_put (link);
}

/* In the parent: FALSE after a skip, or after running the test in a child (then the
 * caller returns).  In the child: enters the namespaces, brings lo up, returns TRUE. */
static inline gboolean
netns_test_start (gboolean need_vlan)
{
  g_assert_true (netns_probe_result.probed);
  if (g_test_subprocess ())
    {
      netns_enter ();
      netns_link_set_up ("lo");
      return TRUE;
    }
  if (netns_probe_result.no_netns != NULL)
    {
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_NETNS", netns_probe_result.no_netns);
      return FALSE;
    }
  if (need_vlan && netns_probe_result.no_vlan != NULL)
    {
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_BRIDGE_VLAN", netns_probe_result.no_vlan);
      return FALSE;
    }
  g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
  return FALSE;
}

#define NETNS_TEST(need_vlan)                  \
  G_STMT_START {                               \
    if (!netns_test_start (need_vlan))         \
      return;                                  \
  } G_STMT_END

/* Fixtures made without net/, so they are what a host would have. */
static inline void
netns_veth_add (const char *name, const char *peer)
{
  g_assert_cmpint (rtnl_link_veth_add (netns_sock (), name, peer, getpid ()), ==, 0);
}

static inline void
netns_plain_bridge_add (const char *name)
{
  g_assert_cmpint (rtnl_link_bridge_add (netns_sock (), name), ==, 0);
}

static inline void
netns_enslave (const char *port, const char *bridge)
{
  struct rtnl_link *p = NULL, *b = NULL;

  g_assert_cmpint (rtnl_link_get_kernel (netns_sock (), 0, port, &p), ==, 0);
  g_assert_cmpint (rtnl_link_get_kernel (netns_sock (), 0, bridge, &b), ==, 0);
  g_assert_cmpint (rtnl_link_enslave (netns_sock (), b, p), ==, 0);
  rtnl_link_put (p);
  rtnl_link_put (b);
}

/* /sys/class/net/IFNAME/ATTR without its newline, or NULL when there is no such file. */
static inline char *
netns_sysfs (const char *ifname, const char *attr)
{
  g_autofree char *path = g_build_filename ("/sys/class/net", ifname, attr, NULL);
  char *contents = NULL;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return NULL;
  return g_strchomp (contents);
}

static inline guint64
netns_sysfs_uint (const char *ifname, const char *attr)
{
  g_autofree char *text = netns_sysfs (ifname, attr);

  if (text == NULL)
    g_error ("no /sys/class/net/%s/%s", ifname, attr);
  return g_ascii_strtoull (text, NULL, 0);    /* decimal, or 0x... for flags */
}

static inline gboolean
netns_if_exists (const char *ifname)
{
  g_autofree char *path = g_build_filename ("/sys/class/net", ifname, NULL);

  return g_file_test (path, G_FILE_TEST_EXISTS);
}

/* The bridge ifname is a port of (the master link's name), or NULL. */
static inline char *
netns_master (const char *ifname)
{
  g_autofree char *path = g_build_filename ("/sys/class/net", ifname, "master", NULL);
  g_autofree char *target = g_file_read_link (path, NULL);

  return target != NULL ? g_path_get_basename (target) : NULL;
}

static inline gboolean
netns_is_up (const char *ifname)
{
  return (netns_sysfs_uint (ifname, "flags") & IFF_UP) != 0;
}

/* Port VLANs from a plain AF_BRIDGE dump, parsed here rather than by net/ or libnl. */

typedef struct
{
  int ifindex;
  GString *text;
} NetnsPortDump;

/* Appends " 10" or, for the end of a range the kernel compressed, " 30-32". */
static inline void
netns_append_vid (GString *out, const struct bridge_vlan_info *info, guint range_start)
{
  if (info->flags & BRIDGE_VLAN_INFO_RANGE_END)
    g_string_append_printf (out, " %u-%u", range_start, info->vid);
  else
    g_string_append_printf (out, " %u", info->vid);
}

static inline int
netns_parse_port_vlans (struct nl_msg *msg, void *data)
{
  NetnsPortDump *dump = data;
  struct nlmsghdr *hdr = nlmsg_hdr (msg);
  struct ifinfomsg *ifi = nlmsg_data (hdr);
  struct nlattr *tb[IFLA_MAX + 1], *attr;
  g_autoptr(GString) pvid = g_string_new ("pvid -"), vids = g_string_new (" vids");
  g_autoptr(GString) untagged = g_string_new (" untagged");
  guint range_start = 0;
  int remaining;

  if (ifi->ifi_index != dump->ifindex || nlmsg_parse (hdr, sizeof *ifi, tb, IFLA_MAX, NULL) < 0)
    return NL_OK;
  if (tb[IFLA_AF_SPEC] != NULL)
    nla_for_each_nested (attr, tb[IFLA_AF_SPEC], remaining)
      {
        const struct bridge_vlan_info *info = nla_data (attr);

        if (nla_type (attr) != IFLA_BRIDGE_VLAN_INFO)
          continue;
        if (info->flags & BRIDGE_VLAN_INFO_RANGE_BEGIN)
          {
            range_start = info->vid;
            continue;
          }
        netns_append_vid (vids, info, range_start);
        if (info->flags & BRIDGE_VLAN_INFO_PVID)
          g_string_printf (pvid, "pvid %u", info->vid);
        if (info->flags & BRIDGE_VLAN_INFO_UNTAGGED)
          netns_append_vid (untagged, info, range_start);
      }
  g_string_printf (dump->text, "%s%s%s", pvid->str, vids->str, untagged->str);
  return NL_OK;
}

/* "pvid 10 vids 10 untagged 10", "pvid - vids 10 20 30-32 untagged": compressed, as
 * `bridge vlan` asks, so a trunk of 4094 VLANs is one small message. */
static inline char *
netns_port_vlans (const char *port)
{
  struct ifinfomsg ifi = { .ifi_family = AF_BRIDGE };
  guint32 mask = RTEXT_FILTER_BRVLAN_COMPRESSED;
  NetnsPortDump dump = { (int) netns_sysfs_uint (port, "ifindex"), g_string_new ("not a bridge port") };
  struct nl_msg *msg = nlmsg_alloc_simple (RTM_GETLINK, NLM_F_DUMP);
  struct nl_cb *cb = nl_cb_alloc (NL_CB_DEFAULT);

  nlmsg_append (msg, &ifi, sizeof ifi, NLMSG_ALIGNTO);
  nla_put_u32 (msg, IFLA_EXT_MASK, mask);
  nl_cb_set (cb, NL_CB_VALID, NL_CB_CUSTOM, netns_parse_port_vlans, &dump);
  g_assert_cmpint (nl_send_auto (netns_sock (), msg), >=, 0);
  g_assert_cmpint (nl_recvmsgs (netns_sock (), cb), ==, 0);
  nl_cb_put (cb);
  nlmsg_free (msg);
  return g_string_free (dump.text, FALSE);
}
