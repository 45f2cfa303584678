/* daemon-migrate.c: `migrate`, `migrate-cancel` and `evacuate` on the control socket, and
 * the migration requests peers send (migrate-source.c, migrate-dest.c do the work). */
#include "launcher/daemon-private.h"

#include <glib/gstdio.h>
#include <string.h>

#include "launcher/migrate-dest.h"
#include "launcher/migrate-source.h"
#include "launcher/peer-link.h"

#define HELLO_TIMEOUT_MS 10000
#define QEMU_OVERHEAD (64 << 20)      /* memory a QEMU needs beyond the guest's */

void
daemon_migrate_init (Daemon *daemon)
{
  daemon->migrations_out = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  daemon->migrations_in = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                 (GDestroyNotify) migrate_in_free);
  daemon->migration_stats.last_total_ms = daemon->migration_stats.last_downtime_ms = -1;
  migrate_in_cleanup_leftovers (daemon);
}

void
daemon_migrate_free (Daemon *daemon)
{
  g_clear_pointer (&daemon->migrations_in, g_hash_table_unref);
  g_clear_pointer (&daemon->migrations_out, g_hash_table_unref);
}

void
daemon_migrate_state_changed (Daemon *daemon, Vm *vm, VmState old_state)
{
  MigrateOut *out;
  MigrateIn *in;

  if (daemon->migrations_out == NULL)
    return;
  out = g_hash_table_lookup (daemon->migrations_out, vm_get_name (vm));
  in = g_hash_table_lookup (daemon->migrations_in, vm_get_name (vm));
  if (out != NULL)
    migrate_out_vm_state_changed (out, old_state);
  if (in != NULL)
    migrate_in_vm_state_changed (in, old_state);
  /* A guest found already migrated away (an adopted QEMU in postmigrate): its file must
   * leave vm-dir like after any migration, or a reboot would start it here again. */
  if (out == NULL && vm_get_state (vm) == VM_STATE_STOPPED && vm_get_migrated_to (vm) != NULL)
    {
      const char *path = vm_get_config (vm)->path;
      g_autofree char *dir = g_path_get_dirname (path);
      g_autofree char *base = g_path_get_basename (path);
      g_autofree char *aside = g_strdup_printf ("%s/.%s.migrated", dir, base);

      if (g_file_test (path, G_FILE_TEST_EXISTS) && g_rename (path, aside) == 0)
        g_warning ("vm '%s': its QEMU had migrated it away before this vmherdd started: %s moved "
                   "to %s (check which host runs it; delete that file then)", vm_get_name (vm), path, aside);
    }
}

/* ---- migrate ---- */

static void
on_migrate_progress (JsonObject *progress, gpointer data)
{
  ControlRequest *request = data;

  if (control_request_is_connected (request))
    control_request_send_progress (request, progress);
}

static void
on_migrate_done (const GError *error, JsonObject *result, gpointer data)
{
  ControlRequest *request = data;

  if (error != NULL)
    return control_request_error (request, "GenericError", "%s", error->message);
  control_request_return (request, json_node_init_object (json_node_alloc (), result));
}

void
daemon_cmd_migrate (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  const char *to = control_json_get_string (args, "to");
  g_autoptr(GError) error = NULL;
  Vm *vm = daemon_request_vm (daemon, request, args);

  if (vm == NULL)
    return;
  if (to == NULL)
    return control_request_error (request, "InvalidArgument",
                                  "migrate needs 'to': the peer host (vmherd migrate NAME HOST)");
  if (migrate_out_start (daemon, vm, to, json_object_get_boolean_member_with_default (args, "postcopy", FALSE),
                         json_object_get_boolean_member_with_default (args, "copy-storage", FALSE),
                         on_migrate_progress, on_migrate_done, request, &error) == NULL)
    control_request_error (request, "GenericError", "%s", error->message);
}

