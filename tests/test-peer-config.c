/* test-peer-config.c: [peer] in vmherd.conf: parsing and `vmherd check`'s certificate
 * checks, as golden files (tests/data/peer/CASE.conf -> CASE.err, with the temporary
 * folder written TMP), against certificates made here by tools/vmherd-pki and openssl. */
#include <glib/gstdio.h>
#include <string.h>

#include "launcher/host-config.h"
#include "tests/test-util.h"

static char *root;              /* TMP: pki/ (the group), other/ (another CA) */

static void
run_ok (const char *const *argv)
{
  TestRun r = test_run (argv, NULL);

  if (r.status != 0)
    g_error ("%s failed: %s", argv[0], r.err);
  test_run_clear (&r);
}

static void
pki (const char *dir, const char *what, const char *name)
{
  g_autofree char *script = test_src_path ("tools/vmherd-pki");
  g_autofree char *path = g_build_filename (root, dir, NULL);
  const char *argv[] = { script, "--days", "2", what, path, name, NULL };

  run_ok (argv);
}

/* pki/NAME-cert.pem signed by pki's CA with openssl directly: days may be negative
 * (expired), eku what the certificate allows. */
static void
openssl_host (const char *name, const char *days, const char *eku)
{
  g_autofree char *dir = g_build_filename (root, "pki", NULL);
  g_autofree char *key = g_strdup_printf ("%s/%s-key.pem", dir, name);
  g_autofree char *cert = g_strdup_printf ("%s/%s-cert.pem", dir, name);
  g_autofree char *csr = g_strdup_printf ("%s/%s.csr", dir, name);
  g_autofree char *ext = g_strdup_printf ("%s/%s.ext", dir, name);
  g_autofree char *ca = g_strdup_printf ("%s/ca-cert.pem", dir);
  g_autofree char *ca_key = g_strdup_printf ("%s/ca-key.pem", dir);
  g_autofree char *serial = g_strdup_printf ("%s/serial", dir);
  g_autofree char *subject = g_strdup_printf ("/CN=%s", name);
  g_autofree char *ext_text = g_strdup_printf ("subjectAltName=DNS:%s\nextendedKeyUsage=%s\n", name, eku);
  const char *req[] = { "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
                        csr, "-subj", subject, NULL };
  const char *sign[] = { "openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                         "-CAcreateserial", "-CAserial", serial, "-out", cert, "-days", days,
                         "-extfile", ext, NULL };

  test_write_file (ext, ext_text);
  run_ok (req);
  run_ok (sign);
}

static char *
errors_text (ConfigErrors *errors)
{
  GString *s = g_string_new (NULL);
  g_auto(GStrv) parts = NULL;
  g_autofree char *text = NULL;

  for (guint i = 0; i < errors->len; i++)
    {
      const ConfigError *e = errors->pdata[i];
      g_string_append_printf (s, "%d: %s\n", e->line, e->message);
    }
  g_autoptr(GRegex) date = g_regex_new ("[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} UTC", 0, 0, NULL);
  g_autofree char *joined = NULL;

  text = g_string_free (s, FALSE);
  parts = g_strsplit (text, root, -1);
  joined = g_strjoinv ("TMP", parts);
  /* Certificates made now expire at a time that changes with each run. */
  return g_regex_replace_literal (date, joined, -1, 0, "DATE", 0, NULL);
}

/* Load as `vmherd check` does: the file's syntax, then its certificate files. */
static void
test_golden (gconstpointer data)
{
  const char *conf = data;
  g_autofree char *base = g_path_get_basename (conf);
  g_autofree char *copy = g_build_filename (root, base, NULL);
  g_autofree char *text = test_read_file (conf);
  g_autofree char *stem = g_strndup (conf, strlen (conf) - strlen (".conf"));
  g_autofree char *golden = g_strconcat (stem, ".err", NULL);
  g_autofree char *got = NULL;
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = NULL;

  test_write_file (copy, text);
  host = host_config_load (copy, errors);
  if (host != NULL)
    host_peer_link_check_files (host->peer, host->path, errors);
  got = errors_text (errors);
  test_assert_golden (golden, got);
}

static HostConfig *
load_text (const char *text)
{
  g_autofree char *path = g_build_filename (root, "case.conf", NULL);
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  HostConfig *host;

  test_write_file (path, text);
  host = host_config_load (path, errors);
  if (errors->len > 0)
    config_errors_print (errors, stderr);
  g_assert_cmpuint (errors->len, ==, 0);
  return host;
}

