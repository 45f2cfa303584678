/* test-snapshot.c: external snapshots through a real vmherdd and real QEMU (TCG, a
 * BIOS-only guest with a data disk: no OS needed, the "guest's" writes are made by QEMU's
 * own qemu-io over HMP), the record and the argv they give, the refusals word for word,
 * and starts that fail on an image another QEMU holds. */
#define _GNU_SOURCE /* F_OFD_GETLK */
#include <fcntl.h>
#include <glib/gstdio.h>
#include <gio/gio.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "launcher/control-proto.h"
#include "launcher/qemu-argv.h"
#include "launcher/vm-snapshot.h"
#include "tests/harness.h"
#include "tests/test-util.h"

/* ---- a host with vmherdd (as in test-console.c) ---- */

static void make_image (const char *dir, const char *relative);

/* A host dir with img/ holding images (relative paths separated by spaces: ".raw" raw,
 * else qcow2; owned by nobody, whom QEMU runs as), and the VM files given as name, text,
 * ..., NULL, where "@" in a text stands for the host dir; vmherdd started. */
static Host *
host_start_images (const char *images, const char *first_name, ...)
{
  g_auto(GStrv) image_list = g_strsplit (images, " ", -1);
  Host *h = host_new (NULL);
  g_autofree char *img = g_build_filename (h->dir, "img", NULL);
  const char *name;
  va_list ap;

  g_mkdir (img, 0755);
  for (char **i = image_list; *i != NULL; i++)
    make_image (h->dir, *i);
  va_start (ap, first_name);
  for (name = first_name; name != NULL; name = va_arg (ap, const char *))
    {
      g_auto(GStrv) parts = g_strsplit (va_arg (ap, const char *), "@", -1);
      g_autofree char *text = g_strjoinv (h->dir, parts);
      host_add_vm (h, name, text);
    }
  va_end (ap);
  host_restart_daemon (h);
  return h;
}

/* Runs `vmherd ARGS...` and asserts its exit status, standard output and error. */
#define assert_vmherd(h, status_, out_, err_, ...)                                     \
  G_STMT_START {                                                                       \
    TestRun _r = test_run_vmherd ((h)->config, NULL, __VA_ARGS__, NULL);               \
    g_assert_cmpstr (_r.err, ==, (err_));                                              \
    g_assert_cmpstr (_r.out, ==, (out_));                                              \
    g_assert_cmpint (_r.status, ==, (status_));                                        \
    test_run_clear (&_r);                                                              \
  } G_STMT_END

static char *
host_path (Host *h, const char *relative)
{
  return g_build_filename (h->dir, relative, NULL);
}

/* Runs a shell command line (qemu-img, qemu-io) built with printf; returns its status. */
static int G_GNUC_PRINTF (1, 2)
sh (const char *format, ...)
{
  g_autofree char *line = NULL;
  const char *argv[] = { "/bin/sh", "-c", NULL, NULL };
  TestRun r;
  int status;
  va_list ap;

  va_start (ap, format);
  line = g_strdup_vprintf (format, ap);
  va_end (ap);
  argv[2] = line;
  r = test_run (argv, NULL);
  status = r.status;
  test_run_clear (&r);
  return status;
}

/* An image QEMU (as nobody) may write. */
static void
make_image (const char *dir, const char *relative)
{
  g_autofree char *path = g_build_filename (dir, relative, NULL);
  struct passwd *nobody = getpwnam ("nobody");

  g_assert_cmpint (sh ("qemu-img create -q -f %s %s 16M", g_str_has_suffix (path, ".raw") ? "raw" : "qcow2",
                       path), ==, 0);
  g_assert_nonnull (nobody);
  g_assert_cmpint (chown (path, nobody->pw_uid, nobody->pw_gid), ==, 0);
}

