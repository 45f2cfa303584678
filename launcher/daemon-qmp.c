/* daemon-qmp.c: the QMP console's path through vmherdd.  QEMU serves one QMP client, the
 * daemon; consoles send their commands here, we forward them with our own ids and answer
 * with QEMU's reply, while health checks go on on the same connection.  Every command is
 * written to the guest's log with the uid that sent it. */
#include "launcher/daemon-private.h"

#include <string.h>

#include "qmp/qmp-shell.h"

typedef struct
{
  ControlRequest *request;
} QmpForward;

static void
on_forwarded (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  g_autofree QmpForward *fwd = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) reply = qmp_client_execute_raw_finish (NULL, result, &error);
  JsonObject *ret;

  if (reply == NULL)
    {
      control_request_error (fwd->request, "GenericError", "no reply from QEMU: %s", error->message);
      return;
    }
  /* QEMU's answer, whole: {"return": ...} or {"error": {"class", "desc"}}. */
  json_object_remove_member (reply, "id");
  ret = json_object_new ();
  json_object_set_object_member (ret, "reply", json_object_ref (reply));
  control_request_return (fwd->request, json_node_init_object (json_node_alloc (), ret));
  json_object_unref (ret);
}

void
daemon_cmd_qmp (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  const ControlPeer *peer = control_request_get_peer (request);
  JsonNode *cmd_node = json_object_get_member (args, "command");
  gboolean read_only;
  JsonObject *cmd;
  const char *execute;
  QmpClient *qmp;
  Vm *vm;
  g_autofree char *text = NULL;
  QmpForward *fwd;

  const char *name;
  JsonNode *ro = json_object_get_member (args, "read-only");

  vm = daemon_request_vm (daemon, request, args);
  if (vm == NULL)
    return;
  name = vm_get_name (vm);
  if (ro != NULL && !(JSON_NODE_HOLDS_VALUE (ro) && json_node_get_value_type (ro) == G_TYPE_BOOLEAN))
    return control_request_error (request, "InvalidArgument", "\"read-only\" must be true or false");
  read_only = (ro != NULL && json_node_get_boolean (ro)) || !peer->may_write;
  if (cmd_node == NULL || !JSON_NODE_HOLDS_OBJECT (cmd_node))
    return control_request_error (request, "InvalidArgument",
                                  "missing argument \"command\" (a QMP command object)");
  cmd = json_node_get_object (cmd_node);
  execute = control_json_get_string (cmd, "execute");
  if (execute == NULL)
    execute = control_json_get_string (cmd, "exec-oob");
  if (execute == NULL)
    return control_request_error (request, "InvalidArgument", "the command has no \"execute\"");
  if (read_only && !qmp_shell_is_read_only (execute))
    return control_request_error (request, "PermissionDenied",
                                  "'%s' is refused on a read-only console (only query-* commands%s)",
                                  execute, peer->may_write ? "" : "; root may run others");
  qmp = vm_get_qmp (vm);
  if (qmp == NULL)
    return control_request_error (request, "Busy", "vm '%s' is %s: no QMP connection", name,
                                  vm_state_to_string (vm_get_state (vm)));
  text = json_to_string (cmd_node, FALSE);
  vm_log (vm, "console (uid %u): %s", (guint) peer->uid, text);
  fwd = g_new0 (QmpForward, 1);
  fwd->request = request;
  qmp_client_execute_raw_async (qmp, cmd, NULL, 0, 30000, NULL, on_forwarded, fwd);
}
