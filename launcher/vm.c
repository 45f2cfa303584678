/* vm.c: one guest's state machine.  Every transition goes through vm_handle_event(). */
#include "launcher/vm-private.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>

static const char *const state_names[] = {
  "stopped", "starting", "running", "paused", "stopping", "backoff", "failed", "migrating",
};
static const char *const event_names[] = {
  "start", "qmp-ready", "start-failed", "exited", "shutdown", "health-timeout", "stop",
  "stop-step-timeout", "backoff-done", "paused", "resumed", "probe-failed",
  "guest-failed",
};
static const char *const step_names[] = { "none", "powerdown", "quit", "term", "kill" };

const char *vm_state_to_string (VmState s) { return state_names[s]; }
const char *vm_event_to_string (VmEvent e) { return event_names[e]; }
const char *vm_stop_step_to_string (VmStopStep s) { return step_names[s]; }

void
vm_log (Vm *vm, const char *format, ...)
{
  g_autofree char *text = NULL;
  g_autofree char *file = g_strdup_printf ("%s.log", vm->config->name);
  g_autofree char *path = g_build_filename (vm->host->log_dir, file, NULL);
  va_list ap;

  va_start (ap, format);
  text = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_message ("vm '%s': %s", vm->config->name, text);
  qemu_log_line (path, "%s", text);
}

void
vm_set_state (Vm *vm, VmState state, const char *format, ...)
{
  VmHistoryEntry *entry = g_new0 (VmHistoryEntry, 1);
  VmState old = vm->state;
  va_list ap;

  va_start (ap, format);
  entry->reason = g_strdup_vprintf (format, ap);
  va_end (ap);
  entry->time = g_get_real_time ();
  entry->state = state;
  g_queue_push_tail (&vm->history, entry);
  while (vm->history.length > VM_HISTORY_MAX)
    {
      VmHistoryEntry *old_entry = g_queue_pop_head (&vm->history);
      g_free (old_entry->reason);
      g_free (old_entry);
    }
  vm->state = state;
  vm_log (vm, "%s -> %s: %s", state_names[old], state_names[state], entry->reason);
  vm_probes_state_changed (vm, old);
  vm_agent_state_changed (vm, old);
  vm_storage_state_changed (vm);
  if (vm->observer->state_changed != NULL)
    vm->observer->state_changed (vm, old, entry->reason, vm->observer_data);
}

Vm *
vm_new (VmConfig *config, const HostConfig *host, const QemuHostCaps *caps,
        const VmObserver *observer, gpointer observer_data)
{
  Vm *vm = g_new0 (Vm, 1);

  vm->config = config;
  vm->host = host;
  vm->caps = caps;
  vm->observer = observer;
  vm->observer_data = observer_data;
  vm->pidfd = -1;
  vm->backoff_ms = VM_BACKOFF_MIN_MS;
  g_queue_init (&vm->history);
  g_queue_init (&vm->failures);
  return vm;
}

static void
history_entry_free (gpointer data)
{
  VmHistoryEntry *entry = data;

  g_free (entry->reason);
  g_free (entry);
}

void
vm_free (Vm *vm)
{
  if (vm == NULL)
    return;
  /* Leaves QEMU running: a daemon exit never takes a guest down. */
  vm_qemu_release (vm);
  g_clear_handle_id (&vm->backoff_timer, g_source_remove);
  g_clear_pointer (&vm->inst, qemu_instance_free);
  g_queue_clear_full (&vm->history, history_entry_free);
  g_queue_clear (&vm->failures);
  vm_config_free (vm->config);
  vm_config_free (vm->pending);
  g_free (vm->pending_summary);
  g_free (vm->config_error);
  g_free (vm->exit_status);
  g_free (vm->shutdown_reason);
  g_free (vm->failing);
  g_free (vm->last_failure);
  g_free (vm->run_status);
  g_free (vm->migration_peer);
  g_free (vm->migrated_to);
  g_free (vm->health_last_result);
  vm_guest_health_clear (&vm->guest);
  vm_storage_clear (&vm->storage);
  vm_probes_free (vm);
  vm_agent_free (vm);
  g_free (vm);
}

