/* test-health-storage.c: a storage outage under a real vmherdd and the test guest.  The
 * guest's only disk is served by a real qemu-nbd; the guest writes to it all the time
 * (vmherd.writer).  qemu-nbd killed: QEMU pauses the guest (werror = stop) and the guest
 * sees no I/O error; vmherdd checks the server, reports the guest stuck after
 * storage-stuck-after and never restarts it: not when QEMU stops answering QMP, nor after
 * a kill -9 of vmherdd (the next one adopts the paused guest).  qemu-nbd started again on
 * the same image: vmherdd resumes the guest, its writes go on, and what it wrote before
 * the outage (a random seed, checked by md5 inside the guest) and every block it said it
 * wrote are on the image. */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "launcher/control-proto.h"
#include "tests/harness.h"
#include "tests/test-util.h"

#define IMAGE_BYTES (64 << 20)
#define BOOT_MS 120000
#define WAIT_MS 60000
/* QEMU's NBD client reconnects in the background with a backoff of up to 16 s. */
#define RESUME_MS 90000

typedef struct
{
  char *image, *socket, *pidfile;
} Nbd;

static void
nbd_kill (Nbd *nbd)
{
  g_autofree char *text = NULL;
  pid_t pid;

  if (!g_file_get_contents (nbd->pidfile, &text, NULL, NULL))
    return;
  pid = (pid_t) g_ascii_strtoll (text, NULL, 10);
  g_assert_cmpint (pid, >, 1);
  kill (pid, SIGKILL);
  g_unlink (nbd->pidfile);
}

static void
nbd_free (gpointer data)
{
  Nbd *nbd = data;

  nbd_kill (nbd);
  g_free (nbd->image);
  g_free (nbd->socket);
  g_free (nbd->pidfile);
  g_free (nbd);
}

/* qemu-nbd serving image as export "data" on socket (0777: QEMU runs as nobody), shared by
 * up to 4 clients (QEMU and vmherdd's check) and persistent; returns once it listens. */
static void
nbd_start (Nbd *nbd)
{
  g_autofree char *cmd = g_strdup_printf ("umask 000 && exec qemu-nbd --fork --persistent --shared=4 "
                                          "--format=raw --export-name=data --socket=%s --pid-file=%s %s",
                                          nbd->socket, nbd->pidfile, nbd->image);
  const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
  TestRun r = test_run (argv, NULL);

  g_assert_cmpstr (r.err, ==, "");
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
}

static Nbd *
nbd_new (const char *dir)
{
  Nbd *nbd = g_new0 (Nbd, 1);
  int fd;

  nbd->image = g_build_filename (dir, "data.raw", NULL);
  nbd->socket = g_build_filename (dir, "nbd.sock", NULL);
  nbd->pidfile = g_build_filename (dir, "nbd.pid", NULL);
  fd = open (nbd->image, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, IMAGE_BYTES), ==, 0);
  close (fd);
  g_test_queue_destroy (nbd_free, nbd);
  return nbd;
}

/* GET /metrics from vmherdd's metrics-listen. */
static char *
scrape (guint16 port)
{
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 30, NULL);
  g_autofree char *uri = g_strdup_printf ("http://127.0.0.1:%u/metrics", port);
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", uri);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = NULL;

  soup_session_set_proxy_resolver (session, NULL);   /* never through $http_proxy */
  body = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (msg), ==, 200);
  return g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
}

static void
assert_sample (const char *scraped, const char *sample)
{
  g_autofree char *line = g_strdup_printf ("\n%s\n", sample);

  if (strstr (scraped, line) == NULL)
    g_error ("no line '%s' in the scrape:\n%s", sample, scraped);
}

static const char *
storage_member (JsonObject *st, const char *member)
{
  JsonObject *s = json_object_get_object_member (st, "storage");

  return json_object_get_string_member_with_default (s, member, NULL);
}

static gboolean
storage_checked_and_failed (Host *h, const char *vm)
{
  g_autoptr(JsonObject) st = host_vm_status (h, vm);
  const char *result = storage_member (st, "last-result");

  return result != NULL && strstr (result, "disk data: NBD server ") != NULL;
}

