/* ctl-main.c: `vmherd`, the command-line tool.  Parses global options and dispatches. */
#include <stdio.h>
#include <string.h>

#include "launcher/ctl.h"

static int cmd_help (CtlContext *ctx, int argc, char **argv);
static int cmd_version (CtlContext *ctx, int argc, char **argv);

static const CtlCommand commands[] = {
  { "check", ctl_cmd_check, "[-q]", "check the host config and every VM file; exit 0 or 1" },
  { "show-cmdline", ctl_cmd_show_cmdline, "NAME", "print the exact QEMU command line of a VM" },
  { "image", ctl_cmd_image, "SUBCOMMAND ...", "disk images: info NAME, create, clone, flatten NAME" },
  { "list", ctl_cmd_list, "[--json]", "every guest: state, pid, uptime, memory, restarts, health" },
  { "status", ctl_cmd_status, "NAME [--json]", "everything known of one guest" },
  { "start", ctl_cmd_start, "NAME", "start a guest; returns once it runs" },
  { "stop", ctl_cmd_stop, "NAME [--force] [--timeout S]", "stop a guest: powerdown, quit, TERM, KILL" },
  { "restart", ctl_cmd_restart, "NAME", "stop, then start" },
  { "reset", ctl_cmd_reset, "NAME", "hard reset (like the reset button)" },
  { "pause", ctl_cmd_pause, "NAME", "stop the guest's vCPUs" },
  { "resume", ctl_cmd_resume, "NAME", "run the guest's vCPUs again" },
  { "console", ctl_cmd_console, "NAME", "the guest's serial console (Ctrl-] leaves)" },
  { "logs", ctl_cmd_logs, "NAME [-f] [--serial]", "the guest's log (lifecycle, QEMU's stderr) or serial log" },
  { "events", ctl_cmd_events, "[--json]", "follow lifecycle and QMP events" },
  { "qmp", ctl_cmd_qmp, "NAME [--read-only] [COMMAND [KEY=VALUE...]]", "QMP console (shared with vmherdd)" },
  { "reload", ctl_cmd_reload, "", "rescan the VM directory now (as SIGHUP does)" },
  { "shutdown-all", ctl_cmd_shutdown_all, "[--timeout S]", "stop every guest, last started first" },
  { "snapshot", ctl_cmd_snapshot, "NAME create|list|delete|revert [TAG]", "external snapshots of a guest's disks" },
  { "peers", ctl_cmd_peers, "[--json]", "the peer hosts: reachable, free memory, guests (exit 1 if one is not)" },
  { "migrate", ctl_cmd_migrate, "NAME HOST [--copy-storage] [--postcopy] | --cancel NAME", "live-migrate a guest to a peer host" },
  { "evacuate", ctl_cmd_evacuate, "[--to HOST,...] [--parallel N] [--copy-storage]", "migrate every guest off this host" },
  { "version", cmd_version, "", "print vmherd's version" },
  { "help", cmd_help, "", "this list" },
  { 0 },
};

static void
print_commands (FILE *out)
{
  fprintf (out, "usage: vmherd [--config FILE] COMMAND [ARGS]\n\ncommands:\n");
  for (const CtlCommand *c = commands; c->name != NULL; c++)
    {
      g_autofree char *left = g_strdup_printf ("%s %s", c->name, c->args);
      fprintf (out, "  %-28s %s\n", left, c->summary);
    }
  fprintf (out, "\nexit status: 0 done, 1 refused or failed, 2 usage error, "
                "3 vmherdd unreachable.  See vmherd(1).\n");
}

int
ctl_usage (CtlContext *ctx, const char *command)
{
  for (const CtlCommand *c = commands; c->name != NULL; c++)
    if (strcmp (c->name, command) == 0)
      fprintf (stderr, "usage: %s %s %s\n", ctx->program, c->name, c->args);
  return CTL_EXIT_USAGE;
}

static int
cmd_help (CtlContext *ctx G_GNUC_UNUSED, int argc G_GNUC_UNUSED, char **argv G_GNUC_UNUSED)
{
  print_commands (stdout);
  return CTL_EXIT_OK;
}

static int
cmd_version (CtlContext *ctx G_GNUC_UNUSED, int argc G_GNUC_UNUSED, char **argv G_GNUC_UNUSED)
{
  printf ("vmherd %s\n", VMHERD_VERSION);
  return CTL_EXIT_OK;
}

int
main (int argc, char **argv)
{
  CtlContext ctx = { .program = "vmherd" };
  int i = 1;

  for (; i < argc && argv[i][0] == '-'; i++)
    {
      if (strcmp (argv[i], "--config") == 0 && i + 1 < argc)
        ctx.config_path = argv[++i];
      else if (g_str_has_prefix (argv[i], "--config="))
        ctx.config_path = argv[i] + strlen ("--config=");
      else if (strcmp (argv[i], "-h") == 0 || strcmp (argv[i], "--help") == 0)
        return cmd_help (&ctx, 0, NULL);
      else
        {
          fprintf (stderr, "vmherd: unknown option %s\n", argv[i]);
          print_commands (stderr);
          return CTL_EXIT_USAGE;
        }
    }
  if (i == argc)
    {
      print_commands (stderr);
      return CTL_EXIT_USAGE;
    }
  for (const CtlCommand *c = commands; c->name != NULL; c++)
    if (strcmp (c->name, argv[i]) == 0)
      return c->func (&ctx, argc - i, argv + i);
  fprintf (stderr, "vmherd: unknown command '%s'\n", argv[i]);
  print_commands (stderr);
  return CTL_EXIT_USAGE;
}
