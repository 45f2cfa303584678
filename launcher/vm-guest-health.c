/* vm-guest-health.c: the guest's watchdog (i6300esb) and panics (pvpanic), and the run
 * states QEMU reports that the daemon did not ask for, acted on per [health]:
 *
 *   WATCHDOG reset     counted and logged; QEMU resets the guest itself (same process)
 *   WATCHDOG poweroff  QEMU exits at once: the run ends as a failure, restarted per policy
 *   WATCHDOG pause     counted; the VM is paused with the watchdog as its reason
 *   GUEST_PANICKED     the serial log's tail is kept; panic = restart ends the run as a
 *                      failure (restart per policy), panic = pause leaves it paused
 *   internal-error     the run ends as a failure
 *   BLOCK_IO_ERROR, io-error   paused, never restarted: vm-storage.c checks the storage
 *                      and resumes the guest once it answers
 *   watchdog, shutdown (no event seen)   logged, left as they are
 */
#include "launcher/vm-private.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fd-util.h"

void
vm_guest_health_clear (VmGuestHealth *health)
{
  g_clear_pointer (&health->watchdog_last_action, g_free);
  g_clear_pointer (&health->panic_action, g_free);
  g_clear_pointer (&health->panic_tail, g_free);
  g_clear_pointer (&health->pause_reason, g_free);
  g_clear_pointer (&health->failure, g_free);
  g_clear_pointer (&health->reported_status, g_free);
}

static void
emit (Vm *vm, const char *event, JsonObject *data)
{
  if (vm->observer->guest_event != NULL)
    vm->observer->guest_event (vm, event, data, vm->observer_data);
}

static char *
time_text (gint64 real_us)
{
  g_autoptr(GDateTime) sec = g_date_time_new_from_unix_local (real_us / G_USEC_PER_SEC);
  g_autoptr(GDateTime) t = g_date_time_add (sec, real_us % G_USEC_PER_SEC);

  return g_date_time_format_iso8601 (t);
}

static void
set_pause_reason (Vm *vm, char *reason)
{
  g_free (vm->guest.pause_reason);
  vm->guest.pause_reason = reason;
}

/* Ends the run as a failure (the state machine stops QEMU and restarts per policy). */
static void
fail_run (Vm *vm, char *reason)
{
  g_free (vm->guest.failure);
  vm->guest.failure = reason;
  vm_handle_event (vm, VM_EVENT_GUEST_FAILED);
}

/* The last VM_PANIC_TAIL_LINES lines of the guest's serial log, "\r" dropped, valid
 * UTF-8; "" when there is no log.  Reads at most VM_PANIC_TAIL_READ_MAX bytes. */
static char *
serial_tail (Vm *vm)
{
  g_autofree char *path = qemu_argv_serial_log (vm->config, vm->host);
  g_auto(AutoFd) fd = open (path, O_RDONLY | O_CLOEXEC);
  g_autofree char *text = NULL, *valid = NULL;
  g_auto(GStrv) lines = NULL;
  struct stat st;
  gint64 start;
  gssize length;
  guint n, first;

  if (fd < 0 || fstat (fd, &st) < 0)
    return g_strdup ("");
  start = MAX ((gint64) st.st_size - VM_PANIC_TAIL_READ_MAX, 0);
  text = g_malloc ((gsize) (st.st_size - start) + 1);
  length = pread (fd, text, (size_t) (st.st_size - start), start);
  text[MAX (length, 0)] = '\0';
  valid = g_utf8_make_valid (text, -1);
  for (char *r = valid, *w = valid;; r++)
    if (*r != '\r' && (*w++ = *r) == '\0')
      break;
  lines = g_strsplit (valid, "\n", -1);
  n = g_strv_length (lines);
  if (n > 0 && lines[n - 1][0] == '\0')
    g_clear_pointer (&lines[--n], g_free);     /* the log ends with a newline */
  first = start > 0 ? 1 : 0;                    /* started in the middle of a line */
  first = MAX (first, n > VM_PANIC_TAIL_LINES ? n - VM_PANIC_TAIL_LINES : 0);
  return first < n ? g_strjoinv ("\n", lines + first) : g_strdup ("");
}

static void
on_panic (Vm *vm, const char *qemu_action)
{
  gboolean restart = vm->config->health.panic == VM_PANIC_RESTART;
  g_autoptr(JsonObject) d = json_object_new ();
  g_autofree char *when = NULL;

  vm->guest.panic_time = g_get_real_time ();
  g_free (vm->guest.panic_action);
  vm->guest.panic_action = g_strdup (restart ? "restart" : "pause");
  g_free (vm->guest.panic_tail);
  vm->guest.panic_tail = serial_tail (vm);
  when = time_text (vm->guest.panic_time);
  vm_log (vm, "the guest panicked (QEMU action %s; panic = %s); the serial log's last lines "
          "are in `vmherd status %s`", qemu_action, vm->guest.panic_action, vm->config->name);
  json_object_set_string_member (d, "reason", restart ? "the guest panicked; panic = restart"
                                                      : "the guest panicked; panic = pause");
  json_object_set_string_member (d, "action", vm->guest.panic_action);
  json_object_set_string_member (d, "time", when);
  json_object_set_string_member (d, "serial-tail", vm->guest.panic_tail);
  emit (vm, "PANIC", d);
  if (restart)
    fail_run (vm, g_strdup ("the guest panicked"));
  else
    set_pause_reason (vm, g_strdup ("the guest panicked (panic = pause: kept for forensics)"));
}

