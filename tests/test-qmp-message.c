/* test-qmp-message.c: the pure QMP codec, the line splitter and the argument builders.
 * Lines marked "golden" are copied verbatim from QEMU 7.2 wire transcripts. */
#include <string.h>

#include "qmp/qmp-args.h"
#include "qmp/qmp-message.h"
#include "tests/test-util.h"

static const char golden_greeting[] =
  "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
  "\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}";

static QmpMessage *
parse_ok (const char *line)
{
  g_autoptr(GError) error = NULL;
  QmpMessage *message = qmp_message_parse (line, strlen (line), &error);

  g_assert_no_error (error);
  g_assert_nonnull (message);
  return message;
}

/* Parses line, expects QMP_ERROR_PROTOCOL and returns the message text. */
static char *
parse_fail (const char *line, gsize length)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QmpMessage) message = qmp_message_parse (line, length, &error);

  g_assert_null (message);
  g_assert_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL);
  return g_strdup (error->message);
}

static void
assert_json (JsonNode *node, const char *expected)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) want = json_from_string (expected, &error);
  g_autofree char *got = json_to_string (node, FALSE);

  g_assert_no_error (error);
  if (!json_node_equal (node, want))
    g_error ("JSON differs: got %s, expected %s", got, expected);
}

static void
assert_json_object (JsonObject *object, const char *expected)
{
  g_autoptr(JsonNode) node = json_node_init_object (json_node_alloc (), object);

  assert_json (node, expected);
}

static void
test_greeting (void)
{
  g_autoptr(QmpMessage) message = parse_ok (golden_greeting);
  const char *const oob[] = { "oob", NULL };

  g_assert_cmpint (message->kind, ==, QMP_MESSAGE_GREETING);
  g_assert_cmpuint (message->version_major, ==, 7);
  g_assert_cmpuint (message->version_minor, ==, 2);
  g_assert_cmpuint (message->version_micro, ==, 22);
  g_assert_cmpstr (message->version_package, ==, "Debian 1:7.2+dfsg-7+deb12u18+b3");
  g_assert_cmpstrv (message->capabilities, oob);
  g_assert_null (message->id);
  g_assert_null (message->event);
}

static void
test_greeting_minimal (void)
{
  g_autoptr(QmpMessage) message =
    parse_ok ("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 9}}}}");

  g_assert_cmpint (message->kind, ==, QMP_MESSAGE_GREETING);
  g_assert_cmpuint (message->version_major, ==, 9);
  g_assert_cmpstr (message->version_package, ==, "");
  g_assert_nonnull (message->capabilities);
  g_assert_cmpuint (g_strv_length (message->capabilities), ==, 0);
}

static void
test_return_with_id (void)
{
  /* golden */
  g_autoptr(QmpMessage) message = parse_ok ("{\"return\": {\"status\": \"postmigrate\", \"singlestep\": false, "
                                            "\"running\": false}, \"id\": \"query-status-15\"}");
  gint64 id = -1;

  g_assert_cmpint (message->kind, ==, QMP_MESSAGE_RETURN);
  g_assert_cmpstr (json_node_get_string (message->id), ==, "query-status-15");
  g_assert_false (qmp_message_get_id_int (message, &id));
  g_assert_cmpint (id, ==, -1);
  assert_json (message->return_value, "{\"status\": \"postmigrate\", \"singlestep\": false, \"running\": false}");
}

static void
test_return_int_and_object_ids (void)
{
  g_autoptr(QmpMessage) with_int = parse_ok ("{\"return\": {}, \"id\": 7}");
  /* QEMU echoes any JSON value as id (QMP-NOTES 1.3). */
  g_autoptr(QmpMessage) with_object = parse_ok ("{\"id\": {\"any\": \"json\", \"n\": [1, 2]}, \"return\": 3}");
  gint64 id = 0;

  g_assert_true (qmp_message_get_id_int (with_int, &id));
  g_assert_cmpint (id, ==, 7);
  assert_json (with_int->return_value, "{}");
  g_assert_cmpint (with_object->kind, ==, QMP_MESSAGE_RETURN);
  assert_json (with_object->id, "{\"any\": \"json\", \"n\": [1, 2]}");
  assert_json (with_object->return_value, "3");
}

