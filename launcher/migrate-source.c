/* migrate-source.c: the source side of a live migration (migrate-source.h). */
#include "launcher/migrate-source.h"

#include <glib/gstdio.h>
#include <string.h>

#include "launcher/migrate-qmp.h"
#include "launcher/peer-link.h"

#define POLL_MS 500
#define FIRST_POLL_MS 100              /* until the first report of an active stream */
#define STALL_POLLS 3                  /* remaining not shrinking this many polls: escalate */
#define PREPARE_TIMEOUT_MS 120000      /* the destination checks images and starts QEMU */
#define FINISH_TIMEOUT_MS 60000
#define ROLLBACK_WAIT_MS 10000
#define FINAL_RETRY_MS 20              /* query-migrate said total-time 0: ask again after */
#define FINAL_TRIES 10

static const char *const step_names[] = { "connect", "prepare", "setup", "storage", "transfer", "switchover", "done" };

const char *
migrate_step_to_string (MigrateStep step)
{
  return step_names[step];
}

struct _MigrateOut
{
  Daemon *daemon;
  char *name;
  char *to;
  gboolean postcopy, postcopy_started;
  gboolean copy_storage;        /* disks go over NBD + blockdev-mirror first (QMP-NOTES 2.12) */
  GPtrArray *disk_nodes;        /* the top node of each disk (char *) */
  guint mirrors_waiting;        /* jobs not yet READY (mirroring) or not yet COMPLETED */
  gboolean mirrors_started;
  MigrateProgressFunc progress;
  MigrateOutDone done;
  gpointer user_data;

  MigrateStep step;
  gboolean was_running;
  gboolean migrate_sent;        /* `migrate` went out: a failure needs migrate_cancel */
  gboolean setup_done;          /* capabilities, TLS, parameters set here (during prepare) */
  gboolean ending;
  char *config_text;
  char *config_path;
  char *tls_dir;
  char *address;                /* the destination's stream address */
  char *uri;
  gint64 nbd_port;
  PeerClient *peer;
  GCancellable *cancel;         /* everything of this job */
  QmpClient *qmp;               /* the VM's, borrowed while the VM is MIGRATING */
  guint subscription;
  guint poll_timer;
  gboolean poll_busy;
  gboolean fast_polling;        /* FIRST_POLL_MS until the stream is seen active */
  gint64 started;               /* monotonic us */
  gint64 deadline;              /* monotonic us */
  gint64 downtime_limit;
  gint64 last_remaining;
  guint stalled_polls;
  gint64 last_transferred;
  gint64 moved_at;              /* monotonic us when bytes last went over */
  gint64 stop_us;               /* QEMU's STOP event on the source, wall clock us; 0 */
  JsonObject *final;            /* query-migrate at completion */
  guint final_tries;
  GError *error;                /* the failure being rolled back */
  gint64 rollback_deadline;
};

static void finish_job (MigrateOut *job, JsonObject *result);
static void fail (MigrateOut *job, const char *format, ...) G_GNUC_PRINTF (2, 3);
static void send_migrate (MigrateOut *job);

static Vm *
job_vm (MigrateOut *job)
{
  return daemon_find_vm (job->daemon, job->name);
}

static void
job_free (MigrateOut *job)
{
  g_clear_handle_id (&job->poll_timer, g_source_remove);
  if (job->subscription != 0 && job->qmp != NULL)
    qmp_client_unsubscribe (job->qmp, job->subscription);
  if (job->cancel != NULL)
    g_cancellable_cancel (job->cancel);
  g_clear_object (&job->cancel);
  if (job->peer != NULL)
    peer_client_set_closed_func (job->peer, NULL, NULL);
  g_clear_pointer (&job->peer, peer_client_free);
  migrate_tls_dir_remove (job->tls_dir);
  g_free (job->tls_dir);
  g_free (job->address);
  g_free (job->uri);
  g_free (job->name);
  g_free (job->to);
  g_free (job->config_text);
  g_free (job->config_path);
  g_clear_pointer (&job->disk_nodes, g_ptr_array_unref);
  g_clear_pointer (&job->final, json_object_unref);
  g_clear_error (&job->error);
  g_free (job);
}

const char *
migrate_out_get_destination (MigrateOut *job)
{
  return job->to;
}

static gint64
member_int (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n))
    return 0;
  if (json_node_get_value_type (n) == G_TYPE_STRING)
    return g_ascii_strtoll (json_node_get_string (n), NULL, 10);
  if (json_node_get_value_type (n) == G_TYPE_DOUBLE)
    return (gint64) json_node_get_double (n);
  return json_node_get_int (n);
}

