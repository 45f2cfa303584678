/* vm-check.c: checks that need the host or several VM files at once. */
#include "launcher/vm-check.h"

#include <stdio.h>
#include <string.h>

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

GPtrArray *
vm_dir_list (const char *dir, GError **error)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, error);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (d == NULL)
    {
      g_prefix_error (error, "cannot read the VM directory: ");
      return NULL;
    }
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *vm = vm_name_from_file (name);
      if (vm != NULL)
        g_ptr_array_add (names, g_strdup (name));
    }
  g_ptr_array_sort (names, compare_names);
  return g_steal_pointer (&names);
}

static void
check_file (const VmConfig *vm, const ConfigSection *section, const char *key,
            const char *path, const char *what, ConfigErrors *errors)
{
  if (path != NULL && !g_file_test (path, G_FILE_TEST_IS_REGULAR))
    config_errors_add (errors, vm->path, config_section_key_line (section, key),
                       "%s: %s %s %s", key, what, path,
                       g_file_test (path, G_FILE_TEST_EXISTS) ? "is not a regular file"
                                                              : "does not exist");
}

static void
check_bridge (const VmConfig *vm, const VmNic *nic, const HostConfig *host, ConfigErrors *errors)
{
  g_autofree char *sys = g_build_filename ("/sys/class/net", nic->bridge, NULL);
  g_autofree char *sys_bridge = g_build_filename (sys, "bridge", NULL);
  int line = config_section_key_line (&nic->section, "bridge");

  const HostBridge *declared = host_config_find_bridge (host, nic->bridge);
  g_autofree char *filtering = NULL;
  gboolean tagged = nic->vlan != 0 || nic->trunk != NULL;

  if (declared != NULL || g_file_test (sys_bridge, G_FILE_TEST_IS_DIR))
    {
      g_autofree char *flag = g_build_filename (sys_bridge, "vlan_filtering", NULL);

      /* VLANs need a filtering bridge: declared so, or found so on this host. */
      if (tagged && !(declared ? declared->vlan_filtering
                               : g_file_get_contents (flag, &filtering, NULL, NULL) && filtering[0] == '1'))
        config_errors_add (errors, vm->path,
                           config_section_key_line (&nic->section, nic->vlan ? "vlan" : "trunk"),
                           "%s: bridge %s does not filter VLANs (set vlan-filtering = yes in its "
                           "[bridge %s] of %s)", nic->vlan ? "vlan" : "trunk", nic->bridge,
                           nic->bridge, host->path ? host->path : HOST_CONFIG_DEFAULT_PATH);
      return;
    }
  if (g_file_test (sys, G_FILE_TEST_EXISTS))
    config_errors_add (errors, vm->path, line,
                       "bridge: %s exists on this host but is not a bridge (name a bridge)",
                       nic->bridge);
  else
    config_errors_add (errors, vm->path, line,
                       "bridge: no bridge %s on this host and none declared in %s (add "
                       "[bridge %s] there, or name an existing bridge)", nic->bridge,
                       host->path ? host->path : HOST_CONFIG_DEFAULT_PATH, nic->bridge);
}

void
vm_check_host (const VmConfig *vm, const HostConfig *host, const QemuProbe *probe,
               ConfigErrors *errors)
{
  if (probe != NULL && vm->machine != NULL && !qemu_probe_has_machine (probe, vm->machine))
    config_errors_add (errors, vm->path, config_section_key_line (&vm->vm, "machine"),
                       "machine: %s is not offered by %s (it offers e.g. %s)", vm->machine,
                       host->qemu, probe->default_machine);
  check_file (vm, &vm->kernel_section, "path", vm->kernel, "kernel", errors);
  check_file (vm, &vm->kernel_section, "initrd", vm->initrd, "initrd", errors);
  for (guint i = 0; i < vm->disks->len; i++)
    {
      const VmDisk *disk = vm->disks->pdata[i];
      int line = config_section_key_line (&disk->section, "image");

      if (disk->nbd != NULL)
        ;                       /* a server's export: checked when the guest starts */
      else if (g_file_test (disk->image, G_FILE_TEST_IS_DIR))
        config_errors_add (errors, vm->path, line, "image: %s is a directory (name an image file)",
                           disk->image);
      else if (!g_file_test (disk->image, G_FILE_TEST_EXISTS) && disk->base == NULL)
        config_errors_add (errors, vm->path, line,
                           "image: %s does not exist and there is no base to create it from "
                           "(create it with `vmherd image create`, or set base =)", disk->image);
      check_file (vm, &disk->section, "base", disk->base, "base image", errors);
    }
  for (guint i = 0; i < vm->nics->len; i++)
    check_bridge (vm, vm->nics->pdata[i], host, errors);
}

typedef struct
{
  const VmConfig *vm;
  const ConfigSection *section;
  const char *key;
} Owner;