/* The console of the guest, through vmherdd. */
static ControlClient *
console_attach (Host *h, const char *name, int *out_fd)
{
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(GError) error = NULL;
  ControlClient *c = control_client_connect (h->socket, &error);

  g_assert_no_error (error);
  json_object_set_string_member (args, "vm", name);
  ret = control_client_call (c, "console", args, 5000, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  *out_fd = control_client_get_fd (c);
  g_assert_cmpint (write (*out_fd, "", 1), ==, 1);   /* the 0x00 that starts the stream */
  return c;
}

/* The console once the guest wrote 3 blocks; the text so far in seen. */
static ControlClient *
console_ready (Host *h, const char *name, int *out_fd, GString *seen)
{
  ControlClient *c = console_attach (h, name, out_fd);
  g_autofree char *text = read_until (*out_fd, "vmherd-wrote 3\r\n", BOOT_MS);

  g_string_append (seen, text);
  return c;
}

/* The highest N of "vmherd-wrote N" in text. */
static guint
last_wrote (const char *text)
{
  guint last = 0;

  for (const char *p = strstr (text, "vmherd-wrote "); p != NULL; p = strstr (p + 1, "vmherd-wrote "))
    last = MAX (last, (guint) g_ascii_strtoull (p + strlen ("vmherd-wrote "), NULL, 10));
  return last;
}

/* The 32 hex digits after marker in text, or NULL. */
static char *
md5_after (const char *text, const char *marker)
{
  for (const char *p = strstr (text, marker); p != NULL; p = strstr (p + 1, marker))
    {
      const char *h = p + strlen (marker);
      if (strspn (h, "0123456789abcdef") == 32)
        return g_strndup (h, 32);
    }
  return NULL;
}

static void
assert_no_guest_io_error (const char *text)
{
  g_assert_null (strstr (text, "vmherd-writer error"));
  g_assert_null (strstr (text, "I/O error"));
  g_assert_null (strstr (text, "Buffer I/O"));
}

/* Every block the guest said it wrote, and the seed, are on the image. */
static void
assert_image_holds (const char *image, guint last, const char *seed_md5)
{
  g_autofree char *bytes = NULL;
  g_autofree char *seed = NULL;
  gsize length;

  g_assert_true (g_file_get_contents (image, &bytes, &length, NULL));
  g_assert_cmpuint (length, ==, IMAGE_BYTES);
  seed = g_compute_checksum_for_data (G_CHECKSUM_MD5, (const guchar *) bytes, 65536);
  g_assert_cmpstr (seed, ==, seed_md5);
  for (guint n = 1; n <= last; n++)
    {
      char expected[32];

      g_snprintf (expected, sizeof expected, "vmherd-block %08u\n", n);
      if (memcmp (bytes + (gsize) 4096 * (16 + n), expected, strlen (expected)) != 0)
        g_error ("block %u that the guest wrote is not on the image", n);
    }
}

/* One guest writing to its NBD disk, and what the test learnt of it so far. */
typedef struct
{
  Host *h;
  Nbd *nbd;
  guint16 metrics_port;
  ControlClient *events, *console;
  int fd;                       /* the console's */
  GString *seen;                /* what the console showed */
  char *seed;                   /* md5 of the writer's seed */
  pid_t pid;
} Outage;

static void
outage_clear (Outage *o)
{
  g_clear_pointer (&o->events, control_client_free);
  g_clear_pointer (&o->console, control_client_free);
  g_string_free (o->seen, TRUE);
  g_free (o->seed);
}

static void
outage_start (Outage *o, const char *kernel, const char *initrd)
{
  g_autofree char *extra = NULL, *vm = NULL;
  g_autoptr(JsonObject) st = NULL;

  o->metrics_port = test_free_port ();
  extra = g_strdup_printf ("metrics-listen = 127.0.0.1:%u\n", o->metrics_port);
  o->h = host_new (extra);
  o->nbd = nbd_new (o->h->dir);
  nbd_start (o->nbd);
  vm = g_strdup_printf ("[vm]\nmemory = 256M\n[kernel]\npath = %s\ninitrd = %s\n"
                        "append = console=ttyS0 quiet vmherd.writer=vda\n"
                        "[disk data]\nimage = nbd+unix:///data?socket=%s\nformat = raw\n"
                        "[health]\npanic = none\nqmp-interval = 1s\nqmp-timeout = 3s\nqmp-failures = 2\n"
                        "storage-interval = 500ms\nstorage-timeout = 2s\nstorage-stuck-after = 3s\n",
                        kernel, initrd, o->nbd->socket);
  host_add_vm (o->h, "st", vm);
  host_restart_daemon (o->h);
  o->events = host_subscribe_events (o->h);
  start_vm (o->h, "st");
  o->seen = g_string_new (NULL);
  o->console = console_ready (o->h, "st", &o->fd, o->seen);
  o->seed = md5_after (o->seen->str, "vmherd-writer seed ");
  g_assert_nonnull (o->seed);
  st = host_vm_status (o->h, "st");
  g_assert_cmpstr (storage_member (st, "state"), ==, "ok");
  o->pid = (pid_t) json_object_get_int_member (st, "pid");
}

/* The server dies while the guest writes: paused (not failed), then reported stuck. */
static void
outage_pause (Outage *o)
{
  g_autoptr(JsonObject) failing = NULL, paused = NULL, stuck = NULL, st = NULL;
  g_autofree char *m = NULL;
  TestRun r;

  nbd_kill (o->nbd);
  failing = host_expect_event (o->events, WAIT_MS, "STORAGE", "vm", "st", "state", "failing", NULL);
  g_assert_cmpstr (json_object_get_string_member (failing, "disk"), ==, "data");
  g_assert_nonnull (strstr (json_object_get_string_member (failing, "reason"),
                            "disk data: write: Input/output error; the guest is paused"));
  paused = host_expect_event (o->events, WAIT_MS, "STATE", "vm", "st", "state", "paused", NULL);
  g_assert_true (g_str_has_prefix (json_object_get_string_member (paused, "reason"),
                                   "a disk I/O error on d-data (write: Input/output error)"));
  test_wait_until (storage_checked_and_failed (o->h, "st"), WAIT_MS, "a failed storage check");
  stuck = host_expect_event (o->events, WAIT_MS, "STORAGE", "vm", "st", "state", "stuck", NULL);
  g_assert_nonnull (strstr (json_object_get_string_member (stuck, "reason"),
                            "storage stuck (last check: disk data: NBD server "));

  st = host_vm_status (o->h, "st");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "paused");
  g_assert_cmpstr (json_object_get_string_member (st, "health"), ==, "storage-stuck");
  g_assert_cmpstr (storage_member (st, "state"), ==, "stuck");
  g_assert_cmpstr (storage_member (st, "disk"), ==, "data");
  g_assert_cmpstr (storage_member (st, "error"), ==, "write: Input/output error");
  g_assert_nonnull (storage_member (st, "since"));
  g_assert_nonnull (storage_member (st, "last-check"));
  g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, o->pid);
  r = test_run_vmherd (o->h->config, NULL, "status", "st", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "\nstorage         stuck since "));
  g_assert_nonnull (strstr (r.out, ": disk data (write: Input/output error), last check "));
  test_run_clear (&r);
  r = test_run_vmherd (o->h->config, NULL, "list", NULL);
  g_assert_nonnull (strstr (r.out, "storage-stuck"));
  test_run_clear (&r);
  m = scrape (o->metrics_port);
  assert_sample (m, "vmherd_vm_storage_paused{vm=\"st\"} 1");
  assert_sample (m, "vmherd_vm_storage_stuck{vm=\"st\"} 1");
  assert_sample (m, "vmherd_vm_storage_outages_total{vm=\"st\"} 1");
  assert_sample (m, "vmherd_vm_state{vm=\"st\",state=\"paused\"} 1");
}

