/* peer-link.h: daemon-to-daemon link over TCP with mutual TLS ([peer] in vmherd.conf).
 *
 * The wire format is the control socket's (control.h): one JSON object per line,
 *   -> {"execute":"hello","arguments":{...},"id":1}
 *   <- {"progress":{...},"id":1}                      (extra lines, any number, optional)
 *   <- {"return":{...},"id":1}  or  {"error":{"class":"NotFound","desc":"..."},"id":1}
 * Both ends hold a certificate signed by the group's CA (`ca`), for both serverAuth and
 * clientAuth.  The server requires the client's certificate, verifies it against the CA and
 * takes the client's name from it (CN, or a SAN DNS name); a name that is not one of the
 * configured `host` entries gets one {"error":{"class":"PermissionDenied",...}} line
 * without an id, and the connection is closed before any request is read.  The client
 * verifies the server's certificate against the CA and that it names the host it meant to
 * reach.
 *
 * Everything runs on the thread-default main context of the thread that created the
 * server or started the connect; no call blocks it (certificate files are read when a
 * server or connection is set up: a few kilobytes). */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "launcher/host-config.h"

#define PEER_ERROR (peer_error_quark ())
GQuark peer_error_quark (void);

typedef enum
{
  PEER_ERROR_CONFIG,            /* no [peer] section, unknown host name, unreadable files */
  PEER_ERROR_UNREACHABLE,       /* connect() failed or timed out */
  PEER_ERROR_TLS,               /* handshake or certificate */
  PEER_ERROR_REFUSED,           /* the peer answered {"error": ...}; message = its desc */
  PEER_ERROR_TIMEOUT,           /* no answer within the call's timeout */
  PEER_ERROR_DISCONNECTED,      /* the connection ended before the answer */
  PEER_ERROR_PROTOCOL,          /* a line that is not one JSON object, or not an answer */
} PeerError;

/* Short lower-case name of an error code ("timeout"), for logs and `vmherd peers`. */
const char *peer_error_to_string (PeerError code);

/* How long a TLS handshake (either side) and a connect() may take. */
#define PEER_HANDSHAKE_TIMEOUT_MS 10000
#define PEER_CONNECT_TIMEOUT_MS 10000
/* Longest line either side reads, without its "\n". */
#define PEER_MAX_LINE_LENGTH (16 * 1024 * 1024)
/* Unsent bytes a connection may hold besides the line being written before it is closed
 * (a peer that stopped reading). */
#define PEER_OUTPUT_LIMIT (16 * 1024 * 1024)

typedef struct _PeerServer PeerServer;
typedef struct _PeerRequest PeerRequest;
typedef struct _PeerConnection PeerConnection;
typedef struct _PeerClient PeerClient;

/* ---- server ---- */

/* Called once per well-formed request of a verified peer; arguments is never NULL ({}
 * when absent) and only valid during the call (take a reference to keep it).  Answer
 * exactly once, now or later from the main loop, with peer_request_return() or
 * peer_request_error(); the request stays valid until then even if the connection ends or
 * the server is freed (the answer is then dropped). */
typedef void (*PeerHandler) (PeerRequest *request, const char *command, JsonObject *arguments,
                             gpointer user_data);

/* Listens on host's [peer] listen address with host's certificate.  Returns NULL with no
 * error when host has no [peer] section; NULL with PEER_ERROR_CONFIG (certificate, key or
 * CA unreadable) or a G_IO_ERROR (cannot listen: address in use...) otherwise. */
PeerServer *peer_server_new (const HostConfig *host, PeerHandler handler, gpointer user_data,
                             GError **error);
/* Closes the listener and every connection (their close watches run from the main loop);
 * unanswered requests stay valid, their answers are dropped. */
void peer_server_free (PeerServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PeerServer, peer_server_free)

/* The port actually listened on (useful with port 0 in tests). */
guint16 peer_server_get_port (PeerServer *server);

/* Answers {"return": value} (value taken; NULL means {}) and frees the request. */
void peer_request_return (PeerRequest *request, JsonNode *value);
/* Answers {"error": {"class": error_class, "desc": ...}} and frees the request.  Classes as
 * on the control socket: GenericError, NotFound, PermissionDenied, InvalidArgument, Busy. */
void peer_request_error (PeerRequest *request, const char *error_class, const char *format, ...)
  G_GNUC_PRINTF (3, 4);
/* Sends an extra line before the answer, e.g. {"progress":{...}}; the request's id is added
 * ("id" in line is replaced).  line is not modified.  Dropped when the connection ended. */
