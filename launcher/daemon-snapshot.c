/* daemon-snapshot.c: `snapshot`, a VM's external snapshots (vm-snapshot.h says what they
 * are).  create works over QMP on a running or paused guest; delete and revert work with
 * qemu-img on the files of a stopped one; list reads the record.
 *
 *   {"execute": "snapshot", "arguments": {"vm": "web", "action": "create", "tag": "t1"}}
 *   action: create | list | delete | revert; "force": true lets revert drop later snapshots.
 *
 * An operation is a chain of async steps holding the VM's name, never the Vm (its file may
 * go away meanwhile).  It marks the VM busy: no second operation, and no start, until it
 * ends.  delete and revert are vm-snapshot-offline.c's; create is here. */
#include "launcher/daemon-private.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "images/overlay.h"
#include "images/snapshot.h"
#include "launcher/qemu-spawn.h"
#include "launcher/vm-snapshot.h"

#define SNAPSHOT_IMG_TIMEOUT_MS 60000   /* new layers: metadata only */
#define SNAPSHOT_QMP_TIMEOUT_MS 10000

typedef struct
{
  char *command;
  JsonObject *args;
  char *node;                   /* blockdev-add: the node it adds */
} QmpStep;

typedef struct
{
  Daemon *daemon;
  ControlRequest *request;
  char *vm;
  const char *action;           /* "create", "list", "delete", "revert" */
  char *tag;
  VmSnapshots *record;
  VmSnapshot *taking;           /* create: the snapshot being taken, not yet in record */
  guint next;                   /* create: the disk, or QMP step, being worked on */
  uid_t uid;                    /* create: who the layers belong to */
  gid_t gid;
  GPtrArray *created;           /* create: layer files made so far */
  GPtrArray *steps;             /* create: QmpStep */
  GPtrArray *added;             /* create: nodes QEMU has so far (char *) */
  gboolean busy;                /* this operation marked the VM busy */
} SnapOp;

static void
qmp_step_free (QmpStep *step)
{
  g_free (step->command);
  json_object_unref (step->args);
  g_free (step->node);
  g_free (step);
}

static void
snap_op_free (SnapOp *op)
{
  if (op->busy)
    vm_snapshot_set_busy (op->vm, NULL);
  g_free (op->vm);
  g_free (op->tag);
  vm_snapshots_free (op->record);
  vm_snapshot_free (op->taking);
  g_clear_pointer (&op->created, g_ptr_array_unref);
  g_clear_pointer (&op->steps, g_ptr_array_unref);
  g_clear_pointer (&op->added, g_ptr_array_unref);
  g_free (op);
}

/* A line in the VM's log (and the daemon's), or only the daemon's when the VM is gone. */
static void G_GNUC_PRINTF (2, 3)
op_log (SnapOp *op, const char *format, ...)
{
  Vm *vm = daemon_find_vm (op->daemon, op->vm);
  g_autofree char *text = NULL;
  va_list ap;

  va_start (ap, format);
  text = g_strdup_vprintf (format, ap);
  va_end (ap);
  if (vm != NULL)
    vm_log (vm, "%s", text);
  else
    g_message ("vm '%s': %s", op->vm, text);
}

/* Ends the operation with an error: logged once, answered, freed. */
static void
op_fail (SnapOp *op, const char *what, const GError *error)
{
  op_log (op, "%s: %s", what, error->message);
  control_request_error (op->request, "GenericError", "vm '%s': %s: %s", op->vm, what, error->message);
  snap_op_free (op);
}

static void
op_done (SnapOp *op, JsonObject *ret)
{
  control_request_return (op->request, json_node_init_object (json_node_alloc (), ret));
  json_object_unref (ret);
  snap_op_free (op);
}

/* Ends the operation before it started, with a refusal. */
static void G_GNUC_PRINTF (3, 4)
op_refuse (SnapOp *op, const char *error_class, const char *format, ...)
{
  g_autofree char *text = NULL;
  va_list ap;

  va_start (ap, format);
  text = g_strdup_vprintf (format, ap);
  va_end (ap);
  control_request_error (op->request, error_class, "%s", text);
  snap_op_free (op);
}

