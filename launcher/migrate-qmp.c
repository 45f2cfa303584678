/* migrate-qmp.c: QMP sequences and TLS material for migrations. */
#include "launcher/migrate-qmp.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launcher/qemu-spawn.h"

typedef struct
{
  char *command;
  JsonObject *arguments;
  gboolean may_fail;
} SeqStep;

struct _MigrateQmpSeq
{
  GPtrArray *steps;
  guint next;
  QmpClient *qmp;
  GCancellable *cancellable;
  MigrateQmpDone done;
  gpointer user_data;
};

static void
seq_step_free (SeqStep *step)
{
  g_free (step->command);
  if (step->arguments != NULL)
    json_object_unref (step->arguments);
  g_free (step);
}

static void
seq_free (MigrateQmpSeq *seq)
{
  g_ptr_array_unref (seq->steps);
  g_clear_object (&seq->cancellable);
  g_free (seq);
}

void
migrate_qmp_seq_free (MigrateQmpSeq *seq)
{
  seq_free (seq);
}

MigrateQmpSeq *
migrate_qmp_seq_new (void)
{
  MigrateQmpSeq *seq = g_new0 (MigrateQmpSeq, 1);

  seq->steps = g_ptr_array_new_with_free_func ((GDestroyNotify) seq_step_free);
  return seq;
}

void
migrate_qmp_seq_add (MigrateQmpSeq *seq, const char *command, JsonObject *arguments,
                     gboolean may_fail)
{
  SeqStep *step = g_new0 (SeqStep, 1);

  step->command = g_strdup (command);
  step->arguments = arguments;
  step->may_fail = may_fail;
  g_ptr_array_add (seq->steps, step);
}

static void seq_next (MigrateQmpSeq *seq);

static void
on_step_reply (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data)
{
  MigrateQmpSeq *seq = data;
  SeqStep *step = seq->steps->pdata[seq->next];
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);

  if (g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    return seq_free (seq);
  if (reply == NULL && !step->may_fail)
    {
      seq->done (NULL, step->command, error, seq->user_data);
      return seq_free (seq);
    }
  if (reply == NULL)
    g_debug ("QMP %s failed (allowed): %s", step->command, error->message);
  seq->next++;
  if (seq->next == seq->steps->len)
    {
      seq->done (reply, NULL, NULL, seq->user_data);
      return seq_free (seq);
    }
  seq_next (seq);
}

static void
seq_next (MigrateQmpSeq *seq)
{
  SeqStep *step = seq->steps->pdata[seq->next];

  qmp_client_execute_async (seq->qmp, step->command, step->arguments, NULL, 0,
                            MIGRATE_QMP_TIMEOUT_MS, seq->cancellable, on_step_reply, seq);
}

void
migrate_qmp_seq_run (MigrateQmpSeq *seq, QmpClient *qmp, GCancellable *cancellable,
                     MigrateQmpDone done, gpointer user_data)
{
  seq->qmp = qmp;
  seq->cancellable = cancellable ? g_object_ref (cancellable) : NULL;
  seq->done = done;
  seq->user_data = user_data;
  g_return_if_fail (seq->steps->len > 0);
  seq_next (seq);
}

JsonObject *
migrate_qmp_capabilities (const char *const *names)
{
  JsonObject *args = json_object_new ();
  JsonArray *caps = json_array_new ();

  for (guint i = 0; names[i] != NULL; i++)
    {
      JsonObject *cap = json_object_new ();
      json_object_set_string_member (cap, "capability", names[i]);
      json_object_set_boolean_member (cap, "state", TRUE);
      json_array_add_object_element (caps, cap);
    }
  json_object_set_array_member (args, "capabilities", caps);
  return args;
}

/* The Diffie-Hellman group of a TLS server: ffdhe2048 of RFC 7919 (public, fixed, what TLS
 * 1.3 itself uses).  Without dh-params.pem in its folder, QEMU's tls-creds-x509 server
 * generates a fresh 2048-bit group on every object-add: 0.1 to 2+ s of CPU, at random, in the
 * destination's prepare step (bench/FINDINGS.md). */
static const char dh_params_pem[] =
  "-----BEGIN DH PARAMETERS-----\n"
  "MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz\n"
  "+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a\n"
  "87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7\n"
  "YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi\n"
  "7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD\n"
  "ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==\n"
  "-----END DH PARAMETERS-----\n";

