/* daemon-private.h: the Daemon struct, shared by daemon.c (lifecycle, autostart),
 * daemon-scan.c (the VM folder) and daemon-commands.c (control requests). */
#pragma once

#include "launcher/control.h"
#include "launcher/daemon.h"
#include "launcher/host-config.h"
#include "launcher/qemu-probe.h"
#include "launcher/vm.h"

typedef struct _DaemonConsole DaemonConsole;
typedef struct _DaemonMetrics DaemonMetrics;
typedef struct _PeerServer PeerServer;

struct _Daemon
{
  DaemonOptions options;
  char *config_path;
  HostConfig *host;
  QemuProbe *probe;
  GMainLoop *loop;
  ControlServer *control;
  GHashTable *vms;              /* name -> Vm * */
  GHashTable *file_sums;        /* name -> checksum of the VM file last read */
  GFileMonitor *monitor;
  guint rescan_timer;
  guint reap_idle;
  guint signal_ids[3];

  GQueue autostart;             /* Vm * waiting, by start-order */
  GHashTable *autostart_running;/* Vm * launched and not yet settled */
  gboolean ready_notified;

  GPtrArray *waiters;           /* DaemonWaiter: requests answered on a state change */
  DaemonMetrics *metrics;       /* NULL: no metrics-listen, or it could not listen */
  NetLink *netlink;             /* NULL when not root: guests with NICs cannot start */
  GHashTable *consoles;         /* VM name -> DaemonConsole, one per guest */
  GHashTable *migrations_out;   /* VM name -> MigrateOut (migrate-source.c) */
  GHashTable *migrations_in;    /* VM name -> MigrateIn (migrate-dest.c) */
  struct
  {
    guint64 out_ok, out_failed, in_ok;
    gint64 last_total_ms, last_downtime_ms;   /* of the last one that moved a guest out; -1 */
  } migration_stats;
  gboolean notifying, notify_again;
  PeerServer *peer_server;      /* NULL: no [peer], or it could not listen */
};

/* daemon.c */
extern const VmObserver daemon_vm_observer;
Vm *daemon_find_vm (Daemon *daemon, const char *name);
/* Forgets every VM whose file is gone and that has stopped (an idle callback). */
gboolean daemon_reap_removed (gpointer daemon);
/* Records the operator's wish for a VM in state-dir, so a new vmherdd honours it. */
void daemon_save_desired (Daemon *daemon, const char *name, gboolean running);
gboolean daemon_load_desired (Daemon *daemon, const char *name, gboolean *out_running);

/* daemon-scan.c: reads vm-dir; new, changed and removed files.  Returns the VMs it defined
 * (borrowed), so the caller can adopt or autostart them. */
GPtrArray *daemon_scan (Daemon *daemon);
/* daemon_scan(), then starts the newly defined guests whose file says autostart = yes
 * (the watch, SIGHUP and `reload` all do this). */
GPtrArray *daemon_rescan (Daemon *daemon);
void daemon_watch_vm_dir (Daemon *daemon);

/* daemon-commands.c */
void daemon_handle_request (ControlRequest *request, const char *command, JsonObject *arguments,
                            gpointer user_data);
extern const char *const daemon_read_only_commands[];
/* The VM named by args' "vm" (type- and name-checked), or NULL after answering the request
 * with InvalidArgument or NotFound. */
Vm *daemon_request_vm (Daemon *daemon, ControlRequest *request, JsonObject *args);
/* Answers request with NotFound naming the known VMs (or InvalidArgument without a name). */
void daemon_answer_no_vm (Daemon *daemon, ControlRequest *request, const char *name);

/* daemon-net.c: bridges created or adopted; taps re-attached on rescan. */
void daemon_net_open (Daemon *daemon);
void daemon_net_refresh (Daemon *daemon);
void daemon_net_close (Daemon *daemon);

/* daemon-metrics.c: GET /metrics on metrics-listen (Prometheus text format).  A failure
 * to listen is logged and the daemon runs on without metrics. */
void daemon_metrics_open (Daemon *daemon);
void daemon_metrics_free (DaemonMetrics *metrics);

/* daemon-console.c: `console`, the serial console spliced through the daemon. */
void daemon_cmd_console (Daemon *daemon, ControlRequest *request, JsonObject *args);
GHashTable *daemon_consoles_new (void);
void daemon_consoles_free (Daemon *daemon);

/* daemon-snapshot.c: `snapshot` (create, list, delete, revert). */
void daemon_cmd_snapshot (Daemon *daemon, ControlRequest *request, JsonObject *args);

/* daemon-qmp.c: `qmp`, the console's commands forwarded to QEMU. */
void daemon_cmd_qmp (Daemon *daemon, ControlRequest *request, JsonObject *args);
void daemon_waiters_notify (Daemon *daemon, Vm *vm);
void daemon_waiters_drop_vm (Daemon *daemon, Vm *vm);
void daemon_broadcast_state (Daemon *daemon, Vm *vm, VmState old, const char *reason);
/* A CONFIG event: what a scan made of a VM file.  change: defined, pending (applies at the
 * next restart), applied (nothing ran on the old one), current (the file says what runs
 * again), invalid (errors: "FILE:LINE: msg" each), removed, forgotten. */
void daemon_broadcast_config (Daemon *daemon, const char *vm, const char *change,
                              const char *reason, GPtrArray *errors);

/* daemon-peer.c: the peer link ([peer]): its server, the peer commands (`hello`, ...) and
 * the control command `peers`.  A failure to listen is logged and the daemon runs on. */
void daemon_peer_open (Daemon *daemon);
void daemon_peer_close (Daemon *daemon);
void daemon_cmd_peers (Daemon *daemon, ControlRequest *request, JsonObject *args);
/* daemon-migrate.c: `migrate`, `migrate-cancel`, `evacuate`, and the peers' migration
 * requests (migrate-prepare, migrate-finish, migrate-abort). */
void daemon_migrate_init (Daemon *daemon);
void daemon_migrate_free (Daemon *daemon);
void daemon_migrate_state_changed (Daemon *daemon, Vm *vm, VmState old_state);
void daemon_cmd_migrate (Daemon *daemon, ControlRequest *request, JsonObject *args);
void daemon_cmd_migrate_cancel (Daemon *daemon, ControlRequest *request, JsonObject *args);
void daemon_cmd_evacuate (Daemon *daemon, ControlRequest *request, JsonObject *args);
typedef struct _PeerRequest PeerRequest;
void daemon_peer_migrate_prepare (PeerRequest *request, const char *command, JsonObject *args,
                                  gpointer daemon);
void daemon_peer_migrate_finish (PeerRequest *request, const char *command, JsonObject *args,
                                 gpointer daemon);
void daemon_peer_migrate_abort (PeerRequest *request, const char *command, JsonObject *args,
                                gpointer daemon);
