/* host-peer.c: the [peer] section of vmherd.conf. */
#include "launcher/host-peer.h"

#include <stddef.h>
#include <string.h>

#include "launcher/host-config.h"

#define K(name, kind, field, ...) \
  { name, kind, offsetof (HostPeerLink, field), __VA_ARGS__ }

static const ConfigKey peer_keys[] = {
  K ("name", KEY_STRING, name, 0, 0, NULL, FALSE, "host-a"),
  K ("listen", KEY_STRING, listen, 0, 0, NULL, TRUE, "10.0.0.1:7480"),
  K ("ca", KEY_PATH, ca, 0, 0, NULL, TRUE, "/etc/vmherd/pki/ca-cert.pem"),
  K ("cert", KEY_PATH, cert, 0, 0, NULL, TRUE, "/etc/vmherd/pki/host-cert.pem"),
  K ("key", KEY_PATH, key, 0, 0, NULL, TRUE, "/etc/vmherd/pki/host-key.pem"),
  /* Parsed here, not by the table (each line is kept); listed so errors name it. */
  K ("host", KEY_LIST, hosts, 0, 0, NULL, FALSE, "b 10.0.0.2:7480"),
  { 0 },
};

static void
host_peer_free (HostPeer *host)
{
  g_free (host->name);
  g_free (host->address);
  g_free (host);
}

HostPeerLink *
host_peer_link_new (int line)
{
  HostPeerLink *peer = g_new0 (HostPeerLink, 1);

  config_section_init (&peer->section, NULL, line);
  peer->hosts = g_ptr_array_new_with_free_func ((GDestroyNotify) host_peer_free);
  return peer;
}

void
host_peer_link_free (HostPeerLink *peer)
{
  if (peer == NULL)
    return;
  for (const ConfigKey *k = peer_keys; k->name != NULL; k++)
    if (k->kind != KEY_LIST)
      config_key_clear (k, peer);
  g_clear_pointer (&peer->hosts, g_ptr_array_unref);
  config_section_clear (&peer->section);
  g_free (peer);
}

gboolean
host_peer_name_is_valid (const char *name)
{
  size_t len = strlen (name);

  if (len == 0 || len > 63 || name[0] == '-' || name[0] == '.')
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '.')
      return FALSE;
  return TRUE;
}

const HostPeer *
host_peer_link_find (const HostPeerLink *peer, const char *name)
{
  for (guint i = 0; peer != NULL && i < peer->hosts->len; i++)
    {
      const HostPeer *h = peer->hosts->pdata[i];
      if (strcmp (h->name, name) == 0)
        return h;
    }
  return NULL;
}

static void
add_host (HostPeerLink *peer, const char *value, ConfigErrors *errors, const char *file, int line)
{
  g_auto(GStrv) words = g_strsplit_set (value, " \t", -1);
  g_autofree char *address = NULL;
  const char *name = NULL, *where = NULL;
  const HostPeer *first;
  HostPeer *host;
  guint16 port;

  for (char **w = words; *w != NULL; w++)
    {
      if (**w == '\0')
        continue;
      if (name == NULL)
        name = *w;
      else if (where == NULL)
        where = *w;
      else
        where = "";             /* a third word */
    }
  if (name == NULL || where == NULL || *where == '\0')
    {
      config_errors_add (errors, file, line, "host: \"%s\" is not NAME ADDR:PORT (e.g. host = b "
                         "10.0.0.2:7480)", value);
      return;
    }
  if (!host_peer_name_is_valid (name))
    {
      config_errors_add (errors, file, line, "host: \"%s\" is not a host name (letters, digits, "
                         "'-' and '.', as in its certificate)", name);
      return;
    }
  if (!host_listen_parse (where, &address, &port))
    {
      config_errors_add (errors, file, line, "host: \"%s\" is not ADDR:PORT (an IP address and a "
                         "port, e.g. 10.0.0.2:7480 or [fd00::2]:7480)", where);
      return;
    }
  first = host_peer_link_find (peer, name);
  if (first != NULL)
    {
      config_errors_add (errors, file, line, "host: '%s' is listed twice (first at line %d; keep "
                         "one)", name, first->line);
      return;
    }
  host = g_new0 (HostPeer, 1);
  host->name = g_strdup (name);
  host->address = g_strdup (where);
  host->line = line;
  g_ptr_array_add (peer->hosts, host);
}

void
host_peer_link_set_key (HostPeerLink *peer, const char *key, const char *value,
                        const char *base_dir, ConfigErrors *errors, const char *file, int line)
{
  if (strcmp (key, "host") == 0)
    {
      if (!config_section_has_key (&peer->section, key))
        g_hash_table_insert (peer->section.key_lines, g_strdup (key), GINT_TO_POINTER (line));
      add_host (peer, value, errors, file, line);
      return;
    }
  config_section_set_key (&peer->section, peer_keys, peer, "peer", key, value, base_dir, errors,
                          file, line);
}

static char *
short_hostname (void)
{
  const char *full = g_get_host_name ();

  return g_strndup (full, strcspn (full, "."));
}

void
host_peer_link_finish (HostPeerLink *peer, ConfigErrors *errors, const char *file)
{
  g_autofree char *address = NULL;
  guint16 port;

  config_section_require_keys (errors, file, &peer->section, peer_keys, "peer");
  if (peer->name == NULL)
    peer->name = short_hostname ();
  else if (!host_peer_name_is_valid (peer->name))
    config_errors_add (errors, file, config_section_key_line (&peer->section, "name"),
                       "name: \"%s\" is not a host name (letters, digits, '-' and '.', as in this "
                       "host's certificate)", peer->name);
  if (peer->listen != NULL && !host_listen_parse (peer->listen, &address, &port))
    config_errors_add (errors, file, config_section_key_line (&peer->section, "listen"),
                       "listen: \"%s\" is not ADDR:PORT (an IP address and a port, e.g. "
                       "10.0.0.1:7480 or [fd00::1]:7480)", peer->listen);
  for (guint i = 0; i < peer->hosts->len; i++)
    {
      const HostPeer *h = peer->hosts->pdata[i];
      if (strcmp (h->name, peer->name) == 0)
        config_errors_add (errors, file, h->line, "host: '%s' is this host (name = %s%s); list "
                           "only the other hosts of the group", h->name, peer->name,
                           config_section_has_key (&peer->section, "name") ? "" : ", the short "
                           "hostname");
    }
}
