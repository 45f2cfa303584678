/* config-ini.h: libinih with line numbers, and the list of errors a file produced. */
#pragma once

#include <glib.h>
#include <stdio.h>

typedef struct
{
  char *file;                   /* as the user named it */
  int line;                     /* 0: the whole file */
  char *message;                /* "key: what is wrong (what to write instead)" */
} ConfigError;

typedef GPtrArray ConfigErrors; /* of ConfigError */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ConfigErrors, g_ptr_array_unref)

ConfigErrors *config_errors_new (void);
void config_errors_add (ConfigErrors *errors, const char *file, int line, const char *format, ...)
  G_GNUC_PRINTF (4, 5);
/* "file:line: message", the form every user-visible config error takes. */
char *config_error_format (const ConfigError *error);
/* Writes every error, one per line, to stream. */
void config_errors_print (ConfigErrors *errors, FILE *stream);

/* Called for each section header (key == NULL) and each key = value line, in order. */
typedef void (*ConfigIniFunc) (gpointer user_data, int line, const char *section,
                               const char *key, const char *value);

/* Parses file with libinih, calling func with the line number of each item.  Lines that
 * are not a section, a key = value or a comment are added to errors.  Returns FALSE, with
 * the reason in errors, only when the file cannot be read at all. */
gboolean config_ini_parse (const char *file, ConfigIniFunc func, gpointer user_data,
                           ConfigErrors *errors);

/* TRUE when one of errors is about file. */
gboolean config_errors_mention (ConfigErrors *errors, const char *file);

/* Sorts errors[first..] by line, keeping the order of problems on one line. */
void config_errors_sort_from (ConfigErrors *errors, guint first);
