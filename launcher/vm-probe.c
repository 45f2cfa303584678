/* vm-probe.c: the [health] probes of a running VM: tcp connect, udp request and reply,
 * exec of a host command.  Each probe has its own timer, armed when the VM reaches running
 * (first check at once, then every interval) and disarmed in any other state.  Every check
 * is asynchronous with its own timeout: nothing here blocks the main loop.  A probe that
 * reaches `failures` failures in a row becomes failing (an event, `status`, `list`); with
 * action=restart it then ends the run as a failure.
 *
 * Each probe is scored by vm-health-check.c.  Its grace period is a start period, as
 * Docker's HEALTHCHECK has: failures in it are not counted (the probe stays pending, its
 * last error shown) until the first success, which ends it, or until it is over, counted
 * from the start of the run.  So a generous grace costs nothing: a guest that boots
 * quickly is ok as soon as it answers. */
#include "launcher/vm-private.h"

#include <gio/gio.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "launcher/vm-health-check.h"

typedef struct
{
  Vm *vm;
  VmProbe *probe;               /* a copy: the config may change while the VM is down */
  VmHealthCheck check;          /* its results */
  gboolean active;              /* the VM runs: the timer is armed */
  guint timer;                  /* every interval */
  /* The check in flight, if any. */
  gboolean busy;
  guint timeout_timer;
  GCancellable *cancel;         /* tcp, exec */
  GSocket *socket;              /* udp */
  GSource *recv_source;         /* udp */
  GSubprocess *process;         /* exec */
} VmProbeRun;

/* "Could not connect to 10.0.0.2: Connection refused" -> "connection refused". */
static char *
short_error (const char *message)
{
  const char *colon = g_strrstr (message, ": ");
  char *text = g_strdup (colon ? colon + 2 : message);

  if (g_ascii_isupper (text[0]) && !g_ascii_isupper (text[1]))
    text[0] = g_ascii_tolower (text[0]);
  return text;
}

/* Ends the check in flight, whatever it was doing; late callbacks see G_IO_ERROR_CANCELLED. */
static void
attempt_end (VmProbeRun *run)
{
  g_clear_handle_id (&run->timeout_timer, g_source_remove);
  if (run->cancel != NULL)
    g_cancellable_cancel (run->cancel);
  g_clear_object (&run->cancel);
  if (run->recv_source != NULL)
    g_source_destroy (run->recv_source);
  g_clear_pointer (&run->recv_source, g_source_unref);
  g_clear_object (&run->socket);
  if (run->process != NULL && g_subprocess_get_identifier (run->process) != NULL)
    {
      /* Still running (timed out, or the VM left running): the command and its children
       * go; GSubprocess reaps it. */
      pid_t pid = (pid_t) g_ascii_strtoll (g_subprocess_get_identifier (run->process), NULL, 10);
      if (pid > 0)
        kill (-pid, SIGKILL);
      g_subprocess_force_exit (run->process);
    }
  g_clear_object (&run->process);
  run->busy = FALSE;
}

/* The check in flight ended: recorded last, as it may end the run (see
 * vm_health_check_result). */
static void
probe_result (VmProbeRun *run, gboolean ok, const char *error)
{
  attempt_end (run);
  vm_health_check_result (&run->check, ok, error);
}

static gboolean
on_attempt_timeout (gpointer data)
{
  VmProbeRun *run = data;
  g_autofree char *why = NULL;

  run->timeout_timer = 0;
  why = g_strdup_printf (run->probe->kind == VM_PROBE_EXEC ? "timed out after %" G_GINT64_FORMAT
                                                             " ms, killed"
                                                           : "no answer within %" G_GINT64_FORMAT
                                                             " ms",
                         run->probe->timeout_ms);
  probe_result (run, FALSE, why);
  return G_SOURCE_REMOVE;
}

static void
on_tcp_connected (GObject *source, GAsyncResult *result, gpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnection) connection =
    g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  g_autofree char *why = NULL;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;                     /* timed out or stopped: the run may be gone */
  if (connection != NULL)
    {
      g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
      probe_result (data, TRUE, NULL);
      return;
    }
  why = short_error (error->message);
  probe_result (data, FALSE, why);
}