static JsonObject *
member_object (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;

  return n != NULL && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

/* ---- the end: success, or rollback ---- */

static void
notify_peer_abort (MigrateOut *job)
{
  g_autoptr(JsonObject) args = json_object_new ();

  /* Closing the link makes the destination clean up anyway; saying so is faster. */
  if (job->peer == NULL)
    return;
  json_object_set_string_member (args, "vm", job->name);
  peer_client_call_async (job->peer, "migrate-abort", args, 5000, NULL, NULL, NULL, NULL, NULL);
}

static char *
mirror_id (const char *node)
{
  return g_strdup_printf ("vmherd-mig-%s", node);
}

/* The mirror jobs (force: a READY mirror would otherwise complete) and NBD targets of a
 * failed storage copy: the source's own disks never changed. */
static void
drop_mirrors (MigrateOut *job)
{
  if (!job->mirrors_started || job->qmp == NULL)
    return;
  job->mirrors_started = FALSE;
  for (guint i = 0; i < job->disk_nodes->len; i++)
    {
      g_autofree char *id = mirror_id (job->disk_nodes->pdata[i]);
      g_autoptr(JsonObject) cancel = json_object_new ();
      g_autoptr(JsonObject) del = json_object_new ();

      json_object_set_string_member (cancel, "device", id);
      json_object_set_boolean_member (cancel, "force", TRUE);
      qmp_client_execute_async (job->qmp, "block-job-cancel", cancel, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                                NULL, NULL, NULL);
      json_object_set_string_member (del, "node-name", id);
      qmp_client_execute_async (job->qmp, "blockdev-del", del, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                                NULL, NULL, NULL);
    }
}

static void
rollback_done (MigrateOut *job, gboolean running)
{
  Vm *vm = job_vm (job);
  g_autofree char *where = NULL;

  drop_mirrors (job);
  if (vm != NULL)
    vm_migration_rolled_back (vm, running, job->error->message);
  where = g_strdup_printf ("%s; the guest %s on this host", job->error->message,
                           vm == NULL ? "is gone"
                           : running ? "keeps running" : "stays paused");
  g_free (job->error->message);
  job->error->message = g_steal_pointer (&where);
  notify_peer_abort (job);
  finish_job (job, NULL);
}

static void
on_rollback_cont (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;
  if (reply == NULL)
    g_message ("vm '%s': cont after the failed migration: %s", job->name, error->message);
  rollback_done (job, reply != NULL);
}

static void
on_rollback_status (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);
  gboolean running;

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;
  running = reply != NULL && JSON_NODE_HOLDS_OBJECT (reply)
            && json_object_get_boolean_member_with_default (json_node_get_object (reply), "running", FALSE);
  if (running || !job->was_running || job->qmp == NULL || job_vm (job) == NULL
      || vm_get_qmp (job_vm (job)) == NULL)
    return rollback_done (job, running);
  /* It ran before we started: it runs again (QMP-NOTES 2.6: a failed switchover without
   * return-path leaves it in postmigrate; `cont` brings it back). */
  qmp_client_execute_async (job->qmp, "cont", NULL, NULL, 0, MIGRATE_QMP_TIMEOUT_MS, job->cancel,
                            on_rollback_cont, job);
}

static void rollback_wait (MigrateOut *job);

static void
on_rollback_query (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);
  const char *status = reply && JSON_NODE_HOLDS_OBJECT (reply)
                       ? json_object_get_string_member_with_default (json_node_get_object (reply), "status", "none")
                       : "unknown";

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;
  if ((strcmp (status, "active") == 0 || strcmp (status, "setup") == 0
       || strcmp (status, "cancelling") == 0 || strcmp (status, "device") == 0
       || strcmp (status, "pre-switchover") == 0)
      && g_get_monotonic_time () < job->rollback_deadline)
    {
      rollback_wait (job);
      return;
    }
  if (job->qmp == NULL)
    return rollback_done (job, FALSE);
  qmp_client_execute_async (job->qmp, "query-status", NULL, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                            job->cancel, on_rollback_status, job);
}

static gboolean
on_rollback_tick (gpointer data)
{
  MigrateOut *job = data;

  job->poll_timer = 0;
  if (job->qmp == NULL)
    {
      rollback_done (job, FALSE);
      return G_SOURCE_REMOVE;
    }
  qmp_client_execute_async (job->qmp, "query-migrate", NULL, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                            job->cancel, on_rollback_query, job);
  return G_SOURCE_REMOVE;
}

static void
rollback_wait (MigrateOut *job)
{
  job->poll_timer = g_timeout_add (100, on_rollback_tick, job);
}

static void
fail (MigrateOut *job, const char *format, ...)
{
  g_autofree char *what = NULL;
  va_list ap;
  Vm *vm = job_vm (job);

  if (job->ending)
    return;
  job->ending = TRUE;
  va_start (ap, format);
  what = g_strdup_vprintf (format, ap);
  va_end (ap);
  job->error = g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED, "migration of '%s' to %s failed at step '%s': %s",
                            job->name, job->to, step_names[job->step], what);
  g_message ("%s", job->error->message);
  g_clear_handle_id (&job->poll_timer, g_source_remove);
  /* Only a QEMU still migrating here is ours to roll back. */
  if (vm == NULL || vm_get_state (vm) != VM_STATE_MIGRATING || vm_get_qmp (vm) == NULL)
    {
      notify_peer_abort (job);
      return finish_job (job, NULL);
    }
  job->rollback_deadline = g_get_monotonic_time () + ROLLBACK_WAIT_MS * 1000;
  if (job->migrate_sent)
    qmp_client_execute_async (job->qmp, "migrate_cancel", NULL, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                              job->cancel, NULL, NULL);
  rollback_wait (job);
}

static void
finish_job (MigrateOut *job, JsonObject *result)
{
  if (result != NULL)
    {
      job->daemon->migration_stats.out_ok++;
      job->daemon->migration_stats.last_total_ms = json_object_get_int_member (result, "total-ms");
      job->daemon->migration_stats.last_downtime_ms = json_object_get_int_member (result, "downtime-ms");
    }
  else
    job->daemon->migration_stats.out_failed++;
  g_hash_table_steal (job->daemon->migrations_out, job->name);
  job->done (job->error, result, job->user_data);
  job_free (job);
}

