/* migrate-dest.c: the destination side of a live migration (migrate-dest.h). */
#define _GNU_SOURCE 1   /* memmem() */
#include "launcher/migrate-dest.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>

#include "launcher/migrate-qmp.h"
#include "images/image-create.h"
#include "images/overlay.h"
#include "launcher/qemu-spawn.h"
#include "launcher/vm-check.h"

struct _MigrateIn
{
  Daemon *daemon;
  char *name;
  char *from;
  PeerConnection *connection;
  guint close_watch;
  PeerRequest *prepare;         /* answered once QEMU listens */
  PeerRequest *finish;          /* answered once the guest runs here */
  char *incoming_path;          /* vm-dir/.NAME.conf.incoming */
  char *final_path;             /* vm-dir/NAME.conf */
  char *checksum;
  char *tls_dir;
  gboolean postcopy;
  QmpClient *qmp;
  guint subscription;
  GCancellable *cancel;
  gboolean completed, resumed, ended;
  gint64 resumed_us;
  char *failure;

  /* --copy-storage: the disks are made here and filled over NBD before the RAM goes */
  gboolean copy_storage;
  JsonArray *disks;             /* from the source: {"node", "size"} */
  VmConfig *config;             /* parsed, while the disks are made */
  guint next_disk;
  GPtrArray *created;           /* image paths made here (removed on failure) */
  gint64 nbd_port;
  gboolean cont_sent;
  char *machine;
};

static Vm *
job_vm (MigrateIn *job)
{
  return daemon_find_vm (job->daemon, job->name);
}

void
migrate_in_free (MigrateIn *job)
{
  if (job->cancel != NULL)
    g_cancellable_cancel (job->cancel);
  g_clear_object (&job->cancel);
  if (job->close_watch != 0)
    peer_connection_unwatch_close (job->connection, job->close_watch);
  g_clear_pointer (&job->connection, peer_connection_unref);
  g_free (job->name);
  g_free (job->from);
  g_free (job->incoming_path);
  g_free (job->final_path);
  g_free (job->checksum);
  g_free (job->tls_dir);
  g_free (job->failure);
  g_clear_pointer (&job->disks, json_array_unref);
  g_clear_pointer (&job->config, vm_config_free);
  g_clear_pointer (&job->created, g_ptr_array_unref);
  g_free (job->machine);
  g_free (job);
}

static gboolean
forget_vm (gpointer data)
{
  MigrateIn *job = data;
  Vm *vm = job_vm (job);

  if (vm != NULL && vm_get_state (vm) == VM_STATE_STOPPED)
    {
      daemon_waiters_drop_vm (job->daemon, vm);
      g_hash_table_remove (job->daemon->vms, job->name);
    }
  g_hash_table_remove (job->daemon->migrations_in, job->name);   /* frees job */
  return G_SOURCE_REMOVE;
}

/* Every trace of a failed incoming migration goes: the file, the TLS copy, the VM. */
static void
cleanup (MigrateIn *job)
{
  g_unlink (job->incoming_path);
  migrate_tls_dir_remove (job->tls_dir);
  for (guint i = 0; job->created != NULL && i < job->created->len; i++)
    {
      g_message ("vm '%s': removing %s, made for the failed migration", job->name,
                 (char *) job->created->pdata[i]);
      g_unlink (job->created->pdata[i]);
    }
  if (job->finish != NULL)
    {
      peer_request_error (job->finish, "GenericError", "%s", job->failure);
      job->finish = NULL;
    }
  if (job->prepare != NULL)
    {
      peer_request_error (job->prepare, "GenericError", "%s", job->failure);
      job->prepare = NULL;
    }
  g_idle_add (forget_vm, job);
}