void peer_request_send_line (PeerRequest *request, JsonObject *line);
/* The verified name of the client host (one of the configured `host` names). */
const char *peer_request_get_peer_name (PeerRequest *request);
/* The request's "execute". */
const char *peer_request_get_command (PeerRequest *request);
/* The connection the request came on; borrowed (valid while the request is), take
 * peer_connection_ref() to keep it. */
PeerConnection *peer_request_get_connection (PeerRequest *request);

PeerConnection *peer_connection_ref (PeerConnection *connection);
void peer_connection_unref (PeerConnection *connection);
/* The verified name of the client host. */
const char *peer_connection_get_peer_name (PeerConnection *connection);
/* FALSE once the connection has ended. */
gboolean peer_connection_is_open (PeerConnection *connection);

/* func is called once, from the main loop (never from inside the call that closed it),
 * when the connection ends: EOF, read or write error, output limit, server freed.  Also
 * when it had already ended.  Returns a watch id (> 0) for peer_connection_unwatch_close(). */
typedef void (*PeerClosedFunc) (gpointer user_data);
guint peer_connection_watch_close (PeerConnection *connection, PeerClosedFunc func,
                                   gpointer user_data);
/* Removes a watch that has not fired yet; unknown or fired ids are ignored. */
void peer_connection_unwatch_close (PeerConnection *connection, guint watch_id);

/* ---- client ---- */

/* Connects to the configured peer host peer_name, with host's certificate, and checks the
 * server's certificate (signed by the CA, names peer_name).  Errors of _finish():
 * PEER_ERROR_CONFIG ("no [peer] section in FILE", "no peer host 'x' in FILE (known: a, b)",
 * unreadable certificate), PEER_ERROR_UNREACHABLE ("peer 'b' at ADDR:PORT: cannot connect:
 * REASON"), PEER_ERROR_TLS ("peer 'b' at ADDR:PORT: ..."), G_IO_ERROR_CANCELLED. */
void peer_client_connect_async (const HostConfig *host, const char *peer_name,
                                GCancellable *cancellable, GAsyncReadyCallback callback,
                                gpointer user_data);
PeerClient *peer_client_connect_finish (GAsyncResult *result, GError **error);

/* Extra (non-answer) lines of one call, e.g. {"progress":{...},"id":N}; line is borrowed. */
typedef void (*PeerLineFunc) (JsonObject *line, gpointer user_data);

/* Sends {"execute": command, "arguments": arguments, "id": N}; arguments nullable (then
 * absent), not taken.  Several calls may be outstanding.  _finish() returns the "return"
 * value (owned), or NULL with PEER_ERROR_REFUSED (message = the peer's desc; the class is
 * in the message prefix only for PermissionDenied at connect), PEER_ERROR_TIMEOUT
 * (timeout_ms > 0 passed; a late answer is dropped), PEER_ERROR_DISCONNECTED,
 * PEER_ERROR_TLS (the peer rejected our certificate), PEER_ERROR_PROTOCOL, or
 * G_IO_ERROR_CANCELLED (cancellable, or peer_client_free()).  on_line (nullable) gets the
 * call's extra lines until it completes. */
void peer_client_call_async (PeerClient *client, const char *command, JsonObject *arguments,
                             guint timeout_ms, PeerLineFunc on_line, gpointer line_data,
                             GCancellable *cancellable, GAsyncReadyCallback callback,
                             gpointer user_data);
JsonNode *peer_client_call_finish (PeerClient *client, GAsyncResult *result, GError **error);

/* func is called once, from the main loop, when the connection is lost (not after
 * peer_client_free()); reason says why.  Pending calls fail with PEER_ERROR_DISCONNECTED
 * (or the reason's code for TLS and refusal), and later calls fail at once. */
typedef void (*PeerClientClosedFunc) (PeerClient *client, const GError *reason, gpointer user_data);
void peer_client_set_closed_func (PeerClient *client, PeerClientClosedFunc func, gpointer user_data);

/* The peer host's name, as asked for in peer_client_connect_async(). */
const char *peer_client_get_name (PeerClient *client);
/* FALSE once the connection is lost. */
gboolean peer_client_is_connected (PeerClient *client);
/* Closes; pending calls fail with G_IO_ERROR_CANCELLED (their callbacks run later, from
 * the main loop).  Accepts NULL. */
void peer_client_free (PeerClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PeerClient, peer_client_free)
