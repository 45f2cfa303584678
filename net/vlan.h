/* vlan.h: the VLANs of a bridge port, through the bridge's VLAN filtering (AF_BRIDGE
 * netlink requests, as `bridge vlan` makes them; no subprocess).
 *
 * A guest NIC is an access port (one VLAN, untagged in the guest), a trunk (tagged VLANs
 * only) or neither (the port keeps the kernel's default: the bridge's default PVID, VLAN 1,
 * untagged).  VLANs only isolate anything on a bridge with vlan_filtering on. */
#pragma once

#include <glib.h>

#include "net/netlink.h"

G_BEGIN_DECLS

#define NET_VLAN_ID_MAX 4094

typedef enum
{
  NET_VLAN_MODE_NONE,   /* leave the port's VLANs as the kernel set them */
  NET_VLAN_MODE_ACCESS, /* one VLAN: PVID, egress untagged */
  NET_VLAN_MODE_TRUNK,  /* the listed VLANs, tagged; untagged frames are dropped */
} NetVlanMode;

const char *net_vlan_mode_to_string (NetVlanMode mode);

/* What a NIC asks for.  Borrowed: the caller keeps vids alive during the call. */
typedef struct
{
  NetVlanMode mode;
  guint16 pvid;          /* ACCESS: 1..4094 */
  const guint16 *vids;   /* TRUNK: n_vids >= 1 ids in 1..4094, any order, duplicates allowed */
  guint n_vids;
} NetVlan;

/* TRUE when vlan is well-formed (ids in range, a trunk has at least one). */
gboolean net_vlan_is_valid (const NetVlan *vlan);

/* "none", "access 10", "trunk 10,20-22": for messages and the health view. */
char *net_vlan_to_string (const NetVlan *vlan);

/* A port's VLANs as the bridge has them. */
typedef struct
{
  guint16 pvid;          /* untagged ingress goes to this VLAN; 0: untagged frames are dropped */
  GArray *vids;          /* guint16, ascending: every VLAN the port is a member of */
  GArray *untagged;      /* guint16, ascending: those that leave the port untagged */
} NetVlanPort;

void net_vlan_port_free (NetVlanPort *port);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NetVlanPort, net_vlan_port_free)

/* Reads the VLANs of port (an interface enslaved to a bridge).  A port without any (all
 * removed, or a kernel without VLAN filtering) has empty arrays and pvid 0.
 * NET_ERROR_NOT_FOUND when port does not exist or is not a bridge port. */
NetVlanPort *net_vlan_port_read (NetLink *nl, const char *port, GError **error);

/* TRUE when port has exactly the VLANs vlan asks for (always TRUE for NONE). */
gboolean net_vlan_port_matches (const NetVlanPort *port, const NetVlan *vlan);

/* Makes the VLANs of port (enslaved to a bridge) exactly vlan: the wanted VLANs are added
 * first, then every other one is removed, including the default VLAN 1 the kernel gives a
 * new port (else an access port on VLAN 10 would also receive VLAN 1's traffic untagged).
 * NONE changes nothing.  NET_ERROR_UNSUPPORTED when the kernel has no bridge VLAN
 * filtering; NET_ERROR_NOT_FOUND when port does not exist or is not a bridge port. */
gboolean net_vlan_port_apply (NetLink *nl, const char *port, const NetVlan *vlan, GError **error);

/* Adds vids to port as tagged VLANs, leaving its other VLANs and PVID alone: for an uplink
 * that must carry the guests' VLANs to the network. */
gboolean net_vlan_port_add_tagged (NetLink *nl, const char *port, const guint16 *vids, guint n_vids,
                                   GError **error);

G_END_DECLS