static void
end_failed (MigrateIn *job, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
end_failed (MigrateIn *job, const char *format, ...)
{
  va_list ap;
  Vm *vm = job_vm (job);

  if (job->ended)
    return;
  job->ended = TRUE;
  va_start (ap, format);
  job->failure = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_message ("vm '%s': incoming migration from %s failed: %s", job->name, job->from, job->failure);
  if (job->subscription != 0 && job->qmp != NULL)
    qmp_client_unsubscribe (job->qmp, job->subscription);
  job->subscription = 0;
  job->qmp = NULL;
  if (vm != NULL && vm_is_incoming (vm) && vm_get_pid (vm) > 0)
    {
      vm_incoming_abort (vm, job->failure);   /* its exit calls migrate_in_vm_state_changed */
      return;
    }
  if (vm != NULL && vm_is_incoming (vm))
    vm_incoming_abort (vm, job->failure);
  cleanup (job);
}

void
migrate_in_vm_state_changed (MigrateIn *job, VmState old_state G_GNUC_UNUSED)
{
  Vm *vm = job_vm (job);

  if (vm == NULL || vm_get_state (vm) != VM_STATE_STOPPED || job->resumed)
    return;
  if (!job->ended)
    {
      job->ended = TRUE;
      job->failure = g_strdup ("the destination QEMU exited (see its log here)");
      g_message ("vm '%s': incoming migration from %s failed: %s", job->name, job->from, job->failure);
    }
  job->qmp = NULL;
  job->subscription = 0;
  cleanup (job);
}

/* ---- the guest runs here ---- */

static void
answer_finish (MigrateIn *job)
{
  JsonObject *r;
  JsonNode *node;

  if (job->finish == NULL)
    return;
  r = json_object_new ();
  json_object_set_int_member (r, "resumed-us", job->resumed_us);
  node = json_node_init_object (json_node_alloc (), r);
  json_object_unref (r);
  peer_request_return (job->finish, node);
  job->finish = NULL;
}

static void
resumed (MigrateIn *job, gint64 at_us)
{
  Vm *vm = job_vm (job);
  VmConfig *config;

  if (job->resumed || job->ended || vm == NULL)
    return;
  job->resumed = TRUE;
  job->resumed_us = at_us;
  if (job->subscription != 0)
    qmp_client_unsubscribe (job->qmp, job->subscription);
  job->subscription = 0;
  /* The file joins vm-dir as what runs: the folder scan must see it as unchanged. */
  config = (VmConfig *) vm_get_config (vm);
  g_free (config->checksum);
  config->checksum = g_strdup (job->checksum);
  g_hash_table_insert (job->daemon->file_sums, g_strdup (job->name), g_strdup (job->checksum));
  if (g_rename (job->incoming_path, job->final_path) < 0)
    g_warning ("vm '%s': cannot move %s to %s: %s (the guest runs here; put its file there "
               "by hand)", job->name, job->incoming_path, job->final_path, g_strerror (errno));
  daemon_save_desired (job->daemon, job->name, TRUE);
  job->daemon->migration_stats.in_ok++;
  migrate_tls_dir_remove (job->tls_dir);
  vm_incoming_done (vm);
  /* The job stays until the source asks (it wants the RESUME time) or its link closes. */
  if (job->finish != NULL)
    {
      answer_finish (job);
      g_hash_table_remove (job->daemon->migrations_in, job->name);   /* frees job */
    }
}

static void
on_cont (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateIn *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;
  if (reply == NULL)
    end_failed (job, "cont after the migration: %s", error->message);
}

/* Resumes the guest here; with copied disks, the NBD server goes first (QMP-NOTES 2.12
 * step 7: the source's last writes are in). */
static void
run_guest (MigrateIn *job)
{
  if (job->cont_sent || job->ended)
    return;
  job->cont_sent = TRUE;
  if (job->copy_storage)
    qmp_client_execute_async (job->qmp, "nbd-server-stop", NULL, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                              job->cancel, NULL, NULL);
  qmp_client_execute_async (job->qmp, "cont", NULL, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                            job->cancel, on_cont, job);
}

static void
on_qmp_event (QmpClient *client G_GNUC_UNUSED, const QmpMessage *event, gpointer data)
{
  MigrateIn *job = data;
  const char *status;

  if (job->ended)
    return;
  if (strcmp (event->event, "RESUME") == 0 && job->completed)
    {
      gint64 at = event->timestamp_seconds >= 0
                  ? event->timestamp_seconds * G_USEC_PER_SEC + event->timestamp_microseconds
                  : g_get_real_time ();
      return resumed (job, at);
    }
  if (strcmp (event->event, "MIGRATION") != 0 || event->data == NULL)
    return;
  status = json_object_get_string_member_with_default (event->data, "status", "");
  if (strcmp (status, "completed") == 0 && !job->completed)
    {
      /* Started with -S: it waits for us.  The source's link is still up (a closed link
       * would have ended this job), so the source has stopped for good: run it here.  With
       * copied disks, only once the source has finished its mirrors (migrate-finish). */
      job->completed = TRUE;
      if (!job->copy_storage || job->finish != NULL)
        run_guest (job);
    }
  else if (strcmp (status, "failed") == 0)
    end_failed (job, "the incoming stream failed (QEMU's log here has the reason)");
}

/* ---- prepare ---- */

static void
on_listening (JsonNode *reply, const char *failed_command, const GError *error, gpointer data)
{
  MigrateIn *job = data;
  JsonObject *r = reply && JSON_NODE_HOLDS_OBJECT (reply) ? json_node_get_object (reply) : NULL;
  JsonNode *addrs = r ? json_object_get_member (r, "socket-address") : NULL;
  JsonObject *addr = addrs && JSON_NODE_HOLDS_ARRAY (addrs) && json_array_get_length (json_node_get_array (addrs)) > 0
                     ? json_array_get_object_element (json_node_get_array (addrs), 0) : NULL;
  JsonObject *answer;
  const char *port;

  if (job->ended)
    return;
  if (failed_command != NULL)
    return end_failed (job, "QMP %s on the destination: %s", failed_command, error->message);
  port = addr ? json_object_get_string_member_with_default (addr, "port", NULL) : NULL;
  if (port == NULL)
    return end_failed (job, "the destination QEMU did not say which port it listens on");
  answer = json_object_new ();
  json_object_set_string_member (answer, "address", json_object_get_string_member_with_default (addr, "host", ""));
  json_object_set_int_member (answer, "port", g_ascii_strtoll (port, NULL, 10));
  if (job->copy_storage)
    json_object_set_int_member (answer, "nbd-port", job->nbd_port);
  g_message ("vm '%s': incoming migration from %s: QEMU listens on %s:%s (TLS)", job->name,
             job->from, json_object_get_string_member_with_default (addr, "host", "?"), port);
  peer_request_return (job->prepare, json_node_init_object (json_node_alloc (), answer));
  json_object_unref (answer);
  job->prepare = NULL;
}

static void
on_incoming_ready (Vm *vm, const GError *error, gpointer data)
{
  MigrateIn *job = data;
  const HostConfig *host = job->daemon->host;
  const char *caps_plain[] = { "events", "return-path", NULL };
  const char *caps_postcopy[] = { "events", "return-path", "postcopy-ram", NULL };
  g_autoptr(GError) tls_error = NULL;
  g_autofree char *address = NULL;
  MigrateQmpSeq *seq;
  JsonObject *params, *incoming;

  if (job->ended)
    return;
  if (error != NULL)
    return end_failed (job, "the destination QEMU did not start: %s", error->message);
  job->qmp = vm_get_qmp (vm);
  job->subscription = qmp_client_subscribe (job->qmp, on_qmp_event, job, NULL);
  job->tls_dir = migrate_tls_dir_create (host, job->name, TRUE, &tls_error);
  if (job->tls_dir == NULL)
    return end_failed (job, "%s", tls_error->message);
  address = migrate_listen_address (host);
  seq = migrate_qmp_seq_new ();
  params = json_object_new ();
  incoming = json_object_new ();
  if (job->copy_storage && vm_get_config (vm)->disks->len > 0)
    {
      g_autofree char *nbd_host = migrate_listen_host (host);
      g_autofree char *port = NULL;
      JsonObject *start = json_object_new ();
      JsonObject *addr = json_object_new ();
      JsonObject *inet = json_object_new ();

      job->nbd_port = migrate_free_port (nbd_host, &tls_error);
      if (job->nbd_port < 0)
        {
          json_object_unref (start);
          json_object_unref (addr);
          json_object_unref (inet);
          json_object_unref (params);
          json_object_unref (incoming);
          migrate_qmp_seq_free (seq);
          return end_failed (job, "no free port for the disks' NBD server: %s", tls_error->message);
        }
      port = g_strdup_printf ("%" G_GINT64_FORMAT, job->nbd_port);
      /* 7.2 wants the legacy SocketAddress form here (QMP-NOTES 2.12). */
      json_object_set_string_member (inet, "host", nbd_host);
      json_object_set_string_member (inet, "port", port);
      json_object_set_string_member (addr, "type", "inet");
      json_object_set_object_member (addr, "data", inet);
      json_object_set_object_member (start, "addr", addr);
      json_object_set_string_member (start, "tls-creds", MIGRATE_TLS_OBJECT);
      migrate_qmp_seq_add (seq, "object-add", migrate_tls_object (job->tls_dir, TRUE), FALSE);
      migrate_qmp_seq_add (seq, "nbd-server-start", start, FALSE);
      for (guint i = 0; i < vm_get_config (vm)->disks->len; i++)
        {
          g_autofree char *node = qemu_argv_disk_node (vm_get_config (vm)->disks->pdata[i], 0);
          JsonObject *export = json_object_new ();
          g_autofree char *id = g_strdup_printf ("vmherd-mig-%s", node);
          json_object_set_string_member (export, "type", "nbd");
          json_object_set_string_member (export, "id", id);
          json_object_set_string_member (export, "node-name", node);
          json_object_set_string_member (export, "name", node);
          json_object_set_boolean_member (export, "writable", TRUE);
          migrate_qmp_seq_add (seq, "block-export-add", export, FALSE);
        }
    }
  else
    migrate_qmp_seq_add (seq, "object-add", migrate_tls_object (job->tls_dir, TRUE), FALSE);
  migrate_qmp_seq_add (seq, "migrate-set-capabilities",
                       migrate_qmp_capabilities (job->postcopy ? caps_postcopy : caps_plain), FALSE);
  json_object_set_string_member (params, "tls-creds", MIGRATE_TLS_OBJECT);
  migrate_qmp_seq_add (seq, "migrate-set-parameters", params, FALSE);
  json_object_set_string_member (incoming, "uri", address);
  migrate_qmp_seq_add (seq, "migrate-incoming", incoming, FALSE);
  migrate_qmp_seq_add (seq, "query-migrate", NULL, FALSE);
  migrate_qmp_seq_run (seq, job->qmp, job->cancel, on_listening, job);
}

static void
on_source_closed (gpointer data)
{
  MigrateIn *job = data;

  job->close_watch = 0;
  if (!job->resumed)
    end_failed (job, "the link to the source %s closed", job->from);
  else
    g_hash_table_remove (job->daemon->migrations_in, job->name);   /* frees job */
}

/* Checks the VM file as `check` would, and what this host must have for it.  Returns the
 * config, or NULL with every problem in *out_problems ("; "-joined). */
static VmConfig *
check_incoming (Daemon *daemon, const char *read_path, const char *path, const char *machine,
                char **out_problems)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(VmConfig) config = vm_config_load_as (read_path, path, errors);
  g_autoptr(GPtrArray) set = g_ptr_array_new ();
  g_autoptr(GString) problems = g_string_new (NULL);
  GHashTableIter iter;
  gpointer value;
  gint64 available;

  if (config != NULL)
    {
      vm_check_host (config, daemon->host, daemon->probe, errors);
      g_hash_table_iter_init (&iter, daemon->vms);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        g_ptr_array_add (set, (gpointer) vm_get_config (value));
      g_ptr_array_add (set, config);
      vm_check_set (set, errors);
    }
  for (guint i = 0; i < errors->len; i++)
    {
      g_autofree char *text = config_error_format (errors->pdata[i]);
      g_string_append_printf (problems, "%s%s", problems->len ? "; " : "", text);
    }
  if (config != NULL && machine != NULL && config->machine == NULL
      && g_strcmp0 (machine, daemon->probe->caps.default_machine) != 0)
    g_string_append_printf (problems, "%sthe source runs machine %s, this host's QEMU makes %s "
                            "(pin machine = %s in the VM file, or upgrade QEMU alike on both)",
                            problems->len ? "; " : "", machine, daemon->probe->caps.default_machine,
                            machine);
  available = migrate_mem_available ();
  if (config != NULL && available >= 0 && (guint64) available < config->memory + (64 << 20))
    g_string_append_printf (problems, "%snot enough memory here: the guest needs %" G_GUINT64_FORMAT
                            " MiB (+64 MiB for QEMU), %" G_GINT64_FORMAT " MiB available",
                            problems->len ? "; " : "", config->memory >> 20, available >> 20);
  if (problems->len > 0)
    {
      *out_problems = g_string_free (g_steal_pointer (&problems), FALSE);
      return NULL;
    }
  return g_steal_pointer (&config);
}

