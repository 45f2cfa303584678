/* peer-private.h: the pieces the peer link's server (peer-server.c) and client
 * (peer-client.c) share: the line channel over a TLS stream (peer-channel.c) and the
 * certificate helpers (peer-tls.c). */
#pragma once

#include "launcher/peer-link.h"

/* ---- peer-channel.c: JSON lines over a GIOStream ---- */

typedef struct _PeerChannel PeerChannel;

/* One complete line (without "\n"), NUL-terminated; borrowed. */
typedef void (*PeerChannelLineFunc) (const char *line, gsize length, gpointer user_data);
/* The channel ended by itself: error NULL on EOF, else why (read or write error, line too
 * long, output limit).  Not called after peer_channel_close(). */
typedef void (*PeerChannelClosedFunc) (const GError *error, gpointer user_data);

/* Takes a reference on stream (a GTlsConnection over a GSocketConnection: base is the
 * latter, closed directly so no close waits on the peer).  Nothing is read before
 * peer_channel_start(). */
PeerChannel *peer_channel_new (GIOStream *stream, GSocketConnection *base,
                               PeerChannelLineFunc on_line, PeerChannelClosedFunc on_closed,
                               gpointer user_data);
void peer_channel_start (PeerChannel *channel);
/* Queues object with "id" set to id (removed when NULL); object is not modified.  Dropped
 * once the channel is closed. */
void peer_channel_send (PeerChannel *channel, JsonObject *object, JsonNode *id);
/* Sends what is queued, then shuts the socket down for writing and closes once the peer
 * closes too (or after a short grace time); lines read meanwhile are dropped.  on_closed
 * is called at the end. */
void peer_channel_close_after_flush (PeerChannel *channel);
/* Closes now; no callback runs after this returns. */
void peer_channel_close (PeerChannel *channel);
gboolean peer_channel_is_open (PeerChannel *channel);
/* peer_channel_close() and drops the caller's reference. */
void peer_channel_free (PeerChannel *channel);
/* TCP keepalive on a peer link's socket: a peer whose host vanished (power, a cut
 * cable: no FIN ever comes) counts as gone after about PEER_KEEPALIVE_S. */
#define PEER_KEEPALIVE_S 30
void peer_socket_keepalive (GSocket *socket);

/* {"error": {"class": error_class, "desc": desc}} (owned). */
JsonObject *peer_error_object_new (const char *error_class, const char *desc);

/* ---- peer-tls.c: certificates ---- */

typedef struct
{
  GTlsCertificate *certificate; /* this host's, with its key */
  GTlsDatabase *ca;             /* the group's CA only (never the system's) */
} PeerCredentials;

/* Reads peer's cert, key and ca.  PEER_ERROR_CONFIG "cannot read the certificate FILE:
 * REASON" etc. */
PeerCredentials *peer_credentials_load (const HostPeerLink *peer, GError **error);
void peer_credentials_free (PeerCredentials *credentials);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PeerCredentials, peer_credentials_free)

/* The names a certificate gives its host: the SAN DNS names, then the subject's CN. */
GPtrArray *peer_certificate_names (GTlsCertificate *certificate);
/* "a, a.example" for messages; "no name" when empty. */
char *peer_certificate_names_text (GTlsCertificate *certificate);
/* What is wrong per flags, e.g. "not signed by the group's CA, expired". */
char *peer_certificate_flags_describe (GTlsCertificateFlags flags);
