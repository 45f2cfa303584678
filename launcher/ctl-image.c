/* ctl-image.c: `vmherd image info|create|clone|flatten`: disk images with qemu-img, no
 * daemon needed.  info works on the images of a running guest (qemu-img -U); flatten is
 * refused while a QEMU writes the image (its lock). */
#include "launcher/ctl.h"

#include <grp.h>
#include <json-glib/json-glib.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "images/image-create.h"
#include "images/image-info.h"

#define INFO_TIMEOUT_MS 60000   /* metadata only; longer means the storage hangs */

static int
usage (CtlContext *ctx)
{
  fprintf (stderr,
           "usage: %1$s image info NAME [--json]\n"
           "       %1$s image create PATH --size SIZE [--format qcow2|raw] [--preallocate]\n"
           "       %1$s image clone BASE PATH [--format qcow2|raw]\n"
           "       %1$s image flatten NAME\n", ctx->program);
  return CTL_EXIT_USAGE;
}

static HostConfig *
load_host (CtlContext *ctx)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  HostConfig *host = host_config_load (ctx->config_path, errors);

  if (host == NULL)
    config_errors_print (errors, stderr);
  return host;
}

/* Who new images belong to: the user QEMU runs as, when we are root (else ourselves). */
static gboolean
image_owner (const HostConfig *host, uid_t *out_uid, gid_t *out_gid)
{
  struct passwd *pw;
  struct group *gr;

  if (geteuid () != 0)
    {
      *out_uid = IMAGES_OWNER_KEEP;
      *out_gid = IMAGES_GROUP_KEEP;
      return TRUE;
    }
  pw = getpwnam (host->qemu_user);
  gr = pw == NULL ? NULL : host->qemu_group ? getgrnam (host->qemu_group) : getgrgid (pw->pw_gid);
  if (pw == NULL || gr == NULL)
    {
      fprintf (stderr, "no %s '%s' on this host to own the image (create it, e.g. adduser --system "
                       "--group %s, or set qemu-user/qemu-group in vmherd.conf)\n",
               pw == NULL ? "user" : "group", pw == NULL ? host->qemu_user : host->qemu_group,
               host->qemu_user);
      return FALSE;
    }
  *out_uid = pw->pw_uid;
  *out_gid = gr->gr_gid;
  return TRUE;
}

/* ---- progress ---- */

typedef struct
{
  gboolean tty;
  int shown;                    /* last percent printed, -1: none */
} ProgressBar;

#define BAR_WIDTH 30

/* On a terminal "\r[#####.....]  42%" redrawn in place; otherwise one line per 10%. */
static void
on_progress (double percent, gpointer user_data)
{
  ProgressBar *bar = user_data;
  int whole = (int) percent;

  if (bar->tty)
    {
      char cells[BAR_WIDTH + 1];
      int filled = whole * BAR_WIDTH / 100;

      if (whole == bar->shown)
        return;
      memset (cells, '#', (size_t) filled);
      memset (cells + filled, '.', (size_t) (BAR_WIDTH - filled));
      cells[BAR_WIDTH] = '\0';
      printf ("\r[%s] %3d%%", cells, whole);
    }
  else
    {
      /* Every step passed, even when qemu-img's output was read late in one piece: a log
       * always reads 0%, 10%, ... 100%. */
      int step = bar->shown < 0 ? 0 : bar->shown + 10;

      whole -= whole % 10;
      if (step > whole)
        return;
      for (; step <= whole; step += 10)
        printf ("%d%%\n", step);
    }
  bar->shown = whole;
  fflush (stdout);
}

static void
progress_end (ProgressBar *bar)
{
  if (bar->tty && bar->shown >= 0)
    printf ("\n");
  fflush (stdout);
}

static ProgressBar
progress_start (void)
{
  ProgressBar bar = { isatty (STDOUT_FILENO), -1 };
  return bar;
}

/* ---- info ---- */