static void
on_watchdog (Vm *vm, const char *action)
{
  g_autoptr(JsonObject) d = json_object_new ();
  g_autofree char *reason = g_strdup_printf ("watchdog fired (action %s)", action);
  g_autofree char *when = NULL;

  vm->guest.watchdog_fired++;
  vm->guest.watchdog_last = g_get_real_time ();
  g_free (vm->guest.watchdog_last_action);
  vm->guest.watchdog_last_action = g_strdup (action);
  when = time_text (vm->guest.watchdog_last);
  vm_log (vm, "%s; %u time%s since vmherdd started", reason, vm->guest.watchdog_fired,
          vm->guest.watchdog_fired == 1 ? "" : "s");
  json_object_set_string_member (d, "reason", reason);
  json_object_set_string_member (d, "action", action);
  json_object_set_int_member (d, "fired", vm->guest.watchdog_fired);
  json_object_set_string_member (d, "time", when);
  emit (vm, "WATCHDOG", d);
  /* reset: QEMU resets the guest in the same process, nothing for us to do.  poweroff:
   * QEMU exits right after the event, with status 0 and no SHUTDOWN. */
  if (strcmp (action, "pause") == 0)
    set_pause_reason (vm, g_strdup ("the guest's watchdog fired (action pause)"));
  else if (strcmp (action, "poweroff") == 0)
    fail_run (vm, g_strdup ("the guest's watchdog fired (action poweroff)"));
}

/* werror/rerror = stop: QEMU pauses the guest; vm-storage.c resumes it. */
static void
on_block_io_error (Vm *vm, JsonObject *d)
{
  const char *node = json_object_get_string_member_with_default (d, "node-name", NULL);
  const char *device = json_object_get_string_member_with_default (d, "device", "");
  const char *operation = json_object_get_string_member_with_default (d, "operation", "?");
  const char *reason = json_object_get_string_member_with_default (d, "reason", "?");

  set_pause_reason (vm, g_strdup_printf ("a disk I/O error on %s (%s: %s); paused until the "
                                         "storage answers, never restarted",
                                         device[0] ? device : node ? node : "?", operation, reason));
  vm_storage_io_error (vm, node, operation, reason,
                       json_object_get_boolean_member_with_default (d, "nospace", FALSE));
}

void
vm_guest_health_qmp_event (Vm *vm, const QmpMessage *event)
{
  JsonObject *d = event->data;
  const char *action = d ? json_object_get_string_member_with_default (d, "action", "?") : "?";

  if (strcmp (event->event, "WATCHDOG") == 0)
    on_watchdog (vm, action);
  else if (strcmp (event->event, "GUEST_PANICKED") == 0)
    on_panic (vm, action);
  else if (strcmp (event->event, "BLOCK_IO_ERROR") == 0 && strcmp (action, "stop") == 0)
    on_block_io_error (vm, d);
  else if (strcmp (event->event, "RESUME") == 0)
    g_clear_pointer (&vm->guest.pause_reason, g_free);
}

void
vm_guest_health_run_status (Vm *vm, const char *status)
{
  static const char *const reported[] = { "io-error", "watchdog", "shutdown", "guest-panicked", NULL };

  if (vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED)
    return;
  if (strcmp (status, "internal-error") == 0)
    return fail_run (vm, g_strdup ("QEMU reports run state internal-error (an emulation failure)"));
  /* A panic whose event we missed (adopted while it happened): the same as the event. */
  if (strcmp (status, "guest-panicked") == 0 && vm->config->health.panic == VM_PANIC_RESTART)
    return on_panic (vm, "unknown: run state guest-panicked");
  if (!g_strv_contains (reported, status))
    {
      g_clear_pointer (&vm->guest.reported_status, g_free);
      return;
    }
  /* Adopted while paused, or the event was missed: the same as BLOCK_IO_ERROR. */
  if (strcmp (status, "io-error") == 0 && !vm_storage_outage (vm))
    vm_storage_io_error (vm, NULL, NULL, NULL, FALSE);
  if (g_strcmp0 (vm->guest.reported_status, status) == 0)
    return;                     /* said once */
  g_free (vm->guest.reported_status);
  vm->guest.reported_status = g_strdup (status);
  if (strcmp (status, "io-error") == 0)
    vm_log (vm, "QEMU reports run state io-error (a disk failed): resumed once its storage "
            "answers, never restarted");
  else
    vm_log (vm, "QEMU reports run state %s; left as it is for an operator", status);
}

char *
vm_guest_health_take_pause_reason (Vm *vm)
{
  char *reason = g_steal_pointer (&vm->guest.pause_reason);

  return reason ? reason : g_strdup ("vCPUs stopped (QMP STOP)");
}

void
vm_guest_health_describe (Vm *vm, JsonObject *o)
{
  JsonObject *w = json_object_new ();

  json_object_set_string_member (w, "action", vm_watchdog_action_to_string (vm->config->health.watchdog));
  json_object_set_int_member (w, "fired", vm->guest.watchdog_fired);
  if (vm->guest.watchdog_last != 0)
    {
      g_autofree char *when = time_text (vm->guest.watchdog_last);
      json_object_set_string_member (w, "last", when);
      json_object_set_string_member (w, "last-action", vm->guest.watchdog_last_action);
    }
  else
    {
      json_object_set_null_member (w, "last");
      json_object_set_null_member (w, "last-action");
    }
  json_object_set_object_member (o, "watchdog", w);
  if (vm->guest.panic_time != 0)
    {
      JsonObject *p = json_object_new ();
      g_autofree char *when = time_text (vm->guest.panic_time);

      json_object_set_string_member (p, "time", when);
      json_object_set_string_member (p, "action", vm->guest.panic_action);
      json_object_set_string_member (p, "serial-tail", vm->guest.panic_tail);
      json_object_set_object_member (o, "last-panic", p);
    }
  else
    json_object_set_null_member (o, "last-panic");
}