const char *vm_get_name (Vm *vm) { return vm->config->name; }
VmState vm_get_state (Vm *vm) { return vm->state; }
const VmConfig *vm_get_config (Vm *vm) { return vm->config; }

QmpClient *
vm_get_qmp (Vm *vm)
{
  if (vm->qmp == NULL || qmp_client_get_state (vm->qmp) != QMP_CLIENT_STATE_READY)
    return NULL;
  return vm->qmp;
}

gboolean
vm_set_pending_config (Vm *vm, VmConfig *config, const char *summary)
{
  if (vm->state == VM_STATE_STOPPED || vm->state == VM_STATE_FAILED)
    {
      /* Nothing runs on the old config: the new one applies now. */
      vm_config_free (vm->config);
      vm->config = config;
      g_clear_pointer (&vm->pending, vm_config_free);
      g_clear_pointer (&vm->pending_summary, g_free);
      vm_log (vm, "config reloaded: %s", summary);
      return TRUE;
    }
  vm_config_free (vm->pending);
  vm->pending = config;
  g_free (vm->pending_summary);
  vm->pending_summary = g_strdup (summary);
  vm_log (vm, "config changed (%s); applies at next restart", summary);
  return FALSE;
}

void
vm_drop_pending_config (Vm *vm)
{
  if (vm->pending == NULL)
    return;
  g_clear_pointer (&vm->pending, vm_config_free);
  g_clear_pointer (&vm->pending_summary, g_free);
  vm_log (vm, "config changed back to what runs; nothing pending");
}

void
vm_set_config_error (Vm *vm, const char *error)
{
  g_free (vm->config_error);
  vm->config_error = g_strdup (error);
}

void
vm_mark_removed (Vm *vm)
{
  vm->removed = TRUE;
  if (vm->state != VM_STATE_STOPPED && vm->state != VM_STATE_FAILED)
    vm_handle_event (vm, VM_EVENT_STOP);
}

gboolean
vm_is_removable (Vm *vm)
{
  return vm->removed && (vm->state == VM_STATE_STOPPED || vm->state == VM_STATE_FAILED);
}

static gboolean
on_backoff_done (gpointer data)
{
  Vm *vm = data;

  vm->backoff_timer = 0;
  vm_handle_event (vm, VM_EVENT_BACKOFF_DONE);
  return G_SOURCE_REMOVE;
}

/* A run ended badly: restart per policy with backoff, or give up. */
static void
vm_fail (Vm *vm, const char *reason)
{
  gint64 now = g_get_monotonic_time ();
  gint64 window = vm->config->restart_window_ms * 1000;
  gint64 ran_ms = vm->run_started ? (now - vm->run_started) / 1000 : 0;
  gint64 since_start_ms;

  g_free (vm->last_failure);
  vm->last_failure = g_strdup (reason);
  g_queue_push_tail (&vm->failures, GSIZE_TO_POINTER ((gsize) now));
  while (vm->failures.length > 0
         && now - (gint64) GPOINTER_TO_SIZE (g_queue_peek_head (&vm->failures)) > window)
    g_queue_pop_head (&vm->failures);
  if (ran_ms >= VM_BACKOFF_RESET_MS)
    vm->backoff_ms = VM_BACKOFF_MIN_MS;
  vm->run_started = 0;
  if (vm->removed || vm->config->restart == VM_RESTART_NO)
    return vm_set_state (vm, VM_STATE_STOPPED, "%s; restart = no", reason);
  if ((gint64) vm->failures.length > vm->config->restart_limit)
    return vm_set_state (vm, VM_STATE_FAILED, "%s; %u failures within %" G_GINT64_FORMAT
                         " s, giving up until an operator starts it", reason,
                         vm->failures.length, vm->config->restart_window_ms / 1000);
  /* Starts are at least backoff_ms apart, counted from the failed run's start: a guest
   * that ran for a while is back at once; one that fails as it starts waits 1 s, 2 s... */
  since_start_ms = vm->last_start ? (now - vm->last_start) / 1000 : 0;
  vm->backoff_timer = g_timeout_add ((guint) MAX (0, vm->backoff_ms - since_start_ms), on_backoff_done, vm);
  vm_set_state (vm, VM_STATE_BACKOFF, "%s; restarting with a backoff of %" G_GINT64_FORMAT
                " ms from its last start (attempt %u of %" G_GINT64_FORMAT ")", reason,
                vm->backoff_ms, vm->failures.length, vm->config->restart_limit);
  vm->backoff_ms = MIN (vm->backoff_ms * 2, VM_BACKOFF_MAX_MS);
}