void
daemon_cmd_migrate_cancel (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  const char *name = control_json_get_string (args, "vm");
  MigrateOut *job = name ? g_hash_table_lookup (daemon->migrations_out, name) : NULL;
  g_autoptr(GError) error = NULL;

  if (job == NULL)
    return control_request_error (request, "NotFound", "vm '%s' is not migrating from this host",
                                  name ? name : "?");
  if (!migrate_out_cancel (job, "cancelled by the operator", &error))
    return control_request_error (request, "Busy", "%s", error->message);
  control_request_return (request, NULL);
}

/* ---- evacuate ---- */

typedef struct
{
  char *name;
  gint64 free;                  /* bytes: MemAvailable minus what we send it */
  char *error;                  /* unreachable */
} EvacTarget;

typedef struct
{
  Daemon *daemon;
  ControlRequest *request;
  GPtrArray *targets;           /* EvacTarget */
  guint hellos_pending;
  GPtrArray *clients;           /* PeerClient, for the hellos */
  GQueue queue;                 /* JsonObject {"vm","to"} to start */
  guint running, parallel;
  gboolean copy_storage;
  JsonArray *results;
} Evacuation;

static void
evac_target_free (EvacTarget *t)
{
  g_free (t->name);
  g_free (t->error);
  g_free (t);
}

static void
evac_free (Evacuation *e)
{
  g_ptr_array_unref (e->targets);
  g_ptr_array_unref (e->clients);
  g_queue_clear_full (&e->queue, (GDestroyNotify) json_object_unref);
  json_array_unref (e->results);
  g_free (e);
}

static void
evac_result (Evacuation *e, const char *vm, const char *to, const char *error, JsonObject *result)
{
  JsonObject *r = json_object_new ();

  json_object_set_string_member (r, "vm", vm);
  json_object_set_string_member (r, "to", to ? to : "");
  json_object_set_string_member (r, "result", error ? "stayed" : "moved");
  if (error != NULL)
    json_object_set_string_member (r, "reason", error);
  if (result != NULL)
    {
      json_object_set_int_member (r, "total-ms", json_object_get_int_member (result, "total-ms"));
      json_object_set_int_member (r, "downtime-ms", json_object_get_int_member (result, "downtime-ms"));
    }
  json_array_add_object_element (e->results, r);
}

static void evac_pump (Evacuation *e);

typedef struct
{
  Evacuation *e;
  char *vm, *to;
} EvacMove;

static void
on_evac_progress (JsonObject *progress, gpointer data)
{
  EvacMove *m = data;

  if (control_request_is_connected (m->e->request))
    control_request_send_progress (m->e->request, progress);
}

static void
on_evac_done (const GError *error, JsonObject *result, gpointer data)
{
  EvacMove *m = data;

  evac_result (m->e, m->vm, m->to, error ? error->message : NULL, result);
  m->e->running--;
  evac_pump (m->e);
  g_free (m->vm);
  g_free (m->to);
  g_free (m);
}

static void
evac_pump (Evacuation *e)
{
  while (e->running < e->parallel && e->queue.length > 0)
    {
      g_autoptr(JsonObject) item = g_queue_pop_head (&e->queue);
      const char *name = json_object_get_string_member (item, "vm");
      const char *to = json_object_get_string_member (item, "to");
      g_autoptr(GError) error = NULL;
      Vm *vm = daemon_find_vm (e->daemon, name);
      EvacMove *m = g_new0 (EvacMove, 1);

      m->e = e;
      m->vm = g_strdup (name);
      m->to = g_strdup (to);
      if (vm == NULL || migrate_out_start (e->daemon, vm, to, FALSE, e->copy_storage, on_evac_progress, on_evac_done, m,
                                           &error) == NULL)
        {
          evac_result (e, name, to, error ? error->message : "the VM is gone", NULL);
          g_free (m->vm);
          g_free (m->to);
          g_free (m);
          continue;
        }
      e->running++;
    }
  if (e->running == 0 && e->queue.length == 0)
    {
      JsonObject *ret = json_object_new ();
      guint moved = 0;

      for (guint i = 0; i < json_array_get_length (e->results); i++)
        if (strcmp (json_object_get_string_member (json_array_get_object_element (e->results, i), "result"),
                    "moved") == 0)
          moved++;
      json_object_set_int_member (ret, "moved", moved);
      json_object_set_int_member (ret, "stayed", json_array_get_length (e->results) - moved);
      json_object_set_array_member (ret, "results", json_array_ref (e->results));
      control_request_return (e->request, json_node_init_object (json_node_alloc (), ret));
      json_object_unref (ret);
      evac_free (e);
    }
}

