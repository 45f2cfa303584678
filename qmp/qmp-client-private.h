/* qmp-client-private.h: QmpClient's insides, shared by qmp-client*.c only.
 *
 * Re-entrancy: every call into the caller's code (task callbacks, events, closed) happens
 * with the client held (dispatch_depth > 0).  qmp_client_free() inside such a callback
 * only marks and closes the client; the memory goes when the outermost hold is released,
 * so code after a callback checks qmp_client_is_open() before touching the connection. */
#pragma once

#include <glib-unix.h>

#include "qmp/qmp-client.h"

G_BEGIN_DECLS

typedef struct
{
  QmpClient *client;
  gint64 id;
  char *command;          /* for messages */
  GTask *task;            /* NULL for the negotiation's own qmp_capabilities */
  gboolean raw;           /* complete with the reply object and caller_id */
  JsonNode *caller_id;    /* raw: the console's id, restored in the reply (may be NULL) */
  guint timeout_ms;
  GSource *timeout_source;
  GSource *cancel_source;
} QmpPending;

typedef struct
{
  guint id;
  QmpEventFunc func;      /* NULL once unsubscribed (removed when no dispatch runs) */
  gpointer user_data;
  GDestroyNotify destroy;
} QmpSubscription;

struct _QmpClient
{
  QmpClientState state;
  GMainContext *context;
  int fd;
  GSource *in_source;
  GSource *out_source;          /* only while out_queue is not empty */
  GSource *connect_timeout_source;
  GSource *connect_cancel_source;
  GTask *connect_task;
  guint connect_timeout_ms;
  GStrv capabilities;           /* to enable at negotiation */
  QmpMessage *greeting;

  QmpLineBuffer *lines;
  guint8 *read_buffer;
  GQueue out_queue;             /* QmpOutChunk */
  GQueue pending;               /* QmpPending, oldest first */
  gint64 next_id;

  GPtrArray *subscriptions;     /* QmpSubscription */
  guint next_subscription_id;
  gboolean subscriptions_dirty;
  GQueue events;                /* QmpMessage waiting for a subscriber */
  GSource *events_source;       /* delivers queued events after the first subscribe */

  QmpClosedFunc closed_func;
  gpointer closed_data;
  GDestroyNotify closed_destroy;

  guint dispatch_depth;
  gboolean free_requested;
};

/* qmp-client.c */
void qmp_source_drop (GSource *source);
GSource *qmp_client_attach (QmpClient *client, GSource *source, GSourceFunc func, gpointer data);
void qmp_client_hold (QmpClient *client);
/* Returns FALSE when the client was freed meanwhile: the pointer is then invalid. */
gboolean qmp_client_release (QmpClient *client);
/* Not closed and not being freed. */
gboolean qmp_client_is_open (QmpClient *client);
/* Gives command (taken) a fresh id, queues it with fds (taken) and records pending (taken). */
void qmp_client_send (QmpClient *client, QmpPending *pending, JsonObject *command, int *fds, guint n_fds);
void qmp_client_on_capabilities_reply (QmpClient *client, QmpMessage *reply);

/* qmp-client-command.c */
void qmp_pending_free (QmpPending *pending);
/* Frees pending (already off the queue) and fails its task (error taken); may call back. */
void qmp_pending_fail (QmpPending *pending, GError *error);
/* Fails task (taken) with error (taken) from a later main-loop iteration. */
void qmp_task_fail_later (GTask *task, GError *error);
/* Completes the command reply (taken) answers, or drops it; may call back. */
void qmp_client_on_reply (QmpClient *client, QmpMessage *reply);

/* qmp-client-event.c */
/* Queues event (taken) and delivers the queue if anyone listens; may call back. */
void qmp_client_on_event (QmpClient *client, QmpMessage *event);
/* Calls every subscriber's destroy (qmp_client_free()). */
void qmp_client_clear_subscriptions (QmpClient *client);
/* Removes unsubscribed entries once no dispatch walks the array. */
void qmp_client_compact_subscriptions (QmpClient *client);

G_END_DECLS