static gboolean
on_udp_readable (GSocket *socket, GIOCondition condition G_GNUC_UNUSED, gpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *why = NULL;
  char buf[2048];

  /* A reply of any content counts; an ICMP port unreachable shows as ECONNREFUSED. */
  if (g_socket_receive (socket, buf, sizeof buf, NULL, &error) >= 0)
    {
      probe_result (data, TRUE, NULL);
      return G_SOURCE_REMOVE;
    }
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return G_SOURCE_CONTINUE;
  why = short_error (error->message);
  probe_result (data, FALSE, why);
  return G_SOURCE_REMOVE;
}

static void
on_exec_done (GObject *source, GAsyncResult *result, gpointer data)
{
  GSubprocess *process = G_SUBPROCESS (source);
  g_autoptr(GError) error = NULL;
  g_autofree char *why = NULL;

  if (!g_subprocess_wait_finish (process, result, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        probe_result (data, FALSE, error->message);
      return;
    }
  if (g_subprocess_get_if_exited (process) && g_subprocess_get_exit_status (process) == 0)
    return probe_result (data, TRUE, NULL);
  if (g_subprocess_get_if_signaled (process))
    why = g_strdup_printf ("killed by signal %d", g_subprocess_get_term_sig (process));
  else
    why = g_strdup_printf ("exited with status %d", g_subprocess_get_exit_status (process));
  probe_result (data, FALSE, why);
}

static void
exec_child_setup (gpointer data G_GNUC_UNUSED)
{
  setpgid (0, 0);               /* its own group: a timeout kills the command's children too */
}

/* Starts one check; FALSE with the reason when it failed at once. */
static gboolean
attempt_start (VmProbeRun *run, GError **error)
{
  const VmProbe *p = run->probe;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketClient) client = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;

  switch (p->kind)
    {
    case VM_PROBE_TCP:
      address = g_inet_socket_address_new_from_string (p->host, p->port);
      client = g_socket_client_new ();
      /* The guest's own address: never through a proxy the environment may name (that
       * would probe the proxy, and put a resolver thread between the probe and its result). */
      g_socket_client_set_enable_proxy (client, FALSE);
      g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (address), run->cancel,
                                     on_tcp_connected, run);
      return TRUE;
    case VM_PROBE_UDP:
      address = g_inet_socket_address_new_from_string (p->host, p->port);
      run->socket = g_socket_new (g_socket_address_get_family (address), G_SOCKET_TYPE_DATAGRAM,
                                  G_SOCKET_PROTOCOL_UDP, error);
      if (run->socket == NULL)
        return FALSE;
      g_socket_set_blocking (run->socket, FALSE);
      if (!g_socket_connect (run->socket, address, NULL, error)
          || g_socket_send (run->socket, g_bytes_get_data (p->payload, NULL),
                            g_bytes_get_size (p->payload), NULL, error) < 0)
        return FALSE;
      run->recv_source = g_socket_create_source (run->socket, G_IO_IN | G_IO_ERR, NULL);
      g_source_set_callback (run->recv_source, G_SOURCE_FUNC (on_udp_readable), run, NULL);
      g_source_attach (run->recv_source, NULL);
      return TRUE;
    case VM_PROBE_EXEC:
      launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE
                                            | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
      g_subprocess_launcher_set_child_setup (launcher, exec_child_setup, NULL, NULL);
      run->process = g_subprocess_launcher_spawnv (launcher, (const char *const *) p->argv, error);
      if (run->process == NULL)
        return FALSE;
      g_subprocess_wait_async (run->process, run->cancel, on_exec_done, run);
      return TRUE;
    }
  g_return_val_if_reached (FALSE);
}

static void
attempt (VmProbeRun *run)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *why = NULL;

  if (run->busy)
    return;                     /* the last one still runs: its timeout ends it */
  run->busy = TRUE;
  run->check.started = g_get_monotonic_time ();
  run->cancel = g_cancellable_new ();
  run->timeout_timer = g_timeout_add ((guint) run->probe->timeout_ms, on_attempt_timeout, run);
  if (attempt_start (run, &error))
    return;
  why = short_error (error->message);
  probe_result (run, FALSE, why);
}

