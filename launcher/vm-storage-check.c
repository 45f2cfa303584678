/* vm-storage-check.c: see vm-storage-check.h. */
#include "launcher/vm-storage-check.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/fd-util.h"

#define CHECK_READ_BYTES 4096
#define CHECK_MIN_FREE_BYTES (1 << 20)

/* NBD fixed newstyle negotiation (the NBD protocol document, "Handshake"). */
#define NBD_INIT_MAGIC G_GUINT64_CONSTANT (0x4e42444d41474943)        /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC G_GUINT64_CONSTANT (0x49484156454F5054)        /* "IHAVEOPT" */
#define NBD_REP_MAGIC G_GUINT64_CONSTANT (0x3e889045565a9)
#define NBD_FLAG_FIXED_NEWSTYLE 1
#define NBD_FLAG_NO_ZEROES 2
#define NBD_OPT_ABORT 2
#define NBD_OPT_INFO 6
#define NBD_REP_ACK 1
#define NBD_REP_ERR_BIT 0x80000000u
#define NBD_REP_ERR_UNSUP 0x80000001u
#define NBD_REPLY_MAX (64 * 1024)   /* a larger reply is not an NBD server's */

typedef struct
{
  char *name;
  char *path;                   /* a file image, or NULL */
  VmNbd nbd;                    /* an NBD disk: export, socket or host + port */
} Target;

typedef struct
{
  GPtrArray *targets;           /* Target */
  gboolean need_space;
  guint timeout_ms;
  VmStorageCheckDone done;
  gpointer data;
} Job;

static void
target_free (Target *t)
{
  g_free (t->name);
  g_free (t->path);
  g_free (t->nbd.export);
  g_free (t->nbd.socket);
  g_free (t->nbd.host);
  g_free (t->nbd.port);
  g_free (t);
}

static void
job_free (Job *job)
{
  g_ptr_array_unref (job->targets);
  g_free (job);
}

static char *
check_file (const Target *t, gboolean need_space)
{
  g_auto(AutoFd) fd = open (t->path, O_RDONLY | O_CLOEXEC);
  char buf[CHECK_READ_BYTES];
  struct statvfs vfs;

  if (fd < 0)
    return g_strdup_printf ("cannot open %s: %s", t->path, g_strerror (errno));
  if (pread (fd, buf, sizeof buf, 0) < 0)
    return g_strdup_printf ("cannot read %s: %s", t->path, g_strerror (errno));
  if (need_space && fstatvfs (fd, &vfs) == 0
      && (guint64) vfs.f_bavail * vfs.f_frsize < CHECK_MIN_FREE_BYTES)
    return g_strdup_printf ("the file system of %s is still full", t->path);
  return NULL;
}

static gboolean
read_all (GInputStream *in, void *buf, gsize size, GError **error)
{
  gsize got = 0;

  if (!g_input_stream_read_all (in, buf, size, &got, NULL, error))
    return FALSE;
  if (got < size)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "the server closed the connection");
      return FALSE;
    }
  return TRUE;
}

static void
put_option (GByteArray *b, guint32 option, const char *data, guint32 length)
{
  guint64 magic = GUINT64_TO_BE (NBD_OPTS_MAGIC);
  guint32 opt = GUINT32_TO_BE (option), len = GUINT32_TO_BE (length);

  g_byte_array_append (b, (const guint8 *) &magic, 8);
  g_byte_array_append (b, (const guint8 *) &opt, 4);
  g_byte_array_append (b, (const guint8 *) &len, 4);
  if (length > 0)
    g_byte_array_append (b, (const guint8 *) data, length);
}

/* The handshake up to NBD_OPT_INFO's final reply, on a connected stream. */
static gboolean
nbd_handshake (GIOStream *io, const char *export, GError **error)
{
  GInputStream *in = g_io_stream_get_input_stream (io);
  GOutputStream *out = g_io_stream_get_output_stream (io);
  g_autoptr(GByteArray) req = g_byte_array_new ();
  g_autoptr(GByteArray) payload = g_byte_array_new ();
  guint64 magic[2];
  guint16 server_flags;
  guint32 client_flags;
  guint32 export_len = (guint32) strlen (export);
  guint32 info_len = GUINT32_TO_BE (export_len);
  guint16 no_requests = 0;

  if (!read_all (in, magic, sizeof magic, error) || !read_all (in, &server_flags, 2, error))
    return FALSE;
  if (GUINT64_FROM_BE (magic[0]) != NBD_INIT_MAGIC || GUINT64_FROM_BE (magic[1]) != NBD_OPTS_MAGIC)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "not an NBD server (bad greeting)");
      return FALSE;
    }
  if (!(GUINT16_FROM_BE (server_flags) & NBD_FLAG_FIXED_NEWSTYLE))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "the NBD server does not speak fixed newstyle");
      return FALSE;
    }
  /* Only flags the server offered may be set. */
  client_flags = GUINT32_TO_BE (GUINT16_FROM_BE (server_flags) & (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES));
  /* NBD_OPT_INFO's data: u32 name length, the name, u16 number of info requests (none). */
  g_byte_array_append (payload, (const guint8 *) &info_len, 4);
  g_byte_array_append (payload, (const guint8 *) export, export_len);
  g_byte_array_append (payload, (const guint8 *) &no_requests, 2);
  g_byte_array_append (req, (const guint8 *) &client_flags, 4);
  put_option (req, NBD_OPT_INFO, (const char *) payload->data, payload->len);
  if (!g_output_stream_write_all (out, req->data, req->len, NULL, NULL, error))
    return FALSE;
  for (;;)
    {
      struct __attribute__ ((packed)) { guint64 magic; guint32 option, type, length; } reply;
      g_autofree char *data = NULL;
      guint32 type, length;

      if (!read_all (in, &reply, sizeof reply, error))
        return FALSE;
      type = GUINT32_FROM_BE (reply.type);
      length = GUINT32_FROM_BE (reply.length);
      if (GUINT64_FROM_BE (reply.magic) != NBD_REP_MAGIC || length > NBD_REPLY_MAX)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "bad NBD option reply");
          return FALSE;
        }
      data = g_malloc (length + 1);
      if (!read_all (in, data, length, error))
        return FALSE;
      data[length] = '\0';
      /* A server too old for NBD_OPT_INFO still answered the handshake: alive enough. */
      if (type == NBD_REP_ACK || type == NBD_REP_ERR_UNSUP)
        return TRUE;
      if (type & NBD_REP_ERR_BIT)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "the NBD server refused export '%s'%s%s",
                       export, length > 0 ? ": " : "", length > 0 ? data : "");
          return FALSE;
        }
    }
}

