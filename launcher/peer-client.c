/* peer-client.c: the peer link's connecting side: connect, TLS handshake with the host's
 * certificate, a check that the server's certificate names the host meant, then calls
 * matched to answers by id.
 *
 * Completions that may run user code from inside one of our own calls (free, closing)
 * go through an idle, so a callback never finds the client half torn down. */
#define G_LOG_DOMAIN "vmherd-peer"

#include "launcher/peer-private.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "launcher/control-proto.h"

typedef struct
{
  PeerClient *client;           /* NULL once completed */
  guint id;
  char *command;
  GTask *task;
  PeerLineFunc on_line;
  gpointer line_data;
  GSource *timeout;
  GSource *cancel_source;
} PeerCall;

struct _PeerClient
{
  guint refcount;
  gboolean freed;
  char *name;
  char *address;
  GSocketConnection *base;
  GIOStream *tls;
  PeerChannel *channel;
  guint next_id;
  GHashTable *calls;            /* GUINT_TO_POINTER (id) -> PeerCall */
  GError *lost;                 /* why the connection ended; NULL while connected */
  GError *refusal;              /* an id-less {"error"} line: the server refused us */
  gboolean heard;               /* a line came from the server */
  PeerClientClosedFunc closed_func;
  gpointer closed_data;
};

static PeerClient *
client_ref (PeerClient *client)
{
  client->refcount++;
  return client;
}

static void
client_unref (PeerClient *client)
{
  if (--client->refcount > 0)
    return;
  peer_channel_free (client->channel);
  g_clear_object (&client->tls);
  g_clear_object (&client->base);
  g_hash_table_unref (client->calls);
  g_clear_error (&client->lost);
  g_clear_error (&client->refusal);
  g_free (client->name);
  g_free (client->address);
  g_free (client);
}

static void
source_drop (GSource **source)
{
  if (*source == NULL)
    return;
  g_source_destroy (*source);
  g_clear_pointer (source, g_source_unref);
}

/* ---- calls ---- */

static void
call_free (PeerCall *call)
{
  source_drop (&call->timeout);
  source_drop (&call->cancel_source);
  g_clear_object (&call->task);
  g_free (call->command);
  g_free (call);
}

/* Takes call out of its client; the caller completes call->task. */
static void
call_detach (PeerCall *call)
{
  if (call->client != NULL)
    g_hash_table_steal (call->client->calls, GUINT_TO_POINTER (call->id));
  call->client = NULL;
  source_drop (&call->timeout);
  source_drop (&call->cancel_source);
}

static void
call_return_error (PeerCall *call, GError *error)
{
  call_detach (call);
  g_task_return_error (call->task, error);
  call_free (call);
}

typedef struct
{
  GTask *task;
  GError *error;
} LateError;

static gboolean
on_late_error (gpointer data)
{
  LateError *late = data;

  g_task_return_error (late->task, late->error);
  g_object_unref (late->task);
  g_free (late);
  return G_SOURCE_REMOVE;
}

/* Completes task with error (taken) from the main loop, never from inside this call. */
static void
task_return_error_later (GTask *task, GError *error)
{
  LateError *late = g_new0 (LateError, 1);
  GSource *idle = g_idle_source_new ();

  late->task = g_object_ref (task);
  late->error = error;
  g_source_set_callback (idle, on_late_error, late, NULL);
  g_source_attach (idle, g_task_get_context (task));
  g_source_unref (idle);
}

static gboolean
on_call_timeout (gpointer data)
{
  PeerCall *call = data;
  guint ms = (guint) GPOINTER_TO_UINT (g_task_get_task_data (call->task));

  g_clear_pointer (&call->timeout, g_source_unref);
  call_return_error (call, g_error_new (PEER_ERROR, PEER_ERROR_TIMEOUT, "no answer from peer '%s' "
                                        "to '%s' within %u ms", call->client->name,
                                        call->command, ms));
  return G_SOURCE_REMOVE;
}

static gboolean
on_call_cancelled (GCancellable *cancellable G_GNUC_UNUSED, gpointer data)
{
  PeerCall *call = data;
  GError *error = NULL;

  g_clear_pointer (&call->cancel_source, g_source_unref);
  g_cancellable_set_error_if_cancelled (g_task_get_cancellable (call->task), &error);
  call_return_error (call, error);
  return G_SOURCE_REMOVE;
}