static gint64
qmp_misses (Host *h, const char *vm)
{
  g_autoptr(JsonObject) st = host_vm_status (h, vm);

  return json_object_get_int_member (st, "qmp-misses");
}

/* QEMU stops answering QMP while paused for the disk (as one blocked on a hung NFS
 * server would; here a SIGSTOP): qmp-failures misses, yet not killed. */
static void
outage_qmp_silent (Outage *o)
{
  g_autofree char *log_path = g_build_filename (o->h->dir, "log", "st.log", NULL);
  g_autofree char *log_text = NULL;
  g_autoptr(JsonObject) st = NULL;

  g_assert_cmpint (kill (o->pid, SIGSTOP), ==, 0);
  test_wait_until (qmp_misses (o->h, "st") >= 3, WAIT_MS, "3 missed QMP checks");
  st = host_vm_status (o->h, "st");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "paused");
  g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, o->pid);
  g_assert_true (g_str_has_prefix (json_object_get_string_member (st, "qmp-last-result"), "missed: "));
  log_text = test_read_file (log_path);
  g_assert_nonnull (strstr (log_text, "vmherd: QEMU does not answer QMP while paused for a disk "
                            "error (2 query-status missed; blocked on the storage?); not killed\n"));
  g_assert_null (strstr (log_text, "-> stopping"));
  g_assert_cmpint (kill (o->pid, SIGCONT), ==, 0);
  test_wait_until (qmp_misses (o->h, "st") == 0, WAIT_MS, "QMP answering again");
}

