/* test-qmp-shell.c: console lines to QMP commands, and completion from QEMU 7.2's schema. */
#include <gio/gio.h>
#include <string.h>

#include "qmp/qmp-shell.h"
#include "tests/test-util.h"

static char *
to_json (JsonObject *o)
{
  g_autoptr(JsonNode) node = json_node_init_object (json_node_alloc (), o);
  g_autoptr(JsonGenerator) gen = json_generator_new ();

  json_generator_set_root (gen, node);
  return json_generator_to_data (gen, NULL);
}

static void
assert_parses (const char *line, const char *json)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) cmd = qmp_shell_parse (line, &error);
  g_autofree char *text = NULL;

  g_assert_no_error (error);
  g_assert_nonnull (cmd);
  text = to_json (cmd);
  g_assert_cmpstr (text, ==, json);
}

static void
assert_refused (const char *line, const char *message)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) cmd = qmp_shell_parse (line, &error);

  g_assert_null (cmd);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (error->message, ==, message);
}

static void
test_parse (void)
{
  g_autoptr(GError) error = NULL;

  assert_parses ("query-status", "{\"execute\":\"query-status\"}");
  assert_parses ("  migrate-set-parameters downtime-limit=50 tls-creds=\"my creds\" ",
                 "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"downtime-limit\":50,"
                 "\"tls-creds\":\"my creds\"}}");
  assert_parses ("blockdev-add driver=null-co node-name=n0 read-zeroes=true",
                 "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"null-co\","
                 "\"node-name\":\"n0\",\"read-zeroes\":true}}");
  assert_parses ("x a.b.c=1 a.b.d=[1,2] e='{\"f\":null}' s='\"42\"'",
                 "{\"execute\":\"x\",\"arguments\":{\"a\":{\"b\":{\"c\":1,\"d\":[1,2]}},"
                 "\"e\":{\"f\":null},\"s\":\"42\"}}");
  assert_parses ("{\"execute\":\"stop\",\"id\":7}", "{\"execute\":\"stop\",\"id\":7}");
  assert_parses ("hmp info network",
                 "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info network\"}}");
  assert_refused ("device_add driver", "malformed argument 'driver' (write key=value; nothing was sent)");
  assert_refused ("x =1", "malformed argument '=1' (write key=value; nothing was sent)");
  assert_refused ("x a=1 a.b=2", "argument 'a.b' given twice or clashes with another (nothing was sent)");
  assert_refused ("{\"arguments\":{}}",
                  "a raw command is a JSON object with \"execute\" (e.g. {\"execute\":\"query-status\"})");
  g_assert_null (qmp_shell_parse ("   ", &error));
  g_assert_no_error (error);
  g_assert_true (qmp_shell_is_read_only ("query-block"));
  g_assert_false (qmp_shell_is_read_only ("quit"));
}

static void
test_schema (void)
{
  g_autofree char *path = test_src_path ("../shared/data/qmp/qemu72-query-qmp-schema.json");
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) args = NULL, none = NULL, unknown = NULL;

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      /* Beside the checkout, as CI lays it out; a missing copy is a broken setup. */
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "no ../shared/data/qmp/qemu72-query-qmp-schema.json");
      return;
    }
  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  args = qmp_shell_command_args (json_parser_get_root (parser), "migrate");
  g_assert_true (g_strv_contains ((const char *const *) args, "uri"));
  g_assert_true (g_strv_contains ((const char *const *) args, "resume"));
  g_assert_cmpstr (args[0], <, args[1]);
  none = qmp_shell_command_args (json_parser_get_root (parser), "query-status");
  g_assert_cmpuint (g_strv_length (none), ==, 0);
  unknown = qmp_shell_command_args (json_parser_get_root (parser), "no-such-command");
  g_assert_cmpuint (g_strv_length (unknown), ==, 0);
}

static void
test_command_names (void)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_auto(GStrv) names = NULL;

  json_parser_load_from_data (parser, "[{\"name\":\"stop\"},{\"name\":\"cont\"},{\"name\":\"query-status\"}]",
                              -1, NULL);
  names = qmp_shell_command_names (json_parser_get_root (parser));
  g_assert_cmpuint (g_strv_length (names), ==, 3);
  g_assert_cmpstr (names[0], ==, "cont");
  g_assert_cmpstr (names[2], ==, "stop");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/qmp-shell/parse", test_parse);
  g_test_add_func ("/qmp-shell/schema", test_schema);
  g_test_add_func ("/qmp-shell/command-names", test_command_names);
  return g_test_run ();
}
