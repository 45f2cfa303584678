/* ctl-daemon.c: the vmherd commands that ask vmherdd (list, status, start, stop, ...). */
#include "launcher/ctl.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "launcher/control-proto.h"
#include "launcher/host-config.h"

#define CALL_TIMEOUT_MS 10000

static char *
control_socket_path (CtlContext *ctx)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = NULL;

  if (g_getenv ("VMHERD_CONTROL_SOCKET") != NULL)
    return g_strdup (g_getenv ("VMHERD_CONTROL_SOCKET"));
  host = host_config_load (ctx->config_path, errors);
  if (host == NULL)
    {
      config_errors_print (errors, stderr);
      return NULL;
    }
  return g_strdup (host->control_socket);
}

JsonNode *
ctl_call (CtlContext *ctx, const char *command, JsonObject *args, guint timeout_ms,
          CtlLineFunc on_line, gpointer line_data, int *out_status)
{
  g_autofree char *path = control_socket_path (ctx);
  g_autoptr(ControlClient) client = NULL;
  g_autoptr(GError) error = NULL;
  JsonNode *ret;

  *out_status = CTL_EXIT_FAILED;
  if (path == NULL)
    return NULL;
  client = control_client_connect (path, &error);
  if (client == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      *out_status = CTL_EXIT_UNREACHABLE;
      return NULL;
    }
  ret = control_client_call (client, command, args, timeout_ms, on_line, line_data, NULL, &error);
  if (on_line != NULL)
    on_line (NULL, line_data);  /* the end: a progress line on a terminal is finished */
  if (ret == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      /* The daemon went away mid-call: as unreachable.  A refusal, a timeout or a garbled
       * answer: the operation failed. */
      if (g_error_matches (error, CONTROL_ERROR, CONTROL_ERROR_DISCONNECTED))
        *out_status = CTL_EXIT_UNREACHABLE;
      return NULL;
    }
  *out_status = CTL_EXIT_OK;
  return ret;
}

static JsonNode *
call (CtlContext *ctx, const char *command, JsonObject *args, guint timeout_ms, int *out_status)
{
  return ctl_call (ctx, command, args, timeout_ms, NULL, NULL, out_status);
}

void
ctl_print_json (JsonNode *node)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, node);
  text = json_generator_to_data (gen, NULL);
  printf ("%s\n", text);
}

/* Parses "NAME [--json] [--force] [--timeout S] [-f]"-style arguments. */
typedef struct
{
  const char *name;
  gboolean json, force, follow;
  gint64 timeout;
} CtlArgs;

static gboolean
parse_args (int argc, char **argv, gboolean want_name, CtlArgs *out)
{
  *out = (CtlArgs) { .timeout = -1 };
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--json") == 0)
        out->json = TRUE;
      else if (strcmp (argv[i], "--force") == 0)
        out->force = TRUE;
      else if (strcmp (argv[i], "-f") == 0 || strcmp (argv[i], "--follow") == 0)
        out->follow = TRUE;
      else if (strcmp (argv[i], "--timeout") == 0 && i + 1 < argc)
        {
          if (!g_ascii_string_to_signed (argv[++i], 10, 0, 86400, &out->timeout, NULL))
            return FALSE;
        }
      else if (argv[i][0] != '-' && want_name && out->name == NULL)
        out->name = argv[i];
      else
        return FALSE;
    }
  return !want_name || out->name != NULL;
}

static JsonObject *
vm_args (const CtlArgs *a)
{
  JsonObject *args = json_object_new ();

  if (a->name != NULL)
    json_object_set_string_member (args, "vm", a->name);
  if (a->force)
    json_object_set_boolean_member (args, "force", TRUE);
  if (a->timeout >= 0)
    json_object_set_int_member (args, "timeout", a->timeout);
  return args;
}

static char *
format_uptime (gint64 s)
{
  if (s <= 0)
    return g_strdup ("-");
  if (s < 3600)
    return g_strdup_printf ("%" G_GINT64_FORMAT "m%02" G_GINT64_FORMAT "s", s / 60, s % 60);
  if (s < 86400)
    return g_strdup_printf ("%" G_GINT64_FORMAT "h%02" G_GINT64_FORMAT "m", s / 3600, s / 60 % 60);
  return g_strdup_printf ("%" G_GINT64_FORMAT "d%02" G_GINT64_FORMAT "h", s / 86400, s / 3600 % 24);
}