static void
on_disks_ready (Vm *vm, GError *taken)
{
  g_autoptr(GError) error = taken;
  g_autoptr(GError) spawn_error = NULL;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;                     /* stopped (or freed) while qemu-img ran */
  if (error != NULL || !vm_qemu_spawn (vm, &spawn_error))
    {
      vm_qemu_release (vm);
      vm_fail (vm, error ? error->message : spawn_error->message);
      return;
    }
  vm_qemu_connect (vm);
}

static void
do_start (Vm *vm)
{
  if (vm->pending != NULL)
    {
      vm_config_free (vm->config);
      vm->config = g_steal_pointer (&vm->pending);
      vm_log (vm, "using the changed config (%s)", vm->pending_summary);
      g_clear_pointer (&vm->pending_summary, g_free);
    }
  g_clear_pointer (&vm->shutdown_reason, g_free);
  g_clear_pointer (&vm->failing, g_free);
  g_clear_pointer (&vm->exit_status, g_free);
  vm->admin_stop = FALSE;
  vm->stop_step = VM_STOP_STEP_NONE;
  vm->last_start = g_get_monotonic_time ();
  vm_set_state (vm, VM_STATE_STARTING, "starting QEMU");
  vm->cancel = g_cancellable_new ();
  if (vm_disks_need_preparing (vm))
    vm_disks_prepare_async (vm, on_disks_ready);
  else
    on_disks_ready (vm, NULL);
}

static gboolean
on_stop_step_timeout (gpointer data)
{
  Vm *vm = data;

  vm->stop_timer = 0;
  vm_handle_event (vm, VM_EVENT_STOP_STEP_TIMEOUT);
  return G_SOURCE_REMOVE;
}

/* The stop ladder: system_powerdown -> quit -> SIGTERM -> SIGKILL, each with a timeout. */
static void
enter_stop_step (Vm *vm, VmStopStep step)
{
  gint64 timeout_ms = 10000;
  gboolean have_qmp = vm_get_qmp (vm) != NULL;

  if (!have_qmp && (step == VM_STOP_STEP_POWERDOWN || step == VM_STOP_STEP_QUIT))
    step = VM_STOP_STEP_TERM;
  vm->stop_step = step;
  g_clear_handle_id (&vm->stop_timer, g_source_remove);
  switch (step)
    {
    case VM_STOP_STEP_POWERDOWN:
      timeout_ms = vm->stop_timeout_ms ? vm->stop_timeout_ms : vm->config->powerdown_timeout_ms;
      vm_qemu_command (vm, "system_powerdown");
      break;
    case VM_STOP_STEP_QUIT:
      timeout_ms = vm->config->quit_timeout_ms;
      vm_qemu_command (vm, "quit");
      break;
    case VM_STOP_STEP_TERM:
      if (vm_qemu_is_stopped (vm))
        {
          /* A SIGTERM waits until the process is continued: waiting for it is time lost. */
          vm_log (vm, "QEMU pid %d is stopped (SIGSTOP): SIGTERM cannot reach it", (int) vm->pid);
          return enter_stop_step (vm, VM_STOP_STEP_KILL);
        }
      timeout_ms = vm->config->term_timeout_ms;
      vm_qemu_signal (vm, SIGTERM);
      break;
    case VM_STOP_STEP_KILL:
      vm_qemu_signal (vm, SIGKILL);
      break;
    case VM_STOP_STEP_NONE:
      g_return_if_reached ();
    }
  vm_log (vm, "stop: %s (next step in %" G_GINT64_FORMAT " ms)", step_names[step], timeout_ms);
  vm->stop_timer = g_timeout_add ((guint) timeout_ms, on_stop_step_timeout, vm);
}

