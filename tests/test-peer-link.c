/* test-peer-link.c: the peer link's API in one process: a server and clients on loopback
 * with certificates made by tools/vmherd-pki; calls, extra lines, several calls at once,
 * timeouts, refusals (certificate of another CA, unknown name, wrong server name,
 * plaintext), close watches. */
#include <gio/gio.h>
#include <string.h>

#include "launcher/peer-link.h"
#include "tests/test-util.h"

/* The certificates, made once for every test: ca/ (the group), other/ (another CA). */
static char *pki_root;

typedef struct
{
  char *dir;                    /* the host files */
  guint16 port;
  HostConfig *server_host;      /* "a" */
  PeerServer *server;
  guint handled;                /* requests the handler saw */
  PeerRequest *held;            /* a request left unanswered on purpose */
  PeerConnection *connection;
  guint closed_watches;
} Fixture;

static guint16
free_port (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                       G_SOCKET_PROTOCOL_TCP, &error);
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  g_assert_no_error (error);
  g_assert_true (g_socket_bind (s, any, FALSE, &error));
  g_assert_no_error (error);
  bound = g_socket_get_local_address (s, &error);
  g_assert_no_error (error);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static void
pki (const char *dir, const char *what, const char *name)
{
  g_autofree char *script = test_src_path ("tools/vmherd-pki");
  const char *argv[] = { script, "--days", "2", what, dir, name, NULL };
  TestRun r = test_run (argv, NULL);

  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
}

/* A host file for name with its certificate from ca_dir, peers "NAME PORT" pairs. */
static HostConfig *
host_for (Fixture *f, const char *name, const char *ca_dir, const char *cert_name,
          const char *hosts)
{
  g_autofree char *path = g_strdup_printf ("%s/%s.conf", f->dir, name);
  g_autofree char *text = g_strdup_printf ("[peer]\nname = %s\nlisten = 127.0.0.1:%u\n"
                                           "ca = %s/ca/ca-cert.pem\ncert = %s/%s/%s-cert.pem\n"
                                           "key = %s/%s/%s-key.pem\n%s",
                                           name, f->port, pki_root, pki_root, ca_dir, cert_name,
                                           pki_root, ca_dir, cert_name, hosts);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  HostConfig *host;

  test_write_file (path, text);
  host = host_config_load (path, errors);
  if (errors->len > 0)
    config_errors_print (errors, stderr);
  g_assert_nonnull (host);
  return host;
}

static void
on_closed_watch (gpointer data)
{
  Fixture *f = data;

  f->closed_watches++;
}

static void
handler (PeerRequest *request, const char *command, JsonObject *arguments, gpointer data)
{
  Fixture *f = data;

  f->handled++;
  if (strcmp (command, "echo") == 0)
    {
      g_autoptr(JsonObject) progress = json_object_new ();
      g_autoptr(JsonObject) line = json_object_new ();
      JsonObject *copy = json_object_new ();

      json_object_set_int_member (progress, "step", 1);
      json_object_set_object_member (line, "progress", json_object_ref (progress));
      peer_request_send_line (request, line);
      json_object_set_string_member (copy, "peer", peer_request_get_peer_name (request));
      if (json_object_has_member (arguments, "text"))
        json_object_set_string_member (copy, "text", json_object_get_string_member (arguments, "text"));
      peer_request_return (request, json_node_init_object (json_node_alloc (), copy));
      json_object_unref (copy);
    }
  else if (strcmp (command, "hold") == 0)
    {
      g_assert_null (f->held);
      f->held = request;
      f->connection = peer_connection_ref (peer_request_get_connection (request));
      peer_connection_watch_close (f->connection, on_closed_watch, f);
    }
  else
    peer_request_error (request, "NotFound", "no command '%s'", command);
}