/* Every pending call fails with a copy of error; completions from the main loop. */
static void
client_fail_calls (PeerClient *client, const GError *error)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, client->calls);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      PeerCall *call = value;
      g_hash_table_iter_steal (&iter);
      call->client = NULL;
      source_drop (&call->timeout);
      source_drop (&call->cancel_source);
      task_return_error_later (call->task, g_error_copy (error));
      call_free (call);
    }
}

void
peer_client_call_async (PeerClient *client, const char *command, JsonObject *arguments,
                        guint timeout_ms, PeerLineFunc on_line, gpointer line_data,
                        GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(JsonObject) request = json_object_new ();
  g_autoptr(JsonNode) id = NULL;
  PeerCall *call;

  g_return_if_fail (client != NULL && !client->freed && command != NULL);

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, peer_client_call_async);
  g_task_set_task_data (task, GUINT_TO_POINTER (timeout_ms), NULL);
  if (client->lost != NULL)
    {
      task_return_error_later (task, g_error_copy (client->lost));
      return;
    }
  if (client->refusal != NULL)
    {
      task_return_error_later (task, g_error_copy (client->refusal));
      return;
    }
  call = g_new0 (PeerCall, 1);
  call->client = client;
  call->id = ++client->next_id;
  call->command = g_strdup (command);
  call->task = g_steal_pointer (&task);
  call->on_line = on_line;
  call->line_data = line_data;
  g_hash_table_insert (client->calls, GUINT_TO_POINTER (call->id), call);
  if (timeout_ms > 0)
    {
      call->timeout = g_timeout_source_new (timeout_ms);
      g_source_set_callback (call->timeout, on_call_timeout, call, NULL);
      g_source_attach (call->timeout, g_task_get_context (call->task));
    }
  if (cancellable != NULL)
    {
      call->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (call->cancel_source, G_SOURCE_FUNC (on_call_cancelled), call, NULL);
      g_source_attach (call->cancel_source, g_task_get_context (call->task));
    }
  json_object_set_string_member (request, "execute", command);
  if (arguments != NULL)
    json_object_set_object_member (request, "arguments", json_object_ref (arguments));
  id = json_node_init_int (json_node_alloc (), call->id);
  peer_channel_send (client->channel, request, id);
}

JsonNode *
peer_client_call_finish (PeerClient *client G_GNUC_UNUSED, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- answers ---- */

static GError *
refusal_error (JsonObject *body)
{
  const char *desc = body ? control_json_get_string (body, "desc") : NULL;

  return g_error_new_literal (PEER_ERROR, PEER_ERROR_REFUSED, desc ? desc : "refused (no desc)");
}

static void
client_protocol_error (PeerClient *client, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void client_lost (PeerClient *client, GError *reason);

static void
client_protocol_error (PeerClient *client, const char *format, ...)
{
  g_autofree char *what = NULL;
  va_list args;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  peer_channel_close (client->channel);
  client_lost (client, g_error_new (PEER_ERROR, PEER_ERROR_PROTOCOL, "peer '%s': %s",
                                    client->name, what));
}

static void
client_handle_line (PeerClient *client, JsonObject *line)
{
  JsonNode *id = json_object_get_member (line, "id");
  JsonNode *ret = json_object_get_member (line, "return");
  JsonNode *err = json_object_get_member (line, "error");
  PeerCall *call = NULL;

  if (id != NULL && JSON_NODE_HOLDS_VALUE (id) && json_node_get_value_type (id) == G_TYPE_INT64)
    call = g_hash_table_lookup (client->calls, GUINT_TO_POINTER ((guint) json_node_get_int (id)));
  if (call == NULL)
    {
      if (id == NULL && err != NULL)
        {
          /* The server refused us as a peer; it closes next. */
          g_clear_error (&client->refusal);
          client->refusal = refusal_error (JSON_NODE_HOLDS_OBJECT (err) ? json_node_get_object (err) : NULL);
          client_fail_calls (client, client->refusal);
        }
      else
        g_debug ("peer link: '%s': dropping a line for no pending call", client->name);
      return;
    }
  if (ret != NULL)
    {
      call_detach (call);
      g_task_return_pointer (call->task, json_node_copy (ret), (GDestroyNotify) json_node_unref);
      call_free (call);
    }
  else if (err != NULL)
    call_return_error (call, refusal_error (JSON_NODE_HOLDS_OBJECT (err) ? json_node_get_object (err) : NULL));
  else if (call->on_line != NULL)
    call->on_line (line, call->line_data);
}

static void
on_line (const char *text, gsize length, gpointer data)
{
  PeerClient *client = client_ref (data);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) line = control_line_parse (text, length, &error);

  client->heard = TRUE;
  if (line == NULL)
    client_protocol_error (client, "%s", error->message);
  else
    client_handle_line (client, line);
  client_unref (client);
}

/* The connection ended: pending and later calls fail with reason (taken); the closed
 * func runs unless the client was freed. */
static void
client_lost (PeerClient *client, GError *reason)
{
  if (client->lost != NULL)
    {
      g_error_free (reason);
      return;
    }
  client->lost = reason;
  g_info ("peer link: %s", reason->message);
  client_fail_calls (client, reason);
  if (!client->freed && client->closed_func != NULL)
    client->closed_func (client, reason, client->closed_data);
}

static void
on_channel_closed (const GError *error, gpointer data)
{
  PeerClient *client = client_ref (data);
  GError *reason;

  if (client->refusal != NULL)
    reason = g_error_new (PEER_ERROR, PEER_ERROR_REFUSED, "peer '%s' refused us: %s", client->name,
                          client->refusal->message);
  else if (!client->heard && (error == NULL || g_error_matches (error, G_IO_ERROR,
                                                                G_IO_ERROR_CONNECTION_CLOSED)
                               || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE)))
    /* With TLS 1.3 a server checks our certificate after our side of the handshake is
     * done: its refusal shows as an end before the first line. */
    reason = g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED, "peer '%s' at %s closed the "
                          "connection without answering (did it refuse this host's certificate? "
                          "see \"peer link: refused\" in its log)", client->name, client->address);
  else if (error == NULL)
    reason = g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED, "peer '%s' closed the connection",
                          client->name);
  else if (error->domain == G_TLS_ERROR)
    reason = g_error_new (PEER_ERROR, PEER_ERROR_TLS, "peer '%s' at %s rejected the connection: "
                          "%s (is this host's certificate signed by the group's CA?)",
                          client->name, client->address, error->message);
  else if (error->domain == PEER_ERROR)
    reason = g_error_new (PEER_ERROR, error->code, "peer '%s': %s", client->name, error->message);
  else
    reason = g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED, "connection to peer '%s' lost: %s",
                          client->name, error->message);
  client_lost (client, reason);
  client_unref (client);
}

