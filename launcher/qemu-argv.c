/* qemu-argv.c: a VM config (+ the host's) to the exact QEMU argv.  Pure: no I/O.
 *
 * Modern syntax only (-blockdev graph, -netdev/-device, -chardev + -mon), so that both
 * ends of a migration build the same machine from the same file.  Every fd QEMU uses is
 * opened by the daemon and handed over at a number fixed here. */
#include "launcher/qemu-argv.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define QEMU_NIC_MAX_QUEUES 8

static const char *const fd_kind_names[] = { "qmp", "serial", "agent", "tap", "vhost" };

const char *
qemu_fd_kind_to_string (QemuFdKind kind)
{
  return fd_kind_names[kind];
}

void
qemu_cmdline_free (QemuCmdline *cmdline)
{
  if (cmdline == NULL)
    return;
  g_ptr_array_unref (cmdline->argv);
  g_array_unref (cmdline->fds);
  g_free (cmdline);
}

char *
qemu_opt_escape (const char *value)
{
  GString *s = g_string_sized_new (strlen (value) + 8);

  for (const char *p = value; *p != '\0'; p++)
    {
      if (*p == ',')
        g_string_append_c (s, ',');
      g_string_append_c (s, *p);
    }
  return g_string_free (s, FALSE);
}

guint
qemu_argv_nic_queues (const VmConfig *vm)
{
  return (guint) CLAMP (vm->cpus, 1, QEMU_NIC_MAX_QUEUES);
}

char *
qemu_argv_serial_log (const VmConfig *vm, const HostConfig *host)
{
  g_autofree char *file = NULL;

  if (vm->serial_log != NULL)
    return g_strdup (vm->serial_log);
  file = g_strdup_printf ("%s.serial.log", vm->name);
  return g_build_filename (host->log_dir, file, NULL);
}

typedef struct
{
  GPtrArray *argv;
  GArray *fds;
  int next_fd;
} Builder;

static void G_GNUC_PRINTF (3, 4)
add (Builder *b, const char *option, const char *format, ...)
{
  va_list ap;

  g_ptr_array_add (b->argv, g_strdup (option));
  if (format == NULL)
    return;
  va_start (ap, format);
  g_ptr_array_add (b->argv, g_strdup_vprintf (format, ap));
  va_end (ap);
}

static int
take_fd (Builder *b, QemuFdKind kind, guint nic, guint queue)
{
  QemuFd fd = { kind, nic, queue, b->next_fd++ };

  g_array_append_val (b->fds, fd);
  return fd.fd;
}

static void
add_json (Builder *b, const char *option, JsonBuilder *jb)
{
  g_autoptr(JsonNode) root = json_builder_get_root (jb);
  g_autoptr(JsonGenerator) gen = json_generator_new ();

  json_generator_set_root (gen, root);
  g_ptr_array_add (b->argv, g_strdup (option));
  g_ptr_array_add (b->argv, json_generator_to_data (gen, NULL));
}

/* The protocol node of an NBD disk.  reconnect-delay 0: a request that finds the server
 * gone fails at once, so the disk's werror/rerror = stop pauses the guest (rather than its
 * I/O hanging); QEMU keeps reconnecting in the background, and the request retried by
 * `cont` once the server is back goes through the new connection. */
static void
add_nbd_members (JsonBuilder *f, const VmNbd *nbd)
{
  json_builder_set_member_name (f, "driver"); json_builder_add_string_value (f, "nbd");
  json_builder_set_member_name (f, "server");
  json_builder_begin_object (f);
  json_builder_set_member_name (f, "type");
  json_builder_add_string_value (f, nbd->socket != NULL ? "unix" : "inet");
  if (nbd->socket != NULL)
    {
      json_builder_set_member_name (f, "path"); json_builder_add_string_value (f, nbd->socket);
    }
  else
    {
      json_builder_set_member_name (f, "host"); json_builder_add_string_value (f, nbd->host);
      json_builder_set_member_name (f, "port"); json_builder_add_string_value (f, nbd->port);
    }
  json_builder_end_object (f);
  json_builder_set_member_name (f, "export"); json_builder_add_string_value (f, nbd->export);
  json_builder_set_member_name (f, "reconnect-delay"); json_builder_add_int_value (f, 0);
}

