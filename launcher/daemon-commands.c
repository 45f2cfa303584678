/* daemon-commands.c: what vmherdd does for each control request. */
#include "launcher/daemon-private.h"

#include <gio/gio.h>
#include <string.h>

#include "launcher/vm-check.h"

/* `qmp` is here because group members get a read-only console (query-* only). */
const char *const daemon_read_only_commands[] = {
  "list", "status", "events", "version", "logs", "qmp", "peers", NULL,
};

typedef enum { WAIT_START, WAIT_STOP, WAIT_RESTART, WAIT_SHUTDOWN_ALL } WaitKind;

typedef struct
{
  ControlRequest *request;
  Vm *vm;                       /* NULL for WAIT_SHUTDOWN_ALL */
  WaitKind kind;
  gint64 timeout_ms;
} DaemonWaiter;

static void
waiter_free (DaemonWaiter *w)
{
  g_free (w);
}

static void
add_waiter (Daemon *daemon, ControlRequest *request, Vm *vm, WaitKind kind, gint64 timeout_ms)
{
  DaemonWaiter *w = g_new0 (DaemonWaiter, 1);

  *w = (DaemonWaiter) { request, vm, kind, timeout_ms };
  g_ptr_array_add (daemon->waiters, w);
}

static gint
compare_ptr_str (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static char *
known_vms (Daemon *daemon)
{
  g_autofree const char **names = (const char **) g_hash_table_get_keys_as_array (daemon->vms, NULL);
  guint n = g_strv_length ((char **) names);

  qsort (names, n, sizeof *names, compare_ptr_str);
  if (n == 0)
    return g_strdup ("none");
  return g_strjoinv (", ", (char **) names);
}


/* Typed arguments.  Each is optional; FALSE after answering the request with
 * InvalidArgument when it is there with the wrong type (json-glib's getters would
 * g_critical on a mistyped member: a client's mistake must not look like our bug). */
static gboolean
arg_string (ControlRequest *request, JsonObject *args, const char *name, const char **out)
{
  JsonNode *node = args ? json_object_get_member (args, name) : NULL;

  *out = NULL;
  if (node == NULL)
    return TRUE;
  if (control_json_get_string (args, name) == NULL)
    {
      control_request_error (request, "InvalidArgument", "argument \"%s\" is %s, not a string", name,
                             control_json_describe (node));
      return FALSE;
    }
  *out = control_json_get_string (args, name);
  return TRUE;
}

static gboolean
arg_int (ControlRequest *request, JsonObject *args, const char *name, gint64 min, gint64 max,
         gint64 *out)
{
  JsonNode *node = args ? json_object_get_member (args, name) : NULL;

  if (node == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    {
      control_request_error (request, "InvalidArgument", "argument \"%s\" is %s, not a whole number",
                             name, control_json_describe (node));
      return FALSE;
    }
  if (json_node_get_int (node) < min || json_node_get_int (node) > max)
    {
      control_request_error (request, "InvalidArgument", "argument \"%s\" is %" G_GINT64_FORMAT
                             ", out of range (use %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT ")",
                             name, json_node_get_int (node), min, max);
      return FALSE;
    }
  *out = json_node_get_int (node);
  return TRUE;
}

static gboolean
arg_bool (ControlRequest *request, JsonObject *args, const char *name, gboolean *out)
{
  JsonNode *node = args ? json_object_get_member (args, name) : NULL;

  if (node == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    {
      control_request_error (request, "InvalidArgument", "argument \"%s\" is %s, not a boolean", name,
                             control_json_describe (node));
      return FALSE;
    }
  *out = json_node_get_boolean (node);
  return TRUE;
}

/* `timeout` in seconds (for the powerdown step), as milliseconds; 0 when absent. */
static gboolean
arg_timeout_ms (ControlRequest *request, JsonObject *args, gint64 *out_ms)
{
  gint64 seconds = 0;

  if (!arg_int (request, args, "timeout", 0, 86400, &seconds))
    return FALSE;
  *out_ms = seconds * 1000;
  return TRUE;
}

/* The VM named in arguments, or NULL after answering the request with the error. */
Vm *
daemon_request_vm (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  const char *name = NULL;
  g_autofree char *problem = NULL;
  Vm *vm;

  if (!arg_string (request, args, "vm", &name))
    return NULL;
  if (name == NULL)
    {
      control_request_error (request, "InvalidArgument", "missing argument \"vm\" (a VM name)");
      return NULL;
    }
  if (!vm_name_is_valid (name, &problem))
    {
      control_request_error (request, "InvalidArgument", "'%s' is not a valid VM name: it %s",
                             name, problem);
      return NULL;
    }
  vm = daemon_find_vm (daemon, name);
  if (vm == NULL)
    daemon_answer_no_vm (daemon, request, name);
  return vm;
}

void
daemon_answer_no_vm (Daemon *daemon, ControlRequest *request, const char *name)
{
  g_autofree char *known = known_vms (daemon);

  if (name == NULL)
    control_request_error (request, "InvalidArgument", "missing argument \"vm\" (a VM name)");
  else
    control_request_error (request, "NotFound", "no VM named '%s' in %s (known: %s)", name,
                           daemon->host->vm_dir, known);
}

static void
cmd_list (Daemon *daemon, ControlRequest *request, JsonObject *args G_GNUC_UNUSED)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  JsonArray *list = json_array_new ();
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);
  GHashTableIter iter;
  gpointer name;

  g_hash_table_iter_init (&iter, daemon->vms);
  while (g_hash_table_iter_next (&iter, &name, NULL))
    g_ptr_array_add (names, name);
  g_ptr_array_sort (names, compare_ptr_str);
  for (guint i = 0; i < names->len; i++)
    json_array_add_element (list, vm_describe (daemon_find_vm (daemon, names->pdata[i]), FALSE));
  json_node_take_array (node, list);
  control_request_return (request, node);
}

