/* qmp-message.c: JSON lines <-> QmpMessage, command serialisation, the line splitter. */
#define G_LOG_DOMAIN "vmherd-qmp"

#include "qmp/qmp-message.h"

#include <string.h>

static const char *const qmp_message_kind_names[] = {
  [QMP_MESSAGE_GREETING] = "greeting",
  [QMP_MESSAGE_RETURN] = "return",
  [QMP_MESSAGE_ERROR] = "error",
  [QMP_MESSAGE_EVENT] = "event",
};

const char *
qmp_message_kind_to_string (QmpMessageKind kind)
{
  if ((guint) kind >= G_N_ELEMENTS (qmp_message_kind_names))
    return "unknown";
  return qmp_message_kind_names[kind];
}

void
qmp_message_free (QmpMessage *message)
{
  if (message == NULL)
    return;
  g_clear_pointer (&message->object, json_object_unref);
  g_clear_pointer (&message->id, json_node_unref);
  g_clear_pointer (&message->return_value, json_node_unref);
  g_free (message->error_class);
  g_free (message->error_desc);
  g_free (message->event);
  g_clear_pointer (&message->data, json_object_unref);
  g_free (message->version_package);
  g_strfreev (message->capabilities);
  g_free (message);
}

const char *
qmp_json_describe (JsonNode *node)
{
  switch (json_node_get_node_type (node))
    {
    case JSON_NODE_OBJECT:
      return "an object";
    case JSON_NODE_ARRAY:
      return "an array";
    case JSON_NODE_NULL:
      return "null";
    case JSON_NODE_VALUE:
    default:
      break;
    }
  switch (json_node_get_value_type (node))
    {
    case G_TYPE_STRING:
      return "a string";
    case G_TYPE_BOOLEAN:
      return "a boolean";
    default:
      return "a number";
    }
}

static JsonObject *
member_get_object (JsonObject *object, const char *name)
{
  JsonNode *node = json_object_get_member (object, name);

  return node != NULL && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
}

static const char *
member_get_string (JsonObject *object, const char *name)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

static gboolean
member_get_int (JsonObject *object, const char *name, gint64 *out_value)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *out_value = json_node_get_int (node);
  return TRUE;
}

static gboolean
greeting_parse_version (QmpMessage *message, JsonObject *qmp, GError **error)
{
  JsonObject *version = member_get_object (qmp, "version");
  JsonObject *qemu = version != NULL ? member_get_object (version, "qemu") : NULL;
  gint64 major, minor, micro;
  const char *package;

  if (qemu == NULL || !member_get_int (qemu, "major", &major) || !member_get_int (qemu, "minor", &minor)
      || !member_get_int (qemu, "micro", &micro) || major < 0 || minor < 0 || micro < 0)
    {
      g_set_error_literal (error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                           "greeting lacks QMP.version.qemu.{major,minor,micro}");
      return FALSE;
    }
  message->version_major = (guint) major;
  message->version_minor = (guint) minor;
  message->version_micro = (guint) micro;
  package = member_get_string (version, "package");
  message->version_package = g_strdup (package != NULL ? package : "");
  return TRUE;
}

static gboolean
greeting_parse (QmpMessage *message, GError **error)
{
  JsonObject *qmp = member_get_object (message->object, "QMP");
  JsonNode *node;
  g_autoptr(GPtrArray) capabilities = g_ptr_array_new_with_free_func (g_free);

  if (qmp == NULL)
    {
      g_set_error_literal (error, QMP_ERROR, QMP_ERROR_PROTOCOL, "greeting member 'QMP' is not an object");
      return FALSE;
    }
  if (!greeting_parse_version (message, qmp, error))
    return FALSE;
  node = json_object_get_member (qmp, "capabilities");
  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);

      for (guint i = 0; i < json_array_get_length (array); i++)
        {
          JsonNode *element = json_array_get_element (array, i);

          if (JSON_NODE_HOLDS_VALUE (element) && json_node_get_value_type (element) == G_TYPE_STRING)
            g_ptr_array_add (capabilities, g_strdup (json_node_get_string (element)));
        }
    }
  g_ptr_array_add (capabilities, NULL);
  message->capabilities = (GStrv) g_ptr_array_free (g_steal_pointer (&capabilities), FALSE);
  message->kind = QMP_MESSAGE_GREETING;
  return TRUE;
}