/* From here on the VM neither starts nor takes another snapshot operation. */
static void
op_take_busy (SnapOp *op)
{
  vm_snapshot_set_busy (op->vm, op->action);
  op->busy = TRUE;
}

/* ---- create ---- */

static void create_qmp_next (SnapOp *op);

/* Undoes a failed create: nodes out of QEMU (newest first: a format node before its file
 * node), files removed.  QEMU gives up its fds with blockdev-del; unlinking first is fine. */
static void
create_undo (SnapOp *op)
{
  Vm *vm = daemon_find_vm (op->daemon, op->vm);
  QmpClient *qmp = vm != NULL ? vm_get_qmp (vm) : NULL;

  for (guint i = op->added->len; i > 0 && qmp != NULL; i--)
    {
      g_autoptr(JsonObject) args = json_object_new ();

      json_object_set_string_member (args, "node-name", op->added->pdata[i - 1]);
      qmp_client_execute_async (qmp, "blockdev-del", args, NULL, 0, SNAPSHOT_QMP_TIMEOUT_MS, NULL,
                                NULL, NULL);
    }
  for (guint i = 0; i < op->created->len; i++)
    g_unlink (op->created->pdata[i]);
}

static void
create_fail (SnapOp *op, const GError *error)
{
  g_autofree char *what = g_strdup_printf ("snapshot '%s' not taken", op->tag);

  create_undo (op);
  op_fail (op, what, error);
}

/* The disk of the running config named name, or NULL with an error. */
static const VmDisk *
running_disk (SnapOp *op, const char *name, GError **error)
{
  Vm *vm = daemon_find_vm (op->daemon, op->vm);
  const VmConfig *config = vm != NULL ? vm_get_config (vm) : NULL;

  for (guint i = 0; config != NULL && i < config->disks->len; i++)
    if (strcmp (((VmDisk *) config->disks->pdata[i])->section.name, name) == 0)
      return config->disks->pdata[i];
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "disk '%s' is gone (the VM was removed?)", name);
  return NULL;
}

/* The QMP steps: each new layer's file and format nodes, then one transaction that puts
 * every layer on its disk at the same instant. */
static gboolean
create_plan_qmp (SnapOp *op, GError **error)
{
  guint n = op->taking->disks->len;
  g_autoptr(GPtrArray) nodes = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) layers = g_ptr_array_new_with_free_func (g_free);
  QmpStep *step;

  op->steps = g_ptr_array_new_with_free_func ((GDestroyNotify) qmp_step_free);
  for (guint i = 0; i < n; i++)
    {
      const VmSnapshotDisk *d = op->taking->disks->pdata[i];
      const VmDisk *disk = running_disk (op, d->disk, error);
      g_autoptr(GPtrArray) chain = NULL;
      JsonNode *file_node = NULL, *format_node = NULL;
      guint layer;

      if (disk == NULL)
        return FALSE;
      chain = vm_snapshots_chain (op->record, d->disk);
      layer = chain->len + 1;
      qemu_argv_disk_layer_nodes (disk, layer, d->overlay, &file_node, &format_node);
      step = g_new0 (QmpStep, 1);
      step->command = g_strdup ("blockdev-add");
      step->args = json_object_ref (json_node_get_object (file_node));
      step->node = g_strdup (json_object_get_string_member (step->args, "node-name"));
      g_ptr_array_add (op->steps, step);
      step = g_new0 (QmpStep, 1);
      step->command = g_strdup ("blockdev-add");
      step->args = json_object_ref (json_node_get_object (format_node));
      step->node = g_strdup (json_object_get_string_member (step->args, "node-name"));
      g_ptr_array_add (op->steps, step);
      json_node_unref (file_node);
      json_node_unref (format_node);
      g_ptr_array_add (nodes, qemu_argv_disk_node (disk, layer - 1));
      g_ptr_array_add (layers, qemu_argv_disk_node (disk, layer));
    }
  step = g_new0 (QmpStep, 1);
  step->command = g_strdup ("transaction");
  step->args = images_snapshot_attach_args ((const char *const *) nodes->pdata,
                                            (const char *const *) layers->pdata, n);
  g_ptr_array_add (op->steps, step);
  return TRUE;
}

