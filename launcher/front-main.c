/* front-main.c: `vmherd`, the command operators type.
 *
 * The lifecycle commands (start, stop, restart, reset, pause, resume) and `version` are
 * answered here, by a program that loads GLib and libinih only.  Every other command, and
 * any argument this file does not handle, goes whole to the full tool (vmherd-full, in
 * libexec) by exec, which parses it again and answers exactly as before.  Why: each shared
 * library costs every command's exec, and json-glib with GIO (which the full tool needs)
 * made `vmherd start` of a small guest 1.2x a bare QEMU start instead of 1.1x
 * (bench/FINDINGS.md, section 1).
 *
 * The output, the messages and the exit codes are those of the full tool's
 * simple_vm_command() and control_client_call() (ctl-daemon.c, control-proto.c); the tests
 * of test-cli.c and test-daemon.c hold both to them. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/fd-util.h"
#include "launcher/control-connect.h"
#include "launcher/host-config.h"
#include "launcher/json-scan.h"

#ifndef VMHERD_LIBEXECDIR
#define VMHERD_LIBEXECDIR "/usr/local/libexec/vmherd"
#endif

enum { EXIT_DONE = 0, EXIT_FAILED = 1, EXIT_UNREACHABLE = 3 };

/* The full tool's CALL_TIMEOUT_MS for the quick commands; 0: starting and stopping wait as
 * long as they take (the daemon bounds them). */
static const struct { const char *name; guint timeout_ms; } lifecycle[] = {
  { "start", 0 }, { "stop", 0 }, { "restart", 0 },
  { "reset", 10000 }, { "pause", 10000 }, { "resume", 10000 },
};

/* vmherd-full beside this program (the build tree), else in ../libexec/vmherd from it (an
 * install under any PREFIX), else in the VMHERD_LIBEXECDIR it was built for. */
static char *
full_tool_path (void)
{
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = self != NULL ? g_path_get_dirname (self) : NULL;
  const char *const relative[] = { "vmherd-full", "../libexec/vmherd/vmherd-full" };

  for (gsize i = 0; dir != NULL && i < G_N_ELEMENTS (relative); i++)
    {
      char *path = g_build_filename (dir, relative[i], NULL);

      if (access (path, X_OK) == 0)
        return path;
      g_free (path);
    }
  return g_strdup (VMHERD_LIBEXECDIR "/vmherd-full");
}

static int
exec_full_tool (char **argv)
{
  g_autofree char *path = full_tool_path ();

  execv (path, argv);
  fprintf (stderr, "vmherd: cannot run %s: %s (vmherd is not fully installed: run make install "
           "again)\n", path, g_strerror (errno));
  return EXIT_FAILED;
}

/* One call on the control socket, answered by one line. */
typedef struct
{
  const char *path, *command, *vm;
  int fd;
  gint64 deadline;              /* monotonic µs, -1: none */
  GString *in;                  /* bytes read, not yet split into lines */
  gsize scanned;                /* of in, known to hold no "\n" */
  char *timeout_message;
} Call;

/* Whether line answers our call (id 1), as control-proto.c's line_answers(). */
static gboolean
line_answers (const char *line, const char *end)
{
  const char *id = json_scan_member (line, end, "id");

  if (json_scan_member (line, end, "error") != NULL)
    return id == NULL || json_scan_int_equals (id, end, 1);
  return json_scan_member (line, end, "return") != NULL && json_scan_int_equals (id, end, 1);
}

/* Prints the answer's result; returns the exit code. */
static int
take_answer (Call *call, const char *line, const char *end)
{
  const char *body = json_scan_member (line, end, "error");
  g_autofree char *class = NULL, *desc = NULL, *state = NULL;

  if (body != NULL)
    {
      class = json_scan_string (json_scan_member (body, end, "class"), end);
      desc = json_scan_string (json_scan_member (body, end, "desc"), end);
      if (class == NULL || desc == NULL)
        fprintf (stderr, "vmherdd at %s sent an error without a string class and desc\n", call->path);
      else
        fprintf (stderr, "%s\n", desc);
      return EXIT_FAILED;
    }
  state = json_scan_string (json_scan_member (json_scan_member (line, end, "return"), end, "state"), end);
  if (state != NULL)
    printf ("vm '%s': %s\n", call->vm, state);
  return EXIT_DONE;
}

