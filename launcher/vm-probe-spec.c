/* vm-probe-spec.c: the value of a [health] probe line, parsed and checked.
 *
 *   probe = SPEC [interval=10s] [timeout=2s] [failures=3] [grace=60s] [action=restart|report]
 *   SPEC  = tcp:HOST:PORT | udp:HOST:PORT:HEXPAYLOAD | exec:COMMAND
 *
 * The value is split like a shell (quotes keep an exec command in one piece); HOST is an
 * IP address (IPv6 in brackets), never a name: a probe never waits for DNS. */
#include "launcher/vm-config.h"

#include <gio/gio.h>
#include <string.h>

#define PROBE_OPTIONS "interval, timeout, failures, grace, action"

static const char *const kind_names[] = { "tcp", "udp", "exec" };
static const char *const action_names[] = { "restart", "report", NULL };

const char *vm_probe_kind_to_string (VmProbeKind k) { return kind_names[k]; }
const char *vm_probe_action_to_string (VmProbeAction a) { return action_names[a]; }

void
vm_probe_free (VmProbe *probe)
{
  if (probe == NULL)
    return;
  g_free (probe->spec);
  g_free (probe->host);
  g_clear_pointer (&probe->payload, g_bytes_unref);
  g_strfreev (probe->argv);
  g_free (probe);
}

VmProbe *
vm_probe_copy (const VmProbe *probe)
{
  VmProbe *copy = g_memdup2 (probe, sizeof *probe);

  copy->spec = g_strdup (probe->spec);
  copy->host = g_strdup (probe->host);
  copy->payload = probe->payload ? g_bytes_ref (probe->payload) : NULL;
  copy->argv = g_strdupv (probe->argv);
  return copy;
}

/* "HOST:PORT" (rest: what follows PORT after a ':', for udp) into the probe. */
static char *
parse_address (VmProbe *probe, const char *text, gboolean want_rest, const char **out_rest)
{
  g_autofree char *host = NULL;
  g_autoptr(GInetAddress) address = NULL;
  const char *port_text, *end;
  g_autofree char *port_copy = NULL;
  guint64 port;

  if (text[0] == '[')
    {
      end = strchr (text, ']');
      if (end == NULL || end[1] != ':')
        return g_strdup ("an IPv6 address goes in brackets: [::1]:5000");
      host = g_strndup (text + 1, (gsize) (end - text - 1));
      port_text = end + 2;
    }
  else
    {
      end = strchr (text, ':');
      if (end == NULL)
        return g_strdup ("no port (write HOST:PORT, e.g. 10.0.0.2:5000)");
      host = g_strndup (text, (gsize) (end - text));
      port_text = end + 1;
    }
  address = g_inet_address_new_from_string (host);
  if (address == NULL)
    return g_strdup_printf ("\"%s\" is not an IP address (names are not resolved; write e.g. "
                            "10.0.0.2 or [fd00::2])", host);
  end = strchr (port_text, ':');
  if (want_rest != (end != NULL))
    return g_strdup (want_rest ? "no payload (write udp:HOST:PORT:HEXPAYLOAD, e.g. "
                                 "udp:10.0.0.2:5000:68656c6c6f)"
                               : "too many ':' (write tcp:HOST:PORT, e.g. tcp:10.0.0.2:5000)");
  port_copy = end ? g_strndup (port_text, (gsize) (end - port_text)) : g_strdup (port_text);
  if (!g_ascii_string_to_unsigned (port_copy, 10, 1, 65535, &port, NULL))
    return g_strdup_printf ("\"%s\" is not a port (use a number from 1 to 65535)", port_copy);
  probe->host = g_steal_pointer (&host);
  probe->port = (guint16) port;
  if (out_rest != NULL)
    *out_rest = end ? end + 1 : NULL;
  return NULL;
}

static char *
parse_payload (VmProbe *probe, const char *hex)
{
  gsize n = strlen (hex);
  guint8 *bytes;

  if (n == 0 || n % 2 != 0)
    return g_strdup_printf ("payload \"%s\" is not an even number of hex digits "
                            "(e.g. 68656c6c6f for \"hello\")", hex);
  bytes = g_malloc (n / 2);
  for (gsize i = 0; i < n; i += 2)
    {
      int hi = g_ascii_xdigit_value (hex[i]), lo = g_ascii_xdigit_value (hex[i + 1]);
      if (hi < 0 || lo < 0)
        {
          g_free (bytes);
          return g_strdup_printf ("payload \"%s\" is not hex (use digits 0-9 and a-f)", hex);
        }
      bytes[i / 2] = (guint8) (hi << 4 | lo);
    }
  probe->payload = g_bytes_new_take (bytes, n / 2);
  return NULL;
}

