/* image-info.c: `qemu-img info --output=json --backing-chain`, run and parsed. */
#define G_LOG_DOMAIN "vmherd-images"

#include "images/image-info.h"

#include <json-glib/json-glib.h>

#include "images/qemu-img.h"

void
images_info_free (ImagesInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->filename);
  g_free (info->format);
  g_free (info->backing_filename);
  g_free (info->full_backing_filename);
  g_free (info->backing_format);
  g_free (info);
}

void
images_chain_free (ImagesChain *chain)
{
  if (chain == NULL)
    return;
  g_clear_pointer (&chain->images, g_ptr_array_unref);
  g_free (chain->json);
  g_free (chain);
}

/* member of object when it has type, else NULL; a member of another type is an error. */
static JsonNode *
member (JsonObject *object, const char *name, GType type, gboolean required, const char *path,
        guint index, GError **error)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    {
      if (required)
        g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL,
                     "qemu-img info printed unexpected JSON for image %s: element %u has no \"%s\"",
                     path, index, name);
      return NULL;
    }
  if (type == JSON_TYPE_OBJECT ? !JSON_NODE_HOLDS_OBJECT (node)
      : !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != type)
    {
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL,
                   "qemu-img info printed unexpected JSON for image %s: \"%s\" of element %u is "
                   "not a %s", path, name, index, type == JSON_TYPE_OBJECT ? "object" : g_type_name (type));
      return NULL;
    }
  return node;
}

#define STRING(name, required) \
  member (object, name, G_TYPE_STRING, required, path, index, &local_error)

static ImagesInfo *
parse_element (JsonNode *node, const char *path, guint index, GError **error)
{
  g_autoptr(ImagesInfo) info = g_new0 (ImagesInfo, 1);
  GError *local_error = NULL;
  JsonObject *object;
  JsonNode *n, *specific, *data;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL,
                   "qemu-img info printed unexpected JSON for image %s: element %u is not an object",
                   path, index);
      return NULL;
    }
  object = json_node_get_object (node);
  if ((n = STRING ("filename", TRUE)) != NULL)
    info->filename = json_node_dup_string (n);
  if (local_error == NULL && (n = STRING ("format", TRUE)) != NULL)
    info->format = json_node_dup_string (n);
  if (local_error == NULL
      && (n = member (object, "virtual-size", G_TYPE_INT64, TRUE, path, index, &local_error)) != NULL)
    info->virtual_size = (guint64) json_node_get_int (n);
  info->actual_size = -1;
  if (local_error == NULL
      && (n = member (object, "actual-size", G_TYPE_INT64, FALSE, path, index, &local_error)) != NULL)
    info->actual_size = json_node_get_int (n);
  if (local_error == NULL && (n = STRING ("backing-filename", FALSE)) != NULL)
    info->backing_filename = json_node_dup_string (n);
  if (local_error == NULL && (n = STRING ("full-backing-filename", FALSE)) != NULL)
    info->full_backing_filename = json_node_dup_string (n);
  if (local_error == NULL && (n = STRING ("backing-filename-format", FALSE)) != NULL)
    info->backing_format = json_node_dup_string (n);
  if (local_error == NULL
      && (n = member (object, "dirty-flag", G_TYPE_BOOLEAN, FALSE, path, index, &local_error)) != NULL)
    info->dirty = json_node_get_boolean (n);
  /* "format-specific": {"type": "qcow2", "data": {"corrupt": false, ...}} */
  specific = local_error == NULL ? json_object_get_member (object, "format-specific") : NULL;
  data = specific != NULL && JSON_NODE_HOLDS_OBJECT (specific)
         ? json_object_get_member (json_node_get_object (specific), "data") : NULL;
  if (data != NULL && JSON_NODE_HOLDS_OBJECT (data)
      && (n = member (json_node_get_object (data), "corrupt", G_TYPE_BOOLEAN, FALSE, path, index,
                      &local_error)) != NULL)
    info->corrupt = json_node_get_boolean (n);
  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return NULL;
    }
  return g_steal_pointer (&info);
}

#undef STRING

ImagesChain *
images_chain_parse (const char *json, const char *path, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GPtrArray) images = g_ptr_array_new_with_free_func ((GDestroyNotify) images_info_free);
  ImagesChain *chain;
  JsonNode *root;

  g_return_val_if_fail (json != NULL && path != NULL, NULL);

  if (!json_parser_load_from_data (parser, json, -1, &local_error))
    {
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL,
                   "qemu-img info printed unexpected JSON for image %s: %s", path, local_error->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root != NULL && JSON_NODE_HOLDS_ARRAY (root))
    {
      JsonArray *array = json_node_get_array (root);

      for (guint i = 0; i < json_array_get_length (array); i++)
        {
          ImagesInfo *info = parse_element (json_array_get_element (array, i), path, i, error);
          if (info == NULL)
            return NULL;
          g_ptr_array_add (images, info);
        }
    }
  else if (root != NULL && JSON_NODE_HOLDS_OBJECT (root))
    {
      ImagesInfo *info = parse_element (root, path, 0, error);
      if (info == NULL)
        return NULL;
      g_ptr_array_add (images, info);
    }
  if (images->len == 0)
    {
      g_set_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL,
                   "qemu-img info printed unexpected JSON for image %s: neither an object nor a "
                   "non-empty array", path);
      return NULL;
    }
  chain = g_new0 (ImagesChain, 1);
  chain->images = g_steal_pointer (&images);
  chain->json = g_strdup (json);
  return chain;
}

static void
on_info_done (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  const char *path = g_task_get_task_data (task);
  GError *error = NULL;
  g_autofree char *out = images_qemu_img_run_finish (result, &error);
  ImagesChain *chain;

  if (out == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  chain = images_chain_parse (out, path, &error);
  if (chain == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, chain, (GDestroyNotify) images_chain_free);
}

void
images_info_async (const char *qemu_img, const char *path, const char *format, guint timeout_ms,
                   GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;
  const ImagesFile files[] = { { path, "image", NULL } };
  const char *args[8] = { "info", "--output=json", "--backing-chain", "-U" };
  guint n = 4;

  g_return_if_fail (qemu_img != NULL && path != NULL);

  if (format != NULL)
    {
      args[n++] = "-f";
      args[n++] = format;
    }
  args[n] = path;
  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, images_info_async);
  g_task_set_name (task, "images-info");
  g_task_set_task_data (task, g_strdup (path), g_free);
  images_qemu_img_run_async (qemu_img, args, files, G_N_ELEMENTS (files), timeout_ms, NULL, NULL,
                             cancellable, on_info_done, task);
}

ImagesChain *
images_info_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == images_info_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

ImagesChain *
images_info_sync (const char *qemu_img, const char *path, const char *format, guint timeout_ms,
                  GError **error)
{
  ImagesSync sync;
  ImagesChain *chain;

  images_sync_init (&sync);
  images_info_async (qemu_img, path, format, timeout_ms, sync.cancellable, images_sync_done, &sync);
  chain = images_info_finish (images_sync_wait (&sync), error);
  images_sync_clear (&sync);
  return chain;
}
