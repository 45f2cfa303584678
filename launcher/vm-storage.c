/* vm-storage.c: pause on a disk error, resume when the storage answers (see vm-storage.h).
 *
 *   BLOCK_IO_ERROR (action stop) or run state io-error
 *     -> every storage-interval, while paused: check the failing disk's storage
 *        (vm-storage-check.c, in a thread, storage-timeout); it answers -> `cont`
 *     -> QEMU retries the failed request; if it fails again (an NBD client still
 *        reconnecting in the background) the guest pauses again and the next check
 *        tries again
 *     -> running for one whole interval: the outage is over (event STORAGE "ok")
 *   paused for storage-stuck-after: event STORAGE "stuck", logged; checking goes on.
 */
#include "launcher/vm-private.h"

#include <string.h>

#include "launcher/vm-storage-check.h"

#define VM_STORAGE_CONT_BACKOFF_MAX_MS 16000

struct _VmStorageCall
{
  Vm *vm;                       /* NULL once the VM stopped caring: only free it */
};

static void
emit (Vm *vm, const char *state, const char *reason)
{
  g_autoptr(JsonObject) d = json_object_new ();

  json_object_set_string_member (d, "state", state);
  json_object_set_string_member (d, "reason", reason);
  if (vm->storage.disk != NULL)
    json_object_set_string_member (d, "disk", vm->storage.disk);
  else
    json_object_set_null_member (d, "disk");
  if (vm->observer->guest_event != NULL)
    vm->observer->guest_event (vm, "STORAGE", d, vm->observer_data);
}

/* Ends checking (the outage's facts stay for `status`). */
static void
stop_watching (VmStorage *s)
{
  g_clear_handle_id (&s->timer, g_source_remove);
  if (s->call != NULL)
    s->call->vm = NULL;         /* the thread may still run: its answer is dropped */
  s->call = NULL;
}

void
vm_storage_clear (VmStorage *s)
{
  stop_watching (s);
  s->outage = FALSE;
  g_clear_pointer (&s->disk, g_free);
  g_clear_pointer (&s->error, g_free);
  g_clear_pointer (&s->last_result, g_free);
}

gboolean
vm_storage_outage (Vm *vm)
{
  return vm->storage.outage;
}

/* The disks to check: the failing one, or all when QEMU did not say which. */
static GPtrArray *
disks_to_check (Vm *vm)
{
  GPtrArray *disks = g_ptr_array_new ();

  for (guint i = 0; i < vm->config->disks->len; i++)
    {
      VmDisk *disk = vm->config->disks->pdata[i];

      if (vm->storage.disk == NULL || strcmp (vm->storage.disk, disk->section.name) == 0)
        g_ptr_array_add (disks, disk);
    }
  return disks;
}

static void
on_checked (char *taken, gpointer data)
{
  g_autofree char *error = taken;
  VmStorageCall *call = data;
  Vm *vm = call->vm;
  VmStorage *s;
  gboolean changed;

  g_free (call);
  if (vm == NULL)
    return;
  s = &vm->storage;
  s->call = NULL;
  s->last_check = g_get_real_time ();
  changed = g_strcmp0 (s->last_result, error ? error : "ok") != 0;
  g_free (s->last_result);
  s->last_result = g_strdup (error ? error : "ok");
  if (error != NULL)
    {
      if (changed)
        vm_log (vm, "storage check: %s; still paused, checking again every %" G_GINT64_FORMAT " ms",
                error, vm->config->health.storage_interval_ms);
      return;
    }
  if (vm->state != VM_STATE_PAUSED || g_get_monotonic_time () < s->next_cont)
    return;
  /* A `cont` that fails again (QEMU's NBD client reconnects on its own schedule, backing
   * off to 16 s) is retried less and less often, as QEMU does. */
  s->next_cont = g_get_monotonic_time ()
                 + MIN (vm->config->health.storage_interval_ms << MIN (s->resumes, 10),
                        MAX (VM_STORAGE_CONT_BACKOFF_MAX_MS, vm->config->health.storage_interval_ms))
                   * 1000;
  s->resumes++;
  vm_log (vm, "storage check: %s%s answers again; resuming the guest (cont, attempt %u)",
          s->disk ? "disk " : "", s->disk ? s->disk : "every disk", s->resumes);
  vm_qemu_command (vm, "cont");
}

static void
start_check (Vm *vm)
{
  VmStorage *s = &vm->storage;
  g_autoptr(GPtrArray) disks = disks_to_check (vm);

  s->call = g_new0 (VmStorageCall, 1);
  s->call->vm = vm;
  s->call_started = g_get_monotonic_time ();
  s->call_late = FALSE;
  vm_storage_check_async (disks, s->nospace, (guint) vm->config->health.storage_timeout_ms,
                          on_checked, s->call);
}

static void
outage_over (Vm *vm)
{
  VmStorage *s = &vm->storage;
  g_autofree char *reason = NULL;

  s->last_outage_ms = (g_get_real_time () - s->since) / 1000;
  reason = g_strdup_printf ("the storage answers again; the guest runs after %" G_GINT64_FORMAT
                            " ms paused for a disk error", s->last_outage_ms);
  vm_log (vm, "%s", reason);
  stop_watching (s);
  s->outage = FALSE;
  emit (vm, "ok", reason);
}

static void
check_stuck (Vm *vm)
{
  VmStorage *s = &vm->storage;
  g_autofree char *reason = NULL;

  if (s->stuck || g_get_real_time () - s->since < vm->config->health.storage_stuck_after_ms * 1000)
    return;
  s->stuck = TRUE;
  reason = g_strdup_printf ("%s%s: %s; paused for %" G_GINT64_FORMAT " s: storage stuck (last "
                            "check: %s); never restarted, still checking", s->disk ? "disk " : "",
                            s->disk ? s->disk : "a disk", s->error ? s->error : "run state io-error",
                            (g_get_real_time () - s->since) / G_USEC_PER_SEC,
                            s->last_result ? s->last_result : "none yet");
  vm_log (vm, "%s", reason);
  emit (vm, "stuck", reason);
}

