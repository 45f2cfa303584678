/* daemon-peer.c: vmherdd's side of the peer link ([peer] in vmherd.conf): the server,
 * the table of peer commands, `hello`, and the control command `peers` (hello to every
 * configured host).
 *
 * Adding a peer command: write a PeerHandler (user_data is the Daemon *) and add a line
 * to peer_commands[] below. */
#define G_LOG_DOMAIN "vmherd-peer"

#include "launcher/daemon-private.h"

#include <string.h>

#include "launcher/peer-link.h"

#define PEERS_HELLO_TIMEOUT_MS 10000
/* A peer that accepts TCP but never finishes: `peers` answers without it after this. */
#define PEERS_DEADLINE_MS 25000

static void peer_cmd_hello (PeerRequest *request, const char *command, JsonObject *args,
                            gpointer daemon);

static const struct
{
  const char *name;
  PeerHandler handler;
} peer_commands[] = {
  { "hello", peer_cmd_hello },
  { "migrate-prepare", daemon_peer_migrate_prepare },   /* daemon-migrate.c */
  { "migrate-finish", daemon_peer_migrate_finish },
  { "migrate-abort", daemon_peer_migrate_abort },
};

static void
on_peer_request (PeerRequest *request, const char *command, JsonObject *arguments, gpointer data)
{
  for (guint i = 0; i < G_N_ELEMENTS (peer_commands); i++)
    if (strcmp (peer_commands[i].name, command) == 0)
      {
        peer_commands[i].handler (request, command, arguments, data);
        return;
      }
  peer_request_error (request, "CommandNotFound", "unknown peer command '%s' (vmherd %s)", command,
                      VMHERD_VERSION);
}

void
daemon_peer_open (Daemon *daemon)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ConfigErrors) problems = config_errors_new ();

  if (daemon->host->peer == NULL)
    return;
  /* What `vmherd check` says of the certificates, once here too: an expired or misnamed
   * certificate otherwise shows only as refusals on the other hosts. */
  host_peer_link_check_files (daemon->host->peer, daemon->host->path ? daemon->host->path : "the host file",
                              problems);
  for (guint i = 0; i < problems->len; i++)
    {
      g_autofree char *text = config_error_format (problems->pdata[i]);
      g_message ("peer link: %s", text);
    }
  daemon->peer_server = peer_server_new (daemon->host, on_peer_request, daemon, &error);
  if (daemon->peer_server == NULL)
    {
      /* "cannot listen on ADDR:PORT: ...", or which certificate file failed. */
      g_message ("peer link: %s; running without the peer link (fix [peer] in %s and restart "
                 "vmherdd)", error->message, daemon->host->path ? daemon->host->path : "the host file");
      return;
    }
  g_message ("peer link: '%s' listening on %s", daemon->host->peer->name, daemon->host->peer->listen);
}

void
daemon_peer_close (Daemon *daemon)
{
  g_clear_pointer (&daemon->peer_server, peer_server_free);
}

/* MemAvailable of /proc/meminfo in bytes, or -1. */
static gint64
mem_available (void)
{
  g_autofree char *text = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/meminfo", &text, NULL, NULL))
    return -1;
  line = strstr (text, "MemAvailable:");
  if (line == NULL)
    return -1;
  return g_ascii_strtoll (line + strlen ("MemAvailable:"), NULL, 10) * 1024;
}

static void
peer_cmd_hello (PeerRequest *request, const char *command G_GNUC_UNUSED,
                JsonObject *args G_GNUC_UNUSED, gpointer data)
{
  Daemon *daemon = data;
  g_autoptr(JsonObject) ret = json_object_new ();
  JsonArray *guests = json_array_new ();
  GHashTableIter iter;
  gpointer value;

  json_object_set_string_member (ret, "name", daemon->host->peer->name);
  json_object_set_string_member (ret, "version", VMHERD_VERSION);
  json_object_set_int_member (ret, "mem-available", mem_available ());
  g_hash_table_iter_init (&iter, daemon->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Vm *vm = value;
      JsonObject *g = json_object_new ();
      json_object_set_string_member (g, "name", vm_get_name (vm));
      json_object_set_string_member (g, "state", vm_state_to_string (vm_get_state (vm)));
      json_object_set_int_member (g, "memory", (gint64) vm_get_config (vm)->memory);
      json_array_add_object_element (guests, g);
    }
  json_object_set_array_member (ret, "guests", guests);
  peer_request_return (request, json_node_init_object (json_node_alloc (), ret));
}

/* ---- `peers`: hello to every configured host ---- */

typedef struct
{
  Daemon *daemon;
  ControlRequest *request;
  JsonArray *results;           /* one object per host, in config order */
  guint pending;
  GCancellable *cancellable;
  guint deadline_id;
  gboolean timed_out;           /* the deadline cancelled what was left */
} PeersQuery;

