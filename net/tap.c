/* tap.c: taps for guest NICs: naming, /dev/net/tun ioctls, enslaving with VLANs, reading
 * back for the health view, and /dev/vhost-net. */
#define G_LOG_DOMAIN "vmherd-net"

#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/fd-util.h"
#include "net/bridge.h"
#include "net/netlink-private.h"

#define TAP_NAME_PREFIX_CHARS 6
#define TAP_NAME_HASH_CHARS 5
#define TAP_ALIAS_PREFIX "vmherd:"

G_STATIC_ASSERT (sizeof NET_TAP_PREFIX - 1 + TAP_NAME_PREFIX_CHARS + 1 + TAP_NAME_HASH_CHARS
                 <= NET_IFNAME_MAX);

/* SHA-256 ("vmherd-tap\0" vm "\0" nic "\0"): the name's hash and the tap's MAC. */
static void
tap_digest (const char *vm, const char *nic, guint8 digest[32])
{
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  gsize length = 32;

  g_checksum_update (sum, (const guchar *) "vmherd-tap", sizeof "vmherd-tap");
  g_checksum_update (sum, (const guchar *) vm, strlen (vm) + 1);
  g_checksum_update (sum, (const guchar *) nic, strlen (nic) + 1);
  g_checksum_get_digest (sum, digest, &length);
}

char *
net_tap_name (const char *vm, const char *nic)
{
  static const char base32[] = "abcdefghijklmnopqrstuvwxyz234567";
  GString *name = g_string_new (NET_TAP_PREFIX);
  guint8 digest[32];
  guint32 bits;

  g_return_val_if_fail (vm != NULL && vm[0] != '\0' && nic != NULL && nic[0] != '\0', NULL);

  for (guint i = 0; vm[i] != '\0' && i < TAP_NAME_PREFIX_CHARS; i++)
    g_string_append_c (name, g_ascii_isalnum (vm[i]) || strchr ("-_.", vm[i]) ? vm[i] : '_');
  while (name->len > sizeof NET_TAP_PREFIX - 1 && strchr ("-_.", name->str[name->len - 1]))
    g_string_truncate (name, name->len - 1);
  g_string_append_c (name, '-');

  tap_digest (vm, nic, digest);
  bits = (guint32) digest[0] << 24 | (guint32) digest[1] << 16 | (guint32) digest[2] << 8 | digest[3];
  for (guint i = 0; i < TAP_NAME_HASH_CHARS; i++)
    g_string_append_c (name, base32[(bits >> (27 - 5 * i)) & 31]);
  return g_string_free (name, FALSE);
}

char *
net_tap_alias (const char *vm, const char *nic)
{
  g_return_val_if_fail (vm != NULL && nic != NULL, NULL);
  return g_strconcat (TAP_ALIAS_PREFIX, vm, ":", nic, NULL);
}

static gboolean
alias_is (const char *alias, const char *vm, const char *nic)
{
  g_autofree char *want = net_tap_alias (vm, nic);

  return alias != NULL && g_str_equal (alias, want);
}

static gboolean
spec_is_valid (const NetTapSpec *spec)
{
  return spec->name != NULL && net_ifname_is_valid (spec->name) && spec->vm != NULL && spec->nic != NULL
         && spec->bridge != NULL && net_vlan_is_valid (&spec->vlan);
}

