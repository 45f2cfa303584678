/* vm-config.h: one VM file (vm-dir/NAME.conf), parsed and validated.
 * The format is documented in docs/vmherd-vm.conf.5. */
#pragma once

#include <glib.h>

#include "launcher/config-ini.h"
#include "launcher/config-keys.h"

#define VM_NAME_MAX 48
#define VM_DEVICE_NAME_MAX 16    /* [disk NAME], [net NAME]: QEMU node names stay < 32 */

typedef enum { VM_RESTART_ON_FAILURE, VM_RESTART_ALWAYS, VM_RESTART_NO } VmRestartPolicy;
typedef enum { VM_CACHE_NONE, VM_CACHE_WRITEBACK, VM_CACHE_WRITETHROUGH, VM_CACHE_DIRECTSYNC,
               VM_CACHE_UNSAFE } VmCacheMode;
typedef enum { VM_ON_ERROR_STOP, VM_ON_ERROR_REPORT, VM_ON_ERROR_IGNORE } VmOnError;
typedef enum { VM_FORMAT_QCOW2, VM_FORMAT_RAW } VmImageFormat;
typedef enum { VM_WATCHDOG_NONE, VM_WATCHDOG_RESET, VM_WATCHDOG_POWEROFF,
               VM_WATCHDOG_PAUSE } VmWatchdogAction;
typedef enum { VM_PANIC_RESTART, VM_PANIC_PAUSE, VM_PANIC_NONE } VmPanicAction;

const char *vm_restart_policy_to_string (VmRestartPolicy policy);
const char *vm_cache_mode_to_string (VmCacheMode mode);
const char *vm_image_format_to_string (VmImageFormat format);
const char *vm_watchdog_action_to_string (VmWatchdogAction action);
const char *vm_panic_action_to_string (VmPanicAction action);
const char *vm_on_error_to_string (VmOnError on_error);

/* A disk served over NBD (vm-disk-nbd.c): image = nbd://HOST[:PORT]/EXPORT or
 * nbd+unix:///EXPORT?socket=PATH. */
typedef struct
{
  char *export;                 /* "" for the server's default export */
  char *socket;                 /* unix: the server's socket; else NULL */
  char *host, *port;            /* tcp: the server; else NULL */
} VmNbd;

void vm_nbd_free (VmNbd *nbd);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmNbd, vm_nbd_free)
/* TRUE when an image value is meant as an NBD URL (nbd: or nbd+...:). */
gboolean vm_nbd_is_url (const char *text);
/* Parses an NBD URL; NULL with out_problem set (a phrase for "FILE:LINE: image: PROBLEM"). */
VmNbd *vm_nbd_parse (const char *url, char **out_problem);

typedef struct
{
  ConfigSection section;        /* section.name is the disk's name */
  char *image;
  int format;                   /* VmImageFormat */
  char *base;
  int base_format;              /* VmImageFormat */
  int cache;                    /* VmCacheMode */
  int on_error;                 /* VmOnError */
  gboolean shared;
  gboolean read_only;
  VmNbd *nbd;                   /* image is an nbd:// or nbd+unix:// URL; NULL: a file */
  /* Not from the VM file: the snapshot layers on image (char *, oldest first; NULL: none),
   * from state-dir/snapshots/NAME.json (vm-snapshot.h), set before each start.  The last
   * one is what the guest writes; image and the others are then opened read-only. */
  GPtrArray *overlays;
} VmDisk;

typedef struct
{
  ConfigSection section;        /* section.name is the NIC's name */
  char *bridge;
  gint64 vlan;                  /* 0: untagged / none */
  GArray *trunk;                /* guint16 VLAN ids, or NULL */
  char *mac;                    /* configured or derived, always set after parsing */
  int model;                    /* index into vm_nic_models */
} VmNic;

extern const char *const vm_nic_models[];   /* "virtio", "e1000", ... */
/* QEMU device for a model: virtio -> virtio-net-pci. */
const char *vm_nic_model_device (int model);

/* One service probe of [health]: probe = SPEC [interval=10s] [timeout=2s] [failures=3]
 * [grace=60s] [action=restart|report]; parsed by vm-probe-spec.c, run by vm-probe.c. */
typedef enum { VM_PROBE_TCP, VM_PROBE_UDP, VM_PROBE_EXEC } VmProbeKind;
typedef enum { VM_PROBE_ACTION_RESTART, VM_PROBE_ACTION_REPORT } VmProbeAction;

