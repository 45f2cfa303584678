/* peer-server.c: the peer link's listening side: TLS handshake with a required client
 * certificate, the client's name from that certificate, then requests to the handler.
 *
 * Lifetimes (as in control.c): the server holds one reference on each connection, each
 * request holds one on its connection, so a request outlives its connection and the
 * server; connection->server is NULL once the connection ended. */
#define G_LOG_DOMAIN "vmherd-peer"

#include "launcher/peer-private.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "launcher/control-proto.h"

typedef struct
{
  guint id;
  PeerClosedFunc func;
  gpointer user_data;
} PeerWatch;

struct _PeerConnection
{
  guint refcount;
  PeerServer *server;           /* NULL once ended */
  GList *link;                  /* in server->connections */
  char *address;                /* the client's "ADDR:PORT", for logs */
  char *peer_name;              /* verified; NULL until then */
  GSocketConnection *base;
  GIOStream *tls;
  GCancellable *cancellable;    /* the handshake */
  GSource *handshake_timeout;
  gboolean handshaking;         /* GIO runs it in a thread on the socket: never close under it */
  gboolean timed_out;
  GTlsCertificateFlags rejected; /* why the client's certificate was refused */
  PeerChannel *channel;
  GArray *watches;              /* PeerWatch */
  guint next_watch_id;
  GSource *closed_idle;
};

struct _PeerServer
{
  char *file;                   /* the host file, for messages */
  char *listen;
  GStrv hosts;                  /* the configured peer names */
  PeerCredentials *credentials;
  GSocketService *service;
  guint16 port;
  PeerHandler handler;
  gpointer user_data;
  GQueue connections;           /* PeerConnection */
};

struct _PeerRequest
{
  PeerConnection *connection;   /* a reference */
  char *command;
  JsonNode *id;                 /* NULL when the request had none */
};

/* ---- connections ---- */

PeerConnection *
peer_connection_ref (PeerConnection *connection)
{
  g_return_val_if_fail (connection != NULL, NULL);

  connection->refcount++;
  return connection;
}

void
peer_connection_unref (PeerConnection *connection)
{
  if (connection == NULL || --connection->refcount > 0)
    return;
  g_assert (connection->server == NULL && connection->closed_idle == NULL);
  peer_channel_free (connection->channel);
  g_clear_object (&connection->tls);
  g_clear_object (&connection->base);
  g_clear_object (&connection->cancellable);
  g_array_unref (connection->watches);
  g_free (connection->address);
  g_free (connection->peer_name);
  g_free (connection);
}

const char *
peer_connection_get_peer_name (PeerConnection *connection)
{
  g_return_val_if_fail (connection != NULL, NULL);

  return connection->peer_name;
}

gboolean
peer_connection_is_open (PeerConnection *connection)
{
  g_return_val_if_fail (connection != NULL, FALSE);

  return connection->server != NULL;
}

static gboolean
on_closed_idle (gpointer data)
{
  PeerConnection *connection = data;

  g_clear_pointer (&connection->closed_idle, g_source_unref);
  /* One at a time: a watch may remove another that has not fired yet. */
  while (connection->watches->len > 0)
    {
      PeerWatch w = g_array_index (connection->watches, PeerWatch, 0);
      g_array_remove_index (connection->watches, 0);
      w.func (w.user_data);
    }
  peer_connection_unref (connection);
  return G_SOURCE_REMOVE;
}

static void
connection_schedule_watches (PeerConnection *connection)
{
  if (connection->closed_idle != NULL || connection->watches->len == 0)
    return;
  connection->closed_idle = g_idle_source_new ();
  g_source_set_callback (connection->closed_idle, on_closed_idle,
                         peer_connection_ref (connection), NULL);
  g_source_attach (connection->closed_idle, g_main_context_get_thread_default ());
}

guint
peer_connection_watch_close (PeerConnection *connection, PeerClosedFunc func, gpointer user_data)
{
  PeerWatch w = { 0, func, user_data };

  g_return_val_if_fail (connection != NULL && func != NULL, 0);

  w.id = ++connection->next_watch_id;
  g_array_append_val (connection->watches, w);
  if (connection->server == NULL)
    connection_schedule_watches (connection);
  return w.id;
}

