/* vm-describe.c: what `vmherd list` and `vmherd status` show of a VM. */
#include "launcher/vm-private.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "images/qemu-img.h"

static void
set_string_or_null (JsonObject *o, const char *key, const char *value)
{
  if (value != NULL)
    json_object_set_string_member (o, key, value);
  else
    json_object_set_null_member (o, key);
}

static const char *
health_text (Vm *vm)
{
  if (vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED)
    return "-";
  if (vm->health_misses > 0)
    return "qmp-missed";
  if (vm_probes_failing (vm))
    return "probe-failing";
  if (vm_storage_outage (vm))
    return vm->storage.stuck ? "storage-stuck" : "storage-error";
  if (vm_agent_failing (vm))
    return "agent-failing";
  return vm->health_last_ok ? "ok" : "pending";
}

/* "2026-11-26 06:34:41.680 vmherd: ...", as qemu_log_line() writes them: our lifecycle
 * lines, between QEMU's own stderr in the VM's log. */
static gboolean
log_line_is_ours (const char *line)
{
  return strlen (line) >= 32 && line[4] == '-' && line[10] == ' ' && line[19] == '.'
         && strncmp (line + 23, " vmherd: ", 9) == 0;
}

/* The last VM_STDERR_LINES lines QEMU wrote to its stderr since its latest start (for an
 * adopted QEMU: in the log's tail), oldest first, one per line; "" when there are none.
 * Reads at most VM_STDERR_READ_MAX bytes, however long the log has grown. */
static char *
qemu_stderr_tail (Vm *vm)
{
  g_autofree char *file = g_strdup_printf ("%s.log", vm->config->name);
  g_autofree char *path = g_build_filename (vm->host->log_dir, file, NULL);
  g_auto(AutoFd) fd = open (path, O_RDONLY | O_CLOEXEC);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autofree char **view = NULL;
  GPtrArray *kept;
  struct stat st;
  gint64 start;
  gssize length;
  guint n;

  if (fd < 0 || fstat (fd, &st) < 0)
    return g_strdup ("");
  start = MAX (MAX (vm->log_offset, (gint64) st.st_size - VM_STDERR_READ_MAX), 0);
  text = g_malloc ((gsize) MAX ((gint64) st.st_size - start, 0) + 1);
  length = start < st.st_size ? pread (fd, text, (size_t) (st.st_size - start), start) : 0;
  text[MAX (length, 0)] = '\0';
  lines = g_strsplit (text, "\n", -1);
  n = g_strv_length (lines);
  kept = g_ptr_array_new ();
  /* Started in the middle of a line: drop that piece. */
  for (guint i = start > MAX (vm->log_offset, 0) ? 1 : 0; i < n; i++)
    if (lines[i][0] != '\0' && !log_line_is_ours (lines[i]))
      g_ptr_array_add (kept, lines[i]);
  if (kept->len > VM_STDERR_LINES)
    g_ptr_array_remove_range (kept, 0, kept->len - VM_STDERR_LINES);
  g_ptr_array_add (kept, NULL);
  view = (char **) g_ptr_array_free (kept, FALSE);   /* borrows from lines */
  return g_strjoinv ("\n", view);
}

char *
vm_qemu_lock_failure (Vm *vm)
{
  g_autofree char *tail = qemu_stderr_tail (vm);
  g_autoptr(GArray) files = g_array_new (FALSE, FALSE, sizeof (ImagesFile));
  g_autoptr(GError) error = NULL;

  /* QEMU: '-blockdev {...}: Failed to get "write" lock' + 'Is another process using the
   * image [/x]?'; qemu-img says the same, and images/ knows how to read it. */
  if (strstr (tail, " lock") == NULL || strstr (tail, "Failed to ") == NULL)
    return NULL;
  for (guint i = 0; i < vm->config->disks->len; i++)
    {
      const VmDisk *disk = vm->config->disks->pdata[i];
      guint layers = disk->overlays ? disk->overlays->len : 0;
      ImagesFile image = { layers ? g_ptr_array_index (disk->overlays, layers - 1) : disk->image,
                           "image", NULL };
      ImagesFile base = { disk->base, "base image", NULL };

      g_array_append_val (files, image);
      if (layers > 0)
        {
          ImagesFile bottom = { disk->image, "image", NULL };
          g_array_append_val (files, bottom);
        }
      if (disk->base != NULL)
        g_array_append_val (files, base);
    }
  if (files->len == 0)
    return NULL;
  images_qemu_img_set_error (tail, (const ImagesFile *) (void *) files->data, files->len, &error);
  if (!g_error_matches (error, IMAGES_ERROR, IMAGES_ERROR_LOCKED))
    return NULL;
  return g_strdup (error->message);
}

