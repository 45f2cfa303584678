/* host-config.c: parse /etc/vmherd/vmherd.conf. */
#include "launcher/host-config.h"

#include <stddef.h>
#include <string.h>

#define K(name, kind, type, field, ...) \
  { name, kind, offsetof (type, field), __VA_ARGS__ }

static const ConfigKey daemon_keys[] = {
  K ("vm-dir", KEY_PATH, HostConfig, vm_dir, 0, 0, NULL, FALSE, NULL),
  K ("run-dir", KEY_PATH, HostConfig, run_dir, 0, 0, NULL, FALSE, NULL),
  K ("state-dir", KEY_PATH, HostConfig, state_dir, 0, 0, NULL, FALSE, NULL),
  K ("log-dir", KEY_PATH, HostConfig, log_dir, 0, 0, NULL, FALSE, NULL),
  K ("qemu", KEY_PATH, HostConfig, qemu, 0, 0, NULL, FALSE, NULL),
  K ("qemu-img", KEY_PATH, HostConfig, qemu_img, 0, 0, NULL, FALSE, NULL),
  K ("qemu-user", KEY_STRING, HostConfig, qemu_user, 0, 0, NULL, FALSE, "vmherd-qemu"),
  K ("qemu-group", KEY_STRING, HostConfig, qemu_group, 0, 0, NULL, FALSE, "vmherd-qemu"),
  K ("control-socket", KEY_PATH, HostConfig, control_socket, 0, 0, NULL, FALSE, NULL),
  K ("control-group", KEY_STRING, HostConfig, control_group, 0, 0, NULL, FALSE, "vmherd"),
  K ("parallel-starts", KEY_INT, HostConfig, parallel_starts, 1, 64, NULL, FALSE, "a number from 1 to 64"),
  K ("metrics-listen", KEY_STRING, HostConfig, metrics_listen, 0, 0, NULL, FALSE, "127.0.0.1:9177"),
  { 0 },
};

static const ConfigKey migration_keys[] = {
  K ("address", KEY_STRING, HostConfig, migrate_address, 0, 0, NULL, FALSE, "10.0.0.1"),
  K ("bandwidth", KEY_INT, HostConfig, migrate_bandwidth_mbit, 0, 1000000, NULL, FALSE, "Mbit/s, a number from 0 (no cap) to 1000000"),
  K ("downtime", KEY_DURATION, HostConfig, migrate_downtime_ms, 1, 2000000, NULL, FALSE, "a duration from 1ms to 2000s, e.g. 50ms"),
  K ("max-downtime", KEY_DURATION, HostConfig, migrate_max_downtime_ms, 1, 2000000, NULL, FALSE, "a duration from 1ms to 2000s, e.g. 1s"),
  K ("timeout", KEY_DURATION, HostConfig, migrate_timeout_ms, 1000, 86400000, NULL, FALSE, "a duration from 1s to 24h, e.g. 10min"),
  K ("stall-timeout", KEY_DURATION, HostConfig, migrate_stall_timeout_ms, 1000, 3600000, NULL, FALSE, "a duration from 1s to 1h, e.g. 30s"),
  { 0 },
};

static const ConfigKey bridge_keys[] = {
  K ("uplink", KEY_STRING, HostBridge, uplink, 0, 0, NULL, FALSE, "eth0 or bond0"),
  K ("mtu", KEY_INT, HostBridge, mtu, 68, 65535, NULL, FALSE, "a number from 68 to 65535"),
  K ("vlan-filtering", KEY_BOOL, HostBridge, vlan_filtering, 0, 0, NULL, FALSE, NULL),
  K ("stp", KEY_BOOL, HostBridge, stp, 0, 0, NULL, FALSE, NULL),
  K ("forward-delay", KEY_DURATION, HostBridge, forward_delay_ms, 0, 30000, NULL, FALSE, "a duration from 0 to 30s"),
  { 0 },
};

static void
host_bridge_free (HostBridge *bridge)
{
  for (const ConfigKey *k = bridge_keys; k->name != NULL; k++)
    config_key_clear (k, bridge);
  config_section_clear (&bridge->section);
  g_free (bridge);
}

void
host_config_free (HostConfig *config)
{
  if (config == NULL)
    return;
  for (const ConfigKey *k = daemon_keys; k->name != NULL; k++)
    config_key_clear (k, config);
  config_section_clear (&config->daemon);
  for (const ConfigKey *k = migration_keys; k->name != NULL; k++)
    config_key_clear (k, config);
  config_section_clear (&config->migration);
  g_ptr_array_unref (config->bridges);
  host_peer_link_free (config->peer);
  g_free (config->path);
  g_free (config);
}

gboolean
host_ifname_is_valid (const char *name)
{
  size_t len = strlen (name);

  return len > 0 && len < 16 && strcmp (name, ".") != 0 && strcmp (name, "..") != 0
         && strpbrk (name, "/: \t") == NULL;
}

