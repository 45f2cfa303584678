/* ctl-peers.c: `vmherd peers`: the daemon says hello to every peer host of [peer] and
 * lists what each answered (or why it could not be reached). */
#include "launcher/ctl.h"

#include <stdio.h>
#include <string.h>

#include "launcher/control-proto.h"

/* The daemon's own limit is 25 s per `peers` (connect, handshake, hello). */
#define PEERS_TIMEOUT_MS 40000

static JsonNode *
call (CtlContext *ctx, int *out_status)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = NULL;
  g_autoptr(ControlClient) client = NULL;
  g_autoptr(GError) error = NULL;
  const char *path = g_getenv ("VMHERD_CONTROL_SOCKET");
  JsonNode *ret;

  *out_status = CTL_EXIT_FAILED;
  if (path == NULL)
    {
      host = host_config_load (ctx->config_path, errors);
      if (host == NULL)
        {
          config_errors_print (errors, stderr);
          return NULL;
        }
      path = host->control_socket;
    }
  client = control_client_connect (path, &error);
  if (client == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      *out_status = CTL_EXIT_UNREACHABLE;
      return NULL;
    }
  ret = control_client_call (client, "peers", NULL, PEERS_TIMEOUT_MS, NULL, NULL, NULL, &error);
  if (ret == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      if (g_error_matches (error, CONTROL_ERROR, CONTROL_ERROR_DISCONNECTED))
        *out_status = CTL_EXIT_UNREACHABLE;
      return NULL;
    }
  *out_status = CTL_EXIT_OK;
  return ret;
}

static void
print_json (JsonNode *node)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, node);
  text = json_generator_to_data (gen, NULL);
  printf ("%s\n", text);
}

/* "1.5 GiB" with a plain space. */
static char *
size_text (gint64 bytes)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) parts = NULL;

  if (bytes < 0)
    return g_strdup ("?");
  text = g_format_size_full ((guint64) bytes, G_FORMAT_SIZE_IEC_UNITS);
  parts = g_strsplit (text, "\u00a0", -1);
  return g_strjoinv (" ", parts);
}

/* "3 (2 running)" */
static char *
guests_text (JsonObject *peer)
{
  JsonArray *guests;
  guint running = 0, n;

  if (!json_object_has_member (peer, "guests"))
    return g_strdup ("?");
  guests = json_object_get_array_member (peer, "guests");
  n = json_array_get_length (guests);
  for (guint i = 0; i < n; i++)
    {
      JsonObject *g = json_array_get_object_element (guests, i);
      if (g_strcmp0 (control_json_get_string (g, "state"), "running") == 0)
        running++;
    }
  return g_strdup_printf ("%u (%u running)", n, running);
}

int
ctl_cmd_peers (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(JsonNode) ret = NULL;
  gboolean json = FALSE;
  int status = CTL_EXIT_OK;
  JsonArray *list;

  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--json") == 0)
        json = TRUE;
      else
        return ctl_usage (ctx, "peers");
    }
  ret = call (ctx, &status);
  if (ret == NULL || !JSON_NODE_HOLDS_ARRAY (ret))
    return status ? status : CTL_EXIT_FAILED;
  list = json_node_get_array (ret);
  if (json)
    print_json (ret);
  else
    printf ("%-16s %-24s %-11s %13s  %s\n", "NAME", "ADDRESS", "STATE", "MEM-AVAILABLE", "GUESTS");
  for (guint i = 0; i < json_array_get_length (list); i++)
    {
      JsonObject *o = json_array_get_object_element (list, i);
      gboolean reachable = json_object_get_boolean_member_with_default (o, "reachable", FALSE);

      if (!reachable)
        status = CTL_EXIT_FAILED;
      if (json)
        continue;
      if (reachable)
        {
          g_autofree char *mem = size_text (json_object_get_int_member_with_default (o, "mem-available", -1));
          g_autofree char *guests = guests_text (o);
          printf ("%-16s %-24s %-11s %13s  %s\n", control_json_get_string (o, "name"),
                  control_json_get_string (o, "address"), "reachable", mem, guests);
        }
      else
        printf ("%-16s %-24s %-11s %13s  %s\n", control_json_get_string (o, "name"),
                control_json_get_string (o, "address"), "error", "-",
                control_json_get_string (o, "error"));
    }
  return status;
}