/* A file node plus a format node: "<prefix>f-NAME" -> "<prefix>d-NAME", as the roots of
 * f and d. */
static void
build_blockdev_pair (const VmDisk *disk, const char *prefix, const char *filename,
                     VmImageFormat format, gboolean read_only, const char *backing,
                     JsonBuilder *f, JsonBuilder *d)
{
  static const gboolean direct[] = { TRUE, FALSE, FALSE, TRUE, FALSE };
  static const gboolean no_flush[] = { FALSE, FALSE, FALSE, FALSE, TRUE };
  g_autofree char *file_node = g_strdup_printf ("%sf-%s", prefix, disk->section.name);
  g_autofree char *fmt_node = g_strdup_printf ("%sd-%s", prefix, disk->section.name);

  json_builder_begin_object (f);
  if (disk->nbd != NULL && prefix[0] == '\0')
    add_nbd_members (f, disk->nbd);
  else
    {
      json_builder_set_member_name (f, "driver"); json_builder_add_string_value (f, "file");
      json_builder_set_member_name (f, "filename"); json_builder_add_string_value (f, filename);
    }
  json_builder_set_member_name (f, "node-name"); json_builder_add_string_value (f, file_node);
  json_builder_set_member_name (f, "read-only"); json_builder_add_boolean_value (f, read_only);
  json_builder_set_member_name (f, "discard"); json_builder_add_string_value (f, "unmap");
  json_builder_set_member_name (f, "cache");
  json_builder_begin_object (f);
  json_builder_set_member_name (f, "direct"); json_builder_add_boolean_value (f, direct[disk->cache]);
  json_builder_set_member_name (f, "no-flush"); json_builder_add_boolean_value (f, no_flush[disk->cache]);
  json_builder_end_object (f);
  json_builder_end_object (f);

  json_builder_begin_object (d);
  json_builder_set_member_name (d, "driver");
  json_builder_add_string_value (d, vm_image_format_to_string (format));
  json_builder_set_member_name (d, "node-name"); json_builder_add_string_value (d, fmt_node);
  json_builder_set_member_name (d, "file"); json_builder_add_string_value (d, file_node);
  json_builder_set_member_name (d, "read-only"); json_builder_add_boolean_value (d, read_only);
  json_builder_set_member_name (d, "discard"); json_builder_add_string_value (d, "unmap");
  if (format == VM_FORMAT_QCOW2)
    {
      json_builder_set_member_name (d, "backing");
      if (backing != NULL)
        json_builder_add_string_value (d, backing);
      else
        json_builder_add_null_value (d);
    }
  json_builder_end_object (d);
}

static void
add_blockdev_pair (Builder *b, const VmDisk *disk, const char *prefix, const char *filename,
                   VmImageFormat format, gboolean read_only, const char *backing)
{
  g_autoptr(JsonBuilder) f = json_builder_new ();
  g_autoptr(JsonBuilder) d = json_builder_new ();

  build_blockdev_pair (disk, prefix, filename, format, read_only, backing, f, d);
  add_json (b, "-blockdev", f);
  add_json (b, "-blockdev", d);
}

/* Snapshot layer n of a disk is the pair "s<n>f-NAME" -> "s<n>d-NAME"; layer 0 is the
 * image itself. */
static char *
layer_prefix (guint layer)
{
  return layer == 0 ? g_strdup ("") : g_strdup_printf ("s%u", layer);
}

char *
qemu_argv_disk_node (const VmDisk *disk, guint layer)
{
  g_autofree char *prefix = layer_prefix (layer);

  return g_strdup_printf ("%sd-%s", prefix, disk->section.name);
}

void
qemu_argv_disk_layer_nodes (const VmDisk *disk, guint layer, const char *filename,
                            JsonNode **out_file_node, JsonNode **out_format_node)
{
  g_autoptr(JsonBuilder) f = json_builder_new ();
  g_autoptr(JsonBuilder) d = json_builder_new ();
  g_autofree char *prefix = layer_prefix (layer);

  g_return_if_fail (layer > 0);
  build_blockdev_pair (disk, prefix, filename, VM_FORMAT_QCOW2, FALSE, NULL, f, d);
  *out_file_node = json_builder_get_root (f);
  *out_format_node = json_builder_get_root (d);
}