typedef struct
{
  PeersQuery *query;
  JsonObject *result;           /* borrowed from query->results */
  PeerClient *client;
} PeersProbe;

static void
peers_query_finish (PeersQuery *q)
{
  JsonNode *node = json_node_alloc ();

  g_clear_handle_id (&q->deadline_id, g_source_remove);
  json_node_init_array (node, q->results);
  control_request_return (q->request, node);
  json_array_unref (q->results);
  g_object_unref (q->cancellable);
  g_free (q);
}

static void
peers_probe_done (PeersProbe *p, JsonNode *hello, const GError *error)
{
  PeersQuery *q = p->query;

  if (hello != NULL && JSON_NODE_HOLDS_OBJECT (hello))
    {
      JsonObject *h = json_node_get_object (hello);
      g_autoptr(GList) members = json_object_get_members (h);

      json_object_set_boolean_member (p->result, "reachable", TRUE);
      /* version, mem-available, guests, and whatever newer peers add; the name is ours. */
      for (GList *m = members; m != NULL; m = m->next)
        if (strcmp (m->data, "name") != 0)
          json_object_set_member (p->result, m->data,
                                  json_node_copy (json_object_get_member (h, m->data)));
    }
  else if (q->timed_out && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_autofree char *why = g_strdup_printf ("peer '%s' at %s: no answer within %d s",
                                              json_object_get_string_member (p->result, "name"),
                                              json_object_get_string_member (p->result, "address"),
                                              PEERS_DEADLINE_MS / 1000);
      json_object_set_boolean_member (p->result, "reachable", FALSE);
      json_object_set_string_member (p->result, "error", why);
      json_object_set_string_member (p->result, "error-kind", peer_error_to_string (PEER_ERROR_TIMEOUT));
    }
  else
    {
      json_object_set_boolean_member (p->result, "reachable", FALSE);
      json_object_set_string_member (p->result, "error", error ? error->message : "no answer");
      json_object_set_string_member (p->result, "error-kind",
                                     error && error->domain == PEER_ERROR
                                       ? peer_error_to_string (error->code) : "cancelled");
    }
  g_clear_pointer (&p->client, peer_client_free);
  g_free (p);
  if (--q->pending == 0)
    peers_query_finish (q);
}

static void
on_hello (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  PeersProbe *p = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) hello = peer_client_call_finish (p->client, result, &error);

  peers_probe_done (p, hello, error);
}

static void
on_peer_connected (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  PeersProbe *p = data;
  g_autoptr(GError) error = NULL;

  p->client = peer_client_connect_finish (result, &error);
  if (p->client == NULL)
    {
      peers_probe_done (p, NULL, error);
      return;
    }
  peer_client_call_async (p->client, "hello", NULL, PEERS_HELLO_TIMEOUT_MS, NULL, NULL,
                          p->query->cancellable, on_hello, p);
}

static gboolean
on_peers_deadline (gpointer data)
{
  PeersQuery *q = data;

  q->deadline_id = 0;
  q->timed_out = TRUE;
  g_cancellable_cancel (q->cancellable);
  return G_SOURCE_REMOVE;
}

void
daemon_cmd_peers (Daemon *daemon, ControlRequest *request, JsonObject *args G_GNUC_UNUSED)
{
  const HostPeerLink *link = daemon->host->peer;
  PeersQuery *q;

  if (link == NULL)
    {
      control_request_error (request, "GenericError", "this host has no peer link: no [peer] "
                             "section in %s (see vmherd.conf(5))",
                             daemon->host->path ? daemon->host->path : "the host file");
      return;
    }
  if (link->hosts->len == 0)
    {
      control_request_return (request, json_node_init_array (json_node_alloc (), json_array_new ()));
      return;
    }
  q = g_new0 (PeersQuery, 1);
  q->daemon = daemon;
  q->request = request;
  q->results = json_array_new ();
  q->cancellable = g_cancellable_new ();
  q->pending = link->hosts->len;
  q->deadline_id = g_timeout_add (PEERS_DEADLINE_MS, on_peers_deadline, q);
  for (guint i = 0; i < link->hosts->len; i++)
    {
      const HostPeer *h = link->hosts->pdata[i];
      PeersProbe *p = g_new0 (PeersProbe, 1);
      p->query = q;
      p->result = json_object_new ();
      json_object_set_string_member (p->result, "name", h->name);
      json_object_set_string_member (p->result, "address", h->address);
      json_array_add_object_element (q->results, p->result);
      peer_client_connect_async (daemon->host, h->name, q->cancellable, on_peer_connected, p);
    }
}
