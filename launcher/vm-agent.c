/* vm-agent.c: [health] guest-agent = yes: the QEMU guest agent (qemu-ga) inside a running
 * VM is pinged every agent-interval over the VM's virtio-serial port (QEMU listens on
 * RUN-DIR/vm/NAME/agent.sock), each ping a guest-sync-delimited with a fresh random id and
 * then a guest-ping (qmp/qga-ping.h), all asynchronous, bounded by agent-timeout.  The
 * check is armed when the VM reaches running (first ping at once) and disarmed in any
 * other state, like the probes (vm-probe.c), whose shape, wording and start period
 * (agent-grace: failures are not counted until the first answer or its end) it follows:
 * after agent-failures failures in a row it becomes
 * failing (an AGENT event, `status`, `list`); with agent-action = restart it then ends the
 * run as a failure, through the same state machine event as a probe (VM_EVENT_PROBE_FAILED).
 *
 * One connection is kept while pings succeed.  After a timeout or a broken channel it is
 * closed and the next ping connects again; a request may have been half written, and
 * replies to requests the agent never saw in time may still come: the sync before every
 * ping skips them. */
#include "launcher/vm-private.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <string.h>

#include "qmp/qga-ping.h"

typedef enum { AGENT_PENDING, AGENT_OK, AGENT_FAILING } AgentState;

static const char *const agent_state_names[] = { "pending", "ok", "failing" };

struct _VmAgent
{
  Vm *vm;
  AgentState state;
  gboolean active;              /* the VM runs: the timer is armed */
  guint timer;                  /* every interval */
  gint64 grace_end;             /* monotonic us: failures count from here on... */
  gboolean answered;            /* ...or from the first answer of the run */
  GSocketConnection *connection;   /* to agent.sock, kept between good pings */
  int port_open;                /* -1: not known yet; else whether the guest holds the port */
  /* The ping in flight, if any. */
  gboolean busy;
  gint64 started;               /* monotonic us */
  guint timeout_timer;
  GCancellable *cancel;
  /* Results. */
  gint64 last_time;             /* real us of the last result; 0: none yet */
  gint64 latency_us;
  guint failures;               /* in a row */
  guint64 checks;
  char *last_error;
};

static void
connection_close (VmAgent *agent)
{
  if (agent->connection != NULL)
    g_socket_close (g_socket_connection_get_socket (agent->connection), NULL);
  g_clear_object (&agent->connection);
}

/* Ends the ping in flight; late callbacks see QMP_ERROR_CANCELLED / G_IO_ERROR_CANCELLED. */
static void
attempt_end (VmAgent *agent)
{
  g_clear_handle_id (&agent->timeout_timer, g_source_remove);
  if (agent->cancel != NULL)
    g_cancellable_cancel (agent->cancel);
  g_clear_object (&agent->cancel);
  agent->busy = FALSE;
}

static void
agent_set_state (VmAgent *agent, AgentState state)
{
  Vm *vm = agent->vm;
  g_autofree char *detail = NULL;

  if (state == agent->state)
    return;
  agent->state = state;
  if (state == AGENT_OK)
    detail = g_strdup_printf ("answered in %" G_GINT64_FORMAT " ms", agent->latency_us / 1000);
  else
    detail = g_strdup_printf ("failed %u times in a row (%s)", agent->failures, agent->last_error);
  vm_log (vm, "guest agent: %s, %s", agent_state_names[state], detail);
  if (vm->observer->guest_event != NULL)
    {
      g_autoptr(JsonObject) data = json_object_new ();

      json_object_set_string_member (data, "state", agent_state_names[state]);
      json_object_set_string_member (data, "reason", detail);
      vm->observer->guest_event (vm, "AGENT", data, vm->observer_data);
    }
}