int
ctl_cmd_list (CtlContext *ctx, int argc, char **argv)
{
  CtlArgs a;
  int status;
  g_autoptr(JsonNode) ret = NULL;
  JsonArray *list;

  if (!parse_args (argc, argv, FALSE, &a))
    return ctl_usage (ctx, "list");
  ret = call (ctx, "list", NULL, CALL_TIMEOUT_MS, &status);
  if (ret == NULL || !JSON_NODE_HOLDS_ARRAY (ret))
    return status ? status : CTL_EXIT_FAILED;
  if (a.json)
    {
      ctl_print_json (ret);
      return CTL_EXIT_OK;
    }
  list = json_node_get_array (ret);
  printf ("%-20s %-9s %8s %9s %7s %8s %-10s\n", "NAME", "STATE", "PID", "UPTIME", "MEMORY",
          "RESTARTS", "HEALTH");
  for (guint i = 0; i < json_array_get_length (list); i++)
    {
      JsonObject *o = json_array_get_object_element (list, i);
      g_autofree char *up = format_uptime (json_object_get_int_member (o, "uptime"));
      g_autofree char *mem = g_strdup_printf ("%" G_GINT64_FORMAT "M",
                                              json_object_get_int_member (o, "memory") >> 20);
      gint64 pid = json_object_get_int_member (o, "pid");
      g_autofree char *pid_text = pid > 0 ? g_strdup_printf ("%" G_GINT64_FORMAT, pid) : g_strdup ("-");

      printf ("%-20s %-9s %8s %9s %7s %8" G_GINT64_FORMAT " %-10s\n",
              json_object_get_string_member (o, "name"), json_object_get_string_member (o, "state"),
              pid_text, up, mem, json_object_get_int_member (o, "restarts"),
              json_object_get_string_member (o, "health"));
    }
  return CTL_EXIT_OK;
}

static void
print_member (JsonObject *o G_GNUC_UNUSED, const char *key, JsonNode *value,
              gpointer data G_GNUC_UNUSED)
{
  if (strcmp (key, "qemu-stderr") == 0)
    return;                     /* several lines: a block of its own */
  if (JSON_NODE_HOLDS_VALUE (value))
    {
      GValue v = G_VALUE_INIT;
      json_node_get_value (value, &v);
      g_autofree char *text = G_VALUE_HOLDS_STRING (&v) ? g_value_dup_string (&v)
                                                        : g_strdup_value_contents (&v);
      printf ("%-15s %s\n", key, text);
      g_value_unset (&v);
    }
  else if (JSON_NODE_HOLDS_NULL (value))
    printf ("%-15s -\n", key);
}

/* One line per [health] probe: state, failures in a row, last check, latency, error. */
static void
print_probes (JsonArray *probes)
{
  printf ("probes\n");
  for (guint i = 0; i < json_array_get_length (probes); i++)
    {
      JsonObject *p = json_array_get_object_element (probes, i);
      const char *when = json_object_get_string_member_with_default (p, "last-time", NULL);
      const char *error = json_object_get_string_member_with_default (p, "last-error", NULL);
      g_autofree char *latency = json_object_get_null_member (p, "latency-ms")
        ? g_strdup ("-")
        : g_strdup_printf ("%.1fms", json_object_get_double_member (p, "latency-ms"));

      printf ("  %-8s failures %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT "  last %s  latency %s  %s%s%s%s\n",
              json_object_get_string_member (p, "state"),
              json_object_get_int_member (p, "failures"),
              json_object_get_int_member (p, "failures-before-action"), when ? when : "-",
              latency, json_object_get_string_member (p, "spec"),
              error ? " (" : "", error ? error : "", error ? ")" : "");
    }
}

/* The guest agent check of guest-agent = yes, on one line like a probe. */
static void
print_agent (JsonObject *a)
{
  const char *when = json_object_get_string_member_with_default (a, "last-time", NULL);
  const char *error = json_object_get_string_member_with_default (a, "last-error", NULL);
  g_autofree char *latency = json_object_get_null_member (a, "latency-ms")
    ? g_strdup ("-")
    : g_strdup_printf ("%.1fms", json_object_get_double_member (a, "latency-ms"));

  const char *port = json_object_get_null_member (a, "port-open") ? "-"
                     : json_object_get_boolean_member (a, "port-open") ? "open" : "closed";

  printf ("%-15s %s, failures %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT "  last %s  latency %s"
          "  port %s  action %s%s%s%s\n", "guest-agent", json_object_get_string_member (a, "state"),
          json_object_get_int_member (a, "failures"),
          json_object_get_int_member (a, "failures-before-action"), when ? when : "-", latency,
          port, json_object_get_string_member (a, "action"), error ? " (" : "", error ? error : "",
          error ? ")" : "");
}