gboolean
host_listen_parse (const char *text, char **out_address, guint16 *out_port)
{
  const char *colon = strrchr (text, ':');
  g_autofree char *address = NULL;
  guint64 port;
  char *end;

  if (colon == NULL || colon == text || !g_ascii_isdigit (colon[1]))
    return FALSE;
  port = g_ascii_strtoull (colon + 1, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535)
    return FALSE;
  if (text[0] == '[')
    {
      if (colon[-1] != ']')
        return FALSE;
      address = g_strndup (text + 1, (gsize) (colon - text - 2));
      if (strchr (address, ':') == NULL)
        return FALSE;
    }
  else
    {
      address = g_strndup (text, (gsize) (colon - text));
      if (strchr (address, ':') != NULL)   /* IPv6 goes in brackets */
        return FALSE;
    }
  if (!g_hostname_is_ip_address (address))
    return FALSE;
  *out_address = g_steal_pointer (&address);
  *out_port = (guint16) port;
  return TRUE;
}

const HostBridge *
host_config_find_bridge (const HostConfig *config, const char *name)
{
  for (guint i = 0; i < config->bridges->len; i++)
    {
      const HostBridge *b = config->bridges->pdata[i];
      if (strcmp (b->section.name, name) == 0)
        return b;
    }
  return NULL;
}

typedef struct
{
  HostConfig *config;
  ConfigErrors *errors;
  const char *file;
  char *base_dir;
  const ConfigKey *keys;
  gpointer target;
  ConfigSection *current;
  gboolean in_peer;             /* keys go to config->peer */
} HostParse;

static void
begin_section (HostParse *hp, int line, const char *header)
{
  g_auto(GStrv) words = g_strsplit_set (header, " \t", 2);
  const char *name = words[1] ? g_strstrip (words[1]) : "";
  HostBridge *bridge;

  hp->keys = NULL;
  hp->in_peer = FALSE;
  if (strcmp (header, "peer") == 0)
    {
      if (hp->config->peer != NULL)
        config_errors_add (hp->errors, hp->file, line,
                           "[peer] appears twice (first at line %d; merge the two)",
                           hp->config->peer->section.line);
      else
        {
          hp->config->peer = host_peer_link_new (line);
          hp->in_peer = TRUE;
        }
      return;
    }
  if (strcmp (header, "daemon") == 0)
    {
      if (hp->config->daemon.key_lines != NULL)
        {
          config_errors_add (hp->errors, hp->file, line,
                             "[daemon] appears twice (first at line %d; merge the two)",
                             hp->config->daemon.line);
          return;
        }
      config_section_init (&hp->config->daemon, NULL, line);
      hp->current = &hp->config->daemon;
      hp->target = hp->config;
      hp->keys = daemon_keys;
      return;
    }
  if (strcmp (header, "migration") == 0)
    {
      if (hp->config->migration.key_lines != NULL)
        {
          config_errors_add (hp->errors, hp->file, line,
                             "[migration] appears twice (first at line %d; merge the two)",
                             hp->config->migration.line);
          return;
        }
      config_section_init (&hp->config->migration, NULL, line);
      hp->current = &hp->config->migration;
      hp->target = hp->config;
      hp->keys = migration_keys;
      return;
    }
  if (strcmp (words[0], "bridge") != 0)
    {
      config_errors_add (hp->errors, hp->file, line,
                         "unknown section [%s] (known: [daemon], [bridge NAME], [peer], [migration])", header);
      return;
    }
  if (!host_ifname_is_valid (name))
    {
      config_errors_add (hp->errors, hp->file, line,
                         "[bridge %s]: not an interface name (1 to 15 characters, no '/', ':' "
                         "or spaces; e.g. [bridge br0])", name);
      return;
    }
  if (host_config_find_bridge (hp->config, name) != NULL)
    {
      config_errors_add (hp->errors, hp->file, line,
                         "[bridge %s] appears twice (first at line %d; merge the two)", name,
                         host_config_find_bridge (hp->config, name)->section.line);
      return;
    }
  bridge = g_new0 (HostBridge, 1);
  config_section_init (&bridge->section, name, line);
  g_ptr_array_add (hp->config->bridges, bridge);
  hp->current = &bridge->section;
  hp->target = bridge;
  hp->keys = bridge_keys;
}

static void
on_ini_item (gpointer user_data, int line, const char *section, const char *key,
             const char *value)
{
  HostParse *hp = user_data;

  if (key == NULL)
    begin_section (hp, line, section);
  else if (section[0] == '\0')
    config_errors_add (hp->errors, hp->file, line,
                       "%s: outside any section (put it under [daemon])", key);
  else if (hp->in_peer)
    host_peer_link_set_key (hp->config->peer, key, value, hp->base_dir, hp->errors, hp->file, line);
  else if (hp->keys != NULL)
    config_section_set_key (hp->current, hp->keys, hp->target, section, key, value,
                            hp->base_dir, hp->errors, hp->file, line);
}

