/* netlink.h: a synchronous rtnetlink handle (libnl-route) for bridges, taps and VLANs.
 *
 * Every call sends one or a few requests and waits for the kernel's answer, which is fast
 * and bounded (no other process is involved), so calls may run on the main loop.  There is
 * no cache: each call reads the kernel's current state, so interfaces created or deleted
 * by hand in between are seen.  A NetLink is not thread-safe; use one per thread. */
#pragma once

#include <glib.h>

#include "net/net-error.h"

G_BEGIN_DECLS

/* Linux's limit on an interface name, without the NUL (IFNAMSIZ - 1). */
#define NET_IFNAME_MAX 15

typedef struct _NetLink NetLink;

/* Opens a NETLINK_ROUTE socket.  NET_ERROR_NETLINK when the socket cannot be opened.
 * Opening needs no privilege; changing interfaces needs CAP_NET_ADMIN. */
NetLink *net_link_open (GError **error);

/* Closes the socket; NULL-safe. */
void net_link_free (NetLink *nl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NetLink, net_link_free)

/* The interface index of name (> 0), or 0 with NET_ERROR_NOT_FOUND (no such interface) or
 * NET_ERROR_NETLINK. */
int net_link_get_ifindex (NetLink *nl, const char *name, GError **error);

/* TRUE when name can be a Linux interface name: 1 to 15 bytes, not "." or "..", without
 * '/', ':', '%' (the kernel would expand it as a name template) or white space. */
gboolean net_ifname_is_valid (const char *name);

G_END_DECLS