/* "64.0 MiB" with a plain space (GLib puts a no-break space, awkward in scripts). */
static char *
size_text (gint64 bytes)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) parts = NULL;

  if (bytes < 0)
    return g_strdup ("?");
  text = g_format_size_full ((guint64) bytes, G_FORMAT_SIZE_IEC_UNITS);
  parts = g_strsplit (text, "\u00a0", -1);
  return g_strjoinv (" ", parts);
}

static void
print_chain (const ImagesChain *chain, guint first_depth)
{
  for (guint i = 0; i < chain->images->len; i++)
    {
      const ImagesInfo *info = chain->images->pdata[i];
      g_autofree char *virtual = size_text ((gint64) info->virtual_size);
      g_autofree char *actual = size_text (info->actual_size);

      printf ("  %-8s %s  %s  virtual %s  on disk %s%s%s\n", i + first_depth == 0 ? "image" : "backing",
              info->filename, info->format, virtual, actual, info->dirty ? "  DIRTY" : "",
              info->corrupt ? "  CORRUPT (see qemu-img check)" : "");
    }
}

static JsonNode *
chain_json (const ImagesChain *chain)
{
  g_autoptr(JsonParser) parser = json_parser_new ();

  if (!json_parser_load_from_data (parser, chain->json, -1, NULL))
    return json_node_new (JSON_NODE_NULL);
  return json_node_copy (json_parser_get_root (parser));
}

/* One disk: its chain, or (no image yet) its base's.  Returns FALSE after printing why. */
static gboolean
info_disk (const HostConfig *host, const VmConfig *vm, const VmDisk *disk, JsonBuilder *json)
{
  gboolean exists = g_file_test (disk->image, G_FILE_TEST_EXISTS);
  const char *path = exists || disk->base == NULL ? disk->image : disk->base;
  int format = exists || disk->base == NULL ? disk->format : disk->base_format;
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = images_info_sync (host->qemu_img, path, vm_image_format_to_string (format),
                                                   INFO_TIMEOUT_MS, &error);

  if (json != NULL)
    {
      json_builder_begin_object (json);
      json_builder_set_member_name (json, "disk");
      json_builder_add_string_value (json, disk->section.name);
      json_builder_set_member_name (json, "image");
      json_builder_add_string_value (json, disk->image);
      json_builder_set_member_name (json, "exists");
      json_builder_add_boolean_value (json, exists);
      json_builder_set_member_name (json, chain != NULL ? "chain" : "error");
      if (chain != NULL)
        json_builder_add_value (json, chain_json (chain));
      else
        json_builder_add_string_value (json, error->message);
      json_builder_end_object (json);
    }
  else if (chain != NULL)
    {
      if (exists)
        printf ("disk %s: %s\n", disk->section.name, disk->image);
      else
        printf ("disk %s: %s (not created yet: vmherdd makes it an overlay on its base at start)\n",
                disk->section.name, disk->image);
      print_chain (chain, exists ? 0 : 1);
    }
  if (chain == NULL)
    fprintf (stderr, "vm '%s': disk '%s': %s\n", vm->name, disk->section.name, error->message);
  return chain != NULL;
}

