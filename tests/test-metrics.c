/* test-metrics.c: `[daemon] metrics-listen`: a real vmherdd with two BIOS-only guests (one
 * running, one stopped), scraped over HTTP by libsoup's client; the values are checked
 * against `status` on the control socket (what `vmherd status --json` prints).  Also: a
 * port already taken leaves the daemon running without metrics. */
#include <gio/gio.h>
#include <libsoup/soup.h>
#include <string.h>

#include "launcher/control-proto.h"
#include "tests/harness.h"
#include "tests/test-util.h"

#define CALL_TIMEOUT_MS 30000
#define WAIT_MS 30000

#define BIOS "[vm]\nmemory = 64M\n[health]\npanic = none\nqmp-interval = 200ms\n"

/* GET http://127.0.0.1:port/path; the body, and the status and content type. */
static char *
http_get (guint16 port, const char *path, guint *out_status, char **out_type)
{
  g_autoptr(SoupSession) session = soup_session_new_with_options ("timeout", 30, NULL);
  g_autofree char *uri = g_strdup_printf ("http://127.0.0.1:%u%s", port, path);
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", uri);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = NULL;
  const char *type;
  char *text;

  soup_session_set_proxy_resolver (session, NULL);   /* never through $http_proxy */
  body = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  text = g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
  g_test_message ("GET %s: %s", path, text);
  *out_status = soup_message_get_status (msg);
  type = soup_message_headers_get_one (soup_message_get_response_headers (msg), "Content-Type");
  *out_type = g_strdup (type ? type : "");
  return text;
}

/* "name{labels}" -> value, every sample of a scrape; checks each family has HELP and TYPE
 * before its samples. */
static GHashTable *
scrape (guint16 port)
{
  g_autofree char *type = NULL;
  guint status;
  g_autofree char *text = http_get (port, "/metrics", &status, &type);
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  GHashTable *samples = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autofree char *family = NULL;

  g_assert_cmpuint (status, ==, 200);
  g_assert_true (g_str_has_prefix (type, "text/plain; version=0.0.4"));
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *line = lines[i];
      const char *space = strrchr (line, ' ');

      if (line[0] == '\0')
        continue;
      if (g_str_has_prefix (line, "# HELP "))
        {
          g_free (family);
          family = g_strndup (line + 7, strcspn (line + 7, " "));
          g_assert_true (g_str_has_prefix (lines[i + 1], "# TYPE "));
          continue;
        }
      if (g_str_has_prefix (line, "# TYPE "))
        continue;
      g_assert_nonnull (space);
      g_assert_nonnull (family);
      g_assert_true (g_str_has_prefix (line, family));
      g_assert_true (g_str_has_prefix (line, "vmherd_"));
      g_hash_table_insert (samples, g_strndup (line, (gsize) (space - line)), g_strdup (space + 1));
    }
  return samples;
}

static double
sample (GHashTable *samples, const char *key)
{
  const char *value = g_hash_table_lookup (samples, key);

  if (value == NULL)
    g_error ("no sample %s in the scrape", key);
  return g_ascii_strtod (value, NULL);
}

static JsonObject *
vm_status (ControlClient *ctl, const char *vm)
{
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(GError) error = NULL;
  JsonNode *ret;
  JsonObject *o;

  json_object_set_string_member (args, "vm", vm);
  ret = control_client_call (ctl, "status", args, CALL_TIMEOUT_MS, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (ret));
  o = json_object_ref (json_node_get_object (ret));
  json_node_unref (ret);
  return o;
}

static gboolean
probe_ok (ControlClient *ctl)
{
  g_autoptr(JsonObject) o = vm_status (ctl, "a");
  JsonArray *probes = json_object_get_array_member (o, "probes");
  JsonObject *p = json_array_get_object_element (probes, 0);

  return g_strcmp0 (control_json_get_string (p, "state"), "ok") == 0;
}

static gint64
health_checks (ControlClient *ctl)
{
  g_autoptr(JsonObject) o = vm_status (ctl, "a");

  return json_object_get_int_member (o, "health-checks");
}

