/* test-peer.c: the peer link between real vmherdd daemons on loopback, with certificates
 * made by tools/vmherd-pki: `vmherd peers` both ways, and the refusals (a certificate of
 * another CA, plaintext, a name that is not a peer host, a server with the wrong name, an
 * unreachable peer).  The link's API alone is in test-peer-link.c. */
#include <gio/gio.h>
#include <string.h>

#include "launcher/peer-link.h"
#include "tests/harness.h"
#include "tests/test-util.h"

#define WAIT_MS 60000
#define BIOS "[vm]\nmemory = 64M\n[health]\npanic = none\n"

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

/* [peer] for name, with the certificate cert_name of pki_dir (CA of ca_dir). */
static char *
peer_section (const char *name, guint16 port, const char *ca_dir, const char *pki_dir,
              const char *cert_name, const char *hosts)
{
  return g_strdup_printf ("[peer]\nname = %s\nlisten = 127.0.0.1:%u\nca = %s/ca-cert.pem\n"
                          "cert = %s/%s-cert.pem\nkey = %s/%s-key.pem\n%s", name, port, ca_dir,
                          pki_dir, cert_name, pki_dir, cert_name, hosts);
}

typedef struct
{
  char *pki, *other;            /* the group's CA; another CA */
  guint16 port_a, port_b;
  Host *a, *b;
} Group;

static void
group_free (Group *g)
{
  g_free (g->pki);
  g_free (g->other);
  g_free (g);
}

/* The certificates, made once for every test: pki/ (the group), other/ (another CA). */
static char *pki_root;

static void
make_certificates (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *group = NULL, *other = NULL;

  pki_root = g_dir_make_tmp ("vmherd-test-peer-XXXXXX", &error);
  g_assert_no_error (error);
  group = g_build_filename (pki_root, "pki", NULL);
  other = g_build_filename (pki_root, "other", NULL);
  pki (group, "ca", NULL);
  pki (group, "host", "a");
  pki (group, "host", "b");
  pki (group, "host", "stranger");
  pki (other, "ca", NULL);
  pki (other, "host", "b");
}

/* Certificates and ports of a group with hosts a and b; nothing started. */
static Group *
group_new (void)
{
  Group *g = g_new0 (Group, 1);

  g_test_queue_destroy ((GDestroyNotify) group_free, g);
  g->pki = g_build_filename (pki_root, "pki", NULL);
  g->other = g_build_filename (pki_root, "other", NULL);
  g->port_a = free_port ();
  g->port_b = free_port ();
  return g;
}

/* Daemons a (guest web) and b (guests db, cache), each the other's peer; extra_a adds
 * host lines to a. */
static void
group_start (Group *g, const char *extra_a)
{
  g_autofree char *hosts_a = NULL, *hosts_b = NULL, *peer_a = NULL, *peer_b = NULL;

  hosts_a = g_strdup_printf ("host = b 127.0.0.1:%u\n%s", g->port_b, extra_a ? extra_a : "");
  hosts_b = g_strdup_printf ("host = a 127.0.0.1:%u\n", g->port_a);
  peer_a = peer_section ("a", g->port_a, g->pki, g->pki, "a", hosts_a);
  peer_b = peer_section ("b", g->port_b, g->pki, g->pki, "b", hosts_b);
  g->a = host_start_with (peer_a, "web", BIOS, NULL);
  g->b = host_start_with (peer_b, "db", BIOS, "cache", BIOS, NULL);
}

static Group *
group_start_new (void)
{
  Group *g = group_new ();

  group_start (g, NULL);
  return g;
}

static char *
daemon_log (Host *h)
{
  g_autofree char *path = g_build_filename (h->dir, "vmherdd.log", NULL);

  return test_read_file (path);
}

static JsonObject *
find_peer (JsonArray *list, const char *name)
{
  for (guint i = 0; i < json_array_get_length (list); i++)
    {
      JsonObject *o = json_array_get_object_element (list, i);
      if (g_strcmp0 (json_object_get_string_member (o, "name"), name) == 0)
        return o;
    }
  g_error ("no peer '%s' in the list", name);
}

