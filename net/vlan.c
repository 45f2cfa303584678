/* vlan.c: bridge port VLANs.  libnl 3.7 reads them (rtnl_link_bridge_get_port_vlan) but
 * cannot change them, so the changes are AF_BRIDGE RTM_SETLINK/RTM_DELLINK requests with
 * IFLA_AF_SPEC/IFLA_BRIDGE_VLAN_INFO entries built here, as iproute2's `bridge vlan` does. */
#define G_LOG_DOMAIN "vmherd-net"

#include "net/vlan.h"

#include <linux/if_bridge.h>
#include <linux/rtnetlink.h>
#include <netlink/route/link/bridge.h>
#include <string.h>

#include "net/netlink-private.h"

/* A set of VLAN ids, as the kernel and libnl keep them. */
typedef struct
{
  guint32 bits[RTNL_LINK_BRIDGE_VLAN_BITMAP_LEN];
} VlanSet;

static void
vlan_set_add (VlanSet *set, guint vid)
{
  set->bits[vid / 32] |= 1u << (vid % 32);
}

static gboolean
vlan_set_has (const VlanSet *set, guint vid)
{
  return (set->bits[vid / 32] & (1u << (vid % 32))) != 0;
}

static gboolean
vlan_set_is_empty (const VlanSet *set)
{
  for (guint i = 0; i < G_N_ELEMENTS (set->bits); i++)
    if (set->bits[i] != 0)
      return FALSE;
  return TRUE;
}

static const char *const net_vlan_mode_names[] = {
  [NET_VLAN_MODE_NONE] = "none",
  [NET_VLAN_MODE_ACCESS] = "access",
  [NET_VLAN_MODE_TRUNK] = "trunk",
};

const char *
net_vlan_mode_to_string (NetVlanMode mode)
{
  if ((guint) mode >= G_N_ELEMENTS (net_vlan_mode_names))
    return "unknown";
  return net_vlan_mode_names[mode];
}

gboolean
net_vlan_is_valid (const NetVlan *vlan)
{
  switch (vlan->mode)
    {
    case NET_VLAN_MODE_NONE:
      return TRUE;
    case NET_VLAN_MODE_ACCESS:
      return vlan->pvid >= 1 && vlan->pvid <= NET_VLAN_ID_MAX;
    case NET_VLAN_MODE_TRUNK:
      if (vlan->n_vids == 0 || vlan->vids == NULL)
        return FALSE;
      for (guint i = 0; i < vlan->n_vids; i++)
        if (vlan->vids[i] < 1 || vlan->vids[i] > NET_VLAN_ID_MAX)
          return FALSE;
      return TRUE;
    }
  return FALSE;
}

/* The VLANs vlan asks for. */
static void
vlan_set_from_vlan (VlanSet *set, const NetVlan *vlan)
{
  memset (set, 0, sizeof *set);
  if (vlan->mode == NET_VLAN_MODE_ACCESS)
    vlan_set_add (set, vlan->pvid);
  else if (vlan->mode == NET_VLAN_MODE_TRUNK)
    for (guint i = 0; i < vlan->n_vids; i++)
      vlan_set_add (set, vlan->vids[i]);
}

/* "10,20-22" */
static char *
vlan_set_to_string (const VlanSet *set)
{
  GString *out = g_string_new (NULL);

  for (guint vid = 1; vid <= NET_VLAN_ID_MAX; vid++)
    {
      guint last = vid;

      if (!vlan_set_has (set, vid))
        continue;
      while (last < NET_VLAN_ID_MAX && vlan_set_has (set, last + 1))
        last++;
      if (out->len > 0)
        g_string_append_c (out, ',');
      if (last == vid)
        g_string_append_printf (out, "%u", vid);
      else
        g_string_append_printf (out, "%u-%u", vid, last);
      vid = last;
    }
  return g_string_free (out, FALSE);
}

char *
net_vlan_to_string (const NetVlan *vlan)
{
  VlanSet set;
  g_autofree char *ids = NULL;

  g_return_val_if_fail (vlan != NULL, NULL);

  if (vlan->mode == NET_VLAN_MODE_NONE)
    return g_strdup ("none");
  vlan_set_from_vlan (&set, vlan);
  ids = vlan_set_to_string (&set);
  return g_strdup_printf ("%s %s", net_vlan_mode_to_string (vlan->mode), ids);
}

void
net_vlan_port_free (NetVlanPort *port)
{
  if (port == NULL)
    return;
  g_clear_pointer (&port->vids, g_array_unref);
  g_clear_pointer (&port->untagged, g_array_unref);
  g_free (port);
}

