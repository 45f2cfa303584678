/* peer-channel.c: one peer-link connection's lines: reading, a write queue, closing.
 *
 * Each pending async operation holds a reference, so callbacks that free the owner
 * (peer_channel_free() from on_line) are safe: a closed channel ignores late results. */
#define G_LOG_DOMAIN "vmherd-peer"

#include "launcher/peer-private.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "qmp/qmp-message.h"

#define READ_CHUNK (64 * 1024)
#define LINGER_MS 2000          /* after a refusal: wait this long for the peer to close */

struct _PeerChannel
{
  guint refcount;
  GIOStream *stream;
  GSocketConnection *base;
  GCancellable *cancellable;
  QmpLineBuffer *lines;
  guint8 *buffer;
  GQueue out_queue;             /* GBytes, one line each */
  gsize out_bytes;              /* unsent bytes besides the line being written */
  gboolean writing;
  gboolean closed;              /* no more callbacks */
  gboolean draining;            /* close_after_flush: input is dropped */
  gboolean shut_down;           /* write side shut down */
  GSource *linger_source;
  PeerChannelLineFunc on_line;
  PeerChannelClosedFunc on_closed;
  gpointer user_data;
};

static PeerChannel *
channel_ref (PeerChannel *channel)
{
  channel->refcount++;
  return channel;
}

static void
channel_unref (PeerChannel *channel)
{
  if (--channel->refcount > 0)
    return;
  g_assert (channel->closed);
  g_queue_clear_full (&channel->out_queue, (GDestroyNotify) g_bytes_unref);
  qmp_line_buffer_free (channel->lines);
  g_free (channel->buffer);
  g_object_unref (channel->cancellable);
  g_object_unref (channel->stream);
  g_object_unref (channel->base);
  g_free (channel);
}

JsonObject *
peer_error_object_new (const char *error_class, const char *desc)
{
  JsonObject *body = json_object_new ();
  JsonObject *object = json_object_new ();

  json_object_set_string_member (body, "class", error_class);
  json_object_set_string_member (body, "desc", desc);
  json_object_set_object_member (object, "error", body);
  return object;
}

PeerChannel *
peer_channel_new (GIOStream *stream, GSocketConnection *base, PeerChannelLineFunc on_line,
                  PeerChannelClosedFunc on_closed, gpointer user_data)
{
  PeerChannel *channel = g_new0 (PeerChannel, 1);

  channel->refcount = 1;
  channel->stream = g_object_ref (stream);
  channel->base = g_object_ref (base);
  channel->cancellable = g_cancellable_new ();
  channel->lines = qmp_line_buffer_new (PEER_MAX_LINE_LENGTH);
  channel->buffer = g_malloc (READ_CHUNK);
  channel->on_line = on_line;
  channel->on_closed = on_closed;
  channel->user_data = user_data;
  return channel;
}

gboolean
peer_channel_is_open (PeerChannel *channel)
{
  return channel != NULL && !channel->closed && !channel->draining;
}

/* Releases the socket at once: nothing waits for the peer. */
static void
channel_shut (PeerChannel *channel)
{
  channel->closed = TRUE;
  g_cancellable_cancel (channel->cancellable);
  if (channel->linger_source != NULL)
    {
      g_source_destroy (channel->linger_source);
      g_clear_pointer (&channel->linger_source, g_source_unref);
    }
  g_queue_clear_full (&channel->out_queue, (GDestroyNotify) g_bytes_unref);
  channel->out_bytes = 0;
  g_socket_close (g_socket_connection_get_socket (channel->base), NULL);
}

/* The channel ended by itself: tell the owner (once). */
static void
channel_fail (PeerChannel *channel, const GError *error)
{
  if (channel->closed)
    return;
  channel_shut (channel);
  if (channel->on_closed != NULL)
    channel->on_closed (error, channel->user_data);
}

static void
channel_fail_literal (PeerChannel *channel, GQuark domain, int code, const char *message)
{
  g_autoptr(GError) error = g_error_new_literal (domain, code, message);

  channel_fail (channel, error);
}

void
peer_channel_close (PeerChannel *channel)
{
  if (channel == NULL || channel->closed)
    return;
  channel_shut (channel);
}

void
peer_channel_free (PeerChannel *channel)
{
  if (channel == NULL)
    return;
  peer_channel_close (channel);
  channel_unref (channel);
}

/* ---- reading ---- */

static void channel_read_next (PeerChannel *channel);

