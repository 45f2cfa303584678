/* qemu-spawn.c: start one QEMU from a built argv. */
#include "launcher/qemu-spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fd-util.h"

void
qemu_instance_free (QemuInstance *instance)
{
  if (instance == NULL)
    return;
  g_free (instance->dir);
  g_free (instance->qmp_path);
  g_free (instance->serial_path);
  g_free (instance->agent_path);
  g_free (instance->log_path);
  g_clear_object (&instance->process);
  g_free (instance);
}

char *
qemu_instance_dir (const HostConfig *host, const char *vm_name)
{
  return g_build_filename (host->run_dir, "vm", vm_name, NULL);
}

/* A listening unix socket at path (any old one removed); returns the fd or -1. */
static int
listen_unix (const char *path, GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_auto(AutoFd) fd = -1;

  if (strlen (path) >= sizeof addr.sun_path)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG,
                   "socket path %s is too long (use a shorter run-dir)", path);
      return -1;
    }
  strcpy (addr.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || (unlink (path) < 0 && errno != ENOENT)
      || bind (fd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen (fd, 8) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot listen on %s: %s", path, g_strerror (saved_errno));
      return -1;
    }
  return g_steal_fd (&fd);
}

typedef struct
{
  gboolean drop;
  uid_t uid;
  gid_t gid;
  int n_groups;
  gid_t groups[64];
} Identity;

static gboolean
identity_for (const HostConfig *host, Identity *id, GError **error)
{
  struct passwd *pw;
  struct group *gr;

  id->drop = geteuid () == 0;
  if (!id->drop)
    return TRUE;                /* not root: QEMU runs as we do */
  pw = getpwnam (host->qemu_user);
  gr = pw == NULL ? NULL : host->qemu_group ? getgrnam (host->qemu_group) : getgrgid (pw->pw_gid);
  if (pw == NULL || gr == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "no %s '%s' on this host to run QEMU as (create it, e.g. adduser --system "
                   "--group %s, or set qemu-user/qemu-group in vmherd.conf)",
                   pw == NULL ? "user" : "group", pw == NULL ? host->qemu_user : host->qemu_group,
                   host->qemu_user);
      return FALSE;
    }
  id->uid = pw->pw_uid;
  id->gid = gr->gr_gid;
  /* Supplementary groups (e.g. kvm for /dev/kvm) are resolved here, not in the child. */
  id->n_groups = G_N_ELEMENTS (id->groups);
  if (getgrouplist (host->qemu_user, id->gid, id->groups, &id->n_groups) < 0)
    id->n_groups = 0;
  return TRUE;
}

/* Runs in the child between fork and exec: only async-signal-safe calls. */
static void
child_setup (gpointer data)
{
  const Identity *id = data;

  setsid ();
  if (id->drop)
    {
      if (setgroups ((size_t) id->n_groups, id->groups) < 0 || setgid (id->gid) < 0
          || setuid (id->uid) < 0)
        _exit (126);
    }
  prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

void
qemu_log_line (const char *log_path, const char *format, ...)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y-%m-%d %H:%M:%S.%f");
  g_autofree char *text = NULL;
  va_list ap;
  FILE *f;

  va_start (ap, format);
  text = g_strdup_vprintf (format, ap);
  va_end (ap);
  f = fopen (log_path, "ae");
  if (f == NULL)
    return;
  fprintf (f, "%.23s vmherd: %s\n", stamp, text);
  fclose (f);
}

static gboolean
prepare_files (QemuInstance *inst, const VmConfig *vm, const HostConfig *host,
               const Identity *id, GError **error)
{
  g_autofree char *serial_log = qemu_argv_serial_log (vm, host);
  g_auto(AutoFd) fd = -1;

  if (g_mkdir_with_parents (inst->dir, 0700) < 0 || g_mkdir_with_parents (host->log_dir, 0755) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot create %s or %s: %s", inst->dir, host->log_dir, g_strerror (saved_errno));
      return FALSE;
    }
  /* QEMU writes the serial log itself, as its own user, so it keeps logging while the
   * daemon is away. */
  fd = open (serial_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0 || (id->drop && fchown (fd, id->uid, id->gid) < 0))
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot prepare serial log %s: %s", serial_log, g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

/* Temp file + rename: a crash never leaves half a file.  Runtime files live in run-dir (a
 * tmpfs that a reboot empties), so nothing is fsync'ed: an fsync on ext4 waits for a journal
 * commit (0.3-6 ms measured), in the daemon's one thread, twice per start.  Not
 * g_file_set_contents_full (G_FILE_SET_CONTENTS_CONSISTENT): that fsyncs the file and its
 * folder every time. */
static gboolean
write_runtime_file (const QemuInstance *inst, const char *name, const char *contents,
                    GError **error)
{
  g_autofree char *path = g_build_filename (inst->dir, name, NULL);
  g_autofree char *tmp = g_strconcat (path, ".XXXXXX", NULL);
  g_auto(AutoFd) fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC, 0644);
  gsize length = strlen (contents), done = 0;
  int saved_errno = 0;

  if (fd < 0)
    {
      saved_errno = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                   "cannot create %s: %s", tmp, g_strerror (saved_errno));
      return FALSE;
    }
  while (saved_errno == 0 && done < length)
    {
      gssize n = write (fd, contents + done, length - done);

      if (n >= 0)
        done += (gsize) n;
      else if (errno != EINTR)
        saved_errno = errno;
    }
  if (close (g_steal_fd (&fd)) < 0 && saved_errno == 0)
    saved_errno = errno;
  if (saved_errno == 0 && rename (tmp, path) < 0)
    saved_errno = errno;
  if (saved_errno != 0)
    {
      (void) unlink (tmp);
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                   "cannot write %s: %s", path, g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

static char *
argv_text (const QemuCmdline *cmdline)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; cmdline->argv->pdata[i] != NULL; i++)
    g_string_append_printf (s, "%s\n", (char *) cmdline->argv->pdata[i]);
  return g_string_free (s, FALSE);
}

