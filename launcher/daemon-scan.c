/* daemon-scan.c: the VM folder.  New files define guests, changed files become pending
 * configs, removed files stop and forget their guests; a broken file is reported with
 * file:line and never disturbs a running guest. */
#include "launcher/daemon-private.h"

#include <gio/gio.h>
#include <string.h>

#include "launcher/vm-check.h"

#define RESCAN_DELAY_MS 300     /* editors write, rename, chmod: let them finish */

static char *
file_sum (const char *path)
{
  g_autofree char *contents = NULL;
  gsize len;

  if (!g_file_get_contents (path, &contents, &len, NULL))
    return NULL;
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, len);
}

void
daemon_check_config (Daemon *daemon, const VmConfig *config, ConfigErrors *errors)
{
  g_autoptr(GPtrArray) set = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer key, value;

  vm_check_host (config, daemon->host, daemon->probe, errors);
  g_hash_table_iter_init (&iter, daemon->vms);
  while (g_hash_table_iter_next (&iter, &key, &value))
    if (strcmp (key, config->name) != 0)
      g_ptr_array_add (set, (gpointer) vm_get_config (value));
  g_ptr_array_add (set, (gpointer) config);
  vm_check_set (set, errors);
}

/* Loads one file and checks it against the host and the other guests. */
static VmConfig *
load_checked (Daemon *daemon, const char *path, const char *name)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(VmConfig) config = vm_config_load (path, errors);

  if (config != NULL)
    daemon_check_config (daemon, config, errors);
  if (errors->len > 0)
    {
      g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *reason = NULL;
      Vm *vm = daemon_find_vm (daemon, name);
      gboolean runs = vm != NULL && vm_get_state (vm) != VM_STATE_STOPPED;

      for (guint i = 0; i < errors->len; i++)
        {
          g_ptr_array_add (texts, config_error_format (errors->pdata[i]));
          g_message ("%s", (char *) texts->pdata[i]);
        }
      if (runs)
        g_message ("vm '%s': keeps running on its last good config", name);
      reason = errors->len > 1 ? g_strdup_printf ("%s (and %u more: run vmherd check)",
                                                  (char *) texts->pdata[0], errors->len - 1)
                               : g_strdup (texts->pdata[0]);
      if (vm != NULL)
        vm_set_config_error (vm, reason);
      daemon_broadcast_config (daemon, name, "invalid", reason, texts);
      return NULL;
    }
  return g_steal_pointer (&config);
}

/* What differs between two configs, as the QEMU command lines show it. */
static char *
describe_change (Daemon *daemon, const VmConfig *old, const VmConfig *new)
{
  g_autoptr(QemuCmdline) a = qemu_argv_build (old, daemon->host, &daemon->probe->caps);
  g_autoptr(QemuCmdline) b = qemu_argv_build (new, daemon->host, &daemon->probe->caps);
  g_autofree char *sa = NULL, *sb = NULL;
  g_auto(GStrv) la = NULL, lb = NULL;
  GString *s = g_string_new (NULL);
  guint i;

  g_ptr_array_remove_index (a->argv, a->argv->len - 1);
  g_ptr_array_remove_index (b->argv, b->argv->len - 1);
  g_ptr_array_add (a->argv, NULL);
  g_ptr_array_add (b->argv, NULL);
  sa = g_strjoinv ("\n", (char **) a->argv->pdata);
  sb = g_strjoinv ("\n", (char **) b->argv->pdata);
  la = g_strsplit (sa, "\n", -1);
  lb = g_strsplit (sb, "\n", -1);
  for (i = 0; la[i] != NULL && lb[i] != NULL && strcmp (la[i], lb[i]) == 0; i++)
    ;
  if (la[i] == NULL && lb[i] == NULL)
    g_string_append (s, "settings outside the QEMU command line");
  else
    g_string_append_printf (s, "command line differs from argument %u: '%s' -> '%s'", i,
                            la[i] ? la[i] : "(end)", lb[i] ? lb[i] : "(end)");
  return g_string_free (s, FALSE);
}

static void
scan_file (Daemon *daemon, const char *file, GPtrArray *defined, GHashTable *seen)
{
  g_autofree char *name = vm_name_from_file (file);
  g_autofree char *path = g_build_filename (daemon->host->vm_dir, file, NULL);
  g_autofree char *sum = file_sum (path);
  const char *known_sum = g_hash_table_lookup (daemon->file_sums, name);
  Vm *vm = daemon_find_vm (daemon, name);
  VmConfig *config;

  g_hash_table_add (seen, g_strdup (name));
  if (sum == NULL || (known_sum != NULL && strcmp (known_sum, sum) == 0))
    return;                     /* unreadable for a moment, or unchanged */
  g_hash_table_insert (daemon->file_sums, g_strdup (name), g_strdup (sum));
  config = load_checked (daemon, path, name);
  if (config == NULL)
    {
      /* Its problem may lie elsewhere (another file's MAC, a missing image or bridge):
       * look again at the next rescan even if this file stays as it is. */
      g_hash_table_remove (daemon->file_sums, name);
      return;
    }
  config->checksum = g_strdup (sum);
  if (vm == NULL)
    {
      g_autofree char *reason = g_strdup_printf ("defined from %s", path);

      vm = vm_new (config, daemon->host, &daemon->probe->caps, &daemon_vm_observer, daemon);
      vm_set_netlink (vm, daemon->netlink);
      g_hash_table_insert (daemon->vms, g_strdup (name), vm);
      g_message ("vm '%s': %s", name, reason);
      daemon_broadcast_config (daemon, name, "defined", reason, NULL);
      g_ptr_array_add (defined, vm);
      return;
    }
  vm_set_config_error (vm, NULL);
  if (g_strcmp0 (vm_get_config (vm)->checksum, sum) == 0)
    {
      /* Edited back (or a broken save repaired): nothing to apply, nothing pending. */
      vm_config_free (config);
      vm_drop_pending_config (vm);
      daemon_broadcast_config (daemon, name, "current", "the file matches the running config again",
                               NULL);
      return;
    }
  g_autofree char *summary = describe_change (daemon, vm_get_config (vm), config);
  daemon_broadcast_config (daemon, name, vm_set_pending_config (vm, config, summary) ? "applied" : "pending",
                           summary, NULL);
}

