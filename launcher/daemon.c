/* daemon.c: vmherdd's lifecycle: start, re-adopt, autostart, signals, exit (guests stay). */
#include "launcher/daemon-private.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "launcher/qemu-spawn.h"

static void autostart_pump (Daemon *daemon);

Vm *
daemon_find_vm (Daemon *daemon, const char *name)
{
  return g_hash_table_lookup (daemon->vms, name);
}

static char *
desired_path (Daemon *daemon, const char *name)
{
  return g_build_filename (daemon->host->state_dir, "vms", name, NULL);
}

void
daemon_save_desired (Daemon *daemon, const char *name, gboolean running)
{
  g_autofree char *path = desired_path (daemon, name);
  g_autofree char *dir = g_path_get_dirname (path);
  g_autoptr(GError) error = NULL;
  gboolean recorded;

  /* Unchanged: no write, no fsync (every start of a running guest would do one). */
  if (daemon_load_desired (daemon, name, &recorded) && recorded == running)
    return;
  /* Temp file + rename (g_file_set_contents): a crash leaves the old or the new, whole. */
  if (g_mkdir_with_parents (dir, 0755) < 0
      || !g_file_set_contents (path, running ? "running\n" : "stopped\n", -1, &error))
    g_message ("vm '%s': cannot record desired state in %s: %s, ignoring", name, path,
               error ? error->message : g_strerror (errno));
}

gboolean
daemon_load_desired (Daemon *daemon, const char *name, gboolean *out_running)
{
  g_autofree char *path = desired_path (daemon, name);
  g_autofree char *text = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return FALSE;
  *out_running = g_str_has_prefix (text, "running");
  return TRUE;
}

/* systemd's readiness protocol, without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void
notify_ready (Daemon *daemon)
{
  const char *path = g_getenv ("NOTIFY_SOCKET");
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd;

  if (daemon->ready_notified)
    return;
  daemon->ready_notified = TRUE;
  g_message ("ready: %u guests defined", g_hash_table_size (daemon->vms));
  if (path == NULL || strlen (path) >= sizeof addr.sun_path)
    return;
  strcpy (addr.sun_path, path);
  if (addr.sun_path[0] == '@')
    addr.sun_path[0] = '\0';
  fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0)
    {
      sendto (fd, "READY=1", 7, 0, (struct sockaddr *) &addr,
              offsetof (struct sockaddr_un, sun_path) + strlen (path));
      close (fd);
    }
}

static gint
compare_start_order (gconstpointer a, gconstpointer b, gpointer data G_GNUC_UNUSED)
{
  const VmConfig *ca = vm_get_config ((Vm *) a), *cb = vm_get_config ((Vm *) b);

  if (ca->start_order != cb->start_order)
    return ca->start_order < cb->start_order ? -1 : 1;
  return strcmp (ca->name, cb->name);
}

static gboolean
vm_is_settled (Vm *vm)
{
  VmState s = vm_get_state (vm);

  return s != VM_STATE_STARTING && s != VM_STATE_STOPPING;
}

/* Starts queued VMs: one start-order group at a time, at most parallel-starts at once. */
static void
autostart_pump (Daemon *daemon)
{
  while (daemon->autostart.length > 0
         && g_hash_table_size (daemon->autostart_running) < (guint) daemon->host->parallel_starts)
    {
      Vm *next = g_queue_peek_head (&daemon->autostart);
      GHashTableIter iter;
      gpointer running;
      gboolean same_group = TRUE;

      g_hash_table_iter_init (&iter, daemon->autostart_running);
      while (g_hash_table_iter_next (&iter, &running, NULL))
        if (vm_get_config (running)->start_order != vm_get_config (next)->start_order)
          same_group = FALSE;
      if (!same_group)
        break;
      g_queue_pop_head (&daemon->autostart);
      if (vm_get_state (next) != VM_STATE_STOPPED && vm_get_state (next) != VM_STATE_FAILED)
        continue;
      g_hash_table_add (daemon->autostart_running, next);
      daemon_save_desired (daemon, vm_get_name (next), TRUE);
      vm_handle_event (next, VM_EVENT_START);
    }
  if (daemon->autostart.length == 0)
    notify_ready (daemon);
}

