/* test-cli-front.c: the lean `vmherd` front (launcher/front-main.c) against the full tool.
 * Its JSON reader; that start never loads json-glib or GIO; that every other command
 * reaches vmherd-full with its arguments intact; and, against a scripted fake vmherdd,
 * that both programs send the same request and print the same output, messages and exit
 * codes for every kind of answer. */
#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "launcher/json-scan.h"
#include "tests/test-util.h"

/* ---- the JSON reader ---- */

/* {"a": [[...leaf...]]} with arrays brackets around leaf. */
static char *
nested (int arrays, const char *leaf)
{
  GString *s = g_string_new ("{\"a\":");

  for (int i = 0; i < arrays; i++)
    g_string_append_c (s, '[');
  g_string_append (s, leaf);
  for (int i = 0; i < arrays; i++)
    g_string_append_c (s, ']');
  g_string_append_c (s, '}');
  return g_string_free (s, FALSE);
}

static void
test_json_scan (void)
{
  static const char *const good[] = {
    "{}", " {\"a\":1} ", "{\"a\":[1,-2.5e+3,true,false,null,{\"b\":\"\"}]}",
    "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}", "{\"\xc3\xa9\":0}",
    "{\"nul\":\"a\\u0000b\"}",
  };
  static const char *const bad[] = {
    "", "[]", "\"a\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":01}", "{\"a\":1.}",
    "{\"a\":-}", "{\"a\":tru}", "{a:1}", "{\"a\":1} x", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud83d\"}",
    "{\"a\":\"\\ude00\"}", "{\"a\":\"\\u00\"}", "{\"a\":\"\xc3\"}",
    "{\"a\":\"tab\there\"}", "{\"a\":[1 2]}", "{\"a\":1}{}",
  };
  const char *obj = "{\"id\":12,\"x\":{\"id\":1},\"s\":\"caf\\u00e9 \\ud83d\\ude00\",\"n\":null,\"id\":3}";
  const char *end = obj + strlen (obj);
  g_autofree char *s = NULL;
  g_autoptr(GString) out = g_string_new (NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    g_assert_true (json_scan_is_object (good[i], strlen (good[i])));
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      if (json_scan_is_object (bad[i], strlen (bad[i])))
        g_error ("accepted as one object: %s", bad[i]);
    }
  /* At most 64 objects and arrays open at once, whatever the innermost value. */
  {
    g_autofree char *n64 = nested (63, "1"), *n65 = nested (64, "1");
    g_autofree char *e64 = nested (62, "[]"), *e65 = nested (63, "[]");

    g_assert_true (json_scan_is_object (n64, strlen (n64)));
    g_assert_false (json_scan_is_object (n65, strlen (n65)));
    g_assert_true (json_scan_is_object (e64, strlen (e64)));
    g_assert_false (json_scan_is_object (e65, strlen (e65)));
  }
  /* A NUL is valid JSON, but no C string: not decoded. */
  g_assert_null (json_scan_string (json_scan_member (good[5], good[5] + strlen (good[5]), "nul"),
                                   good[5] + strlen (good[5])));

  g_assert_true (json_scan_is_object (obj, strlen (obj)));
  g_assert_true (json_scan_int_equals (json_scan_member (obj, end, "id"), end, 3)); /* the last */
  g_assert_false (json_scan_int_equals (json_scan_member (obj, end, "id"), end, 12));
  g_assert_true (json_scan_int_equals (json_scan_member (json_scan_member (obj, end, "x"), end, "id"), end, 1));
  g_assert_null (json_scan_member (obj, end, "missing"));
  g_assert_null (json_scan_string (json_scan_member (obj, end, "n"), end));
  g_assert_null (json_scan_string (json_scan_member (obj, end, "id"), end));
  s = json_scan_string (json_scan_member (obj, end, "s"), end);
  g_assert_cmpstr (s, ==, "caf\xc3\xa9 \xf0\x9f\x98\x80");
  g_assert_false (json_scan_int_equals (json_scan_member (obj, end, "s"), end, 0));

  /* What the front writes, json-glib reads back as the same string. */
  json_scan_append_string (out, "a\"b\\c\n\x01\xc3\xa9");
  {
    g_autoptr(JsonNode) node = json_from_string (out->str, NULL);
    g_assert_nonnull (node);
    g_assert_cmpstr (json_node_get_string (node), ==, "a\"b\\c\n\x01\xc3\xa9");
  }
}

