/* bridge.h: the host bridges guests attach to ([bridge NAME] in vmherd.conf), through
 * rtnetlink; no `ip` or `brctl`.
 *
 * A declared bridge that does not exist is created with all its settings; one that exists
 * is adopted, and an adopted bridge is changed only where guests need it:
 *   - vlan_filtering is turned on when asked (never off: the host may rely on it);
 *   - mtu is set when given (non-zero) and different;
 *   - stp, forward delay, addresses and the up/down state stay as the host's own network
 *     configuration made them (a warning says when the bridge is down);
 *   - ports are never removed, and an uplink that is a port of another bridge or bond
 *     stays there (a warning says so).
 * A created bridge's MTU is "set by the user" in the kernel's sense, so enslaving a port
 * with a smaller MTU (a tap, an uplink) does not lower it. */
#pragma once

#include <glib.h>

#include "net/netlink.h"

G_BEGIN_DECLS

#define NET_BRIDGE_FORWARD_DELAY_MAX_MS 30000
#define NET_BRIDGE_STP_FORWARD_DELAY_MIN_MS 2000  /* the kernel's minimum while STP runs */

/* What vmherd.conf declares.  Borrowed for the call. */
typedef struct
{
  const char *name;          /* the bridge's interface name */
  const char *uplink;        /* nullable: an existing NIC or bond to enslave */
  guint mtu;                 /* 0: leave as it is */
  gboolean vlan_filtering;
  gboolean stp;
  guint forward_delay_ms;    /* 0..30000, rounded down to 10 ms; with stp at least 2000 */
} NetBridgeSpec;

/* A bridge as the kernel has it now. */
typedef struct
{
  int ifindex;
  guint mtu;
  gboolean up;               /* administratively up (IFF_UP) */
  gboolean vlan_filtering;
  gboolean stp;
  guint forward_delay_ms;
} NetBridgeInfo;

/* Creates the bridge spec->name (brought up, *out_created TRUE) or adopts it (*out_created
 * FALSE) as described above, then enslaves spec->uplink.  Problems that leave the bridge
 * usable (the uplink does not exist, is a port elsewhere or cannot be enslaved; an adopted
 * bridge is down) do not fail: each appends a message (char *, "bridge 'br0': uplink 'eth9'
 * does not exist, ...") to warnings (nullable; create it with g_free as free func).
 * A bridge it made but could not configure (MTU, up) is deleted again before it fails.
 * Errors: NET_ERROR_FOREIGN (name exists and is not a bridge: untouched), _BRIDGE (STP with a
 * forward delay out of 2..30 s), _UNSUPPORTED (vlan_filtering on a kernel without it),
 * _NETLINK (e.g. no CAP_NET_ADMIN). */
gboolean net_bridge_ensure (NetLink *nl, const NetBridgeSpec *spec, gboolean *out_created,
                            GPtrArray *warnings, GError **error);

/* Reads bridge name.  NET_ERROR_NOT_FOUND when there is no such interface, _FOREIGN when it
 * is not a bridge. */
gboolean net_bridge_get_info (NetLink *nl, const char *name, NetBridgeInfo *out_info, GError **error);

/* TRUE when name exists and is a bridge; FALSE also when it cannot be read (logged at debug). */
gboolean net_bridge_exists (NetLink *nl, const char *name);

/* Deletes bridge name; its ports are released, not deleted.  Only for bridges the caller
 * created: vmherd never deletes one it adopted.  TRUE when it does not exist.
 * NET_ERROR_FOREIGN when name is not a bridge (untouched). */
gboolean net_bridge_delete (NetLink *nl, const char *name, GError **error);

G_END_DECLS
