/* config-keys.c: table-driven parsing of key = value lines into C structs. */
#include "launcher/config-keys.h"
#include "launcher/config-ini.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(s, key, type) ((type *) ((char *) (s) + (key)->offset))

void
config_section_init (ConfigSection *section, const char *name, int line)
{
  section->name = g_strdup (name);
  section->line = line;
  section->key_lines = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

void
config_section_clear (ConfigSection *section)
{
  g_clear_pointer (&section->name, g_free);
  g_clear_pointer (&section->key_lines, g_hash_table_unref);
}

int
config_section_key_line (const ConfigSection *section, const char *key)
{
  gpointer line;

  if (section->key_lines != NULL
      && g_hash_table_lookup_extended (section->key_lines, key, NULL, &line))
    return GPOINTER_TO_INT (line);
  return section->line;
}

gboolean
config_section_has_key (const ConfigSection *section, const char *key)
{
  return section->key_lines != NULL && g_hash_table_contains (section->key_lines, key);
}

const ConfigKey *
config_keys_lookup (const ConfigKey *keys, const char *name)
{
  for (const ConfigKey *k = keys; k->name != NULL; k++)
    if (strcmp (k->name, name) == 0)
      return k;
  return NULL;
}

char *
config_keys_list (const ConfigKey *keys)
{
  GString *s = g_string_new (NULL);

  for (const ConfigKey *k = keys; k->name != NULL; k++)
    g_string_append_printf (s, "%s%s", s->len ? ", " : "", k->name);
  return g_string_free (s, FALSE);
}

gboolean
config_parse_size (const char *text, guint64 *out_bytes)
{
  char *end;
  guint64 n, mult = 1;

  if (!g_ascii_isdigit (text[0]))
    return FALSE;
  errno = 0;
  n = g_ascii_strtoull (text, &end, 10);
  if (errno != 0)
    return FALSE;
  switch (g_ascii_toupper (*end))
    {
    case '\0': break;
    case 'K': mult = G_GUINT64_CONSTANT (1) << 10; end++; break;
    case 'M': mult = G_GUINT64_CONSTANT (1) << 20; end++; break;
    case 'G': mult = G_GUINT64_CONSTANT (1) << 30; end++; break;
    case 'T': mult = G_GUINT64_CONSTANT (1) << 40; end++; break;
    default: return FALSE;
    }
  if (mult > 1 && (*end == 'i' || *end == 'I'))
    end++;
  if (mult > 1 && (*end == 'b' || *end == 'B'))
    end++;
  if (*end != '\0' || n > G_MAXUINT64 / mult)
    return FALSE;
  *out_bytes = n * mult;
  return TRUE;
}

gboolean
config_parse_duration (const char *text, gint64 *out_ms)
{
  char *end;
  gint64 n, mult;

  if (!g_ascii_isdigit (text[0]))
    return FALSE;
  errno = 0;
  n = g_ascii_strtoll (text, &end, 10);
  if (errno != 0)
    return FALSE;
  if (strcmp (end, "ms") == 0)
    mult = 1;
  else if (strcmp (end, "s") == 0 || *end == '\0')
    mult = 1000;
  else if (strcmp (end, "m") == 0 || strcmp (end, "min") == 0)
    mult = 60 * 1000;
  else if (strcmp (end, "h") == 0)
    mult = 3600 * 1000;
  else
    return FALSE;
  if (n > G_MAXINT64 / mult)
    return FALSE;
  *out_ms = n * mult;
  return TRUE;
}

gboolean
config_parse_bool (const char *text, gboolean *out_value)
{
  static const char *const yes[] = { "yes", "true", "on", "1", NULL };
  static const char *const no[] = { "no", "false", "off", "0", NULL };

  g_autofree char *lower = g_ascii_strdown (text, -1);

  if (g_strv_contains (yes, lower))
    *out_value = TRUE;
  else if (g_strv_contains (no, lower))
    *out_value = FALSE;
  else
    return FALSE;
  return TRUE;
}

gboolean
config_parse_mac (const char *text, guint8 out_mac[6])
{
  guint8 mac[6];

  if (strlen (text) != 17)
    return FALSE;
  for (int i = 0; i < 6; i++)
    {
      const char *p = text + 3 * i;
      int hi = g_ascii_xdigit_value (p[0]), lo = g_ascii_xdigit_value (p[1]);

      if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':'))
        return FALSE;
      mac[i] = (guint8) (hi << 4 | lo);
    }
  memcpy (out_mac, mac, 6);
  return TRUE;
}