static void
make_certificates (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ca = NULL, *other = NULL;

  pki_root = g_dir_make_tmp ("vmherd-test-peer-link-XXXXXX", &error);
  g_assert_no_error (error);
  ca = g_build_filename (pki_root, "ca", NULL);
  other = g_build_filename (pki_root, "other", NULL);
  pki (ca, "ca", NULL);
  pki (ca, "host", "a");
  pki (ca, "host", "b");
  pki (ca, "host", "stranger");
  pki (other, "ca", NULL);
  pki (other, "host", "b");
}

static void
fixture_set_up (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *hosts = NULL;

  f->dir = test_tmpdir ();
  f->port = free_port ();
  hosts = g_strdup_printf ("host = b 127.0.0.1:%u\n", f->port);
  f->server_host = host_for (f, "a", "ca", "a", hosts);
  f->server = peer_server_new (f->server_host, handler, f, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->server);
  g_assert_cmpuint (peer_server_get_port (f->server), ==, f->port);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  if (f->held != NULL)
    peer_request_return (f->held, NULL);
  g_clear_pointer (&f->connection, peer_connection_unref);
  g_clear_pointer (&f->server, peer_server_free);
  g_clear_pointer (&f->server_host, host_config_free);
  g_free (f->dir);
}

typedef struct
{
  gboolean done;
  PeerClient *client;
  JsonNode *value;
  GError *error;
  guint lines;
} Result;

static void
on_connected (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  Result *r = data;

  r->client = peer_client_connect_finish (result, &r->error);
  r->done = TRUE;
}

static void
on_called (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  Result *r = data;

  r->value = peer_client_call_finish (NULL, result, &r->error);
  r->done = TRUE;
}

static void
on_extra_line (JsonObject *line, gpointer data)
{
  Result *r = data;

  g_assert_true (json_object_has_member (line, "progress"));
  r->lines++;
}

/* Connects as client_name (a host file with that name's certificate from ca_dir) to "a". */
static PeerClient *
connect_as (Fixture *f, const char *client_name, const char *ca_dir, const char *cert_name,
            const char *server_name, GError **error)
{
  g_autofree char *hosts = g_strdup_printf ("host = %s 127.0.0.1:%u\n", server_name, f->port);
  g_autoptr(HostConfig) host = host_for (f, client_name, ca_dir, cert_name, hosts);
  Result r = { 0 };

  peer_client_connect_async (host, server_name, NULL, on_connected, &r);
  test_wait_until (r.done, 30000, "the peer connect to finish");
  if (r.error != NULL)
    g_propagate_error (error, r.error);
  return r.client;
}

static JsonNode *
call_sync (PeerClient *client, const char *command, JsonObject *args, guint timeout_ms,
           guint *out_lines, GError **error)
{
  Result r = { 0 };

  peer_client_call_async (client, command, args, timeout_ms, on_extra_line, &r, NULL, on_called, &r);
  test_wait_until (r.done, 30000, "a peer call to finish");
  if (out_lines != NULL)
    *out_lines = r.lines;
  if (r.error != NULL)
    g_propagate_error (error, r.error);
  return r.value;
}

static void
test_call (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = connect_as (f, "b", "ca", "b", "a", &error);
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(JsonNode) value = NULL;
  g_autoptr(JsonNode) none = NULL;
  guint lines = 0;
  JsonObject *o;

  g_assert_no_error (error);
  g_assert_cmpstr (peer_client_get_name (client), ==, "a");
  json_object_set_string_member (args, "text", "hi");
  value = call_sync (client, "echo", args, 10000, &lines, &error);
  g_assert_no_error (error);
  o = json_node_get_object (value);
  g_assert_cmpstr (json_object_get_string_member (o, "peer"), ==, "b");
  g_assert_cmpstr (json_object_get_string_member (o, "text"), ==, "hi");
  g_assert_cmpuint (lines, ==, 1);
  none = call_sync (client, "nothing", NULL, 10000, NULL, &error);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_REFUSED);
  g_assert_cmpstr (error->message, ==, "no command 'nothing'");
  g_assert_null (none);
  g_assert_cmpuint (f->handled, ==, 2);
}

/* Two calls at once: the held one does not block the other; a timeout leaves the client
 * usable; the server going away fails the rest and runs the close watch. */