void
vm_enter_stop_step (Vm *vm, VmStopStep step)
{
  enter_stop_step (vm, step);
}

static void
begin_stop (Vm *vm, VmStopStep first, const char *why)
{
  vm_set_state (vm, VM_STATE_STOPPING, "%s", why);
  enter_stop_step (vm, first);
}

/* QEMU is gone: decide what its end means. */
static void
on_exited (Vm *vm)
{
  VmState was = vm->state;
  g_autofree char *how = g_strdup (vm->exit_status ? vm->exit_status : "exited");
  g_autofree char *shutdown = g_strdup (vm->shutdown_reason);
  gboolean admin = vm->admin_stop;
  g_autofree char *failing = g_strdup (vm->failing);
  /* A start that died on an image lock: say which image, whichever way QEMU's end was
   * seen first (QMP closing or the exit). */
  g_autofree char *locked = was == VM_STATE_STARTING ? vm_qemu_lock_failure (vm) : NULL;

  vm_qemu_release (vm);
  g_clear_pointer (&vm->inst, qemu_instance_free);
  vm->pid = 0;
  if (vm->migrated_to != NULL)
    return vm_set_state (vm, VM_STATE_STOPPED, "migrated to %s (source QEMU %s)", vm->migrated_to, how);
  if (vm->incoming)
    {
      /* Never restarted: the guest runs on the source. */
      vm->incoming = FALSE;
      return vm_set_state (vm, VM_STATE_STOPPED, "incoming migration ended: QEMU %s", how);
    }
  if (was == VM_STATE_STOPPING && admin)
    return vm_set_state (vm, VM_STATE_STOPPED, "%s (QEMU %s)",
                         vm->removed ? "its file is gone: stopped" : "stopped by operator", how);
  if (locked != NULL)
    {
      g_autofree char *reason = g_strdup_printf ("%s; QEMU %s while starting", locked, how);
      return vm_fail (vm, reason);
    }
  if (failing != NULL)
    {
      g_autofree char *reason = g_strdup_printf ("%s; QEMU %s", failing, how);
      return vm_fail (vm, reason);
    }
  if (shutdown != NULL && strcmp (shutdown, "guest-shutdown") == 0)
    {
      vm->run_started = 0;
      if (vm->config->restart == VM_RESTART_ALWAYS && !vm->removed)
        {
          vm->backoff_timer = g_timeout_add (VM_BACKOFF_MIN_MS, on_backoff_done, vm);
          return vm_set_state (vm, VM_STATE_BACKOFF, "the guest powered off; restart = always");
        }
      return vm_set_state (vm, VM_STATE_STOPPED, "the guest powered off");
    }
  if (shutdown != NULL && strcmp (shutdown, "host-qmp-quit") == 0)
    return vm_set_state (vm, VM_STATE_STOPPED, "QEMU quit on a QMP request");
  if (shutdown != NULL)
    {
      g_autofree char *reason = g_strdup_printf ("QEMU shut down (%s), %s", shutdown, how);
      return vm_fail (vm, reason);
    }
  g_autofree char *reason = g_strdup_printf ("QEMU %s unexpectedly%s", how,
                                             was == VM_STATE_STARTING ? " while starting" : "");
  vm_fail (vm, reason);
}

static void
on_shutdown_event (Vm *vm)
{
  /* -no-shutdown keeps QEMU up after a guest poweroff or panic: we saw why, now quit. */
  if (vm->state == VM_STATE_STOPPING && vm->stop_step >= VM_STOP_STEP_QUIT)
    return;
  if (vm->state != VM_STATE_STOPPING)
    vm_set_state (vm, VM_STATE_STOPPING, "QEMU reported SHUTDOWN (%s)",
                  vm->shutdown_reason ? vm->shutdown_reason : "?");
  enter_stop_step (vm, VM_STOP_STEP_QUIT);
}

