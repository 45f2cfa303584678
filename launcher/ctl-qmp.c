/* ctl-qmp.c: `vmherd qmp NAME`, the QMP console.
 *
 * Through vmherdd (which owns the guest's only QMP connection and forwards our commands),
 * or, when vmherdd is not running, straight to the guest's QMP socket.  One command from
 * the command line, JSON or qmp-shell lines from a pipe, or an interactive prompt with
 * line editing, history and completion; events are printed as they arrive. */
#include "launcher/ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "launcher/control-proto.h"
#include "launcher/ctl-editline.h"
#include "launcher/host-config.h"
#include "launcher/qemu-spawn.h"
#include "launcher/vm-config.h"
#include "qmp/qmp-shell.h"
#include "qmp/qmp-message.h"
#include "qmp/qmp-socket.h"

#define CONSOLE_TIMEOUT_MS 30000

typedef struct
{
  char *vm;
  gboolean read_only;
  gboolean color;
  gboolean with_events;         /* interactive: print events as they come */
  ControlClient *control;       /* through vmherdd */
  int direct_fd;                /* or straight to QEMU: -1 */
  QmpLineBuffer *direct_buf;
  gint64 next_id;
  GStrv commands;               /* for completion */
  JsonNode *schema;
} Console;

static Console *the_console;    /* libedit's callbacks take no user data */

static void
print_json (Console *c, JsonNode *node, const char *color)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, node);
  text = json_generator_to_data (gen, NULL);
  if (c->color)
    printf ("%s%s\033[0m\n", color, text);
  else
    printf ("%s\n", text);
}

static void
print_event (Console *c, const char *name, JsonObject *data, JsonObject *timestamp)
{
  g_autoptr(GDateTime) t = NULL;
  g_autofree char *when = NULL;
  gint64 s = timestamp ? json_object_get_int_member_with_default (timestamp, "seconds", 0) : 0;
  gint64 us = timestamp ? json_object_get_int_member_with_default (timestamp, "microseconds", 0) : 0;

  t = s > 0 ? g_date_time_new_from_unix_local (s) : g_date_time_new_now_local ();
  when = g_date_time_format (t, "%H:%M:%S");
  printf ("%s[%s.%03d] event %s", c->color ? "\033[33m" : "", when, (int) (us / 1000), name);
  if (data != NULL && json_object_get_size (data) > 0)
    {
      g_autoptr(JsonNode) n = json_node_init_object (json_node_alloc (), data);
      g_autofree char *text = json_to_string (n, FALSE);
      printf (" %s", text);
    }
  printf ("%s\n", c->color ? "\033[0m" : "");
  fflush (stdout);
}

/* A line from vmherdd while we wait or idle: QMP events of our guest, and its state. */
static void
on_control_line (JsonObject *line, gpointer data)
{
  Console *c = data;
  const char *event = json_object_get_string_member_with_default (line, "event", NULL);
  JsonObject *d = json_object_has_member (line, "data") ? json_object_get_object_member (line, "data") : NULL;

  if (event == NULL || d == NULL || g_strcmp0 (json_object_get_string_member_with_default (d, "vm", NULL), c->vm) != 0)
    return;
  if (strcmp (event, "QMP") == 0)
    print_event (c, json_object_get_string_member_with_default (d, "event", "?"),
                 json_object_has_member (d, "data") ? json_object_get_object_member (d, "data") : NULL,
                 json_object_has_member (d, "timestamp") ? json_object_get_object_member (d, "timestamp") : NULL);
  else if (strcmp (event, "STATE") == 0)
    printf ("%s-- vm '%s' is %s: %s%s\n", c->color ? "\033[36m" : "", c->vm,
            json_object_get_string_member_with_default (d, "state", "?"),
            json_object_get_string_member_with_default (d, "reason", ""), c->color ? "\033[0m" : "");
}