static void
test_outstanding (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = connect_as (f, "b", "ca", "b", "a", &error);
  Result held = { 0 }, timed = { 0 };
  g_autoptr(JsonNode) value = NULL;
  guint extra_watch;

  g_assert_no_error (error);
  peer_client_call_async (client, "hold", NULL, 0, NULL, NULL, NULL, on_called, &held);
  test_wait_until (f->held != NULL, 30000, "the server to hold a request");
  extra_watch = peer_connection_watch_close (f->connection, on_closed_watch, f);
  g_assert_cmpuint (extra_watch, >, 0);
  peer_connection_unwatch_close (f->connection, extra_watch);
  g_assert_true (peer_connection_is_open (f->connection));
  g_assert_cmpstr (peer_connection_get_peer_name (f->connection), ==, "b");
  value = call_sync (client, "echo", NULL, 10000, NULL, &error);
  g_assert_no_error (error);
  g_assert_false (held.done);

  peer_client_call_async (client, "hold-again", NULL, 1, NULL, NULL, NULL, on_called, &timed);
  test_wait_until (timed.done, 30000, "a timeout");
  /* Either the timeout or the NotFound answer may win on a slow machine; both complete. */
  g_assert_true (timed.error != NULL);
  g_clear_error (&timed.error);

  g_clear_pointer (&f->server, peer_server_free);
  test_wait_until (held.done, 30000, "the held call to fail");
  g_assert_error (held.error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_clear_error (&held.error);
  test_wait_until (f->closed_watches == 1, 30000, "the close watch");   /* not the removed one */
  g_assert_false (peer_connection_is_open (f->connection));
  g_assert_false (peer_client_is_connected (client));
  /* A watch added once the connection ended fires too, from the main loop. */
  peer_connection_watch_close (f->connection, on_closed_watch, f);
  g_assert_cmpuint (f->closed_watches, ==, 1);
  test_wait_until (f->closed_watches == 2, 30000, "the late close watch");
}

static void
test_free_cancels (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  PeerClient *client = connect_as (f, "b", "ca", "b", "a", &error);
  Result held = { 0 };

  g_assert_no_error (error);
  peer_client_call_async (client, "hold", NULL, 0, NULL, NULL, NULL, on_called, &held);
  test_wait_until (f->held != NULL, 30000, "the server to hold a request");
  peer_client_free (client);
  g_assert_false (held.done);   /* completed from the main loop, not inside free */
  test_wait_until (held.done, 30000, "the held call to be cancelled");
  g_assert_error (held.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&held.error);
  test_wait_until (f->closed_watches == 1, 30000, "the server to see the close");
}

/* A certificate of another CA: refused in the handshake, the handler never runs. */
static void
test_other_ca (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(JsonNode) value = NULL;

  g_test_expect_message ("vmherd-peer", G_LOG_LEVEL_MESSAGE, "peer link: refused 127.0.0.1:*");
  /* The client trusts only its own (other) CA, so it refuses "a" too; let it trust ours
   * (ca = ca/ca-cert.pem) with a certificate of the other CA, as a stray host would. */
  client = connect_as (f, "b", "other", "b", "a", &error);
  if (client != NULL)   /* TLS 1.3: the client learns of the refusal on its first read */
    {
      value = call_sync (client, "echo", NULL, 10000, NULL, &error);
      g_assert_null (value);
    }
  g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_true (strstr (error->message, "did it refuse this host's certificate?") != NULL);
  g_test_assert_expected_messages ();
  g_assert_cmpuint (f->handled, ==, 0);
}

/* A valid certificate whose name is not a configured host: one PermissionDenied line. */
static void
test_unknown_name (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(JsonNode) value = NULL;

  g_test_expect_message ("vmherd-peer", G_LOG_LEVEL_MESSAGE,
                         "peer link: refused 127.0.0.1:*: certificate names stranger, not a peer host of *");
  client = connect_as (f, "stranger", "ca", "stranger", "a", &error);
  g_assert_no_error (error);
  value = call_sync (client, "echo", NULL, 10000, NULL, &error);
  g_assert_null (value);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_REFUSED);
  g_assert_true (strstr (error->message, "certificate names stranger, not a peer host") != NULL);
  g_test_assert_expected_messages ();
  g_assert_cmpuint (f->handled, ==, 0);
}

