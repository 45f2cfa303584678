/* qemu-probe.c: what the installed QEMU offers, asked once. */
#include "launcher/qemu-probe.h"

#include <gio/gio.h>
#include <string.h>

void
qemu_probe_free (QemuProbe *probe)
{
  if (probe == NULL)
    return;
  g_free (probe->default_machine);
  g_strfreev (probe->machines);
  g_free (probe);
}

QemuProbe *
qemu_probe_parse (const char *help, gboolean vhost_net, GError **error)
{
  g_autoptr(QemuProbe) probe = g_new0 (QemuProbe, 1);
  g_auto(GStrv) lines = g_strsplit (help, "\n", -1);
  g_autoptr(GPtrArray) machines = g_ptr_array_new_with_free_func (g_free);

  for (char **l = lines; *l != NULL; l++)
    {
      g_auto(GStrv) words = g_strsplit_set (*l, " \t", 2);
      const char *alias;

      if (words[0] == NULL || words[0][0] == '\0' || g_str_has_suffix (words[0], ":"))
        continue;               /* "Supported machines are:" */
      g_ptr_array_add (machines, g_strdup (words[0]));
      /* "q35   Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)" */
      if (strcmp (words[0], "q35") == 0 && words[1] != NULL
          && (alias = strstr (words[1], "(alias of ")) != NULL)
        probe->default_machine = g_strndup (alias + 10, strcspn (alias + 10, ")"));
    }
  if (probe->default_machine == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "this QEMU offers no versioned q35 machine (no 'q35 ... alias of pc-q35-X.Y' "
                   "in -machine help); set machine = in each VM file");
      return NULL;
    }
  g_ptr_array_add (machines, NULL);
  g_ptr_array_set_free_func (machines, NULL);
  probe->machines = (GStrv) g_ptr_array_steal (machines, NULL);
  probe->caps.default_machine = probe->default_machine;
  probe->caps.vhost_net = vhost_net;
  return g_steal_pointer (&probe);
}

QemuProbe *
qemu_probe_run (const char *qemu, GError **error)
{
  const char *argv[] = { qemu, "-machine", "help", NULL };
  g_autoptr(GSubprocess) proc = NULL;
  g_autofree char *out = NULL;
  QemuProbe *probe;

  proc = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                            error);
  if (proc == NULL || !g_subprocess_communicate_utf8 (proc, NULL, NULL, &out, NULL, error))
    {
      g_prefix_error (error, "cannot run %s: ", qemu);
      return NULL;
    }
  if (!g_subprocess_get_successful (proc))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s -machine help failed (is it QEMU?)",
                   qemu);
      return NULL;
    }
  probe = qemu_probe_parse (out, g_file_test ("/dev/vhost-net", G_FILE_TEST_EXISTS), error);
  if (probe == NULL)
    g_prefix_error (error, "%s: ", qemu);
  return probe;
}

gboolean
qemu_probe_has_machine (const QemuProbe *probe, const char *machine)
{
  return g_strv_contains ((const char *const *) probe->machines, machine);
}