static JsonObject *
snapshot_json (const VmSnapshot *s, gboolean with_files)
{
  JsonObject *o = json_object_new ();
  JsonArray *disks = json_array_new ();

  json_object_set_string_member (o, "tag", s->tag);
  json_object_set_int_member (o, "time", s->time);
  for (guint i = 0; i < s->disks->len; i++)
    {
      const VmSnapshotDisk *d = s->disks->pdata[i];
      JsonObject *disk;
      GStatBuf st;

      if (!with_files)
        {
          json_array_add_string_element (disks, d->disk);
          continue;
        }
      disk = json_object_new ();
      json_object_set_string_member (disk, "disk", d->disk);
      json_object_set_string_member (disk, "overlay", d->overlay);
      json_object_set_string_member (disk, "backing", d->backing);
      /* What the layer holds on the host: the writes after this snapshot, up to the next. */
      json_object_set_int_member (disk, "allocated", g_stat (d->overlay, &st) == 0
                                                     ? (gint64) st.st_blocks * 512 : -1);
      json_array_add_object_element (disks, disk);
    }
  json_object_set_array_member (o, "disks", disks);
  return o;
}

/* The layers are on the disks: the record says so.  unconfirmed (nullable): why QEMU did
 * not answer the transaction.  Recording is right then too: a layer QEMU did not switch to
 * is empty, and a chain with it shows what the chain without it does. */
static void
create_finish (SnapOp *op, const GError *unconfirmed)
{
  g_autoptr(GError) error = NULL;
  Vm *vm = daemon_find_vm (op->daemon, op->vm);
  JsonObject *ret = snapshot_json (op->taking, FALSE);
  g_autofree char *disks = NULL;
  GString *names = g_string_new (NULL);

  for (guint i = 0; i < op->taking->disks->len; i++)
    g_string_append_printf (names, "%s%s", i ? ", " : "",
                            ((VmSnapshotDisk *) op->taking->disks->pdata[i])->disk);
  disks = g_string_free (names, FALSE);
  g_ptr_array_add (op->record->snapshots, g_steal_pointer (&op->taking));
  /* The guest writes the new layers now: a record we cannot write would lose them at the
   * next start.  Say so loudly; the layers stay. */
  if (!vm_snapshots_save (op->record, &error))
    {
      g_autofree char *what = g_strdup_printf ("snapshot '%s' taken, but not recorded (the guest "
                                               "writes the new layers; do not restart it before "
                                               "%s is writable)", op->tag, op->record->path);
      json_object_unref (ret);
      return op_fail (op, what, error);
    }
  if (vm != NULL)
    vm_snapshots_apply_to_vm (op->record, vm, NULL);
  if (unconfirmed != NULL)
    {
      g_autofree char *what = g_strdup_printf ("snapshot '%s' recorded, but QEMU did not confirm it "
                                               "(its layers keep the guest's writes either way)", op->tag);
      json_object_unref (ret);
      return op_fail (op, what, unconfirmed);
    }
  op_log (op, "snapshot '%s' taken (disks: %s)", op->tag, disks);
  op_done (op, ret);
}

static void
on_create_qmp (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  SnapOp *op = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);
  QmpStep *step = op->steps->pdata[op->next];
  gboolean refused = g_error_matches (error, QMP_ERROR, QMP_ERROR_COMMAND);

  /* No answer to the transaction (QEMU wedged or gone): it may have switched. */
  if (reply == NULL && !refused && op->next + 1 == op->steps->len)
    return create_finish (op, error);
  if (reply == NULL)
    {
      g_prefix_error (&error, refused ? "QEMU refused %s: " : "%s: ", step->command);
      create_fail (op, error);
      return;
    }
  if (step->node != NULL)
    g_ptr_array_add (op->added, g_strdup (step->node));
  op->next++;
  if (op->next == op->steps->len)
    create_finish (op, NULL);
  else
    create_qmp_next (op);
}

static void
create_qmp_next (SnapOp *op)
{
  Vm *vm = daemon_find_vm (op->daemon, op->vm);
  QmpClient *qmp = vm != NULL ? vm_get_qmp (vm) : NULL;
  QmpStep *step = op->steps->pdata[op->next];

  if (qmp == NULL)
    {
      g_autoptr(GError) error = g_error_new (G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                                             "the guest stopped meanwhile");
      create_fail (op, error);
      return;
    }
  qmp_client_execute_async (qmp, step->command, step->args, NULL, 0, SNAPSHOT_QMP_TIMEOUT_MS, NULL,
                            on_create_qmp, op);
}