/* ---- a scripted vmherdd ---- */

typedef struct
{
  const char *name;
  const char *answer;           /* bytes sent after the request line */
  gboolean close_at_once;       /* close right after answer (else wait for the client) */
  gboolean answer_first;        /* answer and close before reading the request, so that
                                 * the client's send may fail (EPIPE) or not */
} Script;

typedef struct
{
  int listen_fd;
  const Script *script;
  char *request;                /* the line received, without "\n" */
} FakeDaemon;

static gpointer
fake_daemon_serve (gpointer data)
{
  FakeDaemon *fake = data;
  g_autoptr(GString) line = g_string_new (NULL);
  int fd = accept (fake->listen_fd, NULL, NULL);
  char c;

  g_assert_cmpint (fd, >=, 0);
  while (!fake->script->answer_first && read (fd, &c, 1) == 1 && c != '\n')
    g_string_append_c (line, c);
  fake->request = g_strdup (line->str);
  if (*fake->script->answer != '\0')
    g_assert_cmpint (write (fd, fake->script->answer, strlen (fake->script->answer)), ==,
                     (gssize) strlen (fake->script->answer));
  if (!fake->script->close_at_once)
    while (read (fd, &c, 1) > 0)
      ;
  close (fd);
  return NULL;
}

/* The request as canonical JSON (members in json-glib's order), to compare two clients. */
static char *
canonical (const char *request)
{
  g_autoptr(JsonNode) node = json_from_string (request, NULL);

  g_assert_nonnull (node);
  return json_to_string (node, FALSE);
}

/* A listening unix socket at path (replacing any file there). */
static int
listen_at (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_unlink (path);
  g_strlcpy (addr.sun_path, path, sizeof addr.sun_path);
  g_assert_cmpint (bind (fd, (struct sockaddr *) &addr, sizeof addr), ==, 0);
  g_assert_cmpint (listen (fd, 1), ==, 0);
  return fd;
}

typedef struct
{
  TestRun run;
  char *request;
} Outcome;

