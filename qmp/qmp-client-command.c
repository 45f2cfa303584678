/* qmp-client-command.c: commands in flight: ids, replies, timeouts, cancellation, and the
 * execute / raw pass-through API.  Re-entrancy rules: qmp-client-private.h. */
#define G_LOG_DOMAIN "vmherd-qmp"

#include "qmp/qmp-client-private.h"
#include "qmp/qmp-socket.h"

void
qmp_pending_free (QmpPending *pending)
{
  g_clear_pointer (&pending->timeout_source, qmp_source_drop);
  g_clear_pointer (&pending->cancel_source, qmp_source_drop);
  g_clear_object (&pending->task);
  g_clear_pointer (&pending->caller_id, json_node_unref);
  g_free (pending->command);
  g_free (pending);
}

void
qmp_pending_fail (QmpPending *pending, GError *error)
{
  g_autoptr(GTask) task = g_steal_pointer (&pending->task);

  qmp_pending_free (pending);
  if (task != NULL)
    g_task_return_error (task, error);
  else
    g_error_free (error);
}

static void
pending_return (QmpPending *pending, QmpMessage *reply)
{
  g_autoptr(GTask) task = g_steal_pointer (&pending->task);

  if (pending->raw)
    {
      JsonObject *object = qmp_object_copy_with_id (reply->object, pending->caller_id);

      qmp_message_free (reply);
      qmp_pending_free (pending);
      g_task_return_pointer (task, object, (GDestroyNotify) json_object_unref);
      return;
    }
  qmp_pending_free (pending);
  g_task_return_pointer (task, reply, (GDestroyNotify) qmp_message_free);
}

typedef struct
{
  GTask *task;
  GError *error;
} LateFailure;

static gboolean
on_late_failure (gpointer data)
{
  LateFailure *failure = data;

  g_task_return_error (failure->task, g_steal_pointer (&failure->error));
  g_object_unref (failure->task);
  g_free (failure);
  return G_SOURCE_REMOVE;
}

/* qmp_client_free() never calls back from inside itself. */
void
qmp_task_fail_later (GTask *task, GError *error)
{
  LateFailure *failure = g_new0 (LateFailure, 1);
  GSource *source = g_idle_source_new ();

  failure->task = task;
  failure->error = error;
  g_source_set_callback (source, on_late_failure, failure, NULL);
  g_source_attach (source, g_task_get_context (task));
  g_source_unref (source);
}

static gboolean
on_pending_timeout (gpointer data)
{
  QmpPending *pending = data;
  QmpClient *client = pending->client;

  qmp_client_hold (client);
  g_debug ("'%s' (id %" G_GINT64_FORMAT ") timed out; a late reply will be dropped", pending->command,
           pending->id);
  g_queue_remove (&client->pending, pending);
  qmp_pending_fail (pending, g_error_new (QMP_ERROR, QMP_ERROR_TIMEOUT, "no reply to '%s' within %u ms",
                                          pending->command, pending->timeout_ms));
  qmp_client_release (client);
  return G_SOURCE_REMOVE;
}

static gboolean
on_pending_cancelled (GCancellable *cancellable G_GNUC_UNUSED, gpointer data)
{
  QmpPending *pending = data;
  QmpClient *client = pending->client;

  qmp_client_hold (client);
  g_queue_remove (&client->pending, pending);
  qmp_pending_fail (pending,
                    g_error_new (QMP_ERROR, QMP_ERROR_CANCELLED, "'%s' cancelled", pending->command));
  qmp_client_release (client);
  return G_SOURCE_REMOVE;
}

static QmpPending *
client_find_pending (QmpClient *client, const QmpMessage *reply)
{
  gint64 id;

  /* QEMU sends errors for input it could not parse without an id; it answers in order,
   * so the error belongs to the oldest command still waiting. */
  if (reply->id == NULL && reply->kind == QMP_MESSAGE_ERROR)
    return g_queue_peek_head (&client->pending);
  if (!qmp_message_get_id_int (reply, &id))
    return NULL;
  for (GList *l = client->pending.head; l != NULL; l = l->next)
    if (((QmpPending *) l->data)->id == id)
      return l->data;
  return NULL;
}

void
qmp_client_on_reply (QmpClient *client, QmpMessage *reply)
{
  QmpPending *pending = client_find_pending (client, reply);

  if (pending == NULL)
    {
      g_autofree char *id = reply->id != NULL ? json_to_string (reply->id, FALSE) : g_strdup ("none");

      g_debug ("%s reply with unknown id %s (timed out or cancelled command?), dropping",
               qmp_message_kind_to_string (reply->kind), id);
      qmp_message_free (reply);
      return;
    }
  g_queue_remove (&client->pending, pending);
  if (pending->task == NULL)
    {
      qmp_pending_free (pending);
      qmp_client_on_capabilities_reply (client, reply);
      qmp_message_free (reply);
      return;
    }
  pending_return (pending, reply);
}

