/* test-images-snapshot.c: snapshot tags, overlay file names and the QMP transaction. */
#include <json-glib/json-glib.h>

#include "images/snapshot.h"
#include "tests/test-util.h"

static void
assert_tag_invalid (const char *tag, const char *problem)
{
  g_autofree char *got = NULL;

  g_assert_false (images_snapshot_tag_is_valid (tag, &got));
  g_assert_cmpstr (got, ==, problem);
}

static void
test_tags (void)
{
  g_autofree char *problem = NULL;

  g_assert_true (images_snapshot_tag_is_valid ("pre-upgrade", &problem));
  g_assert_true (images_snapshot_tag_is_valid ("2024-06-01_nightly.1", &problem));
  g_assert_true (images_snapshot_tag_is_valid ("abcdefghijklmnopqrstuvwxyz012345", &problem));
  g_assert_null (problem);
  assert_tag_invalid ("", "is empty");
  assert_tag_invalid ("abcdefghijklmnopqrstuvwxyz0123456", "is longer than 32 characters");
  assert_tag_invalid (".hidden", "starts with '.'");
  assert_tag_invalid ("-f", "starts with '-'");
  assert_tag_invalid ("a/b", "contains '/' (use letters, digits, '-', '_' and '.')");
  assert_tag_invalid ("a b", "contains ' ' (use letters, digits, '-', '_' and '.')");
}

static void
test_file_names (void)
{
  static const char *const cases[][3] = {
    { "/var/lib/vmherd/images/web.qcow2", "pre-upgrade", "/var/lib/vmherd/images/web.pre-upgrade.qcow2" },
    { "/v/web.raw", "t1", "/v/web.t1.qcow2" },
    { "/v/web.img", "t1", "/v/web.t1.qcow2" },
    { "/v/web", "t1", "/v/web.t1.qcow2" },
    { "/v/web.pre-upgrade.qcow2", "t2", "/v/web.pre-upgrade.t2.qcow2" },
    { "/v/.qcow2", "t1", "/v/.qcow2.t1.qcow2" },
    { "rel/web.qcow2", "t1", "rel/web.t1.qcow2" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *name = images_snapshot_file_name (cases[i][0], cases[i][1]);
      g_assert_cmpstr (name, ==, cases[i][2]);
    }
}

static void
test_transaction_args (void)
{
  const ImagesSnapshotDisk disks[] = {
    { "d-root", "/v/web.t1.qcow2", "s-root" },
    { "d-data", "/v/data.t1.qcow2", "s-data" },
  };
  g_autoptr(JsonObject) args = images_snapshot_transaction_args (disks, G_N_ELEMENTS (disks));
  g_autoptr(JsonNode) node = json_node_init_object (json_node_alloc (), args);
  g_autofree char *text = json_to_string (node, FALSE);

  g_assert_cmpstr (text, ==,
                   "{\"actions\":["
                   "{\"type\":\"blockdev-snapshot-sync\",\"data\":{\"node-name\":\"d-root\","
                   "\"snapshot-file\":\"/v/web.t1.qcow2\",\"snapshot-node-name\":\"s-root\","
                   "\"format\":\"qcow2\",\"mode\":\"absolute-paths\"}},"
                   "{\"type\":\"blockdev-snapshot-sync\",\"data\":{\"node-name\":\"d-data\","
                   "\"snapshot-file\":\"/v/data.t1.qcow2\",\"snapshot-node-name\":\"s-data\","
                   "\"format\":\"qcow2\",\"mode\":\"absolute-paths\"}}]}");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/images/snapshot/tags", test_tags);
  g_test_add_func ("/images/snapshot/file-names", test_file_names);
  g_test_add_func ("/images/snapshot/transaction-args", test_transaction_args);
  return g_test_run ();
}
