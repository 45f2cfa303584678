/* vm-qemu.c: a VM's QEMU process and QMP connection: spawn or adopt, watch, talk, health.
 * Everything here reports to the state machine through vm_handle_event(). */
#include "launcher/vm-private.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fd-util.h"

static void
on_process_exited (GObject *source, GAsyncResult *result, gpointer data)
{
  GSubprocess *process = G_SUBPROCESS (source);
  g_autoptr(GError) error = NULL;
  Vm *vm = data;

  if (!g_subprocess_wait_finish (process, result, &error))
    return;                     /* cancelled: the VM was freed or released */
  g_free (vm->exit_status);
  if (g_subprocess_get_if_signaled (process))
    vm->exit_status = g_strdup_printf ("was killed by signal %d (%s)",
                                       g_subprocess_get_term_sig (process),
                                       g_strsignal (g_subprocess_get_term_sig (process)));
  else
    vm->exit_status = g_strdup_printf ("exited with status %d",
                                       g_subprocess_get_exit_status (process));
  vm_handle_event (vm, VM_EVENT_EXITED);
}

static gboolean
on_pidfd (int fd G_GNUC_UNUSED, GIOCondition condition G_GNUC_UNUSED, gpointer data)
{
  Vm *vm = data;

  /* Not our child (adopted): the exit status went to init; only the fact is known. */
  vm->pidfd_watch = 0;
  g_free (vm->exit_status);
  vm->exit_status = g_strdup ("exited (adopted process: status unknown)");
  vm_handle_event (vm, VM_EVENT_EXITED);
  return G_SOURCE_REMOVE;
}

gboolean
vm_qemu_spawn (Vm *vm, GError **error)
{
  g_autoptr(QemuCmdline) cmdline = NULL;
  g_autofree char *log_file = g_strdup_printf ("%s.log", vm->config->name);
  g_autofree char *log_path = g_build_filename (vm->host->log_dir, log_file, NULL);
  GStatBuf st;
  g_autoptr(GArray) nic_fds = vm_net_open (vm, error);

  if (nic_fds == NULL)
    return FALSE;
  if (vm->config->extra_args != NULL)
    {
      g_autofree char *joined = g_strjoinv (" ", vm->config->extra_args);
      vm_log (vm, "escape hatch: [qemu] extra-args = %s", joined);
    }
  cmdline = qemu_argv_build (vm->config, vm->host, vm->caps);
  if (vm->incoming)
    {
      /* The same argv as the source's, waiting for migrate-incoming (QMP-NOTES 2.1). */
      g_ptr_array_remove_index (cmdline->argv, cmdline->argv->len - 1);
      g_ptr_array_add (cmdline->argv, g_strdup ("-incoming"));
      g_ptr_array_add (cmdline->argv, g_strdup ("defer"));
      g_ptr_array_add (cmdline->argv, NULL);
    }
  /* QEMU's stderr of this run starts here in the VM's log (`status` shows it on failure). */
  vm->log_offset = g_stat (log_path, &st) == 0 ? (gint64) st.st_size : 0;
  vm->inst = qemu_spawn (vm->config, vm->host, cmdline, (const int *) nic_fds->data, error);
  /* QEMU holds its own copies: with ours closed, a tap lives exactly as long as QEMU. */
  vm_net_close_fds (nic_fds);
  if (vm->inst == NULL)
    return FALSE;
  vm->pid = vm->inst->pid;
  if (vm->cancel == NULL)
    vm->cancel = g_cancellable_new ();
  g_subprocess_wait_async (vm->inst->process, vm->cancel, on_process_exited, vm);
  return TRUE;
}