static void
cmd_status (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  Vm *vm = daemon_request_vm (daemon, request, args);

  if (vm != NULL)
    control_request_return (request, vm_describe (vm, TRUE));
}

static void
answer_gerror (ControlRequest *request, const GError *error)
{
  const char *klass = "GenericError";

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_EXISTS)
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BUSY)
      || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED))
    klass = "Busy";
  control_request_error (request, klass, "%s", error->message);
}

static void
cmd_start (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  g_autoptr(GError) error = NULL;
  Vm *vm = daemon_request_vm (daemon, request, args);

  if (vm == NULL)
    return;
  if (!vm_request_start (vm, &error))
    return answer_gerror (request, error);
  daemon_save_desired (daemon, vm_get_name (vm), TRUE);
  add_waiter (daemon, request, vm, WAIT_START, 0);
  daemon_waiters_notify (daemon, vm);
}

static void
cmd_stop (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  g_autoptr(GError) error = NULL;
  Vm *vm = daemon_request_vm (daemon, request, args);
  gboolean force = FALSE;
  gint64 timeout_ms = 0;

  if (vm == NULL || !arg_bool (request, args, "force", &force)
      || !arg_timeout_ms (request, args, &timeout_ms))
    return;
  daemon_save_desired (daemon, vm_get_name (vm), FALSE);
  if (!vm_request_stop (vm, force, timeout_ms, &error))
    return answer_gerror (request, error);
  add_waiter (daemon, request, vm, WAIT_STOP, 0);
  daemon_waiters_notify (daemon, vm);
}

static void
cmd_restart (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  g_autoptr(GError) error = NULL;
  Vm *vm = daemon_request_vm (daemon, request, args);
  gint64 timeout_ms = 0;

  if (vm == NULL || !arg_timeout_ms (request, args, &timeout_ms))
    return;
  daemon_save_desired (daemon, vm_get_name (vm), TRUE);
  if (vm_get_state (vm) == VM_STATE_STOPPED || vm_get_state (vm) == VM_STATE_FAILED)
    return cmd_start (daemon, request, args);
  if (!vm_request_stop (vm, FALSE, timeout_ms, &error))
    return answer_gerror (request, error);
  add_waiter (daemon, request, vm, WAIT_RESTART, 0);
}

static void
cmd_qmp_action (Daemon *daemon, ControlRequest *request, JsonObject *args, const char *qmp)
{
  g_autoptr(GError) error = NULL;
  Vm *vm = daemon_request_vm (daemon, request, args);

  if (vm == NULL)
    return;
  if (!vm_request_qmp (vm, qmp, &error))
    return answer_gerror (request, error);
  control_request_return (request, NULL);
}

static void cmd_reset (Daemon *d, ControlRequest *r, JsonObject *a) { cmd_qmp_action (d, r, a, "system_reset"); }
static void cmd_pause (Daemon *d, ControlRequest *r, JsonObject *a) { cmd_qmp_action (d, r, a, "stop"); }
static void cmd_resume (Daemon *d, ControlRequest *r, JsonObject *a) { cmd_qmp_action (d, r, a, "cont"); }

static void
cmd_reload (Daemon *daemon, ControlRequest *request, JsonObject *args G_GNUC_UNUSED)
{
  g_autoptr(GPtrArray) defined = daemon_rescan (daemon);
  JsonObject *ret = json_object_new ();
  JsonArray *names = json_array_new ();

  for (guint i = 0; i < defined->len; i++)
    json_array_add_string_element (names, vm_get_name (defined->pdata[i]));
  json_object_set_array_member (ret, "defined", names);
  json_object_set_int_member (ret, "vms", g_hash_table_size (daemon->vms));
  control_request_return (request, json_node_init_object (json_node_alloc (), ret));
  json_object_unref (ret);
}