static void
test_error_without_id (void)
{
  /* golden (QMP-NOTES 1.3): QEMU could not parse the input, so there is no id */
  g_autoptr(QmpMessage) message =
    parse_ok ("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, invalid keyword 'bogus'\"}}");
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (message->kind, ==, QMP_MESSAGE_ERROR);
  g_assert_null (message->id);
  g_assert_cmpstr (message->error_class, ==, "GenericError");
  g_assert_cmpstr (message->error_desc, ==, "JSON parse error, invalid keyword 'bogus'");
  qmp_message_set_gerror (message, &error);
  g_assert_error (error, QMP_ERROR, QMP_ERROR_COMMAND);
  g_assert_cmpstr (error->message, ==, "GenericError: JSON parse error, invalid keyword 'bogus'");
}

static void
test_error_with_id (void)
{
  /* golden (QMP-NOTES 1.2) */
  g_autoptr(QmpMessage) message = parse_ok ("{\"id\": \"x1\", \"error\": {\"class\": \"CommandNotFound\", "
                                            "\"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}");

  g_assert_cmpint (message->kind, ==, QMP_MESSAGE_ERROR);
  g_assert_cmpstr (json_node_get_string (message->id), ==, "x1");
  g_assert_cmpstr (message->error_class, ==, "CommandNotFound");
}

static void
test_event_with_timestamp (void)
{
  /* golden */
  g_autoptr(QmpMessage) migration = parse_ok ("{\"timestamp\": {\"seconds\": 1795672669, \"microseconds\": 252767}, "
                                              "\"event\": \"MIGRATION\", \"data\": {\"status\": \"setup\"}}");
  g_autoptr(QmpMessage) stop =
    parse_ok ("{\"timestamp\": {\"seconds\": 1795672671, \"microseconds\": 254282}, \"event\": \"STOP\"}");

  g_assert_cmpint (migration->kind, ==, QMP_MESSAGE_EVENT);
  g_assert_cmpstr (migration->event, ==, "MIGRATION");
  g_assert_cmpint (migration->timestamp_seconds, ==, 1795672669);
  g_assert_cmpint (migration->timestamp_microseconds, ==, 252767);
  assert_json_object (migration->data, "{\"status\": \"setup\"}");
  g_assert_cmpstr (stop->event, ==, "STOP");
  g_assert_null (stop->data);
  g_assert_cmpint (stop->timestamp_microseconds, ==, 254282);
}

static void
test_event_without_timestamp (void)
{
  g_autoptr(QmpMessage) message = parse_ok ("{\"event\": \"RESUME\"}");

  g_assert_cmpstr (message->event, ==, "RESUME");
  g_assert_cmpint (message->timestamp_seconds, ==, -1);
  g_assert_cmpint (message->timestamp_microseconds, ==, -1);
}

static void
test_big_return (void)
{
  gsize blob_length = 1024 * 1024;
  g_autofree char *blob = g_malloc (blob_length + 1);
  g_autofree char *line = NULL;
  g_autoptr(QmpMessage) message = NULL;
  const char *got;

  memset (blob, 'q', blob_length);
  blob[blob_length] = '\0';
  line = g_strdup_printf ("{\"return\": {\"blob\": \"%s\"}, \"id\": 5}", blob);
  message = parse_ok (line);
  got = json_object_get_string_member (json_node_get_object (message->return_value), "blob");
  g_assert_cmpuint (strlen (got), ==, blob_length);
  g_assert_cmpint (got[blob_length - 1], ==, 'q');
}