static void
set_default (char **field, const char *value)
{
  if (*field == NULL)
    *field = g_strdup (value);
}

static void
apply_defaults (HostConfig *c)
{
  set_default (&c->vm_dir, VMHERD_SYSCONFDIR "/vmherd/vms.d");
  set_default (&c->run_dir, "/run/vmherd");
  set_default (&c->state_dir, "/var/lib/vmherd");
  set_default (&c->log_dir, "/var/log/vmherd");
  set_default (&c->qemu, "/usr/bin/qemu-system-x86_64");
  set_default (&c->qemu_img, "/usr/bin/qemu-img");
  set_default (&c->qemu_user, "vmherd-qemu");
  set_default (&c->control_group, "vmherd");
  if (c->control_socket == NULL)
    c->control_socket = g_build_filename (c->run_dir, "control", NULL);
  if (c->parallel_starts == 0)
    c->parallel_starts = 32;   /* bench/start-30: 16 was 18-32 % slower than bare QEMU, 30 at par */
  /* Migration: QMP-NOTES 2.3 and 4 (an idle 512 MB guest pauses 5-40 ms at 1 Gbit/s). */
  if (c->migrate_downtime_ms == 0)
    c->migrate_downtime_ms = 50;
  if (c->migrate_max_downtime_ms == 0)
    c->migrate_max_downtime_ms = MAX (1000, c->migrate_downtime_ms);
  if (c->migrate_timeout_ms == 0)
    c->migrate_timeout_ms = 10 * 60 * 1000;
  if (c->migrate_stall_timeout_ms == 0)
    c->migrate_stall_timeout_ms = 30 * 1000;
}

static void
check_daemon (HostParse *hp)
{
  const char *listen = hp->config->metrics_listen;
  g_autofree char *address = NULL;
  guint16 port;

  if (listen != NULL && !host_listen_parse (listen, &address, &port))
    config_errors_add (hp->errors, hp->file,
                       config_section_key_line (&hp->config->daemon, "metrics-listen"),
                       "metrics-listen: \"%s\" is not ADDR:PORT (e.g. 127.0.0.1:9177)", listen);
}

static void
check_bridges (HostParse *hp)
{
  for (guint i = 0; i < hp->config->bridges->len; i++)
    {
      HostBridge *b = hp->config->bridges->pdata[i];
      if (b->stp && (b->forward_delay_ms < 2000 || b->forward_delay_ms > 30000))
        config_errors_add (hp->errors, hp->file, config_section_key_line (&b->section, "stp"),
                           "stp: with STP on, the kernel wants forward-delay between 2s and 30s "
                           "(set forward-delay = 15s, or stp = no)");
      if (b->uplink != NULL && !host_ifname_is_valid (b->uplink))
        config_errors_add (hp->errors, hp->file, config_section_key_line (&b->section, "uplink"),
                           "uplink: \"%s\" is not an interface name (e.g. eth0 or bond0)",
                           b->uplink);
    }
}

HostConfig *
host_config_load (const char *path, ConfigErrors *errors)
{
  g_autoptr(HostConfig) config = g_new0 (HostConfig, 1);
  guint errors_before = errors->len;
  HostParse hp = { .config = config, .errors = errors };

  config->bridges = g_ptr_array_new_with_free_func ((GDestroyNotify) host_bridge_free);
  config_section_init (&config->daemon, NULL, 0);
  if (path == NULL && g_file_test (HOST_CONFIG_DEFAULT_PATH, G_FILE_TEST_EXISTS))
    path = HOST_CONFIG_DEFAULT_PATH;
  if (path != NULL)
    {
      /* A [daemon] header re-initialises the section; a file without one keeps this. */
      g_clear_pointer (&config->daemon.key_lines, g_hash_table_unref);
      config->path = g_strdup (path);
      hp.file = path;
      hp.base_dir = config_dir_of (path);
      config_ini_parse (path, on_ini_item, &hp, errors);
      check_daemon (&hp);
      check_bridges (&hp);
      if (config->peer != NULL)
        host_peer_link_finish (config->peer, errors, path);
      g_free (hp.base_dir);
      if (config->daemon.key_lines == NULL)
        config_section_init (&config->daemon, NULL, 0);
    }
  apply_defaults (config);
  config_errors_sort_from (errors, errors_before);
  if (errors->len > errors_before)
    return NULL;
  return g_steal_pointer (&config);
}

const char *
host_config_peer_address (const HostConfig *config, const char *name)
{
  const HostPeer *h = host_peer_link_find (config->peer, name);

  return h != NULL ? h->address : NULL;
}

const char *
host_config_peer_listen (const HostConfig *config)
{
  return config->peer != NULL ? config->peer->listen : NULL;
}

const char *
host_config_peer_name (const HostConfig *config)
{
  return config->peer != NULL ? config->peer->name : NULL;
}