static char *
parse_vlan_list (const char *value, GArray **out_list)
{
  g_auto(GStrv) parts = g_strsplit (value, ",", -1);
  g_autoptr(GArray) list = g_array_new (FALSE, FALSE, sizeof (guint16));

  for (char **p = parts; *p != NULL; p++)
    {
      char *item = g_strstrip (*p), *dash = strchr (item, '-');
      guint64 lo, hi;

      if (dash != NULL)
        *dash = '\0';
      if (!g_ascii_string_to_unsigned (item, 10, 1, 4094, &lo, NULL)
          || !g_ascii_string_to_unsigned (dash ? dash + 1 : item, 10, lo, 4094, &hi, NULL))
        return g_strdup_printf ("\"%s\" is not a VLAN list (use VLAN ids 1-4094, e.g. 10,20,30-33)",
                                value);
      for (guint64 v = lo; v <= hi; v++)
        {
          guint16 id = (guint16) v;
          g_array_append_val (list, id);
        }
    }
  *out_list = g_steal_pointer (&list);
  return NULL;
}

static char *
format_size (gint64 bytes)
{
  static const char units[] = "KMGT";
  int u = -1;

  while (u < 3 && bytes >= 1024 && bytes % 1024 == 0)
    {
      bytes /= 1024;
      u++;
    }
  if (u < 0)
    return g_strdup_printf ("%" G_GINT64_FORMAT, bytes);
  return g_strdup_printf ("%" G_GINT64_FORMAT "%c", bytes, units[u]);
}

static char *
parse_int_like (const ConfigKey *key, const char *value, gint64 *out)
{
  gint64 n;
  guint64 bytes;
  gboolean bounded = key->min != 0 || key->max != 0;

  switch (key->kind)
    {
    case KEY_SIZE:
      if (!config_parse_size (value, &bytes) || bytes > G_MAXINT64)
        return g_strdup_printf ("\"%s\" is not a size (use e.g. %s)", value, key->example);
      n = (gint64) bytes;
      break;
    case KEY_DURATION:
      if (!config_parse_duration (value, &n))
        return g_strdup_printf ("\"%s\" is not a duration (use %s)", value, key->example);
      break;
    default:
      if (!g_ascii_string_to_signed (value, 10, G_MININT64, G_MAXINT64, &n, NULL))
        return g_strdup_printf ("\"%s\" is not a whole number (use %s)", value, key->example);
      break;
    }
  if (bounded && (n < key->min || n > key->max) && key->kind == KEY_SIZE)
    {
      g_autofree char *lo = format_size (key->min), *hi = format_size (key->max);
      return g_strdup_printf ("%s is out of range (use %s to %s, e.g. %s)", value, lo, hi,
                              key->example);
    }
  if (bounded && (n < key->min || n > key->max))
    return g_strdup_printf ("%s is out of range (use %s)", value, key->example);
  *out = n;
  return NULL;
}

static char *
parse_choice (const ConfigKey *key, const char *value, int *out)
{
  for (int i = 0; key->choices[i] != NULL; i++)
    if (strcmp (key->choices[i], value) == 0)
      {
        *out = i;
        return NULL;
      }
  g_autofree char *all = g_strjoinv ("|", (char **) key->choices);
  return g_strdup_printf ("\"%s\" is not one of %s", value, all);
}

static char *
parse_path (const char *value, const char *base_dir, char **out)
{
  if (value[0] == '\0')
    return g_strdup ("empty path (write an absolute path, or one relative to this file)");
  if (g_path_is_absolute (value) || base_dir == NULL)
    *out = g_canonicalize_filename (value, "/");
  else
    *out = g_canonicalize_filename (value, base_dir);
  return NULL;
}

static char *
parse_uuid (const char *value, char **out)
{
  if (!g_uuid_string_is_valid (value))
    return g_strdup_printf ("\"%s\" is not a UUID (use e.g. 4c3a1e2e-8f1b-4b7a-9c1d-2e3f4a5b6c7d, "
                            "or leave it out for one derived from the name)", value);
  *out = g_ascii_strdown (value, -1);
  return NULL;
}

