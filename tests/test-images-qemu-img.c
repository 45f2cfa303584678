/* test-images-qemu-img.c: qemu-img's stderr (captured from qemu-img 7.2) turned into
 * IMAGES_ERROR codes and messages, -p progress parsing, and the runner itself. */
#include <sys/stat.h>

#include "images/qemu-img.h"
#include "tests/test-util.h"

#define WAIT_MS 20000

typedef struct
{
  const char *name;
  const char *stderr_text;
  ImagesError code;
  const char *message;
} StderrCase;

/* files: the image being written first, then the base image (as overlay.c passes them). */
static const StderrCase stderr_cases[] = {
  { "base-missing",
    "qemu-img: /v/o1.qcow2: Could not open '/v/nonexist': No such file or directory\n"
    "Could not open backing image.\n",
    IMAGES_ERROR_NOT_FOUND, "base image /v/nonexist does not exist" },
  { "base-not-qcow2",
    "qemu-img: /v/o1.qcow2: Image is not in qcow2 format\nCould not open backing image.\n",
    IMAGES_ERROR_FORMAT,
    "base image /v/base.qcow2 is not in qcow2 format (check its declared format; if it is qcow2, "
    "its header is damaged)" },
  { "image-missing",
    "qemu-img: Could not open '/v/o1.qcow2': Could not open '/v/o1.qcow2': No such file or directory\n",
    IMAGES_ERROR_NOT_FOUND, "image /v/o1.qcow2 does not exist" },
  { "backing-missing",
    "qemu-img: Could not open '/v/o1.qcow2': Could not open backing file: Could not open "
    "'/v/old-base.qcow2': No such file or directory\n",
    IMAGES_ERROR_NOT_FOUND, "backing file /v/old-base.qcow2 does not exist" },
  { "is-directory",
    "qemu-img: /v/o1.qcow2: Could not create '/v/o1.qcow2': Is a directory\n",
    IMAGES_ERROR_IS_DIRECTORY, "image /v/o1.qcow2 is a directory (name an image file)" },
  { "bad-magic",
    "qemu-img: Could not open '/v/base.qcow2': Image is not in qcow2 format\n",
    IMAGES_ERROR_FORMAT,
    "base image /v/base.qcow2 is not in qcow2 format (check its declared format; if it is qcow2, "
    "its header is damaged)" },
  { "bad-version",
    "qemu-img: Could not open '/v/base.qcow2': Unsupported qcow2 version 9\n",
    IMAGES_ERROR_CORRUPT,
    "base image /v/base.qcow2 is damaged: Unsupported qcow2 version 9 (inspect it with qemu-img check)" },
  { "marked-corrupt",
    "qemu-img: Could not open '/v/o1.qcow2': Image is corrupt; cannot be opened read/write\n",
    IMAGES_ERROR_CORRUPT,
    "image /v/o1.qcow2 is damaged: Image is corrupt; cannot be opened read/write (inspect it with "
    "qemu-img check)" },
  { "bad-l1",
    "qemu-img: Could not open '/v/o1.qcow2': Invalid L1 table offset\n",
    IMAGES_ERROR_CORRUPT,
    "image /v/o1.qcow2 is damaged: Invalid L1 table offset (inspect it with qemu-img check)" },
  { "locked",
    "qemu-img: Could not open '/v/o1.qcow2': Failed to get shared \"write\" lock\n"
    "Is another process using the image [/v/o1.qcow2]?\n",
    IMAGES_ERROR_LOCKED,
    "image /v/o1.qcow2 is in use by another process, probably a running QEMU (stop the VM first)" },
  { "locked-write",
    "qemu-img: /v/o1.qcow2: Failed to get \"write\" lock\nIs another process using the image "
    "[/v/o1.qcow2]?\n",
    IMAGES_ERROR_LOCKED,
    "image /v/o1.qcow2 is in use by another process, probably a running QEMU (stop the VM first)" },
  { "no-space-prealloc",
    "qemu-img: /v/o1.qcow2: Could not write zeros for preallocation: No space left on device\n",
    IMAGES_ERROR_NO_SPACE, "image /v/o1.qcow2: no space left on device (free space in /v)" },
  { "no-space-convert",
    "qemu-img: error while writing at byte 0: No space left on device\n",
    IMAGES_ERROR_NO_SPACE, "image /v/o1.qcow2: no space left on device (free space in /v)" },
  { "no-space-header",
    "qemu-img: /v/o1.qcow2: error while converting qcow2: Could not write qcow2 header: No space left "
    "on device\n",
    IMAGES_ERROR_NO_SPACE, "image /v/o1.qcow2: no space left on device (free space in /v)" },
  { "quota",
    "qemu-img: /v/o1.qcow2: Could not preallocate new data: Disk quota exceeded\n",
    IMAGES_ERROR_NO_SPACE, "image /v/o1.qcow2: no space left on device (free space in /v)" },
  { "permission",
    "qemu-img: Could not open '/v/base.qcow2': Could not open '/v/base.qcow2': Permission denied\n",
    IMAGES_ERROR_TOOL, "qemu-img failed on base image /v/base.qcow2: Permission denied" },
  { "usage-not-corrupt",
    "qemu-img: Invalid image size specified. You may use k, M, G, T, P or E suffixes for\n"
    "qemu-img: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.\n",
    IMAGES_ERROR_TOOL,
    "qemu-img failed on image /v/o1.qcow2: Invalid image size specified. You may use k, M, G, T, P or E "
    "suffixes for" },
  { "silent", "", IMAGES_ERROR_TOOL, "qemu-img failed on image /v/o1.qcow2 without saying why" },
};

