/* test-images-info.c: qemu-img info's JSON parsed into ImagesChain (captured output in
 * tests/data/images/), and real runs: a 2-element chain, missing files, a hanging qemu-img
 * killed by the timeout while the main loop keeps running. */
#include <sys/stat.h>
#include <unistd.h>

#include "images/image-info.h"
#include "images/qemu-img.h"
#include "tests/test-util.h"

#define WAIT_MS 20000

static char *
data_json (const char *name)
{
  g_autofree char *relative = g_build_filename ("tests/data/images", name, NULL);
  g_autofree char *path = test_src_path (relative);

  return test_read_file (path);
}

static const char *
require_qemu_img (void)
{
  static char *qemu_img;

  if (qemu_img == NULL)
    qemu_img = g_find_program_in_path ("qemu-img");
  if (qemu_img == NULL)
    test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "qemu-img is not installed (apt-get install qemu-utils)");
  return qemu_img;
}

static void
run_qemu_img (const char *command)
{
  g_autofree char *line = g_strdup_printf ("qemu-img %s", command);
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  g_spawn_command_line_sync (line, NULL, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed: %s", line, err);
}

static void
on_done (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

/* ---- the parser, on captured output ---- */

static void
test_parse_chain (void)
{
  g_autofree char *json = data_json ("info-chain.json");
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = images_chain_parse (json, "/var/lib/vmherd/images/ioc-01.qcow2", &error);
  const ImagesInfo *top, *base;

  g_assert_no_error (error);
  g_assert_cmpuint (chain->images->len, ==, 2);
  g_assert_cmpstr (chain->json, ==, json);
  top = chain->images->pdata[0];
  g_assert_cmpstr (top->filename, ==, "/var/lib/vmherd/images/ioc-01.qcow2");
  g_assert_cmpstr (top->format, ==, "qcow2");
  g_assert_cmpuint (top->virtual_size, ==, 1073741824);
  g_assert_cmpint (top->actual_size, ==, 1314816);
  g_assert_cmpstr (top->backing_filename, ==, "debian-12-ioc.qcow2");
  g_assert_cmpstr (top->full_backing_filename, ==, "/var/lib/vmherd/images/debian-12-ioc.qcow2");
  g_assert_cmpstr (top->backing_format, ==, "qcow2");
  g_assert_false (top->dirty);
  g_assert_false (top->corrupt);
  base = chain->images->pdata[1];
  g_assert_cmpstr (base->filename, ==, "/var/lib/vmherd/images/debian-12-ioc.qcow2");
  g_assert_cmpstr (base->format, ==, "qcow2");
  g_assert_cmpuint (base->virtual_size, ==, 1073741824);
  g_assert_cmpint (base->actual_size, ==, 200704);
  g_assert_null (base->backing_filename);
  g_assert_null (base->full_backing_filename);
  g_assert_null (base->backing_format);
}

/* Without --backing-chain qemu-img prints one object; raw has no format-specific data. */
static void
test_parse_single_raw (void)
{
  g_autofree char *json = data_json ("info-raw.json");
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = images_chain_parse (json, "/var/lib/vmherd/images/data.raw", &error);
  const ImagesInfo *info;

  g_assert_no_error (error);
  g_assert_cmpuint (chain->images->len, ==, 1);
  info = chain->images->pdata[0];
  g_assert_cmpstr (info->filename, ==, "/var/lib/vmherd/images/data.raw");
  g_assert_cmpstr (info->format, ==, "raw");
  g_assert_cmpuint (info->virtual_size, ==, 536870912);
  g_assert_cmpint (info->actual_size, ==, 4096);
  g_assert_null (info->backing_filename);
  g_assert_false (info->corrupt);
}

/* A crashed image with lazy refcounts (dirty) that QEMU marked corrupt (edited capture). */
static void
test_parse_dirty_corrupt (void)
{
  g_autofree char *json = data_json ("info-corrupt.json");
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = images_chain_parse (json, "/x", &error);
  const ImagesInfo *info;

  g_assert_no_error (error);
  g_assert_cmpuint (chain->images->len, ==, 1);
  info = chain->images->pdata[0];
  g_assert_true (info->dirty);
  g_assert_true (info->corrupt);
}

static void
assert_parse_error (const char *json, const char *message)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = images_chain_parse (json, "/img/x.qcow2", &error);

  g_assert_null (chain);
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL);
  g_assert_cmpstr (error->message, ==, message);
}

