/* qemu-probe.c: what the installed QEMU offers, asked once. */
#include "launcher/qemu-probe.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

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

/* The output of `qemu -machine help`, or NULL. */
static char *
machine_help (const char *qemu, GError **error)
{
  const char *argv[] = { qemu, "-machine", "help", NULL };
  g_autoptr(GSubprocess) proc = NULL;
  g_autofree char *out = NULL;

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
  return g_steal_pointer (&out);
}

static QemuProbe *
probe_from (const char *qemu, const char *help, GError **error)
{
  QemuProbe *probe = qemu_probe_parse (help, g_file_test ("/dev/vhost-net", G_FILE_TEST_EXISTS), error);

  if (probe == NULL)
    g_prefix_error (error, "%s: ", qemu);
  return probe;
}

QemuProbe *
qemu_probe_run (const char *qemu, GError **error)
{
  g_autofree char *help = machine_help (qemu, error);

  return help != NULL ? probe_from (qemu, help, error) : NULL;
}

/* The first line of the cache: which file the output came from. */
static char *
binary_identity (const char *qemu)
{
  struct stat st;

  if (stat (qemu, &st) < 0)
    return NULL;
  return g_strdup_printf ("vmherd qemu-probe 1: %s dev %ju ino %ju size %jd mtime %jd.%09ld ctime %jd.%09ld",
                          qemu, (uintmax_t) st.st_dev, (uintmax_t) st.st_ino, (intmax_t) st.st_size,
                          (intmax_t) st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                          (intmax_t) st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

QemuProbe *
qemu_probe_run_cached (const char *qemu, const char *cache_path, GError **error)
{
  g_autofree char *identity = binary_identity (qemu);
  g_autofree char *cached = NULL, *help = NULL, *contents = NULL;
  const char *newline;

  if (identity != NULL && g_file_get_contents (cache_path, &cached, NULL, NULL)
      && (newline = strchr (cached, '\n')) != NULL
      && (gsize) (newline - cached) == strlen (identity)
      && strncmp (cached, identity, strlen (identity)) == 0)
    {
      QemuProbe *probe = qemu_probe_parse (newline + 1, g_file_test ("/dev/vhost-net", G_FILE_TEST_EXISTS),
                                           NULL);
      if (probe != NULL)
        return probe;
    }
  help = machine_help (qemu, error);
  if (help == NULL)
    return NULL;
  if (identity != NULL)
    {
      /* Written whole or not at all (a temporary file renamed); no fsync: a cache. */
      g_autofree char *tmp = g_strdup_printf ("%s.tmp", cache_path);

      contents = g_strdup_printf ("%s\n%s", identity, help);
      if (!g_file_set_contents_full (tmp, contents, -1, G_FILE_SET_CONTENTS_NONE, 0644, NULL)
          || g_rename (tmp, cache_path) < 0)
        g_unlink (tmp);
    }
  return probe_from (qemu, help, error);
}

gboolean
qemu_probe_has_machine (const QemuProbe *probe, const char *machine)
{
  return g_strv_contains ((const char *const *) probe->machines, machine);
}
