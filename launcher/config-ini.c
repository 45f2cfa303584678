/* config-ini.c: libinih with line numbers.
 *
 * Debian's libinih is built without INI_HANDLER_LINENO, so the handler is never told the
 * line.  We feed inih through our own reader, one physical line per call, and count. */
#include "launcher/config-ini.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CONFIG_MAX_LINE 4096

static void
config_error_free (ConfigError *e)
{
  g_free (e->file);
  g_free (e->message);
  g_free (e);
}

ConfigErrors *
config_errors_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify) config_error_free);
}

void
config_errors_add (ConfigErrors *errors, const char *file, int line, const char *format, ...)
{
  ConfigError *e = g_new0 (ConfigError, 1);
  va_list ap;

  va_start (ap, format);
  e->file = g_strdup (file);
  e->line = line;
  e->message = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_ptr_array_add (errors, e);
}

char *
config_error_format (const ConfigError *e)
{
  if (e->line > 0)
    return g_strdup_printf ("%s:%d: %s", e->file, e->line, e->message);
  return g_strdup_printf ("%s: %s", e->file, e->message);
}

void
config_errors_print (ConfigErrors *errors, FILE *stream)
{
  for (guint i = 0; i < errors->len; i++)
    {
      g_autofree char *text = config_error_format (errors->pdata[i]);
      fprintf (stream, "%s\n", text);
    }
}

typedef struct
{
  const char *file;
  FILE *stream;
  int line;
  ConfigIniFunc func;
  gpointer user_data;
  ConfigErrors *errors;
} IniState;

/* A line inih accepts: blank, comment, [section], or key = value (key : value). */
static void
check_syntax (IniState *s, const char *raw)
{
  g_autofree char *line = g_strstrip (g_strdup (raw));

  if (line[0] == '\0' || line[0] == ';' || line[0] == '#')
    return;
  if (line[0] == '[')
    {
      if (strchr (line, ']') == NULL)
        config_errors_add (s->errors, s->file, s->line,
                           "section header without ']' (write it as [section] or [section NAME])");
      else if (line[1] == ']')
        config_errors_add (s->errors, s->file, s->line, "empty section name");
      return;
    }
  if (strpbrk (line, "=:") == NULL)
    config_errors_add (s->errors, s->file, s->line,
                       "'%s' is neither a [section] nor a key = value line", line);
  else if (line[0] == '=' || line[0] == ':')
    config_errors_add (s->errors, s->file, s->line, "a value without a key");
}

static char *
read_line (char *str, int num, void *stream)
{
  IniState *s = stream;
  char *got = fgets (str, num, s->stream);
  size_t len;

  if (got == NULL)
    return NULL;
  s->line++;
  len = strlen (str);
  if (len == (size_t) num - 1 && str[len - 1] != '\n' && !feof (s->stream))
    {
      int c;

      config_errors_add (s->errors, s->file, s->line, "line longer than %d characters",
                         CONFIG_MAX_LINE - 3);
      while ((c = fgetc (s->stream)) != EOF && c != '\n')
        ;
      str[0] = '\0';
      return str;
    }
  check_syntax (s, str);
  return str;
}

static int
on_key (void *user, const char *section, const char *name, const char *value)
{
  IniState *s = user;

  s->func (s->user_data, s->line, section, name, value);
  return 1;
}

/* Section headers are found by the reader, since inih tells the handler of a section
 * only with its first key; an empty [disk x] must still be seen (and validated). */
static char *
read_line_sections (char *str, int num, void *stream)
{
  IniState *s = stream;
  char *got = read_line (str, num, stream);
  char *open, *close;

  if (got == NULL)
    return NULL;
  open = str + strspn (str, " \t");
  if (*open == '[' && (close = strchr (open, ']')) != NULL && close > open + 1)
    {
      g_autofree char *name = g_strstrip (g_strndup (open + 1, close - open - 1));
      s->func (s->user_data, s->line, name, NULL, NULL);
    }
  return got;
}

gboolean
config_ini_parse (const char *file, ConfigIniFunc func, gpointer user_data,
                  ConfigErrors *errors)
{
  IniState s = { .file = file, .func = func, .user_data = user_data, .errors = errors };

  s.stream = fopen (file, "re");
  if (s.stream == NULL)
    {
      config_errors_add (errors, file, 0, "cannot read: %s", g_strerror (errno));
      return FALSE;
    }
  /* Values are taken literally: no continuation lines, no inline comments. */
  ini_allow_multiline = false;
  ini_allow_inline_comments = false;
  ini_use_stack = false;
  ini_allow_realloc = false;
  ini_max_line = CONFIG_MAX_LINE;
  ini_initial_alloc = CONFIG_MAX_LINE;
  ini_parse_stream (read_line_sections, &s, on_key, &s);
  fclose (s.stream);
  return TRUE;
}

gboolean
config_errors_mention (ConfigErrors *errors, const char *file)
{
  for (guint i = 0; i < errors->len; i++)
    if (strcmp (((ConfigError *) errors->pdata[i])->file, file) == 0)
      return TRUE;
  return FALSE;
}

static gint
compare_lines (gconstpointer a, gconstpointer b)
{
  const ConfigError *ea = *(ConfigError *const *) a, *eb = *(ConfigError *const *) b;

  return ea->line - eb->line;
}

void
config_errors_sort_from (ConfigErrors *errors, guint first)
{
  g_autoptr(GPtrArray) tail = g_ptr_array_new ();

  /* g_ptr_array_sort is stable: problems on one line keep their order. */
  for (guint i = first; i < errors->len; i++)
    g_ptr_array_add (tail, errors->pdata[i]);
  g_ptr_array_sort (tail, compare_lines);
  for (guint i = 0; i < tail->len; i++)
    errors->pdata[first + i] = tail->pdata[i];
}
