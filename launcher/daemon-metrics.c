/* daemon-metrics.c: `[daemon] metrics-listen`: GET /metrics in Prometheus text format
 * (version 0.0.4), served by libsoup from the daemon's main loop.
 *
 * Per-VM values come from vm_describe(), the same JSON `vmherd status --json` prints, so
 * the two never disagree; QEMU's CPU time and RSS are read from /proc/PID. */
#include "launcher/daemon-private.h"

#include <libsoup/soup.h>
#include <string.h>
#include <unistd.h>

struct _DaemonMetrics
{
  SoupServer *server;
};

/* One guest, as sampled for a scrape. */
typedef struct
{
  const char *name;             /* borrowed from o */
  JsonObject *o;                /* vm_describe (vm, TRUE) */
  gboolean live;                /* a QEMU pid whose /proc entries were read */
  double cpu_seconds;
  gint64 rss_bytes;
} MetricsVm;

typedef void (*MetricsEmit) (GString *out, const char *metric, const MetricsVm *vm);

typedef struct
{
  const char *name, *type, *help;
  MetricsEmit emit;             /* NULL: one daemon-wide sample, written by the caller */
} MetricsFamily;

/* A label value per the exposition format: backslash, double quote and newline escaped. */
static void
append_label_value (GString *out, const char *value)
{
  for (const char *p = value; *p != '\0'; p++)
    {
      if (*p == '\\')
        g_string_append (out, "\\\\");
      else if (*p == '"')
        g_string_append (out, "\\\"");
      else if (*p == '\n')
        g_string_append (out, "\\n");
      else
        g_string_append_c (out, *p);
    }
}

/* metric{vm="NAME"[,label="value"]} value */
static void
append_sample (GString *out, const char *metric, const char *vm, const char *label,
               const char *label_value, const char *value)
{
  g_string_append_printf (out, "%s{vm=\"", metric);
  append_label_value (out, vm);
  if (label != NULL)
    {
      g_string_append_printf (out, "\",%s=\"", label);
      append_label_value (out, label_value);
    }
  g_string_append_printf (out, "\"} %s\n", value);
}

static void
append_int (GString *out, const char *metric, const char *vm, gint64 value)
{
  char text[32];

  g_snprintf (text, sizeof text, "%" G_GINT64_FORMAT, value);
  append_sample (out, metric, vm, NULL, NULL, text);
}

static const char *
member_string (JsonObject *o, const char *member)
{
  JsonNode *n = json_object_get_member (o, member);

  return n != NULL && JSON_NODE_HOLDS_VALUE (n) ? json_node_get_string (n) : NULL;
}

static void
emit_state (GString *out, const char *metric, const MetricsVm *vm)
{
  const char *state = member_string (vm->o, "state");

  /* One-hot over every state; VM_STATE_MIGRATING is the last one (vm.h). */
  for (VmState s = VM_STATE_STOPPED; s <= VM_STATE_MIGRATING; s++)
    append_sample (out, metric, vm->name, "state", vm_state_to_string (s),
                   g_strcmp0 (state, vm_state_to_string (s)) == 0 ? "1" : "0");
}

static void
emit_up (GString *out, const char *metric, const MetricsVm *vm)
{
  append_int (out, metric, vm->name, g_strcmp0 (member_string (vm->o, "state"), "running") == 0);
}

static void
emit_restarts (GString *out, const char *metric, const MetricsVm *vm)
{
  append_int (out, metric, vm->name, json_object_get_int_member (vm->o, "restarts"));
}

static void
emit_last_failure (GString *out, const char *metric, const MetricsVm *vm)
{
  const char *reason = member_string (vm->o, "last-failure");

  if (reason != NULL)
    append_sample (out, metric, vm->name, "reason", reason, "1");
}

static void
emit_health_checks (GString *out, const char *metric, const MetricsVm *vm)
{
  append_int (out, metric, vm->name, json_object_get_int_member (vm->o, "health-checks"));
}

static void
emit_qmp_misses (GString *out, const char *metric, const MetricsVm *vm)
{
  append_int (out, metric, vm->name, json_object_get_int_member (vm->o, "qmp-misses"));
}

static void
emit_probe_ok (GString *out, const char *metric, const MetricsVm *vm)
{
  JsonArray *probes = json_object_get_array_member (vm->o, "probes");

  for (guint i = 0; i < json_array_get_length (probes); i++)
    {
      JsonObject *p = json_array_get_object_element (probes, i);
      const char *state = member_string (p, "state");

      append_sample (out, metric, vm->name, "probe", member_string (p, "spec"),
                     g_strcmp0 (state, "ok") == 0 ? "1" : "0");
    }
}

