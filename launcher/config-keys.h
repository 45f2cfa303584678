/* config-keys.h: table-driven parsing of key = value lines into C structs. */
#pragma once

#include <glib.h>

#include "launcher/config-ini.h"

typedef enum
{
  KEY_STRING,      /* char *                                     */
  KEY_PATH,        /* char *, relative paths made absolute       */
  KEY_SIZE,        /* guint64 bytes: 512M, 4G, 1T, 65536         */
  KEY_INT,         /* gint64 within [min, max]                   */
  KEY_BOOL,        /* gboolean: yes|no|true|false|on|off|1|0     */
  KEY_CHOICE,      /* int: index into choices                    */
  KEY_MAC,         /* char *, normalised aa:bb:cc:dd:ee:ff       */
  KEY_UUID,        /* char *, normalised lower case              */
  KEY_VLAN_LIST,   /* GArray * of guint16: "10,20,30-33"         */
  KEY_DURATION,    /* gint64 milliseconds: 500ms, 5s, 2m, 1h     */
  KEY_ARGS,        /* char ** split like a shell, never run by one */
  KEY_LIST,        /* GPtrArray * of char *, the key may repeat  */
} ConfigKeyKind;

typedef struct
{
  const char *name;
  ConfigKeyKind kind;
  gsize offset;                 /* of the field in the section struct */
  gint64 min, max;              /* KEY_INT, KEY_SIZE, KEY_DURATION; 0/0: no bound */
  const char *const *choices;   /* KEY_CHOICE, NULL-terminated */
  gboolean required;
  const char *example;          /* shown when the value is wrong or missing */
} ConfigKey;

/* Every parsed section starts with this. */
typedef struct
{
  char *name;                   /* "data" of [disk data]; NULL for [vm] */
  int line;                     /* of the section header */
  GHashTable *key_lines;        /* key -> GINT_TO_POINTER (line) */
} ConfigSection;

void config_section_init (ConfigSection *section, const char *name, int line);
void config_section_clear (ConfigSection *section);
/* Line of key in section, or the section's own line when the key was not given. */
int config_section_key_line (const ConfigSection *section, const char *key);
gboolean config_section_has_key (const ConfigSection *section, const char *key);

const ConfigKey *config_keys_lookup (const ConfigKey *keys, const char *name);
/* "memory, cpus, machine" */
char *config_keys_list (const ConfigKey *keys);

/* Parses value into the field of key in section_struct.  base_dir anchors relative
 * paths.  Returns NULL on success, else the problem ("\"4X\" is not a size (...)"). */
char *config_key_parse (const ConfigKey *key, const char *value, const char *base_dir,
                        gpointer section_struct);
/* Frees the field a key owns (strings, arrays). */
void config_key_clear (const ConfigKey *key, gpointer section_struct);

/* The parsers, exposed for other callers (CLI options, control requests). */
gboolean config_parse_size (const char *text, guint64 *out_bytes);
gboolean config_parse_duration (const char *text, gint64 *out_ms);
gboolean config_parse_bool (const char *text, gboolean *out_value);
gboolean config_parse_mac (const char *text, guint8 out_mac[6]);

/* Handles one key = value line of section: unknown keys, keys set twice and bad values
 * go to errors as file:line. */
void config_section_set_key (ConfigSection *section, const ConfigKey *keys, gpointer target,
                             const char *header, const char *key, const char *value,
                             const char *base_dir, ConfigErrors *errors, const char *file,
                             int line);
/* Reports every required key of keys that section lacks, at the section's line. */
void config_section_require_keys (ConfigErrors *errors, const char *file,
                                  const ConfigSection *section, const ConfigKey *keys,
                                  const char *header);

/* The absolute folder of file: what relative paths in file are relative to. */
char *config_dir_of (const char *file);
