/* bridge.c: creating, adopting, reading and deleting bridges.  libnl 3.7 can create a bare
 * bridge (rtnl_link_bridge_add) but neither set nor read its IFLA_INFO_DATA (VLAN
 * filtering, STP, forward delay), so those requests are built here with libnl's message
 * helpers; everything else goes through rtnl_link. */
#define G_LOG_DOMAIN "vmherd-net"

#include "net/bridge.h"

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "net/netlink-private.h"

/* The kernel passes bridge timers as clock_t, i.e. in USER_HZ (100) ticks. */
#define MS_PER_CLOCK_TICK 10

typedef struct
{
  NetBridgeInfo info;
  char kind[32];
} BridgeRead;

static int
parse_bridge (struct nl_msg *msg, void *data)
{
  BridgeRead *r = data;
  struct nlmsghdr *hdr = nlmsg_hdr (msg);
  const struct ifinfomsg *ifi = nlmsg_data (hdr);
  struct nlattr *tb[IFLA_MAX + 1], *li[IFLA_INFO_MAX + 1], *br[IFLA_BR_MAX + 1];

  if (hdr->nlmsg_type != RTM_NEWLINK || nlmsg_parse (hdr, sizeof *ifi, tb, IFLA_MAX, NULL) < 0)
    return NL_OK;
  r->info.ifindex = ifi->ifi_index;
  r->info.up = (ifi->ifi_flags & IFF_UP) != 0;
  if (tb[IFLA_MTU] != NULL)
    r->info.mtu = nla_get_u32 (tb[IFLA_MTU]);
  if (tb[IFLA_LINKINFO] == NULL || nla_parse_nested (li, IFLA_INFO_MAX, tb[IFLA_LINKINFO], NULL) < 0)
    return NL_OK;
  if (li[IFLA_INFO_KIND] != NULL)
    nla_strlcpy (r->kind, li[IFLA_INFO_KIND], sizeof r->kind);
  if (li[IFLA_INFO_DATA] == NULL || nla_parse_nested (br, IFLA_BR_MAX, li[IFLA_INFO_DATA], NULL) < 0)
    return NL_OK;
  if (br[IFLA_BR_VLAN_FILTERING] != NULL)
    r->info.vlan_filtering = nla_get_u8 (br[IFLA_BR_VLAN_FILTERING]) != 0;
  if (br[IFLA_BR_STP_STATE] != NULL)
    r->info.stp = nla_get_u32 (br[IFLA_BR_STP_STATE]) != 0;
  if (br[IFLA_BR_FORWARD_DELAY] != NULL)
    r->info.forward_delay_ms = nla_get_u32 (br[IFLA_BR_FORWARD_DELAY]) * MS_PER_CLOCK_TICK;
  return NL_OK;
}

