/* netlink.c: the rtnetlink socket, and sending requests with the kernel's own explanation
 * of a failure kept for the error message. */
#define G_LOG_DOMAIN "vmherd-net"

#include "net/netlink-private.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

gboolean
net_ifname_is_valid (const char *name)
{
  gsize length;

  g_return_val_if_fail (name != NULL, FALSE);
  length = strlen (name);
  if (length == 0 || length > NET_IFNAME_MAX || g_str_equal (name, ".") || g_str_equal (name, ".."))
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (*p == '/' || *p == ':' || *p == '%' || g_ascii_isspace (*p) || (guchar) *p < 0x20)
      return FALSE;
  return TRUE;
}

/* Extended-ack attributes follow the nlmsgerr and, unless the kernel capped it (we ask it
 * to), the echoed request. */
static void
extack_copy (NetLink *nl, const struct nlmsgerr *err)
{
  const struct nlmsghdr *hdr = (const struct nlmsghdr *) ((const char *) err - NLMSG_HDRLEN);
  struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
  gsize offset = sizeof *err;

  if (!(hdr->nlmsg_flags & NLM_F_ACK_TLVS))
    return;
  if (!(hdr->nlmsg_flags & NLM_F_CAPPED) && err->msg.nlmsg_len >= NLMSG_HDRLEN)
    offset += err->msg.nlmsg_len - NLMSG_HDRLEN;
  offset = NLMSG_ALIGN (offset);
  if (hdr->nlmsg_len <= NLMSG_HDRLEN + offset)
    return;
  if (nla_parse (tb, NLMSGERR_ATTR_MAX, (struct nlattr *) ((char *) err + offset),
                 (int) (hdr->nlmsg_len - NLMSG_HDRLEN - offset), NULL) == 0
      && tb[NLMSGERR_ATTR_MSG] != NULL)
    nla_strlcpy (nl->last_extack, tb[NLMSGERR_ATTR_MSG], sizeof nl->last_extack);
}

/* libnl calls this for every NLMSG_ERROR with a non-zero error on our socket (and on the
 * callback sets cloned from it); NL_STOP makes it return -nl_syserr2nlerr (errno) as usual. */
static int
on_kernel_error (struct sockaddr_nl *who, struct nlmsgerr *err, void *data)
{
  NetLink *nl = data;

  (void) who;
  nl->last_errno = -err->error;
  nl->last_extack[0] = '\0';
  extack_copy (nl, err);
  return NL_STOP;
}

static void
net_link_reset_error (NetLink *nl)
{
  nl->last_errno = 0;
  nl->last_extack[0] = '\0';
}

static void set_error_va (NetLink *nl, int nle, GError **error, const char *format, va_list args)
  G_GNUC_PRINTF (4, 0);

static void
set_error_va (NetLink *nl, int nle, GError **error, const char *format, va_list args)
{
  g_autofree char *what = g_strdup_vprintf (format, args);

  net_error_set_nl (error, nle, nl->last_errno, nl->last_extack, what);
}

NetLink *
net_link_open (GError **error)
{
  g_autoptr(NetLink) nl = g_new0 (NetLink, 1);
  int one = 1;
  int err;

  nl->sock = nl_socket_alloc ();
  if (nl->sock == NULL)
    {
      g_set_error (error, NET_ERROR, NET_ERROR_NETLINK, "cannot open a netlink socket: out of memory");
      return NULL;
    }
  err = nl_connect (nl->sock, NETLINK_ROUTE);
  if (err < 0)
    {
      net_error_from_nl (err, error, "cannot open a netlink socket");
      return NULL;
    }
  /* Extended acks carry the kernel's own reason; capped acks keep a refused 16 KiB VLAN
   * request from being echoed back.  Kernels without them simply send neither. */
  (void) setsockopt (nl_socket_get_fd (nl->sock), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void) setsockopt (nl_socket_get_fd (nl->sock), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  nl_socket_modify_err_cb (nl->sock, NL_CB_CUSTOM, on_kernel_error, nl);
  return g_steal_pointer (&nl);
}

void
net_link_free (NetLink *nl)
{
  if (nl == NULL)
    return;
  g_clear_pointer (&nl->sock, nl_socket_free);
  g_free (nl);
}

void
net_link_set_error (NetLink *nl, int nle, GError **error, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  set_error_va (nl, nle, error, format, args);
  va_end (args);
}

static RtnlLink *
lookup (NetLink *nl, int ifindex, const char *name, GError **error)
{
  struct rtnl_link *link = NULL;
  int err;

  net_link_reset_error (nl);
  err = rtnl_link_get_kernel (nl->sock, ifindex, name, &link);
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV)
    {
      if (name != NULL)
        g_set_error (error, NET_ERROR, NET_ERROR_NOT_FOUND, "no interface '%s'", name);
      else
        g_set_error (error, NET_ERROR, NET_ERROR_NOT_FOUND, "no interface with index %d", ifindex);
      return NULL;
    }
  if (err < 0)
    {
      if (name != NULL)
        net_link_set_error (nl, err, error, "cannot read interface '%s'", name);
      else
        net_link_set_error (nl, err, error, "cannot read interface %d", ifindex);
      return NULL;
    }
  return link;
}