static gboolean
error_parse (QmpMessage *message, GError **error)
{
  JsonObject *body = member_get_object (message->object, "error");
  const char *class = body != NULL ? member_get_string (body, "class") : NULL;
  const char *desc = body != NULL ? member_get_string (body, "desc") : NULL;

  if (class == NULL)
    {
      g_set_error_literal (error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                           "error reply lacks a string 'error.class'");
      return FALSE;
    }
  message->kind = QMP_MESSAGE_ERROR;
  message->error_class = g_strdup (class);
  message->error_desc = g_strdup (desc != NULL ? desc : "");
  return TRUE;
}

static gboolean
event_parse (QmpMessage *message, GError **error)
{
  const char *name = member_get_string (message->object, "event");
  JsonNode *data = json_object_get_member (message->object, "data");
  JsonNode *timestamp = json_object_get_member (message->object, "timestamp");

  if (name == NULL)
    {
      g_set_error_literal (error, QMP_ERROR, QMP_ERROR_PROTOCOL, "event member 'event' is not a string");
      return FALSE;
    }
  if (data != NULL && !JSON_NODE_HOLDS_OBJECT (data))
    {
      g_set_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL, "event '%s': 'data' is %s, not an object",
                   name, qmp_json_describe (data));
      return FALSE;
    }
  if (timestamp != NULL
      && (!JSON_NODE_HOLDS_OBJECT (timestamp)
          || !member_get_int (json_node_get_object (timestamp), "seconds", &message->timestamp_seconds)
          || !member_get_int (json_node_get_object (timestamp), "microseconds",
                              &message->timestamp_microseconds)))
    {
      g_set_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                   "event '%s': 'timestamp' lacks integer seconds and microseconds", name);
      return FALSE;
    }
  message->kind = QMP_MESSAGE_EVENT;
  message->event = g_strdup (name);
  if (data != NULL)
    message->data = json_object_ref (json_node_get_object (data));
  return TRUE;
}

static void
unknown_shape_error (JsonObject *object, GError **error)
{
  g_autoptr(GList) members = json_object_get_members (object);
  g_autoptr(GString) names = g_string_new (NULL);

  for (GList *l = members; l != NULL; l = l->next)
    g_string_append_printf (names, "%s'%s'", names->len > 0 ? ", " : "", (const char *) l->data);
  g_set_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL,
               "unknown message shape (members: %s; expected QMP, return, error or event)",
               names->len > 0 ? names->str : "none");
}

static gboolean
message_classify (QmpMessage *message, GError **error)
{
  JsonObject *object = message->object;
  JsonNode *id = json_object_get_member (object, "id");

  if (id != NULL)
    message->id = json_node_ref (id);
  if (json_object_has_member (object, "QMP"))
    return greeting_parse (message, error);
  if (json_object_has_member (object, "return"))
    {
      message->kind = QMP_MESSAGE_RETURN;
      message->return_value = json_node_ref (json_object_get_member (object, "return"));
      return TRUE;
    }
  if (json_object_has_member (object, "error"))
    return error_parse (message, error);
  if (json_object_has_member (object, "event"))
    return event_parse (message, error);
  unknown_shape_error (object, error);
  return FALSE;
}

/* json-glib parses "{...}{...}" as its first value and drops the rest; a QMP line holds
 * exactly one.  Called on text json-glib accepted, so brackets and quotes balance. */
static gboolean
json_text_is_single_value (const char *text, gsize length)
{
  gsize i = 0;
  int depth = 0;
  char quote = 0;

  while (i < length && g_ascii_isspace (text[i]))
    i++;
  if (i == length || (text[i] != '{' && text[i] != '['))
    return TRUE; /* a scalar: json-glib reports trailing data itself */
  for (; i < length; i++)
    {
      char c = text[i];

      if (quote != 0)
        {
          if (c == '\\')
            i++;
          else if (c == quote)
            quote = 0;
        }
      else if (c == '"' || c == '\'')
        quote = c;
      else if (c == '{' || c == '[')
        depth++;
      else if ((c == '}' || c == ']') && --depth == 0)
        break;
    }
  for (i++; i < length; i++)
    if (!g_ascii_isspace (text[i]))
      return FALSE;
  return TRUE;
}