static void
autostart_queue (Daemon *daemon, Vm *vm)
{
  g_queue_insert_sorted (&daemon->autostart, vm, compare_start_order, NULL);
}

static void
on_vm_state_changed (Vm *vm, VmState old, const char *reason, gpointer data)
{
  Daemon *daemon = data;

  daemon_broadcast_state (daemon, vm, old, reason);
  daemon_migrate_state_changed (daemon, vm, old);
  if (g_hash_table_contains (daemon->autostart_running, vm) && vm_is_settled (vm))
    {
      g_hash_table_remove (daemon->autostart_running, vm);
      autostart_pump (daemon);
    }
  daemon_waiters_notify (daemon, vm);
  /* Never free a Vm from inside its own transition: forget it from the main loop. */
  if (vm_is_removable (vm) && daemon->reap_idle == 0)
    daemon->reap_idle = g_idle_add (daemon_reap_removed, daemon);
}

gboolean
daemon_reap_removed (gpointer data)
{
  Daemon *daemon = data;
  g_autoptr(GPtrArray) gone = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer vm;

  daemon->reap_idle = 0;
  g_hash_table_iter_init (&iter, daemon->vms);
  while (g_hash_table_iter_next (&iter, NULL, &vm))
    if (vm_is_removable (vm))
      g_ptr_array_add (gone, vm);
  for (guint i = 0; i < gone->len; i++)
    {
      Vm *v = gone->pdata[i];
      static const char why[] = "its file is gone and it is stopped: forgotten";

      g_message ("vm '%s': %s", vm_get_name (v), why);
      daemon_broadcast_config (daemon, vm_get_name (v), "forgotten", why, NULL);
      daemon_waiters_drop_vm (daemon, v);
      g_queue_remove (&daemon->autostart, v);
      g_hash_table_remove (daemon->autostart_running, v);
      g_hash_table_remove (daemon->vms, vm_get_name (v));
    }
  return G_SOURCE_REMOVE;
}

static void
on_vm_qmp_event (Vm *vm, const QmpMessage *event, gpointer data)
{
  Daemon *daemon = data;
  g_autoptr(JsonObject) d = json_object_new ();

  json_object_set_string_member (d, "vm", vm_get_name (vm));
  json_object_set_string_member (d, "event", event->event);
  if (event->data != NULL)
    json_object_set_object_member (d, "data", json_object_ref (event->data));
  if (event->timestamp_seconds >= 0)
    {
      /* QEMU's own time of the event, which the console shows. */
      JsonObject *ts = json_object_new ();
      json_object_set_int_member (ts, "seconds", event->timestamp_seconds);
      json_object_set_int_member (ts, "microseconds", event->timestamp_microseconds);
      json_object_set_object_member (d, "timestamp", ts);
    }
  control_server_broadcast_event (daemon->control, "QMP", d);
}

/* The guest's watchdog fired or it panicked: "WATCHDOG", "PANIC" for `vmherd events`. */
static void
on_vm_guest_event (Vm *vm, const char *event, JsonObject *data, gpointer user_data)
{
  Daemon *daemon = user_data;

  json_object_set_string_member (data, "vm", vm_get_name (vm));
  if (daemon->control != NULL)
    control_server_broadcast_event (daemon->control, event, data);
}

const VmObserver daemon_vm_observer = {
  .state_changed = on_vm_state_changed,
  .qmp_event = on_vm_qmp_event,
  .guest_event = on_vm_guest_event,
};