static void
test_stderr_case (gconstpointer data)
{
  const StderrCase *c = data;
  const ImagesFile files[] = { { "/v/o1.qcow2", "image", NULL }, { "/v/base.qcow2", "base image", NULL } };
  const ImagesFile *use = files;
  ImagesFile base_missing[] = { { "/v/o1.qcow2", "image", NULL }, { "/v/nonexist", "base image", NULL } };
  g_autoptr(GError) error = NULL;

  if (g_str_equal (c->name, "base-missing"))
    use = base_missing;
  images_qemu_img_set_error (c->stderr_text, use, 2, &error);
  g_assert_error (error, IMAGES_ERROR, (int) c->code);
  g_assert_cmpstr (error->message, ==, c->message);
}

/* A temporary file is shown as the file it stands for. */
static void
test_stderr_shown (void)
{
  const ImagesFile files[] = { { "/v/.o1.qcow2.flatten-AbC123", "flattened copy of image", "/v/o1.qcow2" },
                               { "/v/o1.qcow2", "image", NULL } };
  g_autoptr(GError) space = NULL, locked = NULL;

  images_qemu_img_set_error ("qemu-img: /v/.o1.qcow2.flatten-AbC123: error while converting qcow2: "
                             "Could not write qcow2 header: No space left on device\n", files, 2, &space);
  g_assert_error (space, IMAGES_ERROR, IMAGES_ERROR_NO_SPACE);
  g_assert_cmpstr (space->message, ==,
                   "flattened copy of image /v/o1.qcow2: no space left on device (free space in /v)");
  images_qemu_img_set_error ("qemu-img: Could not open '/v/o1.qcow2': Failed to get shared \"write\" lock\n"
                             "Is another process using the image [/v/o1.qcow2]?\n", files, 2, &locked);
  g_assert_error (locked, IMAGES_ERROR, IMAGES_ERROR_LOCKED);
  g_assert_cmpstr (locked->message, ==,
                   "image /v/o1.qcow2 is in use by another process, probably a running QEMU (stop the VM first)");
}

static void
test_progress_parse (void)
{
  double percent = -1;

  g_assert_true (images_progress_parse ("    (0.00/100%)\r    (2.00/100%)\r", &percent));
  g_assert_cmpfloat (percent, ==, 2.0);
  g_assert_true (images_progress_parse ("(12.34/100%)", &percent));
  g_assert_cmpfloat_with_epsilon (percent, 12.34, 1e-9);
  g_assert_true (images_progress_parse ("    (100.00/100%)\r\n", &percent));
  g_assert_cmpfloat (percent, ==, 100.0);
  /* A chunk cut in the middle of the next value: the last complete one counts. */
  g_assert_true (images_progress_parse ("    (1.00/100%)\r    (3.5", &percent));
  g_assert_cmpfloat (percent, ==, 1.0);
  g_assert_true (images_progress_parse ("(7.00/100%)\r(x/100%)", &percent));
  g_assert_cmpfloat (percent, ==, 7.0);

  percent = -1;
  g_assert_false (images_progress_parse ("", &percent));
  g_assert_false (images_progress_parse ("(abc/100%)", &percent));
  g_assert_false (images_progress_parse ("(150.00/100%)", &percent));
  g_assert_false (images_progress_parse ("/100%)", &percent));
  g_assert_cmpfloat (percent, ==, -1);
}

