/* net.h: the net/ library: host bridges and VLANs (rtnetlink through libnl-route), guest
 * taps (/dev/net/tun) and their names.  Include this, or the one header you need.
 *
 *   net-error.h  NET_ERROR, NetError, libnl error translation
 *   netlink.h    NetLink, the rtnetlink handle every call takes
 *   bridge.h     create or adopt a bridge, read it, delete one we created
 *   vlan.h       a bridge port's VLANs (access, trunk)
 *   tap.h        tap names, create/attach/read/delete taps, /dev/vhost-net
 *
 * The library only logs with g_debug(); everything a person must see comes back as a
 * GError or a warning string for the caller to log once. */
#pragma once

#include "net/net-error.h"
#include "net/netlink.h"
#include "net/bridge.h"
#include "net/vlan.h"
#include "net/tap.h"