/* vmherdd killed and started again while the guest is paused: the new one adopts the
 * paused QEMU, sees run state io-error, and checks the storage itself; nothing restarted. */
static void
outage_adopt (Outage *o)
{
  g_autofree char *log_path = g_build_filename (o->h->dir, "log", "st.log", NULL);
  g_autofree char *log_text = NULL;
  g_autoptr(JsonObject) st = NULL;

  g_clear_pointer (&o->events, control_client_free);
  g_clear_pointer (&o->console, control_client_free);
  host_kill_daemon (o->h);
  host_restart_daemon (o->h);
  o->events = host_subscribe_events (o->h);
  /* The new daemon's STORAGE event may come before the subscription: its status and log
   * tell the same. */
  test_wait_until (storage_checked_and_failed (o->h, "st"), WAIT_MS,
                   "a failed storage check after the adoption");
  st = host_vm_status (o->h, "st");
  g_assert_cmpstr (storage_member (st, "state"), !=, "ok");
  g_assert_null (storage_member (st, "disk"));   /* QEMU's run state does not say which */
  log_text = test_read_file (log_path);
  g_assert_nonnull (strstr (log_text, "a disk: run state io-error; the guest is paused (never restarted)"));
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "paused");
  g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, o->pid);
  o->console = console_attach (o->h, "st", &o->fd);
}

/* Reads the console until the guest wrote 3 more blocks than the first it reports. */
static void
read_three_writes (Outage *o)
{
  g_autofree char *first = read_until (o->fd, "vmherd-wrote ", WAIT_MS);
  g_autoptr(GString) got = g_string_new (first);
  g_autofree char *marker = NULL;
  gint64 deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;
  const char *p;

  while (strchr (strstr (got->str, "vmherd-wrote "), '\n') == NULL)
    {
      g_autofree char *more = read_until (o->fd, "\n", WAIT_MS);
      g_string_append (got, more);
    }
  p = strstr (got->str, "vmherd-wrote ") + strlen ("vmherd-wrote ");
  marker = g_strdup_printf ("vmherd-wrote %u\r\n", (guint) g_ascii_strtoull (p, NULL, 10) + 3);
  while (strstr (got->str, marker) == NULL)
    {
      g_autofree char *more = NULL;

      if (g_get_monotonic_time () > deadline)
        g_error ("no '%s' within %d ms; got: %s", marker, WAIT_MS, got->str);
      more = read_until (o->fd, "\n", WAIT_MS);
      g_string_append (got, more);
    }
  g_string_append (o->seen, got->str);
}

