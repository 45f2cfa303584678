/* qmp-client.h: an asynchronous QMP client on the GLib main loop.
 *
 * One client serves one connection to one QEMU monitor, and is used once:
 *   DISCONNECTED -> CONNECTING (socket open, waiting for the greeting)
 *                -> NEGOTIATING (greeting received, qmp_capabilities sent)
 *                -> READY -> CLOSED
 * Any failure goes straight to CLOSED; make a new client to reconnect.
 *
 * All I/O is non-blocking on the thread-default main context of qmp_client_new()'s caller.
 * Callbacks (GAsyncReadyCallback, events, closed) run from that main loop, never from
 * inside the call that started the operation.  A callback may call qmp_client_free().
 * The GAsyncReadyCallback's source_object is NULL: pass what you need in user_data.
 *
 * Malformed input (invalid UTF-8 or JSON, unknown message shape, a line over 16 MiB)
 * closes the connection with QMP_ERROR_PROTOCOL: QEMU never sends such a line, so the
 * stream cannot be trusted afterwards, and the supervisor reconnects and resyncs. */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "qmp/qmp.h"
#include "qmp/qmp-message.h"

G_BEGIN_DECLS

#define QMP_CLIENT_MAX_FDS 16             /* fds attached to one command */
#define QMP_CLIENT_MAX_QUEUED_EVENTS 1024 /* events kept while nobody is subscribed */

typedef enum
{
  QMP_CLIENT_STATE_DISCONNECTED,
  QMP_CLIENT_STATE_CONNECTING,
  QMP_CLIENT_STATE_NEGOTIATING,
  QMP_CLIENT_STATE_READY,
  QMP_CLIENT_STATE_CLOSED,
} QmpClientState;

const char *qmp_client_state_to_string (QmpClientState state);

typedef struct _QmpClient QmpClient;

/* An event (kind QMP_MESSAGE_EVENT), borrowed for the duration of the call. */
typedef void (*QmpEventFunc) (QmpClient *client, const QmpMessage *event, gpointer user_data);

/* Why a READY connection closed: QMP_ERROR_DISCONNECTED (EOF, read or write error) or
 * QMP_ERROR_PROTOCOL (malformed input).  Borrowed for the duration of the call. */
typedef void (*QmpClosedFunc) (QmpClient *client, const GError *reason, gpointer user_data);

QmpClient *qmp_client_new (void);

/* Closes the connection and frees the client; NULL-safe, callable from any callback.
 * Pending connect and command callbacks still run, later from the main loop, with
 * QMP_ERROR_CANCELLED (their user_data must stay valid); the closed callback does not. */
void qmp_client_free (QmpClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QmpClient, qmp_client_free)

/* Capabilities to enable with qmp_capabilities (e.g. {"oob", NULL}); those the greeting
 * does not offer are left out.  Only before connecting. */
void qmp_client_set_capabilities (QmpClient *client, const char *const *capabilities);

/* Called once when a READY connection closes (not on qmp_client_free(), not when connecting
 * fails: the connect callback reports that).  Replaces the previous function. */
void qmp_client_set_closed_func (QmpClient *client, QmpClosedFunc func, gpointer user_data,
                                 GDestroyNotify destroy);

/* Connects to QEMU's QMP socket and negotiates; the callback fires once READY or CLOSED.
 * timeout_ms (0: none) bounds greeting + qmp_capabilities: a SIGSTOPped QEMU accepts
 * connect() and never speaks.  Only in state DISCONNECTED. */
void qmp_client_connect_async (QmpClient *client, const char *socket_path, guint timeout_ms,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data);

/* The same over an already-connected stream socket, whose ownership passes to the client. */
void qmp_client_open_fd_async (QmpClient *client, int fd, guint timeout_ms, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data);

/* TRUE once READY.  Errors: QMP_ERROR_IO (connect), _TIMEOUT, _DISCONNECTED, _PROTOCOL,
 * _COMMAND (qmp_capabilities refused), _CANCELLED.  client is not dereferenced. */
gboolean qmp_client_connect_finish (QmpClient *client, GAsyncResult *result, GError **error);

QmpClientState qmp_client_get_state (QmpClient *client);

/* The greeting (QEMU version, capabilities), or NULL before it arrived. */
const QmpMessage *qmp_client_get_greeting (QmpClient *client);

/* Sends {"execute": command, "arguments": arguments, "id": N} with a fresh increasing
 * integer id.  arguments (nullable) is not modified; the caller keeps its reference.
 * fds (n_fds <= QMP_CLIENT_MAX_FDS) are duplicated at once and ride as SCM_RIGHTS on the
 * first byte of the command (getfd, add-fd).  timeout_ms 0: wait forever.  A timed-out or
 * cancelled command may still run in QEMU; its late reply is dropped. */
void qmp_client_execute_async (QmpClient *client, const char *command, JsonObject *arguments,
                               const int *fds, guint n_fds, guint timeout_ms, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data);

/* The "return" value (a new reference; any JSON value), or NULL with: QMP_ERROR_COMMAND
 * ("Class: desc"), _TIMEOUT, _DISCONNECTED (not READY, or closed before the reply),
 * _CANCELLED, _IO (fd duplication).  client is not dereferenced. */
JsonNode *qmp_client_execute_finish (QmpClient *client, GAsyncResult *result, GError **error);

/* Like qmp_client_execute_finish() but returns the whole reply, RETURN or ERROR (read
 * error_class there); GError only when no reply came. */
QmpMessage *qmp_client_execute_finish_full (QmpClient *client, GAsyncResult *result, GError **error);

/* Pass-through for the QMP console: sends command (any object, not modified; "execute" or
 * "exec-oob" is up to the caller and QEMU) with its "id" swapped for the client's own.
 * Same fds/timeout/cancellable rules as qmp_client_execute_async(). */
void qmp_client_execute_raw_async (QmpClient *client, JsonObject *command, const int *fds, guint n_fds,
                                   guint timeout_ms, GCancellable *cancellable,
                                   GAsyncReadyCallback callback, gpointer user_data);

/* The reply object as QEMU sent it ("return" or "error") with the caller's original "id"
 * restored (absent if the command had none).  GError as for execute_finish_full(). */
JsonObject *qmp_client_execute_raw_finish (QmpClient *client, GAsyncResult *result, GError **error);

/* Calls func for every event, in arrival order, until unsubscribed.  Events that arrived
 * while nobody was subscribed (at most QMP_CLIENT_MAX_QUEUED_EVENTS, oldest dropped) are
 * delivered from the main loop to every subscriber present then.  Returns an id > 0. */
guint qmp_client_subscribe (QmpClient *client, QmpEventFunc func, gpointer user_data,
                            GDestroyNotify destroy);

/* Stops calls to that subscriber (also from within an event callback) and calls its destroy. */
void qmp_client_unsubscribe (QmpClient *client, guint subscription_id);

G_END_DECLS