static int
image_info (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(HostConfig) host = NULL;
  g_autoptr(VmConfig) vm = NULL;
  g_autoptr(JsonBuilder) json = NULL;
  const char *name = NULL;
  gboolean ok = TRUE;

  for (int i = 2; i < argc; i++)
    {
      if (strcmp (argv[i], "--json") == 0)
        json = json_builder_new ();
      else if (argv[i][0] != '-' && name == NULL)
        name = argv[i];
      else
        return usage (ctx);
    }
  if (name == NULL)
    return usage (ctx);
  if ((host = load_host (ctx)) == NULL || (vm = ctl_load_vm (host, name)) == NULL)
    return CTL_EXIT_FAILED;
  if (json != NULL)
    {
      json_builder_begin_object (json);
      json_builder_set_member_name (json, "vm");
      json_builder_add_string_value (json, vm->name);
      json_builder_set_member_name (json, "disks");
      json_builder_begin_array (json);
    }
  for (guint i = 0; i < vm->disks->len; i++)
    ok &= info_disk (host, vm, vm->disks->pdata[i], json);
  if (json != NULL)
    {
      g_autoptr(JsonGenerator) generator = json_generator_new ();
      g_autoptr(JsonNode) root = NULL;
      g_autofree char *text = NULL;

      json_builder_end_array (json);
      json_builder_end_object (json);
      root = json_builder_get_root (json);
      json_generator_set_root (generator, root);
      json_generator_set_pretty (generator, TRUE);
      text = json_generator_to_data (generator, NULL);
      printf ("%s\n", text);
    }
  return ok ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

/* ---- create, clone ---- */

/* Ctrl-C (SIGINT) or SIGTERM cancels the run: qemu-img is killed, partial files removed. */
static void
print_failure (const GError *error, const char *prefix, const char *path, const char *outcome)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    fprintf (stderr, "%sinterrupted; %s %s\n", prefix, path, outcome);
  else
    fprintf (stderr, "%s%s\n", prefix, error->message);
}

/* --format F: TRUE and *format set, or FALSE after a message. */
static gboolean
parse_format (const char *value, const char **format)
{
  if (!images_format_is_supported (value))
    {
      fprintf (stderr, "--format: '%s' is not a format vmherd creates (use qcow2 or raw)\n", value);
      return FALSE;
    }
  *format = value;
  return TRUE;
}

static int
image_create (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(HostConfig) host = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *shown = NULL;
  const char *path = NULL, *format = "qcow2", *size_arg = NULL;
  gboolean preallocate = FALSE;
  guint64 size = 0;
  uid_t uid;
  gid_t gid;

  for (int i = 2; i < argc; i++)
    {
      if (strcmp (argv[i], "--size") == 0 && i + 1 < argc)
        size_arg = argv[++i];
      else if (strcmp (argv[i], "--format") == 0 && i + 1 < argc)
        {
          if (!parse_format (argv[++i], &format))
            return CTL_EXIT_USAGE;
        }
      else if (strcmp (argv[i], "--preallocate") == 0)
        preallocate = TRUE;
      else if (argv[i][0] != '-' && path == NULL)
        path = argv[i];
      else
        return usage (ctx);
    }
  if (path == NULL || size_arg == NULL)
    return usage (ctx);
  if (!config_parse_size (size_arg, &size) || size == 0)
    {
      fprintf (stderr, "--size: \"%s\" is not a size (use e.g. 512M or 8G)\n", size_arg);
      return CTL_EXIT_USAGE;
    }
  if ((host = load_host (ctx)) == NULL || !image_owner (host, &uid, &gid))
    return CTL_EXIT_FAILED;
  if (!images_create_sync (host->qemu_img, path, format, size, preallocate, uid, gid, 0, &error))
    {
      print_failure (error, "", path, "was not created");
      return CTL_EXIT_FAILED;
    }
  shown = size_text ((gint64) size);
  printf ("created %s (%s, %s%s)\n", path, format, shown, preallocate ? ", preallocated" : "");
  return CTL_EXIT_OK;
}

static int
image_clone (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(HostConfig) host = NULL;
  g_autoptr(GError) error = NULL;
  const char *paths[2] = { NULL, NULL };
  const char *format = "qcow2";
  ProgressBar bar = progress_start ();
  guint n_paths = 0;
  gboolean ok;
  uid_t uid;
  gid_t gid;

  for (int i = 2; i < argc; i++)
    {
      if (strcmp (argv[i], "--format") == 0 && i + 1 < argc)
        {
          if (!parse_format (argv[++i], &format))
            return CTL_EXIT_USAGE;
        }
      else if (argv[i][0] != '-' && n_paths < 2)
        paths[n_paths++] = argv[i];
      else
        return usage (ctx);
    }
  if (n_paths != 2)
    return usage (ctx);
  if ((host = load_host (ctx)) == NULL || !image_owner (host, &uid, &gid))
    return CTL_EXIT_FAILED;
  /* The source is probed: it is an operator's file, not a guest-written image. */
  ok = images_clone_sync (host->qemu_img, paths[0], NULL, paths[1], format, uid, gid, 0, on_progress,
                          &bar, &error);
  progress_end (&bar);
  if (!ok)
    {
      print_failure (error, "", paths[1], "was not created");
      return CTL_EXIT_FAILED;
    }
  printf ("cloned %s to %s (%s)\n", paths[0], paths[1], format);
  return CTL_EXIT_OK;
}