/* The guest's watchdog (one line) and its latest panic with the serial log's tail. */
static void
print_guest_health (JsonObject *o)
{
  JsonObject *w = json_object_has_member (o, "watchdog")
                  ? json_object_get_object_member (o, "watchdog") : NULL;
  JsonObject *p = json_object_has_member (o, "last-panic")
                  ? json_object_get_object_member (o, "last-panic") : NULL;

  if (w != NULL && json_object_get_int_member_with_default (w, "fired", 0) > 0)
    printf ("%-15s %s, fired %" G_GINT64_FORMAT " times, last %s (action %s)\n", "watchdog",
            json_object_get_string_member_with_default (w, "action", "?"),
            json_object_get_int_member (w, "fired"),
            json_object_get_string_member_with_default (w, "last", "?"),
            json_object_get_string_member_with_default (w, "last-action", "?"));
  else if (w != NULL)
    printf ("%-15s %s, never fired\n", "watchdog",
            json_object_get_string_member_with_default (w, "action", "?"));
  if (p != NULL)
    {
      g_auto(GStrv) lines = g_strsplit (json_object_get_string_member_with_default (p, "serial-tail", ""),
                                        "\n", -1);
      printf ("%-15s %s (panic = %s); the serial log before it:\n", "last-panic",
              json_object_get_string_member_with_default (p, "time", "?"),
              json_object_get_string_member_with_default (p, "action", "?"));
      for (char **l = lines; *l != NULL; l++)
        printf ("  %s\n", *l);
    }
}

/* The storage: ok, or paused for a disk error since when; its latest check and result. */
static void
print_storage (JsonObject *o)
{
  JsonObject *s = json_object_has_member (o, "storage") ? json_object_get_object_member (o, "storage") : NULL;
  const char *last = s ? json_object_get_string_member_with_default (s, "last-check", NULL) : NULL;

  if (s == NULL)
    return;
  if (strcmp (json_object_get_string_member_with_default (s, "state", "?"), "ok") == 0)
    printf ("%-15s ok", "storage");
  else
    printf ("%-15s %s since %s: disk %s (%s)", "storage", json_object_get_string_member (s, "state"),
            json_object_get_string_member_with_default (s, "since", "?"),
            json_object_get_string_member_with_default (s, "disk", NULL) ?: "?",
            json_object_get_string_member_with_default (s, "error", NULL) ?: "run state io-error");
  if (last != NULL)
    printf (", last check %s: %s", last,
            json_object_get_string_member_with_default (s, "last-result", "?"));
  else
    printf (", never checked (no disk error since vmherdd started)");
  printf ("; %" G_GINT64_FORMAT " outage%s\n", json_object_get_int_member (s, "outages"),
          json_object_get_int_member (s, "outages") == 1 ? "" : "s");
}

int
ctl_cmd_status (CtlContext *ctx, int argc, char **argv)
{
  CtlArgs a;
  int status;
  g_autoptr(JsonObject) args = NULL;
  g_autoptr(JsonNode) ret = NULL;
  JsonObject *o;

  if (!parse_args (argc, argv, TRUE, &a))
    return ctl_usage (ctx, "status");
  args = vm_args (&a);
  ret = call (ctx, "status", args, CALL_TIMEOUT_MS, &status);
  if (ret == NULL)
    return status;
  if (a.json)
    {
      ctl_print_json (ret);
      return CTL_EXIT_OK;
    }
  o = json_node_get_object (ret);
  json_object_foreach_member (o, print_member, NULL);
  if (json_object_has_member (o, "argv"))
    {
      JsonArray *argv_list = json_object_get_array_member (o, "argv");
      printf ("argv           ");
      for (guint i = 0; i < json_array_get_length (argv_list); i++)
        printf ("%s%s", i ? " " : "", json_array_get_string_element (argv_list, i));
      printf ("\n");
    }
  if (json_object_has_member (o, "qemu-stderr"))
    {
      g_auto(GStrv) lines = g_strsplit (json_object_get_string_member (o, "qemu-stderr"), "\n", -1);
      printf ("qemu-stderr\n");
      for (char **l = lines; *l != NULL; l++)
        if (**l != '\0')
          printf ("  %s\n", *l);
    }
  if (json_object_has_member (o, "probes")
      && json_array_get_length (json_object_get_array_member (o, "probes")) > 0)
    print_probes (json_object_get_array_member (o, "probes"));
  if (json_object_has_member (o, "guest-agent") && !json_object_get_null_member (o, "guest-agent"))
    print_agent (json_object_get_object_member (o, "guest-agent"));
  print_guest_health (o);
  print_storage (o);
  if (json_object_has_member (o, "history"))
    {
      JsonArray *h = json_object_get_array_member (o, "history");
      printf ("history\n");
      for (guint i = 0; i < json_array_get_length (h); i++)
        {
          JsonObject *e = json_array_get_object_element (h, i);
          printf ("  %s  %-9s %s\n", json_object_get_string_member (e, "time"),
                  json_object_get_string_member (e, "state"),
                  json_object_get_string_member (e, "reason"));
        }
    }
  return CTL_EXIT_OK;
}