void
vm_handle_event (Vm *vm, VmEvent event)
{
  VmState s = vm->state;

  g_debug ("vm '%s': event %s in state %s", vm->config->name, event_names[event], state_names[s]);
  switch (event)
    {
    case VM_EVENT_START:
    case VM_EVENT_BACKOFF_DONE:
      if (s == VM_STATE_STOPPED || s == VM_STATE_FAILED || s == VM_STATE_BACKOFF)
        {
          g_clear_handle_id (&vm->backoff_timer, g_source_remove);
          if (event == VM_EVENT_BACKOFF_DONE)
            vm->restarts++;
          do_start (vm);
        }
      break;
    case VM_EVENT_QMP_READY:
      if (s == VM_STATE_STARTING)
        {
          vm->run_started = g_get_monotonic_time ();
          vm->run_started_real = g_get_real_time ();
          vm_set_state (vm, VM_STATE_RUNNING, vm->adopting ? "re-adopted a running QEMU (pid %d)"
                                                           : "QMP ready, guest running (pid %d)",
                        (int) vm->pid);
          if (!vm->adopting)
            vm_net_announce (vm);
          vm->adopting = FALSE;
          vm_health_start (vm);
        }
      break;
    case VM_EVENT_START_FAILED:
      if (s == VM_STATE_STARTING && vm->failing == NULL)
        {
          /* QEMU may live on with QMP silent, or be on its way out (a bad option closes
           * QMP just before the exit is seen): kill it either way, still starting, and let
           * EXITED end the run, so the states do not depend on which came first. */
          vm->failing = g_strdup (vm->last_failure);
          vm_log (vm, "killing QEMU pid %d: %s", (int) vm->pid, vm->failing);
          vm_qemu_signal (vm, SIGKILL);
        }
      break;
    case VM_EVENT_EXITED:
      if (s != VM_STATE_STOPPED && s != VM_STATE_FAILED && s != VM_STATE_BACKOFF)
        on_exited (vm);
      break;
    case VM_EVENT_SHUTDOWN:
      if (s == VM_STATE_RUNNING || s == VM_STATE_PAUSED || s == VM_STATE_STOPPING
          || s == VM_STATE_STARTING || (s == VM_STATE_MIGRATING && !vm->incoming))
        on_shutdown_event (vm);
      break;
    case VM_EVENT_HEALTH_TIMEOUT:
      if (s == VM_STATE_PAUSED && vm_storage_outage (vm))
        {
          /* QEMU's main loop may wait on the hung storage too: killing it would lose the
           * guest that the pause is there to keep. */
          if (!vm->storage.qmp_silent_logged)
            vm_log (vm, "QEMU does not answer QMP while paused for a disk error (%u query-status "
                    "missed; blocked on the storage?); not killed", vm->health_misses);
          vm->storage.qmp_silent_logged = TRUE;
        }
      else if (s == VM_STATE_RUNNING || s == VM_STATE_PAUSED || (s == VM_STATE_MIGRATING && !vm->incoming))
        {
          vm->failing = g_strdup_printf ("QEMU stopped answering QMP (%u query-status missed)",
                                         vm->health_misses);
          begin_stop (vm, VM_STOP_STEP_TERM, vm->failing);
        }
      break;
    case VM_EVENT_PROBE_FAILED:
      if (s == VM_STATE_RUNNING && vm->failing == NULL)
        {
          /* QEMU answers, the service does not: quit it (no powerdown: the guest is sick). */
          vm->failing = g_strdup (vm->probe_failure);
          begin_stop (vm, VM_STOP_STEP_QUIT, vm->failing);
        }
      break;
    case VM_EVENT_STOP:
      vm->admin_stop = TRUE;
      if (s == VM_STATE_BACKOFF || s == VM_STATE_FAILED)
        {
          g_clear_handle_id (&vm->backoff_timer, g_source_remove);
          vm_set_state (vm, VM_STATE_STOPPED, vm->removed ? "its file is gone: stopped"
                                                          : "stopped by operator");
        }
      else if (s == VM_STATE_STARTING && vm->pid == 0)
        {
          vm_qemu_release (vm);   /* cancels qemu-img */
          vm_set_state (vm, VM_STATE_STOPPED, "stopped by operator before QEMU started");
        }
      else if (s == VM_STATE_RUNNING || s == VM_STATE_PAUSED || s == VM_STATE_STARTING)
        begin_stop (vm, s == VM_STATE_STARTING || vm->stop_force ? VM_STOP_STEP_QUIT
                                                                 : VM_STOP_STEP_POWERDOWN,
                    vm->removed ? "its file is gone" : vm->stop_force ? "stop --force requested"
                                                                       : "stop requested");
      break;
    case VM_EVENT_PAUSED:
      if (s == VM_STATE_RUNNING)
        {
          g_autofree char *why = vm_guest_health_take_pause_reason (vm);
          vm_set_state (vm, VM_STATE_PAUSED, "%s", why);
        }
      break;
    case VM_EVENT_GUEST_FAILED:
      if ((s == VM_STATE_RUNNING || s == VM_STATE_PAUSED || (s == VM_STATE_MIGRATING && !vm->incoming))
          && vm->failing == NULL)
        {
          vm->failing = g_strdup (vm->guest.failure);
          begin_stop (vm, VM_STOP_STEP_QUIT, vm->failing);
        }
      break;
    case VM_EVENT_RESUMED:
      if (s == VM_STATE_PAUSED)
        vm_set_state (vm, VM_STATE_RUNNING, "vCPUs running again (QMP RESUME)");
      break;
    case VM_EVENT_STOP_STEP_TIMEOUT:
      if (s == VM_STATE_STOPPING && vm->stop_step < VM_STOP_STEP_KILL)
        enter_stop_step (vm, vm->stop_step + 1);
      else if (s == VM_STATE_STOPPING)
        vm_log (vm, "QEMU pid %d survives SIGKILL (stuck in the kernel?); still waiting",
                (int) vm->pid);
      break;
    }
}

