/* json-scan.c: the small strict JSON reader of json-scan.h. */
#include "launcher/json-scan.h"

#include <string.h>

#define MAX_DEPTH 64           /* objects and arrays open at once */

static void
skip_space (const char **p, const char *end)
{
  while (*p < end && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r'))
    (*p)++;
}

static int
hex_digit (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Four hex digits at *p (advanced past them), or -1. */
static int
read_hex4 (const char **p, const char *end)
{
  int value = 0;

  if (end - *p < 4)
    return -1;
  for (int i = 0; i < 4; i++)
    {
      int d = hex_digit ((*p)[i]);
      if (d < 0)
        return -1;
      value = value * 16 + d;
    }
  *p += 4;
  return value;
}

/* The escape after a backslash at *p; its code point appended to out (nullable). */
static gboolean
read_escape (const char **p, const char *end, GString *out)
{
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  const char *hit;
  int unit, low;

  if (*p >= end)
    return FALSE;
  if (**p != 'u')
    {
      hit = **p != '\0' ? strchr (from, **p) : NULL;
      if (hit == NULL)
        return FALSE;
      if (out != NULL)
        g_string_append_c (out, to[hit - from]);
      (*p)++;
      return TRUE;
    }
  (*p)++;
  unit = read_hex4 (p, end);
  if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF))
    return FALSE;                       /* not hex, or a low surrogate alone */
  if (unit >= 0xD800 && unit <= 0xDBFF)
    {
      if (end - *p < 2 || (*p)[0] != '\\' || (*p)[1] != 'u')
        return FALSE;                   /* a high surrogate alone */
      *p += 2;
      low = read_hex4 (p, end);
      if (low < 0xDC00 || low > 0xDFFF)
        return FALSE;
      unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
    }
  if (unit == 0 && out != NULL)
    return FALSE;                       /* valid, but a NUL would cut the C string short */
  if (out != NULL)
    g_string_append_unichar (out, (gunichar) unit);
  return TRUE;
}

/* The string at *p (its opening quote), decoded into out (nullable). */
static gboolean
read_string (const char **p, const char *end, GString *out)
{
  const char *start;

  if (*p >= end || **p != '"')
    return FALSE;
  (*p)++;
  for (;;)
    {
      start = *p;
      while (*p < end && **p != '"' && **p != '\\' && (guchar) **p >= 0x20)
        (*p)++;
      if (!g_utf8_validate (start, *p - start, NULL))
        return FALSE;
      if (out != NULL)
        g_string_append_len (out, start, *p - start);
      if (*p >= end || (guchar) **p < 0x20)
        return FALSE;
      if (**p == '"')
        {
          (*p)++;
          return TRUE;
        }
      (*p)++;
      if (!read_escape (p, end, out))
        return FALSE;
    }
}

static gboolean
skip_digits (const char **p, const char *end)
{
  const char *start = *p;

  while (*p < end && g_ascii_isdigit (**p))
    (*p)++;
  return *p > start;
}

static gboolean
skip_number (const char **p, const char *end)
{
  if (*p < end && **p == '-')
    (*p)++;
  if (*p < end && **p == '0')
    (*p)++;
  else if (!skip_digits (p, end))
    return FALSE;
  if (*p < end && **p == '.')
    {
      (*p)++;
      if (!skip_digits (p, end))
        return FALSE;
    }
  if (*p < end && (**p == 'e' || **p == 'E'))
    {
      (*p)++;
      if (*p < end && (**p == '+' || **p == '-'))
        (*p)++;
      if (!skip_digits (p, end))
        return FALSE;
    }
  return TRUE;
}

static gboolean
skip_word (const char **p, const char *end, const char *word)
{
  gsize n = strlen (word);

  if ((gsize) (end - *p) < n || memcmp (*p, word, n) != 0)
    return FALSE;
  *p += n;
  return TRUE;
}

static gboolean skip_value (const char **p, const char *end, int depth);

/* An object or an array at *p: members (key: value) or elements between open and close. */
static gboolean
skip_container (const char **p, const char *end, int depth, char close, gboolean members)
{
  if (depth >= MAX_DEPTH)
    return FALSE;
  (*p)++;
  skip_space (p, end);
  if (*p < end && **p == close)
    {
      (*p)++;
      return TRUE;
    }
  for (;;)
    {
      if (members)
        {
          if (!read_string (p, end, NULL))
            return FALSE;
          skip_space (p, end);
          if (*p >= end || **p != ':')
            return FALSE;
          (*p)++;
        }
      if (!skip_value (p, end, depth + 1))
        return FALSE;
      skip_space (p, end);
      if (*p < end && **p == ',')
        {
          (*p)++;
          skip_space (p, end);
          continue;
        }
      if (*p < end && **p == close)
        {
          (*p)++;
          return TRUE;
        }
      return FALSE;
    }
}

/* One value at *p (after optional whitespace); *p is left just past it. */
static gboolean
skip_value (const char **p, const char *end, int depth)
{
  skip_space (p, end);
  if (*p >= end)
    return FALSE;
  switch (**p)
    {
    case '{':
      return skip_container (p, end, depth, '}', TRUE);
    case '[':
      return skip_container (p, end, depth, ']', FALSE);
    case '"':
      return read_string (p, end, NULL);
    case 't':
      return skip_word (p, end, "true");
    case 'f':
      return skip_word (p, end, "false");
    case 'n':
      return skip_word (p, end, "null");
    default:
      return skip_number (p, end);
    }
}

gboolean
json_scan_is_object (const char *text, gsize length)
{
  const char *p = text, *end = text + length;

  skip_space (&p, end);
  if (p >= end || *p != '{' || !skip_value (&p, end, 0))
    return FALSE;
  skip_space (&p, end);
  return p == end;
}

const char *
json_scan_member (const char *obj, const char *end, const char *key)
{
  const char *p = obj, *found = NULL;

  skip_space (&p, end);
  if (p >= end || *p != '{')
    return NULL;
  p++;
  for (;;)
    {
      g_autoptr(GString) name = g_string_new (NULL);

      skip_space (&p, end);
      if (p >= end || *p == '}' || !read_string (&p, end, name))
        return found;
      skip_space (&p, end);
      if (p >= end || *p != ':')
        return found;
      p++;
      skip_space (&p, end);
      if (strcmp (name->str, key) == 0)
        found = p;              /* a later one replaces it, as in json-glib */
      if (!skip_value (&p, end, 1))
        return found;
      skip_space (&p, end);
      if (p >= end || *p != ',')
        return found;
      p++;
    }
}

char *
json_scan_string (const char *p, const char *end)
{
  g_autoptr(GString) out = g_string_new (NULL);

  if (p == NULL || !read_string (&p, end, out))
    return NULL;
  return g_string_free (g_steal_pointer (&out), FALSE);
}

gboolean
json_scan_int_equals (const char *p, const char *end, gint64 value)
{
  char expected[32];
  const char *q = p;
  gsize n;

  if (p == NULL || !skip_number (&q, end))
    return FALSE;
  n = (gsize) g_snprintf (expected, sizeof expected, "%" G_GINT64_FORMAT, value);
  return (gsize) (q - p) == n && memcmp (p, expected, n) == 0;
}

void
json_scan_append_string (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (const guchar *c = (const guchar *) s; *c != '\0'; c++)
    {
      if (*c == '"' || *c == '\\')
        g_string_append_printf (out, "\\%c", *c);
      else if (*c < 0x20)
        g_string_append_printf (out, "\\u%04x", *c);
      else
        g_string_append_c (out, (char) *c);
    }
  g_string_append_c (out, '"');
}