static JsonNode *
peers_json (Host *h, int expect_status)
{
  TestRun r = test_run_vmherd (h->config, NULL, "peers", "--json", NULL);
  g_autoptr(GError) error = NULL;
  JsonNode *node;

  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, expect_status);
  node = json_from_string (r.out, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_ARRAY (node));
  test_run_clear (&r);
  return node;
}

/* Each daemon sees the other: its name, its free memory and its guests. */
static void
test_peers_both_ways (void)
{
  g_autoptr(JsonNode) from_a = NULL, from_b = NULL;
  g_autofree char *address = NULL;
  JsonObject *b, *a;
  JsonArray *guests;
  TestRun r;
  Group *g;

  if (test_require_qemu () == NULL)
    return;
  g = group_start_new ();
  from_a = peers_json (g->a, 0);
  g_assert_cmpuint (json_array_get_length (json_node_get_array (from_a)), ==, 1);
  b = find_peer (json_node_get_array (from_a), "b");
  address = g_strdup_printf ("127.0.0.1:%u", g->port_b);
  g_assert_cmpstr (json_object_get_string_member (b, "address"), ==, address);
  g_assert_true (json_object_get_boolean_member (b, "reachable"));
  g_assert_cmpstr (json_object_get_string_member (b, "version"), ==, VMHERD_VERSION);
  g_assert_cmpint (json_object_get_int_member (b, "mem-available"), >, 1 << 20);
  guests = json_object_get_array_member (b, "guests");
  g_assert_cmpuint (json_array_get_length (guests), ==, 2);
  for (guint i = 0; i < 2; i++)
    {
      JsonObject *guest = json_array_get_object_element (guests, i);
      const char *name = json_object_get_string_member (guest, "name");
      g_assert_true (g_str_equal (name, "db") || g_str_equal (name, "cache"));
      g_assert_cmpstr (json_object_get_string_member (guest, "state"), ==, "stopped");
      g_assert_cmpint (json_object_get_int_member (guest, "memory"), ==, 64 << 20);
    }

  from_b = peers_json (g->b, 0);
  a = find_peer (json_node_get_array (from_b), "a");
  g_assert_true (json_object_get_boolean_member (a, "reachable"));
  guests = json_object_get_array_member (a, "guests");
  g_assert_cmpuint (json_array_get_length (guests), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (guests, 0), "name"),
                   ==, "web");

  r = test_run_vmherd (g->a->config, NULL, "peers", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (g_str_has_prefix (r.out, "NAME "));
  g_assert_nonnull (strstr (r.out, "MEM-AVAILABLE"));
  g_assert_nonnull (strstr (r.out, "\nb "));
  g_assert_nonnull (strstr (r.out, " reachable "));
  g_assert_nonnull (strstr (r.out, " 2 (0 running)\n"));
  test_run_clear (&r);
}

/* a lists c at b's address (b's certificate names b: refused by the client) and d where
 * nobody listens: each gets a clear error, b is still fine, and `peers` exits 1. */
static void
test_peers_errors (void)
{
  guint16 nobody = free_port ();
  g_autofree char *extra = NULL, *expected = NULL;
  g_autoptr(JsonNode) list = NULL;
  g_autofree char *log = NULL;
  JsonObject *c, *d;
  TestRun r;
  Group *g;

  if (test_require_qemu () == NULL)
    return;
  g = group_new ();
  /* c is at b's address: b answers with b's certificate. */
  extra = g_strdup_printf ("host = c 127.0.0.1:%u\nhost = d 127.0.0.1:%u\n", g->port_b, nobody);
  group_start (g, extra);
  list = peers_json (g->a, 1);
  g_assert_true (find_peer (json_node_get_array (list), "b") != NULL);
  g_assert_true (json_object_get_boolean_member (find_peer (json_node_get_array (list), "b"), "reachable"));
  c = find_peer (json_node_get_array (list), "c");
  g_assert_false (json_object_get_boolean_member (c, "reachable"));
  g_assert_cmpstr (json_object_get_string_member (c, "error-kind"), ==, "tls");
  g_assert_true (g_str_has_suffix (json_object_get_string_member (c, "error"),
                                   ": its certificate names b, not 'c' (is the address in [peer] "
                                   "host = right?)"));
  d = find_peer (json_node_get_array (list), "d");
  g_assert_false (json_object_get_boolean_member (d, "reachable"));
  g_assert_cmpstr (json_object_get_string_member (d, "error-kind"), ==, "unreachable");
  expected = g_strdup_printf ("peer 'd' at 127.0.0.1:%u: cannot connect: Connection refused", nobody);
  g_assert_cmpstr (json_object_get_string_member (d, "error"), ==, expected);

  r = test_run_vmherd (g->a->config, NULL, "peers", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.out, "\nd "));
  g_assert_nonnull (strstr (r.out, " error "));
  g_assert_nonnull (strstr (r.out, "Connection refused"));
  test_run_clear (&r);

  /* b refused the handshake a broke off: logged on b. */
  log = daemon_log (g->b);
  g_assert_nonnull (strstr (log, "peer link: refused 127.0.0.1:"));
}