static void
on_qmp_event (QmpClient *client G_GNUC_UNUSED, const QmpMessage *event, gpointer data)
{
  Vm *vm = data;

  if (vm->observer->qmp_event != NULL)
    vm->observer->qmp_event (vm, event, vm->observer_data);
  vm_guest_health_qmp_event (vm, event);
  vm_agent_qmp_event (vm, event);
  if (strcmp (event->event, "SHUTDOWN") == 0)
    {
      JsonObject *d = event->data;
      /* The first SHUTDOWN says why: after a guest poweroff (-no-shutdown keeps QEMU up)
       * our own `quit` makes QEMU report a second one, host-qmp-quit. */
      if (vm->shutdown_reason == NULL)
        vm->shutdown_reason = g_strdup (d && json_object_has_member (d, "reason")
                                        ? json_object_get_string_member (d, "reason") : "unknown");
      vm_handle_event (vm, VM_EVENT_SHUTDOWN);
    }
  else if (strcmp (event->event, "STOP") == 0)
    vm_handle_event (vm, VM_EVENT_PAUSED);
  else if (strcmp (event->event, "RESUME") == 0)
    vm_handle_event (vm, VM_EVENT_RESUMED);
}

static void
on_qmp_closed (QmpClient *client G_GNUC_UNUSED, const GError *reason, gpointer data)
{
  Vm *vm = data;

  /* The process watch reports the exit; a live QEMU without QMP fails its health checks. */
  vm_log (vm, "QMP connection closed: %s", reason->message);
}

static void
start_failed (Vm *vm, const char *what, const GError *error)
{
  g_free (vm->last_failure);
  vm->last_failure = g_strdup_printf ("%s: %s", what, error->message);
  vm_handle_event (vm, VM_EVENT_START_FAILED);
}

static void
on_cont_or_status (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);
  Vm *vm = data;

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;
  if (reply == NULL)
    return start_failed (vm, "QMP cont failed", error);
  /* Our predecessor died between a migration's switchover and its end: this QEMU has
   * handed the guest over (return-path: the destination loaded it) and must never run it
   * again.  Quit it; the daemon moves the VM's file aside. */
  if (vm->adopting && JSON_NODE_HOLDS_OBJECT (reply)
      && g_strcmp0 (json_object_get_string_member_with_default (json_node_get_object (reply), "status", ""),
                    "postmigrate") == 0)
    {
      vm->adopting = FALSE;
      vm_log (vm, "the adopted QEMU has migrated the guest away (postmigrate): quitting it; the guest "
              "runs on the destination");
      vm_migration_moved (vm, "another host");
      return;
    }
  /* Adopted before our predecessor's `cont` went out (it died mid-start): finish it. */
  if (vm->adopting && JSON_NODE_HOLDS_OBJECT (reply)
      && g_strcmp0 (json_object_get_string_member_with_default (json_node_get_object (reply), "status", ""),
                    "prelaunch") == 0)
    {
      vm->adopting = FALSE;
      qmp_client_execute_async (vm->qmp, "cont", NULL, NULL, 0, VM_QMP_COMMAND_TIMEOUT_MS,
                                vm->cancel, on_cont_or_status, vm);
      return;
    }
  vm_handle_event (vm, VM_EVENT_QMP_READY);
  /* An adopted guest may have been paused on purpose: the state follows QEMU's. */
  if (JSON_NODE_HOLDS_OBJECT (reply)
      && json_object_has_member (json_node_get_object (reply), "running")
      && !json_object_get_boolean_member (json_node_get_object (reply), "running"))
    vm_handle_event (vm, VM_EVENT_PAUSED);
}

static gboolean
on_reconnect (gpointer data)
{
  Vm *vm = data;

  vm->reconnect_timer = 0;
  vm_qemu_connect (vm);
  return G_SOURCE_REMOVE;
}

static void
on_qmp_connected (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  g_autoptr(GError) error = NULL;
  Vm *vm = data;

  if (!qmp_client_connect_finish (NULL, result, &error))
    {
      if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
        return;
      if (vm->adopting)
        {
          /* A guest we did not start is never killed for a silent monitor: someone else
           * (a direct `vmherd qmp`) may hold QEMU's only QMP connection.  Try again. */
          vm_log (vm, "QMP of the adopted QEMU does not answer (%s); retrying in 2 s",
                  error->message);
          g_clear_pointer (&vm->qmp, qmp_client_free);
          vm->reconnect_timer = g_timeout_add_seconds (2, on_reconnect, vm);
          return;
        }
      if (vm->incoming)
        return vm_incoming_qmp_up (vm, error);
      start_failed (vm, "QMP did not come up", error);
      return;
    }
  qmp_client_subscribe (vm->qmp, on_qmp_event, vm, NULL);
  qmp_client_set_closed_func (vm->qmp, on_qmp_closed, vm, NULL);
  if (vm->incoming)
    return vm_incoming_qmp_up (vm, NULL);
  /* Started with -S: `cont` makes it run.  Adopted: ask how it is. */
  qmp_client_execute_async (vm->qmp, vm->adopting ? "query-status" : "cont", NULL, NULL, 0,
                            VM_QMP_COMMAND_TIMEOUT_MS, vm->cancel, on_cont_or_status, vm);
}