static void create_files_next (SnapOp *op);

static void
on_layer_created (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  SnapOp *op = data;
  g_autoptr(GError) error = NULL;
  const VmSnapshotDisk *d = op->taking->disks->pdata[op->next];

  if (!images_overlay_create_finish (result, &error))
    {
      g_prefix_error (&error, "disk '%s': ", d->disk);
      create_fail (op, error);
      return;
    }
  g_ptr_array_add (op->created, g_strdup (d->overlay));
  op->next++;
  create_files_next (op);
}

/* One new layer file per disk, made by us (owned by QEMU's user), then QMP. */
static void
create_files_next (SnapOp *op)
{
  g_autoptr(GError) error = NULL;
  const VmSnapshotDisk *d;

  if (op->next == op->taking->disks->len)
    {
      op->next = 0;
      if (!create_plan_qmp (op, &error))
        {
          create_fail (op, error);
          return;
        }
      create_qmp_next (op);
      return;
    }
  d = op->taking->disks->pdata[op->next];
  images_overlay_create_async (op->daemon->host->qemu_img, d->overlay, d->backing,
                               vm_image_format_to_string (d->backing_format), op->uid, op->gid,
                               SNAPSHOT_IMG_TIMEOUT_MS, NULL, on_layer_created, op);
}

/* The new snapshot: for each disk that takes snapshots, a layer on its current top. */
static VmSnapshot *
create_plan (SnapOp *op, const VmConfig *config)
{
  VmSnapshot *s = g_new0 (VmSnapshot, 1);

  s->tag = g_strdup (op->tag);
  s->time = g_get_real_time () / G_USEC_PER_SEC;
  s->disks = g_ptr_array_new_with_free_func ((GDestroyNotify) vm_snapshot_disk_free);
  for (guint i = 0; i < config->disks->len; i++)
    {
      const VmDisk *disk = config->disks->pdata[i];
      g_autoptr(GPtrArray) chain = NULL;
      VmSnapshotDisk *d;

      if (!vm_disk_takes_snapshots (disk))
        continue;
      chain = vm_snapshots_chain (op->record, disk->section.name);
      d = g_new0 (VmSnapshotDisk, 1);
      d->disk = g_strdup (disk->section.name);
      d->overlay = images_snapshot_file_name (disk->image, op->tag);
      if (chain->len > 0)
        {
          d->backing = g_strdup (((VmSnapshotDisk *) chain->pdata[chain->len - 1])->overlay);
          d->backing_format = VM_FORMAT_QCOW2;
        }
      else
        {
          d->backing = g_strdup (disk->image);
          d->backing_format = disk->format;
        }
      g_ptr_array_add (s->disks, d);
    }
  return s;
}

static void
snapshot_create (SnapOp *op, Vm *vm)
{
  VmState state = vm_get_state (vm);
  g_autoptr(GError) error = NULL;
  VmSnapshot *same;

  if (state == VM_STATE_STOPPED || state == VM_STATE_FAILED)
    return op_refuse (op, "Busy", "vm '%s' is %s: snapshots of a stopped guest are plain copies: "
                      "use vmherd image clone", op->vm, vm_state_to_string (state));
  if ((state != VM_STATE_RUNNING && state != VM_STATE_PAUSED) || vm_get_qmp (vm) == NULL)
    return op_refuse (op, "Busy", "vm '%s' is %s: a snapshot needs a running or paused guest (try "
                      "again once it runs)", op->vm, vm_state_to_string (state));
  if ((same = vm_snapshots_find (op->record, op->tag, NULL)) != NULL)
    {
      g_autoptr(GDateTime) t = g_date_time_new_from_unix_local (same->time);
      g_autofree char *when = g_date_time_format (t, "%Y-%m-%d %H:%M:%S");

      return op_refuse (op, "InvalidArgument", "vm '%s' already has a snapshot '%s' (taken %s): pick "
                        "another tag, or delete that one first", op->vm, op->tag, when);
    }
  if (op->record->snapshots->len >= VM_SNAPSHOT_MAX)
    return op_refuse (op, "Busy", "vm '%s' has %u snapshots, the most vmherd keeps (delete one first)",
                      op->vm, op->record->snapshots->len);
  op->taking = create_plan (op, vm_get_config (vm));
  if (op->taking->disks->len == 0)
    return op_refuse (op, "InvalidArgument", "vm '%s' has no disk to snapshot (disks with read-only = "
                      "yes or shared = yes are left out)", op->vm);
  if (!qemu_spawn_owner (op->daemon->host, &op->uid, &op->gid, &error))
    return op_refuse (op, "GenericError", "vm '%s': %s", op->vm, error->message);
  op->created = g_ptr_array_new_with_free_func (g_free);
  op->added = g_ptr_array_new_with_free_func (g_free);
  op_take_busy (op);
  create_files_next (op);
}