const char *vm_probe_kind_to_string (VmProbeKind kind);
const char *vm_probe_action_to_string (VmProbeAction action);

typedef struct
{
  char *spec;                   /* "tcp:10.0.0.2:5000", as written (%n not replaced) */
  VmProbeKind kind;
  char *host;                   /* tcp, udp: an IP address */
  guint16 port;                 /* tcp, udp */
  GBytes *payload;              /* udp: the datagram sent */
  char **argv;                  /* exec: the command, split, %n replaced */
  gint64 interval_ms, timeout_ms, failures, grace_ms;
  int action;                   /* VmProbeAction */
} VmProbe;

void vm_probe_free (VmProbe *probe);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmProbe, vm_probe_free)
VmProbe *vm_probe_copy (const VmProbe *probe);
/* Parses the value of a probe line for the VM vm_name; NULL with out_problem set (a
 * phrase for "FILE:LINE: probe: PROBLEM") when it is wrong. */
VmProbe *vm_probe_parse (const char *text, const char *vm_name, char **out_problem);

typedef struct
{
  ConfigSection section;
  gint64 qmp_interval_ms, qmp_timeout_ms, qmp_failures;
  int watchdog;                 /* VmWatchdogAction */
  int panic;                    /* VmPanicAction */
  gboolean guest_agent;
  gint64 agent_interval_ms, agent_timeout_ms, agent_failures;
  gint64 agent_grace_ms;
  int agent_action;             /* VmProbeAction: what agent_failures failed pings do */
  GPtrArray *probe_texts;       /* each probe = line as written (char *) */
  gint64 storage_interval_ms;   /* paused for a disk error: storage checked this often */
  gint64 storage_timeout_ms;    /* one storage check's limit */
  gint64 storage_stuck_after_ms;   /* paused for a disk error this long: reported stuck */
  GPtrArray *probes;            /* VmProbe, parsed from probe_texts */
} VmHealth;

typedef struct
{
  char *name;                   /* the file name without .conf */
  char *path;                   /* the file, as named */
  char *checksum;               /* SHA-256 of the file as the daemon read it, or NULL */
  ConfigSection vm;             /* [vm] */
  guint64 memory;               /* bytes, a whole number of MiB */
  gint64 cpus;
  char *machine;                /* NULL: the host's default pinned q35 */
  char *cpu_model;
  char *accel;
  char *uuid;                   /* configured or derived from the name */
  gboolean autostart;
  gint64 start_order;
  int restart;                  /* VmRestartPolicy */
  gint64 restart_limit, restart_window_ms;
  gint64 powerdown_timeout_ms, quit_timeout_ms, term_timeout_ms;

  GPtrArray *disks;             /* VmDisk */
  GPtrArray *nics;              /* VmNic */
  ConfigSection kernel_section;
  char *kernel, *initrd, *append;
  ConfigSection serial_section;
  char *serial_log;             /* NULL: log-dir/NAME.serial.log */
  VmHealth health;
  ConfigSection qemu_section;
  char **extra_args;
} VmConfig;

void vm_config_free (VmConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmConfig, vm_config_free)

/* TRUE when name may name a VM (letters, digits, '-', '_', '.'; 1..48; not '.'-first);
 * else FALSE and out_problem says why. */
gboolean vm_name_is_valid (const char *name, char **out_problem);

/* Name of the VM a file in vm-dir defines ("web" for web.conf), or NULL when the file is
 * not a VM file (no .conf suffix, a dotfile, an editor backup). */
char *vm_name_from_file (const char *file_name);

/* Parses and validates path.  Every problem goes to errors as file:line; returns NULL
 * when there was at least one.  Problems that need the host (images exist, bridges
 * exist) are checked by vm_check_*(). */
VmConfig *vm_config_load (const char *path, ConfigErrors *errors);
/* The same for a file read from read_path but named, placed and reported as path (an
 * incoming migration's file, before it moves into vm-dir). */
VmConfig *vm_config_load_as (const char *read_path, const char *path, ConfigErrors *errors);

/* The locally administered MAC derived from (VM name, NIC name), identical on every host. */
char *vm_derive_mac (const char *vm_name, const char *nic_name);
/* The UUID derived from the VM name, identical on every host. */
char *vm_derive_uuid (const char *vm_name);