/* Direct mode: reads one QMP message (blocking, bounded); events are printed. */
static QmpMessage *
direct_read (Console *c, GError **error)
{
  for (;;)
    {
      gsize len;
      g_autofree char *line = qmp_line_buffer_next (c->direct_buf, &len, error);
      char buf[65536];
      struct pollfd p = { c->direct_fd, POLLIN, 0 };
      ssize_t n;

      if (line != NULL)
        {
          QmpMessage *m = qmp_message_parse (line, len, error);
          if (m != NULL && m->kind == QMP_MESSAGE_EVENT)
            {
              JsonObject *ts = json_object_new ();
              json_object_set_int_member (ts, "seconds", m->timestamp_seconds);
              json_object_set_int_member (ts, "microseconds", m->timestamp_microseconds);
              if (c->with_events)
                print_event (c, m->event, m->data, ts);
              json_object_unref (ts);
              qmp_message_free (m);
              continue;
            }
          return m;
        }
      if (error != NULL && *error != NULL)
        return NULL;
      if (poll (&p, 1, CONSOLE_TIMEOUT_MS) <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "QEMU did not answer within %d s",
                       CONSOLE_TIMEOUT_MS / 1000);
          return NULL;
        }
      n = read (c->direct_fd, buf, sizeof buf);
      if (n <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED, "QEMU closed the QMP connection");
          return NULL;
        }
      qmp_line_buffer_feed (c->direct_buf, buf, (gsize) n);
    }
}

static JsonObject *
direct_execute (Console *c, JsonObject *cmd, GError **error)
{
  g_autoptr(JsonObject) sent = json_object_ref (cmd);
  g_autofree char *text = NULL;
  gint64 id = ++c->next_id;

  json_object_set_int_member (sent, "id", id);
  {
    g_autoptr(JsonNode) n = json_node_init_object (json_node_alloc (), sent);
    text = json_to_string (n, FALSE);
  }
  if (write (c->direct_fd, text, strlen (text)) < 0 || write (c->direct_fd, "\n", 1) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "cannot write to QEMU: %s",
                   g_strerror (errno));
      return NULL;
    }
  for (;;)
    {
      g_autoptr(QmpMessage) m = direct_read (c, error);
      gint64 got;

      if (m == NULL)
        return NULL;
      if ((m->kind == QMP_MESSAGE_RETURN || m->kind == QMP_MESSAGE_ERROR)
          && (!qmp_message_get_id_int (m, &got) || got == id))
        {
          JsonObject *reply = json_object_ref (m->object);
          json_object_remove_member (reply, "id");
          return reply;
        }
    }
}

/* Sends one command; returns QEMU's reply object ({"return"} or {"error"}), or NULL with
 * error when it could not be asked (refused by vmherdd, connection lost). */
static JsonObject *
console_execute (Console *c, JsonObject *cmd, GError **error)
{
  g_autoptr(JsonObject) args = NULL;
  g_autoptr(JsonNode) ret = NULL;
  JsonObject *reply;

  if (c->control == NULL)
    {
      const char *name = json_object_get_string_member_with_default (cmd, "execute", "");
      if (c->read_only && !qmp_shell_is_read_only (name))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                       "'%s' is refused on a read-only console (only query-* commands)", name);
          return NULL;
        }
      return direct_execute (c, cmd, error);
    }
  args = json_object_new ();
  json_object_set_string_member (args, "vm", c->vm);
  json_object_set_object_member (args, "command", json_object_ref (cmd));
  if (c->read_only)
    json_object_set_boolean_member (args, "read-only", TRUE);
  ret = control_client_call (c->control, "qmp", args, CONSOLE_TIMEOUT_MS, on_control_line, c,
                             NULL, error);
  if (ret == NULL)
    return NULL;
  reply = json_object_get_object_member (json_node_get_object (ret), "reply");
  return reply ? json_object_ref (reply) : NULL;
}