GPtrArray *
daemon_scan (Daemon *daemon)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) files = vm_dir_list (daemon->host->vm_dir, &error);
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GPtrArray *defined = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer name, vm;
  g_autoptr(GPtrArray) gone = g_ptr_array_new ();

  if (files == NULL)
    {
      /* A folder we cannot read says nothing about the guests: keep them all. */
      g_message ("%s: %s; keeping every guest as it is", daemon->host->vm_dir, error->message);
      return defined;
    }
  for (guint i = 0; i < files->len; i++)
    scan_file (daemon, files->pdata[i], defined, seen);
  g_hash_table_iter_init (&iter, daemon->vms);
  while (g_hash_table_iter_next (&iter, &name, &vm))
    if (!g_hash_table_contains (seen, name) && !vm_is_incoming (vm))   /* its file comes last */
      g_ptr_array_add (gone, vm);
  /* Files that were never good and are gone: read them afresh if they come back. */
  g_hash_table_iter_init (&iter, daemon->file_sums);
  while (g_hash_table_iter_next (&iter, &name, NULL))
    if (!g_hash_table_contains (seen, name) && !g_hash_table_contains (daemon->vms, name))
      g_hash_table_iter_remove (&iter);
  for (guint i = 0; i < gone->len; i++)
    {
      Vm *v = gone->pdata[i];
      static const char why[] = "its file is gone: stopping it, then forgetting it";

      g_message ("vm '%s': %s", vm_get_name (v), why);
      g_hash_table_remove (daemon->file_sums, vm_get_name (v));
      daemon_broadcast_config (daemon, vm_get_name (v), "removed", why, NULL);
      vm_mark_removed (v);
    }
  if (gone->len > 0)
    {
      g_clear_handle_id (&daemon->reap_idle, g_source_remove);
      daemon_reap_removed (daemon);
    }
  return defined;
}

GPtrArray *
daemon_rescan (Daemon *daemon)
{
  GPtrArray *defined = daemon_scan (daemon);

  daemon_net_refresh (daemon);
  for (guint i = 0; i < defined->len; i++)
    if (vm_get_config (defined->pdata[i])->autostart)
      {
        daemon_save_desired (daemon, vm_get_name (defined->pdata[i]), TRUE);
        vm_handle_event (defined->pdata[i], VM_EVENT_START);
      }
  return defined;
}

static gboolean
on_rescan (gpointer data)
{
  Daemon *daemon = data;
  g_autoptr(GPtrArray) defined = NULL;

  daemon->rescan_timer = 0;
  defined = daemon_rescan (daemon);
  return G_SOURCE_REMOVE;
}

static gboolean
names_vm_file (GFile *file)
{
  g_autofree char *base = file != NULL ? g_file_get_basename (file) : NULL;
  g_autofree char *name = base != NULL ? vm_name_from_file (base) : NULL;

  return name != NULL;
}

static void
on_dir_changed (GFileMonitor *monitor G_GNUC_UNUSED, GFile *file, GFile *other,
                GFileMonitorEvent event G_GNUC_UNUSED, gpointer data)
{
  Daemon *daemon = data;

  /* An atomic save renames a temporary file (web.conf.XXXXXX) over web.conf: the event
   * names the temporary file, and the VM file only as `other`. */
  if (!names_vm_file (file) && !names_vm_file (other))
    return;                     /* editor backups, swap files, dotfiles */
  /* Debounce: one rescan after the folder has been quiet for a moment. */
  g_clear_handle_id (&daemon->rescan_timer, g_source_remove);
  daemon->rescan_timer = g_timeout_add (RESCAN_DELAY_MS, on_rescan, daemon);
}

void
daemon_watch_vm_dir (Daemon *daemon)
{
  g_autoptr(GFile) dir = g_file_new_for_path (daemon->host->vm_dir);
  g_autoptr(GError) error = NULL;

  daemon->monitor = g_file_monitor_directory (dir, G_FILE_MONITOR_WATCH_MOVES, NULL, &error);
  if (daemon->monitor == NULL)
    {
      g_message ("cannot watch %s: %s; use vmherd reload after editing", daemon->host->vm_dir,
                 error->message);
      return;
    }
  g_signal_connect (daemon->monitor, "changed", G_CALLBACK (on_dir_changed), daemon);
}
