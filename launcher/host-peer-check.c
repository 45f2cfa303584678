/* host-peer-check.c: `vmherd check` of [peer]'s files: readable, the key matches the
 * certificate, the certificate is signed by the CA, valid now, for both TLS roles, and
 * names this host.  GnuTLS (what glib-networking uses) compares the key with the
 * certificate; GIO does the rest, as the peer link itself will. */
#include "launcher/host-peer.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <dlfcn.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>
#include <unistd.h>

#include "launcher/peer-private.h"

typedef struct
{
  const HostPeerLink *peer;
  ConfigErrors *errors;
  const char *file;
} PeerCheck;

static int
key_line (PeerCheck *pc, const char *key)
{
  return config_section_key_line (&pc->peer->section, key);
}

/* The file's contents, or NULL after reporting it at key's line. */
static GBytes *
read_file (PeerCheck *pc, const char *key, const char *path, const char *hint)
{
  g_autoptr(GError) error = NULL;
  char *data = NULL;
  gsize length = 0;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    {
      int saved_errno = errno;
      config_errors_add (pc->errors, pc->file, key_line (pc, key), "%s: cannot read %s: %s (%s)",
                         key, path, g_strerror (saved_errno), hint);
      return NULL;
    }
  close (fd);
  if (!g_file_get_contents (path, &data, &length, &error))
    {
      config_errors_add (pc->errors, pc->file, key_line (pc, key), "%s: %s (%s)", key,
                         error->message, hint);
      return NULL;
    }
  return g_bytes_new_take (data, length);
}

/* GnuTLS, loaded on first use: linked, it and the ten libraries it pulls in would cost
 * vmherdd 2.4 MB of RSS and every `vmherd` command its exec time (bench/FINDINGS.md),
 * for a check that runs at `check` and daemon start only. */
#define PEER_GNUTLS_SONAME "libgnutls.so.30"

static struct
{
  __typeof__ (gnutls_x509_crt_init) *crt_init;
  __typeof__ (gnutls_x509_crt_deinit) *crt_deinit;
  __typeof__ (gnutls_x509_crt_import) *crt_import;
  __typeof__ (gnutls_x509_crt_get_key_id) *crt_get_key_id;
  __typeof__ (gnutls_x509_crt_get_key_purpose_oid) *crt_get_key_purpose_oid;
  __typeof__ (gnutls_x509_privkey_init) *privkey_init;
  __typeof__ (gnutls_x509_privkey_deinit) *privkey_deinit;
  __typeof__ (gnutls_x509_privkey_import) *privkey_import;
  __typeof__ (gnutls_x509_privkey_get_key_id) *privkey_get_key_id;
} gtls;

