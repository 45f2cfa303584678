/* net-error.h: the NET_ERROR domain, and the one place libnl's NLE_* codes become text a
 * person can act on. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define NET_ERROR (net_error_quark ())

typedef enum
{
  NET_ERROR_TAP,         /* /dev/net/tun (or /dev/vhost-net) could not be opened or set up */
  NET_ERROR_BRIDGE,      /* the bridge cannot serve the request (VLANs without vlan-filtering,
                          * STP with a forward delay the kernel refuses) */
  NET_ERROR_NETLINK,     /* the kernel refused a netlink request, or the socket failed */
  NET_ERROR_NOT_FOUND,   /* no interface (or device node) of that name */
  NET_ERROR_EXISTS,      /* it exists already: vmherd's own tap for this NIC is still there */
  NET_ERROR_FOREIGN,     /* an interface of that name exists and is not ours: nothing was touched */
  NET_ERROR_UNSUPPORTED, /* the running kernel lacks the feature (e.g. bridge VLAN filtering) */
} NetError;

GQuark net_error_quark (void);

/* Short lower-case name of an error code ("foreign"), for logs and metrics. */
const char *net_error_to_string (NetError code);

/* Sets error to "<format>: <what went wrong and what to do>" for the libnl error nle
 * (negative as libnl returns it, or positive).  The code follows the cause:
 * NLE_OBJ_NOTFOUND/NLE_NODEV -> NOT_FOUND, NLE_EXIST -> EXISTS, NLE_OPNOTSUPP/NLE_AF_NOSUPPORT
 * -> UNSUPPORTED, anything else -> NETLINK.  E.g. NLE_PERM gives
 * "cannot create bridge 'br0': permission denied (vmherdd needs CAP_NET_ADMIN)". */
void net_error_from_nl (int nle, GError **error, const char *format, ...) G_GNUC_PRINTF (3, 4);

G_END_DECLS