static char *
check_nbd (const Target *t, guint timeout_ms)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnectable) address = NULL;
  g_autoptr(GSocketConnection) conn = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) abort_req = g_byte_array_new ();
  g_autofree char *where = t->nbd.socket ? g_strdup (t->nbd.socket)
                                         : g_strdup_printf ("%s:%s", t->nbd.host, t->nbd.port);

  /* Each blocking step (connect, every read and write) gets timeout_ms. */
  g_socket_client_set_timeout (client, MAX (1, (timeout_ms + 999) / 1000));
  g_socket_client_set_enable_proxy (client, FALSE);   /* the NBD server itself, never a proxy */
  if (t->nbd.socket != NULL)
    address = G_SOCKET_CONNECTABLE (g_unix_socket_address_new (t->nbd.socket));
  else
    address = g_network_address_new (t->nbd.host, (guint16) g_ascii_strtoull (t->nbd.port, NULL, 10));
  conn = g_socket_client_connect (client, address, NULL, &error);
  if (conn == NULL)
    return g_strdup_printf ("NBD server %s: %s", where, error->message);
  if (!nbd_handshake (G_IO_STREAM (conn), t->nbd.export, &error))
    return g_strdup_printf ("NBD server %s: %s", where, error->message);
  put_option (abort_req, NBD_OPT_ABORT, NULL, 0);
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)), abort_req->data,
                             abort_req->len, NULL, NULL, NULL);
  g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);
  return NULL;
}

static void
run_job (GTask *task, gpointer source G_GNUC_UNUSED, gpointer data, GCancellable *cancel G_GNUC_UNUSED)
{
  Job *job = data;

  for (guint i = 0; i < job->targets->len; i++)
    {
      const Target *t = job->targets->pdata[i];
      g_autofree char *problem = t->path ? check_file (t, job->need_space) : check_nbd (t, job->timeout_ms);

      if (problem != NULL)
        {
          g_task_return_pointer (task, g_strdup_printf ("disk %s: %s", t->name, problem), g_free);
          return;
        }
    }
  g_task_return_pointer (task, NULL, NULL);
}

static void
on_job_done (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data G_GNUC_UNUSED)
{
  GTask *task = G_TASK (result);
  Job *job = g_task_get_task_data (task);

  job->done (g_task_propagate_pointer (task, NULL), job->data);
}

void
vm_storage_check_async (GPtrArray *disks, gboolean need_space, guint timeout_ms,
                        VmStorageCheckDone done, gpointer data)
{
  Job *job = g_new0 (Job, 1);
  g_autoptr(GTask) task = NULL;

  job->targets = g_ptr_array_new_with_free_func ((GDestroyNotify) target_free);
  for (guint i = 0; i < disks->len; i++)
    {
      const VmDisk *disk = disks->pdata[i];
      guint layers = disk->overlays ? disk->overlays->len : 0;
      Target *t = g_new0 (Target, 1);

      t->name = g_strdup (disk->section.name);
      if (disk->nbd != NULL)
        {
          t->nbd.export = g_strdup (disk->nbd->export);
          t->nbd.socket = g_strdup (disk->nbd->socket);
          t->nbd.host = g_strdup (disk->nbd->host);
          t->nbd.port = g_strdup (disk->nbd->port);
        }
      else  /* the file the guest writes: the top snapshot layer, or the image */
        t->path = g_strdup (layers ? g_ptr_array_index (disk->overlays, layers - 1) : disk->image);
      g_ptr_array_add (job->targets, t);
    }
  job->need_space = need_space;
  job->timeout_ms = timeout_ms;
  job->done = done;
  job->data = data;
  task = g_task_new (NULL, NULL, on_job_done, NULL);
  g_task_set_task_data (task, job, (GDestroyNotify) job_free);
  g_task_run_in_thread (task, run_job);
}