/* ---- switchover ---- */

static void
moved (MigrateOut *job, JsonNode *finish_reply)
{
  JsonObject *f = finish_reply && JSON_NODE_HOLDS_OBJECT (finish_reply) ? json_node_get_object (finish_reply) : NULL;
  gint64 resumed_us = f ? member_int (f, "resumed-us") : 0;
  g_autoptr(JsonObject) result = json_object_new ();
  JsonObject *ram = member_object (job->final, "ram");
  Vm *vm = job_vm (job);
  gint64 downtime_ms = resumed_us > 0 && job->stop_us > 0 ? (resumed_us - job->stop_us + 500) / 1000 : -1;

  job->step = MIGRATE_STEP_DONE;
  job->ending = TRUE;
  json_object_set_string_member (result, "vm", job->name);
  json_object_set_string_member (result, "to", job->to);
  json_object_set_int_member (result, "total-ms", (g_get_monotonic_time () - job->started) / 1000);
  json_object_set_int_member (result, "downtime-ms", downtime_ms);
  json_object_set_int_member (result, "qemu-total-ms", member_int (job->final, "total-time"));
  json_object_set_int_member (result, "qemu-downtime-ms", member_int (job->final, "downtime"));
  json_object_set_int_member (result, "setup-ms", member_int (job->final, "setup-time"));
  json_object_set_int_member (result, "transferred", member_int (ram, "transferred"));
  json_object_set_int_member (result, "passes", member_int (ram, "dirty-sync-count"));
  g_message ("vm '%s': migrated to %s in %" G_GINT64_FORMAT " ms, downtime %" G_GINT64_FORMAT
             " ms (QEMU says %" G_GINT64_FORMAT " ms), %" G_GINT64_FORMAT " bytes", job->name, job->to,
             json_object_get_int_member (result, "total-ms"), downtime_ms,
             member_int (job->final, "downtime"), member_int (ram, "transferred"));
  /* The guest is the destination's: its file leaves this vm-dir, so that no reboot of this
   * host starts it twice.  The destination wrote its copy before answering. */
  if (g_unlink (job->config_path) < 0)
    g_warning ("vm '%s': cannot remove %s after migrating to %s: %s (remove it by hand, or "
               "this host would start the guest again at boot)", job->name, job->config_path,
               job->to, g_strerror (errno));
  if (vm != NULL)
    vm_migration_moved (vm, job->to);
  finish_job (job, result);
}

static void
on_finish_reply (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = peer_client_call_finish (job->peer, result, &error);
  Vm *vm;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (reply != NULL)
    return moved (job, reply);
  if (g_error_matches (error, PEER_ERROR, PEER_ERROR_REFUSED))
    {
      /* The destination says it does not run the guest (and killed its QEMU): ours is the
       * only copy, paused in postmigrate.  Resume it. */
      fail (job, "the destination could not resume the guest: %s", error->message);
      return;
    }
  /* Nobody knows whether the destination resumed it: never run it twice.  It stays paused
   * here until an operator has looked. */
  job->ending = TRUE;
  job->error = g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                            "migration of '%s' to %s: the switchover is unconfirmed (%s); the guest is "
                            "PAUSED here and may be running on %s: check there (vmherd status %s on %s), "
                            "then either remove its file here or resume it here (vmherd resume %s)",
                            job->name, job->to, error->message, job->to, job->name, job->to, job->name);
  g_warning ("%s", job->error->message);
  vm = job_vm (job);
  if (vm != NULL)
    vm_migration_rolled_back (vm, FALSE, "switchover unconfirmed");
  finish_job (job, NULL);
}

static void
switchover (MigrateOut *job)
{
  g_autoptr(JsonObject) args = json_object_new ();

  json_object_set_string_member (args, "vm", job->name);
  peer_client_call_async (job->peer, "migrate-finish", args, FINISH_TIMEOUT_MS, NULL, NULL,
                          job->cancel, on_finish_reply, job);
}

static gboolean on_final_tick (gpointer data);

static void
on_final_query (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;
  if (reply != NULL && JSON_NODE_HOLDS_OBJECT (reply))
    {
      g_clear_pointer (&job->final, json_object_unref);
      job->final = json_object_ref (json_node_get_object (reply));
    }
  /* QEMU 7.2 may report total-time 0 right at completion (QMP-NOTES 2.5): ask again, a
   * moment later, a few times (the guest already runs there: this only delays the answer). */
  if (job->final != NULL && member_int (job->final, "total-time") == 0 && ++job->final_tries < FINAL_TRIES)
    {
      job->poll_timer = g_timeout_add (FINAL_RETRY_MS, on_final_tick, job);
      return;
    }
  switchover (job);
}

static gboolean
on_final_tick (gpointer data)
{
  MigrateOut *job = data;

  job->poll_timer = 0;
  qmp_client_execute_async (job->qmp, "query-migrate", NULL, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                            job->cancel, on_final_query, job);
  return G_SOURCE_REMOVE;
}