static gboolean
on_tick (gpointer data)
{
  Vm *vm = data;
  VmStorage *s = &vm->storage;
  gint64 timeout_us = vm->config->health.storage_timeout_ms * 1000;

  if (vm->state == VM_STATE_RUNNING)
    {
      /* Ran a whole interval without a new error: `cont` took. */
      s->timer = 0;
      outage_over (vm);
      return G_SOURCE_REMOVE;
    }
  if (s->call == NULL)
    start_check (vm);
  else if (!s->call_late && g_get_monotonic_time () - s->call_started > timeout_us)
    {
      /* A thread stuck in the kernel (hung NFS): counted as failed, never doubled. */
      s->call_late = TRUE;
      s->last_check = g_get_real_time ();
      g_free (s->last_result);
      s->last_result = g_strdup_printf ("no answer within %" G_GINT64_FORMAT " ms",
                                        vm->config->health.storage_timeout_ms);
      vm_log (vm, "storage check: %s; still paused", s->last_result);
    }
  check_stuck (vm);
  return G_SOURCE_CONTINUE;
}

/* "d-data", "s2d-data", "bd-data", "f-data" -> "data"; NULL for a node not ours. */
static char *
disk_of_node (Vm *vm, const char *node)
{
  const char *p = node;

  if (node == NULL)
    return NULL;
  if (*p == 's')
    for (p++; g_ascii_isdigit (*p); p++)
      ;
  else if (*p == 'b')
    p++;
  if ((*p != 'd' && *p != 'f') || p[1] != '-')
    return NULL;
  for (guint i = 0; i < vm->config->disks->len; i++)
    if (strcmp (((VmDisk *) vm->config->disks->pdata[i])->section.name, p + 2) == 0)
      return g_strdup (p + 2);
  return NULL;
}

void
vm_storage_io_error (Vm *vm, const char *node, const char *operation, const char *reason,
                     gboolean nospace)
{
  VmStorage *s = &vm->storage;
  g_autofree char *disk = disk_of_node (vm, node);
  gboolean first = !s->outage;

  if (operation != NULL)
    {
      g_free (s->error);
      s->error = g_strdup_printf ("%s: %s", operation, reason ? reason : "?");
      s->nospace = nospace;
    }
  if (!first && (disk == NULL || g_strcmp0 (disk, s->disk) == 0))
    return;                     /* the same outage: `cont` failed again, or more requests */
  if (first)
    {
      s->outage = TRUE;
      s->since = g_get_real_time ();
      s->stuck = FALSE;
      s->resumes = 0;
      s->next_cont = 0;
      s->qmp_silent_logged = FALSE;
      s->outages++;
      g_clear_pointer (&s->last_result, g_free);
      s->last_check = 0;
      g_free (s->disk);
      s->disk = g_steal_pointer (&disk);
    }
  else
    g_clear_pointer (&s->disk, g_free);   /* a second disk failed: check them all */
  g_autofree char *what = g_strdup_printf ("%s%s: %s; the guest is paused (never restarted) and "
                                           "resumed once the storage answers, checked every %"
                                           G_GINT64_FORMAT " ms", s->disk ? "disk " : "",
                                           s->disk ? s->disk : "a disk",
                                           s->error ? s->error : "run state io-error",
                                           vm->config->health.storage_interval_ms);
  vm_log (vm, "%s", what);
  if (first)
    emit (vm, "failing", what);
  if (s->timer == 0)
    s->timer = g_timeout_add ((guint) vm->config->health.storage_interval_ms, on_tick, vm);
}

void
vm_storage_state_changed (Vm *vm)
{
  if (vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED && vm->storage.outage)
    {
      stop_watching (&vm->storage);
      vm->storage.outage = FALSE;
    }
}

static char *
time_text (gint64 real_us)
{
  g_autoptr(GDateTime) sec = g_date_time_new_from_unix_local (real_us / G_USEC_PER_SEC);
  g_autoptr(GDateTime) t = g_date_time_add (sec, real_us % G_USEC_PER_SEC);

  return g_date_time_format_iso8601 (t);
}

static void
set_time_or_null (JsonObject *o, const char *key, gint64 real_us)
{
  g_autofree char *when = real_us ? time_text (real_us) : NULL;

  if (when != NULL)
    json_object_set_string_member (o, key, when);
  else
    json_object_set_null_member (o, key);
}

static void
set_string_or_null (JsonObject *o, const char *key, const char *value)
{
  if (value != NULL)
    json_object_set_string_member (o, key, value);
  else
    json_object_set_null_member (o, key);
}

void
vm_storage_describe (Vm *vm, JsonObject *o)
{
  VmStorage *s = &vm->storage;
  JsonObject *st = json_object_new ();

  json_object_set_string_member (st, "state", !s->outage ? "ok" : s->stuck ? "stuck" : "failing");
  set_string_or_null (st, "disk", s->outage ? s->disk : NULL);
  set_string_or_null (st, "error", s->outage ? s->error : NULL);
  set_time_or_null (st, "since", s->outage ? s->since : 0);
  set_time_or_null (st, "last-check", s->last_check);
  set_string_or_null (st, "last-result", s->last_result);
  json_object_set_int_member (st, "resumes", s->resumes);
  json_object_set_int_member (st, "outages", s->outages);
  json_object_set_int_member (st, "last-outage-ms", s->last_outage_ms);
  json_object_set_object_member (o, "storage", st);
}