static gboolean
vm_is_down (Vm *vm)
{
  VmState s = vm_get_state (vm);

  return s == VM_STATE_STOPPED || s == VM_STATE_FAILED;
}

/* Stops the guests with the highest start-order still up; the rest wait their turn. */
static gboolean
shutdown_all_pump (Daemon *daemon, gint64 timeout_ms)
{
  GHashTableIter iter;
  gpointer vm;
  gboolean any = FALSE;
  gint64 top = G_MININT64;

  g_hash_table_iter_init (&iter, daemon->vms);
  while (g_hash_table_iter_next (&iter, NULL, &vm))
    if (!vm_is_down (vm))
      {
        any = TRUE;
        top = MAX (top, vm_get_config (vm)->start_order);
      }
  if (!any)
    return TRUE;
  g_hash_table_iter_init (&iter, daemon->vms);
  while (g_hash_table_iter_next (&iter, NULL, &vm))
    if (!vm_is_down (vm) && vm_get_config (vm)->start_order == top
        && vm_get_state (vm) != VM_STATE_STOPPING)
      vm_request_stop (vm, FALSE, timeout_ms, NULL);
  return FALSE;
}

static void
cmd_shutdown_all (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  gint64 timeout_ms = 0;

  if (!arg_timeout_ms (request, args, &timeout_ms))
    return;
  g_queue_clear (&daemon->autostart);
  add_waiter (daemon, request, NULL, WAIT_SHUTDOWN_ALL, timeout_ms);
  daemon_waiters_notify (daemon, NULL);
}

static void
cmd_version (Daemon *daemon, ControlRequest *request, JsonObject *args G_GNUC_UNUSED)
{
  JsonObject *ret = json_object_new ();

  json_object_set_string_member (ret, "version", VMHERD_VERSION);
  json_object_set_string_member (ret, "qemu", daemon->host->qemu);
  json_object_set_string_member (ret, "default-machine", daemon->probe->default_machine);
  control_request_return (request, json_node_init_object (json_node_alloc (), ret));
  json_object_unref (ret);
}

static void
cmd_events (Daemon *daemon G_GNUC_UNUSED, ControlRequest *request, JsonObject *args G_GNUC_UNUSED)
{
  control_request_subscribe_events (request);
  control_request_return (request, NULL);
}

static void
cmd_logs (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  Vm *vm = daemon_request_vm (daemon, request, args);
  JsonObject *ret;
  g_autofree char *file = NULL, *log = NULL, *serial = NULL;

  if (vm == NULL)
    return;
  file = g_strdup_printf ("%s.log", vm_get_name (vm));
  log = g_build_filename (daemon->host->log_dir, file, NULL);
  serial = qemu_argv_serial_log (vm_get_config (vm), daemon->host);
  ret = json_object_new ();
  json_object_set_string_member (ret, "log", log);
  json_object_set_string_member (ret, "serial-log", serial);
  control_request_return (request, json_node_init_object (json_node_alloc (), ret));
  json_object_unref (ret);
}

typedef void (*DaemonCommandFunc) (Daemon *daemon, ControlRequest *request, JsonObject *args);

static const struct
{
  const char *name;
  DaemonCommandFunc func;
} commands[] = {
  { "list", cmd_list }, { "status", cmd_status }, { "start", cmd_start }, { "stop", cmd_stop },
  { "restart", cmd_restart }, { "reset", cmd_reset }, { "pause", cmd_pause },
  { "resume", cmd_resume }, { "reload", cmd_reload }, { "shutdown-all", cmd_shutdown_all },
  { "version", cmd_version }, { "events", cmd_events }, { "logs", cmd_logs },
  { "qmp", daemon_cmd_qmp }, { "console", daemon_cmd_console },
  { "snapshot", daemon_cmd_snapshot }, { "peers", daemon_cmd_peers },
  { "migrate", daemon_cmd_migrate },
  { "migrate-cancel", daemon_cmd_migrate_cancel }, { "evacuate", daemon_cmd_evacuate },
};

void
daemon_handle_request (ControlRequest *request, const char *command, JsonObject *arguments,
                       gpointer user_data)
{
  Daemon *daemon = user_data;
  const ControlPeer *peer = control_request_get_peer (request);

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (commands[i].name, command) == 0)
      {
        if (peer->may_write && !g_strv_contains (daemon_read_only_commands, command))
          g_message ("control: uid %u runs %s", (guint) peer->uid, command);
        commands[i].func (daemon, request, arguments);
        return;
      }
  control_request_error (request, "CommandNotFound", "unknown command '%s' (see vmherd help)",
                         command);
}

