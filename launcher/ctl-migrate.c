/* ctl-migrate.c: `vmherd migrate NAME HOST`, `vmherd migrate --cancel NAME` and
 * `vmherd evacuate`, answered by vmherdd (daemon-migrate.c), with live progress. */
#include "launcher/ctl.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>


static int
usage (CtlContext *ctx)
{
  fprintf (stderr,
           "usage: %1$s migrate NAME HOST [--copy-storage] [--postcopy] [--json]\n"
           "       %1$s migrate --cancel NAME\n"
           "       %1$s evacuate [--to HOST,...] [--parallel N] [--copy-storage] [--json]\n", ctx->program);
  return CTL_EXIT_USAGE;
}

typedef struct
{
  gboolean tty, json, drew;
} Progress;

static char *
mib (gint64 bytes)
{
  return g_strdup_printf ("%.1f MiB", (double) bytes / (1024.0 * 1024.0));
}

static void
on_line (JsonObject *line, gpointer data)
{
  Progress *p = data;
  JsonNode *node = line ? json_object_get_member (line, "progress") : NULL;
  JsonObject *o;
  g_autofree char *sent = NULL, *left = NULL, *dirty = NULL;
  gint64 eta;

  if (line == NULL && p->drew)
    {
      fprintf (stderr, "\n");  /* the end: the progress line stays */
      p->drew = FALSE;
    }
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return;
  o = json_node_get_object (node);
  if (p->json)
    {
      g_autofree char *text = json_to_string (node, FALSE);
      printf ("%s\n", text);
      fflush (stdout);
      return;
    }
  sent = mib (json_object_get_int_member_with_default (o, "transferred", 0));
  left = mib (json_object_get_int_member_with_default (o, "remaining", 0));
  dirty = mib (json_object_get_int_member_with_default (o, "dirty-rate", 0));
  eta = json_object_get_int_member_with_default (o, "eta-ms", -1);
  fprintf (stderr, "%s%s -> %s: %s, pass %" G_GINT64_FORMAT ", sent %s, remaining %s, dirty %s/s, "
           "%" G_GINT64_FORMAT " Mbit/s, %.1f s",
           p->tty ? "\r\033[K" : "", json_object_get_string_member_with_default (o, "vm", "?"),
           json_object_get_string_member_with_default (o, "to", "?"),
           json_object_get_string_member_with_default (o, "status", "?"),
           json_object_get_int_member_with_default (o, "pass", 0), sent, left, dirty,
           json_object_get_int_member_with_default (o, "mbps", 0),
           (double) json_object_get_int_member_with_default (o, "elapsed-ms", 0) / 1000.0);
  if (eta >= 0)
    fprintf (stderr, ", ETA %.1f s", (double) eta / 1000.0);
  fprintf (stderr, "%s", p->tty ? "" : "\n");
  p->drew = p->tty;
}

/* No timeout: the daemon enforces the [migration] timeout and always answers. */
static JsonNode *
call (CtlContext *ctx, const char *command, JsonObject *args, Progress *progress, int *out_status)
{
  return ctl_call (ctx, command, args, 0, on_line, progress, out_status);
}

int
ctl_cmd_migrate (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(JsonNode) ret = NULL;
  Progress progress = { .tty = isatty (STDERR_FILENO) };
  const char *positional[2] = { NULL, NULL };
  gboolean cancel = FALSE, postcopy = FALSE, copy_storage = FALSE;
  guint n = 0;
  int status;

  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--cancel") == 0)
        cancel = TRUE;
      else if (strcmp (argv[i], "--postcopy") == 0)
        postcopy = TRUE;
      else if (strcmp (argv[i], "--copy-storage") == 0)
        copy_storage = TRUE;
      else if (strcmp (argv[i], "--json") == 0)
        progress.json = TRUE;
      else if (argv[i][0] == '-' || n == 2)
        return usage (ctx);
      else
        positional[n++] = argv[i];
    }
  if (cancel ? n != 1 : n != 2)
    return usage (ctx);
  json_object_set_string_member (args, "vm", positional[0]);
  if (cancel)
    {
      ret = call (ctx, "migrate-cancel", args, &progress, &status);
      if (ret != NULL)
        printf ("%s: migration cancelled; the guest stays on this host\n", positional[0]);
      return status;
    }
  json_object_set_string_member (args, "to", positional[1]);
  json_object_set_boolean_member (args, "postcopy", postcopy);
  json_object_set_boolean_member (args, "copy-storage", copy_storage);
  ret = call (ctx, "migrate", args, &progress, &status);
  if (ret == NULL)
    return status;
  if (progress.json)
    ctl_print_json (ret);
  else
    {
      JsonObject *r = json_node_get_object (ret);
      g_autofree char *sent = mib (json_object_get_int_member_with_default (r, "transferred", 0));
      gint64 downtime = json_object_get_int_member_with_default (r, "downtime-ms", -1);

      printf ("%s: migrated to %s in %.2f s; downtime %s%" G_GINT64_FORMAT " ms (QEMU: %" G_GINT64_FORMAT
              " ms); %s sent in %" G_GINT64_FORMAT " passes\n", positional[0], positional[1],
              (double) json_object_get_int_member_with_default (r, "total-ms", 0) / 1000.0,
              downtime < 0 ? "unknown, " : "", downtime < 0 ? 0 : downtime,
              json_object_get_int_member_with_default (r, "qemu-downtime-ms", 0), sent,
              json_object_get_int_member_with_default (r, "passes", 0));
    }
  return CTL_EXIT_OK;
}

