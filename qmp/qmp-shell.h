/* qmp-shell.h: what an operator types into `vmherd qmp`, turned into QMP commands, and the
 * schema look-ups behind tab completion.  Pure: no I/O. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

/* Parses one console line:
 *   query-status                          -> {"execute":"query-status"}
 *   blockdev-add driver=null-co node-name=n0 read-zeroes=true
 *   migrate-set-parameters downtime-limit=50 tls-creds="x y"
 *   device_add driver=virtio-rng-pci id=rng0 opts.a.b=1   (dotted keys nest objects)
 *   {"execute":"query-status"}            (raw JSON, sent as it is)
 *   hmp info network                      -> human-monitor-command {"command-line": "..."}
 * A value is JSON when it parses as JSON (42, true, [1,2]), else a string.  Tokens are split
 * like a shell ('a b' and "a b" hold spaces), so JSON with double quotes goes in single
 * quotes: opts='{"a":1}', and s='"42"' forces a string.  Returns a new object, or NULL with
 * G_IO_ERROR_INVALID_ARGUMENT naming the bad token; an empty line
 * returns NULL without an error. */
JsonObject *qmp_shell_parse (const char *line, GError **error);

/* TRUE when command only reads (query-*), the set read-only consoles may run. */
gboolean qmp_shell_is_read_only (const char *command);

/* Names of the commands in a query-commands answer, sorted. */
GStrv qmp_shell_command_names (JsonNode *query_commands);

/* Argument names of command in a query-qmp-schema answer (the members of its arg-type),
 * sorted; an empty vector when it takes none or is unknown. */
GStrv qmp_shell_command_args (JsonNode *schema, const char *command);