static gint
by_memory_desc (gconstpointer a, gconstpointer b)
{
  guint64 ma = vm_get_config (*(Vm **) a)->memory, mb = vm_get_config (*(Vm **) b)->memory;

  return ma < mb ? 1 : ma > mb ? -1 : g_strcmp0 (vm_get_name (*(Vm **) a), vm_get_name (*(Vm **) b));
}

/* Every peer answered (or not): spread the guests by free memory, biggest first. */
static void
evac_plan (Evacuation *e)
{
  g_autoptr(GPtrArray) vms = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, e->daemon->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if ((vm_get_state (value) == VM_STATE_RUNNING || vm_get_state (value) == VM_STATE_PAUSED)
        && !g_hash_table_contains (e->daemon->migrations_out, vm_get_name (value)))
      g_ptr_array_add (vms, value);
  g_ptr_array_sort (vms, by_memory_desc);
  for (guint i = 0; i < vms->len; i++)
    {
      guint64 need = vm_get_config (vms->pdata[i])->memory + QEMU_OVERHEAD;
      EvacTarget *best = NULL;
      g_autoptr(GString) why = g_string_new (NULL);

      for (guint t = 0; t < e->targets->len; t++)
        {
          EvacTarget *target = e->targets->pdata[t];
          if (target->error == NULL && target->free >= (gint64) need
              && (best == NULL || target->free > best->free))
            best = target;
        }
      if (best == NULL)
        {
          for (guint t = 0; t < e->targets->len; t++)
            {
              EvacTarget *target = e->targets->pdata[t];
              if (target->error)
                g_string_append_printf (why, "%s%s: %s", why->len ? "; " : "", target->name, target->error);
              else
                g_string_append_printf (why, "%s%s: %" G_GINT64_FORMAT " MiB free", why->len ? "; " : "",
                                        target->name, target->free >> 20);
            }
          g_string_prepend (why, "no peer has room for it (");
          g_string_append_printf (why, "; it needs %" G_GUINT64_FORMAT " MiB)", need >> 20);
          evac_result (e, vm_get_name (vms->pdata[i]), NULL, why->str, NULL);
          continue;
        }
      best->free -= (gint64) need;
      JsonObject *item = json_object_new ();
      json_object_set_string_member (item, "vm", vm_get_name (vms->pdata[i]));
      json_object_set_string_member (item, "to", best->name);
      g_queue_push_tail (&e->queue, item);
    }
  evac_pump (e);
}

typedef struct
{
  Evacuation *e;
  EvacTarget *target;
  PeerClient *client;           /* owned by e->clients */
} EvacHello;

static void
on_hello (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  EvacHello *h = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = peer_client_call_finish (h->client, result, &error);
  if (reply == NULL || !JSON_NODE_HOLDS_OBJECT (reply))
    h->target->error = g_strdup (error ? error->message : "no answer to hello");
  else
    h->target->free = json_object_get_int_member_with_default (json_node_get_object (reply), "mem-available", 0);
  if (--h->e->hellos_pending == 0)
    evac_plan (h->e);
  g_free (h);
}