static Outcome
run_against (const char *program, const char *dir, const Script *script, const char *const *args)
{
  g_autofree char *bin = test_build_path (program);
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *path = g_build_filename (dir, "control", NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  FakeDaemon fake = { .script = script };
  GThread *thread;
  Outcome outcome;

  fake.listen_fd = listen_at (path);
  thread = g_thread_new ("fake-vmherdd", fake_daemon_serve, &fake);

  g_ptr_array_add (argv, bin);
  g_ptr_array_add (argv, "--config");
  g_ptr_array_add (argv, conf);
  for (; *args != NULL; args++)
    g_ptr_array_add (argv, (char *) *args);
  g_ptr_array_add (argv, NULL);
  outcome.run = test_run ((const char *const *) argv->pdata, NULL);
  g_thread_join (thread);
  close (fake.listen_fd);
  outcome.request = fake.request;
  return outcome;
}

static void
test_same_as_full_tool (void)
{
  static const Script scripts[] = {
    { "running", "{\"return\":{\"name\":\"ioc1\",\"state\":\"running\"},\"id\":1}\n", FALSE, FALSE },
    { "events-first", "{\"event\":\"STATE\",\"data\":{\"vm\":\"ioc1\"}}\n"
                      "{\"progress\":{\"step\":\"x\"},\"id\":1}\n"
                      "{\"return\":{},\"id\":7}\n"
                      "{\"return\":{\"state\":\"stopped\"},\"id\":1}\n", FALSE, FALSE },
    { "no-state", "{\"return\":{},\"id\":1}\n", FALSE, FALSE },
    { "crlf-and-empty-lines", "\r\n\n{\"event\":\"X\"}\r\n{\"return\":{\"state\":\"paused\"},\"id\":1}\r\n", FALSE, FALSE },
    { "state-not-a-string", "{\"return\":{\"state\":5},\"id\":1}\n", FALSE, FALSE },
    { "refused-before-reading", "{\"error\":{\"class\":\"PermissionDenied\",\"desc\":\"not in group vmherd\"}}\n",
      TRUE, TRUE },
    { "refused", "{\"error\":{\"class\":\"GenericError\",\"desc\":\"vm 'ioc1' is \\u00e9\\ud83d\\ude00 busy\"},\"id\":1}\n", FALSE, FALSE },
    { "refused-without-id", "{\"error\":{\"class\":\"PermissionDenied\",\"desc\":\"not in group vmherd\"}}\n", TRUE, FALSE },
    { "error-without-desc", "{\"error\":{\"class\":\"GenericError\"},\"id\":1}\n", FALSE, FALSE },
    { "closed", "", TRUE, FALSE },
    { "closed-mid-line", "{\"return\":{\"sta", TRUE, FALSE },
    { "bad-line", "this is not json\n", FALSE, FALSE },
  };
  static const char *const lines[][6] = {
    { "start", "ioc1", NULL },
    { "stop", "--force", "--timeout", "5", "ioc1", NULL },
    { "restart", "ioc1", NULL },
    { "resume", "ioc1", NULL },
  };
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *control = g_build_filename (dir, "control", NULL);

  test_write_file (conf, "[daemon]\nvm-dir = vms.d\nrun-dir = run\ncontrol-socket = control\n");
  for (gsize s = 0; s < G_N_ELEMENTS (scripts); s++)
    for (gsize l = 0; l < G_N_ELEMENTS (lines); l++)
      {
        Outcome front = run_against ("vmherd", dir, &scripts[s], lines[l]);
        Outcome full = run_against ("vmherd-full", dir, &scripts[s], lines[l]);
        g_autofree char *front_request = scripts[s].answer_first ? NULL : canonical (front.request);
        g_autofree char *full_request = scripts[s].answer_first ? NULL : canonical (full.request);

        if (g_test_verbose ())
          g_printerr ("%s, %s: exit %d, out '%s', err '%s'\n", scripts[s].name, lines[l][0],
                      front.run.status, front.run.out, front.run.err);
        g_assert_cmpstr (front_request, ==, full_request);
        g_assert_cmpstr (front.run.out, ==, full.run.out);
        g_assert_cmpint (front.run.status, ==, full.run.status);
        if (strcmp (scripts[s].name, "bad-line") == 0)
          {
            /* json-glib's parse error differs from the front's; the rest is the same. */
            g_autofree char *prefix = g_strdup_printf ("vmherdd at %s sent a bad line: ", control);
            g_assert_true (g_str_has_prefix (front.run.err, prefix));
            g_assert_true (g_str_has_prefix (full.run.err, prefix));
          }
        else
          g_assert_cmpstr (front.run.err, ==, full.run.err);
        test_run_clear (&front.run);
        test_run_clear (&full.run);
        g_free (front.request);
        g_free (full.request);
      }
}

/* The expected results of a few of the cases above, spelled out. */
static void
test_answers (void)
{
  static const Script running = { "running", "{\"return\":{\"state\":\"running\"},\"id\":1}\n", FALSE, FALSE };
  static const Script closed = { "closed", "", TRUE, FALSE };
  static const char *const start[] = { "start", "ioc1", NULL };
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *expected = NULL;
  Outcome o;

  test_write_file (conf, "[daemon]\ncontrol-socket = control\n");
  o = run_against ("vmherd", dir, &running, start);
  g_assert_cmpstr (o.request, ==, "{\"execute\":\"start\",\"arguments\":{\"vm\":\"ioc1\"},\"id\":1}");
  g_assert_cmpstr (o.run.out, ==, "vm 'ioc1': running\n");
  g_assert_cmpstr (o.run.err, ==, "");
  g_assert_cmpint (o.run.status, ==, 0);
  test_run_clear (&o.run);
  g_free (o.request);

  o = run_against ("vmherd", dir, &closed, start);
  expected = g_strdup_printf ("vmherdd at %s/control closed the connection\n", dir);
  g_assert_cmpstr (o.run.err, ==, expected);
  g_assert_cmpint (o.run.status, ==, 3);
  test_run_clear (&o.run);
  g_free (o.request);
}

/* While `vmherd start` waits for its answer, it has mapped neither json-glib nor GIO. */
static void
test_start_loads_no_json_glib (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *conf = g_build_filename (dir, "vmherd.conf", NULL);
  g_autofree char *path = g_build_filename (dir, "control", NULL);
  g_autofree char *bin = test_build_path ("vmherd");
  const char *argv[] = { bin, "--config", conf, "start", "ioc1", NULL };
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *maps_path = NULL, *maps = NULL;
  int listen_fd, fd;
  char c;

  test_write_file (conf, "[daemon]\ncontrol-socket = control\n");
  listen_fd = listen_at (path);
  proc = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                            &error);
  g_assert_no_error (error);
  /* Its request has arrived: it is past every library it loads, waiting for us. */
  fd = accept (listen_fd, NULL, NULL);
  g_assert_cmpint (fd, >=, 0);
  while (read (fd, &c, 1) == 1 && c != '\n')
    ;
  maps_path = g_strdup_printf ("/proc/%s/maps", g_subprocess_get_identifier (proc));
  maps = test_read_file (maps_path);
  g_assert_nonnull (strstr (maps, "libglib-2.0"));
  g_assert_null (strstr (maps, "libjson-glib"));
  g_assert_null (strstr (maps, "libgio-2.0"));
  g_assert_null (strstr (maps, "libgobject-2.0"));
  close (fd);
  close (listen_fd);
  g_subprocess_wait (proc, NULL, &error);
  g_assert_no_error (error);
}

