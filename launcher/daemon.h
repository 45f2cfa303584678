/* daemon.h: vmherdd, the supervisor of one host's guests. */
#pragma once

#include <glib.h>

typedef struct _Daemon Daemon;

typedef struct
{
  const char *config_path;      /* NULL: the default host config */
  gboolean foreground;
  int ready_fd;                 /* written to (then closed) once the control socket listens; -1 */
  const char *pidfile;          /* written once listening, removed at exit if still ours; NULL */
} DaemonOptions;

/* Reads the host config and probes QEMU; fails with a message for the operator. */
Daemon *daemon_new (const DaemonOptions *options, GError **error);
void daemon_free (Daemon *daemon);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Daemon, daemon_free)

/* Opens the control socket, loads and re-adopts guests, autostarts, watches vm-dir, then
 * runs until SIGTERM/SIGINT.  Guests keep running after it returns.  Returns the exit code. */
int daemon_run (Daemon *daemon);
