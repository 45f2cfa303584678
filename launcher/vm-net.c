/* vm-net.c: a VM's NICs on the host: one tap per NIC (created by us, handed to QEMU as
 * fds), on its bridge with its VLANs; what `status` shows of them; re-attaching them when
 * a bridge came back.  A tap lives exactly as long as QEMU holds its fds. */
#include "launcher/vm-private.h"

#include <gio/gio.h>
#include <unistd.h>

#include "net/net.h"

static NetVlan
nic_vlan (const VmNic *nic)
{
  NetVlan vlan = { NET_VLAN_MODE_NONE, 0, NULL, 0 };

  if (nic->vlan != 0)
    {
      vlan.mode = NET_VLAN_MODE_ACCESS;
      vlan.pvid = (guint16) nic->vlan;
    }
  else if (nic->trunk != NULL)
    {
      vlan.mode = NET_VLAN_MODE_TRUNK;
      vlan.vids = (const guint16 *) nic->trunk->data;
      vlan.n_vids = nic->trunk->len;
    }
  return vlan;
}

static guint
nic_queues (const Vm *vm, const VmNic *nic)
{
  return nic->model == 0 ? qemu_argv_nic_queues (vm->config) : 1;   /* multiqueue: virtio only */
}

static void
fill_spec (const Vm *vm, const VmNic *nic, char *tap, NetTapSpec *spec)
{
  *spec = (NetTapSpec) { tap, vm->config->name, nic->section.name, nic->bridge,
                         nic_queues (vm, nic), nic_vlan (nic) };
}

/* A guest on VLANs of a VLAN-filtering bridge with an uplink reaches the network only if
 * the uplink carries those VLANs, tagged: add them to it.  Only added, never removed (other
 * guests and the host may use them); an uplink that is missing or a port of another
 * bridge was reported when the bridge was set up and is left alone.  Never fatal: the
 * guest still reaches the bridge's other ports. */
static void
uplink_carry_vlans (Vm *vm, const VmNic *nic, const NetVlan *vlan)
{
  const HostBridge *b = host_config_find_bridge (vm->host, nic->bridge);
  g_autoptr(NetTapInfo) uplink = NULL;
  g_autoptr(GError) error = NULL;
  const guint16 *vids = vlan->vids;
  guint n_vids = vlan->n_vids;

  if (vlan->mode == NET_VLAN_MODE_NONE || b == NULL || b->uplink == NULL || !b->vlan_filtering)
    return;
  uplink = net_tap_get_info (vm->netlink, b->uplink, NULL);
  if (uplink == NULL || g_strcmp0 (uplink->master, nic->bridge) != 0)
    return;
  if (vlan->mode == NET_VLAN_MODE_ACCESS)
    {
      vids = &vlan->pvid;
      n_vids = 1;
    }
  if (!net_vlan_port_add_tagged (vm->netlink, b->uplink, vids, n_vids, &error))
    {
      g_autofree char *what = net_vlan_to_string (vlan);

      vm_log (vm, "NIC '%s': cannot carry its VLANs (%s) on uplink '%s' of bridge '%s': %s, ignoring",
              nic->section.name, what, b->uplink, nic->bridge, error->message);
    }
}

void
vm_net_close_fds (GArray *fds)
{
  for (guint i = 0; fds != NULL && i < fds->len; i++)
    close (g_array_index (fds, int, i));
  if (fds != NULL)
    g_array_set_size (fds, 0);
}