/* QEMU's reply to a QMP command (JSON text) sent through vmherdd's console path. */
static JsonObject *
qmp_call (Host *h, const char *vm, const char *command)
{
  g_autoptr(ControlClient) c = control_client_connect (h->socket, NULL);
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(JsonNode) cmd = json_from_string (command, NULL);
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (cmd);
  json_object_set_string_member (args, "vm", vm);
  json_object_set_member (args, "command", g_steal_pointer (&cmd));
  ret = control_client_call (c, "qmp", args, 10000, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  return json_object_ref (json_object_get_object_member (json_node_get_object (ret), "reply"));
}

/* The guest "writes": QEMU's qemu-io on the disk's device, so through whatever layer the
 * device uses now.  qemu-io prints to QEMU's stdout, so what it read is checked offline. */
static void
guest_write (Host *h, const char *vm, const char *disk, const char *command)
{
  g_autofree char *line = g_strdup_printf ("{\"execute\": \"human-monitor-command\", \"arguments\": "
                                           "{\"command-line\": \"qemu-io -d /machine/peripheral/disk-%s/"
                                           "virtio-backend \\\"%s\\\"\"}}", disk, command);
  g_autoptr(JsonObject) reply = qmp_call (h, vm, line);

  g_assert_cmpstr (json_object_get_string_member (reply, "return"), ==, "");
}

/* The disk read offline, read-only, through its chain from file: pattern at offset. */
static gboolean
reads (const char *file, const char *pattern, const char *offset)
{
  return sh ("qemu-io -f qcow2 -r -c 'read -P %s %s 64k' %s >/dev/null", pattern, offset, file) == 0;
}

static const char *const data_vm =
  "[vm]\nmemory = 64M\nrestart = no\n[health]\npanic = none\n"
  "[disk data]\nimage = @/img/data.qcow2\nformat = qcow2\n";

/* ---- pure: the record and the argv ---- */

static VmConfig *
load_config (const char *text)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "web.conf", NULL);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  VmConfig *config;

  test_write_file (path, text);
  config = vm_config_load (path, errors);
  g_assert_cmpuint (errors->len, ==, 0);
  return config;
}

static HostConfig *
test_host (const char *state_dir)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *text = g_strdup_printf ("[daemon]\nstate-dir = %s\nqemu = /bin/true\n", state_dir);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  HostConfig *host;

  test_write_file (path, text);
  host = host_config_load (path, errors);
  g_assert_nonnull (host);
  return host;
}