static void
on_evac_connected (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  EvacHello *h = data;
  g_autoptr(GError) error = NULL;
  PeerClient *client = peer_client_connect_finish (result, &error);

  if (client == NULL)
    {
      h->target->error = g_strdup (error->message);
      if (--h->e->hellos_pending == 0)
        evac_plan (h->e);
      g_free (h);
      return;
    }
  g_ptr_array_add (h->e->clients, client);
  h->client = client;
  peer_client_call_async (client, "hello", NULL, HELLO_TIMEOUT_MS, NULL, NULL, NULL, on_hello, h);
}

void
daemon_cmd_evacuate (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  JsonNode *to = json_object_get_member (args, "to");
  gint64 parallel = json_object_get_int_member_with_default (args, "parallel", 2);
  Evacuation *e;

  if (host_config_peer_listen (daemon->host) == NULL || daemon->host->peer->hosts->len == 0)
    return control_request_error (request, "GenericError",
                                  "this host has no peers ([peer] host = NAME ADDR:PORT in %s)",
                                  daemon->host->path ? daemon->host->path : "the host file");
  if (parallel < 1 || parallel > 16)
    return control_request_error (request, "InvalidArgument", "parallel: %" G_GINT64_FORMAT
                                  " is not a number from 1 to 16", parallel);
  if (to != NULL && !JSON_NODE_HOLDS_ARRAY (to))
    return control_request_error (request, "InvalidArgument", "'to' is %s, not an array of host names",
                                  control_json_describe (to));
  e = g_new0 (Evacuation, 1);
  e->daemon = daemon;
  e->request = request;
  e->parallel = (guint) parallel;
  e->copy_storage = json_object_get_boolean_member_with_default (args, "copy-storage", FALSE);
  e->targets = g_ptr_array_new_with_free_func ((GDestroyNotify) evac_target_free);
  e->clients = g_ptr_array_new_with_free_func ((GDestroyNotify) peer_client_free);
  e->results = json_array_new ();
  g_queue_init (&e->queue);
  if (to != NULL)
    for (guint i = 0; i < json_array_get_length (json_node_get_array (to)); i++)
      {
        const char *name = json_array_get_string_element (json_node_get_array (to), i);
        if (name == NULL || host_config_peer_address (daemon->host, name) == NULL)
          {
            control_request_error (request, "InvalidArgument", "'%s' is not a peer host of this one",
                                   name ? name : "?");
            return evac_free (e);
          }
        EvacTarget *t = g_new0 (EvacTarget, 1);
        t->name = g_strdup (name);
        g_ptr_array_add (e->targets, t);
      }
  else
    for (guint i = 0; i < daemon->host->peer->hosts->len; i++)
      {
        EvacTarget *t = g_new0 (EvacTarget, 1);
        t->name = g_strdup (((HostPeer *) daemon->host->peer->hosts->pdata[i])->name);
        g_ptr_array_add (e->targets, t);
      }
  e->hellos_pending = e->targets->len;
  for (guint i = 0; i < e->targets->len; i++)
    {
      EvacHello *h = g_new0 (EvacHello, 1);
      h->e = e;
      h->target = e->targets->pdata[i];
      peer_client_connect_async (daemon->host, h->target->name, NULL, on_evac_connected, h);
    }
}

/* ---- requests from peers (daemon-peer.c's table) ---- */

void
daemon_peer_migrate_prepare (PeerRequest *request, const char *command G_GNUC_UNUSED,
                             JsonObject *args, gpointer daemon)
{
  migrate_in_prepare (daemon, request, args);
}

void
daemon_peer_migrate_finish (PeerRequest *request, const char *command G_GNUC_UNUSED,
                            JsonObject *args, gpointer daemon)
{
  migrate_in_finish (daemon, request, args);
}

void
daemon_peer_migrate_abort (PeerRequest *request, const char *command G_GNUC_UNUSED,
                           JsonObject *args, gpointer daemon)
{
  migrate_in_abort (daemon, request, args);
}