int
ctl_cmd_evacuate (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(JsonObject) args = json_object_new ();
  g_autoptr(JsonNode) ret = NULL;
  Progress progress = { .tty = isatty (STDERR_FILENO) };
  JsonArray *results;
  int status;

  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--json") == 0)
        progress.json = TRUE;
      else if (strcmp (argv[i], "--copy-storage") == 0)
        json_object_set_boolean_member (args, "copy-storage", TRUE);
      else if (strcmp (argv[i], "--to") == 0 && i + 1 < argc)
        {
          g_auto(GStrv) hosts = g_strsplit (argv[++i], ",", -1);
          JsonArray *to = json_array_new ();
          for (guint h = 0; hosts[h] != NULL; h++)
            if (hosts[h][0] != '\0')
              json_array_add_string_element (to, hosts[h]);
          json_object_set_array_member (args, "to", to);
        }
      else if (strcmp (argv[i], "--parallel") == 0 && i + 1 < argc)
        {
          gint64 n;
          if (!g_ascii_string_to_signed (argv[++i], 10, 1, 16, &n, NULL))
            {
              fprintf (stderr, "%s evacuate: --parallel %s: not a number from 1 to 16\n", ctx->program, argv[i]);
              return CTL_EXIT_USAGE;
            }
          json_object_set_int_member (args, "parallel", n);
        }
      else
        return usage (ctx);
    }
  ret = call (ctx, "evacuate", args, &progress, &status);
  if (ret == NULL)
    return status;
  if (progress.json)
    {
      ctl_print_json (ret);
      return json_object_get_int_member (json_node_get_object (ret), "stayed") > 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
    }
  results = json_object_get_array_member (json_node_get_object (ret), "results");
  printf ("%-20s %-12s %-7s %9s %9s  %s\n", "VM", "TO", "RESULT", "TOTAL", "DOWNTIME", "REASON");
  for (guint i = 0; i < json_array_get_length (results); i++)
    {
      JsonObject *r = json_array_get_object_element (results, i);
      gboolean moved = strcmp (json_object_get_string_member (r, "result"), "moved") == 0;
      g_autofree char *total = moved ? g_strdup_printf ("%.2f s", (double) json_object_get_int_member (r, "total-ms") / 1000.0)
                                     : g_strdup ("-");
      g_autofree char *down = moved ? g_strdup_printf ("%" G_GINT64_FORMAT " ms", json_object_get_int_member (r, "downtime-ms"))
                                    : g_strdup ("-");
      printf ("%-20s %-12s %-7s %9s %9s  %s\n", json_object_get_string_member (r, "vm"),
              json_object_get_string_member (r, "to")[0] ? json_object_get_string_member (r, "to") : "-",
              json_object_get_string_member (r, "result"), total, down,
              json_object_get_string_member_with_default (r, "reason", ""));
    }
  printf ("%" G_GINT64_FORMAT " moved, %" G_GINT64_FORMAT " stayed\n",
          json_object_get_int_member (json_node_get_object (ret), "moved"),
          json_object_get_int_member (json_node_get_object (ret), "stayed"));
  return json_object_get_int_member (json_node_get_object (ret), "stayed") > 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}
