/* peer-tls.c: the peer link's certificates: loading them, the names they carry, and
 * what their verification flags mean. */
#define G_LOG_DOMAIN "vmherd-peer"

#include "launcher/peer-private.h"

#include <string.h>

G_DEFINE_QUARK (peer-error-quark, peer_error)

const char *
peer_error_to_string (PeerError code)
{
  static const char *const names[] = {
    [PEER_ERROR_CONFIG] = "config",
    [PEER_ERROR_UNREACHABLE] = "unreachable",
    [PEER_ERROR_TLS] = "tls",
    [PEER_ERROR_REFUSED] = "refused",
    [PEER_ERROR_TIMEOUT] = "timeout",
    [PEER_ERROR_DISCONNECTED] = "disconnected",
    [PEER_ERROR_PROTOCOL] = "protocol",
  };

  if ((guint) code >= G_N_ELEMENTS (names))
    return "unknown";
  return names[code];
}

void
peer_credentials_free (PeerCredentials *credentials)
{
  if (credentials == NULL)
    return;
  g_clear_object (&credentials->certificate);
  g_clear_object (&credentials->ca);
  g_free (credentials);
}

PeerCredentials *
peer_credentials_load (const HostPeerLink *peer, GError **error)
{
  g_autoptr(PeerCredentials) credentials = g_new0 (PeerCredentials, 1);
  g_autoptr(GError) local = NULL;

  if (!g_tls_backend_supports_tls (g_tls_backend_get_default ()))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_CONFIG, "GIO has no TLS support here (install "
                   "glib-networking)");
      return NULL;
    }
  /* GTlsFileDatabase warns (and fails) on a relative path; ours are made absolute. */
  if (!g_file_test (peer->ca, G_FILE_TEST_IS_REGULAR) || !g_path_is_absolute (peer->ca))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_CONFIG, "cannot read the CA certificate %s: "
                   "no such file (ca in [peer]; make one with vmherd-pki ca)", peer->ca);
      return NULL;
    }
  credentials->ca = g_tls_file_database_new (peer->ca, &local);
  if (credentials->ca == NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_CONFIG, "cannot read the CA certificate %s: %s",
                   peer->ca, local->message);
      return NULL;
    }
  credentials->certificate = g_tls_certificate_new_from_files (peer->cert, peer->key, &local);
  if (credentials->certificate == NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_CONFIG, "cannot read the certificate %s with "
                   "the key %s: %s", peer->cert, peer->key, local->message);
      return NULL;
    }
  return g_steal_pointer (&credentials);
}

/* The CN of an RFC 4514 subject ("CN=a,O=x"), or NULL. */
static char *
subject_common_name (const char *subject)
{
  g_auto(GStrv) parts = NULL;

  if (subject == NULL)
    return NULL;
  parts = g_strsplit (subject, ",", -1);
  for (char **p = parts; *p != NULL; p++)
    {
      const char *rdn = *p;
      while (*rdn == ' ')
        rdn++;
      if (g_ascii_strncasecmp (rdn, "CN=", 3) == 0)
        return g_strdup (rdn + 3);
    }
  return NULL;
}

GPtrArray *
peer_certificate_names (GTlsCertificate *certificate)
{
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) dns = NULL;
  g_autofree char *subject = NULL;
  char *cn;

  g_object_get (certificate, "dns-names", &dns, "subject-name", &subject, NULL);
  for (guint i = 0; dns != NULL && i < dns->len; i++)
    {
      gsize size;
      const char *data = g_bytes_get_data (dns->pdata[i], &size);
      g_ptr_array_add (names, g_strndup (data, size));
    }
  cn = subject_common_name (subject);
  if (cn != NULL && !g_ptr_array_find_with_equal_func (names, cn, g_str_equal, NULL))
    g_ptr_array_add (names, cn);
  else
    g_free (cn);
  return names;
}

char *
peer_certificate_names_text (GTlsCertificate *certificate)
{
  g_autoptr(GPtrArray) names = peer_certificate_names (certificate);

  if (names->len == 0)
    return g_strdup ("no name");
  g_ptr_array_add (names, NULL);
  return g_strjoinv (", ", (char **) names->pdata);
}

char *
peer_certificate_flags_describe (GTlsCertificateFlags flags)
{
  static const struct
  {
    GTlsCertificateFlags flag;
    const char *text;
  } table[] = {
    { G_TLS_CERTIFICATE_UNKNOWN_CA, "not signed by the group's CA" },
    { G_TLS_CERTIFICATE_BAD_IDENTITY, "does not name the host" },
    { G_TLS_CERTIFICATE_NOT_ACTIVATED, "not valid yet" },
    { G_TLS_CERTIFICATE_EXPIRED, "expired" },
    { G_TLS_CERTIFICATE_REVOKED, "revoked" },
    { G_TLS_CERTIFICATE_INSECURE, "uses an insecure algorithm" },
    { G_TLS_CERTIFICATE_GENERIC_ERROR, "invalid" },
  };
  GString *s = g_string_new (NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (table); i++)
    if (flags & table[i].flag)
      g_string_append_printf (s, "%s%s", s->len ? ", " : "", table[i].text);
  if (s->len == 0)
    g_string_append (s, "rejected");
  return g_string_free (s, FALSE);
}