static void
agent_result (VmAgent *agent, gboolean ok, const char *error)
{
  Vm *vm = agent->vm;
  const VmHealth *h = &vm->config->health;

  agent->latency_us = g_get_monotonic_time () - agent->started;
  agent->last_time = g_get_real_time ();
  agent->checks++;
  attempt_end (agent);
  if (ok)
    {
      agent->answered = TRUE;
      agent->failures = 0;
      g_clear_pointer (&agent->last_error, g_free);
      agent_set_state (agent, AGENT_OK);
      return;
    }
  /* The channel may hold half a request or a late reply: start afresh next time. */
  connection_close (agent);
  g_free (agent->last_error);
  agent->last_error = g_strdup (error);
  if (!agent->answered && g_get_monotonic_time () < agent->grace_end)
    {
      g_debug ("vm '%s': guest agent ping failed in its grace period: %s", vm->config->name,
               error);
      return;
    }
  agent->failures++;
  g_debug ("vm '%s': guest agent ping failed (%u): %s", vm->config->name, agent->failures, error);
  if ((gint64) agent->failures < h->agent_failures)
    return;
  agent_set_state (agent, AGENT_FAILING);
  if ((gint64) agent->failures == h->agent_failures && h->agent_action == VM_PROBE_ACTION_RESTART)
    {
      g_free (vm->probe_failure);
      vm->probe_failure = g_strdup_printf ("guest agent failed %u times (%s)", agent->failures,
                                           error);
      vm_handle_event (vm, VM_EVENT_PROBE_FAILED);
    }
}

static gboolean
on_attempt_timeout (gpointer data)
{
  VmAgent *agent = data;
  /* QEMU knows whether anything in the guest has the port open: say it, it is the
   * difference between "qemu-ga is not running" and "qemu-ga hangs". */
  g_autofree char *why = g_strdup_printf ("no answer within %" G_GINT64_FORMAT " ms%s",
                                          agent->vm->config->health.agent_timeout_ms,
                                          agent->port_open == 0
                                          ? "; no agent has the port open in the guest" : "");

  agent->timeout_timer = 0;
  agent_result (agent, FALSE, why);
  return G_SOURCE_REMOVE;
}

static void
on_pinged (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  g_autoptr(GError) error = NULL;

  if (qga_ping_finish (result, &error))
    return agent_result (data, TRUE, NULL);
  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return;                     /* timed out or stopped: the agent may be gone */
  agent_result (data, FALSE, error->message);
}

static void
ping (VmAgent *agent)
{
  qga_ping_async (G_IO_STREAM (agent->connection), qga_sync_id_new (), agent->cancel,
                  on_pinged, agent);
}

static void
on_connected (GObject *source, GAsyncResult *result, gpointer data)
{
  g_autoptr(GError) error = NULL;
  GSocketConnection *connection =
    g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  VmAgent *agent = data;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (connection == NULL)
    {
      g_autofree char *why = g_strdup_printf ("cannot connect to the agent port: %s",
                                              error->message);
      return agent_result (agent, FALSE, why);
    }
  agent->connection = connection;
  ping (agent);
}

static void
attempt (VmAgent *agent)
{
  Vm *vm = agent->vm;
  g_autofree char *path = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketClient) client = NULL;

  if (agent->busy)
    return;                     /* the last one still runs: its timeout ends it */
  agent->busy = TRUE;
  agent->started = g_get_monotonic_time ();
  agent->cancel = g_cancellable_new ();
  agent->timeout_timer = g_timeout_add ((guint) vm->config->health.agent_timeout_ms,
                                        on_attempt_timeout, agent);
  if (agent->connection != NULL)
    return ping (agent);
  if (vm->inst == NULL)
    return agent_result (agent, FALSE, "no QEMU instance");
  path = g_build_filename (vm->inst->dir, "agent.sock", NULL);
  address = g_unix_socket_address_new (path);
  client = g_socket_client_new ();
  g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (address), agent->cancel,
                                 on_connected, agent);
}