static void
add_disks (Builder *b, const VmConfig *vm)
{
  for (guint i = 0; i < vm->disks->len; i++)
    {
      const VmDisk *disk = vm->disks->pdata[i];
      const char *name = disk->section.name;
      const char *err = vm_on_error_to_string (disk->on_error);
      gboolean write_cache = disk->cache != VM_CACHE_WRITETHROUGH
                             && disk->cache != VM_CACHE_DIRECTSYNC;
      guint layers = disk->overlays != NULL ? disk->overlays->len : 0;
      g_autofree char *backing = NULL;
      g_autofree char *boot = NULL;
      g_autofree char *top = NULL;

      if (disk->base != NULL)
        {
          /* The base is opened read-only, by its declared format, never probed. */
          add_blockdev_pair (b, disk, "b", disk->base, disk->base_format, TRUE, NULL);
          backing = g_strdup_printf ("bd-%s", name);
        }
      /* Under snapshot layers the image is frozen: only the top layer is written. */
      add_blockdev_pair (b, disk, "", disk->image, disk->format, disk->read_only || layers > 0,
                         backing);
      for (guint n = 1; n <= layers; n++)
        {
          g_autofree char *prefix = layer_prefix (n);
          g_autofree char *below = qemu_argv_disk_node (disk, n - 1);

          add_blockdev_pair (b, disk, prefix, disk->overlays->pdata[n - 1], VM_FORMAT_QCOW2,
                             n < layers, below);
        }
      top = qemu_argv_disk_node (disk, layers);
      if (i == 0 && vm->kernel == NULL)
        boot = g_strdup (",bootindex=1");
      /* shared = yes: another host's QEMU may hold it too (cluster FS); QEMU's lock
       * must then allow a second writer. */
      add (b, "-device", "virtio-blk-pci,drive=%s,id=disk-%s,write-cache=%s,werror=%s,"
           "rerror=%s%s%s", top, name, write_cache ? "on" : "off", err, err,
           disk->shared ? ",share-rw=on" : "", boot ? boot : "");
    }
}

static char *
join_fds (Builder *b, QemuFdKind kind, guint nic, guint queues)
{
  GString *s = g_string_new (NULL);

  for (guint q = 0; q < queues; q++)
    g_string_append_printf (s, "%s%d", q ? ":" : "", take_fd (b, kind, nic, q));
  return g_string_free (s, FALSE);
}

static void
add_nics (Builder *b, const VmConfig *vm, const QemuHostCaps *caps)
{
  guint queues = qemu_argv_nic_queues (vm);

  for (guint i = 0; i < vm->nics->len; i++)
    {
      const VmNic *nic = vm->nics->pdata[i];
      const char *name = nic->section.name;
      gboolean virtio = nic->model == 0;
      guint q = virtio ? queues : 1;
      g_autofree char *taps = join_fds (b, QEMU_FD_TAP, i, q);
      g_autofree char *vhosts = virtio && caps->vhost_net ? join_fds (b, QEMU_FD_VHOST, i, q) : NULL;
      g_autofree char *mq = q > 1 ? g_strdup_printf (",mq=on,vectors=%u", 2 * q + 2) : NULL;

      add (b, "-netdev", "tap,id=n-%s,%s=%s%s%s%s", name, q > 1 ? "fds" : "fd", taps,
           vhosts ? ",vhost=on," : "", vhosts ? (q > 1 ? "vhostfds=" : "vhostfd=") : "",
           vhosts ? vhosts : "");
      add (b, "-device", "%s,netdev=n-%s,id=net-%s,mac=%s%s", vm_nic_model_device (nic->model),
           name, name, nic->mac, mq ? mq : "");
    }
}

