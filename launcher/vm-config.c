/* vm-config.c: parse and validate one VM file.
 *
 * Every problem is collected, with its line, so one `vmherd check` run shows them all. */
#include "launcher/vm-config.h"

#include <stddef.h>
#include <string.h>

static const char *const restart_choices[] = { "on-failure", "always", "no", NULL };
static const char *const cache_choices[] = { "none", "writeback", "writethrough", "directsync",
                                             "unsafe", NULL };
static const char *const on_error_choices[] = { "stop", "report", "ignore", NULL };
static const char *const format_choices[] = { "qcow2", "raw", NULL };
static const char *const watchdog_choices[] = { "none", "reset", "poweroff", "pause", NULL };
static const char *const panic_choices[] = { "restart", "pause", "none", NULL };
static const char *const agent_action_choices[] = { "restart", "report", NULL };   /* VmProbeAction */
const char *const vm_nic_models[] = { "virtio", "e1000", "e1000e", "rtl8139", NULL };
static const char *const nic_devices[] = { "virtio-net-pci", "e1000", "e1000e", "rtl8139" };

const char *vm_restart_policy_to_string (VmRestartPolicy p) { return restart_choices[p]; }
const char *vm_cache_mode_to_string (VmCacheMode m) { return cache_choices[m]; }
const char *vm_image_format_to_string (VmImageFormat f) { return format_choices[f]; }
const char *vm_watchdog_action_to_string (VmWatchdogAction a) { return watchdog_choices[a]; }
const char *vm_panic_action_to_string (VmPanicAction a) { return panic_choices[a]; }
const char *vm_on_error_to_string (VmOnError e) { return on_error_choices[e]; }
const char *vm_nic_model_device (int model) { return nic_devices[model]; }

#define K(name, kind, type, field, ...) \
  { name, kind, offsetof (type, field), __VA_ARGS__ }

static const ConfigKey vm_keys[] = {
  K ("memory", KEY_SIZE, VmConfig, memory, 16 << 20, G_GINT64_CONSTANT (1) << 42, NULL, TRUE, "512M or 2G"),
  K ("cpus", KEY_INT, VmConfig, cpus, 1, 255, NULL, FALSE, "a number from 1 to 255"),
  K ("machine", KEY_STRING, VmConfig, machine, 0, 0, NULL, FALSE, "pc-q35-7.2"),
  K ("cpu-model", KEY_STRING, VmConfig, cpu_model, 0, 0, NULL, FALSE, "qemu64 or Haswell-noTSX"),
  K ("accel", KEY_STRING, VmConfig, accel, 0, 0, NULL, FALSE, "kvm:tcg"),
  K ("uuid", KEY_UUID, VmConfig, uuid, 0, 0, NULL, FALSE, NULL),
  K ("autostart", KEY_BOOL, VmConfig, autostart, 0, 0, NULL, FALSE, NULL),
  K ("start-order", KEY_INT, VmConfig, start_order, -1000000, 1000000, NULL, FALSE, "a number from -1000000 to 1000000; lower starts first"),
  K ("restart", KEY_CHOICE, VmConfig, restart, 0, 0, restart_choices, FALSE, NULL),
  K ("restart-limit", KEY_INT, VmConfig, restart_limit, 1, 1000, NULL, FALSE, "a number from 1 to 1000"),
  K ("restart-window", KEY_DURATION, VmConfig, restart_window_ms, 1000, 86400000, NULL, FALSE, "a duration from 1s to 24h, e.g. 10m"),
  K ("powerdown-timeout", KEY_DURATION, VmConfig, powerdown_timeout_ms, 0, 3600000, NULL, FALSE, "a duration up to 1h, e.g. 30s"),
  K ("quit-timeout", KEY_DURATION, VmConfig, quit_timeout_ms, 100, 3600000, NULL, FALSE, "a duration from 100ms to 1h, e.g. 5s"),
  K ("term-timeout", KEY_DURATION, VmConfig, term_timeout_ms, 100, 3600000, NULL, FALSE, "a duration from 100ms to 1h, e.g. 5s"),
  { 0 },
};

