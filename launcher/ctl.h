/* ctl.h: the vmherd command-line tool's commands.  Each returns an exit code. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "launcher/host-config.h"
#include "launcher/vm-config.h"

enum { CTL_EXIT_OK = 0, CTL_EXIT_FAILED = 1, CTL_EXIT_USAGE = 2, CTL_EXIT_UNREACHABLE = 3 };

typedef struct
{
  const char *config_path;      /* --config, or NULL for the default */
  const char *program;          /* "vmherd" */
} CtlContext;

typedef int (*CtlFunc) (CtlContext *ctx, int argc, char **argv);

typedef struct
{
  const char *name;
  CtlFunc func;
  const char *args;             /* "NAME [--json]" */
  const char *summary;
} CtlCommand;

/* Prints "usage: vmherd NAME ARGS" for the command to stderr; returns CTL_EXIT_USAGE. */
int ctl_usage (CtlContext *ctx, const char *command);

int ctl_cmd_check (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_show_cmdline (CtlContext *ctx, int argc, char **argv);

/* ctl-daemon.c: commands answered by vmherdd, and the one call they all make: connects
 * to vmherdd (VMHERD_CONTROL_SOCKET, else the host file's control-socket), runs command
 * (timeout_ms 0: none; extra lines before the answer go to on_line, nullable, which is
 * called once more with NULL before the answer or error is printed), prints any
 * error to stderr; returns the "return" value or NULL with *out_status the exit code. */
typedef void (*CtlLineFunc) (JsonObject *line, gpointer user_data);
JsonNode *ctl_call (CtlContext *ctx, const char *command, JsonObject *args, guint timeout_ms,
                    CtlLineFunc on_line, gpointer line_data, int *out_status);
/* Pretty-printed JSON on stdout. */
void ctl_print_json (JsonNode *node);

int ctl_cmd_list (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_status (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_start (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_stop (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_restart (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_reset (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_pause (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_resume (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_reload (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_shutdown_all (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_events (CtlContext *ctx, int argc, char **argv);

/* ctl-qmp.c: the QMP console. */
int ctl_cmd_qmp (CtlContext *ctx, int argc, char **argv);

/* ctl-console.c: the serial console and the logs. */
int ctl_cmd_console (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_logs (CtlContext *ctx, int argc, char **argv);

/* ctl-check.c: loads vm-dir/NAME.conf of host; on failure prints why (an invalid name, no
 * such VM with the known ones, file:line problems) to stderr and returns NULL. */
VmConfig *ctl_load_vm (const HostConfig *host, const char *name);

/* ctl-image.c: `vmherd image info|create|clone|flatten`, offline (qemu-img, no daemon). */
int ctl_cmd_image (CtlContext *ctx, int argc, char **argv);

/* ctl-snapshot.c: `vmherd snapshot NAME create|list|delete|revert`, through vmherdd. */
int ctl_cmd_snapshot (CtlContext *ctx, int argc, char **argv);

/* ctl-peers.c: `vmherd peers`, the peer hosts of [peer] as this host's vmherdd sees them. */
int ctl_cmd_peers (CtlContext *ctx, int argc, char **argv);
/* ctl-migrate.c: `vmherd migrate NAME HOST`, `migrate --cancel NAME`, `evacuate`. */
int ctl_cmd_migrate (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_evacuate (CtlContext *ctx, int argc, char **argv);