/* Every other command goes to vmherd-full beside the front, its arguments unchanged. */
static void
test_hands_over (void)
{
  g_autofree char *dir = test_tmpdir ();
  g_autofree char *front = g_build_filename (dir, "vmherd", NULL);
  g_autofree char *full = g_build_filename (dir, "vmherd-full", NULL);
  g_autofree char *built = test_build_path ("vmherd");
  g_autofree char *contents = NULL;
  gsize length = 0;
  static const char *const cases[][7] = {
    { "--config", "/x.conf", "list", "--json", NULL },
    { "status", "ioc1", NULL },
    { "start", NULL },                                /* no NAME: the full tool's usage */
    { "start", "ioc1", "--json", NULL },              /* an option the front does not know */
    { "stop", "ioc1", "--timeout", "forever", NULL },
    { "--config=/x.conf", "qmp", "ioc1", "query-status", NULL },
    { "--help", NULL },
    { "start", "a", "b", NULL },                      /* two names */
    { "start", "-f", "a", NULL },
    { "version", "x", NULL },
  };

  g_assert_true (g_file_get_contents (built, &contents, &length, NULL));
  g_assert_true (g_file_set_contents (front, contents, (gssize) length, NULL));
  g_assert_cmpint (g_chmod (front, 0755), ==, 0);
  test_write_file (full, "#!/bin/sh\nprintf '%s|' \"$0\" \"$@\"\n");
  g_assert_cmpint (g_chmod (full, 0755), ==, 0);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GPtrArray) argv = g_ptr_array_new ();
      g_autoptr(GString) expected = g_string_new (NULL);
      TestRun r;

      /* The script's $0 is its own path; then every argument, in order. */
      g_ptr_array_add (argv, front);
      g_string_append_printf (expected, "%s|", full);
      for (const char *const *a = cases[i]; *a != NULL; a++)
        {
          g_ptr_array_add (argv, (char *) *a);
          g_string_append_printf (expected, "%s|", *a);
        }
      g_ptr_array_add (argv, NULL);
      r = test_run ((const char *const *) argv->pdata, NULL);
      g_assert_cmpstr (r.out, ==, expected->str);
      g_assert_cmpint (r.status, ==, 0);
      test_run_clear (&r);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli-front/json-scan", test_json_scan);
  g_test_add_func ("/cli-front/answers", test_answers);
  g_test_add_func ("/cli-front/same-as-full-tool", test_same_as_full_tool);
  g_test_add_func ("/cli-front/start-loads-no-json-glib", test_start_loads_no_json_glib);
  g_test_add_func ("/cli-front/hands-over", test_hands_over);
  return g_test_run ();
}
