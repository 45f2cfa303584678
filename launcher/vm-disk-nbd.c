/* vm-disk-nbd.c: a [disk]'s image served over NBD, written as QEMU writes NBD URLs:
 *
 *   nbd://HOST[:PORT]/EXPORT           (nbd+tcp:// too; PORT defaults to 10809)
 *   nbd+unix:///EXPORT?socket=PATH
 *
 * Parsed here into VmNbd; qemu-argv.c makes it an "nbd" -blockdev node, vm-storage-check.c
 * talks to the same server to see whether it answers. */
#include "launcher/vm-config.h"

#include <string.h>

#define NBD_DEFAULT_PORT "10809"

void
vm_nbd_free (VmNbd *nbd)
{
  if (nbd == NULL)
    return;
  g_free (nbd->export);
  g_free (nbd->socket);
  g_free (nbd->host);
  g_free (nbd->port);
  g_free (nbd);
}

gboolean
vm_nbd_is_url (const char *text)
{
  return g_str_has_prefix (text, "nbd:") || g_str_has_prefix (text, "nbd+");
}

static const char *const nbd_examples =
  "(write nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=/PATH)";

/* The socket= value of a query, percent-decoded; NULL when absent or not the only one. */
static char *
query_socket (const char *query, char **out_problem)
{
  g_autoptr(GHashTable) params = NULL;
  g_autoptr(GError) error = NULL;
  const char *socket;

  if (query == NULL)
    {
      *out_problem = g_strdup_printf ("nbd+unix needs ?socket=PATH %s", nbd_examples);
      return NULL;
    }
  params = g_uri_parse_params (query, -1, "&", G_URI_PARAMS_NONE, &error);
  if (params == NULL)
    {
      *out_problem = g_strdup_printf ("bad query \"%s\": %s %s", query, error->message, nbd_examples);
      return NULL;
    }
  socket = g_hash_table_lookup (params, "socket");
  if (socket == NULL || g_hash_table_size (params) != 1)
    {
      *out_problem = g_strdup_printf ("nbd+unix takes exactly one parameter, socket=PATH %s",
                                      nbd_examples);
      return NULL;
    }
  if (!g_path_is_absolute (socket))
    {
      *out_problem = g_strdup_printf ("socket=%s is not an absolute path %s", socket, nbd_examples);
      return NULL;
    }
  return g_strdup (socket);
}

VmNbd *
vm_nbd_parse (const char *url, char **out_problem)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_ENCODED_QUERY, &error);
  g_autoptr(VmNbd) nbd = NULL;
  const char *scheme, *path;
  gboolean unix_socket;

  if (uri == NULL)
    {
      *out_problem = g_strdup_printf ("\"%s\" is not a URL (%s) %s", url, error->message, nbd_examples);
      return NULL;
    }
  scheme = g_uri_get_scheme (uri);
  unix_socket = strcmp (scheme, "nbd+unix") == 0;
  if (!unix_socket && strcmp (scheme, "nbd") != 0 && strcmp (scheme, "nbd+tcp") != 0)
    {
      *out_problem = g_strdup_printf ("unknown scheme %s: (known: nbd, nbd+tcp, nbd+unix) %s",
                                      scheme, nbd_examples);
      return NULL;
    }
  nbd = g_new0 (VmNbd, 1);
  path = g_uri_get_path (uri);
  nbd->export = g_strdup (path[0] == '/' ? path + 1 : path);
  if (unix_socket)
    {
      if (g_uri_get_host (uri) != NULL && g_uri_get_host (uri)[0] != '\0')
        {
          *out_problem = g_strdup_printf ("nbd+unix takes no host (three slashes: "
                                          "nbd+unix:///EXPORT?socket=PATH)");
          return NULL;
        }
      nbd->socket = query_socket (g_uri_get_query (uri), out_problem);
      if (nbd->socket == NULL)
        return NULL;
      return g_steal_pointer (&nbd);
    }
  if (g_uri_get_host (uri) == NULL || g_uri_get_host (uri)[0] == '\0')
    {
      *out_problem = g_strdup_printf ("no server host in \"%s\" %s", url, nbd_examples);
      return NULL;
    }
  if (g_uri_get_query (uri) != NULL)
    {
      *out_problem = g_strdup_printf ("nbd:// takes no ?query (TLS and other options are not "
                                      "supported) %s", nbd_examples);
      return NULL;
    }
  nbd->host = g_strdup (g_uri_get_host (uri));
  nbd->port = g_uri_get_port (uri) > 0 ? g_strdup_printf ("%d", g_uri_get_port (uri))
                                       : g_strdup (NBD_DEFAULT_PORT);
  return g_steal_pointer (&nbd);
}
