/* qga-ping.c: guest-sync-delimited + guest-ping with the QEMU guest agent (qga-ping.h). */
#include "qmp/qga-ping.h"

#include <string.h>

struct _QgaScanner
{
  GByteArray *pending;          /* read, not yet returned or dropped */
  gboolean waiting;             /* dropping everything up to the next 0xFF */
};

QgaScanner *
qga_scanner_new (void)
{
  QgaScanner *s = g_new0 (QgaScanner, 1);

  s->pending = g_byte_array_new ();
  return s;
}

void
qga_scanner_free (QgaScanner *scanner)
{
  if (scanner == NULL)
    return;
  g_byte_array_unref (scanner->pending);
  g_free (scanner);
}

void
qga_scanner_wait_delimiter (QgaScanner *scanner)
{
  g_byte_array_set_size (scanner->pending, 0);
  scanner->waiting = TRUE;
}

void
qga_scanner_feed (QgaScanner *scanner, const char *data, gsize length)
{
  g_byte_array_append (scanner->pending, (const guint8 *) data, (guint) length);
}

static void
drop_front (QgaScanner *s, gsize count)
{
  g_byte_array_remove_range (s->pending, 0, (guint) MIN (count, s->pending->len));
}

/* The end (index of the closing brace) of the object starting at start, -1 when it is not
 * complete yet, or -2 - i when a 0xFF at i cuts it. */
static gssize
object_end (const guint8 *p, gsize len, gsize start)
{
  gboolean in_string = FALSE, escaped = FALSE;
  int depth = 0;

  for (gsize i = start; i < len; i++)
    {
      if (p[i] == QGA_DELIMITER)
        return -2 - (gssize) i;
      if (in_string)
        {
          if (escaped)
            escaped = FALSE;
          else if (p[i] == '\\')
            escaped = TRUE;
          else if (p[i] == '"')
            in_string = FALSE;
        }
      else if (p[i] == '"')
        in_string = TRUE;
      else if (p[i] == '{' || p[i] == '[')
        depth++;
      else if ((p[i] == '}' || p[i] == ']') && --depth == 0)
        return (gssize) i;
    }
  return -1;
}

JsonNode *
qga_scanner_next (QgaScanner *s)
{
  for (;;)
    {
      const guint8 *p = s->pending->data;
      gsize len = s->pending->len, start = 0;
      const guint8 *mark;
      gssize end;
      g_autoptr(JsonParser) parser = NULL;

      if (s->waiting)
        {
          mark = len ? memchr (p, QGA_DELIMITER, len) : NULL;
          if (mark == NULL)
            {
              g_byte_array_set_size (s->pending, 0);
              return NULL;
            }
          drop_front (s, (gsize) (mark - p) + 1);
          s->waiting = FALSE;
          continue;
        }
      while (start < len && p[start] != '{')
        start++;                /* whitespace, a delimiter, noise between objects */
      drop_front (s, start);
      p = s->pending->data;
      len = s->pending->len;
      if (len == 0)
        return NULL;
      end = object_end (p, len, 0);
      if (end == -1)
        {
          if (len > QGA_OBJECT_MAX)
            {
              g_debug ("qga: dropping an object of more than %d bytes", QGA_OBJECT_MAX);
              qga_scanner_wait_delimiter (s);
            }
          return NULL;
        }
      if (end < -1)
        {
          drop_front (s, (gsize) (-2 - end) + 1);   /* the piece and the 0xFF that cut it */
          continue;
        }
      parser = json_parser_new_immutable ();
      if (json_parser_load_from_data (parser, (const char *) p, end + 1, NULL)
          && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
        {
          JsonNode *node = json_node_copy (json_parser_get_root (parser));
          drop_front (s, (gsize) end + 1);
          return node;
        }
      g_debug ("qga: dropping %" G_GSSIZE_FORMAT " bytes that are not a JSON object", end + 1);
      drop_front (s, (gsize) end + 1);
    }
}

gint64
qga_sync_id_new (void)
{
  return 1 + (gint64) (((guint64) (g_random_int () & 0x1fffff) << 32 | g_random_int ())
                       % ((G_GUINT64_CONSTANT (1) << 53) - 1));
}

typedef enum { PING_STEP_SYNC, PING_STEP_PING } PingStep;

typedef struct
{
  GIOStream *stream;
  QgaScanner *scanner;
  gint64 id;
  PingStep step;
  char *request;                /* being written */
  char buf[4096];
} Ping;

static void
ping_free (gpointer data)
{
  Ping *ping = data;

  g_object_unref (ping->stream);
  qga_scanner_free (ping->scanner);
  g_free (ping->request);
  g_free (ping);
}

static void
ping_fail (GTask *task, GError *error, const char *what)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_task_return_new_error (task, QMP_ERROR, QMP_ERROR_CANCELLED, "cancelled");
  else
    g_task_return_new_error (task, QMP_ERROR, QMP_ERROR_DISCONNECTED, "cannot %s the agent "
                             "channel: %s", what, error->message);
  g_error_free (error);
  g_object_unref (task);
}