void
peer_client_set_closed_func (PeerClient *client, PeerClientClosedFunc func, gpointer user_data)
{
  g_return_if_fail (client != NULL);

  client->closed_func = func;
  client->closed_data = user_data;
}

const char *
peer_client_get_name (PeerClient *client)
{
  g_return_val_if_fail (client != NULL, NULL);

  return client->name;
}

gboolean
peer_client_is_connected (PeerClient *client)
{
  g_return_val_if_fail (client != NULL, FALSE);

  return client->lost == NULL && client->refusal == NULL;
}

void
peer_client_free (PeerClient *client)
{
  g_autoptr(GError) cancelled = NULL;

  if (client == NULL)
    return;
  g_return_if_fail (!client->freed);
  client->freed = TRUE;
  peer_channel_close (client->channel);
  cancelled = g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED, "connection to peer '%s' closed",
                           client->name);
  client_fail_calls (client, cancelled);
  client_unref (client);
}

/* ---- connecting ---- */

typedef struct
{
  char *name;
  char *address;                /* "ADDR:PORT" */
  guint16 port;
  PeerCredentials *credentials;
  GSocketConnection *base;
  GIOStream *tls;
  GTlsCertificateFlags rejected;
  char *server_names;           /* what the rejected certificate named */
  GSource *timeout;
  gboolean timed_out;
  GCancellable *cancellable;    /* the handshake's: the caller's, or the timeout */
  GCancellable *caller;         /* the caller's, NULL when none */
  gulong caller_handler;
} ConnectData;

static void
connect_data_free (ConnectData *cd)
{
  source_drop (&cd->timeout);
  if (cd->caller_handler != 0)
    g_cancellable_disconnect (cd->caller, cd->caller_handler);
  g_clear_object (&cd->caller);
  g_clear_object (&cd->cancellable);
  peer_credentials_free (cd->credentials);
  g_clear_object (&cd->base);
  g_clear_object (&cd->tls);
  g_free (cd->server_names);
  g_free (cd->name);
  g_free (cd->address);
  g_free (cd);
}