void
vm_qemu_connect (Vm *vm)
{
  vm->qmp = qmp_client_new ();
  qmp_client_connect_async (vm->qmp, vm->inst->qmp_path, VM_QMP_CONNECT_TIMEOUT_MS, vm->cancel,
                            on_qmp_connected, vm);
}

static void
on_command_done (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);
  g_autofree char *command = data;

  if (reply == NULL && !g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED)
      && !g_error_matches (error, QMP_ERROR, QMP_ERROR_DISCONNECTED))
    g_message ("QMP %s failed: %s", command, error->message);
}

void
vm_qemu_command (Vm *vm, const char *command)
{
  if (vm_get_qmp (vm) == NULL)
    return;
  qmp_client_execute_async (vm->qmp, command, NULL, NULL, 0, VM_QMP_COMMAND_TIMEOUT_MS,
                            vm->cancel, on_command_done, g_strdup (command));
}

void
vm_qemu_signal (Vm *vm, int signo)
{
  if (vm->pid <= 0)
    return;
  /* The pidfd (adopted) or our own unreaped child: the pid cannot have been reused. */
  if (vm->pidfd >= 0)
    syscall (SYS_pidfd_send_signal, vm->pidfd, signo, NULL, 0);
  else if (vm->inst != NULL && vm->inst->process != NULL)
    g_subprocess_send_signal (vm->inst->process, signo);
}

gboolean
vm_qemu_is_stopped (Vm *vm)
{
  g_autofree char *path = NULL;
  g_autofree char *stat = NULL;
  const char *end;

  if (vm->pid <= 0)
    return FALSE;
  path = g_strdup_printf ("/proc/%d/stat", (int) vm->pid);
  if (!g_file_get_contents (path, &stat, NULL, NULL))
    return FALSE;
  /* "PID (COMM) STATE ...": COMM may hold spaces and parentheses; the last ')' ends it. */
  end = strrchr (stat, ')');
  return end != NULL && end[1] == ' ' && end[2] == 'T';
}

void
vm_qemu_release (Vm *vm)
{
  if (vm->cancel != NULL)
    g_cancellable_cancel (vm->cancel);
  g_clear_object (&vm->cancel);
  g_clear_pointer (&vm->qmp, qmp_client_free);
  g_clear_handle_id (&vm->pidfd_watch, g_source_remove);
  fd_close_if_valid (vm->pidfd);
  vm->pidfd = -1;
  g_clear_handle_id (&vm->stop_timer, g_source_remove);
  g_clear_handle_id (&vm->health_timer, g_source_remove);
  g_clear_handle_id (&vm->reconnect_timer, g_source_remove);
  vm->health_misses = 0;
}

static void
on_health_reply (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);
  Vm *vm = data;

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;
  vm->health_last_check = g_get_real_time ();
  g_free (vm->health_last_result);
  vm->health_last_result = reply != NULL && JSON_NODE_HOLDS_OBJECT (reply)
                           ? g_strdup ("ok")
                           : g_strdup_printf ("missed: %s", error ? error->message : "not an object");
  if (reply != NULL && JSON_NODE_HOLDS_OBJECT (reply))
    {
      vm->health_misses = 0;
      vm->health_last_ok = g_get_real_time ();
      vm->health_answers++;
      vm_guest_health_run_status (vm, json_object_get_string_member_with_default (
          json_node_get_object (reply), "status", "?"));
      g_free (vm->run_status);
      vm->run_status = g_strdup (json_object_get_string_member_with_default (
          json_node_get_object (reply), "status", "?"));
      return;
    }
  vm->health_misses++;
  g_debug ("vm '%s': query-status missed (%u): %s", vm->config->name, vm->health_misses,
           error ? error->message : "not an object");
  if ((gint64) vm->health_misses >= vm->config->health.qmp_failures)
    vm_handle_event (vm, VM_EVENT_HEALTH_TIMEOUT);
}