JsonNode *
qmp_json_parse_line (const char *line, gsize length, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) local_error = NULL;
  const char *end = NULL;
  JsonNode *root;

  g_return_val_if_fail (line != NULL || length == 0, NULL);

  /* Also rejects NUL bytes, which json-glib would take as the end of the input. */
  if (!g_utf8_validate_len (line, length, &end))
    {
      g_set_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL, "invalid UTF-8 at byte %" G_GSIZE_FORMAT,
                   (gsize) (end - line));
      return NULL;
    }
  if (!json_parser_load_from_data (parser, line, (gssize) length, &local_error))
    {
      const char *why = local_error->message;

      if (g_str_has_prefix (why, "<data>:"))
        why += strlen ("<data>:");
      g_set_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL, "invalid JSON at %s", why);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || json_parser_has_assignment (parser, NULL))
    {
      g_set_error_literal (error, QMP_ERROR, QMP_ERROR_PROTOCOL, "invalid JSON: no value");
      return NULL;
    }
  if (!json_text_is_single_value (line, length))
    {
      g_set_error_literal (error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                           "invalid JSON: more than one value on the line");
      return NULL;
    }
  return json_node_ref (root);
}

QmpMessage *
qmp_message_parse (const char *line, gsize length, GError **error)
{
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(QmpMessage) message = NULL;

  root = qmp_json_parse_line (line, length, error);
  if (root == NULL)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL, "message is %s, not a JSON object",
                   qmp_json_describe (root));
      return NULL;
    }
  message = g_new0 (QmpMessage, 1);
  message->object = json_object_ref (json_node_get_object (root));
  message->timestamp_seconds = -1;
  message->timestamp_microseconds = -1;
  if (!message_classify (message, error))
    return NULL;
  return g_steal_pointer (&message);
}

gboolean
qmp_message_get_id_int (const QmpMessage *message, gint64 *out_id)
{
  g_return_val_if_fail (message != NULL, FALSE);

  if (message->id == NULL || !JSON_NODE_HOLDS_VALUE (message->id)
      || json_node_get_value_type (message->id) != G_TYPE_INT64)
    return FALSE;
  *out_id = json_node_get_int (message->id);
  return TRUE;
}

void
qmp_message_set_gerror (const QmpMessage *message, GError **error)
{
  g_return_if_fail (message != NULL && message->kind == QMP_MESSAGE_ERROR);

  g_set_error (error, QMP_ERROR, QMP_ERROR_COMMAND, "%s: %s", message->error_class, message->error_desc);
}

/* Takes ownership of object; returns its JSON text plus "\n". */
static char *
object_take_serialize (JsonObject *object, gsize *out_length)
{
  g_autoptr(JsonNode) root = json_node_init_object (json_node_alloc (), object);
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  gsize length = 0;
  char *text;

  json_object_unref (object);
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, &length);
  /* The generator escapes control characters, so the text is one line. */
  text = g_realloc (text, length + 2);
  text[length] = '\n';
  text[length + 1] = '\0';
  if (out_length != NULL)
    *out_length = length + 1;
  return text;
}

JsonObject *
qmp_command_build (const char *command, JsonObject *arguments, JsonNode *id, gboolean exec_oob)
{
  JsonObject *object;

  g_return_val_if_fail (command != NULL, NULL);

  object = json_object_new ();
  json_object_set_string_member (object, exec_oob ? "exec-oob" : "execute", command);
  if (arguments != NULL)
    json_object_set_object_member (object, "arguments", json_object_ref (arguments));
  if (id != NULL)
    json_object_set_member (object, "id", json_node_copy (id));
  return object;
}

char *
qmp_command_serialize (const char *command, JsonObject *arguments, JsonNode *id, gboolean exec_oob,
                       gsize *out_length)
{
  g_return_val_if_fail (command != NULL, NULL);

  return object_take_serialize (qmp_command_build (command, arguments, id, exec_oob), out_length);
}