/* ---- delete, revert ---- */

static void
on_deleted (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  SnapOp *op = data;
  g_autoptr(GError) error = NULL;
  JsonObject *ret;

  if (!vm_snapshots_delete_finish (result, &error))
    {
      g_autofree char *what = g_strdup_printf ("snapshot '%s' not deleted", op->tag);
      return op_fail (op, what, error);
    }
  ret = json_object_new ();
  json_object_set_string_member (ret, "tag", op->tag);
  op_log (op, "snapshot '%s' deleted", op->tag);
  op_done (op, ret);
}

static void
on_reverted (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  SnapOp *op = data;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) dropped = vm_snapshots_revert_finish (result, &error);
  g_autofree char *later = NULL;
  JsonObject *ret;
  JsonArray *list;

  if (dropped == NULL)
    {
      g_autofree char *what = g_strdup_printf ("not reverted to snapshot '%s'", op->tag);
      return op_fail (op, what, error);
    }
  ret = json_object_new ();
  list = json_array_new ();
  for (char **tag = dropped; *tag != NULL; tag++)
    json_array_add_string_element (list, *tag);
  json_object_set_string_member (ret, "tag", op->tag);
  json_object_set_array_member (ret, "dropped", list);
  later = g_strjoinv (", ", dropped);
  op_log (op, "reverted to snapshot '%s'%s%s%s", op->tag, *later ? " (dropped the later snapshots " : "",
          later, *later ? ")" : "");
  op_done (op, ret);
}

/* ---- the command ---- */

static gboolean
vm_is_stopped (Vm *vm)
{
  return vm_get_state (vm) == VM_STATE_STOPPED || vm_get_state (vm) == VM_STATE_FAILED;
}

/* delete and revert: a stopped guest and a known tag; FALSE after refusing (op is gone). */
static gboolean
check_offline (SnapOp *op, Vm *vm, guint *out_index)
{
  g_autofree char *known = NULL;

  if (!vm_is_stopped (vm))
    {
      op_refuse (op, "Busy", "vm '%s' is %s: %s needs a stopped guest (vmherd stop %s first)%s",
                 op->vm, vm_state_to_string (vm_get_state (vm)), op->action, op->vm,
                 strcmp (op->action, "delete") == 0
                 ? "; merging layers under a running guest is not supported" : "");
      return FALSE;
    }
  if (vm_snapshots_find (op->record, op->tag, out_index) != NULL)
    return TRUE;
  known = vm_snapshots_tags (op->record, 0, G_MAXUINT);
  op_refuse (op, "NotFound", "vm '%s' has no snapshot '%s' (known: %s)", op->vm, op->tag, known);
  return FALSE;
}

static void
snapshot_delete (SnapOp *op, Vm *vm)
{
  if (!check_offline (op, vm, NULL))
    return;
  op_take_busy (op);
  vm_snapshots_delete_async (op->record, op->daemon->host->qemu_img, op->tag, NULL, on_deleted, op);
}