/* The file checked, the disks in place: define the VM here and start its QEMU. */
static void
prepare_start (MigrateIn *job)
{
  Daemon *daemon = job->daemon;
  g_autofree char *problem = NULL;
  VmConfig *config = check_incoming (daemon, job->incoming_path, job->final_path, job->machine, &problem);
  Vm *vm;

  if (config == NULL)
    {
      g_message ("vm '%s': incoming migration from %s refused: %s", job->name, job->from, problem);
      return end_failed (job, "%s", problem);
    }
  config->checksum = g_strdup (job->checksum);
  vm = vm_new (config, daemon->host, &daemon->probe->caps, &daemon_vm_observer, daemon);
  vm_set_netlink (vm, daemon->netlink);
  g_hash_table_insert (daemon->vms, g_strdup (job->name), vm);
  daemon_broadcast_config (daemon, job->name, "defined", "incoming migration", NULL);
  vm_start_incoming (vm, job->from, on_incoming_ready, job);
}

static void make_next_disk (MigrateIn *job);

static void
on_disk_made (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateIn *job = data;
  VmDisk *disk = job->config->disks->pdata[job->next_disk];
  g_autoptr(GError) error = NULL;
  gboolean ok = disk->base != NULL ? images_overlay_create_finish (result, &error)
                                   : images_create_finish (result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (!ok)
    return end_failed (job, "%s cannot make disk '%s' (%s): %s", host_config_peer_name (job->daemon->host),
                       disk->section.name, disk->image, error->message);
  g_ptr_array_add (job->created, g_strdup (disk->image));
  job->next_disk++;
  make_next_disk (job);
}

/* --copy-storage: each disk made empty at the source's size (or as an overlay on the same
 * base, which must be here too); never over an existing file, which would be the guest's
 * own disk on shared storage. */
static void
make_next_disk (MigrateIn *job)
{
  const HostConfig *host = job->daemon->host;
  VmDisk *disk;
  g_autofree char *node = NULL;
  gint64 size = -1;
  uid_t uid;
  gid_t gid;
  g_autoptr(GError) error = NULL;

  if (job->ended)
    return;
  if (job->next_disk == job->config->disks->len)
    {
      g_clear_pointer (&job->config, vm_config_free);
      return prepare_start (job);
    }
  disk = job->config->disks->pdata[job->next_disk];
  node = qemu_argv_disk_node (disk, 0);
  for (guint i = 0; job->disks != NULL && i < json_array_get_length (job->disks); i++)
    {
      JsonObject *d = json_array_get_object_element (job->disks, i);
      if (g_strcmp0 (control_json_get_string (d, "node"), node) == 0)
        size = json_object_get_int_member_with_default (d, "size", -1);
    }
  if (g_file_test (disk->image, G_FILE_TEST_EXISTS))
    return end_failed (job, "disk '%s': %s already exists on %s; --copy-storage makes the disks "
                       "there (if this storage is shared, migrate without --copy-storage)",
                       disk->section.name, disk->image, host_config_peer_name (host));
  if (size <= 0)
    return end_failed (job, "disk '%s': the source did not send its size", disk->section.name);
  if (!qemu_spawn_owner (host, &uid, &gid, &error))
    return end_failed (job, "%s", error->message);
  if (disk->base != NULL)
    images_overlay_create_async (host->qemu_img, disk->image, disk->base,
                                 vm_image_format_to_string (disk->base_format), uid, gid, 60000,
                                 job->cancel, on_disk_made, job);
  else
    images_create_async (host->qemu_img, disk->image, vm_image_format_to_string (disk->format),
                         (guint64) size, FALSE, uid, gid, 60000, job->cancel, on_disk_made, job);
}

void
migrate_in_prepare (Daemon *daemon, PeerRequest *request, JsonObject *args)
{
  const char *name = control_json_get_string (args, "vm");
  const char *text = control_json_get_string (args, "config");
  JsonNode *disks = json_object_get_member (args, "disks");
  g_autofree char *problem = NULL, *file = NULL, *dot = NULL;
  g_autoptr(GError) error = NULL;
  MigrateIn *job;
  Vm *vm;

  if (name == NULL || text == NULL || !vm_name_is_valid (name, &problem))
    return peer_request_error (request, "InvalidArgument",
                               "migrate-prepare needs 'vm' (a valid name) and 'config' (the file's text)");
  if ((vm = daemon_find_vm (daemon, name)) != NULL)
    return peer_request_error (request, "GenericError",
                               "a VM named '%s' is already defined on %s (%s): remove it there first",
                               name, host_config_peer_name (daemon->host), vm_state_to_string (vm_get_state (vm)));
  if (g_hash_table_contains (daemon->migrations_in, name))
    return peer_request_error (request, "Busy", "vm '%s' is already coming in", name);
  file = g_strdup_printf ("%s.conf", name);
  dot = g_strdup_printf (".%s.conf.incoming", name);
  job = g_new0 (MigrateIn, 1);
  job->daemon = daemon;
  job->name = g_strdup (name);
  job->from = g_strdup (peer_request_get_peer_name (request));
  job->final_path = g_build_filename (daemon->host->vm_dir, file, NULL);
  job->incoming_path = g_build_filename (daemon->host->vm_dir, dot, NULL);
  job->checksum = g_compute_checksum_for_string (G_CHECKSUM_SHA256, text, -1);
  job->postcopy = json_object_get_boolean_member_with_default (args, "postcopy", FALSE);
  job->copy_storage = json_object_get_boolean_member_with_default (args, "copy-storage", FALSE);
  job->disks = disks != NULL && JSON_NODE_HOLDS_ARRAY (disks) ? json_array_ref (json_node_get_array (disks)) : NULL;
  job->machine = g_strdup (control_json_get_string (args, "machine"));
  job->created = g_ptr_array_new_with_free_func (g_free);
  job->cancel = g_cancellable_new ();
  if (g_file_test (job->final_path, G_FILE_TEST_EXISTS))
    {
      peer_request_error (request, "GenericError", "%s already exists on %s: remove it there first",
                          job->final_path, host_config_peer_name (daemon->host));
      return migrate_in_free (job);
    }
  if (!g_file_set_contents (job->incoming_path, text, -1, &error))
    {
      peer_request_error (request, "GenericError", "%s cannot take the VM file: %s",
                          host_config_peer_name (daemon->host), error->message);
      return migrate_in_free (job);
    }
  /* From here on, a failure answers the request and removes every trace (cleanup()). */
  job->prepare = request;
  job->connection = peer_connection_ref (peer_request_get_connection (request));
  job->close_watch = peer_connection_watch_close (job->connection, on_source_closed, job);
  g_hash_table_insert (daemon->migrations_in, g_strdup (name), job);
  if (!job->copy_storage)
    return prepare_start (job);
  {
    g_autoptr(ConfigErrors) errors = config_errors_new ();
    job->config = vm_config_load_as (job->incoming_path, job->final_path, errors);
    if (job->config == NULL)
      {
        g_autofree char *first = config_error_format (errors->pdata[0]);
        return end_failed (job, "%s", first);
      }
  }
  make_next_disk (job);
}

void
migrate_in_finish (Daemon *daemon, PeerRequest *request, JsonObject *args)
{
  const char *name = control_json_get_string (args, "vm");
  MigrateIn *job = name ? g_hash_table_lookup (daemon->migrations_in, name) : NULL;
  Vm *vm = name ? daemon_find_vm (daemon, name) : NULL;

  if (job == NULL)
    {
      /* Resumed already (the job is over) or never here. */
      if (vm != NULL && vm_get_state (vm) == VM_STATE_RUNNING)
        {
          JsonObject *r = json_object_new ();
          JsonNode *node;
          json_object_set_int_member (r, "resumed-us", 0);
          node = json_node_init_object (json_node_alloc (), r);
          json_object_unref (r);
          return peer_request_return (request, node);
        }
      return peer_request_error (request, "GenericError", "vm '%s' is not running on %s", name ? name : "?",
                                 host_config_peer_name (daemon->host));
    }
  if (job->ended)
    return peer_request_error (request, "GenericError", "%s", job->failure);
  if (job->finish != NULL)
    return peer_request_error (request, "Busy", "migrate-finish of '%s' is already waiting", name);
  job->finish = request;
  if (job->completed && !job->cont_sent)
    run_guest (job);
  if (job->resumed)
    {
      answer_finish (job);
      g_hash_table_remove (daemon->migrations_in, name);   /* frees job */
    }
}

void
migrate_in_abort (Daemon *daemon, PeerRequest *request, JsonObject *args)
{
  const char *name = control_json_get_string (args, "vm");
  MigrateIn *job = name ? g_hash_table_lookup (daemon->migrations_in, name) : NULL;

  if (job != NULL && !job->resumed)
    end_failed (job, "the source %s aborted the migration", job->from);
  peer_request_return (request, NULL);
}

void
migrate_in_cleanup_leftovers (Daemon *daemon)
{
  g_autoptr(GDir) dir = g_dir_open (daemon->host->vm_dir, 0, NULL);
  const char *file;

  while (dir != NULL && (file = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *name = NULL, *path = NULL, *run = NULL, *pid_path = NULL, *pid_text = NULL;
      gint64 pid;

      if (file[0] != '.' || !g_str_has_suffix (file, ".conf.incoming"))
        continue;
      name = g_strndup (file + 1, strlen (file) - 1 - strlen (".conf.incoming"));
      path = g_build_filename (daemon->host->vm_dir, file, NULL);
      run = qemu_instance_dir (daemon->host, name);
      pid_path = g_build_filename (run, "pid", NULL);
      if (g_file_get_contents (pid_path, &pid_text, NULL, NULL)
          && g_ascii_string_to_signed (g_strstrip (pid_text), 10, 2, G_MAXINT, &pid, NULL))
        {
          g_autofree char *cmdline_path = g_strdup_printf ("/proc/%d/cmdline", (int) pid);
          g_autofree char *cmdline = NULL;
          gsize len;
          /* Only a QEMU that was waiting for this guest's stream (its argv says so). */
          if (g_file_get_contents (cmdline_path, &cmdline, &len, NULL)
              && memmem (cmdline, len, "-incoming\0defer", 15) != NULL
              && memmem (cmdline, len, run, strlen (run)) != NULL)
            {
              g_message ("vm '%s': killing QEMU pid %d of an unfinished incoming migration",
                         name, (int) pid);
              kill ((pid_t) pid, SIGKILL);
            }
          g_unlink (pid_path);
        }
      g_message ("vm '%s': removing %s, left by an unfinished incoming migration", name, path);
      g_unlink (path);
    }
}