static char *
parse_command (VmProbe *probe, const char *command, const char *vm_name)
{
  g_autoptr(GString) text = g_string_new (command);
  g_autoptr(GError) error = NULL;

  if (command[0] == '\0')
    return g_strdup ("no command (write e.g. \"exec:caget -w 2 %n:HEARTBEAT\")");
  g_string_replace (text, "%n", vm_name, 0);
  if (!g_shell_parse_argv (text->str, NULL, &probe->argv, &error))
    return g_strdup_printf ("cannot split command \"%s\" into arguments (quote like a shell: "
                            "'a b' \"c\")", command);
  return NULL;
}

static char *
parse_spec (VmProbe *probe, const char *spec, const char *vm_name)
{
  const char *rest = NULL;
  char *problem;

  probe->spec = g_strdup (spec);
  if (g_str_has_prefix (spec, "tcp:"))
    {
      probe->kind = VM_PROBE_TCP;
      return parse_address (probe, spec + 4, FALSE, NULL);
    }
  if (g_str_has_prefix (spec, "udp:"))
    {
      probe->kind = VM_PROBE_UDP;
      if ((problem = parse_address (probe, spec + 4, TRUE, &rest)) != NULL)
        return problem;
      return parse_payload (probe, rest);
    }
  if (g_str_has_prefix (spec, "exec:"))
    {
      probe->kind = VM_PROBE_EXEC;
      return parse_command (probe, spec + 5, vm_name);
    }
  return g_strdup_printf ("\"%s\" is not a probe (write tcp:HOST:PORT, "
                          "udp:HOST:PORT:HEXPAYLOAD or exec:COMMAND)", spec);
}

static char *
parse_option (VmProbe *probe, const char *option)
{
  const char *eq = strchr (option, '=');
  g_autofree char *name = eq ? g_strndup (option, (gsize) (eq - option)) : g_strdup (option);
  const char *value = eq ? eq + 1 : "";
  gint64 *duration = NULL, min_ms = 100;
  gint64 ms;

  if (strcmp (name, "interval") == 0)
    duration = &probe->interval_ms;
  else if (strcmp (name, "timeout") == 0)
    duration = &probe->timeout_ms;
  else if (strcmp (name, "grace") == 0)
    duration = &probe->grace_ms, min_ms = 0;
  else if (strcmp (name, "failures") == 0)
    {
      guint64 n;
      if (!g_ascii_string_to_unsigned (value, 10, 1, 1000, &n, NULL))
        return g_strdup_printf ("failures=%s: not a number from 1 to 1000", value);
      probe->failures = (gint64) n;
      return NULL;
    }
  else if (strcmp (name, "action") == 0)
    {
      for (int i = 0; action_names[i] != NULL; i++)
        if (strcmp (value, action_names[i]) == 0)
          {
            probe->action = i;
            return NULL;
          }
      return g_strdup_printf ("action=%s: not an action (use restart or report)", value);
    }
  else
    return g_strdup_printf ("unknown option \"%s\" (known: " PROBE_OPTIONS ")", option);
  if (eq == NULL || !config_parse_duration (value, &ms) || ms < min_ms || ms > 3600000)
    return g_strdup_printf ("%s=%s: not a duration from %s to 1h (write e.g. %s=5s)", name,
                            value, min_ms ? "100ms" : "0", name);
  *duration = ms;
  return NULL;
}

VmProbe *
vm_probe_parse (const char *text, const char *vm_name, char **out_problem)
{
  g_autoptr(VmProbe) probe = g_new0 (VmProbe, 1);
  g_auto(GStrv) words = NULL;
  g_autoptr(GError) error = NULL;
  char *problem = NULL;

  probe->interval_ms = 10000;
  probe->timeout_ms = 2000;
  probe->failures = 3;
  probe->grace_ms = 60000;
  probe->action = VM_PROBE_ACTION_RESTART;
  if (text[0] == '\0')
    problem = g_strdup ("empty (write e.g. probe = tcp:10.0.0.2:5000 interval=5s)");
  else if (!g_shell_parse_argv (text, NULL, &words, &error))
    problem = g_strdup ("cannot split into words: a quote is not closed (quote like a "
                        "shell: \"exec:caget -w 2 %n:HEARTBEAT\" timeout=5s)");
  else
    problem = parse_spec (probe, words[0], vm_name);
  for (guint i = 1; problem == NULL && words != NULL && words[i] != NULL; i++)
    problem = parse_option (probe, words[i]);
  if (problem != NULL)
    {
      *out_problem = problem;
      return NULL;
    }
  return g_steal_pointer (&probe);
}