gboolean
vm_request_start (Vm *vm, GError **error)
{
  if (vm->state != VM_STATE_STOPPED && vm->state != VM_STATE_FAILED
      && vm->state != VM_STATE_BACKOFF)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "vm '%s' is already %s",
                   vm->config->name, state_names[vm->state]);
      return FALSE;
    }
  if (vm->state == VM_STATE_FAILED)
    g_queue_clear (&vm->failures);   /* an operator start clears the failure count */
  vm->backoff_ms = VM_BACKOFF_MIN_MS;
  vm_handle_event (vm, VM_EVENT_START);
  return TRUE;
}

gboolean
vm_request_stop (Vm *vm, gboolean force, gint64 timeout_ms, GError **error)
{
  if (vm->state == VM_STATE_STOPPED)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "vm '%s' is already stopped",
                   vm->config->name);
      return FALSE;
    }
  if (vm->state == VM_STATE_MIGRATING)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "vm '%s' is migrating (cancel the "
                   "migration first: vmherd migrate --cancel %s)", vm->config->name,
                   vm->config->name);
      return FALSE;
    }
  vm->stop_timeout_ms = timeout_ms;
  if (vm->state == VM_STATE_STOPPING)
    {
      vm->admin_stop = TRUE;
      if (force && vm->stop_step < VM_STOP_STEP_QUIT)
        enter_stop_step (vm, VM_STOP_STEP_QUIT);
      return TRUE;
    }
  vm->stop_force = force;
  vm_handle_event (vm, VM_EVENT_STOP);
  return TRUE;
}

gboolean
vm_request_qmp (Vm *vm, const char *command, GError **error)
{
  if (vm_get_qmp (vm) == NULL || (vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "vm '%s' is %s, not running",
                   vm->config->name, state_names[vm->state]);
      return FALSE;
    }
  vm_qemu_command (vm, command);
  return TRUE;
}