/* ---- flatten ---- */

/* vmherdd attaches the declared base as the image's backing node: the base would show
 * through the clusters a flattened image leaves unallocated (reading as zeros). */
static void
print_base_hint (const VmConfig *vm, const VmDisk *disk)
{
  if (disk->base != NULL)
    printf ("disk %s: remove 'base = %s' at %s:%d before '%s' starts again\n", disk->section.name,
            disk->base, vm->path, config_section_key_line (&disk->section, "base"), vm->name);
}

/* Returns FALSE after printing why. */
static gboolean
flatten_disk (const HostConfig *host, const VmConfig *vm, const VmDisk *disk)
{
  const char *format = vm_image_format_to_string (disk->format);
  g_autoptr(GError) error = NULL;
  g_autoptr(ImagesChain) chain = NULL;
  g_autofree char *prefix = NULL;
  ProgressBar bar = progress_start ();
  gboolean ok;

  if (!g_file_test (disk->image, G_FILE_TEST_EXISTS))
    {
      printf ("disk %s: %s does not exist yet; nothing to flatten\n", disk->section.name, disk->image);
      return TRUE;
    }
  chain = images_info_sync (host->qemu_img, disk->image, format, INFO_TIMEOUT_MS, &error);
  if (chain == NULL)
    {
      fprintf (stderr, "vm '%s': disk '%s': %s\n", vm->name, disk->section.name, error->message);
      return FALSE;
    }
  if (chain->images->len == 1)
    {
      printf ("disk %s: %s is already standalone\n", disk->section.name, disk->image);
      print_base_hint (vm, disk);
      return TRUE;
    }
  printf ("disk %s: flattening %s\n", disk->section.name, disk->image);
  fflush (stdout);
  prefix = g_strdup_printf ("vm '%s': disk '%s': ", vm->name, disk->section.name);
  ok = images_flatten_sync (host->qemu_img, disk->image, format, 0, on_progress, &bar, &error);
  progress_end (&bar);
  if (!ok)
    {
      print_failure (error, prefix, disk->image, "is unchanged");
      return FALSE;
    }
  printf ("disk %s: %s is standalone now\n", disk->section.name, disk->image);
  print_base_hint (vm, disk);
  return TRUE;
}

static int
image_flatten (CtlContext *ctx, int argc, char **argv)
{
  g_autoptr(HostConfig) host = NULL;
  g_autoptr(VmConfig) vm = NULL;
  gboolean ok = TRUE;

  if (argc != 3 || argv[2][0] == '-')
    return usage (ctx);
  if ((host = load_host (ctx)) == NULL || (vm = ctl_load_vm (host, argv[2])) == NULL)
    return CTL_EXIT_FAILED;
  for (guint i = 0; i < vm->disks->len && ok; i++)
    ok = flatten_disk (host, vm, vm->disks->pdata[i]);
  return ok ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

int
ctl_cmd_image (CtlContext *ctx, int argc, char **argv)
{
  if (argc < 2)
    return usage (ctx);
  if (strcmp (argv[1], "info") == 0)
    return image_info (ctx, argc, argv);
  if (strcmp (argv[1], "create") == 0)
    return image_create (ctx, argc, argv);
  if (strcmp (argv[1], "clone") == 0)
    return image_clone (ctx, argc, argv);
  if (strcmp (argv[1], "flatten") == 0)
    return image_flatten (ctx, argc, argv);
  fprintf (stderr, "%s image: unknown command '%s'\n", ctx->program, argv[1]);
  return usage (ctx);
}