static gboolean
on_accept_certificate (GTlsConnection *tls G_GNUC_UNUSED, GTlsCertificate *certificate,
                       GTlsCertificateFlags errors, gpointer data)
{
  ConnectData *cd = data;

  cd->rejected = errors;
  g_free (cd->server_names);
  cd->server_names = peer_certificate_names_text (certificate);
  return errors == 0;
}

static gboolean
on_handshake_timeout (gpointer data)
{
  ConnectData *cd = data;

  g_clear_pointer (&cd->timeout, g_source_unref);
  cd->timed_out = TRUE;
  /* Not a close: GIO runs the handshake in a thread that still uses the socket. */
  g_cancellable_cancel (cd->cancellable);
  return G_SOURCE_REMOVE;
}

static void
on_caller_cancelled (GCancellable *caller G_GNUC_UNUSED, gpointer handshake_cancellable)
{
  g_cancellable_cancel (handshake_cancellable);
}

static gboolean
certificate_names (GTlsCertificate *certificate, const char *name)
{
  g_autoptr(GPtrArray) names = peer_certificate_names (certificate);

  return g_ptr_array_find_with_equal_func (names, name, g_str_equal, NULL);
}

static void
on_handshake (GObject *source, GAsyncResult *result, gpointer data)
{
  g_autoptr(GTask) task = data;
  ConnectData *cd = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  GTlsCertificate *certificate;
  PeerClient *client;

  source_drop (&cd->timeout);
  if (!g_tls_connection_handshake_finish (G_TLS_CONNECTION (source), result, &error))
    {
      if (g_task_return_error_if_cancelled (task))
        return;
      if (cd->rejected != 0)
        {
          g_autofree char *what = peer_certificate_flags_describe (cd->rejected);
          if (cd->rejected == G_TLS_CERTIFICATE_BAD_IDENTITY)
            g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_TLS, "peer '%s' at %s: its "
                                     "certificate names %s, not '%s' (is the address in [peer] "
                                     "host = right?)", cd->name, cd->address, cd->server_names,
                                     cd->name);
          else
            g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_TLS, "peer '%s' at %s: its "
                                     "certificate (naming %s) is refused: %s", cd->name,
                                     cd->address, cd->server_names, what);
        }
      else if (cd->timed_out)
        g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_TLS, "peer '%s' at %s: no TLS "
                                 "handshake within %d s", cd->name, cd->address,
                                 PEER_HANDSHAKE_TIMEOUT_MS / 1000);
      else
        g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_TLS, "peer '%s' at %s: TLS "
                                 "handshake failed: %s", cd->name, cd->address, error->message);
      return;
    }
  /* GLib checked the identity against the name too; this is the rule we document. */
  certificate = g_tls_connection_get_peer_certificate (G_TLS_CONNECTION (source));
  if (certificate == NULL || !certificate_names (certificate, cd->name))
    {
      g_autofree char *names = certificate ? peer_certificate_names_text (certificate) : NULL;
      g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_TLS, "peer '%s' at %s: its "
                               "certificate names %s, not '%s'", cd->name, cd->address,
                               names ? names : "nothing", cd->name);
      return;
    }
  client = g_new0 (PeerClient, 1);
  client->refcount = 1;
  client->name = g_strdup (cd->name);
  client->address = g_strdup (cd->address);
  client->base = g_steal_pointer (&cd->base);
  client->tls = g_steal_pointer (&cd->tls);
  client->calls = g_hash_table_new_full (NULL, NULL, NULL, NULL);
  client->channel = peer_channel_new (client->tls, client->base, on_line, on_channel_closed, client);
  peer_channel_start (client->channel);
  g_task_return_pointer (task, client, (GDestroyNotify) peer_client_free);
}