static void
completed (MigrateOut *job)
{
  if (job->step >= MIGRATE_STEP_SWITCHOVER || job->ending)
    return;
  job->step = MIGRATE_STEP_SWITCHOVER;
  g_clear_handle_id (&job->poll_timer, g_source_remove);
  if (job->mirrors_started)
    {
      /* The source is stopped: cancelling a READY mirror completes it without a pivot, and
       * its last writes are then on the destination's disk (QMP-NOTES 2.12 step 6). */
      job->mirrors_waiting = job->disk_nodes->len;
      for (guint i = 0; i < job->disk_nodes->len; i++)
        {
          g_autofree char *id = mirror_id (job->disk_nodes->pdata[i]);
          g_autoptr(JsonObject) args = json_object_new ();
          json_object_set_string_member (args, "device", id);
          qmp_client_execute_async (job->qmp, "block-job-cancel", args, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                                    job->cancel, NULL, NULL);
        }
      return;                   /* on_qmp_event() goes on at the last BLOCK_JOB_COMPLETED */
    }
  /* The stats first (on_final_query() asks again while 7.2 has not filled them in), then
   * the destination. */
  on_final_tick (job);
}

/* BLOCK_JOB_* of our mirrors. */
static void
on_mirror_event (MigrateOut *job, const QmpMessage *event)
{
  const char *device = json_object_get_string_member_with_default (event->data, "device", "");
  const char *error = json_object_get_string_member_with_default (event->data, "error", NULL);

  if (!g_str_has_prefix (device, "vmherd-mig-") || !job->mirrors_started || job->ending)
    return;
  if (strcmp (event->event, "BLOCK_JOB_READY") == 0 && job->step == MIGRATE_STEP_STORAGE)
    {
      if (--job->mirrors_waiting == 0)
        send_migrate (job);
    }
  else if (strcmp (event->event, "BLOCK_JOB_ERROR") == 0)
    fail (job, "copying disk node %s: %s error (%s)", device + 11,
          json_object_get_string_member_with_default (event->data, "operation", "I/O"),
          json_object_get_string_member_with_default (event->data, "action", "?"));
  else if (strcmp (event->event, "BLOCK_JOB_COMPLETED") == 0 && job->step == MIGRATE_STEP_SWITCHOVER
           && error == NULL)
    {
      if (--job->mirrors_waiting == 0)
        on_final_tick (job);
    }
  else if (strcmp (event->event, "BLOCK_JOB_COMPLETED") == 0 || strcmp (event->event, "BLOCK_JOB_CANCELLED") == 0)
    fail (job, "copying disk node %s stopped: %s", device + 11, error ? error : "cancelled");
}

/* ---- transfer: events, progress, escalation ---- */

static void
on_failed_query (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);
  const char *desc = reply && JSON_NODE_HOLDS_OBJECT (reply)
                     ? json_object_get_string_member_with_default (json_node_get_object (reply), "error-desc", NULL)
                     : NULL;

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;
  job->migrate_sent = FALSE;    /* nothing left to cancel */
  fail (job, "QEMU: %s", desc ? desc : "the migration failed (no error-desc)");
}

static void
on_qmp_event (QmpClient *client G_GNUC_UNUSED, const QmpMessage *event, gpointer data)
{
  MigrateOut *job = data;
  const char *status;

  if (strcmp (event->event, "STOP") == 0 && event->timestamp_seconds >= 0)
    job->stop_us = event->timestamp_seconds * G_USEC_PER_SEC + event->timestamp_microseconds;
  if (g_str_has_prefix (event->event, "BLOCK_JOB_") && event->data != NULL)
    return on_mirror_event (job, event);
  if (strcmp (event->event, "MIGRATION") != 0 || event->data == NULL || job->ending)
    return;
  status = json_object_get_string_member_with_default (event->data, "status", "");
  if (strcmp (status, "completed") == 0)
    completed (job);
  else if (strcmp (status, "failed") == 0)
    qmp_client_execute_async (job->qmp, "query-migrate", NULL, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                              job->cancel, on_failed_query, job);
  else if (strcmp (status, "cancelled") == 0 && !job->ending)
    {
      job->migrate_sent = FALSE;
      fail (job, "QEMU cancelled the migration");
    }
}

static void
set_downtime (MigrateOut *job)
{
  g_autoptr(JsonObject) args = json_object_new ();

  json_object_set_int_member (args, "downtime-limit", job->downtime_limit);
  qmp_client_execute_async (job->qmp, "migrate-set-parameters", args, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                            job->cancel, NULL, NULL);
}

/* Remaining memory stopped shrinking: allow a longer pause, step by step, then postcopy
 * when asked for (Proxmox doubles the limit the same way). */
static void
escalate (MigrateOut *job, gint64 remaining)
{
  const HostConfig *host = job->daemon->host;

  if (remaining < job->last_remaining || job->last_remaining == 0)
    job->stalled_polls = 0;
  else
    job->stalled_polls++;
  job->last_remaining = remaining;
  if (job->stalled_polls < STALL_POLLS)
    return;
  job->stalled_polls = 0;
  if (job->downtime_limit < host->migrate_max_downtime_ms)
    {
      job->downtime_limit = MIN (job->downtime_limit * 2, host->migrate_max_downtime_ms);
      g_message ("vm '%s': migration not converging (%" G_GINT64_FORMAT " bytes remain): "
                 "downtime limit raised to %" G_GINT64_FORMAT " ms", job->name, remaining,
                 job->downtime_limit);
      set_downtime (job);
    }
  else if (job->postcopy && !job->postcopy_started)
    {
      job->postcopy_started = TRUE;
      g_message ("vm '%s': not converging at the maximum downtime: switching to postcopy", job->name);
      qmp_client_execute_async (job->qmp, "migrate-start-postcopy", NULL, NULL, 0,
                                MIGRATE_QMP_TIMEOUT_MS, job->cancel, NULL, NULL);
    }
}