static void
emit_probe_latency (GString *out, const char *metric, const MetricsVm *vm)
{
  JsonArray *probes = json_object_get_array_member (vm->o, "probes");

  for (guint i = 0; i < json_array_get_length (probes); i++)
    {
      JsonObject *p = json_array_get_object_element (probes, i);
      char text[G_ASCII_DTOSTR_BUF_SIZE];

      if (json_object_get_null_member (p, "latency-ms"))
        continue;
      g_ascii_formatd (text, sizeof text, "%.6f",
                       json_object_get_double_member (p, "latency-ms") / 1000.0);
      append_sample (out, metric, vm->name, "probe", member_string (p, "spec"), text);
    }
}

/* The guest-agent object of `status`, or NULL with guest-agent = no. */
static JsonObject *
agent_of (const MetricsVm *vm)
{
  JsonNode *n = json_object_get_member (vm->o, "guest-agent");

  return n != NULL && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

static void
emit_agent_ok (GString *out, const char *metric, const MetricsVm *vm)
{
  JsonObject *a = agent_of (vm);

  if (a != NULL)
    append_int (out, metric, vm->name, g_strcmp0 (member_string (a, "state"), "ok") == 0);
}

static void
emit_agent_latency (GString *out, const char *metric, const MetricsVm *vm)
{
  JsonObject *a = agent_of (vm);
  char text[G_ASCII_DTOSTR_BUF_SIZE];

  if (a == NULL || json_object_get_null_member (a, "latency-ms"))
    return;
  g_ascii_formatd (text, sizeof text, "%.6f", json_object_get_double_member (a, "latency-ms") / 1000.0);
  append_sample (out, metric, vm->name, NULL, NULL, text);
}

static void
emit_agent_failures (GString *out, const char *metric, const MetricsVm *vm)
{
  JsonObject *a = agent_of (vm);

  if (a != NULL)
    append_int (out, metric, vm->name, json_object_get_int_member (a, "failures"));
}

static void
emit_watchdog_fired (GString *out, const char *metric, const MetricsVm *vm)
{
  JsonObject *w = json_object_get_object_member (vm->o, "watchdog");

  append_int (out, metric, vm->name, w ? json_object_get_int_member (w, "fired") : 0);
}

/* 1 while the guest is paused for a disk error ("failing" or "stuck"), and while stuck. */
static void
emit_storage (GString *out, const char *metric, const MetricsVm *vm, const char *const *states)
{
  JsonObject *s = json_object_get_object_member (vm->o, "storage");

  append_int (out, metric, vm->name, s != NULL && g_strv_contains (states, member_string (s, "state")));
}

static void
emit_storage_paused (GString *out, const char *metric, const MetricsVm *vm)
{
  static const char *const states[] = { "failing", "stuck", NULL };

  emit_storage (out, metric, vm, states);
}

static void
emit_storage_stuck (GString *out, const char *metric, const MetricsVm *vm)
{
  static const char *const states[] = { "stuck", NULL };

  emit_storage (out, metric, vm, states);
}

static void
emit_storage_outages (GString *out, const char *metric, const MetricsVm *vm)
{
  JsonObject *s = json_object_get_object_member (vm->o, "storage");

  append_int (out, metric, vm->name, s ? json_object_get_int_member (s, "outages") : 0);
}

static void
emit_cpu (GString *out, const char *metric, const MetricsVm *vm)
{
  char text[G_ASCII_DTOSTR_BUF_SIZE];

  if (!vm->live)
    return;
  g_ascii_formatd (text, sizeof text, "%.2f", vm->cpu_seconds);
  append_sample (out, metric, vm->name, NULL, NULL, text);
}

static void
emit_rss (GString *out, const char *metric, const MetricsVm *vm)
{
  if (vm->live)
    append_int (out, metric, vm->name, vm->rss_bytes);
}

static const MetricsFamily families[] = {
  { "vmherd_vm_state", "gauge", "The VM's state: 1 for the current one", emit_state },
  { "vmherd_vm_up", "gauge", "1 when the VM is running", emit_up },
  { "vmherd_vm_restarts_total", "counter", "Automatic restarts of the VM's QEMU", emit_restarts },
  { "vmherd_vm_last_failure_info", "gauge", "Why the VM last failed (absent when it never did)",
    emit_last_failure },
  { "vmherd_vm_qmp_health_checks_total", "counter", "QMP health checks QEMU answered",
    emit_health_checks },
  { "vmherd_vm_qmp_misses", "gauge", "QMP health checks missed in a row", emit_qmp_misses },
  { "vmherd_vm_probe_ok", "gauge", "1 when the [health] probe is ok", emit_probe_ok },
  { "vmherd_vm_probe_latency_seconds", "gauge", "How long the probe's last check took",
    emit_probe_latency },
  { "vmherd_vm_agent_ok", "gauge", "1 when the guest agent answers its pings", emit_agent_ok },
  { "vmherd_vm_agent_latency_seconds", "gauge", "How long the guest agent's last ping took",
    emit_agent_latency },
  { "vmherd_vm_agent_failures", "gauge", "Guest agent pings failed in a row", emit_agent_failures },
  { "vmherd_vm_watchdog_fired_total", "counter", "Times the guest's watchdog fired",
    emit_watchdog_fired },
  { "vmherd_vm_storage_paused", "gauge", "1 while the guest is paused for a disk error",
    emit_storage_paused },
  { "vmherd_vm_storage_stuck", "gauge", "1 while the guest is paused for a disk error longer "
    "than storage-stuck-after", emit_storage_stuck },
  { "vmherd_vm_storage_outages_total", "counter", "Pauses for a disk error since vmherdd started",
    emit_storage_outages },
  { "vmherd_vm_cpu_seconds_total", "counter", "CPU time of the VM's QEMU (user + system)",
    emit_cpu },
  { "vmherd_vm_rss_bytes", "gauge", "Resident memory of the VM's QEMU", emit_rss },
  { "vmherd_daemon_rss_bytes", "gauge", "Resident memory of vmherdd", NULL },
  { "vmherd_migrations_total", "counter", "Live migrations: out (ok, failed) and in (ok)", NULL },
  { "vmherd_migration_last_duration_seconds", "gauge", "Total time of the last guest moved out", NULL },
  { "vmherd_migration_last_downtime_seconds", "gauge",
    "Guest pause of the last guest moved out (STOP here to RESUME there)", NULL },
};

/* The daemon-wide samples of a family without a per-VM emitter. */
static void
emit_daemon (GString *out, Daemon *daemon, const char *metric, gint64 rss)
{
  if (strcmp (metric, "vmherd_daemon_rss_bytes") == 0 && rss >= 0)
    g_string_append_printf (out, "%s %" G_GINT64_FORMAT "\n", metric, rss);
  else if (strcmp (metric, "vmherd_migrations_total") == 0)
    g_string_append_printf (out, "%1$s{direction=\"out\",result=\"ok\"} %2$" G_GUINT64_FORMAT "\n"
                            "%1$s{direction=\"out\",result=\"failed\"} %3$" G_GUINT64_FORMAT "\n"
                            "%1$s{direction=\"in\",result=\"ok\"} %4$" G_GUINT64_FORMAT "\n", metric,
                            daemon->migration_stats.out_ok, daemon->migration_stats.out_failed,
                            daemon->migration_stats.in_ok);
  else if (strcmp (metric, "vmherd_migration_last_duration_seconds") == 0
           && daemon->migration_stats.last_total_ms >= 0)
    g_string_append_printf (out, "%s %.3f\n", metric, daemon->migration_stats.last_total_ms / 1000.0);
  else if (strcmp (metric, "vmherd_migration_last_downtime_seconds") == 0
           && daemon->migration_stats.last_downtime_ms >= 0)
    g_string_append_printf (out, "%s %.3f\n", metric, daemon->migration_stats.last_downtime_ms / 1000.0);
}

/* utime + stime of /proc/PID/stat, in seconds. */
static gboolean
proc_cpu_seconds (const char *pid, double *out_seconds)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/stat", pid);
  g_autofree char *text = NULL;
  g_auto(GStrv) fields = NULL;
  const char *end;

  if (!g_file_get_contents (path, &text, NULL, NULL) || (end = strrchr (text, ')')) == NULL)
    return FALSE;
  /* After "pid (comm)": state is field 3, utime 14 and stime 15. */
  fields = g_strsplit (g_strstrip ((char *) end + 1), " ", -1);
  if (g_strv_length (fields) < 13)
    return FALSE;
  *out_seconds = (double) (g_ascii_strtoull (fields[11], NULL, 10)
                           + g_ascii_strtoull (fields[12], NULL, 10))
                 / (double) sysconf (_SC_CLK_TCK);
  return TRUE;
}