static gboolean
write_private (const char *to, const char *contents, gsize len, uid_t uid, gid_t gid, GError **error)
{
  g_unlink (to);
  if (!g_file_set_contents_full (to, contents, (gssize) len, G_FILE_SET_CONTENTS_NONE, 0600, error))
    return FALSE;
  if (uid != (uid_t) -1 && chown (to, uid, gid) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "cannot chown %s: %s", to,
                   g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

static gboolean
copy_private (const char *from, const char *to, uid_t uid, gid_t gid, GError **error)
{
  g_autofree char *contents = NULL;
  gsize len;

  if (!g_file_get_contents (from, &contents, &len, error))
    return FALSE;
  return write_private (to, contents, len, uid, gid, error);
}

char *
migrate_tls_dir_create (const HostConfig *host, const char *vm_name, gboolean server,
                        GError **error)
{
  /* Not under run-dir/vm (0700: QEMU never needs to look there); this folder only lets
   * QEMU through to its own subfolder. */
  g_autofree char *top = g_build_filename (host->run_dir, "migrate-tls", NULL);
  g_autofree char *dir = g_build_filename (top, vm_name, NULL);
  const char *role = server ? "server" : "client";
  g_autofree char *cert_name = g_strdup_printf ("%s-cert.pem", role);
  g_autofree char *key_name = g_strdup_printf ("%s-key.pem", role);
  const char *const from[] = { host->peer ? host->peer->ca : NULL, host->peer ? host->peer->cert : NULL,
                               host->peer ? host->peer->key : NULL };
  const char *const to[] = { "ca-cert.pem", cert_name, key_name };
  uid_t uid;
  gid_t gid;

  if (!qemu_spawn_owner (host, &uid, &gid, error))
    return NULL;
  if (g_mkdir_with_parents (top, 0711) < 0 || chmod (top, 0711) < 0 || g_mkdir_with_parents (dir, 0700) < 0
      || (uid != (uid_t) -1 && chown (dir, uid, gid) < 0))
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "cannot prepare %s: %s", dir,
                   g_strerror (errno));
      return NULL;
    }
  for (guint i = 0; i < G_N_ELEMENTS (to); i++)
    {
      g_autofree char *path = g_build_filename (dir, to[i], NULL);
      if (from[i] == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                       "no [peer] ca, cert and key in the host file: the migration stream needs them");
          return NULL;
        }
      if (!copy_private (from[i], path, uid, gid, error))
        return NULL;
    }
  if (server)
    {
      g_autofree char *path = g_build_filename (dir, "dh-params.pem", NULL);
      if (!write_private (path, dh_params_pem, sizeof dh_params_pem - 1, uid, gid, error))
        return NULL;
    }
  return g_steal_pointer (&dir);
}

void
migrate_tls_dir_remove (const char *dir)
{
  g_autoptr(GDir) d = dir ? g_dir_open (dir, 0, NULL) : NULL;
  const char *name;

  if (d == NULL)
    return;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_unlink (path);
    }
  g_rmdir (dir);
}

JsonObject *
migrate_tls_object (const char *dir, gboolean server)
{
  JsonObject *args = json_object_new ();

  json_object_set_string_member (args, "qom-type", "tls-creds-x509");
  json_object_set_string_member (args, "id", MIGRATE_TLS_OBJECT);
  json_object_set_string_member (args, "dir", dir);
  json_object_set_string_member (args, "endpoint", server ? "server" : "client");
  json_object_set_boolean_member (args, "verify-peer", TRUE);
  return args;
}

gint64
migrate_mem_available (void)
{
  g_autofree char *text = NULL;
  const char *line;
  gint64 kib;

  if (!g_file_get_contents ("/proc/meminfo", &text, NULL, NULL)
      || (line = strstr (text, "MemAvailable:")) == NULL
      || sscanf (line, "MemAvailable: %" G_GINT64_FORMAT " kB", &kib) != 1)
    return -1;
  return kib * 1024;
}

char *
migrate_listen_host (const HostConfig *host)
{
  g_autofree char *address = NULL;
  guint16 port;

  if (host->migrate_address != NULL)
    return g_strdup (host->migrate_address);
  if (host_config_peer_listen (host) == NULL || !host_listen_parse (host_config_peer_listen (host), &address, &port))
    return g_strdup ("0.0.0.0");
  return g_steal_pointer (&address);
}

char *
migrate_listen_address (const HostConfig *host)
{
  g_autofree char *address = migrate_listen_host (host);

  /* Port 0: QEMU picks a free one and query-migrate tells it (one port per migration). */
  return strchr (address, ':') ? g_strdup_printf ("tcp:[%s]:0", address)
                               : g_strdup_printf ("tcp:%s:0", address);
}

gint64
migrate_free_port (const char *address, GError **error)
{
  g_autoptr(GSocket) sock = NULL;
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (address);
  g_autoptr(GSocketAddress) any = NULL;
  g_autoptr(GSocketAddress) bound = NULL;

  if (inet == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "'%s' is not an IP address", address);
      return -1;
    }
  sock = g_socket_new (g_inet_address_get_family (inet), G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (sock == NULL)
    return -1;
  any = g_inet_socket_address_new (inet, 0);
  if (!g_socket_bind (sock, any, FALSE, error) || (bound = g_socket_get_local_address (sock, error)) == NULL)
    return -1;
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}