/* NET_ERROR_EXISTS / _FOREIGN when spec->name is taken; nothing is changed either way. */
static gboolean
tap_check_free (NetLink *nl, const NetTapSpec *spec, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(RtnlLink) link = net_link_lookup (nl, spec->name, &local_error);
  const char *alias;

  if (link == NULL)
    {
      if (g_error_matches (local_error, NET_ERROR, NET_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  alias = rtnl_link_get_ifalias (link);
  if (alias != NULL && alias[0] == '\0')
    alias = NULL;
  if (g_str_equal (net_link_kind (link), "tun") && alias_is (alias, spec->vm, spec->nic))
    g_set_error (error, NET_ERROR, NET_ERROR_EXISTS,
                 "vm '%s' nic '%s': tap '%s' already exists (is the VM's QEMU still running?)",
                 spec->vm, spec->nic, spec->name);
  else
    g_set_error (error, NET_ERROR, NET_ERROR_FOREIGN,
                 "vm '%s' nic '%s': interface '%s' exists and is not this NIC's tap (%s%s%s); "
                 "vmherdd leaves it alone: remove or rename it, or rename the NIC",
                 spec->vm, spec->nic, spec->name, alias ? "alias '" : "no vmherd alias",
                 alias ? alias : "", alias ? "'" : "");
  return FALSE;
}

/* The bridge exists, and filters VLANs if the NIC has any. */
static gboolean
tap_check_bridge (NetLink *nl, const NetTapSpec *spec, NetBridgeInfo *out_bridge, GError **error)
{
  g_autoptr(GError) local_error = NULL;

  if (!net_bridge_get_info (nl, spec->bridge, out_bridge, &local_error))
    {
      if (g_error_matches (local_error, NET_ERROR, NET_ERROR_NOT_FOUND))
        g_set_error (error, NET_ERROR, NET_ERROR_NOT_FOUND,
                     "vm '%s' nic '%s': bridge '%s' does not exist (declare it as [bridge %s] in vmherd.conf, "
                     "or create it)", spec->vm, spec->nic, spec->bridge, spec->bridge);
      else
        g_propagate_prefixed_error (error, g_steal_pointer (&local_error), "vm '%s' nic '%s': ",
                                    spec->vm, spec->nic);
      return FALSE;
    }
  if (spec->vlan.mode != NET_VLAN_MODE_NONE && !out_bridge->vlan_filtering)
    {
      g_autofree char *vlan = net_vlan_to_string (&spec->vlan);

      g_set_error (error, NET_ERROR, NET_ERROR_BRIDGE,
                   "vm '%s' nic '%s': bridge '%s' does not filter VLANs, so %s would not isolate "
                   "this NIC (set vlan-filtering = yes in [bridge %s])",
                   spec->vm, spec->nic, spec->bridge, vlan, spec->bridge);
      return FALSE;
    }
  return TRUE;
}

/* One queue of the tap: the first one (exclusive) creates it, and fails with EBUSY rather
 * than attach to a tap someone made since tap_check_free(). */
static int
tap_open_queue (const NetTapSpec *spec, gboolean exclusive, GError **error)
{
  struct ifreq ifr;
  g_auto(AutoFd) fd = open ("/dev/net/tun", O_RDWR | O_CLOEXEC);
  int saved_errno;

  if (fd < 0)
    {
      saved_errno = errno;
      g_set_error (error, NET_ERROR, saved_errno == ENOENT ? NET_ERROR_NOT_FOUND : NET_ERROR_TAP,
                   "cannot open /dev/net/tun: %s%s", g_strerror (saved_errno),
                   saved_errno == ENOENT ? " (the kernel needs tun support: modprobe tun)"
                   : saved_errno == EACCES ? " (vmherdd needs to run as root)" : "");
      return -1;
    }
  memset (&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (spec->queues > 1)
    ifr.ifr_flags |= IFF_MULTI_QUEUE;
  if (exclusive)
    ifr.ifr_flags |= IFF_TUN_EXCL;
  g_strlcpy (ifr.ifr_name, spec->name, sizeof ifr.ifr_name);
  if (ioctl (fd, TUNSETIFF, &ifr) < 0)
    {
      saved_errno = errno;
      g_set_error (error, NET_ERROR, saved_errno == EBUSY ? NET_ERROR_EXISTS : NET_ERROR_TAP,
                   "cannot create tap '%s': %s%s", spec->name, g_strerror (saved_errno),
                   saved_errno == EPERM ? " (vmherdd needs CAP_NET_ADMIN)"
                   : saved_errno == EBUSY ? " (an interface of that name appeared meanwhile)" : "");
      return -1;
    }
  return g_steal_fd (&fd);
}

static void
close_fds (int *fds, guint n)
{
  for (guint i = 0; i < n; i++)
    if (fds[i] >= 0)
      {
        close (fds[i]);
        fds[i] = -1;
      }
}

/* Alias, MAC (fe: + 40 bits of the names' hash) and MTU, while the tap is down. */
static gboolean
tap_set_identity (NetLink *nl, const NetTapSpec *spec, RtnlLink *tap, guint mtu, GError **error)
{
  g_autoptr(RtnlLink) changes = rtnl_link_alloc ();
  g_autoptr(NlAddr) mac = NULL;
  g_autofree char *alias = net_tap_alias (spec->vm, spec->nic);
  guint8 digest[32];

  tap_digest (spec->vm, spec->nic, digest);
  digest[4] = 0xfe;                   /* locally administered, unicast, above any vendor's */
  mac = nl_addr_build (AF_LLC, digest + 4, 6);
  rtnl_link_set_ifalias (changes, alias);
  rtnl_link_set_addr (changes, mac);
  rtnl_link_set_mtu (changes, mtu);
  return net_link_apply (nl, tap, changes, error, "cannot set up tap '%s'", spec->name);
}

static gboolean
tap_set_flags (NetLink *nl, RtnlLink *tap, const char *name, gboolean up, GError **error)
{
  g_autoptr(RtnlLink) changes = rtnl_link_alloc ();

  if (up)
    rtnl_link_set_flags (changes, IFF_UP);
  else
    rtnl_link_unset_flags (changes, IFF_UP);
  return net_link_apply (nl, tap, changes, error, "cannot bring tap '%s' %s", name, up ? "up" : "down");
}

/* Enslaves tap (down while it changes bridge, see tap.h), sets its VLANs, brings it up. */
static gboolean
tap_attach_link (NetLink *nl, const NetTapSpec *spec, RtnlLink *tap, const NetBridgeInfo *bridge,
                 GError **error)
{
  if (rtnl_link_get_master (tap) != bridge->ifindex)
    {
      g_autoptr(RtnlLink) changes = rtnl_link_alloc ();

      if ((rtnl_link_get_flags (tap) & IFF_UP) && !tap_set_flags (nl, tap, spec->name, FALSE, error))
        return FALSE;
      if (rtnl_link_get_mtu (tap) != bridge->mtu)
        {
          g_autoptr(RtnlLink) mtu = rtnl_link_alloc ();

          rtnl_link_set_mtu (mtu, bridge->mtu);
          if (!net_link_apply (nl, tap, mtu, error, "cannot set the MTU of tap '%s'", spec->name))
            return FALSE;
        }
      rtnl_link_set_master (changes, bridge->ifindex);
      if (!net_link_apply (nl, tap, changes, error, "cannot add tap '%s' to bridge '%s'", spec->name,
                           spec->bridge))
        return FALSE;
    }
  if (!net_vlan_port_apply (nl, spec->name, &spec->vlan, error))
    return FALSE;
  return tap_set_flags (nl, tap, spec->name, TRUE, error);
}

gboolean
net_tap_create (NetLink *nl, const NetTapSpec *spec, int *out_fds, GError **error)
{
  g_autofree int *fds = NULL;
  g_autoptr(RtnlLink) tap = NULL;
  NetBridgeInfo bridge;

  g_return_val_if_fail (nl != NULL && spec != NULL && out_fds != NULL, FALSE);
  g_return_val_if_fail (spec_is_valid (spec), FALSE);
  g_return_val_if_fail (spec->queues >= 1 && spec->queues <= NET_TAP_MAX_QUEUES, FALSE);

  if (!tap_check_free (nl, spec, error) || !tap_check_bridge (nl, spec, &bridge, error))
    return FALSE;
  fds = g_new (int, spec->queues);
  for (guint q = 0; q < spec->queues; q++)
    fds[q] = -1;
  for (guint q = 0; q < spec->queues; q++)
    if ((fds[q] = tap_open_queue (spec, q == 0, error)) < 0)
      goto fail;
  tap = net_link_lookup (nl, spec->name, error);
  if (tap == NULL || !tap_set_identity (nl, spec, tap, bridge.mtu, error))
    goto fail;
  g_clear_pointer (&tap, rtnl_link_put);      /* reread: the MTU changed */
  tap = net_link_lookup (nl, spec->name, error);
  if (tap == NULL || !tap_attach_link (nl, spec, tap, &bridge, error))
    goto fail;
  g_debug ("tap '%s' (vm '%s' nic '%s', %u queue(s)) created on bridge '%s'", spec->name, spec->vm,
           spec->nic, spec->queues, spec->bridge);
  memcpy (out_fds, fds, spec->queues * sizeof *fds);
  return TRUE;

fail:
  close_fds (fds, spec->queues);              /* the last close removes the tap */
  return FALSE;
}

gboolean
net_tap_attach (NetLink *nl, const NetTapSpec *spec, GError **error)
{
  g_autoptr(RtnlLink) tap = NULL;
  NetBridgeInfo bridge;

  g_return_val_if_fail (nl != NULL && spec != NULL && spec_is_valid (spec), FALSE);

  tap = net_link_lookup (nl, spec->name, error);
  if (tap == NULL)
    {
      g_prefix_error (error, "vm '%s' nic '%s': ", spec->vm, spec->nic);
      return FALSE;
    }
  if (!g_str_equal (net_link_kind (tap), "tun") || !alias_is (rtnl_link_get_ifalias (tap), spec->vm, spec->nic))
    {
      g_set_error (error, NET_ERROR, NET_ERROR_FOREIGN,
                   "vm '%s' nic '%s': interface '%s' is not this NIC's tap; vmherdd leaves it alone",
                   spec->vm, spec->nic, spec->name);
      return FALSE;
    }
  if (!tap_check_bridge (nl, spec, &bridge, error) || !tap_attach_link (nl, spec, tap, &bridge, error))
    return FALSE;
  g_debug ("tap '%s' attached to bridge '%s'", spec->name, spec->bridge);
  return TRUE;
}

void
net_tap_info_free (NetTapInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->name);
  g_free (info->alias);
  g_free (info->master);
  net_vlan_port_free (info->vlans);
  g_free (info);
}

/* The bridge's name and the port's VLANs; a bridge deleted meanwhile reads as detached. */
static void
tap_info_read_master (NetLink *nl, NetTapInfo *info)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(RtnlLink) master = net_link_lookup_index (nl, info->master_ifindex, &local_error);

  if (master == NULL)
    {
      g_debug ("tap '%s': %s; reading it as detached", info->name, local_error->message);
      info->master_ifindex = 0;
      return;
    }
  info->master = g_strdup (rtnl_link_get_name (master));
  info->vlans = net_vlan_port_read (nl, info->name, &local_error);
  if (info->vlans == NULL)
    g_debug ("tap '%s': %s", info->name, local_error->message);
}

NetTapInfo *
net_tap_get_info (NetLink *nl, const char *name, GError **error)
{
  g_autoptr(RtnlLink) link = NULL;
  g_autoptr(NetTapInfo) info = NULL;
  const char *alias;

  g_return_val_if_fail (nl != NULL && name != NULL, NULL);

  link = net_link_lookup (nl, name, error);
  if (link == NULL)
    return NULL;
  info = g_new0 (NetTapInfo, 1);
  info->name = g_strdup (name);
  info->ifindex = rtnl_link_get_ifindex (link);
  info->is_tap = g_str_equal (net_link_kind (link), "tun");
  alias = rtnl_link_get_ifalias (link);
  info->alias = alias != NULL && alias[0] != '\0' ? g_strdup (alias) : NULL;
  info->up = (rtnl_link_get_flags (link) & IFF_UP) != 0;
  info->carrier = (rtnl_link_get_flags (link) & IFF_LOWER_UP) != 0;
  info->mtu = rtnl_link_get_mtu (link);
  info->master_ifindex = rtnl_link_get_master (link);
  if (info->master_ifindex != 0)
    tap_info_read_master (nl, info);
  return g_steal_pointer (&info);
}

gboolean
net_tap_info_is_owned (const NetTapInfo *info, const char *vm, const char *nic)
{
  g_return_val_if_fail (info != NULL && vm != NULL && nic != NULL, FALSE);
  return info->is_tap && alias_is (info->alias, vm, nic);
}

gboolean
net_tap_delete (NetLink *nl, const char *name, const char *vm, const char *nic, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(NetTapInfo) info = NULL;

  g_return_val_if_fail (nl != NULL && name != NULL && vm != NULL && nic != NULL, FALSE);

  info = net_tap_get_info (nl, name, &local_error);
  if (info == NULL)
    {
      if (g_error_matches (local_error, NET_ERROR, NET_ERROR_NOT_FOUND))
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (!net_tap_info_is_owned (info, vm, nic))
    {
      g_set_error (error, NET_ERROR, NET_ERROR_FOREIGN,
                   "vm '%s' nic '%s': interface '%s' is not this NIC's tap; vmherdd leaves it alone",
                   vm, nic, name);
      return FALSE;
    }
  if (!net_link_remove (nl, info->ifindex, error, "cannot delete tap '%s'", name))
    return FALSE;
  g_debug ("tap '%s' deleted", name);
  return TRUE;
}

gboolean
net_tap_open_vhost (guint n, int *out_fds, GError **error)
{
  g_autofree int *fds = NULL;

  g_return_val_if_fail (n >= 1 && n <= NET_TAP_MAX_QUEUES && out_fds != NULL, FALSE);

  fds = g_new (int, n);
  for (guint i = 0; i < n; i++)
    {
      fds[i] = open ("/dev/vhost-net", O_RDWR | O_CLOEXEC);
      if (fds[i] < 0)
        {
          int saved_errno = errno;

          g_set_error (error, NET_ERROR, saved_errno == ENOENT ? NET_ERROR_NOT_FOUND : NET_ERROR_TAP,
                       "cannot open /dev/vhost-net: %s%s", g_strerror (saved_errno),
                       saved_errno == ENOENT ? " (modprobe vhost_net, or run without vhost)" : "");
          close_fds (fds, i);
          return FALSE;
        }
    }
  memcpy (out_fds, fds, n * sizeof *fds);
  return TRUE;
}
