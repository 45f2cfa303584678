/* vm-snapshot.c: the record of a VM's snapshots (state-dir/snapshots/NAME.json) and the
 * chains of layers it describes.
 *
 *   {"snapshots": [{"tag": "t1", "time": 1767225600,
 *                   "disks": [{"disk": "root", "overlay": "/v/web.t1.qcow2",
 *                              "backing": "/v/web.qcow2", "backing-format": "qcow2"}]}]} */
#include "launcher/vm-snapshot.h"

#include "launcher/vm-private.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

void
vm_snapshot_disk_free (VmSnapshotDisk *disk)
{
  g_free (disk->disk);
  g_free (disk->overlay);
  g_free (disk->backing);
  g_free (disk);
}

void
vm_snapshot_free (VmSnapshot *snapshot)
{
  if (snapshot == NULL)
    return;
  g_free (snapshot->tag);
  g_ptr_array_unref (snapshot->disks);
  g_free (snapshot);
}

void
vm_snapshots_free (VmSnapshots *snapshots)
{
  if (snapshots == NULL)
    return;
  g_free (snapshots->path);
  g_ptr_array_unref (snapshots->snapshots);
  g_free (snapshots);
}

gboolean
vm_disk_takes_snapshots (const VmDisk *disk)
{
  /* An NBD export has no folder to put an overlay file next to. */
  return !disk->read_only && !disk->shared && disk->nbd == NULL;
}

static VmSnapshots *
snapshots_new (const HostConfig *host, const char *vm_name)
{
  VmSnapshots *s = g_new0 (VmSnapshots, 1);
  g_autofree char *file = g_strdup_printf ("%s.json", vm_name);

  s->path = g_build_filename (host->state_dir, "snapshots", file, NULL);
  s->snapshots = g_ptr_array_new_with_free_func ((GDestroyNotify) vm_snapshot_free);
  return s;
}

/* A string member that must be there; NULL after setting the error. */
static const char *
need_string (JsonObject *o, const char *member, const char *what, GError **error)
{
  JsonNode *node = json_object_get_member (o, member);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s has no \"%s\"", what, member);
      return NULL;
    }
  return json_node_get_string (node);
}

static VmSnapshotDisk *
parse_disk (JsonNode *node, const char *what, GError **error)
{
  JsonObject *o = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  const char *disk, *overlay, *backing, *format;
  VmSnapshotDisk *d;

  if (o == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s is not an object", what);
      return NULL;
    }
  if ((disk = need_string (o, "disk", what, error)) == NULL
      || (overlay = need_string (o, "overlay", what, error)) == NULL
      || (backing = need_string (o, "backing", what, error)) == NULL
      || (format = need_string (o, "backing-format", what, error)) == NULL)
    return NULL;
  if (strcmp (format, "qcow2") != 0 && strcmp (format, "raw") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: backing-format \"%s\" is neither qcow2 nor raw", what, format);
      return NULL;
    }
  d = g_new0 (VmSnapshotDisk, 1);
  d->disk = g_strdup (disk);
  d->overlay = g_strdup (overlay);
  d->backing = g_strdup (backing);
  d->backing_format = strcmp (format, "raw") == 0 ? VM_FORMAT_RAW : VM_FORMAT_QCOW2;
  return d;
}

static VmSnapshot *
parse_snapshot (JsonNode *node, guint index, GError **error)
{
  g_autofree char *what = g_strdup_printf ("snapshot %u", index + 1);
  JsonObject *o = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  g_autoptr(VmSnapshot) s = NULL;
  JsonNode *time, *disks;
  const char *tag;

  if (o == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s is not an object", what);
      return NULL;
    }
  if ((tag = need_string (o, "tag", what, error)) == NULL)
    return NULL;
  time = json_object_get_member (o, "time");
  disks = json_object_get_member (o, "disks");
  if (time == NULL || !JSON_NODE_HOLDS_VALUE (time) || json_node_get_value_type (time) != G_TYPE_INT64
      || disks == NULL || !JSON_NODE_HOLDS_ARRAY (disks))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s ('%s') needs \"time\" (a number) "
                   "and \"disks\" (an array)", what, tag);
      return NULL;
    }
  s = g_new0 (VmSnapshot, 1);
  s->tag = g_strdup (tag);
  s->time = json_node_get_int (time);
  s->disks = g_ptr_array_new_with_free_func ((GDestroyNotify) vm_snapshot_disk_free);
  for (guint i = 0; i < json_array_get_length (json_node_get_array (disks)); i++)
    {
      g_autofree char *disk_what = g_strdup_printf ("%s ('%s'), disk %u", what, tag, i + 1);
      VmSnapshotDisk *d = parse_disk (json_array_get_element (json_node_get_array (disks), i),
                                      disk_what, error);
      if (d == NULL)
        return NULL;
      g_ptr_array_add (s->disks, d);
    }
  return g_steal_pointer (&s);
}

