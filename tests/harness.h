/* harness.h: a real vmherdd for tests: a host folder, VM files, the daemon started and
 * ready, everything it started killed when the test ends. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "launcher/control-proto.h"

typedef struct
{
  char *dir, *config, *socket, *pidfile;
  char *netns;                  /* vmherdd runs in this named network namespace, or NULL */
} Host;

/* A host folder (0755, QEMU runs as nobody) with vmherd.conf (extra_host_config appended,
 * nullable) and an empty vms.d; nothing started.  Everything it starts is killed when
 * the test ends. */
Host *host_new (const char *extra_host_config);
/* Writes vms.d/NAME.conf. */
void host_add_vm (Host *h, const char *name, const char *text);

/* A host with the VM files given as name, text, ..., NULL (extra_host_config appended to
 * vmherd.conf, nullable); vmherdd started (it returns once its control socket listens). */
Host *host_start_with (const char *extra_host_config, const char *first_name, ...) G_GNUC_NULL_TERMINATED;
#define host_start(...) host_start_with (NULL, __VA_ARGS__)

/* `vmherd start NAME`, which returns once the guest runs; fails the test otherwise. */
void start_vm (Host *h, const char *name);

/* Reads from fd until text shows up (fails the test after timeout_ms); returns all read. */
char *read_until (int fd, const char *text, int timeout_ms);

/* Kills the daemon (SIGKILL) and waits until it is gone, guests left running. */
void host_kill_daemon (Host *h);

/* Starts vmherdd (again) on the host's config, in h->netns when set (`ip netns exec`);
 * returns once it listens. */
void host_restart_daemon (Host *h);

/* A control connection that asked for `events` (read them with control_client_read_line). */
ControlClient *host_subscribe_events (Host *h);

/* The next line of an events stream, read before deadline (monotonic us); fails the test,
 * naming `what` it waited for, when none comes. */
JsonObject *host_next_event (ControlClient *c, gint64 deadline, const char *what);

/* Reads lines of an events stream until event `name` whose data has each string member
 * given as key, value, ... (NULL-terminated), e.g. "vm", "web", "state", "running";
 * returns its data.  Fails the test, naming what it waited for, after timeout_ms. */
JsonObject *host_expect_event (ControlClient *c, int timeout_ms, const char *name, ...) G_GNUC_NULL_TERMINATED;

/* `status` of vm over the control socket (what `vmherd status --json` prints). */
JsonObject *host_vm_status (Host *h, const char *vm);

/* A TCP port nobody listens on now on 127.0.0.1 (bound to port 0, read, closed). */
guint16 test_free_port (void);

/* The guest's serial console through vmherdd (`console`), read until its shell's first
 * prompt ("/ # ", after "vmherd-guest: ready"): input typed earlier would be flushed when
 * the shell sets up the terminal.  *out_fd is the stream; *out_seen (nullable) all read. */
ControlClient *host_console_ready (Host *h, const char *vm, int *out_fd, char **out_seen);

/* Writes text (a command line, with its "\n") to the console. */
void console_type (int fd, const char *text);