static void
snapshot_revert (SnapOp *op, Vm *vm, gboolean force)
{
  g_autoptr(GError) error = NULL;
  guint index;
  uid_t uid;
  gid_t gid;

  if (!check_offline (op, vm, &index))
    return;
  if (index + 1 < op->record->snapshots->len && !force)
    {
      g_autofree char *later = vm_snapshots_tags (op->record, index + 1, G_MAXUINT);

      return op_refuse (op, "Busy", "vm '%s': reverting to '%s' drops the snapshots taken after it "
                        "(%s): delete them first, or revert --force", op->vm, op->tag, later);
    }
  if (!qemu_spawn_owner (op->daemon->host, &uid, &gid, &error))
    return op_refuse (op, "GenericError", "vm '%s': %s", op->vm, error->message);
  op_take_busy (op);
  vm_snapshots_revert_async (op->record, op->daemon->host->qemu_img, op->tag, uid, gid, NULL, on_reverted,
                             op);
}

static void
snapshot_list (SnapOp *op)
{
  JsonObject *ret = json_object_new ();
  JsonArray *list = json_array_new ();

  for (guint i = 0; i < op->record->snapshots->len; i++)
    json_array_add_object_element (list, snapshot_json (op->record->snapshots->pdata[i], TRUE));
  json_object_set_string_member (ret, "vm", op->vm);
  json_object_set_array_member (ret, "snapshots", list);
  op_done (op, ret);
}

/* A string argument; FALSE after answering when it is there but not a string. */
static gboolean
string_arg (ControlRequest *request, JsonObject *args, const char *name, const char **out)
{
  JsonNode *node = json_object_get_member (args, name);

  *out = control_json_get_string (args, name);
  if (node != NULL && *out == NULL)
    {
      control_request_error (request, "InvalidArgument", "argument \"%s\" is %s, not a string", name,
                             control_json_describe (node));
      return FALSE;
    }
  return TRUE;
}

void
daemon_cmd_snapshot (Daemon *daemon, ControlRequest *request, JsonObject *args)
{
  static const char *const actions[] = { "create", "list", "delete", "revert", NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *problem = NULL;
  const char *name, *action, *tag;
  JsonNode *force_node = json_object_get_member (args, "force");
  const char *busy;
  SnapOp *op;
  Vm *vm;

  if (!string_arg (request, args, "vm", &name) || !string_arg (request, args, "action", &action)
      || !string_arg (request, args, "tag", &tag))
    return;
  if (force_node != NULL && (!JSON_NODE_HOLDS_VALUE (force_node)
                             || json_node_get_value_type (force_node) != G_TYPE_BOOLEAN))
    return control_request_error (request, "InvalidArgument", "argument \"force\" is %s, not a boolean",
                                  control_json_describe (force_node));
  if ((vm = name != NULL ? daemon_find_vm (daemon, name) : NULL) == NULL)
    return daemon_answer_no_vm (daemon, request, name);
  if (action == NULL || !g_strv_contains (actions, action))
    return control_request_error (request, "InvalidArgument", "%s snapshot action%s%s%s (use create, "
                                  "list, delete or revert)", action ? "unknown" : "missing",
                                  action ? " '" : "", action ? action : "", action ? "'" : "");
  if (strcmp (action, "list") != 0 && tag == NULL)
    return control_request_error (request, "InvalidArgument", "snapshot %s needs a tag", action);
  if (tag != NULL && !images_snapshot_tag_is_valid (tag, &problem))
    return control_request_error (request, "InvalidArgument", "'%s' is not a valid snapshot tag: it %s",
                                  tag, problem);
  busy = vm_snapshot_busy (name);
  if (busy != NULL && strcmp (action, "list") != 0)
    return control_request_error (request, "Busy", "vm '%s': a snapshot %s is in progress (try again "
                                  "once it is done)", name, busy);

  op = g_new0 (SnapOp, 1);
  op->daemon = daemon;
  op->request = request;
  op->vm = g_strdup (name);
  op->tag = g_strdup (tag);
  op->action = action[0] == 'c' ? "create" : action[0] == 'd' ? "delete" : action[0] == 'r' ? "revert" : "list";
  op->record = vm_snapshots_load (daemon->host, name, &error);
  if (op->record == NULL)
    return op_refuse (op, "GenericError", "vm '%s': %s", name, error->message);
  if (strcmp (op->action, "list") == 0)
    snapshot_list (op);
  else if (strcmp (op->action, "create") == 0)
    snapshot_create (op, vm);
  else if (strcmp (op->action, "delete") == 0)
    snapshot_delete (op, vm);
  else
    snapshot_revert (op, vm, force_node != NULL && json_node_get_boolean (force_node));
}