VmSnapshots *
vm_snapshots_load (const HostConfig *host, const char *vm_name, GError **error)
{
  g_autoptr(VmSnapshots) s = snapshots_new (host, vm_name);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) local = NULL;
  g_autofree char *text = NULL;
  JsonNode *root, *list;
  gsize len;

  if (!g_file_get_contents (s->path, &text, &len, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return g_steal_pointer (&s);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s", local->message);
      return NULL;
    }
  if (!json_parser_load_from_data (parser, text, (gssize) len, &local))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: %s", s->path, local->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  list = root != NULL && JSON_NODE_HOLDS_OBJECT (root)
         ? json_object_get_member (json_node_get_object (root), "snapshots") : NULL;
  if (list == NULL || !JSON_NODE_HOLDS_ARRAY (list))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: not a snapshot record (no \"snapshots\" array)", s->path);
      return NULL;
    }
  for (guint i = 0; i < json_array_get_length (json_node_get_array (list)); i++)
    {
      VmSnapshot *snap = parse_snapshot (json_array_get_element (json_node_get_array (list), i), i,
                                         &local);
      if (snap == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: %s", s->path, local->message);
          return NULL;
        }
      g_ptr_array_add (s->snapshots, snap);
    }
  return g_steal_pointer (&s);
}

gboolean
vm_snapshots_save (const VmSnapshots *snapshots, GError **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *dir = g_path_get_dirname (snapshots->path);
  g_autofree char *text = NULL;

  if (snapshots->snapshots->len == 0)
    {
      if (g_unlink (snapshots->path) < 0 && errno != ENOENT)
        {
          int saved_errno = errno;
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "cannot remove %s: %s",
                       snapshots->path, g_strerror (saved_errno));
          return FALSE;
        }
      return TRUE;
    }
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "snapshots");
  json_builder_begin_array (b);
  for (guint i = 0; i < snapshots->snapshots->len; i++)
    {
      const VmSnapshot *s = snapshots->snapshots->pdata[i];

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "tag"); json_builder_add_string_value (b, s->tag);
      json_builder_set_member_name (b, "time"); json_builder_add_int_value (b, s->time);
      json_builder_set_member_name (b, "disks");
      json_builder_begin_array (b);
      for (guint j = 0; j < s->disks->len; j++)
        {
          const VmSnapshotDisk *d = s->disks->pdata[j];

          json_builder_begin_object (b);
          json_builder_set_member_name (b, "disk"); json_builder_add_string_value (b, d->disk);
          json_builder_set_member_name (b, "overlay"); json_builder_add_string_value (b, d->overlay);
          json_builder_set_member_name (b, "backing"); json_builder_add_string_value (b, d->backing);
          json_builder_set_member_name (b, "backing-format");
          json_builder_add_string_value (b, vm_image_format_to_string (d->backing_format));
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  text = json_generator_to_data (gen, NULL);
  if (g_mkdir_with_parents (dir, 0755) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "cannot create %s: %s", dir,
                   g_strerror (saved_errno));
      return FALSE;
    }
  /* Temporary file + rename: a crash leaves the old record or the new one, whole. */
  return g_file_set_contents (snapshots->path, text, -1, error);
}

VmSnapshot *
vm_snapshots_find (const VmSnapshots *snapshots, const char *tag, guint *out_index)
{
  for (guint i = 0; i < snapshots->snapshots->len; i++)
    {
      VmSnapshot *s = snapshots->snapshots->pdata[i];

      if (strcmp (s->tag, tag) == 0)
        {
          if (out_index != NULL)
            *out_index = i;
          return s;
        }
    }
  return NULL;
}