/* Runs one line; returns 0 when QEMU said "return", 1 otherwise. */
static int
console_run_line (Console *c, const char *line)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) cmd = qmp_shell_parse (line, &error);
  g_autoptr(JsonObject) reply = NULL;
  gboolean hmp;

  if (cmd == NULL)
    {
      if (error == NULL)
        return 0;               /* an empty line */
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
  hmp = g_strcmp0 (json_object_get_string_member_with_default (cmd, "execute", ""),
                   "human-monitor-command") == 0;
  reply = console_execute (c, cmd, &error);
  if (reply == NULL)
    {
      fprintf (stderr, "%s\n", error ? error->message : "no reply");
      return 1;
    }
  if (json_object_has_member (reply, "error"))
    {
      JsonObject *e = json_object_get_object_member (reply, "error");
      fprintf (stderr, "%serror from QEMU: %s: %s%s\n", c->color ? "\033[31m" : "",
               json_object_get_string_member_with_default (e, "class", "?"),
               json_object_get_string_member_with_default (e, "desc", ""), c->color ? "\033[0m" : "");
      return 1;
    }
  if (hmp && JSON_NODE_HOLDS_VALUE (json_object_get_member (reply, "return")))
    fputs (json_object_get_string_member (reply, "return"), stdout);
  else
    print_json (c, json_object_get_member (reply, "return"), "\033[32m");
  fflush (stdout);
  return 0;
}

/* Completion: the first word from query-commands, later words from the command's schema. */
static char *
complete_from (const char *text, int state, GStrv words, const char *suffix)
{
  static guint index;
  size_t len = strlen (text);

  if (state == 0)
    index = 0;
  while (words != NULL && words[index] != NULL)
    {
      const char *w = words[index++];
      if (strncmp (w, text, len) == 0)
        return g_strconcat (w, suffix, NULL);   /* libedit frees it with free() */
    }
  return NULL;
}

static GStrv completion_args;
static const CtlEditline *el;      /* libedit, loaded by run_interactive() */

static char *
complete_command (const char *text, int state)
{
  return complete_from (text, state, the_console->commands, "");
}

static char *
complete_arg (const char *text, int state)
{
  return complete_from (text, state, completion_args, "=");
}

static char **
complete (const char *text, int start, int end G_GNUC_UNUSED)
{
  const char *buffer = *el->rl_line_buffer;
  g_autofree char *first = NULL;

  *el->rl_attempted_completion_over = 1;
  if (start == 0 || strspn (buffer, " ") == (size_t) start)
    return el->rl_completion_matches (text, complete_command);
  first = g_strndup (buffer + strspn (buffer, " "), strcspn (buffer + strspn (buffer, " "), " "));
  g_clear_pointer (&completion_args, g_strfreev);
  completion_args = qmp_shell_command_args (the_console->schema, first);
  *el->rl_completion_append_character = '\0';
  return el->rl_completion_matches (text, complete_arg);
}

static void
load_completions (Console *c)
{
  g_autoptr(JsonObject) q = json_object_new ();
  g_autoptr(JsonObject) s = json_object_new ();
  g_autoptr(JsonObject) commands = NULL, schema = NULL;

  json_object_set_string_member (q, "execute", "query-commands");
  json_object_set_string_member (s, "execute", "query-qmp-schema");
  commands = console_execute (c, q, NULL);
  schema = console_execute (c, s, NULL);
  if (commands != NULL && json_object_has_member (commands, "return"))
    c->commands = qmp_shell_command_names (json_object_get_member (commands, "return"));
  if (schema != NULL && json_object_has_member (schema, "return"))
    c->schema = json_node_copy (json_object_get_member (schema, "return"));
}