/* Opens the sockets of the plan and gives every planned fd to the launcher. */
static gboolean
hand_over_fds (GSubprocessLauncher *launcher, QemuInstance *inst, const QemuCmdline *cmdline,
               const int *nic_fds, GError **error)
{
  guint nic_index = 0;

  for (guint i = 0; i < cmdline->fds->len; i++)
    {
      const QemuFd *plan = &g_array_index (cmdline->fds, QemuFd, i);
      int fd = -1;

      switch (plan->kind)
        {
        case QEMU_FD_QMP: fd = listen_unix (inst->qmp_path, error); break;
        case QEMU_FD_SERIAL: fd = listen_unix (inst->serial_path, error); break;
        case QEMU_FD_AGENT: fd = listen_unix (inst->agent_path, error); break;
        case QEMU_FD_TAP:
        case QEMU_FD_VHOST:
          g_return_val_if_fail (nic_fds != NULL, FALSE);
          fd = fcntl (nic_fds[nic_index++], F_DUPFD_CLOEXEC, 3);
          if (fd < 0)
            g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                         "cannot duplicate %s fd: %s", qemu_fd_kind_to_string (plan->kind),
                         g_strerror (errno));
          break;
        }
      if (fd < 0)
        return FALSE;
      g_subprocess_launcher_take_fd (launcher, fd, plan->fd);
    }
  return TRUE;
}

QemuInstance *
qemu_spawn (const VmConfig *vm, const HostConfig *host, const QemuCmdline *cmdline,
            const int *nic_fds, GError **error)
{
  g_autoptr(QemuInstance) inst = g_new0 (QemuInstance, 1);
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autofree char *log_file = g_strdup_printf ("%s.log", vm->name);
  g_autofree char *argv = argv_text (cmdline);
  g_autofree char *pid = NULL;
  Identity *id = g_new0 (Identity, 1);
  g_auto(AutoFd) log_fd = -1;

  inst->dir = qemu_instance_dir (host, vm->name);
  inst->qmp_path = g_build_filename (inst->dir, "qmp.sock", NULL);
  inst->serial_path = g_build_filename (inst->dir, "serial.sock", NULL);
  if (vm->health.guest_agent)
    inst->agent_path = g_build_filename (inst->dir, "agent.sock", NULL);
  inst->log_path = g_build_filename (host->log_dir, log_file, NULL);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, id, g_free);
  if (!identity_for (host, id, error) || !prepare_files (inst, vm, host, id, error)
      || !write_runtime_file (inst, "argv", argv, error)
      || !hand_over_fds (launcher, inst, cmdline, nic_fds, error))
    return NULL;
  /* QEMU's stdout and stderr append to the VM's log, never truncate it. */
  log_fd = open (inst->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0)
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot open log %s: %s", inst->log_path, g_strerror (saved_errno));
      return NULL;
    }
  g_subprocess_launcher_set_stdin_file_path (launcher, "/dev/null");
  g_subprocess_launcher_take_stdout_fd (launcher, fcntl (log_fd, F_DUPFD_CLOEXEC, 3));
  g_subprocess_launcher_take_stderr_fd (launcher, g_steal_fd (&log_fd));
  inst->process = g_subprocess_launcher_spawnv (launcher,
                                                (const char *const *) cmdline->argv->pdata, error);
  if (inst->process == NULL)
    {
      g_prefix_error (error, "cannot start %s: ", host->qemu);
      return NULL;
    }
  inst->pid = (pid_t) g_ascii_strtoll (g_subprocess_get_identifier (inst->process), NULL, 10);
  pid = g_strdup_printf ("%d\n", (int) inst->pid);
  if (!write_runtime_file (inst, "pid", pid, error))
    return NULL;
  return g_steal_pointer (&inst);
}

gboolean
qemu_spawn_owner (const HostConfig *host, uid_t *out_uid, gid_t *out_gid, GError **error)
{
  Identity id;

  if (!identity_for (host, &id, error))
    return FALSE;
  *out_uid = id.drop ? id.uid : (uid_t) -1;
  *out_gid = id.drop ? id.gid : (gid_t) -1;
  return TRUE;
}
