/* qmp-message.h: the QMP wire codec.  Pure: no I/O, no main loop, no logging.
 *
 * QEMU sends one JSON object per line, terminated by "\r\n": a greeting, a command's
 * "return" or "error", or an event.  Commands go the other way as
 * {"execute": NAME, "arguments": {...}, "id": ID} (or "exec-oob"). */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "qmp/qmp.h"

G_BEGIN_DECLS

/* QEMU's own limit on a QMP message is far below this; a longer line is a protocol error. */
#define QMP_MAX_LINE_LENGTH (16 * 1024 * 1024)

typedef enum
{
  QMP_MESSAGE_GREETING,
  QMP_MESSAGE_RETURN,
  QMP_MESSAGE_ERROR,
  QMP_MESSAGE_EVENT,
} QmpMessageKind;

const char *qmp_message_kind_to_string (QmpMessageKind kind);

/* One message from QEMU.  Fields are read-only; those not listed for a kind are NULL/0. */
typedef struct
{
  QmpMessageKind kind;
  JsonObject *object;             /* the whole message, as received */

  JsonNode *id;                   /* RETURN, ERROR: the echoed id (any JSON value) or NULL */
  JsonNode *return_value;         /* RETURN: the "return" member (any JSON value) */
  char *error_class;              /* ERROR: e.g. "GenericError", "DeviceNotFound" */
  char *error_desc;               /* ERROR: human text; never parse it */

  char *event;                    /* EVENT: e.g. "SHUTDOWN" */
  JsonObject *data;               /* EVENT: "data", or NULL when absent (STOP, RESUME) */
  gint64 timestamp_seconds;       /* EVENT: QEMU's host wall clock; -1 when absent */
  gint64 timestamp_microseconds;  /* EVENT: 0..999999; -1 when absent */

  guint version_major;            /* GREETING: QMP.version.qemu */
  guint version_minor;
  guint version_micro;
  char *version_package;          /* GREETING: e.g. "Debian 1:7.2+dfsg-7+deb12u18+b3", or "" */
  GStrv capabilities;             /* GREETING: e.g. {"oob", NULL}; never NULL */
} QmpMessage;

/* Parses one line holding exactly one JSON value (JSON-lines protocols: QMP, vmherd's
 * control socket).  NULL with QMP_ERROR_PROTOCOL and the reason: "invalid UTF-8 at byte N",
 * "invalid JSON at 1:5: ...", "invalid JSON: no value", "invalid JSON: more than one value
 * on the line" (json-glib alone would drop the second). */
JsonNode *qmp_json_parse_line (const char *line, gsize length, GError **error);

/* What a node is, for error messages: "an object", "an array", "a string", ... */
const char *qmp_json_describe (JsonNode *node);

/* Parses one line (without its "\r\n").  Fails with QMP_ERROR_PROTOCOL on invalid UTF-8
 * (including NUL bytes), invalid JSON, a non-object or an object of unknown shape. */
QmpMessage *qmp_message_parse (const char *line, gsize length, GError **error);

void qmp_message_free (QmpMessage *message);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QmpMessage, qmp_message_free)

/* The id as an integer; FALSE (out_id untouched) when there is none or it is not one. */
gboolean qmp_message_get_id_int (const QmpMessage *message, gint64 *out_id);

/* For an ERROR message: sets QMP_ERROR_COMMAND with the message "Class: desc". */
void qmp_message_set_gerror (const QmpMessage *message, GError **error);

/* The command object {"execute": NAME, "arguments": ..., "id": ...}; arguments and id may
 * be NULL (then absent); exec_oob writes "exec-oob" instead of "execute".  Neither argument
 * is modified; the new object shares their values. */
JsonObject *qmp_command_build (const char *command, JsonObject *arguments, JsonNode *id,
                               gboolean exec_oob);

/* The same command serialised as one line ending in "\n". */
char *qmp_command_serialize (const char *command, JsonObject *arguments, JsonNode *id,
                             gboolean exec_oob, gsize *out_length);

/* Serialises any object as one line ending in "\n" (the raw pass-through). */
char *qmp_object_serialize (JsonObject *object, gsize *out_length);

/* A copy of object sharing member values, with "id" replaced by id (removed when id is
 * NULL).  Used to swap a console's id for the client's own and back. */
JsonObject *qmp_object_copy_with_id (JsonObject *object, JsonNode *id);

/* Splits a byte stream into lines.  Tolerates "\r\n", skips empty lines. */
typedef struct _QmpLineBuffer QmpLineBuffer;

/* max_line: longest accepted line in bytes (QMP_MAX_LINE_LENGTH for QMP). */
QmpLineBuffer *qmp_line_buffer_new (gsize max_line);
void qmp_line_buffer_free (QmpLineBuffer *buffer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QmpLineBuffer, qmp_line_buffer_free)

/* Appends bytes; lines are taken out with qmp_line_buffer_next(). */
void qmp_line_buffer_feed (QmpLineBuffer *buffer, const void *data, gsize length);

/* Returns the next complete line without "\n" or "\r\n" (NUL-terminated, length in
 * out_length), or NULL: with no error when no complete line is buffered, with
 * QMP_ERROR_PROTOCOL when a line (complete or not) exceeds the maximum. */
char *qmp_line_buffer_next (QmpLineBuffer *buffer, gsize *out_length, GError **error);

/* Bytes buffered after the last complete line (an unterminated message). */
gsize qmp_line_buffer_get_pending (QmpLineBuffer *buffer);

G_END_DECLS
