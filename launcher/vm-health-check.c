/* vm-health-check.c: the score of one health check (see vm-health-check.h). */
#include "launcher/vm-health-check.h"

#include "launcher/vm-private.h"

static const char *const state_names[] = { "pending", "ok", "failing" };

void
vm_health_check_init (VmHealthCheck *c, Vm *vm, const char *event, const char *probe,
                      const char *subject, gint64 failures_max, VmProbeAction action,
                      gint64 grace_ms, gint64 run_started)
{
  *c = (VmHealthCheck) { 0 };
  c->vm = vm;
  c->event = event;
  c->probe = g_strdup (probe);
  c->subject = g_strdup (subject);
  c->failures_max = failures_max;
  c->action = action;
  c->grace_end = (run_started ? run_started : g_get_monotonic_time ()) + grace_ms * 1000;
}

void
vm_health_check_clear (VmHealthCheck *c)
{
  g_clear_pointer (&c->probe, g_free);
  g_clear_pointer (&c->subject, g_free);
  g_clear_pointer (&c->last_error, g_free);
}

static void
set_state (VmHealthCheck *c, VmHealthCheckState state)
{
  Vm *vm = c->vm;
  g_autofree char *detail = NULL;

  if (state == c->state)
    return;
  c->state = state;
  if (state == VM_HEALTH_CHECK_OK)
    detail = g_strdup_printf ("answered in %" G_GINT64_FORMAT " ms", c->latency_us / 1000);
  else
    detail = g_strdup_printf ("failed %u times in a row (%s)", c->failures, c->last_error);
  vm_log (vm, "%s: %s, %s", c->subject, state_names[state], detail);
  if (vm->observer->guest_event != NULL)
    {
      g_autoptr(JsonObject) data = json_object_new ();

      if (c->probe != NULL)
        json_object_set_string_member (data, "probe", c->probe);
      json_object_set_string_member (data, "state", state_names[state]);
      json_object_set_string_member (data, "reason", detail);
      vm->observer->guest_event (vm, c->event, data, vm->observer_data);
    }
}

void
vm_health_check_result (VmHealthCheck *c, gboolean ok, const char *error)
{
  Vm *vm = c->vm;

  c->latency_us = g_get_monotonic_time () - c->started;
  c->last_time = g_get_real_time ();
  c->checks++;
  if (ok)
    {
      c->answered = TRUE;
      c->failures = 0;
      g_clear_pointer (&c->last_error, g_free);
      set_state (c, VM_HEALTH_CHECK_OK);
      return;
    }
  g_free (c->last_error);
  c->last_error = g_strdup (error);
  if (!c->answered && g_get_monotonic_time () < c->grace_end)
    {
      g_debug ("vm '%s': %s failed in its grace period: %s", vm->config->name, c->subject, error);
      return;
    }
  c->failures++;
  g_debug ("vm '%s': %s failed (%u): %s", vm->config->name, c->subject, c->failures, error);
  if ((gint64) c->failures < c->failures_max)
    return;
  set_state (c, VM_HEALTH_CHECK_FAILING);
  if ((gint64) c->failures == c->failures_max && c->action == VM_PROBE_ACTION_RESTART)
    {
      g_free (vm->probe_failure);
      vm->probe_failure = g_strdup_printf ("%s failed %u times (%s)", c->subject, c->failures,
                                           error);
      vm_handle_event (vm, VM_EVENT_PROBE_FAILED);
    }
}

void
vm_health_check_describe (const VmHealthCheck *c, gboolean active, JsonObject *o)
{
  json_object_set_string_member (o, "state", c != NULL && active ? state_names[c->state] : "-");
  if (c != NULL && c->last_time != 0)
    {
      g_autoptr(GDateTime) sec = g_date_time_new_from_unix_local (c->last_time / G_USEC_PER_SEC);
      g_autoptr(GDateTime) t = g_date_time_add (sec, c->last_time % G_USEC_PER_SEC);
      g_autofree char *when = g_date_time_format_iso8601 (t);

      json_object_set_string_member (o, "last-time", when);
      json_object_set_double_member (o, "latency-ms", (double) c->latency_us / 1000.0);
    }
  else
    {
      json_object_set_null_member (o, "last-time");
      json_object_set_null_member (o, "latency-ms");
    }
  json_object_set_int_member (o, "failures", c != NULL ? c->failures : 0);
  json_object_set_int_member (o, "checks", c != NULL ? (gint64) c->checks : 0);
  if (c != NULL && c->last_error != NULL)
    json_object_set_string_member (o, "last-error", c->last_error);
  else
    json_object_set_null_member (o, "last-error");
}