static gboolean on_poll_tick (gpointer data);

/* A progress line for the CLI: {"vm", "to", "status", "transferred", "remaining", "total",
 * "elapsed-ms"}; the caller adds what it knows besides. */
static JsonObject *
progress_new (MigrateOut *job, const char *status, gint64 transferred, gint64 remaining, gint64 total)
{
  JsonObject *p = json_object_new ();

  json_object_set_string_member (p, "vm", job->name);
  json_object_set_string_member (p, "to", job->to);
  json_object_set_string_member (p, "status", status);
  json_object_set_int_member (p, "transferred", transferred);
  json_object_set_int_member (p, "remaining", remaining);
  json_object_set_int_member (p, "total", total);
  json_object_set_int_member (p, "elapsed-ms", (g_get_monotonic_time () - job->started) / 1000);
  return p;
}

/* Sends the progress line (taken), then gives up on a stream that stopped moving or ran
 * out of time; TRUE when the job failed. */
static gboolean
progress_check (MigrateOut *job, JsonObject *p, const char *what, gint64 transferred, gint64 remaining)
{
  const HostConfig *host = job->daemon->host;
  gint64 now = g_get_monotonic_time ();

  /* "setup" says nothing yet (QEMU's TLS handshake): the first line is of bytes going over,
   * soon after they start (on_migrate_sent() polls fast until then). */
  if (job->progress != NULL && g_strcmp0 (control_json_get_string (p, "status"), "setup") != 0)
    job->progress (p, job->user_data);
  json_object_unref (p);
  if (transferred > job->last_transferred || job->moved_at == 0)
    {
      job->last_transferred = transferred;
      job->moved_at = now;
    }
  else if (now - job->moved_at > host->migrate_stall_timeout_ms * 1000)
    {
      fail (job, "no %s went over for %" G_GINT64_FORMAT " s (is the link to %s down?)", what,
            host->migrate_stall_timeout_ms / 1000, job->to);
      return TRUE;
    }
  if (now > job->deadline)
    {
      fail (job, "not done after %" G_GINT64_FORMAT " s (the [migration] timeout); %" G_GINT64_FORMAT
            " bytes of %s remained", host->migrate_timeout_ms / 1000, remaining, what);
      return TRUE;
    }
  return FALSE;
}

static void
on_poll_reply (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);
  JsonObject *p, *q, *ram;
  const char *status;
  gint64 remaining, mbps_bytes;

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;
  job->poll_busy = FALSE;
  if (job->ending || job->step != MIGRATE_STEP_TRANSFER || reply == NULL || !JSON_NODE_HOLDS_OBJECT (reply))
    return;
  q = json_node_get_object (reply);
  ram = member_object (q, "ram");
  status = json_object_get_string_member_with_default (q, "status", "?");
  if (strcmp (status, "completed") == 0)
    return completed (job);
  if (strcmp (status, "failed") == 0)
    {
      job->migrate_sent = FALSE;
      return fail (job, "QEMU: %s", json_object_get_string_member_with_default (q, "error-desc", "failed"));
    }
  remaining = member_int (ram, "remaining");
  mbps_bytes = (gint64) (member_int (ram, "mbps") * 1000000 / 8);
  p = progress_new (job, status, member_int (ram, "transferred"), remaining, member_int (ram, "total"));
  json_object_set_int_member (p, "dirty-rate", member_int (ram, "dirty-pages-rate") * MAX (member_int (ram, "page-size"), 4096));
  json_object_set_int_member (p, "pass", member_int (ram, "dirty-sync-count"));
  json_object_set_int_member (p, "mbps", member_int (ram, "mbps"));
  json_object_set_int_member (p, "eta-ms", mbps_bytes > 0 ? remaining * 1000 / mbps_bytes : -1);
  json_object_set_int_member (p, "downtime-limit-ms", job->downtime_limit);
  if (job->fast_polling && strcmp (status, "setup") != 0)
    {
      job->fast_polling = FALSE;
      g_clear_handle_id (&job->poll_timer, g_source_remove);
      job->poll_timer = g_timeout_add (POLL_MS, on_poll_tick, job);
    }
  if (progress_check (job, p, "data", member_int (ram, "transferred"), remaining))
    return;
  if (strcmp (status, "active") == 0)
    escalate (job, remaining);
}

static void on_jobs_reply (GObject *source, GAsyncResult *result, gpointer data);

/* One poll at a time: of the disk mirrors while they copy, of the memory stream after. */
static gboolean
on_poll_tick (gpointer data)
{
  MigrateOut *job = data;
  gboolean storage = job->step == MIGRATE_STEP_STORAGE;

  if (!job->poll_busy)
    {
      job->poll_busy = TRUE;
      qmp_client_execute_async (job->qmp, storage ? "query-block-jobs" : "query-migrate", NULL, NULL, 0,
                                MIGRATE_QMP_TIMEOUT_MS, job->cancel,
                                storage ? on_jobs_reply : on_poll_reply, job);
    }
  return G_SOURCE_CONTINUE;
}

static void
on_migrate_sent (JsonNode *reply G_GNUC_UNUSED, const char *failed_command, const GError *error,
                 gpointer data)
{
  MigrateOut *job = data;

  if (job->ending)
    return;
  if (failed_command != NULL)
    return fail (job, "QMP %s: %s", failed_command, error->message);
  job->migrate_sent = TRUE;
  job->step = MIGRATE_STEP_TRANSFER;
  job->fast_polling = TRUE;
  job->poll_timer = g_timeout_add (FIRST_POLL_MS, on_poll_tick, job);
}