/* The server is back on the same image: resumed, the writes go on. */
static void
outage_resume (Outage *o)
{
  g_autoptr(JsonObject) ok = NULL, st = NULL;
  g_autofree char *m = NULL;
  JsonObject *s;

  nbd_start (o->nbd);
  ok = host_expect_event (o->events, RESUME_MS, "STORAGE", "vm", "st", "state", "ok", NULL);
  g_assert_nonnull (strstr (json_object_get_string_member (ok, "reason"), "the storage answers again"));
  st = host_vm_status (o->h, "st");
  g_assert_cmpstr (json_object_get_string_member (st, "state"), ==, "running");
  g_assert_cmpint (json_object_get_int_member (st, "pid"), ==, o->pid);
  g_assert_cmpint (json_object_get_int_member (st, "restarts"), ==, 0);
  g_assert_nonnull (json_object_get_string_member (st, "qmp-last-check"));
  g_assert_cmpstr (json_object_get_string_member (st, "qmp-last-result"), ==, "ok");
  s = json_object_get_object_member (st, "storage");
  g_assert_cmpstr (json_object_get_string_member (s, "state"), ==, "ok");
  g_assert_cmpstr (json_object_get_string_member (s, "last-result"), ==, "ok");
  g_assert_cmpint (json_object_get_int_member (s, "outages"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (s, "resumes"), >=, 1);
  g_assert_cmpint (json_object_get_int_member (s, "last-outage-ms"), >, 0);
  m = scrape (o->metrics_port);
  assert_sample (m, "vmherd_vm_storage_paused{vm=\"st\"} 0");
  assert_sample (m, "vmherd_vm_storage_stuck{vm=\"st\"} 0");
  assert_sample (m, "vmherd_vm_storage_outages_total{vm=\"st\"} 1");
  read_three_writes (o);
}

/* Nothing lost: the seed reads back the same inside the guest; no I/O error ever reached
 * it; with QEMU gone, the seed and every block it said it wrote are on the image. */
static void
outage_verify (Outage *o)
{
  const char *cmd = "echo vmherd-sum $(dd if=/dev/vda bs=65536 count=1 iflag=direct 2>/dev/null | md5sum)\n";
  g_autofree char *sum = NULL, *serial_path = NULL, *serial = NULL;
  guint wrote;
  gint64 deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;
  TestRun r;

  g_assert_cmpint (write (o->fd, cmd, strlen (cmd)), ==, (gssize) strlen (cmd));
  while ((sum = md5_after (o->seen->str, "vmherd-sum ")) == NULL)
    {
      g_autofree char *more = NULL;

      if (g_get_monotonic_time () > deadline)
        g_error ("no checksum from the guest within %d ms", WAIT_MS);
      more = read_until (o->fd, "\n", WAIT_MS);
      g_string_append (o->seen, more);
    }
  g_assert_cmpstr (sum, ==, o->seed);
  assert_no_guest_io_error (o->seen->str);
  serial_path = g_build_filename (o->h->dir, "log", "st.serial.log", NULL);
  serial = test_read_file (serial_path);
  assert_no_guest_io_error (serial);

  wrote = last_wrote (o->seen->str);
  r = test_run_vmherd (o->h->config, NULL, "stop", "--force", "st", NULL);
  g_assert_cmpint (r.status, ==, 0);
  test_run_clear (&r);
  nbd_kill (o->nbd);
  assert_image_holds (o->nbd->image, wrote, o->seed);
}

static void
test_nbd_outage (void)
{
  g_autofree char *nbd_path = g_find_program_in_path ("qemu-nbd");
  g_autofree char *kernel = NULL, *initrd = NULL;
  Outage o = { 0 };

  if (!test_require_guest (&kernel, &initrd))
    return;
  if (nbd_path == NULL)
    {
      test_skip_or_fail ("VMHERD_TEST_REQUIRE_QEMU", "no qemu-nbd in PATH (apt-get install qemu-utils)");
      return;
    }
  outage_start (&o, kernel, initrd);
  outage_pause (&o);
  outage_qmp_silent (&o);
  outage_adopt (&o);
  outage_resume (&o);
  outage_verify (&o);
  outage_clear (&o);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (test_require_qemu () == NULL)
    return g_test_run ();
  g_test_add_func ("/health-storage/nbd-outage", test_nbd_outage);
  return g_test_run ();
}