static void
test_invalid_utf8 (void)
{
  static const char bad[] = "{\"return\": \"\xff\xfe\"}";
  static const char nul[] = "{\"return\": \"a\0b\"}";
  g_autofree char *bad_message = parse_fail (bad, sizeof bad - 1);
  g_autofree char *nul_message = parse_fail (nul, sizeof nul - 1);

  g_assert_cmpstr (bad_message, ==, "invalid UTF-8 at byte 12");
  g_assert_cmpstr (nul_message, ==, "invalid UTF-8 at byte 13");
}

static void
test_invalid_json (void)
{
  static const char *const lines[] = { "{\"return\": }", "{\"return\": 1", "{\"return\": 1} x", "   ", "var a = {}" };

  for (guint i = 0; i < G_N_ELEMENTS (lines); i++)
    {
      g_autofree char *message = parse_fail (lines[i], strlen (lines[i]));

      g_test_message ("%s -> %s", lines[i], message);
      g_assert_true (g_str_has_prefix (message, "invalid JSON"));
    }
}

static void
test_two_values_on_one_line (void)
{
  /* json-glib alone would return the first object and drop the second. */
  static const char line[] = "{\"return\": {}, \"id\": 1}{\"event\": \"STOP\"}";
  g_autofree char *message = parse_fail (line, sizeof line - 1);

  g_assert_cmpstr (message, ==, "invalid JSON: more than one value on the line");
}