static void
test_record (void)
{
  g_autofree char *state = test_tmpdir ();
  g_autoptr(HostConfig) host = test_host (state);
  g_autoptr(VmSnapshots) s = NULL, again = NULL;
  g_autoptr(VmConfig) config = load_config ("[vm]\nmemory = 64M\n[disk root]\nimage = /v/web.qcow2\n"
                                            "format = qcow2\n[disk data]\nimage = /v/data.raw\n"
                                            "format = raw\n[disk iso]\nimage = /v/x.iso\nformat = raw\n"
                                            "read-only = yes\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) chain = NULL;
  g_autofree char *path = g_build_filename (state, "snapshots", "web.json", NULL);
  g_autofree char *tags = NULL;
  const char *const layers[][4] = {
    { "t1", "root", "/v/web.t1.qcow2", "/v/web.qcow2" },
    { "t1", "data", "/v/data.t1.qcow2", "/v/data.raw" },
    { "t2", "root", "/v/web.t2.qcow2", "/v/web.t1.qcow2" },
  };

  /* No file: no snapshots. */
  s = vm_snapshots_load (host, "web", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (s->snapshots->len, ==, 0);
  g_assert_cmpstr (s->path, ==, path);
  for (guint i = 0; i < G_N_ELEMENTS (layers); i++)
    {
      VmSnapshot *snap = vm_snapshots_find (s, layers[i][0], NULL);
      VmSnapshotDisk *d = g_new0 (VmSnapshotDisk, 1);

      if (snap == NULL)
        {
          snap = g_new0 (VmSnapshot, 1);
          snap->tag = g_strdup (layers[i][0]);
          snap->time = 1767225600 + i;
          snap->disks = g_ptr_array_new_with_free_func ((GDestroyNotify) vm_snapshot_disk_free);
          g_ptr_array_add (s->snapshots, snap);
        }
      d->disk = g_strdup (layers[i][1]);
      d->overlay = g_strdup (layers[i][2]);
      d->backing = g_strdup (layers[i][3]);
      d->backing_format = strcmp (layers[i][1], "data") == 0 ? VM_FORMAT_RAW : VM_FORMAT_QCOW2;
      g_ptr_array_add (snap->disks, d);
    }
  g_assert_true (vm_snapshots_save (s, &error));
  g_assert_no_error (error);

  again = vm_snapshots_load (host, "web", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (again->snapshots->len, ==, 2);
  tags = vm_snapshots_tags (again, 0, G_MAXUINT);
  g_assert_cmpstr (tags, ==, "t1, t2");
  chain = vm_snapshots_chain (again, "root");
  g_assert_cmpuint (chain->len, ==, 2);
  g_assert_cmpstr (((VmSnapshotDisk *) chain->pdata[1])->overlay, ==, "/v/web.t2.qcow2");
  g_assert_cmpint (((VmSnapshotDisk *) vm_snapshot_find_disk (again->snapshots->pdata[0], "data"))->backing_format,
                   ==, VM_FORMAT_RAW);

  /* Applied: the layers of each disk, oldest first; the read-only disk has none. */
  g_assert_true (vm_snapshots_apply (again, config, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (((VmDisk *) config->disks->pdata[0])->overlays->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (((VmDisk *) config->disks->pdata[0])->overlays, 1), ==, "/v/web.t2.qcow2");
  g_assert_cmpuint (((VmDisk *) config->disks->pdata[1])->overlays->len, ==, 1);
  g_assert_null (((VmDisk *) config->disks->pdata[2])->overlays);

  /* A VM file naming another image than the layers sit on: refused, config unchanged. */
  g_free (((VmDisk *) config->disks->pdata[1])->image);
  ((VmDisk *) config->disks->pdata[1])->image = g_strdup ("/v/other.raw");
  g_assert_false (vm_snapshots_apply (again, config, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_assert_cmpstr (error->message, ==, "disk 'data': snapshot layer /v/data.t1.qcow2 sits on /v/data.raw, "
                   "but the VM file names image = /v/other.raw (name the old image again, or revert and "
                   "delete the snapshots first)");
  g_assert_cmpuint (((VmDisk *) config->disks->pdata[1])->overlays->len, ==, 1);

  /* A damaged record says where. */
  test_write_file (path, "{\"snapshots\": [{\"tag\": \"t1\", \"time\": 1, \"disks\": [{\"disk\": \"root\"}]}]}");
  g_clear_error (&error);
  g_assert_null (vm_snapshots_load (host, "web", &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_assert_true (g_str_has_suffix (error->message, "web.json: snapshot 1 ('t1'), disk 1 has no \"overlay\""));

  /* The last one gone: no file. */
  g_ptr_array_set_size (again->snapshots, 0);
  g_assert_true (vm_snapshots_save (again, NULL));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

static const char *
argv_find (QemuCmdline *cmdline, const char *prefix)
{
  for (guint i = 0; cmdline->argv->pdata[i] != NULL; i++)
    if (g_str_has_prefix (cmdline->argv->pdata[i], prefix))
      return cmdline->argv->pdata[i];
  return NULL;
}

static void
test_argv_layers (void)
{
  g_autoptr(VmConfig) config = load_config ("[vm]\nmemory = 64M\n[disk root]\nimage = /v/web.qcow2\n"
                                            "format = qcow2\nbase = /v/base.qcow2\nbase-format = qcow2\n");
  g_autoptr(HostConfig) host = test_host ("/tmp");
  QemuHostCaps caps = { "pc-q35-7.2", FALSE };
  g_autoptr(QemuCmdline) plain = qemu_argv_build (config, host, &caps);
  g_autoptr(QemuCmdline) layered = NULL;
  VmDisk *disk = config->disks->pdata[0];
  JsonNode *file_node = NULL, *format_node = NULL;
  g_autofree char *file_text = NULL, *format_text = NULL;

  g_assert_nonnull (argv_find (plain, "virtio-blk-pci,drive=d-root,id=disk-root,"));
  disk->overlays = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (disk->overlays, g_strdup ("/v/web.t1.qcow2"));
  g_ptr_array_add (disk->overlays, g_strdup ("/v/web.t2.qcow2"));
  layered = qemu_argv_build (config, host, &caps);
  /* The image is frozen under the layers; the newest layer is written, and the device. */
  g_assert_nonnull (argv_find (layered, "{\"driver\":\"qcow2\",\"node-name\":\"d-root\",\"file\":\"f-root\","
                                        "\"read-only\":true,\"discard\":\"unmap\",\"backing\":\"bd-root\"}"));
  g_assert_nonnull (argv_find (layered, "{\"driver\":\"file\",\"filename\":\"/v/web.t1.qcow2\","
                                        "\"node-name\":\"s1f-root\",\"read-only\":true,"));
  g_assert_nonnull (argv_find (layered, "{\"driver\":\"qcow2\",\"node-name\":\"s1d-root\",\"file\":\"s1f-root\","
                                        "\"read-only\":true,\"discard\":\"unmap\",\"backing\":\"d-root\"}"));
  g_assert_nonnull (argv_find (layered, "{\"driver\":\"qcow2\",\"node-name\":\"s2d-root\",\"file\":\"s2f-root\","
                                        "\"read-only\":false,\"discard\":\"unmap\",\"backing\":\"s1d-root\"}"));
  g_assert_nonnull (argv_find (layered, "virtio-blk-pci,drive=s2d-root,id=disk-root,"));

  /* A layer taken live: the same options, no backing yet (blockdev-snapshot adds it). */
  qemu_argv_disk_layer_nodes (disk, 3, "/v/web.t3.qcow2", &file_node, &format_node);
  file_text = json_to_string (file_node, FALSE);
  format_text = json_to_string (format_node, FALSE);
  g_assert_cmpstr (file_text, ==, "{\"driver\":\"file\",\"filename\":\"/v/web.t3.qcow2\",\"node-name\":\"s3f-root\","
                                  "\"read-only\":false,\"discard\":\"unmap\",\"cache\":{\"direct\":true,\"no-flush\":false}}");
  g_assert_cmpstr (format_text, ==, "{\"driver\":\"qcow2\",\"node-name\":\"s3d-root\",\"file\":\"s3f-root\","
                                    "\"read-only\":false,\"discard\":\"unmap\",\"backing\":null}");
  json_node_unref (file_node);
  json_node_unref (format_node);
}

/* ---- real QEMU ---- */

static const char *const two_disk_vm =
  "[vm]\nmemory = 64M\nrestart = no\n[health]\npanic = none\n"
  "[disk data]\nimage = @/img/data.qcow2\nformat = qcow2\n"
  "[disk scratch]\nimage = @/img/scratch.raw\nformat = raw\n";

static JsonNode *
vm_status (Host *h, const char *vm)
{
  g_autoptr(ControlClient) c = control_client_connect (h->socket, NULL);
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(GError) error = NULL;
  JsonNode *ret;

  json_object_set_string_member (args, "vm", vm);
  ret = control_client_call (c, "status", args, 5000, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  return ret;
}

static gboolean
vm_is (Host *h, const char *vm, const char *state)
{
  g_autoptr(JsonNode) status = vm_status (h, vm);

  return strcmp (json_object_get_string_member (json_node_get_object (status), "state"), state) == 0;
}

/* The argv vmherdd says the guest runs with contains text. */
static gboolean
runs_with (Host *h, const char *vm, const char *text)
{
  g_autoptr(JsonNode) status = vm_status (h, vm);
  JsonArray *argv = json_object_get_array_member (json_node_get_object (status), "argv");

  for (guint i = 0; i < json_array_get_length (argv); i++)
    if (strstr (json_array_get_string_element (argv, i), text) != NULL)
      return TRUE;
  return FALSE;
}

/* The guest keeps writing, running or paused; snapshots in between, of both disks at once;
 * revert; the data is what it was at the snapshot; delete merges the layers back. */
static void
test_create_revert_delete (void)
{
  Host *h = host_start_images ("img/data.qcow2 img/scratch.raw", "ioc", two_disk_vm, NULL);
  g_autofree char *image = host_path (h, "img/data.qcow2");
  g_autofree char *t1 = host_path (h, "img/data.t1.qcow2");
  g_autofree char *t2 = host_path (h, "img/data.t2.qcow2");
  g_autofree char *scratch_t1 = host_path (h, "img/scratch.t1.qcow2");
  g_autofree char *t3 = host_path (h, "img/data.t3.qcow2");
  g_autofree char *scratch_t3 = host_path (h, "img/scratch.t3.qcow2");
  g_autofree char *record = host_path (h, "state/snapshots/ioc.json");
  g_autofree char *expected = NULL;
  struct passwd *nobody = getpwnam ("nobody");
  GStatBuf st;
  TestRun r;

  assert_vmherd (h, 0, "vm 'ioc': running\n", "", "start", "ioc");
  guest_write (h, "ioc", "data", "write -P 0x11 0 64k");
  guest_write (h, "ioc", "scratch", "write -P 0x55 0 64k");
  assert_vmherd (h, 0, "vm 'ioc': snapshot 't1' taken (disks: data, scratch)\n", "", "snapshot", "ioc",
                 "create", "t1");
  guest_write (h, "ioc", "data", "write -P 0x22 0 64k");
  assert_vmherd (h, 0, "", "", "pause", "ioc");
  test_wait_until (vm_is (h, "ioc", "paused"), 5000, "the guest to pause");
  assert_vmherd (h, 0, "vm 'ioc': snapshot 't2' taken (disks: data, scratch)\n", "", "snapshot", "ioc",
                 "create", "t2");
  assert_vmherd (h, 0, "", "", "resume", "ioc");
  guest_write (h, "ioc", "data", "write -P 0x33 0 64k");
  guest_write (h, "ioc", "scratch", "write -P 0x66 0 64k");

  /* The guest writes the newest layers; the frozen ones hold what was written before. */
  test_wait_until (runs_with (h, "ioc", "drive=s2d-data,id=disk-data,"), 5000, "status to show the t2 layer");
  g_assert_true (reads (image, "0x11", "0"));
  g_assert_true (reads (t1, "0x22", "0"));
  g_assert_true (reads (scratch_t1, "0x55", "0"));
  g_assert_cmpint (g_stat (t1, &st), ==, 0);
  g_assert_cmpuint (st.st_uid, ==, nobody->pw_uid);
  g_assert_cmpuint (st.st_mode & 0777, ==, 0600);

  /* A file in the way of the second disk's layer: nothing taken, the first layer made for
   * it removed again, the stray file left alone. */
  test_write_file (scratch_t3, "");
  expected = g_strdup_printf ("vm 'ioc': snapshot 't3' not taken: disk 'scratch': image %s already exists "
                              "(remove it first; it was not replaced)\n", scratch_t3);
  assert_vmherd (h, 1, "", expected, "snapshot", "ioc", "create", "t3");
  g_assert_false (g_file_test (t3, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (scratch_t3, G_FILE_TEST_EXISTS));
  g_clear_pointer (&expected, g_free);

  /* A tag is taken once; a running guest is neither reverted nor merged. */
  r = test_run_vmherd (h->config, NULL, "snapshot", "ioc", "create", "t1", NULL);
  g_assert_true (g_str_has_prefix (r.err, "vm 'ioc' already has a snapshot 't1' (taken 20"));
  g_assert_true (g_str_has_suffix (r.err, "): pick another tag, or delete that one first\n"));
  g_assert_cmpint (r.status, ==, 1);
  test_run_clear (&r);
  assert_vmherd (h, 1, "", "vm 'ioc' is running: revert needs a stopped guest (vmherd stop ioc first)\n",
                 "snapshot", "ioc", "revert", "t1");
  assert_vmherd (h, 1, "", "vm 'ioc' is running: delete needs a stopped guest (vmherd stop ioc first); "
                 "merging layers under a running guest is not supported\n", "snapshot", "ioc", "delete", "t2");

  r = test_run_vmherd (h->config, NULL, "snapshot", "ioc", "list", NULL);
  g_assert_true (g_str_has_prefix (r.out, "TAG                  TAKEN                DISK     LAYER (the writes since)\nt1   "));
  g_assert_null (strstr (r.out, "t3"));
  expected = g_strdup_printf ("  data     %s  ", t1);
  g_assert_nonnull (strstr (r.out, expected));
  g_free (expected);
  expected = g_strdup_printf ("\n                                          scratch  %s  ", scratch_t1);
  g_assert_nonnull (strstr (r.out, expected));
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);

  assert_vmherd (h, 0, "vm 'ioc': stopped\n", "", "stop", "ioc", "--force");
  assert_vmherd (h, 1, "", "vm 'ioc' is stopped: snapshots of a stopped guest are plain copies: use vmherd "
                 "image clone\n", "snapshot", "ioc", "create", "t3");
  assert_vmherd (h, 1, "", "vm 'ioc': reverting to 't1' drops the snapshots taken after it (t2): delete them "
                 "first, or revert --force\n", "snapshot", "ioc", "revert", "t1");
  assert_vmherd (h, 0, "vm 'ioc': reverted to snapshot 't1' (dropped the later snapshots t2)\n", "",
                 "snapshot", "ioc", "revert", "t1", "--force");
  /* Both disks are as they were at t1: the writes after it are gone, and so is t2. */
  g_assert_true (reads (t1, "0x11", "0"));
  g_assert_true (reads (scratch_t1, "0x55", "0"));
  g_assert_false (g_file_test (t2, G_FILE_TEST_EXISTS));

  /* It starts on the t1 layers and writes there. */
  assert_vmherd (h, 0, "vm 'ioc': running\n", "", "start", "ioc");
  g_assert_true (runs_with (h, "ioc", "drive=s1d-data,id=disk-data,"));
  guest_write (h, "ioc", "data", "write -P 0x44 64k 64k");
  assert_vmherd (h, 0, "vm 'ioc': stopped\n", "", "stop", "ioc", "--force");
  g_assert_true (reads (t1, "0x44", "64k"));
  g_assert_false (reads (image, "0x44", "64k"));

  /* Deleting t1 merges its layers into the images: the images are the disks again. */
  assert_vmherd (h, 0, "vm 'ioc': snapshot 't1' deleted\n", "", "snapshot", "ioc", "delete", "t1");
  g_assert_false (g_file_test (t1, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (scratch_t1, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (record, G_FILE_TEST_EXISTS));
  g_assert_true (reads (image, "0x11", "0"));
  g_assert_true (reads (image, "0x44", "64k"));
  assert_vmherd (h, 0, "vm 'ioc' has no snapshots\n", "", "snapshot", "ioc", "list");
  assert_vmherd (h, 0, "vm 'ioc': running\n", "", "start", "ioc");
  g_assert_true (runs_with (h, "ioc", "drive=d-data,id=disk-data,"));
}

/* TRUE when QEMU has a block node called name. */
static gboolean
has_node (Host *h, const char *vm, const char *name)
{
  g_autoptr(JsonObject) reply = qmp_call (h, vm, "{\"execute\": \"query-named-block-nodes\", "
                                                 "\"arguments\": {\"flat\": true}}");
  JsonArray *nodes = json_object_get_array_member (reply, "return");

  for (guint i = 0; i < json_array_get_length (nodes); i++)
    if (strcmp (json_object_get_string_member (json_array_get_object_element (nodes, i), "node-name"),
                name) == 0)
      return TRUE;
  return FALSE;
}

/* QEMU refuses a step half-way: the nodes added so far leave QEMU, the files go, nothing
 * is recorded, and the guest writes where it did. */
static void
test_create_undone (void)
{
  Host *h = host_start_images ("img/data.qcow2", "ioc", data_vm, NULL);
  g_autofree char *image = host_path (h, "img/data.qcow2");
  g_autofree char *t1 = host_path (h, "img/data.t1.qcow2");
  g_autofree char *record = host_path (h, "state/snapshots/ioc.json");
  g_autoptr(JsonObject) added = NULL;

  assert_vmherd (h, 0, "vm 'ioc': running\n", "", "start", "ioc");
  /* A node named as the new layer's format node will be: its blockdev-add fails. */
  added = qmp_call (h, "ioc", "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-co\", "
                               "\"node-name\": \"s1d-data\"}}");
  g_assert_true (json_object_has_member (added, "return"));
  assert_vmherd (h, 1, "", "vm 'ioc': snapshot 't1' not taken: QEMU refused blockdev-add: GenericError: "
                 "Duplicate nodes with node-name='s1d-data'\n", "snapshot", "ioc", "create", "t1");
  g_assert_false (has_node (h, "ioc", "s1f-data"));
  g_assert_true (has_node (h, "ioc", "d-data"));
  g_assert_false (g_file_test (t1, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (record, G_FILE_TEST_EXISTS));
  guest_write (h, "ioc", "data", "write -P 0x77 0 64k");
  assert_vmherd (h, 0, "vm 'ioc': stopped\n", "", "stop", "ioc", "--force");
  g_assert_true (reads (image, "0x77", "0"));
}

/* Bad requests, refused before anything is touched. */
static void
test_refusals (void)
{
  Host *h = host_start_images ("img/data.qcow2 img/iso.raw", "ioc", data_vm, "ro", "[vm]\nmemory = 64M\n[disk iso]\n"
                        "image = @/img/iso.raw\nformat = raw\nread-only = yes\n", NULL);
  TestRun r;

  assert_vmherd (h, 1, "", "'a b' is not a valid snapshot tag: it contains ' ' (use letters, digits, '-', '_' and '.')\n",
                 "snapshot", "ioc", "create", "a b");
  assert_vmherd (h, 1, "", "vm 'ioc' has no snapshot 't9' (known: none)\n", "snapshot", "ioc", "delete", "t9");
  assert_vmherd (h, 1, "", "vm 'ioc' is stopped: snapshots of a stopped guest are plain copies: use vmherd "
                 "image clone\n", "snapshot", "ioc", "create", "t1");
  r = test_run_vmherd (h->config, NULL, "snapshot", "nope", "list", NULL);
  g_assert_true (g_str_has_prefix (r.err, "no VM named 'nope' in "));
  g_assert_cmpint (r.status, ==, 1);
  test_run_clear (&r);
  r = test_run_vmherd (h->config, NULL, "snapshot", "ioc", "rename", "t1", NULL);
  g_assert_true (g_str_has_prefix (r.err, "vmherd snapshot: unknown action 'rename'\nusage: vmherd snapshot NAME create TAG\n"));
  g_assert_cmpint (r.status, ==, 2);
  test_run_clear (&r);
  r = test_run_vmherd (h->config, NULL, "snapshot", "ioc", "revert", NULL);
  g_assert_true (g_str_has_prefix (r.err, "usage: vmherd snapshot NAME create TAG\n"));
  g_assert_cmpint (r.status, ==, 2);
  test_run_clear (&r);

  /* A read-only disk is never written: nothing to snapshot. */
  assert_vmherd (h, 0, "vm 'ro': running\n", "", "start", "ro");
  assert_vmherd (h, 1, "", "vm 'ro' has no disk to snapshot (disks with read-only = yes or shared = yes are "
                 "left out)\n", "snapshot", "ro", "create", "t1");
}

/* TRUE when some process holds QEMU's write permission lock (byte 101) on path. */
static gboolean
write_locked (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 101, .l_len = 1 };
  gboolean locked;

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (fcntl (fd, F_OFD_GETLK, &fl), ==, 0);
  locked = fl.l_type != F_UNLCK;
  close (fd);
  return locked;
}

static void
stop_process (gpointer data)
{
  GSubprocess *p = data;

  g_subprocess_force_exit (p);
  g_subprocess_wait (p, NULL, NULL);
  g_object_unref (p);
}

/* Someone else's QEMU writes the image: our start fails, naming the image. */
static void
test_image_held_by_another_qemu (void)
{
  Host *h = host_start_images ("img/data.qcow2", "ioc", data_vm, NULL);
  g_autofree char *image = host_path (h, "img/data.qcow2");
  g_autofree char *file_node = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(GError) error = NULL;
  GSubprocess *other;

  file_node = g_strdup_printf ("{\"driver\":\"file\",\"filename\":\"%s\",\"node-name\":\"f\"}", image);
  other = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error,
                            test_require_qemu (), "-S", "-nodefaults", "-display", "none", "-machine",
                            "q35,accel=tcg", "-m", "32M", "-blockdev", file_node, "-blockdev",
                            "{\"driver\":\"qcow2\",\"file\":\"f\",\"node-name\":\"d\"}", "-device",
                            "virtio-blk-pci,drive=d", NULL);
  g_assert_no_error (error);
  g_test_queue_destroy (stop_process, other);
  test_wait_until (write_locked (image), 10000, "the other QEMU to hold the image's write lock");

  expected = g_strdup_printf ("vm 'ioc' did not start: image %s is in use by another process, probably a "
                              "running QEMU (stop the VM first); QEMU exited with status 1 while starting; "
                              "restart = no\n", image);
  assert_vmherd (h, 1, "", expected, "start", "ioc");
}

/* Two VM files name one image: check says so, and the second guest cannot start while the
 * first one runs. */
static void
test_second_vm_file (void)
{
  Host *h = host_start_images ("img/data.qcow2", "a", data_vm, NULL);
  g_autofree char *image = host_path (h, "img/data.qcow2");
  g_autofree char *b_conf = host_path (h, "vms.d/b.conf");
  g_autofree char *a_conf = host_path (h, "vms.d/a.conf");
  g_auto(GStrv) parts = g_strsplit (data_vm, "@", -1);
  g_autofree char *b_text = g_strjoinv (h->dir, parts);
  g_autofree char *expected = NULL, *summary = NULL, *shared = NULL;
  TestRun r;

  assert_vmherd (h, 0, "vm 'a': running\n", "", "start", "a");
  test_write_file (b_conf, b_text);

  expected = g_strdup_printf ("%s:7: image: %s is already written by another disk (two guests must never "
                              "write one image) (%s:7, VM 'a')\n", b_conf, image, a_conf);
  summary = g_strdup_printf ("2 VM files in %s/vms.d, 1 with problems\n", h->dir);
  assert_vmherd (h, 1, summary, expected, "check");

  /* vmherdd will not define it (the same check): the name is unknown to it. */
  assert_vmherd (h, 0, "reloaded: 1 VMs defined\n", "", "reload");
  r = test_run_vmherd (h->config, NULL, "start", "b", NULL);
  g_assert_true (g_str_has_prefix (r.err, "no VM named 'b' in "));
  g_assert_cmpint (r.status, ==, 1);
  test_run_clear (&r);

  /* Declared shared (so the check lets it through), its QEMU still finds the image's
   * write lock taken by a's, which does not share it. */
  shared = g_strconcat (b_text, "shared = yes\n", NULL);
  test_write_file (b_conf, shared);
  assert_vmherd (h, 0, "reloaded: 2 VMs defined\n", "", "reload");
  g_free (expected);
  expected = g_strdup_printf ("vm 'b' did not start: image %s is in use by another process, probably a "
                              "running QEMU (stop the VM first); QEMU exited with status 1 while starting; "
                              "restart = no\n", image);
  assert_vmherd (h, 1, "", expected, "start", "b");
}

/* Images: a missing image with a base is created as an overlay at the first start, owned
 * by the QEMU user; the guest's writes land in it and the base never changes. */
static char *
file_sha256 (const char *path)
{
  g_autofree char *data = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) data, len);
}

static void
test_overlay_on_first_start (void)
{
  Host *h = host_start_images ("img/base.qcow2", "ioc",
                        "[vm]\nmemory = 64M\nrestart = no\n[health]\npanic = none\n"
                        "[disk data]\nimage = @/img/ioc.qcow2\nformat = qcow2\nbase = @/img/base.qcow2\n",
                        NULL);
  g_autofree char *base = host_path (h, "img/base.qcow2");
  g_autofree char *overlay = host_path (h, "img/ioc.qcow2");
  g_autofree char *before = file_sha256 (base), *after = NULL;
  struct passwd *nobody = getpwnam ("nobody");
  GStatBuf st;

  g_assert_false (g_file_test (overlay, G_FILE_TEST_EXISTS));
  assert_vmherd (h, 0, "vm 'ioc': running\n", "", "start", "ioc");
  g_assert_cmpint (g_stat (overlay, &st), ==, 0);
  g_assert_cmpuint (st.st_uid, ==, nobody->pw_uid);
  g_assert_cmpuint (st.st_mode & 0777, ==, 0600);
  guest_write (h, "ioc", "data", "write -P 0x5a 0 64k");
  assert_vmherd (h, 0, "vm 'ioc': stopped\n", "", "stop", "--force", "ioc");
  after = file_sha256 (base);
  g_assert_cmpstr (after, ==, before);
  g_assert_true (reads (overlay, "0x5a", "0"));
  g_assert_cmpint (sh ("qemu-img info -U %s | grep -q 'backing file: %s'", overlay, base), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/snapshot/record", test_record);
  g_test_add_func ("/snapshot/argv-layers", test_argv_layers);
  if (test_require_qemu () == NULL)
    return g_test_run ();
  g_test_add_func ("/snapshot/create-revert-delete", test_create_revert_delete);
  g_test_add_func ("/snapshot/create-undone", test_create_undone);
  g_test_add_func ("/snapshot/refusals", test_refusals);
  g_test_add_func ("/snapshot/image-held-by-another-qemu", test_image_held_by_another_qemu);
  g_test_add_func ("/snapshot/second-vm-file", test_second_vm_file);
  g_test_add_func ("/images/overlay-on-first-start", test_overlay_on_first_start);
  return g_test_run ();
}
