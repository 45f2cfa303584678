/* qmp-shell.c: console lines to QMP commands; schema look-ups for completion.  Pure. */
#include "qmp/qmp-shell.h"

#include <gio/gio.h>
#include <string.h>

static JsonNode *
parse_value (const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonNode *node;

  if (json_parser_load_from_data (parser, text, -1, NULL) && json_parser_get_root (parser) != NULL)
    return json_node_copy (json_parser_get_root (parser));
  node = json_node_new (JSON_NODE_VALUE);
  json_node_set_string (node, text);
  return node;
}

/* Sets key (dotted: a.b.c nests objects) in args; FALSE on a clash ("a=1 a.b=2"). */
static gboolean
set_dotted (JsonObject *args, const char *key, JsonNode *value)
{
  g_auto(GStrv) parts = g_strsplit (key, ".", -1);
  JsonObject *o = args;
  guint n = g_strv_length (parts);

  for (guint i = 0; i + 1 < n; i++)
    {
      if (parts[i][0] == '\0')
        return FALSE;
      if (!json_object_has_member (o, parts[i]))
        json_object_set_object_member (o, parts[i], json_object_new ());
      else if (!JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, parts[i])))
        return FALSE;
      o = json_object_get_object_member (o, parts[i]);
    }
  if (parts[n - 1][0] == '\0' || json_object_has_member (o, parts[n - 1]))
    return FALSE;
  json_object_set_member (o, parts[n - 1], value);
  return TRUE;
}

static JsonObject *
parse_raw (const char *line, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) local = NULL;
  JsonNode *root;

  if (!json_parser_load_from_data (parser, line, -1, &local))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "not JSON: %s", local->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (!JSON_NODE_HOLDS_OBJECT (root)
      || (!json_object_has_member (json_node_get_object (root), "execute")
          && !json_object_has_member (json_node_get_object (root), "exec-oob")))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "a raw command is a JSON object with \"execute\" (e.g. {\"execute\":\"query-status\"})");
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

static JsonObject *
hmp_command (const char *text)
{
  JsonObject *cmd = json_object_new ();
  JsonObject *args = json_object_new ();

  json_object_set_string_member (args, "command-line", text);
  json_object_set_string_member (cmd, "execute", "human-monitor-command");
  json_object_set_object_member (cmd, "arguments", args);
  return cmd;
}

JsonObject *
qmp_shell_parse (const char *line, GError **error)
{
  g_autofree char *text = g_strstrip (g_strdup (line));
  g_auto(GStrv) tokens = NULL;
  g_autoptr(JsonObject) cmd = NULL;
  g_autoptr(JsonObject) args = NULL;
  g_autoptr(GError) local = NULL;

  if (text[0] == '\0')
    return NULL;
  if (text[0] == '{')
    return parse_raw (text, error);
  if (g_str_has_prefix (text, "hmp ") || strcmp (text, "hmp") == 0)
    return hmp_command (g_strstrip (text + 3));
  if (!g_shell_parse_argv (text, NULL, &tokens, &local))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "cannot split the line: %s",
                   local->message);
      return NULL;
    }
  args = json_object_new ();
  for (guint i = 1; tokens[i] != NULL; i++)
    {
      char *eq = strchr (tokens[i], '=');

      if (eq == NULL || eq == tokens[i])
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "malformed argument '%s' (write key=value; nothing was sent)", tokens[i]);
          return NULL;
        }
      *eq = '\0';
      if (!set_dotted (args, tokens[i], parse_value (eq + 1)))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "argument '%s' given twice or clashes with another (nothing was sent)",
                       tokens[i]);
          return NULL;
        }
    }
  cmd = json_object_new ();
  json_object_set_string_member (cmd, "execute", tokens[0]);
  if (json_object_get_size (args) > 0)
    json_object_set_object_member (cmd, "arguments", g_steal_pointer (&args));
  return g_steal_pointer (&cmd);
}

gboolean
qmp_shell_is_read_only (const char *command)
{
  return g_str_has_prefix (command, "query-");
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static GStrv
sorted_strv (GPtrArray *names)
{
  g_ptr_array_sort (names, compare_strings);
  g_ptr_array_add (names, NULL);
  return (GStrv) g_ptr_array_free (names, FALSE);
}

GStrv
qmp_shell_command_names (JsonNode *query_commands)
{
  GPtrArray *names = g_ptr_array_new ();

  if (query_commands != NULL && JSON_NODE_HOLDS_ARRAY (query_commands))
    {
      JsonArray *a = json_node_get_array (query_commands);
      for (guint i = 0; i < json_array_get_length (a); i++)
        {
          JsonNode *e = json_array_get_element (a, i);
          if (JSON_NODE_HOLDS_OBJECT (e))
            g_ptr_array_add (names, g_strdup (json_object_get_string_member_with_default (
                                        json_node_get_object (e), "name", "")));
        }
    }
  return sorted_strv (names);
}

/* The schema entry with "name" == name and "meta-type" == meta, or NULL. */
static JsonObject *
schema_find (JsonArray *schema, const char *name, const char *meta)
{
  for (guint i = 0; i < json_array_get_length (schema); i++)
    {
      JsonNode *e = json_array_get_element (schema, i);
      JsonObject *o = JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) : NULL;

      if (o != NULL && g_strcmp0 (json_object_get_string_member_with_default (o, "name", NULL), name) == 0
          && g_strcmp0 (json_object_get_string_member_with_default (o, "meta-type", NULL), meta) == 0)
        return o;
    }
  return NULL;
}

GStrv
qmp_shell_command_args (JsonNode *schema, const char *command)
{
  GPtrArray *names = g_ptr_array_new ();
  JsonObject *cmd, *type;
  JsonArray *members;

  if (schema == NULL || !JSON_NODE_HOLDS_ARRAY (schema))
    return sorted_strv (names);
  cmd = schema_find (json_node_get_array (schema), command, "command");
  type = cmd ? schema_find (json_node_get_array (schema),
                            json_object_get_string_member_with_default (cmd, "arg-type", ""),
                            "object") : NULL;
  members = type && json_object_has_member (type, "members")
            ? json_object_get_array_member (type, "members") : NULL;
  for (guint i = 0; members != NULL && i < json_array_get_length (members); i++)
    {
      JsonObject *m = json_array_get_object_element (members, i);
      g_ptr_array_add (names, g_strdup (json_object_get_string_member_with_default (m, "name", "")));
    }
  return sorted_strv (names);
}