static NetVlanPort *
net_vlan_port_new (void)
{
  NetVlanPort *port = g_new0 (NetVlanPort, 1);

  port->vids = g_array_new (FALSE, FALSE, sizeof (guint16));
  port->untagged = g_array_new (FALSE, FALSE, sizeof (guint16));
  return port;
}

static NetVlanPort *
port_read (NetLink *nl, int ifindex, const char *name, GError **error)
{
  g_autoptr(NlCache) cache = net_link_dump_bridge_ports (nl, error);
  g_autoptr(RtnlLink) link = NULL;
  g_autoptr(NetVlanPort) port = NULL;
  const struct rtnl_link_bridge_vlan *info;

  if (cache == NULL)
    return NULL;
  link = rtnl_link_get (cache, ifindex);
  if (link == NULL)
    {
      g_set_error (error, NET_ERROR, NET_ERROR_NOT_FOUND, "'%s' is not a bridge port", name);
      return NULL;
    }
  port = net_vlan_port_new ();
  info = rtnl_link_bridge_get_port_vlan (link);   /* NULL: no VLANs at all */
  if (info == NULL)
    return g_steal_pointer (&port);
  port->pvid = info->pvid;
  for (guint16 vid = 1; vid <= NET_VLAN_ID_MAX; vid++)
    {
      if (info->vlan_bitmap[vid / 32] & (1u << (vid % 32)))
        g_array_append_val (port->vids, vid);
      if (info->untagged_bitmap[vid / 32] & (1u << (vid % 32)))
        g_array_append_val (port->untagged, vid);
    }
  return g_steal_pointer (&port);
}

NetVlanPort *
net_vlan_port_read (NetLink *nl, const char *port, GError **error)
{
  int ifindex;

  g_return_val_if_fail (nl != NULL && port != NULL, NULL);

  ifindex = net_link_get_ifindex (nl, port, error);
  if (ifindex == 0)
    return NULL;
  return port_read (nl, ifindex, port, error);
}

static gboolean
array_equals_set (GArray *array, const VlanSet *set)
{
  VlanSet have = { { 0 } };

  for (guint i = 0; i < array->len; i++)
    vlan_set_add (&have, g_array_index (array, guint16, i));
  return memcmp (&have, set, sizeof have) == 0;
}

gboolean
net_vlan_port_matches (const NetVlanPort *port, const NetVlan *vlan)
{
  VlanSet want, none = { { 0 } };

  g_return_val_if_fail (port != NULL && vlan != NULL, FALSE);

  vlan_set_from_vlan (&want, vlan);
  switch (vlan->mode)
    {
    case NET_VLAN_MODE_NONE:
      return TRUE;
    case NET_VLAN_MODE_ACCESS:
      return port->pvid == vlan->pvid && array_equals_set (port->vids, &want)
             && array_equals_set (port->untagged, &want);
    case NET_VLAN_MODE_TRUNK:
      return port->pvid == 0 && array_equals_set (port->vids, &want)
             && array_equals_set (port->untagged, &none);
    }
  return FALSE;
}

/* Appends one entry, or a RANGE_BEGIN/RANGE_END pair, per run of consecutive ids; the
 * kernel refuses a PVID flag on a range, and an access port has a single id anyway.
 * Never more entries than ids, so FALSE (no room) means send_vlans() sized msg wrong. */
static gboolean
put_vlan_entries (NlMsg *msg, const VlanSet *set, guint16 flags)
{
  struct nlattr *spec = nla_nest_start (msg, IFLA_AF_SPEC);

  if (spec == NULL)
    return FALSE;
  for (guint vid = 1; vid <= NET_VLAN_ID_MAX; vid++)
    {
      guint last = vid;
      struct bridge_vlan_info info = { .flags = flags, .vid = (guint16) vid };

      if (!vlan_set_has (set, vid))
        continue;
      while (last < NET_VLAN_ID_MAX && vlan_set_has (set, last + 1) && !(flags & BRIDGE_VLAN_INFO_PVID))
        last++;
      if (last > vid)
        {
          info.flags |= BRIDGE_VLAN_INFO_RANGE_BEGIN;
          if (nla_put (msg, IFLA_BRIDGE_VLAN_INFO, sizeof info, &info) < 0)
            return FALSE;
          info.flags = flags | BRIDGE_VLAN_INFO_RANGE_END;
          info.vid = (guint16) last;
        }
      if (nla_put (msg, IFLA_BRIDGE_VLAN_INFO, sizeof info, &info) < 0)
        return FALSE;
      vid = last;
    }
  nla_nest_end (msg, spec);
  return TRUE;
}