static gboolean
on_agent_tick (gpointer data)
{
  attempt (data);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_first_check (gpointer data)
{
  VmAgent *agent = data;

  /* Armed first: a ping that fails at once may stop the VM, which disarms it. */
  agent->timer = g_timeout_add ((guint) agent->vm->config->health.agent_interval_ms,
                                on_agent_tick, agent);
  attempt (agent);
  return G_SOURCE_REMOVE;
}

static void
agent_disarm (VmAgent *agent)
{
  g_clear_handle_id (&agent->timer, g_source_remove);
  attempt_end (agent);
  connection_close (agent);
  agent->active = FALSE;
}

static void
agent_free (VmAgent *agent)
{
  if (agent == NULL)
    return;
  agent_disarm (agent);
  g_free (agent->last_error);
  g_free (agent);
}

void
vm_agent_free (Vm *vm)
{
  g_clear_pointer (&vm->agent, agent_free);
}

void
vm_agent_state_changed (Vm *vm, VmState old_state)
{
  if (vm->state != VM_STATE_RUNNING)
    {
      if (vm->agent != NULL)
        agent_disarm (vm->agent);
      return;
    }
  if (old_state == VM_STATE_RUNNING)
    return;
  if (old_state != VM_STATE_PAUSED || vm->agent == NULL)
    {
      /* A new run: fresh results, on the config it runs on. */
      vm_agent_free (vm);
      if (!vm->config->health.guest_agent)
        return;
      vm->agent = g_new0 (VmAgent, 1);
      vm->agent->vm = vm;
      vm->agent->port_open = -1;
      vm->agent->grace_end = (vm->run_started ? vm->run_started : g_get_monotonic_time ())
                             + vm->config->health.agent_grace_ms * 1000;
    }
  /* The first ping from the main loop, at once; after a pause the run's grace period goes
   * on. */
  vm->agent->active = TRUE;
  vm->agent->timer = g_timeout_add (0, on_first_check, vm->agent);
}

void
vm_agent_qmp_event (Vm *vm, const QmpMessage *event)
{
  JsonObject *d = event->data;

  if (vm->agent == NULL || strcmp (event->event, "VSERPORT_CHANGE") != 0 || d == NULL
      || g_strcmp0 (json_object_get_string_member_with_default (d, "id", ""),
                    QEMU_AGENT_PORT_ID) != 0)
    return;
  vm->agent->port_open = json_object_get_boolean_member_with_default (d, "open", FALSE);
  g_debug ("vm '%s': the guest %s the agent port", vm->config->name,
           vm->agent->port_open ? "opened" : "closed");
}

gboolean
vm_agent_failing (Vm *vm)
{
  return vm->agent != NULL && vm->agent->active && vm->agent->state == AGENT_FAILING;
}

JsonObject *
vm_agent_describe (Vm *vm)
{
  const VmHealth *h = &vm->config->health;
  const VmAgent *agent = vm->agent;
  JsonObject *o;

  if (!h->guest_agent && agent == NULL)
    return NULL;
  o = json_object_new ();
  json_object_set_string_member (o, "action", vm_probe_action_to_string (h->agent_action));
  json_object_set_int_member (o, "interval-ms", h->agent_interval_ms);
  json_object_set_int_member (o, "timeout-ms", h->agent_timeout_ms);
  json_object_set_int_member (o, "failures-before-action", h->agent_failures);
  json_object_set_int_member (o, "grace-ms", h->agent_grace_ms);
  json_object_set_string_member (o, "state", agent && agent->active
                                             ? agent_state_names[agent->state] : "-");
  if (agent != NULL && agent->last_time != 0)
    {
      g_autoptr(GDateTime) sec = g_date_time_new_from_unix_local (agent->last_time / G_USEC_PER_SEC);
      g_autoptr(GDateTime) t = g_date_time_add (sec, agent->last_time % G_USEC_PER_SEC);
      g_autofree char *when = g_date_time_format_iso8601 (t);

      json_object_set_string_member (o, "last-time", when);
      json_object_set_double_member (o, "latency-ms", (double) agent->latency_us / 1000.0);
    }
  else
    {
      json_object_set_null_member (o, "last-time");
      json_object_set_null_member (o, "latency-ms");
    }
  /* What QEMU last said of the guest's side of the port (VSERPORT_CHANGE); null: nothing
   * yet this run (a guest still booting, or a QEMU adopted from an earlier daemon). */
  if (agent != NULL && agent->port_open >= 0)
    json_object_set_boolean_member (o, "port-open", agent->port_open);
  else
    json_object_set_null_member (o, "port-open");
  json_object_set_int_member (o, "failures", agent ? agent->failures : 0);
  json_object_set_int_member (o, "checks", agent ? (gint64) agent->checks : 0);
  if (agent != NULL && agent->last_error != NULL)
    json_object_set_string_member (o, "last-error", agent->last_error);
  else
    json_object_set_null_member (o, "last-error");
  return o;
}