static void
test_parse_errors (void)
{
  assert_parse_error ("[]", "qemu-img info printed unexpected JSON for image /img/x.qcow2: neither an "
                            "object nor a non-empty array");
  assert_parse_error ("\"x\"", "qemu-img info printed unexpected JSON for image /img/x.qcow2: neither an "
                               "object nor a non-empty array");
  assert_parse_error ("[{\"filename\": \"a\", \"format\": \"raw\"}]",
                      "qemu-img info printed unexpected JSON for image /img/x.qcow2: element 0 has no "
                      "\"virtual-size\"");
  assert_parse_error ("[{\"filename\": \"a\", \"format\": \"raw\", \"virtual-size\": 1}, 7]",
                      "qemu-img info printed unexpected JSON for image /img/x.qcow2: element 1 is not "
                      "an object");
  assert_parse_error ("{\"filename\": \"a\", \"format\": 3, \"virtual-size\": 1}",
                      "qemu-img info printed unexpected JSON for image /img/x.qcow2: \"format\" of "
                      "element 0 is not a gchararray");
  assert_parse_error ("{\"filename\": \"a\", \"format\": \"raw\", \"virtual-size\": 1, \"dirty-flag\": 1}",
                      "qemu-img info printed unexpected JSON for image /img/x.qcow2: \"dirty-flag\" of "
                      "element 0 is not a gboolean");
}

static void
test_parse_not_json (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = images_chain_parse ("{\"filename\": ", "/img/x.qcow2", &error);

  g_assert_null (chain);
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL);
  g_assert_true (g_str_has_prefix (error->message,
                                   "qemu-img info printed unexpected JSON for image /img/x.qcow2: "));
}

/* ---- real qemu-img ---- */

static void
test_info_real_chain (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *base = NULL, *top = NULL, *command = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;
  const ImagesInfo *info;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  base = g_build_filename (dir, "base.qcow2", NULL);
  top = g_build_filename (dir, "top.qcow2", NULL);
  command = g_strdup_printf ("create -q -f qcow2 %s 64M", base);
  run_qemu_img (command);
  g_free (command);
  command = g_strdup_printf ("create -q -f qcow2 -b %s -F qcow2 %s", base, top);
  run_qemu_img (command);

  images_info_async (qemu_img, top, "qcow2", 10000, NULL, on_done, &result);
  test_wait_until (result != NULL, WAIT_MS, "qemu-img info");
  chain = images_info_finish (result, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (chain->images->len, ==, 2);
  info = chain->images->pdata[0];
  g_assert_cmpstr (info->filename, ==, top);
  g_assert_cmpstr (info->format, ==, "qcow2");
  g_assert_cmpuint (info->virtual_size, ==, 64 * 1024 * 1024);
  g_assert_cmpint (info->actual_size, >, 0);
  g_assert_cmpstr (info->backing_filename, ==, base);
  g_assert_cmpstr (info->backing_format, ==, "qcow2");
  info = chain->images->pdata[1];
  g_assert_cmpstr (info->filename, ==, base);
  g_assert_null (info->backing_filename);
}

static void
assert_info_fails (const char *qemu_img, const char *path, const char *format, guint timeout_ms,
                   ImagesError code, const char *message)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;

  images_info_async (qemu_img, path, format, timeout_ms, NULL, on_done, &result);
  test_wait_until (result != NULL, WAIT_MS, "qemu-img info");
  chain = images_info_finish (result, &error);
  g_assert_null (chain);
  g_assert_error (error, IMAGES_ERROR, (int) code);
  g_assert_cmpstr (error->message, ==, message);
}

