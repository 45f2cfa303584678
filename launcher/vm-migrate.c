/* vm-migrate.c: a guest's side of a live migration.  The daemon's migration jobs
 * (migrate-source.c, migrate-dest.c) drive QMP; these move the state machine so that
 * supervision neither restarts a guest that is moving nor forgets one that stayed. */
#include "launcher/vm-private.h"

#include <signal.h>

gboolean
vm_is_incoming (Vm *vm)
{
  return vm->incoming;
}

pid_t
vm_get_pid (Vm *vm)
{
  return vm->pid;
}

gboolean
vm_migration_begin (Vm *vm, const char *to, gboolean *out_was_running, GError **error)
{
  if (vm->state == VM_STATE_MIGRATING)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "vm '%s' is already migrating%s%s",
                   vm->config->name, vm->migration_peer ? " with " : "",
                   vm->migration_peer ? vm->migration_peer : "");
      return FALSE;
    }
  if ((vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED) || vm_get_qmp (vm) == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                   "vm '%s' is %s: only a running or paused guest can migrate (start it, or move "
                   "its file to the other host's vm-dir)", vm->config->name, vm_state_to_string (vm->state));
      return FALSE;
    }
  *out_was_running = vm->state == VM_STATE_RUNNING;
  g_free (vm->migration_peer);
  vm->migration_peer = g_strdup (to);
  vm_set_state (vm, VM_STATE_MIGRATING, "migrating to %s", to);
  return TRUE;
}

void
vm_migration_rolled_back (Vm *vm, gboolean running, const char *reason)
{
  g_clear_pointer (&vm->migration_peer, g_free);
  if (vm->state != VM_STATE_MIGRATING)
    return;                     /* QEMU died or was stopped meanwhile: that state stands */
  vm_set_state (vm, running ? VM_STATE_RUNNING : VM_STATE_PAUSED,
                "migration failed, the guest stays here: %s", reason);
}

void
vm_migration_moved (Vm *vm, const char *to)
{
  g_clear_pointer (&vm->migration_peer, g_free);
  g_free (vm->migrated_to);
  vm->migrated_to = g_strdup (to);
  vm->admin_stop = TRUE;
  if (vm->state == VM_STATE_STARTING && vm->pid > 0)
    {
      vm_set_state (vm, VM_STATE_STOPPING, "migrated to %s: quitting the source QEMU", to);
      vm_enter_stop_step (vm, VM_STOP_STEP_QUIT);
      return;
    }
  if (vm->state != VM_STATE_MIGRATING)
    return;
  /* The source QEMU is paused in postmigrate: no powerdown, straight to quit. */
  vm_set_state (vm, VM_STATE_STOPPING, "migrated to %s: quitting the source QEMU", to);
  vm_enter_stop_step (vm, VM_STOP_STEP_QUIT);
}

void
vm_start_incoming (Vm *vm, const char *from, VmIncomingReady ready, gpointer user_data)
{
  g_autoptr(GError) error = NULL;

  vm->incoming = TRUE;
  vm->incoming_ready = ready;
  vm->incoming_data = user_data;
  g_free (vm->migration_peer);
  vm->migration_peer = g_strdup (from);
  vm->admin_stop = FALSE;
  vm->last_start = g_get_monotonic_time ();
  vm_set_state (vm, VM_STATE_MIGRATING, "incoming migration from %s: starting QEMU", from);
  vm->cancel = g_cancellable_new ();
  if (!vm_qemu_spawn (vm, &error))
    {
      vm_qemu_release (vm);
      vm->incoming = FALSE;
      vm_set_state (vm, VM_STATE_STOPPED, "incoming migration: %s", error->message);
      ready (vm, error, user_data);
      return;
    }
  vm_qemu_connect (vm);
}

void
vm_incoming_qmp_up (Vm *vm, const GError *error)
{
  VmIncomingReady ready = vm->incoming_ready;

  vm->incoming_ready = NULL;
  if (ready != NULL)
    ready (vm, error, vm->incoming_data);
}

void
vm_incoming_done (Vm *vm)
{
  g_autofree char *from = g_steal_pointer (&vm->migration_peer);

  vm->incoming = FALSE;
  vm->incoming_ready = NULL;
  vm->run_started = g_get_monotonic_time ();
  vm->run_started_real = g_get_real_time ();
  vm_set_state (vm, VM_STATE_RUNNING, "migrated here from %s, guest running (pid %d)",
                from ? from : "?", (int) vm->pid);
  vm_net_announce (vm);
  vm_health_start (vm);
}

void
vm_incoming_abort (Vm *vm, const char *reason)
{
  vm->incoming_ready = NULL;
  if (!vm->incoming)
    return;
  if (vm->pid > 0)
    {
      vm_log (vm, "incoming migration aborted (%s): killing QEMU pid %d", reason, (int) vm->pid);
      vm_qemu_signal (vm, SIGKILL);   /* its exit ends the VM here (vm.c: on_exited) */
      return;
    }
  vm_qemu_release (vm);
  vm->incoming = FALSE;
  vm_set_state (vm, VM_STATE_STOPPED, "incoming migration aborted: %s", reason);
}

const char *
vm_get_migrated_to (Vm *vm)
{
  return vm->migrated_to;
}
