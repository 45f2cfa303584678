/* host-config.h: /etc/vmherd/vmherd.conf, the host's own settings.
 * The format is documented in docs/vmherd.conf.5. */
#pragma once

#include <glib.h>

#include "launcher/config-ini.h"
#include "launcher/config-keys.h"
#include "launcher/host-peer.h"

#define HOST_CONFIG_DEFAULT_PATH VMHERD_SYSCONFDIR "/vmherd/vmherd.conf"

typedef struct
{
  ConfigSection section;        /* section.name is the bridge's interface name */
  char *uplink;
  gint64 mtu;                   /* 0: leave as it is */
  gboolean vlan_filtering;
  gboolean stp;
  gint64 forward_delay_ms;
} HostBridge;

typedef struct
{
  char *path;                   /* the file read, or NULL when built-in defaults are used */
  ConfigSection daemon;
  char *vm_dir, *run_dir, *state_dir, *log_dir;
  char *qemu, *qemu_img;
  char *qemu_user;
  char *qemu_group;             /* NULL: qemu_user's primary group */
  char *control_socket;
  char *control_group;
  gint64 parallel_starts;
  char *metrics_listen;         /* "ADDR:PORT" of the Prometheus endpoint, NULL: off */
  GPtrArray *bridges;           /* HostBridge */
  HostPeerLink *peer;           /* [peer], NULL: no peer link */

  /* [migration] */
  ConfigSection migration;
  char *migrate_address;        /* where incoming streams listen; NULL: the [peer] address */
  gint64 migrate_bandwidth_mbit;   /* cap per migration, Mbit/s; 0: none */
  gint64 migrate_downtime_ms;      /* first downtime limit (default 50 ms) */
  gint64 migrate_max_downtime_ms;  /* raised up to this when not converging (default 1 s) */
  gint64 migrate_timeout_ms;       /* a migration not done by then is cancelled (10 min) */
  gint64 migrate_stall_timeout_ms; /* no byte going over this long: cancelled (30 s) */
} HostConfig;

void host_config_free (HostConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (HostConfig, host_config_free)

/* Reads path.  When path is NULL the default file is read if it exists, else the built-in
 * defaults are used.  Problems go to errors; returns NULL when there was at least one. */
HostConfig *host_config_load (const char *path, ConfigErrors *errors);

/* The bridge declared as name, or NULL. */
const HostBridge *host_config_find_bridge (const HostConfig *config, const char *name);

/* Splits "127.0.0.1:9177" or "[::1]:9177" into an IP address literal and a port
 * (1..65535); FALSE, touching nothing, when text is not that. */
gboolean host_listen_parse (const char *text, char **out_address, guint16 *out_port);

/* [peer]: "ADDR:PORT" of the peer host name (as configured; split it with
 * host_listen_parse()), or NULL when there is no [peer] or no such host. */
const char *host_config_peer_address (const HostConfig *config, const char *name);
/* [peer]: this host's listen = "ADDR:PORT", or NULL without [peer]. */
const char *host_config_peer_listen (const HostConfig *config);
/* [peer]: this host's name in the group, or NULL without [peer]. */
const char *host_config_peer_name (const HostConfig *config);

/* TRUE when name can be a Linux interface name (1..15 characters, no '/', ':' or space). */
gboolean host_ifname_is_valid (const char *name);
