/* qmp-args.c: pure builders for command arguments (no I/O, easy to compare in tests). */
#define G_LOG_DOMAIN "vmherd-qmp"

#include "qmp/qmp-args.h"

JsonObject *
qmp_build_capabilities_args (const char *const *enable)
{
  JsonObject *args = json_object_new ();
  JsonArray *array;

  if (enable == NULL || enable[0] == NULL)
    return args;
  array = json_array_new ();
  for (gsize i = 0; enable[i] != NULL; i++)
    json_array_add_string_element (array, enable[i]);
  json_object_set_array_member (args, "enable", array);
  return args;
}

static JsonObject *
fdname_args (const char *fdname)
{
  JsonObject *args;

  g_return_val_if_fail (fdname != NULL && fdname[0] != '\0', NULL);

  args = json_object_new ();
  json_object_set_string_member (args, "fdname", fdname);
  return args;
}

JsonObject *
qmp_build_getfd_args (const char *fdname)
{
  return fdname_args (fdname);
}

JsonObject *
qmp_build_closefd_args (const char *fdname)
{
  return fdname_args (fdname);
}

JsonObject *
qmp_build_add_fd_args (gint64 fdset_id, const char *opaque)
{
  JsonObject *args = json_object_new ();

  if (fdset_id >= 0)
    json_object_set_int_member (args, "fdset-id", fdset_id);
  if (opaque != NULL)
    json_object_set_string_member (args, "opaque", opaque);
  return args;
}

JsonObject *
qmp_build_migrate_args (const char *uri)
{
  JsonObject *args;

  g_return_val_if_fail (uri != NULL, NULL);

  args = json_object_new ();
  json_object_set_string_member (args, "uri", uri);
  return args;
}

JsonObject *
qmp_build_migrate_capabilities_args (const char *const *capabilities, gboolean state)
{
  JsonObject *args = json_object_new ();
  JsonArray *array = json_array_new ();

  for (gsize i = 0; capabilities != NULL && capabilities[i] != NULL; i++)
    {
      JsonObject *entry = json_object_new ();

      json_object_set_string_member (entry, "capability", capabilities[i]);
      json_object_set_boolean_member (entry, "state", state);
      json_array_add_object_element (array, entry);
    }
  json_object_set_array_member (args, "capabilities", array);
  return args;
}