static void
test_scrape (void)
{
  guint16 port = test_free_port ();
  g_autofree char *extra = g_strdup_printf ("metrics-listen = 127.0.0.1:%u\n", port);
  g_autoptr(GError) error = NULL;
  g_autoptr(ControlClient) ctl = NULL;
  g_autoptr(JsonObject) a = NULL;
  g_autoptr(JsonObject) b = NULL;
  g_autoptr(GHashTable) m = NULL;
  g_autofree char *type = NULL;
  g_autofree char *not_found = NULL;
  guint status;
  Host *h;

  if (test_require_qemu () == NULL)
    return;
  h = host_start_with (extra, "a", BIOS "probe = exec:/bin/true interval=200ms grace=0\n",
                       "b", BIOS, NULL);
  ctl = control_client_connect (h->socket, &error);
  g_assert_no_error (error);
  start_vm (h, "a");
  test_wait_until (probe_ok (ctl), WAIT_MS, "probe exec:/bin/true ok");
  test_wait_until (health_checks (ctl) >= 1, WAIT_MS, "a QMP health check answered");

  a = vm_status (ctl, "a");
  b = vm_status (ctl, "b");
  m = scrape (port);

  g_assert_cmpfloat (sample (m, "vmherd_vm_up{vm=\"a\"}"), ==, 1);
  g_assert_cmpfloat (sample (m, "vmherd_vm_up{vm=\"b\"}"), ==, 0);
  g_assert_cmpfloat (sample (m, "vmherd_vm_state{vm=\"a\",state=\"running\"}"), ==, 1);
  g_assert_cmpfloat (sample (m, "vmherd_vm_state{vm=\"a\",state=\"stopped\"}"), ==, 0);
  g_assert_cmpfloat (sample (m, "vmherd_vm_state{vm=\"b\",state=\"stopped\"}"), ==, 1);
  g_assert_cmpfloat (sample (m, "vmherd_vm_restarts_total{vm=\"a\"}"), ==,
                     json_object_get_int_member (a, "restarts"));
  g_assert_cmpfloat (sample (m, "vmherd_vm_restarts_total{vm=\"b\"}"), ==,
                     json_object_get_int_member (b, "restarts"));
  g_assert_cmpfloat (sample (m, "vmherd_vm_qmp_health_checks_total{vm=\"a\"}"), >=,
                     json_object_get_int_member (a, "health-checks"));
  g_assert_cmpfloat (sample (m, "vmherd_vm_qmp_misses{vm=\"a\"}"), ==,
                     json_object_get_int_member (a, "qmp-misses"));
  g_assert_cmpfloat (sample (m, "vmherd_vm_watchdog_fired_total{vm=\"a\"}"), ==, 0);
  g_assert_cmpfloat (sample (m, "vmherd_vm_probe_ok{vm=\"a\",probe=\"exec:/bin/true\"}"), ==, 1);
  g_assert_cmpfloat (sample (m, "vmherd_vm_probe_latency_seconds{vm=\"a\",probe=\"exec:/bin/true\"}"),
                     >, 0);
  g_assert_cmpfloat (sample (m, "vmherd_vm_cpu_seconds_total{vm=\"a\"}"), >, 0);
  g_assert_cmpfloat (sample (m, "vmherd_vm_rss_bytes{vm=\"a\"}"), >, 1024 * 1024);
  g_assert_false (g_hash_table_contains (m, "vmherd_vm_cpu_seconds_total{vm=\"b\"}"));
  g_assert_false (g_hash_table_contains (m, "vmherd_vm_rss_bytes{vm=\"b\"}"));
  g_assert_true (json_object_get_null_member (b, "last-failure"));
  g_assert_cmpfloat (sample (m, "vmherd_daemon_rss_bytes"), >, 1024 * 1024);

  not_found = http_get (port, "/other", &status, &type);
  g_assert_cmpuint (status, ==, 404);
}

/* The port is taken: the daemon says so and runs on, answering its control socket. */
static void
test_bind_error (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketListener) taken = g_socket_listener_new ();
  guint16 port = g_socket_listener_add_any_inet_port (taken, NULL, &error);
  g_autofree char *extra = g_strdup_printf ("metrics-listen = 127.0.0.1:%u\n", port);
  g_autofree char *log_path = NULL;
  g_autofree char *log = NULL;
  TestRun r;
  Host *h;

  g_assert_no_error (error);
  if (test_require_qemu () == NULL)
    return;
  h = host_start_with (extra, "b", BIOS, NULL);
  r = test_run_vmherd (h->config, NULL, "list", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "b"));
  test_run_clear (&r);
  log_path = g_build_filename (h->dir, "vmherdd.log", NULL);
  log = test_read_file (log_path);
  g_assert_nonnull (strstr (log, "metrics: cannot listen on 127.0.0.1:"));
  g_assert_nonnull (strstr (log, "running without metrics"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/metrics/scrape", test_scrape);
  g_test_add_func ("/metrics/bind-error", test_bind_error);
  return g_test_run ();
}
