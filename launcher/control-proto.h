/* control-proto.h: the control socket, client side (used by the vmherd CLI), plus the
 * line codec that the server (control.c) shares.  Blocking, with a timeout: the CLI does
 * one thing at a time.
 *
 * The client may be used from any one thread at a time; it never touches a main loop. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "launcher/control-connect.h"

typedef struct _ControlClient ControlClient;

/* Connects to path.  CONTROL_ERROR_UNREACHABLE: "cannot reach vmherdd at PATH: REASON (is
 * vmherdd running?)"; CONTROL_ERROR_TIMEOUT when the daemon does not accept within
 * CONTROL_CONNECT_TIMEOUT_MS. */
ControlClient *control_client_connect (const char *path, GError **error);
void control_client_free (ControlClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ControlClient, control_client_free)

/* Sends {"execute": command, "arguments": arguments, "id": N} (N counts up from 1 per
 * client; arguments nullable: then absent) and waits up to timeout_ms (0: forever) for the
 * answer with that id.  Returns the "return" value (owned), or NULL with:
 *   CONTROL_ERROR_REFUSED: message is the daemon's desc; *out_error_class (nullable) gets
 *     the class (owned).  An error line without an id (e.g. the daemon refusing the peer
 *     when it connects) counts as the answer.
 *   CONTROL_ERROR_TIMEOUT: "no answer from vmherdd to 'COMMAND' within N ms"; the client
 *     stays usable, and the late answer is skipped by the next call.
 *   CONTROL_ERROR_DISCONNECTED, CONTROL_ERROR_PROTOCOL: the client is no longer usable.
 * Progress lines and events that arrive first go to on_line (nullable); answers to
 * earlier, timed-out calls are skipped. */
typedef void (*ControlLineFunc) (JsonObject *line, gpointer user_data);
JsonNode *control_client_call (ControlClient *client, const char *command, JsonObject *arguments,
                               guint timeout_ms, ControlLineFunc on_line, gpointer user_data,
                               char **out_error_class, GError **error);

/* Reads the next line (an event, after `events`); NULL with an error at EOF
 * (CONTROL_ERROR_DISCONNECTED) or timeout (CONTROL_ERROR_TIMEOUT; timeout_ms 0: wait
 * forever).  Returns the line (owned). */
JsonObject *control_client_read_line (ControlClient *client, guint timeout_ms, GError **error);

/* The file descriptor (non-blocking), for callers that poll it alongside stdin (the
 * consoles).  Lines already read into the client's buffer do not show on the fd: call
 * control_client_has_buffered_line() before polling. */
int control_client_get_fd (ControlClient *client);

/* TRUE when a complete line is buffered, so control_client_read_line() will not block. */
gboolean control_client_has_buffered_line (ControlClient *client);

/* The codec both sides share.  Parses one line (without its "\n") holding exactly one JSON
 * object.  CONTROL_ERROR_PROTOCOL with the reason otherwise: "invalid UTF-8 at byte N",
 * "invalid JSON at 1:5: ...", "invalid JSON: more than one value on the line", "an array, not a JSON
 * object". */
JsonObject *control_line_parse (const char *line, gsize length, GError **error);

/* Checks that object (from control_line_parse()) is a request: {"execute": STRING,
 * "arguments": OBJECT, "id": ANY} with arguments and id optional, nothing else.  On success
 * *out_command and *out_arguments (NULL when absent) point into object.  Otherwise
 * CONTROL_ERROR_PROTOCOL with the reason: "no 'execute' member (...)", "'execute' is a number,
 * not a string", "'arguments' of 'start' is an array, not an object", "unexpected member
 * 'argument' (...)". */
gboolean control_request_check (JsonObject *object, const char **out_command, JsonObject **out_arguments,
                                GError **error);

/* What a JSON node is, for messages: "an object", "an array", "a string", "a number",
 * "a boolean", "null". */
const char *control_json_describe (JsonNode *node);

/* The member's string, or NULL when it is absent or not a string. */
const char *control_json_get_string (JsonObject *object, const char *member);
