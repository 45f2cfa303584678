/* vm-agent.c: [health] guest-agent = yes: the QEMU guest agent (qemu-ga) inside a running
 * VM is pinged every agent-interval over the VM's virtio-serial port (QEMU listens on
 * RUN-DIR/vm/NAME/agent.sock), each ping a guest-sync-delimited with a fresh random id and
 * then a guest-ping (qmp/qga-ping.h), all asynchronous, bounded by agent-timeout.  The
 * check is armed when the VM reaches running (first ping at once) and disarmed in any
 * other state, like the probes (vm-probe.c), and scored as they are (vm-health-check.h):
 * failures are not counted until the first answer or the end of agent-grace; after
 * agent-failures in a row it is failing (an AGENT event, `status`, `list`); with
 * agent-action = restart it then ends the run as a failure (VM_EVENT_PROBE_FAILED).
 *
 * One connection is kept while pings succeed.  After a timeout or a broken channel it is
 * closed and the next ping connects again; a request may have been half written, and
 * replies to requests the agent never saw in time may still come: the sync before every
 * ping skips them. */
#include "launcher/vm-private.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <string.h>

#include "launcher/vm-health-check.h"
#include "qmp/qga-ping.h"

struct _VmAgent
{
  Vm *vm;
  VmHealthCheck check;          /* its results */
  gboolean active;              /* the VM runs: the timer is armed */
  guint timer;                  /* every interval */
  GSocketConnection *connection;   /* to agent.sock, kept between good pings */
  int port_open;                /* -1: not known yet; else whether the guest holds the port */
  /* The ping in flight, if any. */
  gboolean busy;
  guint timeout_timer;
  GCancellable *cancel;
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

/* The ping in flight ended: recorded last, as it may end the run (see
 * vm_health_check_result). */
static void
agent_result (VmAgent *agent, gboolean ok, const char *error)
{
  attempt_end (agent);
  if (!ok)
    connection_close (agent);   /* it may hold half a request or a late reply: start afresh */
  vm_health_check_result (&agent->check, ok, error);
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
  agent->check.started = g_get_monotonic_time ();
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
  vm_health_check_clear (&agent->check);
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
      vm_health_check_init (&vm->agent->check, vm, "AGENT", NULL, "guest agent",
                            vm->config->health.agent_failures, vm->config->health.agent_action,
                            vm->config->health.agent_grace_ms, vm->run_started);
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
  return vm->agent != NULL && vm->agent->active
         && vm->agent->check.state == VM_HEALTH_CHECK_FAILING;
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
  vm_health_check_describe (agent ? &agent->check : NULL, agent && agent->active, o);
  /* What QEMU last said of the guest's side of the port (VSERPORT_CHANGE); null: nothing
   * yet this run (a guest still booting, or a QEMU adopted from an earlier daemon). */
  if (agent != NULL && agent->port_open >= 0)
    json_object_set_boolean_member (o, "port-open", agent->port_open);
  else
    json_object_set_null_member (o, "port-open");
  return o;
}