static gboolean
on_probe_tick (gpointer data)
{
  attempt (data);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_first_check (gpointer data)
{
  VmProbeRun *run = data;

  /* Armed first: a check that fails at once may stop the VM, which disarms it. */
  run->timer = g_timeout_add ((guint) run->probe->interval_ms, on_probe_tick, run);
  attempt (run);
  return G_SOURCE_REMOVE;
}

static void
probe_run_disarm (VmProbeRun *run)
{
  g_clear_handle_id (&run->timer, g_source_remove);
  attempt_end (run);
  run->active = FALSE;
}

static void
probe_run_free (gpointer data)
{
  VmProbeRun *run = data;

  probe_run_disarm (run);
  vm_health_check_clear (&run->check);
  vm_probe_free (run->probe);
  g_free (run);
}

void
vm_probes_state_changed (Vm *vm, VmState old_state)
{
  const GPtrArray *probes = vm->config->health.probes;

  if (vm->state != VM_STATE_RUNNING)
    {
      for (guint i = 0; vm->probes != NULL && i < vm->probes->len; i++)
        probe_run_disarm (vm->probes->pdata[i]);
      return;
    }
  if (old_state == VM_STATE_RUNNING)
    return;
  if (old_state != VM_STATE_PAUSED || vm->probes == NULL)
    {
      /* A new run: fresh results, from the config it runs on. */
      g_clear_pointer (&vm->probes, g_ptr_array_unref);
      vm->probes = g_ptr_array_new_with_free_func (probe_run_free);
      for (guint i = 0; probes != NULL && i < probes->len; i++)
        {
          VmProbeRun *run = g_new0 (VmProbeRun, 1);
          g_autofree char *subject = NULL;

          run->vm = vm;
          run->probe = vm_probe_copy (probes->pdata[i]);
          subject = g_strdup_printf ("probe %s", run->probe->spec);
          vm_health_check_init (&run->check, vm, "PROBE", run->probe->spec, subject,
                                run->probe->failures, run->probe->action, run->probe->grace_ms,
                                vm->run_started);
          g_ptr_array_add (vm->probes, run);
        }
    }
  /* The first check from the main loop, at once; after a pause the run's grace period
   * goes on. */
  for (guint i = 0; i < vm->probes->len; i++)
    {
      VmProbeRun *run = vm->probes->pdata[i];
      run->active = TRUE;
      run->timer = g_timeout_add (0, on_first_check, run);
    }
}

void
vm_probes_free (Vm *vm)
{
  g_clear_pointer (&vm->probes, g_ptr_array_unref);
  g_clear_pointer (&vm->probe_failure, g_free);
}

gboolean
vm_probes_failing (Vm *vm)
{
  for (guint i = 0; vm->probes != NULL && i < vm->probes->len; i++)
    {
      const VmProbeRun *run = vm->probes->pdata[i];
      if (run->active && run->check.state == VM_HEALTH_CHECK_FAILING)
        return TRUE;
    }
  return FALSE;
}

static JsonObject *
probe_describe (const VmProbe *probe, const VmProbeRun *run)
{
  JsonObject *o = json_object_new ();

  json_object_set_string_member (o, "spec", probe->spec);
  json_object_set_string_member (o, "action", vm_probe_action_to_string (probe->action));
  json_object_set_int_member (o, "interval-ms", probe->interval_ms);
  json_object_set_int_member (o, "timeout-ms", probe->timeout_ms);
  json_object_set_int_member (o, "failures-before-action", probe->failures);
  json_object_set_int_member (o, "grace-ms", probe->grace_ms);
  vm_health_check_describe (run ? &run->check : NULL, run && run->active, o);
  return o;
}

JsonArray *
vm_probes_describe (Vm *vm)
{
  JsonArray *a = json_array_new ();

  /* The run's probes while it has them; else the config's, not yet run. */
  if (vm->probes != NULL)
    for (guint i = 0; i < vm->probes->len; i++)
      {
        const VmProbeRun *run = vm->probes->pdata[i];
        json_array_add_object_element (a, probe_describe (run->probe, run));
      }
  else
    for (guint i = 0; i < vm->config->health.probes->len; i++)
      json_array_add_object_element (a, probe_describe (vm->config->health.probes->pdata[i],
                                                        NULL));
  return a;
}
