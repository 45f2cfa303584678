/* snapshot.c: snapshot names and the QMP transaction that takes them. */
#define G_LOG_DOMAIN "vmherd-images"

#include "images/snapshot.h"

#include <string.h>

gboolean
images_snapshot_tag_is_valid (const char *tag, char **out_problem)
{
  gsize len = strlen (tag);

  if (len == 0)
    {
      *out_problem = g_strdup ("is empty");
      return FALSE;
    }
  if (len > IMAGES_SNAPSHOT_TAG_MAX)
    {
      *out_problem = g_strdup_printf ("is longer than %d characters", IMAGES_SNAPSHOT_TAG_MAX);
      return FALSE;
    }
  if (tag[0] == '.' || tag[0] == '-')
    {
      *out_problem = g_strdup_printf ("starts with '%c'", tag[0]);
      return FALSE;
    }
  for (const char *p = tag; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      {
        *out_problem = g_strdup_printf ("contains '%c' (use letters, digits, '-', '_' and '.')", *p);
        return FALSE;
      }
  return TRUE;
}

char *
images_snapshot_file_name (const char *image, const char *tag)
{
  static const char *const endings[] = { ".qcow2", ".raw", ".img" };
  g_autofree char *problem = NULL;
  gsize len = strlen (image);

  g_return_val_if_fail (images_snapshot_tag_is_valid (tag, &problem), NULL);

  for (guint i = 0; i < G_N_ELEMENTS (endings); i++)
    if (g_str_has_suffix (image, endings[i]) && len > strlen (endings[i])
        && image[len - strlen (endings[i]) - 1] != '/')
      {
        len -= strlen (endings[i]);
        break;
      }
  return g_strdup_printf ("%.*s.%s.qcow2", (int) len, image, tag);
}

JsonObject *
images_snapshot_transaction_args (const ImagesSnapshotDisk *disks, guint n_disks)
{
  JsonObject *args;
  JsonArray *actions;

  g_return_val_if_fail (disks != NULL && n_disks > 0, NULL);

  args = json_object_new ();
  actions = json_array_new ();

  for (guint i = 0; i < n_disks; i++)
    {
      JsonObject *action = json_object_new ();
      JsonObject *data = json_object_new ();

      json_object_set_string_member (data, "node-name", disks[i].node_name);
      json_object_set_string_member (data, "snapshot-file", disks[i].snapshot_file);
      json_object_set_string_member (data, "snapshot-node-name", disks[i].snapshot_node_name);
      json_object_set_string_member (data, "format", "qcow2");
      json_object_set_string_member (data, "mode", "absolute-paths");
      json_object_set_string_member (action, "type", "blockdev-snapshot-sync");
      json_object_set_object_member (action, "data", data);
      json_array_add_object_element (actions, action);
    }
  json_object_set_array_member (args, "actions", actions);
  return args;
}
