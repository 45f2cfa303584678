/* qga-ping.h: one liveness check of the QEMU guest agent (qemu-ga) over its virtio-serial
 * channel, the way qga/qapi-schema.json asks a client to talk to it:
 *
 *   -> 0xFF {"execute":"guest-sync-delimited","arguments":{"id":ID}}
 *   <- anything (dropped) 0xFF {"return":ID}      replies with another id are stale: dropped
 *   -> {"execute":"guest-ping"}
 *   <- {"return":{}}
 *
 * There is no greeting.  The 0xFF we send makes the agent drop a half-read request (it
 * answers that with a parse error, which is dropped too); the 0xFF it puts before the sync
 * reply marks where the answers to this sync start.  Requests written while no agent had
 * the port open are delivered to it later, so their replies come first: the sync is done
 * before every ping, which also makes every ping its own resync after a timeout. */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "qmp/qmp.h"

G_BEGIN_DECLS

#define QGA_DELIMITER 0xFF
#define QGA_OBJECT_MAX (64 * 1024)   /* a longer reply is not qemu-ga's answer to us: dropped */

/* Splits the agent's byte stream into JSON objects.  Pure: no I/O. */
typedef struct _QgaScanner QgaScanner;

QgaScanner *qga_scanner_new (void);
void qga_scanner_free (QgaScanner *scanner);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QgaScanner, qga_scanner_free)

/* Drops what was read so far and everything up to the next 0xFF byte. */
void qga_scanner_wait_delimiter (QgaScanner *scanner);
void qga_scanner_feed (QgaScanner *scanner, const char *data, gsize length);
/* The next complete JSON object (a new node), or NULL until more bytes are fed.  Bytes
 * between objects, objects that are not valid JSON or exceed QGA_OBJECT_MAX, and a piece of
 * an object cut by a 0xFF are skipped. */
JsonNode *qga_scanner_next (QgaScanner *scanner);

/* Syncs with id sync_id, then pings, on stream (a connection to QEMU's chardev for the
 * agent port).  No timeout of its own: the caller cancels, and then should close the
 * stream (a request may be half written).  The callback runs from the thread-default main
 * context, never from inside this call. */
void qga_ping_async (GIOStream *stream, gint64 sync_id, GCancellable *cancellable,
                     GAsyncReadyCallback callback, gpointer user_data);
/* TRUE when the agent answered the ping.  Errors: QMP_ERROR_DISCONNECTED (EOF, a read or
 * write error), QMP_ERROR_COMMAND (the agent answered with an error: "Class: desc"),
 * QMP_ERROR_PROTOCOL (the ping's answer is not {"return":{}}), QMP_ERROR_CANCELLED. */
gboolean qga_ping_finish (GAsyncResult *result, GError **error);

/* A random id for guest-sync-delimited: positive, below 2^53 (exact in any JSON reader). */
gint64 qga_sync_id_new (void);

G_END_DECLS