static const ConfigKey disk_keys[] = {
  K ("image", KEY_PATH, VmDisk, image, 0, 0, NULL, TRUE, "/var/lib/vmherd/images/NAME.qcow2"),
  K ("format", KEY_CHOICE, VmDisk, format, 0, 0, format_choices, TRUE, NULL),
  K ("base", KEY_PATH, VmDisk, base, 0, 0, NULL, FALSE, NULL),
  K ("base-format", KEY_CHOICE, VmDisk, base_format, 0, 0, format_choices, FALSE, NULL),
  K ("cache", KEY_CHOICE, VmDisk, cache, 0, 0, cache_choices, FALSE, NULL),
  K ("on-error", KEY_CHOICE, VmDisk, on_error, 0, 0, on_error_choices, FALSE, NULL),
  K ("shared", KEY_BOOL, VmDisk, shared, 0, 0, NULL, FALSE, NULL),
  K ("read-only", KEY_BOOL, VmDisk, read_only, 0, 0, NULL, FALSE, NULL),
  { 0 },
};

static const ConfigKey net_keys[] = {
  K ("bridge", KEY_STRING, VmNic, bridge, 0, 0, NULL, TRUE, "br0"),
  K ("vlan", KEY_INT, VmNic, vlan, 1, 4094, NULL, FALSE, "a VLAN id from 1 to 4094"),
  K ("trunk", KEY_VLAN_LIST, VmNic, trunk, 0, 0, NULL, FALSE, NULL),
  K ("mac", KEY_MAC, VmNic, mac, 0, 0, NULL, FALSE, "52:54:00:12:34:56"),
  K ("model", KEY_CHOICE, VmNic, model, 0, 0, vm_nic_models, FALSE, NULL),
  { 0 },
};

static const ConfigKey kernel_keys[] = {
  K ("path", KEY_PATH, VmConfig, kernel, 0, 0, NULL, TRUE, "/boot/vmlinuz"),
  K ("initrd", KEY_PATH, VmConfig, initrd, 0, 0, NULL, FALSE, NULL),
  K ("append", KEY_STRING, VmConfig, append, 0, 0, NULL, FALSE, "console=ttyS0"),
  { 0 },
};

static const ConfigKey serial_keys[] = {
  K ("log", KEY_PATH, VmConfig, serial_log, 0, 0, NULL, FALSE, NULL),
  { 0 },
};

static const ConfigKey health_keys[] = {
  K ("qmp-interval", KEY_DURATION, VmHealth, qmp_interval_ms, 100, 3600000, NULL, FALSE, "a duration from 100ms to 1h, e.g. 2s"),
  K ("qmp-timeout", KEY_DURATION, VmHealth, qmp_timeout_ms, 100, 3600000, NULL, FALSE, "a duration from 100ms to 1h, e.g. 5s"),
  K ("qmp-failures", KEY_INT, VmHealth, qmp_failures, 1, 1000, NULL, FALSE, "a number from 1 to 1000"),
  K ("watchdog", KEY_CHOICE, VmHealth, watchdog, 0, 0, watchdog_choices, FALSE, NULL),
  K ("panic", KEY_CHOICE, VmHealth, panic, 0, 0, panic_choices, FALSE, NULL),
  K ("guest-agent", KEY_BOOL, VmHealth, guest_agent, 0, 0, NULL, FALSE, NULL),
  K ("agent-interval", KEY_DURATION, VmHealth, agent_interval_ms, 100, 3600000, NULL, FALSE, "a duration from 100ms to 1h, e.g. 10s"),
  K ("agent-timeout", KEY_DURATION, VmHealth, agent_timeout_ms, 100, 3600000, NULL, FALSE, "a duration from 100ms to 1h, e.g. 5s"),
  K ("agent-failures", KEY_INT, VmHealth, agent_failures, 1, 1000, NULL, FALSE, "a number from 1 to 1000"),
  K ("agent-grace", KEY_DURATION, VmHealth, agent_grace_ms, 0, 3600000, NULL, FALSE, "a duration from 0 to 1h, e.g. 60s"),
  K ("agent-action", KEY_CHOICE, VmHealth, agent_action, 0, 0, agent_action_choices, FALSE, NULL),
  K ("probe", KEY_LIST, VmHealth, probe_texts, 0, 0, NULL, FALSE, NULL),
  K ("storage-interval", KEY_DURATION, VmHealth, storage_interval_ms, 100, 3600000, NULL, FALSE, "a duration from 100ms to 1h, e.g. 5s"),
  K ("storage-timeout", KEY_DURATION, VmHealth, storage_timeout_ms, 100, 3600000, NULL, FALSE, "a duration from 100ms to 1h, e.g. 5s"),
  K ("storage-stuck-after", KEY_DURATION, VmHealth, storage_stuck_after_ms, 1000, 604800000, NULL, FALSE, "a duration from 1s to 7d, e.g. 5m"),
  { 0 },
};