char *
config_key_parse (const ConfigKey *key, const char *value, const char *base_dir,
                  gpointer s)
{
  guint8 mac[6];
  g_autoptr(GError) error = NULL;

  switch (key->kind)
    {
    case KEY_STRING:
      if (value[0] == '\0')
        return g_strdup_printf ("empty value (use e.g. %s)", key->example);
      g_free (*FIELD (s, key, char *));
      *FIELD (s, key, char *) = g_strdup (value);
      return NULL;
    case KEY_PATH:
      g_clear_pointer (FIELD (s, key, char *), g_free);
      return parse_path (value, base_dir, FIELD (s, key, char *));
    case KEY_SIZE:
    case KEY_INT:
    case KEY_DURATION:
      return parse_int_like (key, value, FIELD (s, key, gint64));
    case KEY_BOOL:
      if (!config_parse_bool (value, FIELD (s, key, gboolean)))
        return g_strdup_printf ("\"%s\" is not yes or no", value);
      return NULL;
    case KEY_CHOICE:
      return parse_choice (key, value, FIELD (s, key, int));
    case KEY_MAC:
      if (!config_parse_mac (value, mac))
        return g_strdup_printf ("\"%s\" is not a MAC address (use e.g. %s)", value, key->example);
      if (mac[0] & 1)
        return g_strdup_printf ("%s is a multicast address (the first byte must be even, e.g. %s)",
                                value, key->example);
      g_free (*FIELD (s, key, char *));
      *FIELD (s, key, char *) = g_ascii_strdown (value, -1);
      return NULL;
    case KEY_UUID:
      return parse_uuid (value, FIELD (s, key, char *));
    case KEY_VLAN_LIST:
      g_clear_pointer (FIELD (s, key, GArray *), g_array_unref);
      return parse_vlan_list (value, FIELD (s, key, GArray *));
    case KEY_ARGS:
      g_clear_pointer (FIELD (s, key, char **), g_strfreev);
      if (!g_shell_parse_argv (value, NULL, FIELD (s, key, char **), &error))
        {
          /* GLib's message ends in ". (The text was ...)": keep the first sentence. */
          g_autofree char *why = g_strndup (error->message, strcspn (error->message, "("));
          g_strchomp (why);
          if (g_str_has_suffix (why, "."))
            why[strlen (why) - 1] = '\0';
          return g_strdup_printf ("cannot split \"%s\" into arguments: %s (quote like a "
                                  "shell: 'a b' \"c\")", value, why);
        }
      return NULL;
    case KEY_LIST:
      if (*FIELD (s, key, GPtrArray *) == NULL)
        *FIELD (s, key, GPtrArray *) = g_ptr_array_new_with_free_func (g_free);
      g_ptr_array_add (*FIELD (s, key, GPtrArray *), g_strdup (value));
      return NULL;
    }
  g_return_val_if_reached (g_strdup ("internal error: unknown key kind"));
}

void
config_key_clear (const ConfigKey *key, gpointer s)
{
  switch (key->kind)
    {
    case KEY_STRING:
    case KEY_PATH:
    case KEY_MAC:
    case KEY_UUID:
      g_clear_pointer (FIELD (s, key, char *), g_free);
      break;
    case KEY_VLAN_LIST:
      g_clear_pointer (FIELD (s, key, GArray *), g_array_unref);
      break;
    case KEY_ARGS:
      g_clear_pointer (FIELD (s, key, char **), g_strfreev);
      break;
    case KEY_LIST:
      g_clear_pointer (FIELD (s, key, GPtrArray *), g_ptr_array_unref);
      break;
    default:
      break;
    }
}

void
config_section_set_key (ConfigSection *section, const ConfigKey *keys, gpointer target,
                        const char *header, const char *key, const char *value,
                        const char *base_dir, ConfigErrors *errors, const char *file, int line)
{
  const ConfigKey *spec = config_keys_lookup (keys, key);
  g_autofree char *problem = NULL;
  gpointer first;

  if (spec == NULL)
    {
      g_autofree char *known = config_keys_list (keys);
      config_errors_add (errors, file, line, "%s: unknown key in [%s] (known: %s)", key, header,
                         known);
      return;
    }
  if (spec->kind != KEY_LIST
      && g_hash_table_lookup_extended (section->key_lines, key, NULL, &first))
    {
      config_errors_add (errors, file, line, "%s: set twice in [%s] (first at line %d; keep one)",
                         key, header, GPOINTER_TO_INT (first));
      return;
    }
  if (!g_hash_table_contains (section->key_lines, key))
    g_hash_table_insert (section->key_lines, g_strdup (key), GINT_TO_POINTER (line));
  problem = config_key_parse (spec, value, base_dir, target);
  if (problem != NULL)
    config_errors_add (errors, file, line, "%s: %s", key, problem);
}

void
config_section_require_keys (ConfigErrors *errors, const char *file,
                             const ConfigSection *section, const ConfigKey *keys,
                             const char *header)
{
  for (const ConfigKey *k = keys; k->name != NULL; k++)
    if (k->required && !config_section_has_key (section, k->name))
      config_errors_add (errors, file, section->line,
                         "[%s]: %s: missing (required; e.g. %s = %s)", header, k->name, k->name,
                         k->example ? k->example : (k->choices ? k->choices[0] : "..."));
}

char *
config_dir_of (const char *file)
{
  g_autofree char *dir = g_path_get_dirname (file);

  return g_canonicalize_filename (dir, NULL);
}
