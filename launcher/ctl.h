/* ctl.h: the vmherd command-line tool's commands.  Each returns an exit code. */
#pragma once

#include <glib.h>

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

/* Shared by `vmherd check` and `vmherdd --check`: prints every problem, 0/1. */
int ctl_check_config (const char *config_path, gboolean quiet);

int ctl_cmd_check (CtlContext *ctx, int argc, char **argv);
int ctl_cmd_show_cmdline (CtlContext *ctx, int argc, char **argv);