static const ConfigKey qemu_keys[] = {
  K ("extra-args", KEY_ARGS, VmConfig, extra_args, 0, 0, NULL, FALSE, NULL),
  { 0 },
};

typedef enum { SEC_VM, SEC_DISK, SEC_NET, SEC_KERNEL, SEC_SERIAL, SEC_HEALTH, SEC_QEMU } SectionKind;

static const struct
{
  const char *word;
  gboolean named;               /* [disk NAME] */
  const ConfigKey *keys;
} sections[] = {
  [SEC_VM] = { "vm", FALSE, vm_keys },
  [SEC_DISK] = { "disk", TRUE, disk_keys },
  [SEC_NET] = { "net", TRUE, net_keys },
  [SEC_KERNEL] = { "kernel", FALSE, kernel_keys },
  [SEC_SERIAL] = { "serial", FALSE, serial_keys },
  [SEC_HEALTH] = { "health", FALSE, health_keys },
  [SEC_QEMU] = { "qemu", FALSE, qemu_keys },
};

static void
vm_disk_free (VmDisk *disk)
{
  for (const ConfigKey *k = disk_keys; k->name != NULL; k++)
    config_key_clear (k, disk);
  config_section_clear (&disk->section);
  g_clear_pointer (&disk->overlays, g_ptr_array_unref);
  g_clear_pointer (&disk->nbd, vm_nbd_free);
  g_free (disk);
}

static void
vm_nic_free (VmNic *nic)
{
  for (const ConfigKey *k = net_keys; k->name != NULL; k++)
    config_key_clear (k, nic);
  config_section_clear (&nic->section);
  g_free (nic);
}

void
vm_config_free (VmConfig *config)
{
  if (config == NULL)
    return;
  for (guint s = 0; s < G_N_ELEMENTS (sections); s++)
    if (s != SEC_DISK && s != SEC_NET && s != SEC_HEALTH)
      for (const ConfigKey *k = sections[s].keys; k->name != NULL; k++)
        config_key_clear (k, config);
  for (const ConfigKey *k = health_keys; k->name != NULL; k++)
    config_key_clear (k, &config->health);
  g_ptr_array_unref (config->health.probes);
  g_ptr_array_unref (config->disks);
  g_ptr_array_unref (config->nics);
  config_section_clear (&config->vm);
  config_section_clear (&config->kernel_section);
  config_section_clear (&config->serial_section);
  config_section_clear (&config->health.section);
  config_section_clear (&config->qemu_section);
  g_free (config->name);
  g_free (config->path);
  g_free (config->checksum);
  g_free (config);
}

gboolean
vm_name_is_valid (const char *name, char **out_problem)
{
  const char *problem = NULL;

  if (name[0] == '\0')
    problem = "is empty";
  else if (strlen (name) > VM_NAME_MAX)
    problem = "is longer than 48 characters";
  else if (name[0] == '.' || name[0] == '-')
    problem = "starts with '.' or '-'";
  else
    for (const char *p = name; *p != '\0'; p++)
      if (!g_ascii_isalnum (*p) && strchr ("-_.", *p) == NULL)
        {
          problem = "may hold only letters, digits, '-', '_' and '.'";
          break;
        }
  if (problem != NULL && out_problem != NULL)
    *out_problem = g_strdup (problem);
  return problem == NULL;
}

char *
vm_name_from_file (const char *file_name)
{
  if (file_name[0] == '.' || !g_str_has_suffix (file_name, ".conf")
      || strlen (file_name) == strlen (".conf"))
    return NULL;
  return g_strndup (file_name, strlen (file_name) - strlen (".conf"));
}

static char *
hash_hex (const char *a, const char *b)
{
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);

  g_checksum_update (sum, (const guchar *) "vmherd\0", 7);
  g_checksum_update (sum, (const guchar *) a, strlen (a) + 1);
  if (b != NULL)
    g_checksum_update (sum, (const guchar *) b, strlen (b) + 1);
  return g_strdup (g_checksum_get_string (sum));
}

