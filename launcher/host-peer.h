/* host-peer.h: the [peer] section of vmherd.conf (the peer link, see peer-link.h), parsed
 * by host-config.c.  The format is documented in docs/vmherd.conf.5. */
#pragma once

#include <glib.h>

#include "launcher/config-ini.h"
#include "launcher/config-keys.h"

typedef struct
{
  char *name;                   /* the peer host's name, as its certificate names it */
  char *address;                /* "ADDR:PORT" as written ("[ADDR]:PORT" for IPv6) */
  int line;                     /* of its host = line */
} HostPeer;

typedef struct
{
  ConfigSection section;
  char *name;                   /* this host's name in the group; default: the short hostname */
  char *listen;                 /* "ADDR:PORT" */
  char *ca, *cert, *key;        /* absolute paths */
  GPtrArray *hosts;             /* HostPeer, in file order */
} HostPeerLink;

/* An empty [peer] section that starts at line. */
HostPeerLink *host_peer_link_new (int line);
void host_peer_link_free (HostPeerLink *peer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (HostPeerLink, host_peer_link_free)

/* One key = value line of [peer]; problems go to errors as file:line. */
void host_peer_link_set_key (HostPeerLink *peer, const char *key, const char *value,
                             const char *base_dir, ConfigErrors *errors, const char *file, int line);

/* After the file is read: required keys, listen syntax, the host list (duplicates, this
 * host), and the default name.  Touches no file: host_peer_link_check_files() does. */
void host_peer_link_finish (HostPeerLink *peer, ConfigErrors *errors, const char *file);

/* host-peer-check.c, for `vmherd check`: reads ca, cert and key and reports (as
 * file:line of their keys) unreadable files, a key that does not match the certificate, a
 * certificate not signed by the CA, expired or not yet valid, not for both TLS server and
 * client use, or whose names do not include name.  Does nothing when peer is NULL. */
void host_peer_link_check_files (const HostPeerLink *peer, const char *file, ConfigErrors *errors);

/* The entry of the peer host name, or NULL. */
const HostPeer *host_peer_link_find (const HostPeerLink *peer, const char *name);

/* TRUE when name can be a host name in the group: 1 to 63 letters, digits, '-', '.'. */
gboolean host_peer_name_is_valid (const char *name);