RtnlLink *
net_link_lookup (NetLink *nl, const char *name, GError **error)
{
  g_return_val_if_fail (name != NULL, NULL);

  if (!net_ifname_is_valid (name))
    {
      g_set_error (error, NET_ERROR, NET_ERROR_NOT_FOUND,
                   "'%s' is not a valid interface name (1 to 15 characters, no '/', ':', '%%' or spaces)",
                   name);
      return NULL;
    }
  return lookup (nl, 0, name, error);
}

RtnlLink *
net_link_lookup_index (NetLink *nl, int ifindex, GError **error)
{
  g_return_val_if_fail (ifindex > 0, NULL);
  return lookup (nl, ifindex, NULL, error);
}

int
net_link_get_ifindex (NetLink *nl, const char *name, GError **error)
{
  g_autoptr(RtnlLink) link = net_link_lookup (nl, name, error);

  return link != NULL ? rtnl_link_get_ifindex (link) : 0;
}

const char *
net_link_kind (RtnlLink *link)
{
  const char *kind = rtnl_link_get_type (link);

  return kind != NULL ? kind : "";
}

gboolean
net_link_apply (NetLink *nl, RtnlLink *orig, RtnlLink *changes, GError **error, const char *format, ...)
{
  int err;

  net_link_reset_error (nl);
  err = rtnl_link_change (nl->sock, orig, changes, 0);
  if (err < 0)
    {
      va_list args;

      va_start (args, format);
      set_error_va (nl, err, error, format, args);
      va_end (args);
      return FALSE;
    }
  return TRUE;
}

gboolean
net_link_remove (NetLink *nl, int ifindex, GError **error, const char *format, ...)
{
  g_autoptr(RtnlLink) link = rtnl_link_alloc ();
  int err;

  rtnl_link_set_ifindex (link, ifindex);
  net_link_reset_error (nl);
  err = rtnl_link_delete (nl->sock, link);
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NODEV)
    {
      va_list args;

      va_start (args, format);
      set_error_va (nl, err, error, format, args);
      va_end (args);
      return FALSE;
    }
  return TRUE;
}

NlMsg *
net_link_msg_new (int type, int flags, int family, int ifindex, gsize size)
{
  struct ifinfomsg ifi = { .ifi_family = (unsigned char) family, .ifi_index = ifindex };
  gsize total = NLMSG_HDRLEN + NLMSG_ALIGN (sizeof ifi) + size;
  NlMsg *msg = nlmsg_alloc_size (MAX (total, (gsize) 4096));

  /* Out of memory aborts, as g_malloc() does. */
  if (msg == NULL || nlmsg_put (msg, NL_AUTO_PORT, NL_AUTO_SEQ, type, 0, flags) == NULL
      || nlmsg_append (msg, &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0)
    g_error ("out of memory building a netlink message");
  return msg;
}

gboolean
net_link_send (NetLink *nl, NlMsg *msg, GError **error, const char *format, ...)
{
  int err;

  net_link_reset_error (nl);
  err = nl_send_auto (nl->sock, msg);
  if (err >= 0)
    err = nl_wait_for_ack (nl->sock);
  if (err < 0)
    {
      va_list args;

      va_start (args, format);
      set_error_va (nl, err, error, format, args);
      va_end (args);
      return FALSE;
    }
  return TRUE;
}

gboolean
net_link_query (NetLink *nl, NlMsg *msg, nl_recvmsg_msg_cb_t parse, void *arg, GError **error,
                const char *format, ...)
{
  struct nl_cb *socket_cb = nl_socket_get_cb (nl->sock);
  struct nl_cb *cb = nl_cb_clone (socket_cb);
  gboolean dump = (nlmsg_hdr (msg)->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  int err;

  nl_cb_put (socket_cb);
  if (cb == NULL)
    g_error ("out of memory cloning netlink callbacks");
  nl_cb_set (cb, NL_CB_VALID, NL_CB_CUSTOM, parse, arg);
  net_link_reset_error (nl);
  err = nl_send_auto (nl->sock, msg);
  if (err >= 0)
    err = nl_recvmsgs (nl->sock, cb);
  /* With auto-ack on, a get request is answered twice: the object, then an ack; reading
   * only the first leaves the ack to break the next request's sequence check. */
  if (err >= 0 && !dump)
    err = nl_wait_for_ack (nl->sock);
  nl_cb_put (cb);
  if (err < 0)
    {
      va_list args;

      va_start (args, format);
      set_error_va (nl, err, error, format, args);
      va_end (args);
      return FALSE;
    }
  return TRUE;
}

NlCache *
net_link_dump_bridge_ports (NetLink *nl, GError **error)
{
  struct nl_cache *cache = NULL;
  int err;

  net_link_reset_error (nl);
  err = rtnl_link_alloc_cache (nl->sock, AF_BRIDGE, &cache);
  if (err < 0)
    {
      net_link_set_error (nl, err, error, "cannot read the bridge ports' VLANs");
      return NULL;
    }
  return cache;
}