static void
test_format_supported (void)
{
  g_assert_true (images_format_is_supported ("qcow2"));
  g_assert_true (images_format_is_supported ("raw"));
  g_assert_false (images_format_is_supported ("vmdk"));
  g_assert_false (images_format_is_supported (NULL));
}

static void
test_error_names (void)
{
  g_assert_cmpstr (images_error_to_string (IMAGES_ERROR_NO_SPACE), ==, "no-space");
  g_assert_cmpstr (images_error_to_string (IMAGES_ERROR_LOCKED), ==, "locked");
  g_assert_cmpstr (images_error_to_string (IMAGES_ERROR_EXISTS), ==, "exists");
  g_assert_cmpstr (images_error_to_string ((ImagesError) 99), ==, "unknown");
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

static gboolean
mark_fired (gpointer user_data)
{
  gboolean *fired = user_data;

  *fired = TRUE;
  return G_SOURCE_REMOVE;
}

/* The CLI's sync run iterates only its own context: the caller's sources wait. */
static void
test_run_sync (void)
{
  const char *qemu_img = require_qemu_img ();
  const ImagesFile files[] = { { "/nonexistent/x.qcow2", "image", NULL } };
  const char *version[] = { "--version", NULL };
  const char *bad[] = { "info", "-f", "qcow2", "/nonexistent/x.qcow2", NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  gboolean fired = FALSE;
  guint id;

  if (qemu_img == NULL)
    return;
  id = g_idle_add (mark_fired, &fired);
  out = images_qemu_img_run_sync (qemu_img, version, files, 1, 10000, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (out, "qemu-img version "));
  g_assert_false (fired);
  g_source_remove (id);

  g_clear_pointer (&out, g_free);
  out = images_qemu_img_run_sync (qemu_img, bad, files, 1, 10000, &error);
  g_assert_null (out);
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "image /nonexistent/x.qcow2 does not exist");
}

/* A sync run that times out leaves nothing running in its private context. */
static void
test_run_sync_timeout (void)
{
  const char *qemu_img = require_qemu_img ();
  g_autofree char *dir = NULL, *fifo = NULL, *message = NULL, *out = NULL;
  g_autoptr(GError) error = NULL;

  if (qemu_img == NULL)
    return;
  dir = test_tmpdir ();
  fifo = g_build_filename (dir, "hang.raw", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  {
    const ImagesFile files[] = { { fifo, "image", NULL } };
    const char *args[] = { "info", "-f", "raw", fifo, NULL };

    out = images_qemu_img_run_sync (qemu_img, args, files, 1, 200, &error);
  }
  g_assert_null (out);
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_TIMEOUT);
  message = g_strdup_printf ("qemu-img info on %s did not finish within 200 ms and was killed (is its "
                             "storage hanging?)", fifo);
  g_assert_cmpstr (error->message, ==, message);
}

static void
on_done (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

/* A qemu-img killed by someone else (the OOM killer, an admin): a shell stands in for
 * qemu-img and kills itself. */
static void
test_run_killed (void)
{
  const ImagesFile files[] = { { "/x.raw", "image", NULL } };
  const char *args[] = { "-c", "kill -KILL $$", NULL };
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  images_qemu_img_run_async ("/bin/sh", args, files, 1, 10000, NULL, NULL, NULL, on_done, &result);
  test_wait_until (result != NULL, WAIT_MS, "the killed process");
  out = images_qemu_img_run_finish (result, &error);
  g_assert_null (out);
  g_assert_error (error, IMAGES_ERROR, IMAGES_ERROR_TOOL);
  g_assert_cmpstr (error->message, ==, "qemu-img -c on /x.raw was killed by signal 9");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (stderr_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/images/qemu-img/stderr/%s", stderr_cases[i].name);
      g_test_add_data_func (path, &stderr_cases[i], test_stderr_case);
    }
  g_test_add_func ("/images/qemu-img/stderr-shown", test_stderr_shown);
  g_test_add_func ("/images/qemu-img/progress-parse", test_progress_parse);
  g_test_add_func ("/images/qemu-img/format-supported", test_format_supported);
  g_test_add_func ("/images/qemu-img/error-names", test_error_names);
  g_test_add_func ("/images/qemu-img/run-sync", test_run_sync);
  g_test_add_func ("/images/qemu-img/run-sync-timeout", test_run_sync_timeout);
  g_test_add_func ("/images/qemu-img/run-killed", test_run_killed);
  return g_test_run ();
}