void
peer_connection_unwatch_close (PeerConnection *connection, guint watch_id)
{
  g_return_if_fail (connection != NULL);

  for (guint i = 0; i < connection->watches->len; i++)
    if (g_array_index (connection->watches, PeerWatch, i).id == watch_id)
      {
        g_array_remove_index (connection->watches, i);
        return;
      }
}

#define LINGER_MS 2000

typedef struct
{
  GSocket *socket;
  GSource *io, *timeout;
} Linger;

static gboolean
linger_done (gpointer data)
{
  Linger *linger = data;

  g_source_destroy (linger->io);
  g_source_destroy (linger->timeout);
  g_source_unref (linger->io);
  g_source_unref (linger->timeout);
  g_socket_close (linger->socket, NULL);
  g_object_unref (linger->socket);
  g_free (linger);
  return G_SOURCE_REMOVE;
}

static gboolean
on_linger_readable (GSocket *socket, GIOCondition condition G_GNUC_UNUSED, gpointer data)
{
  char buffer[4096];
  gssize n = g_socket_receive_with_blocking (socket, buffer, sizeof buffer, FALSE, NULL, NULL);

  if (n == 0 || (n < 0 && !g_socket_condition_check (socket, G_IO_IN)))
    return linger_done (data);
  return G_SOURCE_CONTINUE;
}

/* Closes a socket whose peer may still be sending (a refused handshake) without a reset:
 * the peer first reads what we sent (TLS alert) and our EOF, instead of a bare RST. */