/* type: RTM_SETLINK adds (or updates the flags of) the VLANs in set, RTM_DELLINK removes them. */
static gboolean
send_vlans (NetLink *nl, int type, int ifindex, const char *port, const VlanSet *set, guint16 flags,
            GError **error)
{
  /* At most 4094 single ids: 8 bytes each, plus the nest. */
  g_autoptr(NlMsg) msg = net_link_msg_new (type, 0, AF_BRIDGE, ifindex, 8 * (NET_VLAN_ID_MAX + 1) + 64);
  g_autofree char *ids = vlan_set_to_string (set);
  g_autoptr(GError) local_error = NULL;
  const char *verb = type == RTM_DELLINK ? "remove" : "add";
  const char *preposition = type == RTM_DELLINK ? "from" : "to";

  if (!put_vlan_entries (msg, set, flags))
    {
      g_set_error (error, NET_ERROR, NET_ERROR_NETLINK, "cannot %s VLAN %s %s '%s': the request "
                   "does not fit its buffer (a bug in vmherd)", verb, ids, preposition, port);
      return FALSE;
    }
  if (!net_link_send (nl, msg, &local_error, "cannot %s VLAN %s %s '%s'", verb, ids, preposition, port))
    {
      if (g_error_matches (local_error, NET_ERROR, NET_ERROR_UNSUPPORTED))
        g_set_error (error, NET_ERROR, NET_ERROR_UNSUPPORTED, "cannot %s VLAN %s %s '%s': " NET_NO_VLAN_FILTERING,
                     verb, ids, preposition, port);
      else
        g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  g_debug ("port '%s': VLAN %s %s (flags 0x%x)", port, ids, type == RTM_DELLINK ? "removed" : "added", flags);
  return TRUE;
}

gboolean
net_vlan_port_apply (NetLink *nl, const char *port, const NetVlan *vlan, GError **error)
{
  g_autoptr(NetVlanPort) current = NULL;
  VlanSet want, extra = { { 0 } };
  guint16 flags;
  int ifindex;

  g_return_val_if_fail (nl != NULL && port != NULL && vlan != NULL, FALSE);
  g_return_val_if_fail (net_vlan_is_valid (vlan), FALSE);

  if (vlan->mode == NET_VLAN_MODE_NONE)
    return TRUE;
  ifindex = net_link_get_ifindex (nl, port, error);
  if (ifindex == 0)
    return FALSE;
  current = port_read (nl, ifindex, port, error);
  if (current == NULL)
    return FALSE;

  vlan_set_from_vlan (&want, vlan);
  flags = vlan->mode == NET_VLAN_MODE_ACCESS ? BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED : 0;
  /* Adding first moves the PVID before the old one goes, so no frame lands in no VLAN. */
  if (!send_vlans (nl, RTM_SETLINK, ifindex, port, &want, flags, error))
    return FALSE;
  for (guint i = 0; i < current->vids->len; i++)
    {
      guint16 vid = g_array_index (current->vids, guint16, i);

      if (!vlan_set_has (&want, vid))
        vlan_set_add (&extra, vid);
    }
  if (vlan_set_is_empty (&extra))
    return TRUE;
  return send_vlans (nl, RTM_DELLINK, ifindex, port, &extra, 0, error);
}

gboolean
net_vlan_port_add_tagged (NetLink *nl, const char *port, const guint16 *vids, guint n_vids, GError **error)
{
  NetVlan trunk = { .mode = NET_VLAN_MODE_TRUNK, .vids = vids, .n_vids = n_vids };
  g_autoptr(NetVlanPort) current = NULL;
  VlanSet add;
  int ifindex;

  g_return_val_if_fail (nl != NULL && port != NULL, FALSE);
  g_return_val_if_fail (net_vlan_is_valid (&trunk), FALSE);

  ifindex = net_link_get_ifindex (nl, port, error);
  if (ifindex == 0)
    return FALSE;
  current = port_read (nl, ifindex, port, error);
  if (current == NULL)
    return FALSE;
  vlan_set_from_vlan (&add, &trunk);
  /* Re-adding a VLAN the port has replaces its flags: keep its PVID and untagged ones. */
  for (guint i = 0; i < current->vids->len; i++)
    {
      guint16 vid = g_array_index (current->vids, guint16, i);

      add.bits[vid / 32] &= ~(1u << (vid % 32));
    }
  if (vlan_set_is_empty (&add))
    return TRUE;
  return send_vlans (nl, RTM_SETLINK, ifindex, port, &add, 0, error);
}
