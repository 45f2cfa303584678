/* control.h: the control socket (/run/vmherd/control), server side.
 *
 * One JSON object per line, shaped like QMP:
 *   -> {"execute":"start","arguments":{"vm":"web"},"id":1}
 *   <- {"return":{},"id":1}
 *   <- {"error":{"class":"NotFound","desc":"no VM named 'web' in /etc/vmherd/vms.d"},"id":1}
 * The id is any JSON value, echoed verbatim (absent in the answer when absent in the
 * request).  A client may send several requests without waiting; answers come in the
 * order the handler gives them.  Malformed lines get {"error":{"class":"InvalidArgument",
 * ...}} (with the id when one could be read) and the connection carries on.
 * A client that sent {"execute":"events"} also receives {"event":NAME,"data":{...},
 * "timestamp":{"seconds":S,"microseconds":US}} lines until it disconnects.
 * Peers are identified with SO_PEERCRED: root may do anything, members of the control group
 * may only run read-only commands, anybody else gets one PermissionDenied line and is
 * closed before any request is read.
 * Each connection's unsent output is capped (CONTROL_OUTPUT_LIMIT): a client that stops
 * reading is closed, never waited for.
 *
 * Everything runs on the thread-default main context of the thread that created the
 * server; no call blocks. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

#include "launcher/control-proto.h" /* CONTROL_ERROR */

/* Unsent bytes a connection may hold, besides the line being written, before it is closed
 * (g_message "control socket: closing the connection of uid N (pid P): ...").  So one
 * answer larger than this still goes out whole to a client that reads. */
#define CONTROL_OUTPUT_LIMIT (4 * 1024 * 1024)

typedef struct _ControlServer ControlServer;
typedef struct _ControlRequest ControlRequest;

typedef struct
{
  pid_t pid;
  uid_t uid;
  gid_t gid;
  gboolean may_write;           /* root (uid 0): TRUE; control-group member: FALSE */
} ControlPeer;

/* Called once per well-formed request the peer may run; arguments is never NULL ({} when
 * absent) and only valid during the call (take a reference to keep it).  The handler must
 * answer exactly once, now or later from the main loop, with control_request_return() or
 * control_request_error(); the request stays valid until then even if the client
 * disconnects or the server is freed (the answer is then dropped). */
typedef void (*ControlHandler) (ControlRequest *request, const char *command,
                                JsonObject *arguments, gpointer user_data);

/* Binds path and starts accepting.  An existing socket file is removed only when nobody
 * listens on it (connect() fails with ECONNREFUSED); the new socket gets mode 0660 and
 * group control_group when that group exists (skipped silently when not).  Errors:
 * CONTROL_ERROR_IN_USE "vmherdd already running at PATH"; CONTROL_ERROR_IO "cannot bind
 * PATH: REASON" (also when path exists and is not a socket: it is never removed). */
ControlServer *control_server_new (const char *path, const char *control_group,
                                   ControlHandler handler, gpointer user_data, GError **error);
/* Closes every connection and removes the socket file (unless another server replaced
 * it).  Requests not yet answered stay valid; their answers are dropped.  May be called
 * from the handler (a `shutdown` command): requests read after that one are not run. */
void control_server_free (ControlServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ControlServer, control_server_free)

/* The commands members of the control group may run (copied; NULL restores the default:
 * list, status, events, version, logs, image-info).  Root may run every command. */
void control_server_set_read_only_commands (ControlServer *server, const char *const *commands);

/* Sends an event to every client that asked for events (`events` command), with the
 * current wall-clock time as "timestamp" like QMP.  data (nullable: sent as {}) is not
 * modified. */
void control_server_broadcast_event (ControlServer *server, const char *event, JsonObject *data);

/* Pure: whether peer may run command.  Writers may run anything; read-only peers only the
 * commands in read_only_commands (NULL: the default list above). */
gboolean control_peer_may_run (const ControlPeer *peer, const char *command,
                               const char *const *read_only_commands);

/* The peer that sent the request; valid until the request is answered. */
const ControlPeer *control_request_get_peer (ControlRequest *request);
/* The request's "execute", e.g. "start"; valid until the request is answered. */
const char *control_request_get_command (ControlRequest *request);
/* FALSE once the client has disconnected (or the server was freed): the answer will be
 * dropped, so long-running work (a console, a migration's progress) may stop early. */
gboolean control_request_is_connected (ControlRequest *request);
/* Answers with {"return": value}; takes ownership of value (NULL means {}).  Frees the
 * request. */
void control_request_return (ControlRequest *request, JsonNode *value);
/* Answers with {"return": value} (taken), waits for the answer to leave, and takes the
 * connection away from the server for a raw byte stream (the serial console).  Returns the
 * socket (blocking mode unchanged: non-blocking), now the caller's, or -1 when the client is
 * gone or had sent further requests. */
int control_request_return_and_detach (ControlRequest *request, JsonNode *value);

/* Answers with {"error": {"class": error_class, "desc": ...}} and frees the request.
 * Classes: GenericError, NotFound, PermissionDenied, InvalidArgument, Busy (like QMP's,
 * plus ours). */
void control_request_error (ControlRequest *request, const char *error_class,
                            const char *format, ...) G_GNUC_PRINTF (3, 4);
/* Marks the connection as an event subscriber (for the `events` command); the request is
 * still answered normally. */
void control_request_subscribe_events (ControlRequest *request);
/* Sends an extra line to this request's client before the answer (e.g. console output,
 * migration progress): {"progress": data, "id": ID}.  data is not modified. */
void control_request_send_progress (ControlRequest *request, JsonObject *data);