/* For messages only: a console may send anything, QEMU judges it. */
static const char *
command_name (JsonObject *command)
{
  static const char *const keys[] = { "execute", "exec-oob" };

  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    {
      JsonNode *node = json_object_get_member (command, keys[i]);

      if (node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
        return json_node_get_string (node);
    }
  return "(no command)";
}

/* Sends command (taken) for task (taken), or fails the task (from an idle, as GTask does
 * for a return in the iteration that created it). */
static void
client_submit (QmpClient *client, GTask *task, JsonObject *command, gboolean raw, const int *fds,
               guint n_fds, guint timeout_ms, GCancellable *cancellable)
{
  g_autoptr(JsonObject) owned_command = command;
  GError *error = NULL;
  QmpPending *pending;
  int *fd_copies = NULL;

  if (client->state != QMP_CLIENT_STATE_READY)
    error = g_error_new (QMP_ERROR, QMP_ERROR_DISCONNECTED, "cannot send '%s': QMP client is %s",
                         command_name (command), qmp_client_state_to_string (client->state));
  else if (n_fds > 0 && (fd_copies = qmp_socket_dup_fds (fds, n_fds, &error)) == NULL)
    g_prefix_error (&error, "cannot send '%s': ", command_name (command));
  if (error != NULL)
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }
  pending = g_new0 (QmpPending, 1);
  pending->client = client; /* before the sources below can fire */
  pending->command = g_strdup (command_name (command));
  pending->task = task;
  pending->raw = raw;
  if (raw && json_object_has_member (command, "id"))
    pending->caller_id = json_node_copy (json_object_get_member (command, "id"));
  pending->timeout_ms = timeout_ms;
  if (timeout_ms > 0)
    pending->timeout_source = qmp_client_attach (client, g_timeout_source_new (timeout_ms),
                                                 on_pending_timeout, pending);
  if (cancellable != NULL)
    pending->cancel_source = qmp_client_attach (client, g_cancellable_source_new (cancellable),
                                                G_SOURCE_FUNC (on_pending_cancelled), pending);
  qmp_client_send (client, pending, g_steal_pointer (&owned_command), fd_copies, n_fds);
}

void
qmp_client_execute_async (QmpClient *client, const char *command, JsonObject *arguments, const int *fds,
                          guint n_fds, guint timeout_ms, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (client != NULL && command != NULL);
  g_return_if_fail (n_fds <= QMP_CLIENT_MAX_FDS && (fds != NULL || n_fds == 0));

  task = g_task_new (NULL, NULL, callback, user_data);
  g_task_set_source_tag (task, qmp_client_execute_async);
  g_task_set_name (task, "qmp-execute");
  client_submit (client, task, qmp_command_build (command, arguments, NULL, FALSE), FALSE, fds, n_fds,
                 timeout_ms, cancellable);
}

QmpMessage *
qmp_client_execute_finish_full (QmpClient *client G_GNUC_UNUSED, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qmp_client_execute_async), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

JsonNode *
qmp_client_execute_finish (QmpClient *client, GAsyncResult *result, GError **error)
{
  g_autoptr(QmpMessage) reply = qmp_client_execute_finish_full (client, result, error);

  if (reply == NULL)
    return NULL;
  if (reply->kind == QMP_MESSAGE_ERROR)
    {
      qmp_message_set_gerror (reply, error);
      return NULL;
    }
  return json_node_ref (reply->return_value);
}

void
qmp_client_execute_raw_async (QmpClient *client, JsonObject *command, const int *fds, guint n_fds,
                              guint timeout_ms, GCancellable *cancellable, GAsyncReadyCallback callback,
                              gpointer user_data)
{
  GTask *task;

  g_return_if_fail (client != NULL && command != NULL);
  g_return_if_fail (n_fds <= QMP_CLIENT_MAX_FDS && (fds != NULL || n_fds == 0));

  task = g_task_new (NULL, NULL, callback, user_data);
  g_task_set_source_tag (task, qmp_client_execute_raw_async);
  g_task_set_name (task, "qmp-execute-raw");
  client_submit (client, task, json_object_ref (command), TRUE, fds, n_fds, timeout_ms, cancellable);
}

JsonObject *
qmp_client_execute_raw_finish (QmpClient *client G_GNUC_UNUSED, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qmp_client_execute_raw_async), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