VmSnapshotDisk *
vm_snapshot_find_disk (const VmSnapshot *snapshot, const char *disk)
{
  for (guint i = 0; i < snapshot->disks->len; i++)
    {
      VmSnapshotDisk *d = snapshot->disks->pdata[i];

      if (strcmp (d->disk, disk) == 0)
        return d;
    }
  return NULL;
}

GPtrArray *
vm_snapshots_chain (const VmSnapshots *snapshots, const char *disk)
{
  GPtrArray *chain = g_ptr_array_new ();

  for (guint i = 0; i < snapshots->snapshots->len; i++)
    {
      VmSnapshotDisk *d = vm_snapshot_find_disk (snapshots->snapshots->pdata[i], disk);

      if (d != NULL)
        g_ptr_array_add (chain, d);
    }
  return chain;
}

char *
vm_snapshots_tags (const VmSnapshots *snapshots, guint from, guint to)
{
  GString *s = g_string_new (NULL);

  for (guint i = from; i < to && i < snapshots->snapshots->len; i++)
    g_string_append_printf (s, "%s%s", s->len ? ", " : "",
                            ((VmSnapshot *) snapshots->snapshots->pdata[i])->tag);
  if (s->len == 0)
    g_string_append (s, "none");
  return g_string_free (s, FALSE);
}

/* Checks one disk's chain; on success *out_files is its overlays (owned), or NULL. */
static gboolean
disk_chain (const VmSnapshots *snapshots, const VmDisk *disk, GPtrArray **out_files, GError **error)
{
  g_autoptr(GPtrArray) chain = vm_snapshots_chain (snapshots, disk->section.name);
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
  const char *below = disk->image;

  for (guint i = 0; i < chain->len; i++)
    {
      const VmSnapshotDisk *d = chain->pdata[i];

      if (strcmp (d->backing, below) != 0 && i == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "disk '%s': snapshot layer %s sits on %s, but the VM file names image = %s "
                       "(name the old image again, or revert and delete the snapshots first)",
                       disk->section.name, d->overlay, d->backing, below);
          return FALSE;
        }
      if (strcmp (d->backing, below) != 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "disk '%s': snapshot layer %s sits on %s, not on the layer before it, %s "
                       "(%s is damaged)", disk->section.name, d->overlay, d->backing, below,
                       snapshots->path);
          return FALSE;
        }
      g_ptr_array_add (files, g_strdup (d->overlay));
      below = d->overlay;
    }
  *out_files = files->len > 0 ? g_steal_pointer (&files) : NULL;
  return TRUE;
}

gboolean
vm_snapshots_apply (const VmSnapshots *snapshots, VmConfig *config, GError **error)
{
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);

  for (guint i = 0; i < config->disks->len; i++)
    {
      GPtrArray *files = NULL;

      if (!disk_chain (snapshots, config->disks->pdata[i], &files, error))
        return FALSE;
      g_ptr_array_add (all, files ? files : g_ptr_array_new_with_free_func (g_free));
    }
  for (guint i = 0; i < config->disks->len; i++)
    {
      VmDisk *disk = config->disks->pdata[i];
      GPtrArray *files = all->pdata[i];

      g_clear_pointer (&disk->overlays, g_ptr_array_unref);
      if (files->len > 0)
        disk->overlays = g_ptr_array_ref (files);
    }
  return TRUE;
}

gboolean
vm_snapshots_apply_to_vm (const VmSnapshots *snapshots, Vm *vm, GError **error)
{
  return vm_snapshots_apply (snapshots, vm->config, error);
}

/* Operations in progress, by VM name: the daemon's own, in memory only. */
static GHashTable *busy;

const char *
vm_snapshot_busy (const char *vm_name)
{
  return busy != NULL ? g_hash_table_lookup (busy, vm_name) : NULL;
}

void
vm_snapshot_set_busy (const char *vm_name, const char *action)
{
  if (busy == NULL)
    busy = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (action != NULL)
    g_hash_table_insert (busy, g_strdup (vm_name), (gpointer) action);
  else
    g_hash_table_remove (busy, vm_name);
}