GArray *
vm_net_open (Vm *vm, GError **error)
{
  g_autoptr(GArray) fds = g_array_new (FALSE, FALSE, sizeof (int));

  if (vm->config->nics->len > 0 && vm->netlink == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "vm '%s' has NICs, and vmherdd cannot reach netlink (it runs without "
                   "CAP_NET_ADMIN: run it as root)", vm->config->name);
      return NULL;
    }
  for (guint i = 0; i < vm->config->nics->len; i++)
    {
      const VmNic *nic = vm->config->nics->pdata[i];
      g_autofree char *tap = net_tap_name (vm->config->name, nic->section.name);
      guint queues = nic_queues (vm, nic);
      int taps[NET_TAP_MAX_QUEUES], vhosts[NET_TAP_MAX_QUEUES];
      NetTapSpec spec;

      fill_spec (vm, nic, tap, &spec);
      if (!net_tap_create (vm->netlink, &spec, taps, error))
        {
          g_prefix_error (error, "NIC '%s': ", nic->section.name);
          vm_net_close_fds (fds);
          return NULL;
        }
      g_array_append_vals (fds, taps, queues);
      uplink_carry_vlans (vm, nic, &spec.vlan);
      /* The argv builder's plan: each NIC's taps, then its vhost fds. */
      if (nic->model == 0 && vm->caps->vhost_net)
        {
          if (!net_tap_open_vhost (queues, vhosts, error))
            {
              vm_net_close_fds (fds);
              return NULL;
            }
          g_array_append_vals (fds, vhosts, queues);
        }
    }
  return g_steal_pointer (&fds);
}

JsonArray *
vm_net_describe (Vm *vm)
{
  JsonArray *nics = json_array_new ();

  for (guint i = 0; i < vm->config->nics->len; i++)
    {
      const VmNic *nic = vm->config->nics->pdata[i];
      g_autofree char *tap = net_tap_name (vm->config->name, nic->section.name);
      NetTapInfo *info = vm->netlink && vm->pid > 0 ? net_tap_get_info (vm->netlink, tap, NULL) : NULL;
      JsonObject *o = json_object_new ();

      json_object_set_string_member (o, "name", nic->section.name);
      json_object_set_string_member (o, "mac", nic->mac);
      json_object_set_string_member (o, "bridge", nic->bridge);
      json_object_set_string_member (o, "tap", tap);
      /* A bridge deleted under a running guest leaves its tap in no bridge. */
      json_object_set_string_member (o, "link", info == NULL ? "-"
                                                : info->master == NULL ? "detached"
                                                : g_strcmp0 (info->master, nic->bridge) == 0 ? "attached"
                                                : "elsewhere");
      json_array_add_object_element (nics, o);
      net_tap_info_free (info);
    }
  return nics;
}

void
vm_net_reattach (Vm *vm)
{
  if (vm->netlink == NULL || vm->pid <= 0)
    return;
  for (guint i = 0; i < vm->config->nics->len; i++)
    {
      const VmNic *nic = vm->config->nics->pdata[i];
      g_autofree char *tap = net_tap_name (vm->config->name, nic->section.name);
      g_autoptr(GError) error = NULL;
      NetTapSpec spec;

      fill_spec (vm, nic, tap, &spec);
      if (!net_tap_attach (vm->netlink, &spec, &error))
        vm_log (vm, "NIC '%s': cannot re-attach tap %s to %s: %s", nic->section.name, tap,
                nic->bridge, error->message);
      else
        uplink_carry_vlans (vm, nic, &spec.vlan);
    }
}

void
vm_set_netlink (Vm *vm, NetLink *netlink)
{
  vm->netlink = netlink;
}

static void
on_announced (GObject *source G_GNUC_UNUSED, GAsyncResult *result, gpointer data G_GNUC_UNUSED)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish (NULL, result, &error);

  if (reply == NULL && !g_error_matches (error, QMP_ERROR, QMP_ERROR_CANCELLED))
    g_message ("announce-self failed: %s", error->message);
}

void
vm_net_announce (Vm *vm)
{
  g_autoptr(JsonObject) args = json_object_new ();

  if (vm->config->nics->len == 0 || vm_get_qmp (vm) == NULL)
    return;
  /* QEMU's own defaults for the RARP/GARP rounds after a migration: switches and ARP
   * caches learn the guest's port at once. */
  json_object_set_int_member (args, "initial", 50);
  json_object_set_int_member (args, "max", 550);
  json_object_set_int_member (args, "rounds", 5);
  json_object_set_int_member (args, "step", 100);
  qmp_client_execute_async (vm->qmp, "announce-self", args, NULL, 0, VM_QMP_COMMAND_TIMEOUT_MS,
                            vm->cancel, on_announced, NULL);
}