static void
add_health_devices (Builder *b, const VmConfig *vm)
{
  const VmHealth *h = &vm->health;

  if (h->watchdog != VM_WATCHDOG_NONE)
    {
      add (b, "-device", "i6300esb,id=watchdog0");
      add (b, "-action", "watchdog=%s", vm_watchdog_action_to_string (h->watchdog));
    }
  if (h->panic != VM_PANIC_NONE)
    {
      add (b, "-device", "pvpanic-pci,id=panic0");
      /* With -no-shutdown a "shutdown" leaves QEMU up for the daemon to see why. */
      add (b, "-action", "panic=%s", h->panic == VM_PANIC_PAUSE ? "pause" : "shutdown");
    }
  if (h->guest_agent)
    {
      add (b, "-chardev", "socket,id=agent0,fd=%d,server=on,wait=off",
           take_fd (b, QEMU_FD_AGENT, 0, 0));
      add (b, "-device", "virtio-serial-pci,id=vserial0");
      /* The id makes QEMU report the guest opening and closing the port (VSERPORT_CHANGE). */
      add (b, "-device", "virtserialport,bus=vserial0.0,chardev=agent0,name=org.qemu.guest_agent.0,"
           "id=" QEMU_AGENT_PORT_ID);
    }
}

QemuCmdline *
qemu_argv_build (const VmConfig *vm, const HostConfig *host, const QemuHostCaps *caps)
{
  Builder b = { g_ptr_array_new_with_free_func (g_free),
                g_array_new (FALSE, FALSE, sizeof (QemuFd)), 3 };
  g_autofree char *log_path = qemu_argv_serial_log (vm, host);
  g_autofree char *log = qemu_opt_escape (log_path);
  QemuCmdline *cmdline;

  g_ptr_array_add (b.argv, g_strdup (host->qemu));
  add (&b, "-name", "guest=%s,debug-threads=on", vm->name);
  add (&b, "-S", NULL);
  add (&b, "-no-user-config", NULL);
  add (&b, "-nodefaults", NULL);
  add (&b, "-no-shutdown", NULL);
  add (&b, "-display", "none");
  add (&b, "-msg", "timestamp=on");
  add (&b, "-machine", "%s,accel=%s", vm->machine ? vm->machine : caps->default_machine, vm->accel);
  add (&b, "-cpu", "%s", vm->cpu_model);
  add (&b, "-m", "%" G_GUINT64_FORMAT "M", vm->memory >> 20);
  add (&b, "-smp", "%" G_GINT64_FORMAT, vm->cpus);
  add (&b, "-uuid", "%s", vm->uuid);
  add (&b, "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
  add (&b, "-chardev", "socket,id=qmp,fd=%d,server=on,wait=off", take_fd (&b, QEMU_FD_QMP, 0, 0));
  add (&b, "-mon", "chardev=qmp,mode=control");
  add (&b, "-chardev", "socket,id=serial0,fd=%d,server=on,wait=off,logfile=%s,logappend=on",
       take_fd (&b, QEMU_FD_SERIAL, 0, 0), log);
  add (&b, "-device", "isa-serial,chardev=serial0,id=serial0");
  if (vm->kernel != NULL)
    {
      add (&b, "-kernel", "%s", vm->kernel);
      if (vm->initrd != NULL)
        add (&b, "-initrd", "%s", vm->initrd);
      if (vm->append != NULL)
        add (&b, "-append", "%s", vm->append);
    }
  add_disks (&b, vm);
  add_nics (&b, vm, caps);
  add_health_devices (&b, vm);
  for (char **arg = vm->extra_args; arg != NULL && *arg != NULL; arg++)
    g_ptr_array_add (b.argv, g_strdup (*arg));
  g_ptr_array_add (b.argv, NULL);
  cmdline = g_new0 (QemuCmdline, 1);
  cmdline->argv = b.argv;
  cmdline->fds = b.fds;
  return cmdline;
}

static char *
shell_quote (const char *arg)
{
  if (arg[0] != '\0' && strspn (arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789_./:=,@%+-") == strlen (arg))
    return g_strdup (arg);
  return g_shell_quote (arg);
}

char *
qemu_argv_to_shell (char **argv)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; argv[i] != NULL; i++)
    {
      g_autofree char *quoted = shell_quote (argv[i]);
      gboolean option = argv[i][0] == '-';

      if (i > 0)
        g_string_append (s, option ? " \\\n  " : " ");
      g_string_append (s, quoted);
    }
  g_string_append_c (s, '\n');
  return g_string_free (s, FALSE);
}
