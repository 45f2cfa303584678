/* daemon-main.c: `vmherdd`.  Parses options, daemonizes unless -f, runs the daemon. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launcher/vm-check.h"
#include "launcher/daemon.h"

static FILE *log_stream;

static GLogWriterOutput
write_log (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data G_GNUC_UNUSED)
{
  const char *message = NULL, *domain = NULL;
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y-%m-%d %H:%M:%S");

  if ((level & G_LOG_LEVEL_DEBUG) && g_getenv ("G_MESSAGES_DEBUG") == NULL)
    return G_LOG_WRITER_HANDLED;
  for (gsize i = 0; i < n_fields; i++)
    if (strcmp (fields[i].key, "MESSAGE") == 0)
      message = fields[i].value;
    else if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0)
      domain = fields[i].value;
  fprintf (log_stream, "%s %s: %s\n", stamp, domain ? domain : "vmherdd", message ? message : "");
  fflush (log_stream);
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    return g_log_writer_default (level, fields, n_fields, NULL);
  return G_LOG_WRITER_HANDLED;
}

/* Classic double-fork daemon, done before GLib starts any thread (a forked child keeps only
 * the calling thread, and GLib's child watches need its worker).  The parent returns only
 * when the child listens on the control socket, or prints why it could not, so
 * `vmherdd && vmherd list` works. */
static int
daemonize (int *out_ready_fd)
{
  int pipefd[2];
  pid_t pid;

  if (pipe2 (pipefd, O_CLOEXEC) < 0)
    return -1;
  pid = fork ();
  if (pid < 0)
    return -1;
  if (pid > 0)
    {
      char buf[1024];
      ssize_t n;

      close (pipefd[1]);
      n = read (pipefd[0], buf, sizeof buf - 1);
      if (n == 1 && buf[0] == '1')
        _exit (0);
      if (n > 0)
        {
          buf[n] = '\0';
          fprintf (stderr, "vmherdd: %s\n", buf);
        }
      else
        fprintf (stderr, "vmherdd: the daemon exited before it was ready (see its log)\n");
      _exit (1);
    }
  close (pipefd[0]);
  setsid ();
  if (fork () > 0)
    _exit (0);
  if (chdir ("/") < 0)
    return -1;
  int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
  dup2 (null, STDIN_FILENO);
  dup2 (null, STDOUT_FILENO);
  dup2 (null, STDERR_FILENO);
  if (null > STDERR_FILENO)
    close (null);
  *out_ready_fd = pipefd[1];
  return 0;
}

int
main (int argc, char **argv)
{
  gboolean foreground = FALSE, check = FALSE, version = FALSE;
  g_autofree char *config = NULL, *pidfile = NULL, *logfile = NULL;
  g_autofree char *config_abs = NULL, *pidfile_abs = NULL;
  GOptionEntry entries[] = {
    { "foreground", 'f', 0, G_OPTION_ARG_NONE, &foreground, "Stay in the foreground, log to stderr", NULL },
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config, "Host config (default " VMHERD_SYSCONFDIR "/vmherd/vmherd.conf)", "FILE" },
    { "check", 0, 0, G_OPTION_ARG_NONE, &check, "Check the config and every VM file, then exit 0 or 1", NULL },
    { "pidfile", 'p', 0, G_OPTION_ARG_FILENAME, &pidfile, "Write the daemon's pid here (default /run/vmherdd.pid)", "FILE" },
    { "log", 'l', 0, G_OPTION_ARG_FILENAME, &logfile, "Log here when not in the foreground (default /var/log/vmherd/vmherdd.log)", "FILE" },
    { "version", 'V', 0, G_OPTION_ARG_NONE, &version, "Print the version", NULL },
    { 0 },
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("- supervise this host's QEMU guests");
  g_autoptr(GError) error = NULL;
  g_autoptr(Daemon) daemon = NULL;
  DaemonOptions options = { .ready_fd = -1 };
  int status;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("vmherdd: %s (see vmherdd --help)\n", error->message);
      return 2;
    }
  if (version)
    {
      printf ("vmherdd %s\n", VMHERD_VERSION);
      return 0;
    }
  if (check)
    return vm_check_report (config, FALSE);
  log_stream = stderr;
  /* Relative paths are the operator's, from here: a daemon runs in /. */
  config_abs = config ? g_canonicalize_filename (config, NULL) : NULL;
  pidfile_abs = foreground && pidfile == NULL ? NULL
                : g_canonicalize_filename (pidfile ? pidfile : "/run/vmherdd.pid", NULL);
  options.config_path = config_abs;
  options.pidfile = pidfile_abs;
  options.foreground = foreground;
  if (logfile != NULL)
    {
      char *absolute = g_canonicalize_filename (logfile, NULL);
      g_free (logfile);
      logfile = absolute;
    }
  if (!foreground)
    {
      const char *path = logfile ? logfile : "/var/log/vmherd/vmherdd.log";
      if (daemonize (&options.ready_fd) < 0)
        {
          g_printerr ("vmherdd: cannot become a daemon: %s\n", g_strerror (errno));
          return 1;
        }
      log_stream = fopen (path, "ae");
      if (log_stream == NULL)
        log_stream = stderr;    /* /dev/null by now; nothing better to do */
    }
  g_log_set_writer_func (write_log, NULL, NULL);
  daemon = daemon_new (&options, &error);
  if (daemon == NULL)
    {
      g_message ("cannot start: %s", error->message);
      if (options.ready_fd >= 0 && write (options.ready_fd, error->message, strlen (error->message)) < 0)
        g_debug ("ready pipe: %s", g_strerror (errno));
      if (foreground)
        g_printerr ("vmherdd: %s\n", error->message);
      return 1;
    }
  status = daemon_run (daemon);
  return status;
}