/* VmRSS of /proc/PID/status, in bytes. */
static gboolean
proc_rss_bytes (const char *pid, gint64 *out_bytes)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/status", pid);
  g_autofree char *text = NULL;
  const char *line;

  if (!g_file_get_contents (path, &text, NULL, NULL)
      || (line = strstr (text, "\nVmRSS:")) == NULL)
    return FALSE;
  *out_bytes = g_ascii_strtoll (line + strlen ("\nVmRSS:"), NULL, 10) * 1024;   /* "kB" */
  return TRUE;
}

static void
metrics_vm_sample (MetricsVm *m, Vm *vm)
{
  JsonNode *node = vm_describe (vm, TRUE);
  gint64 pid;

  m->o = json_object_ref (json_node_get_object (node));
  json_node_unref (node);
  m->name = json_object_get_string_member (m->o, "name");
  pid = json_object_get_int_member (m->o, "pid");
  if (pid > 0)
    {
      g_autofree char *p = g_strdup_printf ("%" G_GINT64_FORMAT, pid);
      m->live = proc_cpu_seconds (p, &m->cpu_seconds) && proc_rss_bytes (p, &m->rss_bytes);
    }
}

static gint
compare_vm_names (gconstpointer a, gconstpointer b)
{
  return strcmp (((const MetricsVm *) a)->name, ((const MetricsVm *) b)->name);
}