/* ---- an in-process client against a daemon ---- */

typedef struct
{
  gboolean done;
  PeerClient *client;
  JsonNode *value;
  GError *error;
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

/* Connects to daemon a as a host called name with the certificate cert_name of pki_dir
 * (the group's CA is trusted), and says hello.  Returns the error (owned). */
static GError *
hello_as (Group *g, const char *name, const char *pki_dir, const char *cert_name)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *hosts = g_strdup_printf ("host = a 127.0.0.1:%u\n", g->port_a);
  g_autofree char *text = peer_section (name, free_port (), g->pki, pki_dir, cert_name, hosts);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = NULL;
  g_autoptr(PeerClient) client = NULL;
  Result c = { 0 }, h = { 0 };

  test_write_file (path, text);
  host = host_config_load (path, errors);
  g_assert_nonnull (host);
  peer_client_connect_async (host, "a", NULL, on_connected, &c);
  test_wait_until (c.done, WAIT_MS, "the connect");
  if (c.error != NULL)
    return c.error;
  client = c.client;
  peer_client_call_async (client, "hello", NULL, WAIT_MS, NULL, NULL, NULL, on_called, &h);
  test_wait_until (h.done, WAIT_MS, "the hello");
  g_assert_null (h.value);      /* never answered */
  return h.error;
}

/* A certificate of another CA: refused in the handshake, before any request is read. */
static void
test_other_ca_refused (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *log = NULL;
  Group *g;

  if (test_require_qemu () == NULL)
    return;
  g = group_start_new ();
  error = hello_as (g, "b", g->other, "b");
  g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_nonnull (strstr (error->message, "closed the connection without answering"));
  log = daemon_log (g->a);
  g_assert_nonnull (strstr (log, "peer link: refused 127.0.0.1:"));
  g_assert_nonnull (strstr (log, ": client certificate not signed by the group's CA\n"));
  g_assert_null (strstr (log, "peer link: 'b' connected"));
}

/* A certificate of the group's CA whose name is not a peer host: one PermissionDenied. */
static void
test_unknown_name_refused (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *log = NULL;
  Group *g;

  if (test_require_qemu () == NULL)
    return;
  g = group_start_new ();
  error = hello_as (g, "stranger", g->pki, "stranger");
  g_assert_error (error, PEER_ERROR, PEER_ERROR_REFUSED);
  g_assert_true (g_str_has_prefix (error->message, "certificate names stranger, not a peer host of "));
  log = daemon_log (g->a);
  g_assert_nonnull (strstr (log, ": certificate names stranger, not a peer host of "));
  g_assert_null (strstr (log, "peer link: 'stranger' connected"));
}