char *
qmp_object_serialize (JsonObject *object, gsize *out_length)
{
  g_return_val_if_fail (object != NULL, NULL);

  return object_take_serialize (json_object_ref (object), out_length);
}

static void
member_copy_unless_id (JsonObject *object G_GNUC_UNUSED, const char *name, JsonNode *node, gpointer data)
{
  if (!g_str_equal (name, "id"))
    json_object_set_member (data, name, json_node_copy (node));
}

JsonObject *
qmp_object_copy_with_id (JsonObject *object, JsonNode *id)
{
  JsonObject *copy;

  g_return_val_if_fail (object != NULL, NULL);

  copy = json_object_new ();
  json_object_foreach_member (object, member_copy_unless_id, copy);
  if (id != NULL)
    json_object_set_member (copy, "id", json_node_copy (id));
  return copy;
}

struct _QmpLineBuffer
{
  GByteArray *bytes;
  gsize start;    /* first byte not yet returned as part of a line */
  gsize scanned;  /* bytes from start already searched for '\n' */
  gsize max_line;
};

QmpLineBuffer *
qmp_line_buffer_new (gsize max_line)
{
  QmpLineBuffer *buffer;

  g_return_val_if_fail (max_line > 0, NULL);

  buffer = g_new0 (QmpLineBuffer, 1);
  buffer->bytes = g_byte_array_new ();
  buffer->max_line = max_line;
  return buffer;
}

void
qmp_line_buffer_free (QmpLineBuffer *buffer)
{
  if (buffer == NULL)
    return;
  g_byte_array_unref (buffer->bytes);
  g_free (buffer);
}

void
qmp_line_buffer_feed (QmpLineBuffer *buffer, const void *data, gsize length)
{
  g_return_if_fail (buffer != NULL);
  g_return_if_fail (data != NULL || length == 0);

  /* Drop returned lines before growing, so a long-lived buffer stays small. */
  if (buffer->start > 0)
    {
      g_byte_array_remove_range (buffer->bytes, 0, (guint) buffer->start);
      buffer->scanned -= buffer->start;
      buffer->start = 0;
    }
  g_byte_array_append (buffer->bytes, data, (guint) length);
}

char *
qmp_line_buffer_next (QmpLineBuffer *buffer, gsize *out_length, GError **error)
{
  g_return_val_if_fail (buffer != NULL, NULL);

  for (;;)
    {
      const guint8 *base = buffer->bytes->data;
      gsize end = buffer->bytes->len;
      /* An empty GByteArray has data == NULL, and memchr (NULL, ...) is undefined. */
      const guint8 *newline =
        end > buffer->scanned ? memchr (base + buffer->scanned, '\n', end - buffer->scanned) : NULL;
      gsize line_start = buffer->start, line_length;
      char *line;

      if (newline == NULL)
        {
          buffer->scanned = end;
          /* +1: the '\r' of a maximal line whose '\n' has not arrived yet. */
          if (end - buffer->start > buffer->max_line + 1)
            {
              g_set_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                           "unterminated line exceeds the maximum of %" G_GSIZE_FORMAT " bytes",
                           buffer->max_line);
              return NULL;
            }
          return NULL;
        }
      line_length = (gsize) (newline - base) - line_start;
      buffer->start = buffer->scanned = (gsize) (newline - base) + 1;
      if (line_length > 0 && base[line_start + line_length - 1] == '\r')
        line_length--;
      if (line_length > buffer->max_line)
        {
          g_set_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                       "line of %" G_GSIZE_FORMAT " bytes exceeds the maximum of %" G_GSIZE_FORMAT " bytes",
                       line_length, buffer->max_line);
          return NULL;
        }
      if (line_length == 0)
        continue;
      line = g_malloc (line_length + 1);
      memcpy (line, base + line_start, line_length);
      line[line_length] = '\0';
      *out_length = line_length;
      return line;
    }
}

gsize
qmp_line_buffer_get_pending (QmpLineBuffer *buffer)
{
  g_return_val_if_fail (buffer != NULL, 0);

  return buffer->bytes->len - buffer->start;
}