static void
test_info_missing (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *base = NULL, *top = NULL, *command = NULL, *message = NULL;
  g_autofree char *missing = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  missing = g_build_filename (dir, "nothing.qcow2", NULL);
  message = g_strdup_printf ("image %s does not exist", missing);
  assert_info_fails (qemu_img, missing, "qcow2", 10000, IMAGES_ERROR_NOT_FOUND, message);

  /* A chain whose base went away: the base is named, as a backing file. */
  base = g_build_filename (dir, "base.qcow2", NULL);
  top = g_build_filename (dir, "top.qcow2", NULL);
  command = g_strdup_printf ("create -q -f qcow2 %s 16M", base);
  run_qemu_img (command);
  g_free (command);
  command = g_strdup_printf ("create -q -f qcow2 -b %s -F qcow2 %s", base, top);
  run_qemu_img (command);
  g_assert_cmpint (unlink (base), ==, 0);
  g_free (message);
  message = g_strdup_printf ("backing file %s does not exist", base);
  assert_info_fails (qemu_img, top, "qcow2", 10000, IMAGES_ERROR_NOT_FOUND, message);

  /* Declared qcow2, but raw. */
  g_free (command);
  command = g_strdup_printf ("create -q -f raw %s 1M", base);
  run_qemu_img (command);
  g_free (message);
  message = g_strdup_printf ("image %s is not in qcow2 format (check its declared format; if it is "
                             "qcow2, its header is damaged)", base);
  assert_info_fails (qemu_img, base, "qcow2", 10000, IMAGES_ERROR_FORMAT, message);
}

static gboolean
count_tick (gpointer user_data)
{
  guint *ticks = user_data;

  (*ticks)++;
  return G_SOURCE_CONTINUE;
}

/* qemu-img opening a FIFO blocks in open() forever, like one on hung storage: the
 * timeout kills it, and the main loop runs all along (the ticker fires meanwhile). */
static void
test_info_timeout_loop_runs (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *fifo = NULL, *message = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;
  guint ticks = 0, ticker;
  gint64 start;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  fifo = g_build_filename (dir, "hang.raw", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);

  ticker = g_timeout_add (10, count_tick, &ticks);
  start = g_get_monotonic_time ();
  images_info_async (qemu_img, fifo, "raw", 300, NULL, on_done, &result);
  g_assert_null (result);       /* never completes inside the call */
  test_wait_until (result != NULL, WAIT_MS, "the qemu-img timeout");
  g_source_remove (ticker);

  g_assert_cmpint (g_get_monotonic_time () - start, >=, 300 * 1000);
  g_assert_cmpuint (ticks, >=, 5);
  chain = images_info_finish (result, &error);
  g_assert_null (chain);
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_TIMEOUT);
  message = g_strdup_printf ("qemu-img info on %s did not finish within 300 ms and was killed (is its "
                             "storage hanging?)", fifo);
  g_assert_cmpstr (error->message, ==, message);
}

static void
test_info_cancel (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *fifo = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  fifo = g_build_filename (dir, "hang.raw", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);

  images_info_async (qemu_img, fifo, "raw", 0, cancellable, on_done, &result);
  g_cancellable_cancel (cancellable);
  test_wait_until (result != NULL, WAIT_MS, "the cancelled qemu-img");
  chain = images_info_finish (result, &error);
  g_assert_null (chain);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
test_info_no_qemu_img (void)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;

  images_info_async ("/nonexistent/qemu-img", "/x.qcow2", "qcow2", 1000, NULL, on_done, &result);
  test_wait_until (result != NULL, WAIT_MS, "the spawn failure");
  chain = images_info_finish (result, &error);
  g_assert_null (chain);
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL);
  g_assert_true (g_str_has_prefix (error->message, "cannot run /nonexistent/qemu-img: "));
  g_assert_true (g_str_has_suffix (error->message, "(install qemu-utils, or set qemu-img = in vmherd.conf)"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/images/info/parse-chain", test_parse_chain);
  g_test_add_func ("/images/info/parse-single-raw", test_parse_single_raw);
  g_test_add_func ("/images/info/parse-dirty-corrupt", test_parse_dirty_corrupt);
  g_test_add_func ("/images/info/parse-errors", test_parse_errors);
  g_test_add_func ("/images/info/parse-not-json", test_parse_not_json);
  g_test_add_func ("/images/info/real-chain", test_info_real_chain);
  g_test_add_func ("/images/info/missing", test_info_missing);
  g_test_add_func ("/images/info/timeout-loop-runs", test_info_timeout_loop_runs);
  g_test_add_func ("/images/info/cancel", test_info_cancel);
  g_test_add_func ("/images/info/no-qemu-img", test_info_no_qemu_img);
  return g_test_run ();
}