/* Plain TCP: a request line gets no answer, the connection is closed. */
static void
test_plaintext_refused (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketClient) sc = g_socket_client_new ();
  g_autoptr(GSocketConnection) conn = NULL;
  g_autofree char *log = NULL;
  const char *request = "{\"execute\":\"hello\",\"id\":1}\n";
  GString *got = g_string_new (NULL);
  gssize n;
  char buffer[4096];
  Group *g;

  if (test_require_qemu () == NULL)
    return;
  g = group_start_new ();
  g_socket_client_set_timeout (sc, 60);
  conn = g_socket_client_connect_to_host (sc, "127.0.0.1", g->port_a, NULL, &error);
  g_assert_no_error (error);
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)), request,
                             strlen (request), NULL, NULL, &error);
  g_assert_no_error (error);
  /* Read to the end (the socket's 60 s timeout bounds it). */
  while ((n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (conn)), buffer,
                                   sizeof buffer, NULL, &error)) > 0)
    g_string_append_len (got, buffer, n);
  g_assert_true (n == 0 || !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
  g_assert_null (strstr (got->str, "\"return\""));
  g_assert_null (strstr (got->str, "\"name\""));
  g_string_free (got, TRUE);
  log = daemon_log (g->a);
  g_assert_nonnull (strstr (log, "peer link: refused 127.0.0.1:"));
  g_assert_nonnull (strstr (log, ": TLS handshake failed: "));
}

/* The listen port is taken: vmherdd logs it and runs on; its own `peers` still works. */
static void
test_listen_taken (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketListener) taken = g_socket_listener_new ();
  g_autoptr(JsonNode) list = NULL;
  g_autofree char *log = NULL;
  g_autofree char *expected = NULL;
  Group *g;

  if (test_require_qemu () == NULL)
    return;
  g = group_new ();
  g->port_a = g_socket_listener_add_any_inet_port (taken, NULL, &error);
  g_assert_no_error (error);
  group_start (g, NULL);
  log = daemon_log (g->a);
  expected = g_strdup_printf ("peer link: cannot listen on 127.0.0.1:%u: Address already in use; "
                              "running without the peer link (fix [peer] in ", g->port_a);
  g_assert_nonnull (strstr (log, expected));
  list = peers_json (g->a, 0);
  g_assert_true (json_object_get_boolean_member (find_peer (json_node_get_array (list), "b"),
                                                 "reachable"));
}

/* A certificate that does not name the host: vmherdd says so in its log at start, as
 * `vmherd check` would, and still listens. */
static void
test_bad_certificate_logged (void)
{
  g_autofree char *hosts = NULL, *peer = NULL, *log = NULL, *expected = NULL;
  Group *g;
  Host *h;

  if (test_require_qemu () == NULL)
    return;
  g = group_new ();
  hosts = g_strdup_printf ("host = b 127.0.0.1:%u\n", g->port_b);
  peer = peer_section ("a", g->port_a, g->pki, g->pki, "b", hosts);
  h = host_start_with (peer, "web", BIOS, NULL);
  log = daemon_log (h);
  expected = g_strdup_printf ("peer link: %s:", h->config);
  g_assert_nonnull (strstr (log, expected));
  g_assert_nonnull (strstr (log, ": name: the certificate "));
  g_assert_nonnull (strstr (log, "/b-cert.pem names b, not 'a'"));
  g_assert_nonnull (strstr (log, "peer link: 'a' listening on 127.0.0.1:"));
}

/* A host file without [peer]: `peers` says so. */
static void
test_no_peer_section (void)
{
  TestRun r;
  Host *h;

  if (test_require_qemu () == NULL)
    return;
  h = host_start_with (NULL, "x", BIOS, NULL);
  r = test_run_vmherd (h->config, NULL, "peers", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, "this host has no peer link: no [peer] section in "));
  test_run_clear (&r);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/peer/peers-both-ways", test_peers_both_ways);
  g_test_add_func ("/peer/peers-errors", test_peers_errors);
  g_test_add_func ("/peer/other-ca-refused", test_other_ca_refused);
  g_test_add_func ("/peer/unknown-name-refused", test_unknown_name_refused);
  g_test_add_func ("/peer/plaintext-refused", test_plaintext_refused);
  g_test_add_func ("/peer/listen-taken", test_listen_taken);
  g_test_add_func ("/peer/bad-certificate-logged", test_bad_certificate_logged);
  g_test_add_func ("/peer/no-peer-section", test_no_peer_section);
  make_certificates ();
  status = g_test_run ();
  test_rm_rf (pki_root);
  g_free (pki_root);
  return status;
}