/* Handles the complete lines read so far, as the full client does (a trailing "\r" dropped,
 * empty lines skipped, events and progress lines ignored); returns the exit code once a
 * line answers the call or is bad, -1 until then. */
static int
handle_lines (Call *call)
{
  char *newline;

  while ((newline = memchr (call->in->str + call->scanned, '\n', call->in->len - call->scanned)) != NULL)
    {
      gsize length = (gsize) (newline - call->in->str);
      g_autofree char *line = g_strndup (call->in->str, length);

      g_string_erase (call->in, 0, (gssize) length + 1);
      call->scanned = 0;
      if (length > 0 && line[length - 1] == '\r')
        line[--length] = '\0';
      if (length == 0)
        continue;
      if (length > CONTROL_MAX_ANSWER_LENGTH || !json_scan_is_object (line, length))
        {
          fprintf (stderr, "vmherdd at %s sent a bad line: not one JSON object\n", call->path);
          return EXIT_FAILED;
        }
      if (line_answers (line, line + length))
        return take_answer (call, line, line + length);
    }
  call->scanned = call->in->len;
  if (call->in->len > CONTROL_MAX_ANSWER_LENGTH + 1)
    {
      fprintf (stderr, "vmherdd at %s sent a bad line: longer than %d bytes\n", call->path,
               CONTROL_MAX_ANSWER_LENGTH);
      return EXIT_FAILED;
    }
  return -1;
}

static int
report_closed (Call *call)
{
  fprintf (stderr, "vmherdd at %s closed the connection%s\n", call->path,
           call->in->len > 0 ? " in the middle of a line" : "");
  return EXIT_UNREACHABLE;
}

/* Reads until the answer; returns the exit code. */
static int
read_answer (Call *call)
{
  char chunk[64 * 1024];

  for (;;)
    {
      int status = handle_lines (call);
      gssize got;

      if (status >= 0)
        return status;
      got = recv (call->fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (got > 0)
        g_string_append_len (call->in, chunk, got);
      else if (got == 0 || errno == ECONNRESET)
        return report_closed (call);
      else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        {
          fprintf (stderr, "cannot read from vmherdd at %s: %s\n", call->path, g_strerror (errno));
          return EXIT_UNREACHABLE;
        }
      else if (errno != EINTR && !control_wait (call->fd, POLLIN, call->deadline))
        {
          fprintf (stderr, "%s\n", call->timeout_message);
          return EXIT_FAILED;
        }
    }
}

/* Sends the request; returns -1 when sent, else the exit code. */
static int
send_request (Call *call, const GString *request)
{
  gsize offset = 0;

  while (offset < request->len)
    {
      gssize sent = send (call->fd, request->str + offset, request->len - offset,
                          MSG_NOSIGNAL | MSG_DONTWAIT);
      int saved_errno = errno;

      if (sent >= 0)
        offset += (gsize) sent;
      else if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)
        {
          if (!control_wait (call->fd, POLLOUT, call->deadline))
            {
              fprintf (stderr, "%s\n", call->timeout_message);
              return EXIT_FAILED;
            }
        }
      else if (saved_errno != EINTR)
        {
          /* The daemon may have answered before it closed (a refused peer): what it sent is
           * read first, and its close is the reason given, as in the full client. */
          char chunk[4096];
          gssize got;
          int status;

          while ((got = recv (call->fd, chunk, sizeof chunk, MSG_DONTWAIT)) > 0)
            g_string_append_len (call->in, chunk, got);
          status = handle_lines (call);
          if (status >= 0)
            return status;
          if (got == 0 || (got < 0 && errno == ECONNRESET))
            return report_closed (call);
          fprintf (stderr, "cannot write to vmherdd at %s: %s\n", call->path, g_strerror (saved_errno));
          return EXIT_UNREACHABLE;
        }
    }
  return -1;
}