/* The server presents a certificate for "a" while the client meant "b". */
static void
test_wrong_server_name (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;

  client = connect_as (f, "stranger", "ca", "stranger", "b", &error);
  g_assert_null (client);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_TLS);
  g_assert_true (strstr (error->message, "peer 'b' at 127.0.0.1:") != NULL);
  g_assert_true (g_str_has_suffix (error->message, ": its certificate names a, not 'b' (is the "
                                  "address in [peer] host = right?)"));
  g_assert_cmpuint (f->handled, ==, 0);
}

/* ---- raw TLS ends for protocol edge cases ---- */

static gboolean
accept_any (GTlsConnection *tls G_GNUC_UNUSED, GTlsCertificate *certificate G_GNUC_UNUSED,
            GTlsCertificateFlags errors G_GNUC_UNUSED, gpointer data G_GNUC_UNUSED)
{
  return TRUE;
}

static GTlsCertificate *
certificate_of (Fixture *f G_GNUC_UNUSED, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *cert = g_strdup_printf ("%s/ca/%s-cert.pem", pki_root, name);
  g_autofree char *key = g_strdup_printf ("%s/ca/%s-key.pem", pki_root, name);
  GTlsCertificate *certificate = g_tls_certificate_new_from_files (cert, key, &error);

  g_assert_no_error (error);
  return certificate;
}

static void
on_raw_handshake (GObject *source, GAsyncResult *result, gpointer data)
{
  Result *r = data;

  g_tls_connection_handshake_finish (G_TLS_CONNECTION (source), result, &r->error);
  r->done = TRUE;
}

/* A TLS connection to port with name's certificate, sending and reading raw lines. */
static GIOStream *
raw_connect (Fixture *f, guint16 port, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketClient) sc = g_socket_client_new ();
  g_autoptr(GSocketConnection) base = NULL;
  g_autoptr(GTlsCertificate) certificate = certificate_of (f, name);
  GIOStream *tls;
  Result r = { 0 };

  base = g_socket_client_connect_to_host (sc, "127.0.0.1", port, NULL, &error);
  g_assert_no_error (error);
  tls = g_tls_client_connection_new (G_IO_STREAM (base), NULL, &error);
  g_assert_no_error (error);
  g_tls_connection_set_certificate (G_TLS_CONNECTION (tls), certificate);
  g_tls_connection_set_require_close_notify (G_TLS_CONNECTION (tls), FALSE);
  g_signal_connect (tls, "accept-certificate", G_CALLBACK (accept_any), NULL);
  g_tls_connection_handshake_async (G_TLS_CONNECTION (tls), G_PRIORITY_DEFAULT, NULL,
                                    on_raw_handshake, &r);
  test_wait_until (r.done, 30000, "a raw TLS handshake");
  g_assert_no_error (r.error);
  return tls;
}

static void
raw_send (GIOStream *stream, const char *text)
{
  g_autoptr(GError) error = NULL;

  g_output_stream_write_all (g_io_stream_get_output_stream (stream), text, strlen (text), NULL,
                             NULL, &error);
  g_assert_no_error (error);
}

typedef struct
{
  gboolean done;
  gssize n;
  char buffer[4096];
} RawRead;

static void
on_raw_read (GObject *source, GAsyncResult *result, gpointer data)
{
  RawRead *r = data;

  r->n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);
  r->done = TRUE;
}