char *
vm_derive_mac (const char *vm_name, const char *nic_name)
{
  g_autofree char *h = hash_hex (vm_name, nic_name);

  /* 52:54 is QEMU's locally administered unicast prefix; 32 bits of hash follow. */
  return g_strdup_printf ("52:54:%.2s:%.2s:%.2s:%.2s", h, h + 2, h + 4, h + 6);
}

char *
vm_derive_uuid (const char *vm_name)
{
  g_autofree char *h = hash_hex (vm_name, NULL);

  /* A name-based UUID laid out as version 5, variant 1. */
  return g_strdup_printf ("%.8s-%.4s-5%.3s-%c%.3s-%.12s", h, h + 8, h + 13,
                          "89ab"[g_ascii_xdigit_value (h[16]) & 3], h + 17, h + 20);
}

typedef struct
{
  VmConfig *config;
  ConfigErrors *errors;
  const char *file;
  char *base_dir;
  const ConfigKey *keys;        /* of the current section; NULL: skip its keys */
  gpointer target;              /* the struct the keys fill */
  ConfigSection *current;
  GHashTable *seen;             /* "disk data" -> line */
} ParseState;

static gboolean
device_name_is_valid (const char *name)
{
  if (!g_ascii_isalpha (name[0]) || strlen (name) > VM_DEVICE_NAME_MAX)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_')
      return FALSE;
  return TRUE;
}

static gpointer
section_target_new (ParseState *st, SectionKind kind, const char *name, int line)
{
  VmConfig *c = st->config;
  VmDisk *disk;
  VmNic *nic;

  switch (kind)
    {
    case SEC_DISK:
      disk = g_new0 (VmDisk, 1);
      disk->cache = VM_CACHE_NONE;
      disk->on_error = VM_ON_ERROR_STOP;
      disk->base_format = VM_FORMAT_QCOW2;
      config_section_init (&disk->section, name, line);
      g_ptr_array_add (c->disks, disk);
      st->current = &disk->section;
      return disk;
    case SEC_NET:
      nic = g_new0 (VmNic, 1);
      config_section_init (&nic->section, name, line);
      g_ptr_array_add (c->nics, nic);
      st->current = &nic->section;
      return nic;
    case SEC_VM: st->current = &c->vm; break;
    case SEC_KERNEL: st->current = &c->kernel_section; break;
    case SEC_SERIAL: st->current = &c->serial_section; break;
    case SEC_QEMU: st->current = &c->qemu_section; break;
    case SEC_HEALTH:
      config_section_init (&c->health.section, NULL, line);
      st->current = &c->health.section;
      return &c->health;
    }
  config_section_init (st->current, NULL, line);
  return c;
}

static const char *const section_help =
  "(known: [vm], [disk NAME], [net NAME], [kernel], [serial], [health], [qemu])";

static void
begin_section (ParseState *st, int line, const char *header)
{
  g_auto(GStrv) words = g_strsplit_set (header, " \t", 2);
  const char *word = words[0], *name = words[1] ? g_strstrip (words[1]) : NULL;
  g_autofree char *key = NULL;
  gpointer first;
  guint kind;

  st->keys = NULL;
  for (kind = 0; kind < G_N_ELEMENTS (sections); kind++)
    if (strcmp (word, sections[kind].word) == 0)
      break;
  if (kind == G_N_ELEMENTS (sections))
    {
      config_errors_add (st->errors, st->file, line, "unknown section [%s] %s", header,
                              section_help);
      return;
    }
  if (name != NULL && name[0] == '\0')
    name = NULL;
  if (sections[kind].named && name == NULL)
    {
      config_errors_add (st->errors, st->file, line,
                              "[%s] needs a name (write e.g. [%s %s])", word, word,
                              kind == SEC_DISK ? "root" : "lan");
      return;
    }
  if (!sections[kind].named && name != NULL)
    {
      config_errors_add (st->errors, st->file, line,
                              "[%s] takes no name (write just [%s])", header, word);
      return;
    }
  if (name != NULL && !device_name_is_valid (name))
    {
      config_errors_add (st->errors, st->file, line,
                              "[%s %s]: bad name (use a letter, then letters, digits, '-' or "
                              "'_', at most %d characters)", word, name, VM_DEVICE_NAME_MAX);
      return;
    }
  key = g_strdup_printf ("%s %s", word, name ? name : "");
  if (g_hash_table_lookup_extended (st->seen, key, NULL, &first))
    {
      config_errors_add (st->errors, st->file, line,
                              "[%s] appears twice (first at line %d; merge the two)", header,
                              GPOINTER_TO_INT (first));
      return;
    }
  g_hash_table_insert (st->seen, g_steal_pointer (&key), GINT_TO_POINTER (line));
  st->target = section_target_new (st, kind, name, line);
  st->keys = sections[kind].keys;
}