static int
run_lifecycle (const char *config_path, const char *command, guint timeout_ms, const char *vm,
               gboolean force, gint64 stop_timeout)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = NULL;
  g_autoptr(GString) request = g_string_new ("{\"execute\":");
  g_autoptr(GError) error = NULL;
  g_auto(AutoFd) fd = -1;
  Call call = { .command = command, .vm = vm };
  int status;

  call.path = g_getenv ("VMHERD_CONTROL_SOCKET");
  if (call.path == NULL)
    {
      host = host_config_load (config_path, errors);
      if (host == NULL)
        {
          config_errors_print (errors, stderr);
          return EXIT_FAILED;
        }
      call.path = host->control_socket;
    }
  fd = control_connect (call.path, &error);
  if (fd < 0)
    {
      fprintf (stderr, "%s\n", error->message);
      return EXIT_UNREACHABLE;
    }

  json_scan_append_string (request, command);
  g_string_append (request, ",\"arguments\":{\"vm\":");
  json_scan_append_string (request, vm);
  if (force)
    g_string_append (request, ",\"force\":true");
  if (stop_timeout >= 0)
    g_string_append_printf (request, ",\"timeout\":%" G_GINT64_FORMAT, stop_timeout);
  g_string_append (request, "},\"id\":1}\n");

  call.fd = fd;
  call.in = g_string_new (NULL);
  call.timeout_message = g_strdup_printf ("no answer from vmherdd to '%s' within %u ms", command, timeout_ms);
  call.deadline = control_deadline_from (timeout_ms);
  status = send_request (&call, request);
  if (status < 0)
    status = read_answer (&call);
  g_string_free (call.in, TRUE);
  g_free (call.timeout_message);
  return status;
}

/* The lifecycle command at argv[0] with NAME [--force] [--timeout S]; -1 when the
 * arguments are anything else (the full tool answers those, usage errors included). */
static int
lifecycle_command (const char *config_path, int argc, char **argv)
{
  const char *vm = NULL;
  gboolean force = FALSE;
  gint64 stop_timeout = -1;

  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--force") == 0)
        force = TRUE;
      else if (strcmp (argv[i], "--timeout") == 0 && i + 1 < argc
               && g_ascii_string_to_signed (argv[i + 1], 10, 0, 86400, &stop_timeout, NULL))
        i++;
      else if (argv[i][0] != '-' && vm == NULL && g_utf8_validate (argv[i], -1, NULL))
        vm = argv[i];
      else
        return -1;
    }
  if (vm == NULL)
    return -1;
  for (gsize i = 0; i < G_N_ELEMENTS (lifecycle); i++)
    if (strcmp (argv[0], lifecycle[i].name) == 0)
      return run_lifecycle (config_path, argv[0], lifecycle[i].timeout_ms, vm, force, stop_timeout);
  return -1;
}

int
main (int argc, char **argv)
{
  const char *config_path = NULL;
  int i = 1, status = -1;

  if (i + 1 < argc && strcmp (argv[i], "--config") == 0)
    {
      config_path = argv[i + 1];
      i += 2;
    }
  else if (i < argc && g_str_has_prefix (argv[i], "--config="))
    config_path = argv[i++] + strlen ("--config=");
  if (i < argc && strcmp (argv[i], "version") == 0 && i + 1 == argc)
    {
      printf ("vmherd %s\n", VMHERD_VERSION);
      return EXIT_DONE;
    }
  if (i < argc && argv[i][0] != '-')
    status = lifecycle_command (config_path, argc - i, argv + i);
  return status >= 0 ? status : exec_full_tool (argv);
}
