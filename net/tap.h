/* tap.h: the host side of each guest NIC, a tap made by vmherdd (/dev/net/tun) and handed
 * to QEMU as file descriptors (-netdev tap,fd=N or fds=N:M), so QEMU needs no capability.
 *
 * Name: net_tap_name() derives it from the VM and NIC names, the same on every host.
 * Ownership: a tap vmherdd made carries the ifalias "vmherd:VM:NIC".  An interface with the
 *   tap's name but not that alias is foreign: it is never changed or deleted.
 * Lifetime: taps are not persistent (no TUNSETPERSIST).  The kernel removes a tap when the
 *   last file descriptor on it closes; vmherdd hands its fds to QEMU and closes its own, so
 *   the tap lives exactly as long as QEMU: a guest that stops, or a QEMU that dies while
 *   vmherdd is down, leaves no tap behind, and a restart of vmherdd leaves the tap alone.
 *   The new vmherdd finds it by name and checks the alias (net_tap_get_info()).
 * Host side: the tap gets the bridge's MTU before it is enslaved (a smaller one would lower
 *   a bridge whose MTU follows its ports, or drop the guest's jumbo frames), and a MAC
 *   starting with fe: (derived from the names): the kernel gives a bridge the lowest MAC of
 *   its ports, so a random tap MAC could become the bridge's and change as guests come and go.
 * Order: enslaved and given its VLANs while down, then brought up, so no frame passes
 *   before the VLANs are in place. */
#pragma once

#include <glib.h>

#include "net/netlink.h"
#include "net/vlan.h"

G_BEGIN_DECLS

#define NET_TAP_MAX_QUEUES 16          /* the kernel allows 256; vmherd uses one per vCPU, <= 8 */
#define NET_TAP_PREFIX "vh-"

/* "vh-" + the VM name's first 6 characters (those other than letters, digits, '-', '_' and
 * '.' become '_'; trailing '-', '_', '.' dropped) + "-" + 5 characters of base32 (a-z2-7) of
 * SHA-256 ("vmherd-tap\0" VM "\0" NIC "\0"): NIC lan of VM ioc-01 is "vh-ioc-01-<5>", at most 15
 * characters.  Two NICs share a name only when their 25-bit hashes collide under the same
 * prefix; net_tap_create() then refuses the second with NET_ERROR_FOREIGN. */
char *net_tap_name (const char *vm, const char *nic);

/* "vmherd:VM:NIC", the ifalias that marks the tap as vmherd's. */
char *net_tap_alias (const char *vm, const char *nic);

/* One guest NIC.  Borrowed for the call. */
typedef struct
{
  const char *name;      /* usually net_tap_name (vm, nic) */
  const char *vm;        /* recorded in the alias */
  const char *nic;
  const char *bridge;    /* an existing bridge */
  guint queues;          /* 1..NET_TAP_MAX_QUEUES; more than 1 makes a multiqueue tap */
  NetVlan vlan;          /* needs a bridge with vlan_filtering unless NONE */
} NetTapSpec;

/* Creates the tap (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, | IFF_MULTI_QUEUE when queues > 1),
 * sets its alias, MAC and MTU, enslaves it to spec->bridge, sets its VLANs and brings it up.
 * Writes spec->queues file descriptors (O_CLOEXEC, blocking, one per queue) to out_fds; the
 * tap goes away when all are closed, so on failure nothing is left behind.
 * Errors: NET_ERROR_FOREIGN (the name is taken by an interface that is not this NIC's tap:
 * nothing touched), _EXISTS (this NIC's tap exists: its QEMU still runs), _NOT_FOUND (no
 * such bridge), _BRIDGE (VLANs on a bridge without vlan_filtering), _TAP (/dev/net/tun),
 * _UNSUPPORTED (no VLAN filtering in the kernel), _NETLINK. */
gboolean net_tap_create (NetLink *nl, const NetTapSpec *spec, int *out_fds, GError **error);

/* Makes an existing tap of this NIC a port of spec->bridge with spec->vlan, up: after the
 * bridge was deleted and recreated, or to re-adopt a tap after a restart.  Idempotent;
 * spec->queues is not used.  Errors as net_tap_create(); _NOT_FOUND also when the tap is gone. */
gboolean net_tap_attach (NetLink *nl, const NetTapSpec *spec, GError **error);

/* A tap (or any interface of that name) as the kernel has it now. */
typedef struct
{
  char *name;
  int ifindex;
  gboolean is_tap;       /* a tun/tap device */
  char *alias;           /* its ifalias, or NULL */
  gboolean up;           /* administratively up */
  gboolean carrier;      /* someone (QEMU) holds a queue */
  guint mtu;
  int master_ifindex;    /* 0: detached, in no bridge */
  char *master;          /* the bridge's name, or NULL when detached */
  NetVlanPort *vlans;    /* its VLANs on the bridge; NULL when detached (or unreadable) */
} NetTapInfo;

void net_tap_info_free (NetTapInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NetTapInfo, net_tap_info_free)

/* Reads interface name.  NET_ERROR_NOT_FOUND when it does not exist. */
NetTapInfo *net_tap_get_info (NetLink *nl, const char *name, GError **error);

/* TRUE when info is a tap carrying this NIC's alias. */
gboolean net_tap_info_is_owned (const NetTapInfo *info, const char *vm, const char *nic);

/* Deletes the tap name of this NIC, which detaches the QEMU holding it.  TRUE when it does
 * not exist.  NET_ERROR_FOREIGN when name is not this NIC's tap (untouched). */
gboolean net_tap_delete (NetLink *nl, const char *name, const char *vm, const char *nic, GError **error);

/* Opens n file descriptors on /dev/vhost-net (one per queue, O_CLOEXEC) for QEMU's vhostfds.
 * NET_ERROR_NOT_FOUND when the host has no /dev/vhost-net (then run without vhost),
 * NET_ERROR_TAP when it cannot be opened. */
gboolean net_tap_open_vhost (guint n, int *out_fds, GError **error);

G_END_DECLS