/* Reads name whatever its kind; NET_ERROR_NOT_FOUND when it does not exist. */
static gboolean
bridge_read (NetLink *nl, const char *name, BridgeRead *out, GError **error)
{
  g_autoptr(NlMsg) msg = net_link_msg_new (RTM_GETLINK, 0, AF_UNSPEC, 0, 64);
  BridgeRead r = { { 0 }, "" };

  if (!net_ifname_is_valid (name))
    {
      g_set_error (error, NET_ERROR, NET_ERROR_NOT_FOUND, "'%s' is not a valid interface name", name);
      return FALSE;
    }
  nla_put_string (msg, IFLA_IFNAME, name);
  nla_put_u32 (msg, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  if (!net_link_query (nl, msg, parse_bridge, &r, error, "cannot read bridge '%s'", name))
    return FALSE;
  if (r.info.ifindex == 0)
    {
      g_set_error (error, NET_ERROR, NET_ERROR_NETLINK, "cannot read bridge '%s': the kernel sent no answer", name);
      return FALSE;
    }
  *out = r;
  return TRUE;
}

gboolean
net_bridge_get_info (NetLink *nl, const char *name, NetBridgeInfo *out_info, GError **error)
{
  BridgeRead r;

  g_return_val_if_fail (nl != NULL && name != NULL && out_info != NULL, FALSE);

  if (!bridge_read (nl, name, &r, error))
    return FALSE;
  if (!g_str_equal (r.kind, "bridge"))
    {
      g_set_error (error, NET_ERROR, NET_ERROR_FOREIGN, "interface '%s' is not a bridge (it is %s%s)",
                   name, r.kind[0] ? "a " : "a device without a kind", r.kind);
      return FALSE;
    }
  *out_info = r.info;
  return TRUE;
}

gboolean
net_bridge_exists (NetLink *nl, const char *name)
{
  g_autoptr(GError) error = NULL;
  NetBridgeInfo info;

  if (net_bridge_get_info (nl, name, &info, &error))
    return TRUE;
  g_debug ("%s", error->message);
  return FALSE;
}

static void
warn (GPtrArray *warnings, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
warn (GPtrArray *warnings, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_debug ("%s", message);
  if (warnings != NULL)
    g_ptr_array_add (warnings, g_steal_pointer (&message));
}

static gboolean
spec_check_timers (const NetBridgeSpec *spec, GError **error)
{
  guint ms = spec->forward_delay_ms;

  if (ms > NET_BRIDGE_FORWARD_DELAY_MAX_MS || (spec->stp && ms < NET_BRIDGE_STP_FORWARD_DELAY_MIN_MS))
    {
      g_set_error (error, NET_ERROR, NET_ERROR_BRIDGE,
                   "bridge '%s': forward-delay %u.%03us is out of range%s (use %us to %us)", spec->name,
                   ms / 1000, ms % 1000, spec->stp ? " with stp = yes" : "",
                   spec->stp ? NET_BRIDGE_STP_FORWARD_DELAY_MIN_MS / 1000 : 0,
                   NET_BRIDGE_FORWARD_DELAY_MAX_MS / 1000);
      return FALSE;
    }
  return TRUE;
}

/* RTM_NEWLINK with IFLA_LINKINFO { kind "bridge", IFLA_INFO_DATA { settings } }: creates the
 * bridge (flags NLM_F_CREATE | NLM_F_EXCL) or, for an existing ifindex, changes it. */
static NlMsg *
bridge_msg_new (int flags, int ifindex, const char *name)
{
  NlMsg *msg = net_link_msg_new (RTM_NEWLINK, flags, AF_UNSPEC, ifindex, 128);

  if (name != NULL)
    nla_put_string (msg, IFLA_IFNAME, name);
  return msg;
}

static gboolean
bridge_create (NetLink *nl, const NetBridgeSpec *spec, GError **error)
{
  g_autoptr(NlMsg) msg = bridge_msg_new (NLM_F_CREATE | NLM_F_EXCL, 0, spec->name);
  g_autoptr(GError) local_error = NULL;
  struct nlattr *linkinfo, *data;

  linkinfo = nla_nest_start (msg, IFLA_LINKINFO);
  nla_put_string (msg, IFLA_INFO_KIND, "bridge");
  data = nla_nest_start (msg, IFLA_INFO_DATA);
  /* The kernel sets the delay before starting STP; spec_check_timers() kept it within the
   * 2..30 s it insists on once STP runs, so a later change cannot fail on it. */
  nla_put_u32 (msg, IFLA_BR_FORWARD_DELAY, spec->forward_delay_ms / MS_PER_CLOCK_TICK);
  nla_put_u32 (msg, IFLA_BR_STP_STATE, spec->stp ? 1 : 0);
  /* Only when asked: a kernel without VLAN filtering refuses the attribute even as 0. */
  if (spec->vlan_filtering)
    nla_put_u8 (msg, IFLA_BR_VLAN_FILTERING, 1);
  nla_nest_end (msg, data);
  nla_nest_end (msg, linkinfo);
  if (net_link_send (nl, msg, &local_error, "cannot create bridge '%s'", spec->name))
    return TRUE;
  if (spec->vlan_filtering && g_error_matches (local_error, NET_ERROR, NET_ERROR_UNSUPPORTED))
    g_set_error (error, NET_ERROR, NET_ERROR_UNSUPPORTED,
                 "cannot create bridge '%s' with vlan-filtering = yes: " NET_NO_VLAN_FILTERING, spec->name);
  else
    g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

static gboolean
bridge_set_vlan_filtering (NetLink *nl, const char *name, int ifindex, GError **error)
{
  g_autoptr(NlMsg) msg = bridge_msg_new (0, ifindex, NULL);
  g_autoptr(GError) local_error = NULL;
  struct nlattr *linkinfo, *data;

  linkinfo = nla_nest_start (msg, IFLA_LINKINFO);
  nla_put_string (msg, IFLA_INFO_KIND, "bridge");
  data = nla_nest_start (msg, IFLA_INFO_DATA);
  nla_put_u8 (msg, IFLA_BR_VLAN_FILTERING, 1);
  nla_nest_end (msg, data);
  nla_nest_end (msg, linkinfo);
  if (net_link_send (nl, msg, &local_error, "cannot turn on VLAN filtering on bridge '%s'", name))
    return TRUE;
  if (g_error_matches (local_error, NET_ERROR, NET_ERROR_UNSUPPORTED))
    g_set_error (error, NET_ERROR, NET_ERROR_UNSUPPORTED,
                 "cannot turn on VLAN filtering on bridge '%s': " NET_NO_VLAN_FILTERING, name);
  else
    g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

/* mtu (0: unchanged) and/or IFF_UP through one rtnl_link change. */
static gboolean
bridge_set_link (NetLink *nl, const char *name, guint mtu, gboolean up, GError **error)
{
  g_autoptr(RtnlLink) link = net_link_lookup (nl, name, error);
  g_autoptr(RtnlLink) changes = rtnl_link_alloc ();

  if (link == NULL)
    return FALSE;
  if (mtu != 0)
    rtnl_link_set_mtu (changes, mtu);
  if (up)
    rtnl_link_set_flags (changes, IFF_UP);
  return net_link_apply (nl, link, changes, error, "cannot %s bridge '%s'",
                         mtu != 0 ? "set the MTU of" : "bring up", name);
}

static gboolean
bridge_adopt (NetLink *nl, const NetBridgeSpec *spec, const NetBridgeInfo *info, GPtrArray *warnings,
              GError **error)
{
  if (spec->vlan_filtering && !info->vlan_filtering)
    {
      if (!bridge_set_vlan_filtering (nl, spec->name, info->ifindex, error))
        return FALSE;
      g_debug ("bridge '%s': VLAN filtering turned on", spec->name);
    }
  if (spec->mtu != 0 && spec->mtu != info->mtu
      && !bridge_set_link (nl, spec->name, spec->mtu, FALSE, error))
    return FALSE;
  if (!info->up)
    warn (warnings, "bridge '%s' is down; vmherdd leaves an existing bridge's state to the host's "
          "network configuration (bring it up there)", spec->name);
  return TRUE;
}

/* Enslaves spec->uplink unless it is already ours; every problem is a warning. */
static void
bridge_ensure_uplink (NetLink *nl, const NetBridgeSpec *spec, int bridge_ifindex, GPtrArray *warnings)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(RtnlLink) uplink = NULL;
  g_autoptr(RtnlLink) changes = NULL;
  int master;

  uplink = net_link_lookup (nl, spec->uplink, &local_error);
  if (uplink == NULL)
    {
      if (g_error_matches (local_error, NET_ERROR, NET_ERROR_NOT_FOUND))
        warn (warnings, "bridge '%s': uplink '%s' does not exist, continuing without it "
              "(check uplink in [bridge %s])", spec->name, spec->uplink, spec->name);
      else
        warn (warnings, "bridge '%s': %s, continuing without its uplink", spec->name, local_error->message);
      return;
    }
  master = rtnl_link_get_master (uplink);
  if (master == bridge_ifindex)
    return;
  if (master != 0)
    {
      g_autoptr(RtnlLink) other = net_link_lookup_index (nl, master, NULL);

      warn (warnings, "bridge '%s': uplink '%s' is already a port of '%s', leaving it there",
            spec->name, spec->uplink, other != NULL ? rtnl_link_get_name (other) : "another device");
      return;
    }
  changes = rtnl_link_alloc ();
  rtnl_link_set_master (changes, bridge_ifindex);
  if (!net_link_apply (nl, uplink, changes, &local_error, "cannot add uplink '%s' to bridge '%s'",
                       spec->uplink, spec->name))
    warn (warnings, "%s, continuing without it", local_error->message);
  else
    g_debug ("bridge '%s': uplink '%s' enslaved", spec->name, spec->uplink);
}

/* The bridge keeps the MAC it has now.  Left to itself, a Linux bridge takes the lowest MAC
 * of its ports, so a guest's tap joining could change it, and every neighbour would send to
 * the host's old MAC until its ARP entry expired: the host's own address on the bridge cut
 * off for tens of seconds (seen here, with a migration's link over that bridge).  Setting
 * the address, even to itself, makes the kernel leave it alone.  A warning on failure. */
static void
bridge_pin_mac (NetLink *nl, const char *name, GPtrArray *warnings)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(RtnlLink) link = net_link_lookup (nl, name, &local_error);
  g_autoptr(RtnlLink) changes = NULL;
  NlAddr *mac = link ? rtnl_link_get_addr (link) : NULL;

  if (mac == NULL)
    {
      warn (warnings, "bridge '%s': cannot read its MAC (%s); a guest's tap may change it",
            name, local_error ? local_error->message : "no address");
      return;
    }
  changes = rtnl_link_alloc ();
  rtnl_link_set_addr (changes, mac);
  if (!net_link_apply (nl, link, changes, &local_error, "cannot keep the MAC of bridge '%s'", name))
    warn (warnings, "%s; a guest's tap may change it", local_error->message);
}

gboolean
net_bridge_ensure (NetLink *nl, const NetBridgeSpec *spec, gboolean *out_created, GPtrArray *warnings,
                   GError **error)
{
  g_autoptr(GError) local_error = NULL;
  NetBridgeInfo info;
  gboolean created = FALSE;

  g_return_val_if_fail (nl != NULL && spec != NULL && spec->name != NULL, FALSE);

  if (!net_bridge_get_info (nl, spec->name, &info, &local_error))
    {
      if (!g_error_matches (local_error, NET_ERROR, NET_ERROR_NOT_FOUND))
        {
          if (local_error->code == NET_ERROR_FOREIGN)
            g_prefix_error (&local_error, "cannot use bridge '%s': ", spec->name);
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      if (!spec_check_timers (spec, error) || !bridge_create (nl, spec, error))
        return FALSE;
      if (!bridge_set_link (nl, spec->name, spec->mtu, TRUE, error)
          || !net_bridge_get_info (nl, spec->name, &info, error))
        {
          /* Ours and half made: gone, so the next attempt creates it whole. */
          if (!net_bridge_delete (nl, spec->name, &local_error))
            g_debug ("%s", local_error->message);
          return FALSE;
        }
      created = TRUE;
      g_debug ("bridge '%s' created", spec->name);
    }
  else if (!bridge_adopt (nl, spec, &info, warnings, error))
    return FALSE;

  if (spec->uplink != NULL)
    bridge_ensure_uplink (nl, spec, info.ifindex, warnings);
  /* After the uplink: a new bridge has taken the uplink's MAC, the usual one for a host. */
  bridge_pin_mac (nl, spec->name, warnings);
  if (out_created != NULL)
    *out_created = created;
  return TRUE;
}

gboolean
net_bridge_delete (NetLink *nl, const char *name, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  NetBridgeInfo info;

  g_return_val_if_fail (nl != NULL && name != NULL, FALSE);

  if (!net_bridge_get_info (nl, name, &info, &local_error))
    {
      if (g_error_matches (local_error, NET_ERROR, NET_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_prefixed_error (error, g_steal_pointer (&local_error), "cannot delete bridge '%s': ", name);
      return FALSE;
    }
  if (!net_link_remove (nl, info.ifindex, error, "cannot delete bridge '%s'", name))
    return FALSE;
  g_debug ("bridge '%s' deleted", name);
  return TRUE;
}