static void
test_accessors (void)
{
  g_autoptr(HostConfig) host = load_text ("[peer]\nname = a\nlisten = 127.0.0.1:7480\n"
                                          "ca = pki/ca-cert.pem\ncert = pki/a-cert.pem\n"
                                          "key = /etc/k.pem\nhost = b 10.0.0.2:7480\n"
                                          "host = c [fd00::3]:7481\n");
  g_autoptr(HostConfig) none = load_text ("[daemon]\n");
  g_autofree char *ca = g_build_filename (root, "pki", "ca-cert.pem", NULL);

  g_assert_cmpstr (host_config_peer_name (host), ==, "a");
  g_assert_cmpstr (host_config_peer_listen (host), ==, "127.0.0.1:7480");
  g_assert_cmpstr (host_config_peer_address (host, "b"), ==, "10.0.0.2:7480");
  g_assert_cmpstr (host_config_peer_address (host, "c"), ==, "[fd00::3]:7481");
  g_assert_null (host_config_peer_address (host, "a"));
  g_assert_null (host_config_peer_address (host, "x"));
  g_assert_cmpstr (host->peer->ca, ==, ca);
  g_assert_cmpstr (host->peer->key, ==, "/etc/k.pem");
  g_assert_cmpuint (host->peer->hosts->len, ==, 2);
  g_assert_cmpint (((HostPeer *) host->peer->hosts->pdata[1])->line, ==, 8);

  g_assert_null (none->peer);
  g_assert_null (host_config_peer_name (none));
  g_assert_null (host_config_peer_listen (none));
  g_assert_null (host_config_peer_address (none, "b"));
}

/* Without name = the short hostname is this host's name. */
static void
test_default_name (void)
{
  g_autoptr(HostConfig) host = load_text ("[peer]\nlisten = 127.0.0.1:7480\nca = /c\ncert = /d\n"
                                          "key = /e\n");
  g_autofree char *expected = g_strndup (g_get_host_name (), strcspn (g_get_host_name (), "."));

  g_assert_cmpstr (host->peer->name, ==, expected);
  g_assert_cmpuint (host->peer->hosts->len, ==, 0);
}

/* `vmherd check` reports the certificate problems as FILE:LINE and exits 1. */
static void
test_check_cli (void)
{
  g_autofree char *path = g_build_filename (root, "cli.conf", NULL);
  g_autofree char *vms = g_build_filename (root, "vms.d", NULL);
  g_autofree char *expected = g_strdup_printf ("%s:7: key: %s/pki/b-key.pem does not match the "
                                               "certificate %s/pki/a-cert.pem (use the key made "
                                               "with it)\n", path, root, root);
  TestRun r;

  g_mkdir (vms, 0755);
  test_write_file (path, "[daemon]\nvm-dir = vms.d\n[peer]\nname = a\nlisten = 127.0.0.1:7480\n"
                   "cert = pki/a-cert.pem\nkey = pki/b-key.pem\nca = pki/ca-cert.pem\n");
  r = test_run_vmherd (path, NULL, "check", "-q", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_true (g_str_has_suffix (r.err, expected));
  test_run_clear (&r);
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = NULL;
  g_autoptr(GDir) dir = NULL;
  g_autoptr(GPtrArray) cases = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  int status;

  g_test_init (&argc, &argv, NULL);
  root = g_dir_make_tmp ("vmherd-peer-config-XXXXXX", &error);
  g_assert_no_error (error);
  pki ("pki", "ca", NULL);
  pki ("pki", "host", "a");
  pki ("pki", "host", "b");
  pki ("other", "ca", NULL);
  pki ("other", "host", "a");
  openssl_host ("expired", "-1", "serverAuth,clientAuth");
  openssl_host ("server-only", "2", "serverAuth");

  data = test_src_path ("tests/data/peer");
  dir = g_dir_open (data, 0, &error);
  g_assert_no_error (error);
  while ((name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (name, ".conf"))
      g_ptr_array_add (cases, g_strdup (name));
  g_ptr_array_sort (cases, (GCompareFunc) g_strcmp0);
  for (guint i = 0; i < cases->len; i++)
    {
      const char *c = *(const char **) &cases->pdata[i];
      g_autofree char *path_name = g_strdup_printf ("/peer-config/golden/%s", c);
      g_test_add_data_func_full (path_name, g_build_filename (data, c, NULL), test_golden, g_free);
    }
  g_test_add_func ("/peer-config/accessors", test_accessors);
  g_test_add_func ("/peer-config/default-name", test_default_name);
  g_test_add_func ("/peer-config/check-cli", test_check_cli);
  status = g_test_run ();
  test_rm_rf (root);
  g_free (root);
  return status;
}