/* Prints the events that arrived; FALSE when the connection is gone. */
static gboolean
console_drain_events (Console *c)
{
  g_autoptr(GError) error = NULL;

  printf ("\r\033[K");
  if (c->control != NULL)
    {
      g_autoptr(JsonObject) line = control_client_read_line (c->control, 1000, &error);
      if (line != NULL)
        on_control_line (line, c);
    }
  else
    {
      /* Events are printed as they are read; a reply here belongs to nobody. */
      qmp_message_free (direct_read (c, &error));
    }
  if (error != NULL && !g_error_matches (error, CONTROL_ERROR, CONTROL_ERROR_TIMEOUT))
    {
      fprintf (stderr, "%s\n", error->message);
      return FALSE;
    }
  return TRUE;
}

/* libedit reads each key through this: events are printed while the operator types. */
static int
console_getc (FILE *in)
{
  Console *c = the_console;

  for (;;)
    {
      struct pollfd p[2] = { { fileno (in), POLLIN, 0 },
                             { c->control ? control_client_get_fd (c->control) : c->direct_fd, POLLIN, 0 } };
      unsigned char ch;

      if (c->control != NULL && control_client_has_buffered_line (c->control))
        p[1].revents = POLLIN;
      else if (poll (p, 2, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          return EOF;
        }
      if (p[1].revents & (POLLIN | POLLHUP))
        {
          if (!console_drain_events (c))
            return EOF;
          el->rl_forced_update_display ();
          continue;
        }
      if (read (fileno (in), &ch, 1) != 1)
        return EOF;
      return ch;
    }
}

static int
run_interactive (Console *c)
{
  g_autofree char *history = g_build_filename (g_get_home_dir (), ".vmherd_qmp_history", NULL);
  g_autofree char *prompt = g_strdup_printf ("(qmp %s) ", c->vm);
  g_autoptr(GError) error = NULL;
  int status = 0;
  char *line;

  el = ctl_editline_load (&error);
  if (el == NULL)
    {
      fprintf (stderr, "vmherd qmp: %s\n", error->message);
      return CTL_EXIT_FAILED;
    }
  load_completions (c);
  printf ("QMP console for vm '%s'%s; Tab completes, `hmp TEXT` runs a monitor command, "
          "Ctrl-D leaves.\n", c->vm, c->read_only ? " (read-only: query-* only)" : "");
  /* Before anything initialises libedit, which copies these at that moment. */
  *el->rl_getc_function = console_getc;
  *el->rl_attempted_completion_function = complete;
  el->using_history ();
  el->read_history (history);
  while ((line = el->readline (prompt)) != NULL)
    {
      g_strstrip (line);
      if (line[0] != '\0')
        {
          el->add_history (line);
          status = console_run_line (c, line);
        }
      free (line);
    }
  printf ("\n");
  el->write_history (history);
  return status;
}

static int
run_script (Console *c, FILE *in)
{
  char buf[65536];
  int status = 0;

  while (fgets (buf, sizeof buf, in) != NULL)
    {
      g_strstrip (buf);
      if (buf[0] == '\0' || buf[0] == '#')
        continue;
      if (console_run_line (c, buf) != 0)
        status = 1;
    }
  return status;
}

/* Through vmherdd when it runs; else straight to the guest's socket, saying so. */
static gboolean
console_connect (Console *c, CtlContext *ctx, int *out_status)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = host_config_load (ctx->config_path, errors);
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) direct_error = NULL;
  g_autofree char *problem = NULL, *dir = NULL, *qmp_path = NULL;
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(QmpMessage) greeting = NULL;
  g_autoptr(JsonObject) caps = json_object_new ();
  g_autoptr(JsonObject) reply = NULL;
  const char *socket = g_getenv ("VMHERD_CONTROL_SOCKET");

  *out_status = CTL_EXIT_FAILED;
  if (host == NULL)
    {
      config_errors_print (errors, stderr);
      return FALSE;
    }
  if (!vm_name_is_valid (c->vm, &problem))
    {
      fprintf (stderr, "'%s' is not a valid VM name: it %s\n", c->vm, problem);
      return FALSE;
    }
  c->control = control_client_connect (socket ? socket : host->control_socket, &error);
  if (c->control != NULL)
    {
      g_autoptr(JsonObject) args = json_object_new ();

      /* An interactive console shows events, so it subscribes first and misses nothing
       * between commands; one-shot and scripted use print only replies. */
      if (c->with_events)
        ret = control_client_call (c->control, "events", NULL, CONSOLE_TIMEOUT_MS, NULL, NULL, NULL, &error);
      json_object_set_string_member (args, "vm", c->vm);
      if (ret != NULL || !c->with_events)
        {
          g_clear_pointer (&ret, json_node_unref);
          ret = control_client_call (c->control, "status", args, CONSOLE_TIMEOUT_MS, NULL, NULL, NULL, &error);
        }
      if (ret == NULL)
        {
          fprintf (stderr, "%s\n", error->message);   /* e.g. no VM named ... (known: ...) */
          return FALSE;
        }
      return TRUE;
    }
  dir = qemu_instance_dir (host, c->vm);
  qmp_path = g_build_filename (dir, "qmp.sock", NULL);
  fprintf (stderr, "%s; connecting straight to %s\n", error->message, qmp_path);
  c->direct_fd = qmp_socket_connect (qmp_path, &direct_error);
  if (c->direct_fd < 0)
    {
      fprintf (stderr, "no guest '%s' is running here: %s\n", c->vm, direct_error->message);
      return FALSE;
    }
  c->direct_buf = qmp_line_buffer_new (64 * 1024 * 1024);
  greeting = direct_read (c, &direct_error);
  json_object_set_string_member (caps, "execute", "qmp_capabilities");
  if (greeting == NULL || greeting->kind != QMP_MESSAGE_GREETING
      || (reply = direct_execute (c, caps, &direct_error)) == NULL)
    {
      fprintf (stderr, "QEMU at %s did not greet: %s\n", qmp_path,
               direct_error ? direct_error->message : "not a QMP greeting");
      return FALSE;
    }
  return TRUE;
}