static void
on_connected (GObject *source, GAsyncResult *result, gpointer data)
{
  g_autoptr(GTask) task = data;
  ConnectData *cd = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnectable) identity = NULL;
  GCancellable *cancellable;

  cd->base = g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  if (cd->base == NULL)
    {
      /* GSocketClient says "Could not connect to 10.0.0.2: Connection refused". */
      const char *why = error->message;
      if (g_str_has_prefix (why, "Could not connect to ") && strstr (why, ": ") != NULL)
        why = strstr (why, ": ") + 2;
      if (!g_task_return_error_if_cancelled (task))
        g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_UNREACHABLE, "peer '%s' at %s: "
                                 "cannot connect: %s", cd->name, cd->address, why);
      return;
    }
  /* The client's timeout is the socket's I/O timeout too: off once connected. */
  g_socket_set_timeout (g_socket_connection_get_socket (cd->base), 0);
  peer_socket_keepalive (g_socket_connection_get_socket (cd->base));
  /* Small TLS records and JSON lines: with Nagle's algorithm, each small write that follows an
   * unacknowledged one waits for the peer's delayed ACK (~40 ms), twice per handshake. */
  g_socket_set_option (g_socket_connection_get_socket (cd->base), IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  identity = g_network_address_new (cd->name, cd->port);
  /* The group's CA as the database from the start: g_tls_client_connection_new() would load
   * the system's trust store first (twice, ~50 ms of CPU) only to have it replaced. */
  cd->tls = g_initable_new (g_tls_backend_get_client_connection_type (g_tls_backend_get_default ()),
                            NULL, &error, "base-io-stream", cd->base, "server-identity", identity,
                            "database", cd->credentials->ca, "certificate", cd->credentials->certificate,
                            NULL);
  if (cd->tls == NULL)
    {
      g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_TLS, "peer '%s' at %s: cannot set up "
                               "TLS: %s", cd->name, cd->address, error->message);
      return;
    }
  g_tls_connection_set_require_close_notify (G_TLS_CONNECTION (cd->tls), FALSE);
  g_signal_connect (cd->tls, "accept-certificate", G_CALLBACK (on_accept_certificate), cd);
  cd->timeout = g_timeout_source_new (PEER_HANDSHAKE_TIMEOUT_MS);
  g_source_set_callback (cd->timeout, on_handshake_timeout, cd, NULL);
  g_source_attach (cd->timeout, g_task_get_context (task));
  cd->cancellable = g_cancellable_new ();
  cd->caller = cancellable = g_task_get_cancellable (task);
  if (cancellable != NULL)
    {
      g_object_ref (cd->caller);
      cd->caller_handler = g_cancellable_connect (cancellable, G_CALLBACK (on_caller_cancelled),
                                                  g_object_ref (cd->cancellable), g_object_unref);
    }
  g_tls_connection_handshake_async (G_TLS_CONNECTION (cd->tls), G_PRIORITY_DEFAULT, cd->cancellable,
                                    on_handshake, g_steal_pointer (&task));
}

void
peer_client_connect_async (const HostConfig *host, const char *peer_name, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  g_autoptr(GSocketClient) socket_client = NULL;
  g_autoptr(GInetAddress) ip = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autofree char *ip_text = NULL;
  GError *error = NULL;
  const char *file = host->path ? host->path : "the host file";
  const HostPeer *entry;
  ConnectData *cd;

  g_return_if_fail (host != NULL && peer_name != NULL);

  g_task_set_source_tag (task, peer_client_connect_async);
  if (host->peer == NULL)
    {
      g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_CONFIG, "no [peer] section in %s "
                               "(see vmherd.conf(5))", file);
      return;
    }
  entry = host_peer_link_find (host->peer, peer_name);
  if (entry == NULL)
    {
      GString *known = g_string_new (NULL);
      for (guint i = 0; i < host->peer->hosts->len; i++)
        g_string_append_printf (known, "%s%s", known->len ? ", " : "",
                                ((HostPeer *) host->peer->hosts->pdata[i])->name);
      g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_CONFIG, "no peer host '%s' in [peer] "
                               "of %s (known: %s)", peer_name, file, known->len ? known->str : "none");
      g_string_free (known, TRUE);
      return;
    }
  cd = g_new0 (ConnectData, 1);
  cd->name = g_strdup (peer_name);
  cd->address = g_strdup (entry->address);
  g_task_set_task_data (task, cd, (GDestroyNotify) connect_data_free);
  cd->credentials = peer_credentials_load (host->peer, &error);
  if (cd->credentials == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  if (!host_listen_parse (entry->address, &ip_text, &cd->port))
    {
      g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_CONFIG, "peer '%s': \"%s\" is not "
                               "ADDR:PORT", peer_name, entry->address);
      return;
    }
  ip = g_inet_address_new_from_string (ip_text);
  address = g_inet_socket_address_new (ip, cd->port);
  socket_client = g_socket_client_new ();
  g_socket_client_set_timeout (socket_client, PEER_CONNECT_TIMEOUT_MS / 1000);
  g_socket_client_set_enable_proxy (socket_client, FALSE);   /* peers are on the local net */
  g_socket_client_connect_async (socket_client, G_SOCKET_CONNECTABLE (address), cancellable,
                                 on_connected, g_steal_pointer (&task));
}

PeerClient *
peer_client_connect_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