static void
test_non_object (void)
{
  static const struct
  {
    const char *line;
    const char *message;
  } cases[] = {
    { "[1, 2]", "message is an array, not a JSON object" },
    { "\"QMP\"", "message is a string, not a JSON object" },
    { "42", "message is a number, not a JSON object" },
    { "true", "message is a boolean, not a JSON object" },
    { "null", "message is null, not a JSON object" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *message = parse_fail (cases[i].line, strlen (cases[i].line));

      g_assert_cmpstr (message, ==, cases[i].message);
    }
}

static void
test_unknown_shape (void)
{
  static const struct
  {
    const char *line;
    const char *message;
  } cases[] = {
    { "{\"foo\": 1, \"id\": 2}", "unknown message shape (members: 'foo', 'id'; expected QMP, return, error or event)" },
    { "{}", "unknown message shape (members: none; expected QMP, return, error or event)" },
    { "{\"error\": \"boom\"}", "error reply lacks a string 'error.class'" },
    { "{\"error\": {\"desc\": \"no class\"}}", "error reply lacks a string 'error.class'" },
    { "{\"event\": 5}", "event member 'event' is not a string" },
    { "{\"event\": \"STOP\", \"data\": [1]}", "event 'STOP': 'data' is an array, not an object" },
    { "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": \"1\"}}",
      "event 'STOP': 'timestamp' lacks integer seconds and microseconds" },
    { "{\"QMP\": {\"capabilities\": []}}", "greeting lacks QMP.version.qemu.{major,minor,micro}" },
    { "{\"QMP\": 1}", "greeting member 'QMP' is not an object" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *message = parse_fail (cases[i].line, strlen (cases[i].line));

      g_assert_cmpstr (message, ==, cases[i].message);
    }
}

static void
test_serialize_command (void)
{
  g_autoptr(JsonNode) id = json_node_init_int (json_node_alloc (), 5);
  g_autoptr(JsonObject) args = qmp_build_getfd_args ("mig0");
  g_autofree char *plain = qmp_command_serialize ("query-status", NULL, id, FALSE, NULL);
  gsize length = 0;
  g_autofree char *with_args = qmp_command_serialize ("getfd", args, id, FALSE, &length);
  g_autofree char *oob = qmp_command_serialize ("yank", NULL, NULL, TRUE, NULL);

  g_assert_cmpstr (plain, ==, "{\"execute\":\"query-status\",\"id\":5}\n");
  g_assert_cmpstr (with_args, ==, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"mig0\"},\"id\":5}\n");
  g_assert_cmpuint (length, ==, strlen (with_args));
  g_assert_cmpstr (oob, ==, "{\"exec-oob\":\"yank\"}\n");
  /* The caller's arguments are untouched. */
  g_assert_cmpuint (json_object_get_size (args), ==, 1);
}

static void
test_serialize_stays_one_line (void)
{
  g_autoptr(JsonObject) args = json_object_new ();
  g_autofree char *line = NULL;

  json_object_set_string_member (args, "command-line", "info\nstatus\r\n");
  line = qmp_command_serialize ("human-monitor-command", args, NULL, FALSE, NULL);
  g_assert_cmpstr (strchr (line, '\n'), ==, line + strlen (line) - 1);
  g_assert_null (strchr (line, '\r'));
}

/* Our builders produce what the golden transcript sent (member order aside). */
static void
test_serialize_matches_golden (void)
{
  const char *const caps[] = { "events", "return-path", "auto-converge", NULL };
  g_autoptr(JsonObject) caps_args = qmp_build_migrate_capabilities_args (caps, TRUE);
  g_autoptr(JsonObject) migrate_args = qmp_build_migrate_args ("unix:/run/vmherd/mig.sock");
  g_autoptr(JsonNode) caps_id = json_node_init_string (json_node_alloc (), "migrate-set-capabilities-5");
  g_autoptr(JsonNode) migrate_id = json_node_init_string (json_node_alloc (), "migrate-7");
  g_autofree char *caps_line = qmp_command_serialize ("migrate-set-capabilities", caps_args, caps_id, FALSE, NULL);
  g_autofree char *migrate_line = qmp_command_serialize ("migrate", migrate_args, migrate_id, FALSE, NULL);
  g_autoptr(JsonNode) caps_node = json_from_string (caps_line, NULL);
  g_autoptr(JsonNode) migrate_node = json_from_string (migrate_line, NULL);

  assert_json (caps_node, "{\"execute\": \"migrate-set-capabilities\", \"id\": \"migrate-set-capabilities-5\", "
                          "\"arguments\": {\"capabilities\": [{\"capability\": \"events\", \"state\": true}, "
                          "{\"capability\": \"return-path\", \"state\": true}, "
                          "{\"capability\": \"auto-converge\", \"state\": true}]}}");
  assert_json (migrate_node, "{\"execute\": \"migrate\", \"id\": \"migrate-7\", "
                             "\"arguments\": {\"uri\": \"unix:/run/vmherd/mig.sock\"}}");
}

static void
test_copy_with_id (void)
{
  g_autoptr(JsonNode) command = json_from_string ("{\"execute\": \"query-status\", \"id\": \"console-7\"}", NULL);
  g_autoptr(JsonNode) ours = json_node_init_int (json_node_alloc (), 12);
  g_autoptr(JsonObject) swapped = qmp_object_copy_with_id (json_node_get_object (command), ours);
  g_autoptr(JsonObject) removed = qmp_object_copy_with_id (json_node_get_object (command), NULL);

  assert_json_object (swapped, "{\"execute\": \"query-status\", \"id\": 12}");
  assert_json_object (removed, "{\"execute\": \"query-status\"}");
  assert_json (command, "{\"execute\": \"query-status\", \"id\": \"console-7\"}");
}

static void
test_args_builders (void)
{
  const char *const oob[] = { "oob", NULL };
  g_autoptr(JsonObject) caps = qmp_build_capabilities_args (oob);
  g_autoptr(JsonObject) no_caps = qmp_build_capabilities_args (NULL);
  g_autoptr(JsonObject) closefd = qmp_build_closefd_args ("tap1");
  g_autoptr(JsonObject) add_fd = qmp_build_add_fd_args (1, "disk rw");
  g_autoptr(JsonObject) add_fd_any = qmp_build_add_fd_args (-1, NULL);

  assert_json_object (caps, "{\"enable\": [\"oob\"]}");
  assert_json_object (no_caps, "{}");
  assert_json_object (closefd, "{\"fdname\": \"tap1\"}");
  assert_json_object (add_fd, "{\"fdset-id\": 1, \"opaque\": \"disk rw\"}");
  assert_json_object (add_fd_any, "{}");
}

static void
test_to_string (void)
{
  g_assert_cmpstr (qmp_error_to_string (QMP_ERROR_TIMEOUT), ==, "timeout");
  g_assert_cmpstr (qmp_error_to_string (QMP_ERROR_PROTOCOL), ==, "protocol");
  g_assert_cmpstr (qmp_error_to_string ((QmpError) 99), ==, "unknown");
  g_assert_cmpstr (qmp_message_kind_to_string (QMP_MESSAGE_EVENT), ==, "event");
  g_assert_cmpstr (qmp_message_kind_to_string ((QmpMessageKind) 99), ==, "unknown");
}

/* Takes every complete line; returns them joined with '|'. */
static char *
drain_lines (QmpLineBuffer *buffer)
{
  g_autoptr(GString) joined = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  char *line;
  gsize length = 0;

  while ((line = qmp_line_buffer_next (buffer, &length, &error)) != NULL)
    {
      g_assert_cmpuint (length, ==, strlen (line));
      g_string_append_printf (joined, "%s%s", joined->len > 0 ? "|" : "", line);
      g_free (line);
    }
  g_assert_no_error (error);
  return g_string_free (g_steal_pointer (&joined), FALSE);
}

static void
test_lines_partial (void)
{
  g_autoptr(QmpLineBuffer) buffer = qmp_line_buffer_new (QMP_MAX_LINE_LENGTH);
  static const char text[] = "{\"return\": {}, \"id\": 1}\r\n";
  g_autoptr(GString) got = g_string_new (NULL);
  g_autofree char *nothing = drain_lines (buffer);

  g_assert_cmpstr (nothing, ==, ""); /* a fresh buffer (no bytes allocated yet) */
  /* One byte at a time: nothing until the '\n'. */
  for (gsize i = 0; i < sizeof text - 1; i++)
    {
      g_autofree char *lines = NULL;

      qmp_line_buffer_feed (buffer, text + i, 1);
      lines = drain_lines (buffer);
      g_string_append (got, lines);
      if (i < sizeof text - 2)
        g_assert_cmpstr (lines, ==, "");
    }
  g_assert_cmpstr (got->str, ==, "{\"return\": {}, \"id\": 1}");
  g_assert_cmpuint (qmp_line_buffer_get_pending (buffer), ==, 0);
}

static void
test_lines_multiple_and_crlf (void)
{
  g_autoptr(QmpLineBuffer) buffer = qmp_line_buffer_new (QMP_MAX_LINE_LENGTH);
  static const char text[] = "a\r\nb\n\r\n\nc\r\nd";
  g_autofree char *lines = NULL;
  g_autofree char *rest = NULL;

  qmp_line_buffer_feed (buffer, text, sizeof text - 1);
  lines = drain_lines (buffer);
  g_assert_cmpstr (lines, ==, "a|b|c"); /* empty lines skipped, "\r" stripped */
  g_assert_cmpuint (qmp_line_buffer_get_pending (buffer), ==, 1);
  qmp_line_buffer_feed (buffer, "\n", 1);
  rest = drain_lines (buffer);
  g_assert_cmpstr (rest, ==, "d");
}

static void
test_lines_oversize (void)
{
  g_autoptr(QmpLineBuffer) complete = qmp_line_buffer_new (8);
  g_autoptr(QmpLineBuffer) unterminated = qmp_line_buffer_new (8);
  g_autoptr(GError) error = NULL;
  g_autofree char *ok = NULL;
  gsize length = 0;
  char *line;

  qmp_line_buffer_feed (complete, "12345678\r\n123456789\n", 20);
  ok = qmp_line_buffer_next (complete, &length, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ok, ==, "12345678"); /* exactly the maximum: fine */
  line = qmp_line_buffer_next (complete, &length, &error);
  g_assert_null (line);
  g_assert_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL);
  g_assert_cmpstr (error->message, ==, "line of 9 bytes exceeds the maximum of 8 bytes");
  g_clear_error (&error);

  qmp_line_buffer_feed (unterminated, "123456789", 9);
  g_assert_null (qmp_line_buffer_next (unterminated, &length, &error));
  g_assert_no_error (error); /* 9 bytes may still be 8 + "\r" */
  qmp_line_buffer_feed (unterminated, "0", 1);
  g_assert_null (qmp_line_buffer_next (unterminated, &length, &error));
  g_assert_error (error, QMP_ERROR, QMP_ERROR_PROTOCOL);
  g_assert_cmpstr (error->message, ==, "unterminated line exceeds the maximum of 8 bytes");
}

static void
test_lines_big (void)
{
  g_autoptr(QmpLineBuffer) buffer = qmp_line_buffer_new (QMP_MAX_LINE_LENGTH);
  gsize size = 1024 * 1024 + 3;
  g_autofree char *text = g_malloc (size);
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  gsize length = 0;

  memset (text, 'x', size);
  text[size - 2] = '\r';
  text[size - 1] = '\n';
  for (gsize offset = 0; offset < size; offset += 65536)
    qmp_line_buffer_feed (buffer, text + offset, MIN (65536, size - offset));
  line = qmp_line_buffer_next (buffer, &length, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (length, ==, size - 2);
  g_assert_cmpuint (qmp_line_buffer_get_pending (buffer), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/qmp/message/greeting", test_greeting);
  g_test_add_func ("/qmp/message/greeting-minimal", test_greeting_minimal);
  g_test_add_func ("/qmp/message/return-with-id", test_return_with_id);
  g_test_add_func ("/qmp/message/return-int-and-object-ids", test_return_int_and_object_ids);
  g_test_add_func ("/qmp/message/error-without-id", test_error_without_id);
  g_test_add_func ("/qmp/message/error-with-id", test_error_with_id);
  g_test_add_func ("/qmp/message/event-with-timestamp", test_event_with_timestamp);
  g_test_add_func ("/qmp/message/event-without-timestamp", test_event_without_timestamp);
  g_test_add_func ("/qmp/message/big-return", test_big_return);
  g_test_add_func ("/qmp/message/invalid-utf8", test_invalid_utf8);
  g_test_add_func ("/qmp/message/invalid-json", test_invalid_json);
  g_test_add_func ("/qmp/message/two-values-on-one-line", test_two_values_on_one_line);
  g_test_add_func ("/qmp/message/non-object", test_non_object);
  g_test_add_func ("/qmp/message/unknown-shape", test_unknown_shape);
  g_test_add_func ("/qmp/message/serialize-command", test_serialize_command);
  g_test_add_func ("/qmp/message/serialize-stays-one-line", test_serialize_stays_one_line);
  g_test_add_func ("/qmp/message/serialize-matches-golden", test_serialize_matches_golden);
  g_test_add_func ("/qmp/message/copy-with-id", test_copy_with_id);
  g_test_add_func ("/qmp/message/args-builders", test_args_builders);
  g_test_add_func ("/qmp/message/to-string", test_to_string);
  g_test_add_func ("/qmp/line-buffer/partial", test_lines_partial);
  g_test_add_func ("/qmp/line-buffer/multiple-and-crlf", test_lines_multiple_and_crlf);
  g_test_add_func ("/qmp/line-buffer/oversize", test_lines_oversize);
  g_test_add_func ("/qmp/line-buffer/big", test_lines_big);
  return g_test_run ();
}