static void ping_read (GTask *task);

static void
on_written (GObject *source, GAsyncResult *result, gpointer data)
{
  GTask *task = data;
  Ping *ping = g_task_get_task_data (task);
  GError *error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    return ping_fail (task, error, "write to");
  if (ping->step == PING_STEP_SYNC)
    qga_scanner_wait_delimiter (ping->scanner);
  ping_read (task);
}

static void
ping_write (GTask *task, char *request)
{
  Ping *ping = g_task_get_task_data (task);

  g_free (ping->request);
  ping->request = request;
  g_output_stream_write_all_async (g_io_stream_get_output_stream (ping->stream), ping->request,
                                   strlen (ping->request), G_PRIORITY_DEFAULT,
                                   g_task_get_cancellable (task), on_written, task);
}

/* An object from the agent: TRUE when the task is done or moved on (no read needed). */
static gboolean
ping_handle (GTask *task, JsonNode *node)
{
  Ping *ping = g_task_get_task_data (task);
  JsonObject *o = json_node_get_object (node);
  JsonNode *ret = json_object_get_member (o, "return");

  if (ping->step == PING_STEP_SYNC)
    {
      if (ret == NULL || json_node_get_value_type (ret) != G_TYPE_INT64
          || json_node_get_int (ret) != ping->id)
        {
          g_autofree char *text = json_to_string (node, FALSE);
          g_debug ("qga: not the reply to sync %" G_GINT64_FORMAT ", dropped: %s", ping->id, text);
          return FALSE;
        }
      ping->step = PING_STEP_PING;
      ping_write (task, g_strdup ("{\"execute\":\"guest-ping\"}\n"));
      return TRUE;
    }
  if (json_object_has_member (o, "error"))
    {
      JsonObject *e = json_object_get_object_member (o, "error");
      g_task_return_new_error (task, QMP_ERROR, QMP_ERROR_COMMAND, "%s: %s",
                               e ? json_object_get_string_member_with_default (e, "class", "?") : "?",
                               e ? json_object_get_string_member_with_default (e, "desc", "?") : "?");
    }
  else if (ret != NULL && JSON_NODE_HOLDS_OBJECT (ret))
    g_task_return_boolean (task, TRUE);
  else
    {
      g_autofree char *text = json_to_string (node, FALSE);
      g_task_return_new_error (task, QMP_ERROR, QMP_ERROR_PROTOCOL,
                               "unexpected answer to guest-ping: %.200s", text);
    }
  g_object_unref (task);
  return TRUE;
}

static void
on_read (GObject *source, GAsyncResult *result, gpointer data)
{
  GTask *task = data;
  Ping *ping = g_task_get_task_data (task);
  GError *error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  if (n < 0)
    return ping_fail (task, error, "read from");
  if (n == 0)
    {
      g_task_return_new_error (task, QMP_ERROR, QMP_ERROR_DISCONNECTED,
                               "the agent channel closed");
      g_object_unref (task);
      return;
    }
  qga_scanner_feed (ping->scanner, ping->buf, (gsize) n);
  for (;;)
    {
      g_autoptr(JsonNode) node = qga_scanner_next (ping->scanner);
      if (node == NULL)
        break;
      if (ping_handle (task, node))
        return;
    }
  ping_read (task);
}

static void
ping_read (GTask *task)
{
  Ping *ping = g_task_get_task_data (task);

  g_input_stream_read_async (g_io_stream_get_input_stream (ping->stream), ping->buf,
                             sizeof ping->buf, G_PRIORITY_DEFAULT, g_task_get_cancellable (task),
                             on_read, task);
}

void
qga_ping_async (GIOStream *stream, gint64 sync_id, GCancellable *cancellable,
                GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  Ping *ping = g_new0 (Ping, 1);

  g_task_set_source_tag (task, qga_ping_async);
  g_task_set_check_cancellable (task, FALSE);   /* QMP_ERROR_CANCELLED, not G_IO_ERROR's */
  ping->stream = g_object_ref (stream);
  ping->scanner = qga_scanner_new ();
  ping->id = sync_id;
  g_task_set_task_data (task, ping, ping_free);
  ping_write (task, g_strdup_printf ("\xff{\"execute\":\"guest-sync-delimited\","
                                     "\"arguments\":{\"id\":%" G_GINT64_FORMAT "}}\n", sync_id));
}

gboolean
qga_ping_finish (GAsyncResult *result, GError **error)
{
  GCancellable *cancellable;

  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  cancellable = g_task_get_cancellable (G_TASK (result));
  /* Cancelled after the answer came: still cancelled, so a caller that cancels before
   * freeing what user_data points to can rely on it. */
  if (cancellable != NULL && g_cancellable_is_cancelled (cancellable))
    {
      g_set_error (error, QMP_ERROR, QMP_ERROR_CANCELLED, "cancelled");
      return FALSE;
    }
  return g_task_propagate_boolean (G_TASK (result), error);
}