static gboolean
gnutls_load (void)
{
  static int loaded = -1;
  void *lib;

  if (loaded >= 0)
    return loaded;
  loaded = FALSE;
  lib = dlopen (PEER_GNUTLS_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (lib == NULL)
    {
      g_message ("peer certificates: cannot load %s (%s): the key and usages are not checked",
                 PEER_GNUTLS_SONAME, dlerror ());
      return FALSE;
    }
#define LOAD(field, symbol) \
  if ((gtls.field = (__typeof__ (gtls.field)) dlsym (lib, #symbol)) == NULL) \
    return FALSE;
  LOAD (crt_init, gnutls_x509_crt_init);
  LOAD (crt_deinit, gnutls_x509_crt_deinit);
  LOAD (crt_import, gnutls_x509_crt_import);
  LOAD (crt_get_key_id, gnutls_x509_crt_get_key_id);
  LOAD (crt_get_key_purpose_oid, gnutls_x509_crt_get_key_purpose_oid);
  LOAD (privkey_init, gnutls_x509_privkey_init);
  LOAD (privkey_deinit, gnutls_x509_privkey_deinit);
  LOAD (privkey_import, gnutls_x509_privkey_import);
  LOAD (privkey_get_key_id, gnutls_x509_privkey_get_key_id);
#undef LOAD
  loaded = TRUE;
  return TRUE;
}

/* What the certificate's extended key usage lacks of serverAuth and clientAuth ("" when
 * it has both or sets no EKU at all, which allows every use). */
static const char *
missing_usage (gnutls_x509_crt_t crt)
{
  gboolean any = FALSE, server = FALSE, client = FALSE;

  for (unsigned i = 0;; i++)
    {
      char oid[128];
      size_t size = sizeof oid;

      if (gtls.crt_get_key_purpose_oid (crt, i, oid, &size, NULL) < 0)
        break;
      any = TRUE;
      server |= strcmp (oid, GNUTLS_KP_TLS_WWW_SERVER) == 0 || strcmp (oid, GNUTLS_KP_ANY) == 0;
      client |= strcmp (oid, GNUTLS_KP_TLS_WWW_CLIENT) == 0 || strcmp (oid, GNUTLS_KP_ANY) == 0;
    }
  if (!any || (server && client))
    return "";
  if (!server && !client)
    return "serverAuth and clientAuth";
  return server ? "clientAuth" : "serverAuth";
}

typedef enum { KEY_MATCH, KEY_DIFFERENT, KEY_BAD_CERT, KEY_BAD_KEY } KeyCheck;

/* GnuTLS: the key's id equals the certificate's public key id.  *out_missing: what the
 * certificate's extended key usage lacks (see missing_usage()). */
static KeyCheck
key_matches (GBytes *cert_pem, GBytes *key_pem, const char **out_missing)
{
  gnutls_x509_crt_t crt = NULL;
  gnutls_x509_privkey_t key = NULL;
  gnutls_datum_t c = { (unsigned char *) g_bytes_get_data (cert_pem, NULL), (unsigned) g_bytes_get_size (cert_pem) };
  gnutls_datum_t k = { (unsigned char *) g_bytes_get_data (key_pem, NULL), (unsigned) g_bytes_get_size (key_pem) };
  unsigned char cert_id[64], key_id[64];
  size_t cert_len = sizeof cert_id, key_len = sizeof key_id;
  KeyCheck result = KEY_DIFFERENT;

  *out_missing = "";
  if (!gnutls_load ())
    return KEY_MATCH;           /* not checked: said once in the log */
  if (gtls.crt_init (&crt) < 0 || gtls.privkey_init (&key) < 0)
    goto out;
  if (gtls.crt_import (crt, &c, GNUTLS_X509_FMT_PEM) < 0)
    result = KEY_BAD_CERT;
  else if (gtls.privkey_import (key, &k, GNUTLS_X509_FMT_PEM) < 0)
    result = KEY_BAD_KEY;
  else if (gtls.crt_get_key_id (crt, GNUTLS_KEYID_USE_SHA256, cert_id, &cert_len) >= 0
           && gtls.privkey_get_key_id (key, GNUTLS_KEYID_USE_SHA256, key_id, &key_len) >= 0
           && cert_len == key_len && memcmp (cert_id, key_id, cert_len) == 0)
    result = KEY_MATCH;
  if (result != KEY_BAD_CERT)
    *out_missing = missing_usage (crt);
out:
  if (crt != NULL)
    gtls.crt_deinit (crt);
  if (key != NULL)
    gtls.privkey_deinit (key);
  return result;
}

static char *
date_text (GTlsCertificate *certificate, const char *property)
{
  g_autoptr(GDateTime) when = NULL;

  g_object_get (certificate, property, &when, NULL);
  return when != NULL ? g_date_time_format (when, "%Y-%m-%d %H:%M UTC") : g_strdup ("?");
}

/* Signed by the CA, valid now, usable as server and as client. */
static void
check_chain (PeerCheck *pc, GTlsCertificate *certificate)
{
  const HostPeerLink *peer = pc->peer;
  g_autoptr(GError) error = NULL;
  g_autoptr(GTlsDatabase) ca = g_tls_file_database_new (peer->ca, &error);
  GTlsCertificateFlags as_server, as_client, both;
  const char *fix = "make a new one with vmherd-pki host DIR NAME";

  if (ca == NULL)
    {
      config_errors_add (pc->errors, pc->file, key_line (pc, "ca"), "ca: %s is not a PEM "
                         "certificate: %s", peer->ca, error->message);
      return;
    }
  as_server = g_tls_database_verify_chain (ca, certificate, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER,
                                           NULL, NULL, G_TLS_DATABASE_VERIFY_NONE, NULL, NULL);
  as_client = g_tls_database_verify_chain (ca, certificate, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_CLIENT,
                                           NULL, NULL, G_TLS_DATABASE_VERIFY_NONE, NULL, NULL);
  both = as_server & as_client;
  if (both & G_TLS_CERTIFICATE_UNKNOWN_CA)
    config_errors_add (pc->errors, pc->file, key_line (pc, "cert"), "cert: %s is not signed by "
                       "the CA %s (%s, with that CA)", peer->cert, peer->ca, fix);
  if (both & G_TLS_CERTIFICATE_EXPIRED)
    {
      g_autofree char *when = date_text (certificate, "not-valid-after");
      config_errors_add (pc->errors, pc->file, key_line (pc, "cert"), "cert: %s expired on %s "
                         "(%s)", peer->cert, when, fix);
    }
  if (both & G_TLS_CERTIFICATE_NOT_ACTIVATED)
    {
      g_autofree char *when = date_text (certificate, "not-valid-before");
      config_errors_add (pc->errors, pc->file, key_line (pc, "cert"), "cert: %s is not valid "
                         "before %s (is the clock right?)", peer->cert, when);
    }
  if (both & (G_TLS_CERTIFICATE_UNKNOWN_CA | G_TLS_CERTIFICATE_EXPIRED | G_TLS_CERTIFICATE_NOT_ACTIVATED))
    return;
  if (as_server != 0 || as_client != 0)
    {
      g_autofree char *what = peer_certificate_flags_describe (as_server | as_client);
      config_errors_add (pc->errors, pc->file, key_line (pc, "cert"), "cert: %s is refused as "
                         "%s: %s (it must allow both TLS server and client use: %s)", peer->cert,
                         as_server != 0 && as_client != 0 ? "server and client"
                           : as_server != 0 ? "server" : "client", what, fix);
    }
}

static void
check_names (PeerCheck *pc, GTlsCertificate *certificate)
{
  g_autoptr(GPtrArray) names = peer_certificate_names (certificate);
  g_autofree char *text = NULL;
  gboolean named = config_section_has_key (&pc->peer->section, "name");

  if (g_ptr_array_find_with_equal_func (names, pc->peer->name, g_str_equal, NULL))
    return;
  text = peer_certificate_names_text (certificate);
  config_errors_add (pc->errors, pc->file, key_line (pc, named ? "name" : "cert"),
                     "%s: the certificate %s names %s, not '%s'%s (set name = one of those, or "
                     "make a certificate for %s: vmherd-pki host DIR %s)", named ? "name" : "cert",
                     pc->peer->cert, text, pc->peer->name, named ? "" : ", this host's short "
                     "hostname", pc->peer->name, pc->peer->name);
}

void
host_peer_link_check_files (const HostPeerLink *peer, const char *file, ConfigErrors *errors)
{
  PeerCheck pc = { peer, errors, file };
  g_autoptr(GBytes) ca = NULL, cert = NULL, key = NULL;
  g_autoptr(GTlsCertificate) certificate = NULL;
  g_autoptr(GError) error = NULL;
  const char *missing = "";

  if (peer == NULL || peer->ca == NULL || peer->cert == NULL || peer->key == NULL)
    return;
  ca = read_file (&pc, "ca", peer->ca, "make the group's CA with vmherd-pki ca DIR, and copy "
                  "ca-cert.pem to every host");
  cert = read_file (&pc, "cert", peer->cert, "make one with vmherd-pki host DIR NAME");
  key = read_file (&pc, "key", peer->key, "it comes with the certificate from vmherd-pki host "
                   "DIR NAME; vmherdd runs as root, run check as root too");
  if (cert == NULL || key == NULL)
    return;
  switch (key_matches (cert, key, &missing))
    {
    case KEY_BAD_CERT:
      config_errors_add (errors, file, key_line (&pc, "cert"), "cert: %s is not a PEM certificate "
                         "(-----BEGIN CERTIFICATE-----)", peer->cert);
      return;
    case KEY_BAD_KEY:
      config_errors_add (errors, file, key_line (&pc, "key"), "key: %s is not a PEM private key "
                         "(-----BEGIN PRIVATE KEY-----)", peer->key);
      return;
    case KEY_DIFFERENT:
      config_errors_add (errors, file, key_line (&pc, "key"), "key: %s does not match the "
                         "certificate %s (use the key made with it)", peer->key, peer->cert);
      return;
    case KEY_MATCH:
      break;
    }
  if (*missing != '\0')
    config_errors_add (errors, file, key_line (&pc, "cert"), "cert: %s lacks the extended key "
                       "usage %s: the peer link uses one certificate as TLS server and client "
                       "(make a new one with vmherd-pki host DIR NAME)", peer->cert, missing);
  certificate = g_tls_certificate_new_from_pem (g_bytes_get_data (cert, NULL), (gssize) g_bytes_get_size (cert), &error);
  if (certificate == NULL)
    {
      config_errors_add (errors, file, key_line (&pc, "cert"), "cert: %s: %s", peer->cert,
                         error->message);
      return;
    }
  check_names (&pc, certificate);
  if (ca != NULL)
    check_chain (&pc, certificate);
}
