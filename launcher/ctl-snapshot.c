/* ctl-snapshot.c: `vmherd snapshot NAME create|list|delete|revert`, answered by vmherdd
 * (daemon-snapshot.c): it knows whether the guest runs, talks QMP, and owns the record. */
#include "launcher/ctl.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>


static int
usage (CtlContext *ctx)
{
  fprintf (stderr,
           "usage: %1$s snapshot NAME create TAG\n"
           "       %1$s snapshot NAME list [--json]\n"
           "       %1$s snapshot NAME delete TAG\n"
           "       %1$s snapshot NAME revert TAG [--force]\n", ctx->program);
  return CTL_EXIT_USAGE;
}

/* One request; the "return" value, or NULL after printing why with *out_status set. */
static JsonNode *
call (CtlContext *ctx, JsonObject *args, guint timeout_ms, int *out_status)
{
  return ctl_call (ctx, "snapshot", args, timeout_ms, NULL, NULL, out_status);
}

/* "64.0 KiB" with a plain space. */
static char *
size_text (gint64 bytes)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) parts = NULL;

  if (bytes < 0)
    return g_strdup ("missing");
  text = g_format_size_full ((guint64) bytes, G_FORMAT_SIZE_IEC_UNITS);
  parts = g_strsplit (text, "\u00a0", -1);
  return g_strjoinv (" ", parts);
}

static void
print_list (const char *name, JsonObject *ret, gboolean json)
{
  JsonArray *list = json_object_get_array_member (ret, "snapshots");
  guint n = json_array_get_length (list);

  if (json)
    {
      g_autoptr(JsonGenerator) gen = json_generator_new ();
      g_autoptr(JsonNode) node = json_node_init_object (json_node_alloc (), ret);
      g_autofree char *text = NULL;

      json_generator_set_pretty (gen, TRUE);
      json_generator_set_root (gen, node);
      text = json_generator_to_data (gen, NULL);
      printf ("%s\n", text);
      return;
    }
  if (n == 0)
    {
      printf ("vm '%s' has no snapshots\n", name);
      return;
    }
  printf ("%-20s %-19s  %-8s %s\n", "TAG", "TAKEN", "DISK", "LAYER (the writes since)");
  for (guint i = 0; i < n; i++)
    {
      JsonObject *s = json_array_get_object_element (list, i);
      JsonArray *disks = json_object_get_array_member (s, "disks");
      g_autoptr(GDateTime) t = g_date_time_new_from_unix_local (json_object_get_int_member (s, "time"));
      g_autofree char *when = g_date_time_format (t, "%Y-%m-%d %H:%M:%S");

      for (guint j = 0; j < json_array_get_length (disks); j++)
        {
          JsonObject *d = json_array_get_object_element (disks, j);
          g_autofree char *size = size_text (json_object_get_int_member (d, "allocated"));

          printf ("%-20s %-19s  %-8s %s  %s\n", j == 0 ? json_object_get_string_member (s, "tag") : "",
                  j == 0 ? when : "", json_object_get_string_member (d, "disk"),
                  json_object_get_string_member (d, "overlay"), size);
        }
    }
}

static char *
join_strings (JsonArray *array)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (array); i++)
    g_string_append_printf (s, "%s%s", i ? ", " : "", json_array_get_string_element (array, i));
  return g_string_free (s, FALSE);
}

int
ctl_cmd_snapshot (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(JsonNode) ret = NULL;
  const char *name, *action, *tag = NULL;
  gboolean json = FALSE, force = FALSE;
  JsonObject *o;
  int status;

  if (argc < 3 || argv[1][0] == '-')
    return usage (ctx);
  name = argv[1];
  action = argv[2];
  for (int i = 3; i < argc; i++)
    {
      if (strcmp (argv[i], "--json") == 0 && strcmp (action, "list") == 0)
        json = TRUE;
      else if (strcmp (argv[i], "--force") == 0 && strcmp (action, "revert") == 0)
        force = TRUE;
      else if (argv[i][0] != '-' && tag == NULL && strcmp (action, "list") != 0)
        tag = argv[i];
      else
        return usage (ctx);
    }
  if (strcmp (action, "create") != 0 && strcmp (action, "list") != 0 && strcmp (action, "delete") != 0
      && strcmp (action, "revert") != 0)
    {
      fprintf (stderr, "%s snapshot: unknown action '%s'\n", ctx->program, action);
      return usage (ctx);
    }
  if (strcmp (action, "list") != 0 && tag == NULL)
    return usage (ctx);
  json_object_set_string_member (args, "vm", name);
  json_object_set_string_member (args, "action", action);
  if (tag != NULL)
    json_object_set_string_member (args, "tag", tag);
  if (force)
    json_object_set_boolean_member (args, "force", TRUE);
  /* No limit here: the daemon bounds each step (a merge may copy gigabytes). */
  ret = call (ctx, args, 0, &status);
  if (ret == NULL)
    return status;
  o = json_node_get_object (ret);
  if (strcmp (action, "list") == 0)
    print_list (name, o, json);
  else if (strcmp (action, "create") == 0)
    {
      g_autofree char *disks = join_strings (json_object_get_array_member (o, "disks"));
      printf ("vm '%s': snapshot '%s' taken (disks: %s)\n", name, tag, disks);
    }
  else if (strcmp (action, "delete") == 0)
    printf ("vm '%s': snapshot '%s' deleted\n", name, tag);
  else
    {
      JsonArray *dropped = json_object_get_array_member (o, "dropped");
      g_autofree char *later = join_strings (dropped);

      printf ("vm '%s': reverted to snapshot '%s'%s%s%s\n", name, tag,
              json_array_get_length (dropped) ? " (dropped the later snapshots " : "", later,
              json_array_get_length (dropped) ? ")" : "");
    }
  return CTL_EXIT_OK;
}