static void
send_migrate (MigrateOut *job)
{
  MigrateQmpSeq *seq = migrate_qmp_seq_new ();
  JsonObject *migrate = json_object_new ();

  g_clear_handle_id (&job->poll_timer, g_source_remove);
  job->step = MIGRATE_STEP_TRANSFER;
  json_object_set_string_member (migrate, "uri", job->uri);
  migrate_qmp_seq_add (seq, "migrate", migrate, FALSE);
  g_message ("vm '%s': migrating to %s over %s (TLS)", job->name, job->to, job->uri);
  migrate_qmp_seq_run (seq, job->qmp, job->cancel, on_migrate_sent, job);
}

/* ---- storage: every disk mirrored into the destination's NBD export ---- */

static void
on_jobs_reply (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);
  gint64 done = 0, total = 0;

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;
  job->poll_busy = FALSE;
  if (job->ending || job->step != MIGRATE_STEP_STORAGE || reply == NULL || !JSON_NODE_HOLDS_ARRAY (reply))
    return;
  for (guint i = 0; i < json_array_get_length (json_node_get_array (reply)); i++)
    {
      JsonObject *j = json_array_get_object_element (json_node_get_array (reply), i);
      if (!g_str_has_prefix (control_json_get_string (j, "device") ?: "", "vmherd-mig-"))
        continue;
      done += member_int (j, "offset");
      total += member_int (j, "len");
    }
  progress_check (job, progress_new (job, "storage", done, total - done, total), "disk data", done,
                  total - done);
}

static void
on_mirrors_started (JsonNode *reply G_GNUC_UNUSED, const char *failed_command, const GError *error,
                    gpointer data)
{
  MigrateOut *job = data;

  if (job->ending)
    return;
  if (failed_command != NULL)
    return fail (job, "QMP %s: %s", failed_command, error->message);
  job->moved_at = 0;
  job->last_transferred = 0;
  job->poll_timer = g_timeout_add (POLL_MS, on_poll_tick, job);
}

static void
start_mirrors (MigrateOut *job)
{
  MigrateQmpSeq *seq = migrate_qmp_seq_new ();
  const VmConfig *config = vm_get_config (job_vm (job));

  job->step = MIGRATE_STEP_STORAGE;
  job->mirrors_started = TRUE;
  job->mirrors_waiting = job->disk_nodes->len;
  for (guint i = 0; i < job->disk_nodes->len; i++)
    {
      const char *node = job->disk_nodes->pdata[i];
      const VmDisk *disk = config->disks->pdata[i];
      g_autofree char *id = mirror_id (node);
      g_autofree char *port = g_strdup_printf ("%" G_GINT64_FORMAT, job->nbd_port);
      JsonObject *del = json_object_new ();
      JsonObject *add = json_object_new ();
      JsonObject *server = json_object_new ();
      JsonObject *mirror = json_object_new ();

      json_object_set_string_member (del, "node-name", id);
      migrate_qmp_seq_add (seq, "blockdev-del", del, TRUE);   /* a failed earlier attempt's */
      json_object_set_string_member (add, "driver", "nbd");
      json_object_set_string_member (add, "node-name", id);
      json_object_set_string_member (server, "type", "inet");
      json_object_set_string_member (server, "host", job->address);
      json_object_set_string_member (server, "port", port);
      json_object_set_object_member (add, "server", server);
      json_object_set_string_member (add, "export", node);
      json_object_set_string_member (add, "tls-creds", MIGRATE_TLS_OBJECT);
      json_object_set_string_member (add, "tls-hostname", job->to);
      migrate_qmp_seq_add (seq, "blockdev-add", add, FALSE);
      json_object_set_string_member (mirror, "job-id", id);
      json_object_set_string_member (mirror, "device", node);
      json_object_set_string_member (mirror, "target", id);
      /* Over a base image (on both hosts), only the overlay's own data goes. */
      json_object_set_string_member (mirror, "sync", disk->base != NULL ? "top" : "full");
      /* Once READY, guest writes go to both sides at once, so the copy converges. */
      json_object_set_string_member (mirror, "copy-mode", "write-blocking");
      migrate_qmp_seq_add (seq, "blockdev-mirror", mirror, FALSE);
    }
  g_message ("vm '%s': copying %u disk(s) to %s over NBD (TLS)", job->name, job->disk_nodes->len, job->to);
  migrate_qmp_seq_run (seq, job->qmp, job->cancel, on_mirrors_started, job);
}

/* Both the destination's answer (job->uri) and this QEMU's setup are in: the stream goes. */
static void
stream_go (MigrateOut *job)
{
  if (job->copy_storage && job->disk_nodes->len > 0)
    start_mirrors (job);
  else
    send_migrate (job);
}

static void
on_setup_done (JsonNode *reply G_GNUC_UNUSED, const char *failed_command, const GError *error,
               gpointer data)
{
  MigrateOut *job = data;

  if (job->ending)
    return;
  if (failed_command != NULL)
    return fail (job, "QMP %s on this host's QEMU: %s", failed_command, error->message);
  job->setup_done = TRUE;
  if (job->uri != NULL)
    stream_go (job);
}