/* TRUE when the waiter got its answer. */
static gboolean
waiter_check (Daemon *daemon, DaemonWaiter *w)
{
  VmState s;
  g_autoptr(GError) error = NULL;

  if (w->kind == WAIT_SHUTDOWN_ALL)
    {
      if (!shutdown_all_pump (daemon, w->timeout_ms))
        return FALSE;
      control_request_return (w->request, NULL);
      return TRUE;
    }
  s = vm_get_state (w->vm);
  switch (w->kind)
    {
    case WAIT_START:
      if (s == VM_STATE_RUNNING || s == VM_STATE_PAUSED)
        control_request_return (w->request, vm_describe (w->vm, FALSE));
      else if (s == VM_STATE_BACKOFF || s == VM_STATE_FAILED || s == VM_STATE_STOPPED)
        {
          /* Why: the reason of the transition that ended the start. */
          g_autoptr(JsonNode) d = vm_describe (w->vm, TRUE);
          JsonArray *history = json_object_get_array_member (json_node_get_object (d), "history");
          guint n = json_array_get_length (history);

          control_request_error (w->request, "GenericError", "vm '%s' did not start: %s",
                                 vm_get_name (w->vm), n == 0 ? "?" :
                                 json_object_get_string_member (json_array_get_object_element (history, n - 1),
                                                                "reason"));
        }
      else
        return FALSE;
      return TRUE;
    case WAIT_STOP:
      if (!vm_is_down (w->vm) && s != VM_STATE_BACKOFF)
        return FALSE;
      control_request_return (w->request, vm_describe (w->vm, FALSE));
      return TRUE;
    case WAIT_RESTART:
      if (!vm_is_down (w->vm))
        return FALSE;
      if (!vm_request_start (w->vm, &error))
        {
          answer_gerror (w->request, error);
          return TRUE;
        }
      w->kind = WAIT_START;
      return waiter_check (daemon, w);
    case WAIT_SHUTDOWN_ALL:
      break;
    }
  return FALSE;
}

void
daemon_waiters_notify (Daemon *daemon, Vm *vm G_GNUC_UNUSED)
{
  /* Answering a waiter can change states (restart starts the VM) and so call back here:
   * the inner call only asks for another pass of this loop. */
  if (daemon->notifying)
    {
      daemon->notify_again = TRUE;
      return;
    }
  daemon->notifying = TRUE;
  do
    {
      daemon->notify_again = FALSE;
      for (guint i = 0; i < daemon->waiters->len; i++)
        {
          DaemonWaiter *w = daemon->waiters->pdata[i];

          if (waiter_check (daemon, w))
            {
              g_ptr_array_remove (daemon->waiters, w);
              waiter_free (w);
              i = (guint) -1;   /* the array may have changed: start over */
            }
        }
    }
  while (daemon->notify_again);
  daemon->notifying = FALSE;
}

void
daemon_waiters_drop_vm (Daemon *daemon, Vm *vm)
{
  for (guint i = 0; i < daemon->waiters->len; i++)
    {
      DaemonWaiter *w = daemon->waiters->pdata[i];

      if (w->vm == vm)
        {
          control_request_return (w->request, NULL);   /* it stopped and is gone */
          g_ptr_array_remove_index (daemon->waiters, i--);
          waiter_free (w);
        }
    }
}

void
daemon_broadcast_state (Daemon *daemon, Vm *vm, VmState old, const char *reason)
{
  g_autoptr(JsonObject) d = json_object_new ();

  json_object_set_string_member (d, "vm", vm_get_name (vm));
  json_object_set_string_member (d, "state", vm_state_to_string (vm_get_state (vm)));
  json_object_set_string_member (d, "old-state", vm_state_to_string (old));
  json_object_set_string_member (d, "reason", reason);
  if (daemon->control != NULL)
    control_server_broadcast_event (daemon->control, "STATE", d);
}

void
daemon_broadcast_config (Daemon *daemon, const char *vm, const char *change, const char *reason,
                         GPtrArray *errors)
{
  g_autoptr(JsonObject) d = json_object_new ();

  json_object_set_string_member (d, "vm", vm);
  json_object_set_string_member (d, "change", change);
  json_object_set_string_member (d, "reason", reason);
  if (errors != NULL)
    {
      JsonArray *list = json_array_new ();
      for (guint i = 0; i < errors->len; i++)
        json_array_add_string_element (list, errors->pdata[i]);
      json_object_set_array_member (d, "errors", list);
    }
  if (daemon->control != NULL)
    control_server_broadcast_event (daemon->control, "CONFIG", d);
}