int
ctl_cmd_qmp (CtlContext *ctx, int argc, char **argv)
{
  Console c = { .direct_fd = -1 };
  g_autofree char *line = NULL;
  int status, first = 0;

  for (int i = 1; i < argc && first == 0; i++)
    {
      if (strcmp (argv[i], "--read-only") == 0)
        c.read_only = TRUE;
      else if (argv[i][0] == '-' && argv[i][1] == '-')
        return ctl_usage (ctx, "qmp");
      else if (c.vm == NULL)
        c.vm = argv[i];
      else
        first = i;
    }
  if (c.vm == NULL)
    return ctl_usage (ctx, "qmp");
  c.vm = g_strdup (c.vm);
  c.color = isatty (STDOUT_FILENO) && g_getenv ("NO_COLOR") == NULL;
  c.with_events = first == 0 && isatty (STDIN_FILENO);
  the_console = &c;
  if (!console_connect (&c, ctx, &status))
    ;
  else if (first > 0)
    {
      /* The shell already split and unquoted the words: quote each again, so that
       * command-line="info name" or value='{"a":1}' reach the parser as one token. */
      GString *joined = g_string_new (argv[first]);
      for (int i = first + 1; i < argc; i++)
        {
          g_autofree char *quoted = g_shell_quote (argv[i]);
          g_string_append_printf (joined, " %s", quoted);
        }
      line = g_string_free (joined, FALSE);
      status = console_run_line (&c, line);
    }
  else if (!isatty (STDIN_FILENO))
    status = run_script (&c, stdin);
  else
    status = run_interactive (&c);
  g_clear_pointer (&c.control, control_client_free);
  if (c.direct_fd >= 0)
    close (c.direct_fd);
  g_clear_pointer (&c.direct_buf, qmp_line_buffer_free);
  g_clear_pointer (&c.commands, g_strfreev);
  g_clear_pointer (&c.schema, json_node_unref);
  g_clear_pointer (&completion_args, g_strfreev);
  g_free (c.vm);
  return status;
}