static gboolean
on_health_tick (gpointer data)
{
  Vm *vm = data;

  /* One query per tick, each with its own timeout: a wedged QEMU is found after
   * interval x failures + timeout, not failures x (interval + timeout). */
  if (vm->qmp == NULL)
    return G_SOURCE_CONTINUE;
  qmp_client_execute_async (vm->qmp, "query-status", NULL, NULL, 0,
                            (guint) vm->config->health.qmp_timeout_ms, vm->cancel,
                            on_health_reply, vm);
  return G_SOURCE_CONTINUE;
}

void
vm_health_start (Vm *vm)
{
  g_clear_handle_id (&vm->health_timer, g_source_remove);
  vm->health_misses = 0;
  vm->health_timer = g_timeout_add ((guint) vm->config->health.qmp_interval_ms, on_health_tick, vm);
}

/* TRUE when /proc/PID/cmdline is exactly the argv we saved for this VM. */
static gboolean
pid_runs_argv (pid_t pid, const char *argv_text)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/cmdline", (int) pid);
  g_autofree char *cmdline = NULL;
  gsize len;

  if (!g_file_get_contents (path, &cmdline, &len, NULL))
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (cmdline[i] == '\0')
      cmdline[i] = '\n';
  return len == strlen (argv_text) && memcmp (cmdline, argv_text, len) == 0;
}

static void
remove_stale_runtime (const char *dir)
{
  static const char *const files[] = { "pid", "argv", "qmp.sock", "serial.sock", "agent.sock" };

  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (dir, files[i], NULL);
      g_unlink (path);
    }
  g_rmdir (dir);
}

gboolean
vm_adopt (Vm *vm)
{
  g_autofree char *dir = qemu_instance_dir (vm->host, vm->config->name);
  g_autofree char *pid_path = g_build_filename (dir, "pid", NULL);
  g_autofree char *argv_path = g_build_filename (dir, "argv", NULL);
  g_autofree char *pid_text = NULL, *argv_text = NULL;
  g_autofree char *log_file = g_strdup_printf ("%s.log", vm->config->name);
  gint64 pid = 0;
  int pidfd;

  if (!g_file_get_contents (pid_path, &pid_text, NULL, NULL))
    return FALSE;
  if (!g_file_get_contents (argv_path, &argv_text, NULL, NULL)
      || !g_ascii_string_to_signed (g_strstrip (pid_text), 10, 2, G_MAXINT, &pid, NULL)
      || !pid_runs_argv ((pid_t) pid, argv_text)
      || (pidfd = (int) syscall (SYS_pidfd_open, (pid_t) pid, 0)) < 0)
    {
      g_message ("vm '%s': no live QEMU from an earlier vmherdd (stale %s removed)",
                 vm->config->name, dir);
      remove_stale_runtime (dir);
      return FALSE;
    }
  vm->inst = g_new0 (QemuInstance, 1);
  vm->inst->dir = g_steal_pointer (&dir);
  vm->inst->qmp_path = g_build_filename (vm->inst->dir, "qmp.sock", NULL);
  vm->inst->serial_path = g_build_filename (vm->inst->dir, "serial.sock", NULL);
  vm->inst->log_path = g_build_filename (vm->host->log_dir, log_file, NULL);
  vm->inst->pid = vm->pid = (pid_t) pid;
  vm->pidfd = pidfd;
  vm->pidfd_watch = g_unix_fd_add (pidfd, G_IO_IN, on_pidfd, vm);
  vm->cancel = g_cancellable_new ();
  vm->log_offset = -1;          /* its stderr started before we came */
  vm->adopting = TRUE;
  vm->admin_stop = FALSE;
  vm_set_state (vm, VM_STATE_STARTING, "found QEMU pid %d from an earlier vmherdd", (int) pid);
  vm_qemu_connect (vm);
  return TRUE;
}
