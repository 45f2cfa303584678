/* netlink-private.h: what bridge.c, tap.c and vlan.c share about the netlink socket.
 * Not for use outside net/.
 *
 * Every request goes through net_link_apply(), net_link_send() or net_link_query(): they
 * record the kernel's errno and extended-ack message ("Can not enslave a bridge to a
 * bridge") and turn a failure into a GError with net_link_set_error(), so the text a
 * person reads is written in one place (net-error.c). */
#pragma once

#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include "net/netlink.h"

G_BEGIN_DECLS

#define NET_LINK_EXTACK_MAX 256

/* What EOPNOTSUPP means for a VLAN filtering or bridge VLAN request. */
#define NET_NO_VLAN_FILTERING "the running kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)"

struct _NetLink
{
  struct nl_sock *sock;
  int last_errno;                        /* positive errno of the last NLMSG_ERROR, or 0 */
  char last_extack[NET_LINK_EXTACK_MAX]; /* the kernel's message for it, or "" */
};

typedef struct rtnl_link RtnlLink;
typedef struct nl_msg NlMsg;
typedef struct nl_cache NlCache;
typedef struct nl_addr NlAddr;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RtnlLink, rtnl_link_put)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NlMsg, nlmsg_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NlCache, nl_cache_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NlAddr, nl_addr_put)

/* The interface as the kernel has it now (a new reference), or NULL with
 * NET_ERROR_NOT_FOUND or NET_ERROR_NETLINK. */
RtnlLink *net_link_lookup (NetLink *nl, const char *name, GError **error);
RtnlLink *net_link_lookup_index (NetLink *nl, int ifindex, GError **error);

/* The interface's kind ("bridge", "tun", "veth", ...) or "" for a device without one. */
const char *net_link_kind (RtnlLink *link);

/* rtnl_link_change (orig, changes); on failure error is "<format>: <reason>". */
gboolean net_link_apply (NetLink *nl, RtnlLink *orig, RtnlLink *changes, GError **error,
                         const char *format, ...) G_GNUC_PRINTF (5, 6);

/* Deletes the interface ifindex; TRUE also when it is already gone. */
gboolean net_link_remove (NetLink *nl, int ifindex, GError **error, const char *format, ...)
  G_GNUC_PRINTF (4, 5);

/* A request of type (RTM_*) with an ifinfomsg for family and ifindex, room for size bytes
 * of attributes (0: a page), and NLM_F_REQUEST | NLM_F_ACK | flags when sent. */
NlMsg *net_link_msg_new (int type, int flags, int family, int ifindex, gsize size);

/* Sends msg (borrowed) and waits for the kernel's acknowledgement. */
gboolean net_link_send (NetLink *nl, NlMsg *msg, GError **error, const char *format, ...)
  G_GNUC_PRINTF (4, 5);

/* Sends a get or dump request (borrowed) and calls parse for each answer, then waits for
 * the acknowledgement a non-dump request gets.  parse returns NL_OK. */
gboolean net_link_query (NetLink *nl, NlMsg *msg, nl_recvmsg_msg_cb_t parse, void *arg,
                         GError **error, const char *format, ...) G_GNUC_PRINTF (6, 7);

/* Every bridge port with its VLANs (the AF_BRIDGE dump, RTEXT_FILTER_BRVLAN); look a port
 * up with rtnl_link_get (cache, ifindex). */
NlCache *net_link_dump_bridge_ports (NetLink *nl, GError **error);

/* Sets error for the libnl error nle of the request just made, with the kernel's errno
 * and extended-ack message when it sent them. */
void net_link_set_error (NetLink *nl, int nle, GError **error, const char *format, ...)
  G_GNUC_PRINTF (4, 5);

/* net-error.c: error from nle, the kernel's errno (0: unknown) and extack ("" or NULL),
 * prefixed with what ("cannot create bridge 'br0'"). */
void net_error_set_nl (GError **error, int nle, int sys_errno, const char *extack, const char *what);

G_END_DECLS