/* image = an NBD URL: kept as written (not a path), its parts in disk->nbd. */
static void
set_nbd_image (ParseState *st, int line, const char *value)
{
  VmDisk *disk = st->target;
  g_autofree char *problem = NULL;

  g_clear_pointer (&disk->nbd, vm_nbd_free);
  disk->nbd = vm_nbd_parse (value, &problem);
  if (disk->nbd == NULL)
    {
      config_errors_add (st->errors, st->file, line, "image: %s", problem);
      return;
    }
  g_free (disk->image);
  disk->image = g_strdup (value);
}

static void
set_key (ParseState *st, int line, const char *section, const char *key, const char *value)
{
  if (section[0] == '\0')
    {
      config_errors_add (st->errors, st->file, line,
                         "%s: outside any section (put it under [vm] or another section)", key);
      return;
    }
  if (st->keys == NULL)
    return;                     /* the section header was reported already */
  config_section_set_key (st->current, st->keys, st->target, section, key, value, st->base_dir,
                          st->errors, st->file, line);
  if (st->keys == disk_keys && strcmp (key, "image") == 0 && vm_nbd_is_url (value))
    set_nbd_image (st, line, value);
  if (st->target == &st->config->health && strcmp (key, "probe") == 0)
    {
      g_autofree char *problem = NULL;
      VmProbe *probe = vm_probe_parse (value, st->config->name, &problem);

      if (probe != NULL)
        g_ptr_array_add (st->config->health.probes, probe);
      else
        config_errors_add (st->errors, st->file, line, "probe: %s", problem);
    }
}

static void
on_ini_item (gpointer user_data, int line, const char *section, const char *key,
             const char *value)
{
  ParseState *st = user_data;

  if (key == NULL)
    begin_section (st, line, section);
  else
    set_key (st, line, section, key, value);
}

static void
finish_disk (ParseState *st, VmDisk *disk)
{
  g_autofree char *header = g_strdup_printf ("disk %s", disk->section.name);
  const ConfigSection *s = &disk->section;

  config_section_require_keys (st->errors, st->file, s, disk_keys, header);
  if (disk->base != NULL && disk->format != VM_FORMAT_QCOW2)
    config_errors_add (st->errors, st->file, config_section_key_line (s, "format"),
                       "format: an overlay on a base must be qcow2 (write format = qcow2)");
  if (config_section_has_key (s, "base-format") && disk->base == NULL)
    config_errors_add (st->errors, st->file, config_section_key_line (s, "base-format"),
                       "base-format: set without base (add base = PATH or drop base-format)");
  if (disk->nbd != NULL && disk->base != NULL)
    config_errors_add (st->errors, st->file, config_section_key_line (s, "base"),
                       "base: set for an NBD disk (the server holds the whole image; drop base)");
  if (disk->base != NULL && disk->image != NULL && strcmp (disk->base, disk->image) == 0)
    config_errors_add (st->errors, st->file, config_section_key_line (s, "base"),
                       "base: the same file as image (a base is never written; name another file)");
}

static void
finish_nic (ParseState *st, VmNic *nic)
{
  g_autofree char *header = g_strdup_printf ("net %s", nic->section.name);

  config_section_require_keys (st->errors, st->file, &nic->section, net_keys, header);
  if (nic->vlan != 0 && nic->trunk != NULL)
    config_errors_add (st->errors, st->file, config_section_key_line (&nic->section, "trunk"),
                       "trunk: set together with vlan (a port is an access port with vlan = N "
                       "or a trunk with trunk = LIST, not both)");
  if (nic->mac == NULL)
    nic->mac = vm_derive_mac (st->config->name, nic->section.name);
}