static void
start_stream (MigrateOut *job, const char *address, gint64 port, gint64 nbd_port)
{
  job->step = MIGRATE_STEP_SETUP;
  job->address = g_strdup (address);
  job->nbd_port = nbd_port;
  job->uri = strchr (address, ':') ? g_strdup_printf ("tcp:[%s]:%" G_GINT64_FORMAT, address, port)
                                   : g_strdup_printf ("tcp:%s:%" G_GINT64_FORMAT, address, port);
  if (job->setup_done)
    stream_go (job);
}

/* Capabilities, TLS and parameters of this QEMU: none depends on the destination's answer,
 * so they are set while it prepares (it starts a QEMU: ~100 ms and more) instead of after.
 * FALSE when it failed at once (the job may be gone then). */
static gboolean
start_setup (MigrateOut *job)
{
  const HostConfig *host = job->daemon->host;
  const char *caps_plain[] = { "events", "return-path", "auto-converge", NULL };
  const char *caps_postcopy[] = { "events", "return-path", "auto-converge", "postcopy-ram", NULL };
  g_autoptr(GError) error = NULL;
  MigrateQmpSeq *seq;
  JsonObject *params, *del;

  job->tls_dir = migrate_tls_dir_create (host, job->name, FALSE, &error);
  if (job->tls_dir == NULL)
    {
      fail (job, "%s", error->message);
      return FALSE;
    }
  seq = migrate_qmp_seq_new ();
  params = json_object_new ();
  del = json_object_new ();
  job->downtime_limit = host->migrate_downtime_ms;
  migrate_qmp_seq_add (seq, "migrate-set-capabilities",
                       migrate_qmp_capabilities (job->postcopy ? caps_postcopy : caps_plain), FALSE);
  json_object_set_string_member (del, "id", MIGRATE_TLS_OBJECT);
  migrate_qmp_seq_add (seq, "object-del", del, TRUE);   /* a failed earlier attempt's */
  migrate_qmp_seq_add (seq, "object-add", migrate_tls_object (job->tls_dir, FALSE), FALSE);
  /* 0 = no cap: QEMU's default is 128 MiB/s (QMP-NOTES 2.3), so say so explicitly. */
  json_object_set_int_member (params, "max-bandwidth", host->migrate_bandwidth_mbit > 0
                                                       ? host->migrate_bandwidth_mbit * 1000000 / 8
                                                       : G_GINT64_CONSTANT (1) << 40);
  json_object_set_int_member (params, "downtime-limit", job->downtime_limit);
  json_object_set_string_member (params, "tls-creds", MIGRATE_TLS_OBJECT);
  json_object_set_string_member (params, "tls-hostname", job->to);
  migrate_qmp_seq_add (seq, "migrate-set-parameters", params, FALSE);
  migrate_qmp_seq_run (seq, job->qmp, job->cancel, on_setup_done, job);
  return TRUE;
}

/* ---- connect and prepare ---- */

static void
on_prepared (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = peer_client_call_finish (job->peer, result, &error);
  JsonObject *r;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || job->ending)
    return;
  if (reply == NULL)
    return fail (job, "%s refused: %s", job->to, error->message);
  r = JSON_NODE_HOLDS_OBJECT (reply) ? json_node_get_object (reply) : NULL;
  if (r == NULL || control_json_get_string (r, "address") == NULL || member_int (r, "port") <= 0)
    return fail (job, "%s answered migrate-prepare without an address and port", job->to);
  if (job->copy_storage && member_int (r, "nbd-port") <= 0)
    return fail (job, "%s answered migrate-prepare without an NBD port for --copy-storage", job->to);
  start_stream (job, control_json_get_string (r, "address"), member_int (r, "port"), member_int (r, "nbd-port"));
}

static void
on_peer_closed (PeerClient *client G_GNUC_UNUSED, const GError *reason, gpointer data)
{
  MigrateOut *job = data;

  /* Before the switchover the guest is ours: roll back.  During it, the finish call
   * reports the loss itself. */
  if (job->step < MIGRATE_STEP_SWITCHOVER)
    fail (job, "the link to %s closed (%s)", job->to, reason ? reason->message : "EOF");
}

static void
send_prepare (MigrateOut *job, JsonArray *disks)
{
  g_autoptr(JsonObject) args = json_object_new ();
  g_autofree char *file = g_path_get_basename (job->config_path);

  job->step = MIGRATE_STEP_PREPARE;
  json_object_set_string_member (args, "vm", job->name);
  json_object_set_string_member (args, "file", file);
  json_object_set_string_member (args, "config", job->config_text);
  json_object_set_boolean_member (args, "postcopy", job->postcopy);
  json_object_set_string_member (args, "machine", job->daemon->probe->caps.default_machine);
  json_object_set_boolean_member (args, "copy-storage", job->copy_storage);
  if (disks != NULL)
    json_object_set_array_member (args, "disks", json_array_ref (disks));
  peer_client_call_async (job->peer, "migrate-prepare", args, PREPARE_TIMEOUT_MS, NULL, NULL, job->cancel,
                          on_prepared, job);
}

/* --copy-storage: the destination creates each disk at its size (QEMU's view, not the
 * file's: a qcow2 file is smaller than its disk). */