Daemon *
daemon_new (const DaemonOptions *options, GError **error)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(Daemon) daemon = g_new0 (Daemon, 1);
  g_autofree char *probe_cache = NULL;

  daemon->options = *options;
  daemon->config_path = g_strdup (options->config_path);
  daemon->options.config_path = daemon->config_path;
  daemon->vms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) vm_free);
  daemon->file_sums = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  daemon->autostart_running = g_hash_table_new (NULL, NULL);
  daemon->waiters = g_ptr_array_new ();
  daemon->consoles = daemon_consoles_new ();
  g_queue_init (&daemon->autostart);
  daemon->host = host_config_load (options->config_path, errors);
  if (daemon->host == NULL)
    {
      g_autofree char *first = config_error_format (errors->pdata[0]);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s%s (run vmherd check)", first,
                   errors->len > 1 ? ", and more" : "");
      return NULL;
    }
  if (g_mkdir_with_parents (daemon->host->run_dir, 0755) < 0
      || g_mkdir_with_parents (daemon->host->state_dir, 0755) < 0
      || g_mkdir_with_parents (daemon->host->log_dir, 0755) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "cannot create %s, %s or %s: %s",
                   daemon->host->run_dir, daemon->host->state_dir, daemon->host->log_dir,
                   g_strerror (errno));
      return NULL;
    }
  probe_cache = g_build_filename (daemon->host->state_dir, "qemu-probe", NULL);
  daemon->probe = qemu_probe_run_cached (daemon->host->qemu, probe_cache, error);
  if (daemon->probe == NULL)
    return NULL;
  return g_steal_pointer (&daemon);
}

void
daemon_free (Daemon *daemon)
{
  if (daemon == NULL)
    return;
  for (guint i = 0; i < G_N_ELEMENTS (daemon->signal_ids); i++)
    g_clear_handle_id (&daemon->signal_ids[i], g_source_remove);
  g_clear_handle_id (&daemon->rescan_timer, g_source_remove);
  g_clear_handle_id (&daemon->reap_idle, g_source_remove);
  g_clear_object (&daemon->monitor);
  g_clear_pointer (&daemon->control, control_server_free);
  g_clear_pointer (&daemon->metrics, daemon_metrics_free);
  daemon_peer_close (daemon);
  g_queue_clear (&daemon->autostart);
  g_clear_pointer (&daemon->autostart_running, g_hash_table_unref);
  g_clear_pointer (&daemon->waiters, g_ptr_array_unref);
  daemon_consoles_free (daemon);
  daemon_migrate_free (daemon);
  /* Freeing a Vm leaves its QEMU running. */
  g_clear_pointer (&daemon->vms, g_hash_table_unref);
  daemon_net_close (daemon);
  g_clear_pointer (&daemon->file_sums, g_hash_table_unref);
  host_config_free (daemon->host);
  qemu_probe_free (daemon->probe);
  g_clear_pointer (&daemon->loop, g_main_loop_unref);
  g_free (daemon->config_path);
  g_free (daemon);
}