/* The next line the peer sends, parsed (reads a byte at a time: lines are short). */
static JsonObject *
raw_read_object (GIOStream *stream)
{
  GString *line = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  JsonNode *node;
  JsonObject *object;

  for (;;)
    {
      RawRead r = { 0 };
      g_input_stream_read_async (g_io_stream_get_input_stream (stream), r.buffer, 1,
                                 G_PRIORITY_DEFAULT, NULL, on_raw_read, &r);
      test_wait_until (r.done, 30000, "a line from the peer");
      g_assert_cmpint (r.n, ==, 1);
      if (r.buffer[0] == '\n')
        break;
      g_string_append_c (line, r.buffer[0]);
    }
  node = json_from_string (line->str, &error);
  g_assert_no_error (error);
  g_string_free (line, TRUE);
  object = json_object_ref (json_node_get_object (node));
  json_node_unref (node);
  return object;
}

/* Malformed lines from a verified peer get InvalidArgument (with the id when one could be
 * read) and the connection carries on. */
static void
test_malformed_requests (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autoptr(GIOStream) tls = raw_connect (f, f->port, "b");
  g_autoptr(JsonObject) a = NULL, b = NULL, progress = NULL, answer = NULL;
  JsonObject *error;

  raw_send (tls, "not json\n{\"execute\":1,\"id\":7}\n{\"execute\":\"echo\",\"id\":8}\n");
  a = raw_read_object (tls);
  error = json_object_get_object_member (a, "error");
  g_assert_cmpstr (json_object_get_string_member (error, "class"), ==, "InvalidArgument");
  g_assert_true (g_str_has_prefix (json_object_get_string_member (error, "desc"), "invalid JSON"));
  g_assert_false (json_object_has_member (a, "id"));
  b = raw_read_object (tls);
  g_assert_cmpint (json_object_get_int_member (b, "id"), ==, 7);
  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (b, "error"), "class"),
                   ==, "InvalidArgument");
  progress = raw_read_object (tls);
  g_assert_cmpint (json_object_get_int_member (progress, "id"), ==, 8);
  g_assert_true (json_object_has_member (progress, "progress"));
  answer = raw_read_object (tls);
  g_assert_cmpint (json_object_get_int_member (answer, "id"), ==, 8);
  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (answer, "return"), "peer"),
                   ==, "b");
  g_assert_cmpuint (f->handled, ==, 1);
}

typedef struct
{
  Fixture *f;
  GIOStream *tls;               /* the accepted connection */
  const char *reply;            /* sent after the first line read */
} FakeServer;

static void
on_fake_handshake (GObject *source, GAsyncResult *result, gpointer data)
{
  FakeServer *fake = data;
  g_autoptr(GError) error = NULL;

  g_tls_connection_handshake_finish (G_TLS_CONNECTION (source), result, &error);
  g_assert_no_error (error);
  raw_send (fake->tls, fake->reply);
}

static gboolean
on_fake_incoming (GSocketService *service G_GNUC_UNUSED, GSocketConnection *base,
                  GObject *source G_GNUC_UNUSED, gpointer data)
{
  FakeServer *fake = data;
  g_autoptr(GTlsCertificate) certificate = certificate_of (fake->f, "a");
  g_autoptr(GError) error = NULL;

  fake->tls = g_tls_server_connection_new (G_IO_STREAM (base), certificate, &error);
  g_assert_no_error (error);
  g_signal_connect (fake->tls, "accept-certificate", G_CALLBACK (accept_any), NULL);
  g_tls_connection_handshake_async (G_TLS_CONNECTION (fake->tls), G_PRIORITY_DEFAULT, NULL,
                                    on_fake_handshake, fake);
  return TRUE;
}

/* A server that answers garbage: the call fails with PEER_ERROR_PROTOCOL, the client is
 * closed, and later calls fail at once. */
