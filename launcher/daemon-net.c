/* daemon-net.c: the host's bridges.  Each [bridge NAME] of vmherd.conf is created when
 * absent and adopted when present, at start and at every rescan (so `vmherd reload` brings
 * back a bridge deleted by hand, and puts the running guests' taps back on it).  Bridges
 * are never deleted, by design: not on exit, not when a guest stops. */
#include "launcher/daemon-private.h"

#include <unistd.h>

#include "net/net.h"

static void
ensure_bridges (Daemon *daemon)
{
  for (guint i = 0; i < daemon->host->bridges->len; i++)
    {
      const HostBridge *b = daemon->host->bridges->pdata[i];
      NetBridgeSpec spec = { b->section.name, b->uplink, (guint) b->mtu, b->vlan_filtering,
                             b->stp, (guint) b->forward_delay_ms };
      g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
      g_autoptr(GError) error = NULL;
      gboolean created = FALSE;

      if (!net_bridge_ensure (daemon->netlink, &spec, &created, warnings, &error))
        g_message ("bridge '%s': %s; guests on it cannot start until this is fixed",
                   b->section.name, error->message);
      else if (created)
        g_message ("bridge '%s': created", b->section.name);
      for (guint w = 0; w < warnings->len; w++)
        g_message ("%s", (char *) warnings->pdata[w]);
    }
}

void
daemon_net_open (Daemon *daemon)
{
  g_autoptr(GError) error = NULL;

  if (geteuid () != 0)
    {
      g_message ("not root: no bridges or taps; guests with NICs will not start");
      return;
    }
  daemon->netlink = net_link_open (&error);
  if (daemon->netlink == NULL)
    {
      g_message ("netlink: %s; guests with NICs will not start", error->message);
      return;
    }
  ensure_bridges (daemon);
}

void
daemon_net_refresh (Daemon *daemon)
{
  GHashTableIter iter;
  gpointer vm;

  if (daemon->netlink == NULL)
    return;
  ensure_bridges (daemon);
  g_hash_table_iter_init (&iter, daemon->vms);
  while (g_hash_table_iter_next (&iter, NULL, &vm))
    vm_net_reattach (vm);
}

void
daemon_net_close (Daemon *daemon)
{
  g_clear_pointer (&daemon->netlink, net_link_free);
}