static JsonArray *
history_array (Vm *vm)
{
  JsonArray *a = json_array_new ();

  for (GList *l = vm->history.head; l != NULL; l = l->next)
    {
      const VmHistoryEntry *e = l->data;
      JsonObject *o = json_object_new ();
      g_autoptr(GDateTime) sec = g_date_time_new_from_unix_local (e->time / G_USEC_PER_SEC);
      g_autoptr(GDateTime) t = g_date_time_add (sec, e->time % G_USEC_PER_SEC);
      g_autofree char *when = g_date_time_format_iso8601 (t);

      json_object_set_string_member (o, "time", when);
      json_object_set_string_member (o, "state", vm_state_to_string (e->state));
      json_object_set_string_member (o, "reason", e->reason);
      json_array_add_object_element (a, o);
    }
  return a;
}

static void
describe_full (Vm *vm, JsonObject *o)
{
  g_autoptr(QemuCmdline) cmdline = qemu_argv_build (vm->config, vm->host, vm->caps);
  JsonArray *argv = json_array_new ();
  JsonObject *agent;

  json_object_set_string_member (o, "config-file", vm->config->path);
  for (guint i = 0; cmdline->argv->pdata[i] != NULL; i++)
    json_array_add_string_element (argv, cmdline->argv->pdata[i]);
  json_object_set_array_member (o, "argv", argv);
  json_object_set_int_member (o, "cpus", vm->config->cpus);
  json_object_set_string_member (o, "restart-policy", vm_restart_policy_to_string (vm->config->restart));
  json_object_set_boolean_member (o, "autostart", vm->config->autostart);
  set_string_or_null (o, "pending", vm->pending_summary);
  set_string_or_null (o, "config-error", vm->config_error);
  set_string_or_null (o, "run-status", vm->run_status);
  set_string_or_null (o, "stop-step", vm->state == VM_STATE_STOPPING
                                      ? vm_stop_step_to_string (vm->stop_step) : NULL);
  set_string_or_null (o, "exit-status", vm->exit_status);
  json_object_set_int_member (o, "qmp-misses", vm->health_misses);
  json_object_set_int_member (o, "health-checks", (gint64) vm->health_answers);
  if (vm->health_last_check != 0)
    {
      g_autoptr(GDateTime) sec = g_date_time_new_from_unix_local (vm->health_last_check / G_USEC_PER_SEC);
      g_autoptr(GDateTime) t = g_date_time_add (sec, vm->health_last_check % G_USEC_PER_SEC);
      g_autofree char *when = g_date_time_format_iso8601 (t);

      json_object_set_string_member (o, "qmp-last-check", when);
    }
  else
    json_object_set_null_member (o, "qmp-last-check");
  set_string_or_null (o, "qmp-last-result", vm->health_last_result);
  vm_guest_health_describe (vm, o);
  vm_storage_describe (vm, o);
  if (vm->state == VM_STATE_FAILED || vm->state == VM_STATE_BACKOFF)
    {
      g_autofree char *tail = qemu_stderr_tail (vm);
      json_object_set_string_member (o, "qemu-stderr", tail);
    }
  json_object_set_array_member (o, "probes", vm_probes_describe (vm));
  if ((agent = vm_agent_describe (vm)) != NULL)
    json_object_set_object_member (o, "guest-agent", agent);
  else
    json_object_set_null_member (o, "guest-agent");
  json_object_set_array_member (o, "history", history_array (vm));
  json_object_set_array_member (o, "nics", vm_net_describe (vm));
  if (vm->inst != NULL)
    {
      json_object_set_string_member (o, "qmp-socket", vm->inst->qmp_path);
      json_object_set_string_member (o, "serial-socket", vm->inst->serial_path);
      json_object_set_string_member (o, "log", vm->inst->log_path);
    }
}

JsonNode *
vm_describe (Vm *vm, gboolean full)
{
  JsonObject *o = json_object_new ();
  JsonNode *node;

  json_object_set_string_member (o, "name", vm->config->name);
  json_object_set_string_member (o, "state", vm_state_to_string (vm->state));
  json_object_set_int_member (o, "pid", vm->pid);
  json_object_set_int_member (o, "uptime", vm->run_started && vm->pid > 0
                              ? (g_get_monotonic_time () - vm->run_started) / G_USEC_PER_SEC : 0);
  json_object_set_int_member (o, "memory", (gint64) vm->config->memory);
  json_object_set_int_member (o, "restarts", vm->restarts);
  json_object_set_string_member (o, "health", health_text (vm));
  set_string_or_null (o, "last-failure", vm->last_failure);
  json_object_set_boolean_member (o, "pending-config", vm->pending != NULL);
  if (full)
    describe_full (vm, o);
  node = json_node_init_object (json_node_alloc (), o);
  json_object_unref (o);
  return node;
}