static void
claim (GHashTable *owners, const char *value, const VmConfig *vm, const ConfigSection *section,
       const char *key, const char *problem, ConfigErrors *errors)
{
  Owner *first = g_hash_table_lookup (owners, value);
  Owner *owner;

  if (first != NULL)
    {
      config_errors_add (errors, vm->path, config_section_key_line (section, key),
                         "%s: %s %s (%s:%d, VM '%s')", key, value, problem, first->vm->path,
                         config_section_key_line (first->section, first->key), first->vm->name);
      return;
    }
  owner = g_new (Owner, 1);
  *owner = (Owner) { vm, section, key };
  g_hash_table_insert (owners, (gpointer) value, owner);
}

void
vm_check_set (GPtrArray *vms, ConfigErrors *errors)
{
  g_autoptr(GHashTable) macs = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  g_autoptr(GHashTable) images = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);

  for (guint v = 0; v < vms->len; v++)
    {
      const VmConfig *vm = vms->pdata[v];

      for (guint i = 0; i < vm->nics->len; i++)
        {
          const VmNic *nic = vm->nics->pdata[i];
          claim (macs, nic->mac, vm, &nic->section, "mac",
                 "is already used by another NIC (give one of them another mac =)", errors);
        }
      for (guint i = 0; i < vm->disks->len; i++)
        {
          const VmDisk *disk = vm->disks->pdata[i];
          if (!disk->read_only && !disk->shared)
            claim (images, disk->image, vm, &disk->section, "image",
                   "is already written by another disk (two guests must never write one image)",
                   errors);
        }
    }
  /* A base is read by many guests and must be written by none. */
  for (guint v = 0; v < vms->len; v++)
    {
      const VmConfig *vm = vms->pdata[v];

      for (guint i = 0; i < vm->disks->len; i++)
        {
          const VmDisk *disk = vm->disks->pdata[i];
          Owner *writer = disk->base ? g_hash_table_lookup (images, disk->base) : NULL;

          if (writer != NULL)
            config_errors_add (errors, vm->path, config_section_key_line (&disk->section, "base"),
                               "base: %s is the writable image of VM '%s' (%s:%d); a base must "
                               "never be written (use a copy: vmherd image clone)", disk->base,
                               writer->vm->name, writer->vm->path,
                               config_section_key_line (writer->section, "image"));
        }
    }
}

GPtrArray *
vm_check_dir (const HostConfig *host, const QemuProbe *probe, ConfigErrors *errors,
              guint *out_files)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) files = vm_dir_list (host->vm_dir, &error);
  g_autoptr(GPtrArray) vms = g_ptr_array_new_with_free_func ((GDestroyNotify) vm_config_free);
  g_autoptr(GPtrArray) good = g_ptr_array_new_with_free_func ((GDestroyNotify) vm_config_free);

  *out_files = 0;
  if (files == NULL)
    {
      if (!g_file_test (host->vm_dir, G_FILE_TEST_EXISTS))
        config_errors_add (errors, host->vm_dir, 0, "the VM directory does not exist (create it, "
                           "or set vm-dir in %s)", host->path ? host->path : HOST_CONFIG_DEFAULT_PATH);
      else
        config_errors_add (errors, host->vm_dir, 0, "%s", error->message);
      return g_steal_pointer (&good);
    }
  *out_files = files->len;
  for (guint i = 0; i < files->len; i++)
    {
      g_autofree char *path = g_build_filename (host->vm_dir, files->pdata[i], NULL);
      VmConfig *vm = vm_config_load (path, errors);

      if (vm != NULL)
        g_ptr_array_add (vms, vm);
    }
  vm_check_set (vms, errors);
  for (guint i = 0; i < vms->len; i++)
    {
      VmConfig *vm = vms->pdata[i];
      guint before = errors->len;

      vm_check_host (vm, host, probe, errors);
      if (errors->len == before && !config_errors_mention (errors, vm->path))
        g_ptr_array_add (good, g_ptr_array_steal_index (vms, i--));
    }
  return g_steal_pointer (&good);
}

/* The QEMU probe is best effort for `check`: without QEMU, machine types go unchecked. */
QemuProbe *
vm_check_probe (const HostConfig *host, gboolean required)
{
  g_autoptr(GError) error = NULL;
  QemuProbe *probe = qemu_probe_run (host->qemu, &error);

  if (probe == NULL)
    fprintf (stderr, "%s: %s%s\n", required ? "error" : "warning", error->message,
             required ? "" : " (machine types not checked)");
  return probe;
}

int
vm_check_report (const char *config_path, gboolean quiet)
{
  g_autoptr(ConfigErrors) errors = config_errors_new ();
  g_autoptr(HostConfig) host = host_config_load (config_path, errors);
  g_autoptr(QemuProbe) probe = NULL;
  g_autoptr(GPtrArray) good = NULL;
  guint files = 0;

  if (host == NULL)
    {
      config_errors_print (errors, stderr);
      return 1;
    }
  host_peer_link_check_files (host->peer, host->path, errors);
  probe = vm_check_probe (host, FALSE);
  good = vm_check_dir (host, probe, errors, &files);
  config_errors_print (errors, stderr);
  if (!quiet)
    printf ("%u VM file%s in %s, %u with problems%s\n", files, files == 1 ? "" : "s",
            host->vm_dir, files - good->len,
            errors->len > 0 && files == good->len ? "; see the problems above" : "");
  return errors->len > 0 ? 1 : 0;
}

