/* json-scan.h: a small strict JSON reader for the lean `vmherd` front (front-main.c), which
 * links GLib alone: it checks one value and finds members in place, building no tree.
 * The rest of vmherd uses json-glib. */
#pragma once

#include <glib.h>

/* Whether text[0..length) is one JSON object, with whitespace around it and nothing else:
 * RFC 8259 syntax, strings in valid UTF-8, at most 64 objects and arrays open at once. */
gboolean json_scan_is_object (const char *text, gsize length);

/* In the object at obj (checked by json_scan_is_object, ending before end): where the value
 * of member key starts, or NULL if there is no such member.  Of two members with one name
 * the last wins, as in json-glib. */
const char *json_scan_member (const char *obj, const char *end, const char *key);

/* The string value at p decoded (g_free), or NULL when the value at p is not a string or
 * holds a NUL (\u0000). */
char *json_scan_string (const char *p, const char *end);

/* Whether the value at p is an integer equal to value. */
gboolean json_scan_int_equals (const char *p, const char *end, gint64 value);

/* Appends s to out as a JSON string, quotes included. */
void json_scan_append_string (GString *out, const char *s);