/* start, stop, restart, reset, pause, resume: NAME plus options, one line of result. */
static int
simple_vm_command (CtlContext *ctx, int argc, char **argv, const char *command, guint timeout_ms)
{
  CtlArgs a;
  int status;
  g_autoptr(JsonObject) args = NULL;
  g_autoptr(JsonNode) ret = NULL;
  JsonNode *state;

  if (!parse_args (argc, argv, TRUE, &a))
    return ctl_usage (ctx, command);
  args = vm_args (&a);
  ret = call (ctx, command, args, timeout_ms, &status);
  if (ret == NULL)
    return status;
  state = JSON_NODE_HOLDS_OBJECT (ret) ? json_object_get_member (json_node_get_object (ret), "state") : NULL;
  if (state != NULL && JSON_NODE_HOLDS_VALUE (state) && json_node_get_value_type (state) == G_TYPE_STRING)
    printf ("vm '%s': %s\n", a.name, json_node_get_string (state));
  return CTL_EXIT_OK;
}

/* Starting waits for QMP and `cont`; stopping may walk the whole ladder. */
int ctl_cmd_start (CtlContext *c, int n, char **v) { return simple_vm_command (c, n, v, "start", 0); }
int ctl_cmd_stop (CtlContext *c, int n, char **v) { return simple_vm_command (c, n, v, "stop", 0); }
int ctl_cmd_restart (CtlContext *c, int n, char **v) { return simple_vm_command (c, n, v, "restart", 0); }
int ctl_cmd_reset (CtlContext *c, int n, char **v) { return simple_vm_command (c, n, v, "reset", CALL_TIMEOUT_MS); }
int ctl_cmd_pause (CtlContext *c, int n, char **v) { return simple_vm_command (c, n, v, "pause", CALL_TIMEOUT_MS); }
int ctl_cmd_resume (CtlContext *c, int n, char **v) { return simple_vm_command (c, n, v, "resume", CALL_TIMEOUT_MS); }

int
ctl_cmd_reload (CtlContext *ctx, int argc, char **argv G_GNUC_UNUSED)
{
  int status;
  g_autoptr(JsonNode) ret = NULL;

  if (argc != 1)
    return ctl_usage (ctx, "reload");
  ret = call (ctx, "reload", NULL, CALL_TIMEOUT_MS, &status);
  if (ret != NULL)
    printf ("reloaded: %" G_GINT64_FORMAT " VMs defined\n",
            json_object_get_int_member (json_node_get_object (ret), "vms"));
  return status;
}

int
ctl_cmd_shutdown_all (CtlContext *ctx, int argc, char **argv)
{
  CtlArgs a;
  int status;
  g_autoptr(JsonObject) args = NULL;
  g_autoptr(JsonNode) ret = NULL;

  if (!parse_args (argc, argv, FALSE, &a))
    return ctl_usage (ctx, "shutdown-all");
  args = vm_args (&a);
  ret = call (ctx, "shutdown-all", args, 0, &status);
  if (ret != NULL)
    printf ("every guest is stopped\n");
  return status;
}

int
ctl_cmd_events (CtlContext *ctx, int argc, char **argv)
{
  CtlArgs a;
  g_autofree char *path = NULL;
  g_autoptr(ControlClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = NULL;

  if (!parse_args (argc, argv, FALSE, &a))
    return ctl_usage (ctx, "events");
  path = control_socket_path (ctx);
  if (path == NULL)
    return CTL_EXIT_FAILED;
  client = control_client_connect (path, &error);
  if (client != NULL)
    ret = control_client_call (client, "events", NULL, CALL_TIMEOUT_MS, NULL, NULL, NULL, &error);
  if (ret == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      return client == NULL ? CTL_EXIT_UNREACHABLE : CTL_EXIT_FAILED;
    }
  for (;;)
    {
      g_autoptr(JsonObject) line = control_client_read_line (client, 0, &error);
      g_autoptr(JsonNode) node = NULL;
      JsonObject *d;

      if (line == NULL)
        {
          fprintf (stderr, "%s\n", error->message);
          return CTL_EXIT_UNREACHABLE;
        }
      node = json_node_init_object (json_node_alloc (), line);
      if (a.json)
        {
          g_autoptr(JsonGenerator) gen = json_generator_new ();
          g_autofree char *text = NULL;
          json_generator_set_root (gen, node);
          text = json_generator_to_data (gen, NULL);
          printf ("%s\n", text);
        }
      else if (json_object_has_member (line, "data")
               && (d = json_object_get_object_member (line, "data")) != NULL)
        printf ("%s %s %s\n", json_object_get_string_member_with_default (d, "vm", "-"),
                json_object_get_string_member_with_default (line, "event", "?"),
                json_object_get_string_member_with_default (d, "reason",
                    json_object_get_string_member_with_default (d, "event", "")));
      fflush (stdout);
    }
}