static void
on_block_nodes (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);
  g_autoptr(JsonArray) disks = json_array_new ();
  JsonArray *nodes;

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED) || job->ending)
    return;
  if (reply == NULL || !JSON_NODE_HOLDS_ARRAY (reply))
    return fail (job, "QMP query-named-block-nodes: %s", error ? error->message : "not an array");
  nodes = json_node_get_array (reply);
  for (guint d = 0; d < job->disk_nodes->len; d++)
    {
      gint64 size = -1;
      for (guint i = 0; i < json_array_get_length (nodes); i++)
        {
          JsonObject *n = json_array_get_object_element (nodes, i);
          if (g_strcmp0 (control_json_get_string (n, "node-name"), job->disk_nodes->pdata[d]) == 0)
            size = member_int (member_object (n, "image"), "virtual-size");
        }
      if (size <= 0)
        return fail (job, "QEMU does not show the size of disk node %s", (char *) job->disk_nodes->pdata[d]);
      JsonObject *disk = json_object_new ();
      json_object_set_string_member (disk, "node", job->disk_nodes->pdata[d]);
      json_object_set_int_member (disk, "size", size);
      json_array_add_object_element (disks, disk);
    }
  send_prepare (job, disks);
}

static void
on_connected (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateOut *job = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) flat = json_object_new ();
  PeerClient *peer = peer_client_connect_finish (result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (peer == NULL)
    return fail (job, "%s", error->message);
  if (job->ending)
    return peer_client_free (peer);
  job->peer = peer;
  peer_client_set_closed_func (peer, on_peer_closed, job);
  if (!start_setup (job))
    return;
  if (!job->copy_storage)
    return send_prepare (job, NULL);
  json_object_set_boolean_member (flat, "flat", TRUE);
  qmp_client_execute_async (job->qmp, "query-named-block-nodes", flat, NULL, 0, MIGRATE_QMP_TIMEOUT_MS,
                            job->cancel, on_block_nodes, job);
}

MigrateOut *
migrate_out_start (Daemon *daemon, Vm *vm, const char *to, gboolean postcopy,
                   gboolean copy_storage, MigrateProgressFunc progress, MigrateOutDone done, gpointer user_data,
                   GError **error)
{
  const VmConfig *config = vm_get_config (vm);
  g_autofree char *text = NULL;
  g_autofree char *sum = NULL;
  gsize len;
  MigrateOut *job;

  if (host_config_peer_listen (daemon->host) == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "this host has no [peer] section in %s: migration needs the peer link",
                   daemon->host->path ? daemon->host->path : "its host file");
      return NULL;
    }
  if (host_config_peer_address (daemon->host, to) == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "'%s' is not a peer host of this one (add host = %s ADDR:PORT to [peer])", to, to);
      return NULL;
    }
  if (g_hash_table_contains (daemon->migrations_out, config->name))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "vm '%s' is already migrating", config->name);
      return NULL;
    }
  for (guint i = 0; i < config->disks->len; i++)
    if (((VmDisk *) config->disks->pdata[i])->overlays != NULL)
      {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                     "vm '%s' has snapshot layers on disk '%s': delete or revert its snapshots "
                     "before migrating (vmherd snapshot list %s)", config->name,
                     ((VmDisk *) config->disks->pdata[i])->section.name, config->name);
        return NULL;
      }
  if (!g_file_get_contents (config->path, &text, &len, error))
    return NULL;
  sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) text, len);
  if (config->checksum != NULL && strcmp (sum, config->checksum) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s changed since vm '%s' started: the destination would build another "
                   "machine; restart the guest (or undo the change) before migrating",
                   config->path, config->name);
      return NULL;
    }
  job = g_new0 (MigrateOut, 1);
  if (!vm_migration_begin (vm, to, &job->was_running, error))
    {
      g_free (job);
      return NULL;
    }
  job->daemon = daemon;
  job->name = g_strdup (config->name);
  job->to = g_strdup (to);
  job->postcopy = postcopy;
  job->copy_storage = copy_storage;
  job->disk_nodes = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < config->disks->len; i++)
    g_ptr_array_add (job->disk_nodes, qemu_argv_disk_node (config->disks->pdata[i], 0));
  job->progress = progress;
  job->done = done;
  job->user_data = user_data;
  job->config_text = g_steal_pointer (&text);
  job->config_path = g_strdup (config->path);
  job->cancel = g_cancellable_new ();
  job->qmp = vm_get_qmp (vm);
  job->started = g_get_monotonic_time ();
  job->deadline = job->started + daemon->host->migrate_timeout_ms * 1000;
  job->subscription = qmp_client_subscribe (job->qmp, on_qmp_event, job, NULL);
  g_hash_table_insert (daemon->migrations_out, g_strdup (job->name), job);
  peer_client_connect_async (daemon->host, to, job->cancel, on_connected, job);
  return job;
}

gboolean
migrate_out_cancel (MigrateOut *job, const char *why, GError **error)
{
  if (job->step >= MIGRATE_STEP_SWITCHOVER)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                   "too late to cancel: vm '%s' is switching over to %s", job->name, job->to);
      return FALSE;
    }
  fail (job, "%s", why);
  return TRUE;
}

void
migrate_out_vm_state_changed (MigrateOut *job, VmState old_state)
{
  Vm *vm = job_vm (job);

  if (old_state != VM_STATE_MIGRATING || vm == NULL || job->ending)
    return;
  /* The source QEMU died or was stopped under us: nothing to roll back. */
  job->qmp = NULL;
  job->subscription = 0;
  fail (job, "the source QEMU left the migration: %s", vm_state_to_string (vm_get_state (vm)));
}