static void
on_read (GObject *source, GAsyncResult *result, gpointer data)
{
  PeerChannel *channel = data;
  g_autoptr(GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  char *line;
  gsize length;

  if (channel->closed)
    goto out;
  if (n < 0)
    {
      channel_fail (channel, error);
      goto out;
    }
  if (n == 0)
    {
      channel_fail (channel, NULL);
      goto out;
    }
  if (channel->draining)
    {
      channel_read_next (channel);
      goto out;
    }
  qmp_line_buffer_feed (channel->lines, channel->buffer, (gsize) n);
  while (!channel->closed && !channel->draining
         && (line = qmp_line_buffer_next (channel->lines, &length, &error)) != NULL)
    {
      channel->on_line (line, length, channel->user_data);
      g_free (line);
    }
  if (error != NULL)
    {
      g_debug ("peer link: %s", error->message);
      channel_fail_literal (channel, PEER_ERROR, PEER_ERROR_PROTOCOL, error->message);
      goto out;
    }
  if (!channel->closed)
    channel_read_next (channel);
out:
  channel_unref (channel);
}

static void
channel_read_next (PeerChannel *channel)
{
  GInputStream *in = g_io_stream_get_input_stream (channel->stream);

  g_input_stream_read_async (in, channel->buffer, READ_CHUNK, G_PRIORITY_DEFAULT,
                             channel->cancellable, on_read, channel_ref (channel));
}

void
peer_channel_start (PeerChannel *channel)
{
  g_return_if_fail (channel != NULL && !channel->closed);

  channel_read_next (channel);
}

/* ---- writing ---- */

static void channel_write_next (PeerChannel *channel);

static gboolean
on_linger_done (gpointer data)
{
  PeerChannel *channel = data;

  g_clear_pointer (&channel->linger_source, g_source_unref);
  channel_fail (channel, NULL);
  return G_SOURCE_REMOVE;
}

/* After close_after_flush and the last line: no more output; the peer sees EOF, closes,
 * and our read loop sees its EOF (or the grace time ends). */
static void
channel_shutdown_write (PeerChannel *channel)
{
  channel->shut_down = TRUE;
  g_socket_shutdown (g_socket_connection_get_socket (channel->base), FALSE, TRUE, NULL);
  channel->linger_source = g_timeout_source_new (LINGER_MS);
  g_source_set_callback (channel->linger_source, on_linger_done, channel, NULL);
  g_source_attach (channel->linger_source, g_main_context_get_thread_default ());
}

static void
on_written (GObject *source, GAsyncResult *result, gpointer data)
{
  PeerChannel *channel = data;
  g_autoptr(GError) error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      if (!channel->closed)
        channel_fail (channel, error);
      channel_unref (channel);
      return;
    }
  channel->writing = FALSE;
  if (!channel->closed)
    {
      g_bytes_unref (g_queue_pop_head (&channel->out_queue));
      channel_write_next (channel);
    }
  channel_unref (channel);
}

static void
channel_write_next (PeerChannel *channel)
{
  GOutputStream *out = g_io_stream_get_output_stream (channel->stream);
  GBytes *head = g_queue_peek_head (&channel->out_queue);
  gsize size;
  const void *data;

  if (head == NULL)
    {
      if (channel->draining && !channel->shut_down)
        channel_shutdown_write (channel);
      return;
    }
  data = g_bytes_get_data (head, &size);
  channel->out_bytes -= size;
  channel->writing = TRUE;
  g_output_stream_write_all_async (out, data, size, G_PRIORITY_DEFAULT, channel->cancellable,
                                   on_written, channel_ref (channel));
}

void
peer_channel_send (PeerChannel *channel, JsonObject *object, JsonNode *id)
{
  g_autoptr(JsonObject) with_id = NULL;
  gsize length = 0;
  char *text;

  if (channel == NULL || channel->closed || channel->draining)
    return;
  with_id = qmp_object_copy_with_id (object, id);
  text = qmp_object_serialize (with_id, &length);
  g_queue_push_tail (&channel->out_queue, g_bytes_new_take (text, length));
  channel->out_bytes += length;
  if (channel->out_bytes > PEER_OUTPUT_LIMIT)
    {
      g_message ("peer link: closing a connection: more than %d bytes of output unread (is the "
                 "peer stuck?)", PEER_OUTPUT_LIMIT);
      channel_fail_literal (channel, PEER_ERROR, PEER_ERROR_DISCONNECTED,
                            "output limit exceeded (the peer does not read)");
      return;
    }
  if (!channel->writing)
    channel_write_next (channel);
}

void
peer_channel_close_after_flush (PeerChannel *channel)
{
  if (channel == NULL || channel->closed || channel->draining)
    return;
  channel->draining = TRUE;
  if (!channel->writing)
    channel_write_next (channel);
}

void
peer_socket_keepalive (GSocket *socket)
{
  /* Idle 10 s, then a probe every 5 s, 4 unanswered: gone after 30 s.  The link carries a
   * migration's control, so a dead peer must end it long before TCP's own two hours. */
  g_socket_set_keepalive (socket, TRUE);
  g_socket_set_option (socket, IPPROTO_TCP, TCP_KEEPIDLE, 10, NULL);
  g_socket_set_option (socket, IPPROTO_TCP, TCP_KEEPINTVL, 5, NULL);
  g_socket_set_option (socket, IPPROTO_TCP, TCP_KEEPCNT, 4, NULL);
  G_STATIC_ASSERT (10 + 5 * 4 == PEER_KEEPALIVE_S);
}