static void
linger_close (GSocket *socket)
{
  Linger *linger = g_new0 (Linger, 1);

  linger->socket = g_object_ref (socket);
  if (!g_socket_shutdown (socket, FALSE, TRUE, NULL))
    {
      g_socket_close (socket, NULL);
      g_object_unref (socket);
      g_free (linger);
      return;
    }
  linger->io = g_socket_create_source (socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (linger->io, G_SOURCE_FUNC (on_linger_readable), linger, NULL);
  g_source_attach (linger->io, g_main_context_get_thread_default ());
  linger->timeout = g_timeout_source_new (LINGER_MS);
  g_source_set_callback (linger->timeout, linger_done, linger, NULL);
  g_source_attach (linger->timeout, g_main_context_get_thread_default ());
}

/* Ends the connection (idempotent): releases the socket, runs the close watches from the
 * main loop and drops the server's reference. */
static void
connection_end (PeerConnection *connection, const char *why)
{
  PeerServer *server = connection->server;

  if (server == NULL)
    return;
  g_debug ("peer link: connection from %s (%s) ended: %s", connection->address,
           connection->peer_name ? connection->peer_name : "unverified", why);
  if (connection->handshake_timeout != NULL)
    {
      g_source_destroy (connection->handshake_timeout);
      g_clear_pointer (&connection->handshake_timeout, g_source_unref);
    }
  g_cancellable_cancel (connection->cancellable);
  peer_channel_close (connection->channel);
  if (connection->channel == NULL && !connection->handshaking)
    linger_close (g_socket_connection_get_socket (connection->base));
  g_queue_delete_link (&server->connections, connection->link);
  connection->link = NULL;
  connection->server = NULL;
  connection_schedule_watches (connection);
  peer_connection_unref (connection);
}

/* ---- requests ---- */

static void
request_finish (PeerRequest *request, JsonObject *answer)
{
  PeerConnection *connection = request->connection;

  if (connection->server != NULL)
    peer_channel_send (connection->channel, answer, request->id);
  else
    g_debug ("peer link: dropping the answer to '%s': the connection ended", request->command);
  peer_connection_unref (connection);
  g_clear_pointer (&request->id, json_node_unref);
  g_free (request->command);
  g_free (request);
}

void
peer_request_return (PeerRequest *request, JsonNode *value)
{
  g_autoptr(JsonObject) answer = json_object_new ();

  g_return_if_fail (request != NULL);

  if (value == NULL)
    {
      g_autoptr(JsonObject) empty = json_object_new ();
      value = json_node_init_object (json_node_alloc (), empty);
    }
  json_object_set_member (answer, "return", value);
  request_finish (request, answer);
}

void
peer_request_error (PeerRequest *request, const char *error_class, const char *format, ...)
{
  g_autoptr(JsonObject) answer = NULL;
  g_autofree char *desc = NULL;
  va_list args;

  g_return_if_fail (request != NULL && error_class != NULL && format != NULL);

  va_start (args, format);
  desc = g_strdup_vprintf (format, args);
  va_end (args);
  answer = peer_error_object_new (error_class, desc);
  request_finish (request, answer);
}

void
peer_request_send_line (PeerRequest *request, JsonObject *line)
{
  g_return_if_fail (request != NULL && line != NULL);

  if (request->connection->server != NULL)
    peer_channel_send (request->connection->channel, line, request->id);
}

const char *
peer_request_get_peer_name (PeerRequest *request)
{
  g_return_val_if_fail (request != NULL, NULL);

  return request->connection->peer_name;
}

const char *
peer_request_get_command (PeerRequest *request)
{
  g_return_val_if_fail (request != NULL, NULL);

  return request->command;
}

PeerConnection *
peer_request_get_connection (PeerRequest *request)
{
  g_return_val_if_fail (request != NULL, NULL);

  return request->connection;
}

/* ---- reading requests ---- */

static void
connection_send_error (PeerConnection *connection, JsonNode *id, const char *error_class,
                       const char *desc)
{
  g_autoptr(JsonObject) answer = peer_error_object_new (error_class, desc);

  peer_channel_send (connection->channel, answer, id);
}

static void
on_line (const char *line, gsize length, gpointer data)
{
  PeerConnection *connection = data;
  PeerServer *server = connection->server;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(JsonObject) empty = NULL;
  const char *command;
  JsonObject *arguments;
  JsonNode *id;
  PeerRequest *request;

  if (server == NULL)
    return;
  object = control_line_parse (line, length, &error);
  if (object == NULL)
    {
      connection_send_error (connection, NULL, "InvalidArgument", error->message);
      return;
    }
  id = json_object_get_member (object, "id");
  if (!control_request_check (object, &command, &arguments, &error))
    {
      connection_send_error (connection, id, "InvalidArgument", error->message);
      return;
    }
  request = g_new0 (PeerRequest, 1);
  request->connection = peer_connection_ref (connection);
  request->command = g_strdup (command);
  request->id = id != NULL ? json_node_copy (id) : NULL;
  if (arguments == NULL)
    arguments = empty = json_object_new ();
  g_debug ("peer link: '%s' from %s", command, connection->peer_name);
  server->handler (request, command, arguments, server->user_data);
}

static void
on_channel_closed (const GError *error, gpointer data)
{
  PeerConnection *connection = data;

  connection_end (connection, error != NULL ? error->message : "end of file");
}

/* ---- accepting ---- */

static void G_GNUC_PRINTF (2, 3)
connection_refuse (PeerConnection *connection, const char *format, ...)
{
  g_autofree char *reason = NULL;
  va_list args;

  va_start (args, format);
  reason = g_strdup_vprintf (format, args);
  va_end (args);
  g_message ("peer link: refused %s: %s", connection->address, reason);
  if (connection->channel == NULL)
    {
      connection_end (connection, reason);
      return;
    }
  /* TLS is up: say why, then close without reading anything. */
  connection_send_error (connection, NULL, "PermissionDenied", reason);
  peer_channel_start (connection->channel);
  peer_channel_close_after_flush (connection->channel);
}

static const char *
find_configured_name (PeerServer *server, GTlsCertificate *certificate)
{
  g_autoptr(GPtrArray) names = peer_certificate_names (certificate);

  for (guint i = 0; i < names->len; i++)
    for (char **h = server->hosts; *h != NULL; h++)
      if (strcmp (*h, names->pdata[i]) == 0)
        return *h;
  return NULL;
}

static void
on_handshake (GObject *source, GAsyncResult *result, gpointer data)
{
  PeerConnection *connection = data;
  PeerServer *server = connection->server;
  g_autoptr(GError) error = NULL;
  GTlsCertificate *certificate;
  const char *name;
  gboolean ok = g_tls_connection_handshake_finish (G_TLS_CONNECTION (source), result, &error);

  connection->handshaking = FALSE;
  if (server == NULL)
    {
      /* Ended (server freed) while the handshake ran: close now that nothing uses it. */
      linger_close (g_socket_connection_get_socket (connection->base));
      goto out;
    }
  if (connection->handshake_timeout != NULL)
    {
      g_source_destroy (connection->handshake_timeout);
      g_clear_pointer (&connection->handshake_timeout, g_source_unref);
    }
  if (!ok)
    {
      g_autofree char *what = NULL;
      if (connection->rejected != 0)
        {
          what = peer_certificate_flags_describe (connection->rejected);
          connection_refuse (connection, "client certificate %s", what);
        }
      else if (connection->timed_out)
        connection_refuse (connection, "no TLS handshake within %d s", PEER_HANDSHAKE_TIMEOUT_MS / 1000);
      else
        connection_refuse (connection, "TLS handshake failed: %s", error->message);
      goto out;
    }
  certificate = g_tls_connection_get_peer_certificate (G_TLS_CONNECTION (source));
  connection->channel = peer_channel_new (connection->tls, connection->base, on_line,
                                          on_channel_closed, connection);
  name = certificate != NULL ? find_configured_name (server, certificate) : NULL;
  if (name == NULL)
    {
      g_autofree char *names = certificate ? peer_certificate_names_text (certificate) : NULL;
      g_autofree char *known = g_strjoinv (", ", server->hosts);
      connection_refuse (connection, "certificate names %s, not a peer host of %s (known: %s)",
                         names ? names : "nothing", server->file, known[0] ? known : "none");
      goto out;
    }
  connection->peer_name = g_strdup (name);
  g_info ("peer link: '%s' connected from %s", name, connection->address);
  peer_channel_start (connection->channel);
out:
  peer_connection_unref (connection);
}

static gboolean
on_accept_certificate (GTlsConnection *tls G_GNUC_UNUSED, GTlsCertificate *certificate G_GNUC_UNUSED,
                       GTlsCertificateFlags errors, gpointer data)
{
  PeerConnection *connection = data;

  /* GLib asks a server even when the chain verified (errors == 0). */
  connection->rejected = errors;
  return errors == 0;
}

static gboolean
on_handshake_timeout (gpointer data)
{
  PeerConnection *connection = data;

  g_clear_pointer (&connection->handshake_timeout, g_source_unref);
  connection->timed_out = TRUE;
  g_cancellable_cancel (connection->cancellable);
  return G_SOURCE_REMOVE;
}

static char *
address_text (GSocketConnection *base)
{
  g_autoptr(GSocketAddress) remote = g_socket_connection_get_remote_address (base, NULL);
  g_autofree char *ip = NULL;
  GInetSocketAddress *inet;

  if (remote == NULL || !G_IS_INET_SOCKET_ADDRESS (remote))
    return g_strdup ("an unknown address");
  inet = G_INET_SOCKET_ADDRESS (remote);
  ip = g_inet_address_to_string (g_inet_socket_address_get_address (inet));
  if (strchr (ip, ':') != NULL)
    return g_strdup_printf ("[%s]:%u", ip, g_inet_socket_address_get_port (inet));
  return g_strdup_printf ("%s:%u", ip, g_inet_socket_address_get_port (inet));
}

static gboolean
on_incoming (GSocketService *service G_GNUC_UNUSED, GSocketConnection *base,
             GObject *source_object G_GNUC_UNUSED, gpointer data)
{
  PeerServer *server = data;
  PeerConnection *connection = g_new0 (PeerConnection, 1);
  g_autoptr(GError) error = NULL;

  connection->refcount = 1;    /* the server's */
  /* Small TLS records and JSON lines: no Nagle (peer-client.c says why). */
  g_socket_set_option (g_socket_connection_get_socket (base), IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  connection->server = server;
  connection->base = g_object_ref (base);
  connection->address = address_text (base);
  peer_socket_keepalive (g_socket_connection_get_socket (base));
  connection->cancellable = g_cancellable_new ();
  connection->watches = g_array_new (FALSE, FALSE, sizeof (PeerWatch));
  g_queue_push_tail (&server->connections, connection);
  connection->link = server->connections.tail;

  /* The group's CA as the database from the start (g_tls_server_connection_new() would load
   * the system's trust store first, ~50 ms of CPU, only to have it replaced). */
  connection->tls = g_initable_new (g_tls_backend_get_server_connection_type (g_tls_backend_get_default ()),
                                    NULL, &error, "base-io-stream", base,
                                    "certificate", server->credentials->certificate,
                                    "database", server->credentials->ca,
                                    "authentication-mode", G_TLS_AUTHENTICATION_REQUIRED, NULL);
  if (connection->tls == NULL)
    {
      connection_refuse (connection, "cannot set up TLS: %s", error->message);
      return TRUE;
    }
  g_tls_connection_set_require_close_notify (G_TLS_CONNECTION (connection->tls), FALSE);
  g_signal_connect (connection->tls, "accept-certificate", G_CALLBACK (on_accept_certificate),
                    connection);
  connection->handshake_timeout = g_timeout_source_new (PEER_HANDSHAKE_TIMEOUT_MS);
  g_source_set_callback (connection->handshake_timeout, on_handshake_timeout, connection, NULL);
  g_source_attach (connection->handshake_timeout, g_main_context_get_thread_default ());
  connection->handshaking = TRUE;
  g_tls_connection_handshake_async (G_TLS_CONNECTION (connection->tls), G_PRIORITY_DEFAULT,
                                    connection->cancellable, on_handshake,
                                    peer_connection_ref (connection));
  return TRUE;
}

/* ---- the server ---- */

PeerServer *
peer_server_new (const HostConfig *host, PeerHandler handler, gpointer user_data, GError **error)
{
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(GInetAddress) ip = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) effective = NULL;
  g_autofree char *ip_text = NULL;
  g_autoptr(GError) local = NULL;
  const HostPeerLink *peer = host->peer;
  guint16 port;

  g_return_val_if_fail (host != NULL && handler != NULL, NULL);

  if (peer == NULL)
    return NULL;
  server = g_new0 (PeerServer, 1);
  server->file = g_strdup (host->path ? host->path : "the host file");
  server->listen = g_strdup (peer->listen);
  server->hosts = g_new0 (char *, peer->hosts->len + 1);
  for (guint i = 0; i < peer->hosts->len; i++)
    server->hosts[i] = g_strdup (((HostPeer *) peer->hosts->pdata[i])->name);
  server->handler = handler;
  server->user_data = user_data;
  server->credentials = peer_credentials_load (peer, error);
  if (server->credentials == NULL)
    return NULL;
  if (!host_listen_parse (peer->listen, &ip_text, &port))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_CONFIG, "listen: \"%s\" is not ADDR:PORT", peer->listen);
      return NULL;
    }
  ip = g_inet_address_new_from_string (ip_text);
  address = g_inet_socket_address_new (ip, port);
  server->service = g_socket_service_new ();
  if (!g_socket_listener_add_address (G_SOCKET_LISTENER (server->service), address,
                                      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL,
                                      &effective, &local))
    {
      /* GSocket says "Error binding to address ADDR:PORT: Address already in use". */
      const char *why = g_strrstr (local->message, ": ") ? g_strrstr (local->message, ": ") + 2
                                                         : local->message;
      g_set_error (error, local->domain, local->code, "cannot listen on %s: %s", peer->listen, why);
      return NULL;
    }
  server->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective));
  g_signal_connect (server->service, "incoming", G_CALLBACK (on_incoming), server);
  g_socket_service_start (server->service);
  return g_steal_pointer (&server);
}

guint16
peer_server_get_port (PeerServer *server)
{
  g_return_val_if_fail (server != NULL, 0);

  return server->port;
}

void
peer_server_free (PeerServer *server)
{
  if (server == NULL)
    return;
  if (server->service != NULL)
    {
      g_signal_handlers_disconnect_by_data (server->service, server);
      g_socket_service_stop (server->service);
      g_socket_listener_close (G_SOCKET_LISTENER (server->service));
      g_clear_object (&server->service);
    }
  while (!g_queue_is_empty (&server->connections))
    connection_end (g_queue_peek_head (&server->connections), "server closed");
  peer_credentials_free (server->credentials);
  g_strfreev (server->hosts);
  g_free (server->listen);
  g_free (server->file);
  g_free (server);
}