static gboolean
on_quit_signal (gpointer data)
{
  Daemon *daemon = data;

  g_message ("exiting on signal; guests keep running");
  g_main_loop_quit (daemon->loop);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_hup (gpointer data)
{
  Daemon *daemon = data;
  g_autoptr(GPtrArray) added = NULL;

  g_message ("SIGHUP: rescanning %s", daemon->host->vm_dir);
  added = daemon_rescan (daemon);
  return G_SOURCE_CONTINUE;
}

/* First run since boot (run-dir is a tmpfs): autostart=yes guests start.  A later vmherdd
 * re-adopts live guests and starts only those the operator wanted running. */
static gboolean
first_run_since_boot (Daemon *daemon)
{
  g_autofree char *marker = g_build_filename (daemon->host->run_dir, "booted", NULL);
  gboolean first = !g_file_test (marker, G_FILE_TEST_EXISTS);

  if (first)
    g_file_set_contents (marker, "", 0, NULL);
  return first;
}

static void
adopt_and_queue (Daemon *daemon, GPtrArray *vms, gboolean boot)
{
  for (guint i = 0; i < vms->len; i++)
    {
      Vm *vm = vms->pdata[i];
      gboolean wanted = FALSE;

      if (vm_adopt (vm))
        continue;
      if (boot ? vm_get_config (vm)->autostart : (daemon_load_desired (daemon, vm_get_name (vm), &wanted) && wanted))
        autostart_queue (daemon, vm);
    }
}

/* A failure before the control socket listened: tell the parent waiting on the pipe. */
static void
daemon_report_failure (Daemon *daemon, const char *message)
{
  if (daemon->options.ready_fd < 0)
    {
      g_printerr ("vmherdd: %s\n", message);
      return;
    }
  if (write (daemon->options.ready_fd, message, strlen (message)) < 0)
    g_debug ("ready pipe: %s", g_strerror (errno));
  close (daemon->options.ready_fd);
  daemon->options.ready_fd = -1;
}

static void
remove_pidfile_if_ours (Daemon *daemon)
{
  g_autofree char *text = NULL;

  if (daemon->options.pidfile != NULL
      && g_file_get_contents (daemon->options.pidfile, &text, NULL, NULL)
      && g_ascii_strtoll (text, NULL, 10) == getpid ())
    g_unlink (daemon->options.pidfile);
}

int
daemon_run (Daemon *daemon)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) defined = NULL;

  daemon->loop = g_main_loop_new (NULL, FALSE);
  daemon->control = control_server_new (daemon->host->control_socket, daemon->host->control_group,
                                        daemon_handle_request, daemon, &error);
  if (daemon->control == NULL)
    {
      g_message ("cannot start: %s", error->message);
      daemon_report_failure (daemon, error->message);
      return 1;
    }
  control_server_set_read_only_commands (daemon->control, daemon_read_only_commands);
  /* Only a daemon that holds the control socket writes the pid file: a second vmherdd,
   * refused above, never touches the first one's. */
  if (daemon->options.pidfile != NULL)
    {
      g_autofree char *pid = g_strdup_printf ("%d\n", (int) getpid ());
      if (!g_file_set_contents (daemon->options.pidfile, pid, -1, &error))
        g_message ("cannot write %s: %s, ignoring", daemon->options.pidfile, error->message);
      g_clear_error (&error);
    }
  /* Before readiness is reported, so a scrape right after `vmherdd` returns finds it, and
   * the bridges of vmherd.conf exist once `vmherdd` returns. */
  daemon_metrics_open (daemon);
  daemon_net_open (daemon);
  daemon_migrate_init (daemon);
  daemon_peer_open (daemon);
  if (daemon->options.ready_fd >= 0)
    {
      if (write (daemon->options.ready_fd, "1", 1) < 0)
        g_debug ("ready pipe: %s", g_strerror (errno));
      close (daemon->options.ready_fd);
      daemon->options.ready_fd = -1;
    }
  daemon->signal_ids[0] = g_unix_signal_add (SIGTERM, on_quit_signal, daemon);
  daemon->signal_ids[1] = g_unix_signal_add (SIGINT, on_quit_signal, daemon);
  daemon->signal_ids[2] = g_unix_signal_add (SIGHUP, on_hup, daemon);
  g_message ("vmherdd %s: %s, QEMU %s (default machine %s), VMs in %s", VMHERD_VERSION,
             daemon->host->path ? daemon->host->path : "built-in defaults", daemon->host->qemu,
             daemon->probe->default_machine, daemon->host->vm_dir);
  defined = daemon_scan (daemon);
  adopt_and_queue (daemon, defined, first_run_since_boot (daemon));
  daemon_watch_vm_dir (daemon);
  autostart_pump (daemon);
  g_main_loop_run (daemon->loop);
  remove_pidfile_if_ours (daemon);
  return 0;
}