static void
finish_config (ParseState *st)
{
  VmConfig *c = st->config;

  if (c->vm.key_lines == NULL)
    config_errors_add (st->errors, st->file, 0,
                       "no [vm] section (every VM file needs one, with at least memory = 512M)");
  else
    config_section_require_keys (st->errors, st->file, &c->vm, vm_keys, "vm");
  if (c->memory % (1 << 20) != 0)
    config_errors_add (st->errors, st->file, config_section_key_line (&c->vm, "memory"),
                       "memory: not a whole number of MiB (use e.g. 512M or 2G)");
  if (c->kernel_section.key_lines != NULL)
    config_section_require_keys (st->errors, st->file, &c->kernel_section, kernel_keys, "kernel");
  for (guint i = 0; i < c->disks->len; i++)
    finish_disk (st, c->disks->pdata[i]);
  for (guint i = 0; i < c->nics->len; i++)
    finish_nic (st, c->nics->pdata[i]);
  if (c->uuid == NULL)
    c->uuid = vm_derive_uuid (c->name);
  if (c->cpu_model == NULL)
    c->cpu_model = g_strdup ("qemu64");
  if (c->accel == NULL)
    c->accel = g_strdup ("kvm:tcg");
}

static VmConfig *
vm_config_new (const char *name, const char *path)
{
  VmConfig *c = g_new0 (VmConfig, 1);

  c->name = g_strdup (name);
  c->path = g_strdup (path);
  c->cpus = 1;
  c->restart = VM_RESTART_ON_FAILURE;
  c->restart_limit = 5;
  c->restart_window_ms = 10 * 60 * 1000;
  c->powerdown_timeout_ms = 30 * 1000;
  c->quit_timeout_ms = 5 * 1000;
  c->term_timeout_ms = 5 * 1000;
  c->disks = g_ptr_array_new_with_free_func ((GDestroyNotify) vm_disk_free);
  c->nics = g_ptr_array_new_with_free_func ((GDestroyNotify) vm_nic_free);
  c->health.qmp_interval_ms = 2000;
  c->health.qmp_timeout_ms = 5000;
  c->health.qmp_failures = 3;
  c->health.watchdog = VM_WATCHDOG_NONE;
  c->health.panic = VM_PANIC_RESTART;
  c->health.agent_interval_ms = 10000;
  c->health.agent_timeout_ms = 5000;
  c->health.agent_failures = 3;
  c->health.agent_grace_ms = 60000;
  c->health.agent_action = VM_PROBE_ACTION_RESTART;
  c->health.storage_interval_ms = 5000;
  c->health.storage_timeout_ms = 5000;
  c->health.storage_stuck_after_ms = 5 * 60 * 1000;
  c->health.probes = g_ptr_array_new_with_free_func ((GDestroyNotify) vm_probe_free);
  return c;
}

VmConfig *
vm_config_load (const char *path, ConfigErrors *errors)
{
  return vm_config_load_as (path, path, errors);
}

VmConfig *
vm_config_load_as (const char *read_path, const char *path, ConfigErrors *errors)
{
  g_autofree char *file_name = g_path_get_basename (path);
  g_autofree char *name = vm_name_from_file (file_name);
  g_autofree char *problem = NULL;
  g_autoptr(VmConfig) config = NULL;
  guint errors_before = errors->len;
  ParseState st = { .errors = errors, .file = path };

  if (name == NULL)
    {
      config_errors_add (errors, path, 0, "not a VM file (VM files are named NAME.conf)");
      return NULL;
    }
  if (!vm_name_is_valid (name, &problem))
    {
      config_errors_add (errors, path, 0, "'%s' is not a valid VM name: it %s (rename the file)",
                         name, problem);
      return NULL;
    }
  config = vm_config_new (name, path);
  st.config = config;
  st.base_dir = config_dir_of (path);
  st.seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (config_ini_parse (read_path, on_ini_item, &st, errors))
    finish_config (&st);
  g_free (st.base_dir);
  g_hash_table_unref (st.seen);
  config_errors_sort_from (errors, errors_before);
  if (errors->len > errors_before)
    return NULL;
  return g_steal_pointer (&config);
}
