/* qmp-client-event.c: subscribers and the queue of events nobody has taken yet.
 * Re-entrancy rules: qmp-client-private.h. */
#define G_LOG_DOMAIN "vmherd-qmp"

#include "qmp/qmp-client-private.h"

static gboolean
client_has_subscribers (QmpClient *client)
{
  for (guint i = 0; i < client->subscriptions->len; i++)
    if (((QmpSubscription *) g_ptr_array_index (client->subscriptions, i))->func != NULL)
      return TRUE;
  return FALSE;
}

/* Delivers queued events in order; only from a held dispatch. */
static void
client_deliver_events (QmpClient *client)
{
  QmpMessage *event;

  while (!client->free_requested && client_has_subscribers (client)
         && (event = g_queue_pop_head (&client->events)) != NULL)
    {
      guint n_subscriptions = client->subscriptions->len; /* not those added by callbacks */

      for (guint i = 0; i < n_subscriptions && !client->free_requested; i++)
        {
          QmpSubscription *subscription = g_ptr_array_index (client->subscriptions, i);

          if (subscription->func != NULL)
            subscription->func (client, event, subscription->user_data);
        }
      qmp_message_free (event);
    }
}

void
qmp_client_on_event (QmpClient *client, QmpMessage *event)
{
  if (client->events.length >= QMP_CLIENT_MAX_QUEUED_EVENTS)
    {
      QmpMessage *oldest = g_queue_pop_head (&client->events);

      g_debug ("%u events queued with no subscriber, dropping the oldest (%s)", client->events.length + 1,
               oldest->event);
      qmp_message_free (oldest);
    }
  g_queue_push_tail (&client->events, event);
  client_deliver_events (client);
}

static gboolean
on_events_idle (gpointer data)
{
  QmpClient *client = data;

  qmp_client_hold (client);
  g_clear_pointer (&client->events_source, qmp_source_drop);
  client_deliver_events (client);
  qmp_client_release (client);
  return G_SOURCE_REMOVE;
}

guint
qmp_client_subscribe (QmpClient *client, QmpEventFunc func, gpointer user_data, GDestroyNotify destroy)
{
  QmpSubscription *subscription;

  g_return_val_if_fail (client != NULL && func != NULL, 0);

  subscription = g_new0 (QmpSubscription, 1);
  subscription->id = ++client->next_subscription_id;
  subscription->func = func;
  subscription->user_data = user_data;
  subscription->destroy = destroy;
  g_ptr_array_add (client->subscriptions, subscription);
  if (client->events.length > 0 && client->events_source == NULL)
    client->events_source = qmp_client_attach (client, g_idle_source_new (), on_events_idle, client);
  return subscription->id;
}

void
qmp_client_unsubscribe (QmpClient *client, guint subscription_id)
{
  g_return_if_fail (client != NULL);

  for (guint i = 0; i < client->subscriptions->len; i++)
    {
      QmpSubscription *subscription = g_ptr_array_index (client->subscriptions, i);
      GDestroyNotify destroy = subscription->destroy;
      gpointer user_data = subscription->user_data;

      if (subscription->id != subscription_id || subscription->func == NULL)
        continue;
      subscription->func = NULL;
      if (client->dispatch_depth > 0)
        client->subscriptions_dirty = TRUE; /* a dispatch is walking the array */
      else
        g_ptr_array_remove_index (client->subscriptions, i);
      if (destroy != NULL)
        destroy (user_data);
      return;
    }
  g_return_if_reached ();
}

void
qmp_client_clear_subscriptions (QmpClient *client)
{
  for (guint i = 0; i < client->subscriptions->len; i++)
    {
      QmpSubscription *subscription = g_ptr_array_index (client->subscriptions, i);

      subscription->func = NULL;
      if (subscription->destroy != NULL)
        g_steal_pointer (&subscription->destroy) (subscription->user_data);
    }
}

void
qmp_client_compact_subscriptions (QmpClient *client)
{
  if (!client->subscriptions_dirty)
    return;
  for (guint i = client->subscriptions->len; i-- > 0;)
    if (((QmpSubscription *) g_ptr_array_index (client->subscriptions, i))->func == NULL)
      g_ptr_array_remove_index (client->subscriptions, i);
  client->subscriptions_dirty = FALSE;
}