static void
test_garbage_answer (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketService) service = g_socket_service_new ();
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(JsonNode) value = NULL;
  FakeServer fake = { f, NULL, "{\"return\": nope\n" };
  guint16 port;

  port = g_socket_listener_add_any_inet_port (G_SOCKET_LISTENER (service), NULL, &error);
  g_assert_no_error (error);
  g_signal_connect (service, "incoming", G_CALLBACK (on_fake_incoming), &fake);
  f->port = port;
  client = connect_as (f, "b", "ca", "b", "a", &error);
  g_assert_no_error (error);
  value = call_sync (client, "echo", NULL, 10000, NULL, &error);
  g_assert_null (value);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL);
  g_assert_true (g_str_has_prefix (error->message, "peer 'a': invalid JSON"));
  g_clear_error (&error);
  g_assert_false (peer_client_is_connected (client));
  value = call_sync (client, "echo", NULL, 10000, NULL, &error);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL);
  g_socket_service_stop (service);
  g_clear_object (&fake.tls);
}

static void
on_silent_accepted (GObject *source, GAsyncResult *result, gpointer data)
{
  GSocketConnection **out = data;

  *out = g_socket_listener_accept_finish (G_SOCKET_LISTENER (source), result, NULL, NULL);
  g_assert_nonnull (*out);
}

/* A peer that accepts TCP and never speaks TLS: cancelling the connect ends it with
 * G_IO_ERROR_CANCELLED, from the main loop. */
static void
test_connect_cancelled (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketListener) silent = g_socket_listener_new ();
  g_autoptr(GSocketConnection) accepted = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autofree char *hosts = NULL;
  g_autoptr(HostConfig) host = NULL;
  Result r = { 0 };

  f->port = g_socket_listener_add_any_inet_port (silent, NULL, &error);
  g_assert_no_error (error);
  hosts = g_strdup_printf ("host = a 127.0.0.1:%u\n", f->port);
  host = host_for (f, "b", "ca", "b", hosts);
  g_socket_listener_accept_async (silent, NULL, on_silent_accepted, &accepted);
  peer_client_connect_async (host, "a", cancellable, on_connected, &r);
  test_wait_until (accepted != NULL, 30000, "the TCP connection");
  g_cancellable_cancel (cancellable);
  g_assert_false (r.done);
  test_wait_until (r.done, 30000, "the connect to end");
  g_assert_null (r.client);
  g_assert_error (r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&r.error);
}

/* Configuration errors come back from _finish(), never from the call itself. */
static void
test_connect_config_errors (Fixture *f, gconstpointer data G_GNUC_UNUSED)
{
  g_autofree char *path = g_strdup_printf ("%s/plain.conf", f->dir);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) plain = NULL;
  Result r = { 0 }, s = { 0 };

  test_write_file (path, "[daemon]\n");
  plain = host_config_load (path, errors);
  peer_client_connect_async (plain, "a", NULL, on_connected, &r);
  g_assert_false (r.done);
  test_wait_until (r.done, 30000, "the connect to fail");
  g_assert_error (r.error, PEER_ERROR, PEER_ERROR_CONFIG);
  g_assert_true (g_str_has_prefix (r.error->message, "no [peer] section in "));
  g_clear_error (&r.error);

  peer_client_connect_async (f->server_host, "zz", NULL, on_connected, &s);
  test_wait_until (s.done, 30000, "the connect to fail");
  g_assert_error (s.error, PEER_ERROR, PEER_ERROR_CONFIG);
  g_assert_true (g_str_has_prefix (s.error->message, "no peer host 'zz' in [peer] of "));
  g_assert_true (g_str_has_suffix (s.error->message, " (known: b)"));
  g_clear_error (&s.error);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
#define T(path, fn) g_test_add ("/peer-link/" path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  T ("call", test_call);
  T ("outstanding", test_outstanding);
  T ("free-cancels", test_free_cancels);
  T ("other-ca", test_other_ca);
  T ("unknown-name", test_unknown_name);
  T ("wrong-server-name", test_wrong_server_name);
  T ("malformed-requests", test_malformed_requests);
  T ("garbage-answer", test_garbage_answer);
  T ("connect-cancelled", test_connect_cancelled);
  T ("connect-config-errors", test_connect_config_errors);
  make_certificates ();
  status = g_test_run ();
  test_rm_rf (pki_root);
  g_free (pki_root);
  return status;
}
