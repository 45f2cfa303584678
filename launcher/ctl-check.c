/* ctl-check.c: `vmherd check` and `vmherd show-cmdline`, which need no daemon. */
#include "launcher/ctl.h"

#include <stdio.h>
#include <string.h>

#include "launcher/qemu-argv.h"
#include "launcher/qemu-probe.h"
#include "launcher/vm-check.h"
#include "launcher/vm-snapshot.h"

int
ctl_cmd_check (CtlContext *ctx, int argc, char **argv)
{
  gboolean quiet = FALSE;

  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "-q") == 0 || strcmp (argv[i], "--quiet") == 0)
        quiet = TRUE;
      else
        return ctl_usage (ctx, "check");
    }
  return vm_check_report (ctx->config_path, quiet);
}

VmConfig *
ctl_load_vm (const HostConfig *host, const char *name)
{
  g_autofree char *problem = NULL;
  g_autofree char *file = g_strdup_printf ("%s.conf", name);
  g_autofree char *path = g_build_filename (host->vm_dir, file, NULL);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  VmConfig *vm;

  if (!vm_name_is_valid (name, &problem))
    {
      fprintf (stderr, "'%s' is not a valid VM name: it %s\n", name, problem);
      return NULL;
    }
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_autoptr(GPtrArray) files = vm_dir_list (host->vm_dir, NULL);
      GString *known = g_string_new (NULL);

      for (guint i = 0; files != NULL && i < files->len; i++)
        {
          g_autofree char *n = vm_name_from_file (files->pdata[i]);
          g_string_append_printf (known, "%s%s", known->len ? ", " : "", n);
        }
      fprintf (stderr, "no VM named '%s' in %s (known: %s)\n", name, host->vm_dir,
               known->len ? known->str : "none");
      g_string_free (known, TRUE);
      return NULL;
    }
  vm = vm_config_load (path, errors);
  config_errors_print (errors, stderr);
  return vm;
}

int
ctl_cmd_show_cmdline (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = NULL;
  g_autoptr(VmConfig) vm = NULL;
  g_autoptr(QemuProbe) probe = NULL;
  g_autoptr(QemuCmdline) cmdline = NULL;
  g_autoptr(VmSnapshots) snapshots = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;

  if (argc != 2)
    return ctl_usage (ctx, "show-cmdline");
  host = host_config_load (ctx->config_path, errors);
  if (host == NULL)
    {
      config_errors_print (errors, stderr);
      return CTL_EXIT_FAILED;
    }
  vm = ctl_load_vm (host, argv[1]);
  if (vm == NULL)
    return CTL_EXIT_FAILED;
  /* The disks' snapshot layers are what QEMU opens: the same record a start applies. */
  snapshots = vm_snapshots_load (host, vm->name, &error);
  if (snapshots == NULL || !vm_snapshots_apply (snapshots, vm, &error))
    fprintf (stderr, "warning: %s (the command line below has no snapshot layers)\n",
             error->message);
  probe = vm_check_probe (host, vm->machine == NULL);
  if (probe == NULL && vm->machine == NULL)
    return CTL_EXIT_FAILED;
  if (probe == NULL)
    {
      QemuHostCaps caps = { NULL, g_file_test ("/dev/vhost-net", G_FILE_TEST_EXISTS) };
      cmdline = qemu_argv_build (vm, host, &caps);
    }
  else
    cmdline = qemu_argv_build (vm, host, &probe->caps);
  text = qemu_argv_to_shell ((char **) cmdline->argv->pdata);
  fputs (text, stdout);
  return CTL_EXIT_OK;
}