static char *
metrics_render (Daemon *daemon)
{
  g_autoptr(GArray) vms = g_array_new (FALSE, TRUE, sizeof (MetricsVm));
  GString *out = g_string_new (NULL);
  GHashTableIter iter;
  gpointer vm;
  gint64 rss = 0;

  g_hash_table_iter_init (&iter, daemon->vms);
  while (g_hash_table_iter_next (&iter, NULL, &vm))
    {
      MetricsVm m = { 0 };
      metrics_vm_sample (&m, vm);
      g_array_append_val (vms, m);
    }
  g_array_sort (vms, compare_vm_names);
  if (!proc_rss_bytes ("self", &rss))
    rss = -1;
  /* Every family's samples together, after its HELP and TYPE lines. */
  for (guint f = 0; f < G_N_ELEMENTS (families); f++)
    {
      g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n", families[f].name,
                              families[f].help, families[f].name, families[f].type);
      for (guint i = 0; families[f].emit != NULL && i < vms->len; i++)
        families[f].emit (out, families[f].name, &g_array_index (vms, MetricsVm, i));
      if (families[f].emit == NULL)
        emit_daemon (out, daemon, families[f].name, rss);
    }
  for (guint i = 0; i < vms->len; i++)
    json_object_unref (g_array_index (vms, MetricsVm, i).o);
  return g_string_free (out, FALSE);
}

static void
on_request (SoupServer *server G_GNUC_UNUSED, SoupServerMessage *msg, const char *path,
            GHashTable *query G_GNUC_UNUSED, gpointer data)
{
  Daemon *daemon = data;
  const char *method = soup_server_message_get_method (msg);
  char *body;

  static const char not_found[] = "not found (try /metrics)\n";

  if (strcmp (path, "/metrics") != 0)
    {
      soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
      soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, not_found,
                                        sizeof not_found - 1);
      return;
    }
  if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0)
    {
      soup_server_message_set_status (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
      soup_message_headers_append (soup_server_message_get_response_headers (msg), "Allow",
                                   "GET, HEAD");
      return;
    }
  body = metrics_render (daemon);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, "text/plain; version=0.0.4; charset=utf-8",
                                    SOUP_MEMORY_TAKE, body, strlen (body));
}

static gboolean
metrics_listen (SoupServer *server, const char *listen, GError **error)
{
  g_autofree char *address = NULL;
  g_autoptr(GInetAddress) inet = NULL;
  g_autoptr(GSocketAddress) sockaddr = NULL;
  guint16 port;

  /* host-config.c checked it; this only fails on a HostConfig built by hand. */
  if (!host_listen_parse (listen, &address, &port)
      || (inet = g_inet_address_new_from_string (address)) == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "\"%s\" is not ADDR:PORT",
                   listen);
      return FALSE;
    }
  sockaddr = g_inet_socket_address_new (inet, port);
  return soup_server_listen (server, sockaddr, 0, error);
}

void
daemon_metrics_open (Daemon *daemon)
{
  g_autoptr(GError) error = NULL;
  const char *listen = daemon->host->metrics_listen;
  DaemonMetrics *metrics;

  if (listen == NULL)
    return;
  metrics = g_new0 (DaemonMetrics, 1);
  metrics->server = soup_server_new ("server-header", "vmherdd/" VMHERD_VERSION " ", NULL);
  soup_server_add_handler (metrics->server, NULL, on_request, daemon, NULL);
  if (!metrics_listen (metrics->server, listen, &error))
    {
      g_message ("metrics: cannot listen on %s: %s; running without metrics (fix metrics-listen "
                 "in %s and restart vmherdd)", listen, error->message,
                 daemon->host->path ? daemon->host->path : "the host file");
      daemon_metrics_free (metrics);
      return;
    }
  g_message ("metrics: serving http://%s/metrics", listen);
  daemon->metrics = metrics;
}

void
daemon_metrics_free (DaemonMetrics *metrics)
{
  if (metrics == NULL)
    return;
  if (metrics->server != NULL)
    soup_server_disconnect (metrics->server);
  g_clear_object (&metrics->server);
  g_free (metrics);
}
