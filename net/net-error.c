/* net-error.c: the NET_ERROR domain and the translation of libnl errors into messages. */
#define G_LOG_DOMAIN "vmherd-net"

#include "net/net-error.h"

#include <errno.h>
#include <netlink/errno.h>

#include "net/netlink-private.h"

G_DEFINE_QUARK (vmherd-net-error-quark, net_error)

static const char *const net_error_names[] = {
  [NET_ERROR_TAP] = "tap",
  [NET_ERROR_BRIDGE] = "bridge",
  [NET_ERROR_NETLINK] = "netlink",
  [NET_ERROR_NOT_FOUND] = "not-found",
  [NET_ERROR_EXISTS] = "exists",
  [NET_ERROR_FOREIGN] = "foreign",
  [NET_ERROR_UNSUPPORTED] = "unsupported",
};

const char *
net_error_to_string (NetError code)
{
  if ((guint) code >= G_N_ELEMENTS (net_error_names))
    return "unknown";
  return net_error_names[code];
}

typedef struct
{
  int nle;
  NetError code;
  const char *text;
} NleText;

/* What each libnl code means for an operator of vmherdd, and what to do about it.  Codes not
 * listed keep libnl's own text (they are library or protocol failures, i.e. our bugs). */
static const NleText nle_texts[] = {
  { NLE_PERM, NET_ERROR_NETLINK, "permission denied (vmherdd needs CAP_NET_ADMIN)" },
  { NLE_NOACCESS, NET_ERROR_NETLINK, "access denied (vmherdd needs CAP_NET_ADMIN)" },
  { NLE_OBJ_NOTFOUND, NET_ERROR_NOT_FOUND, "no such interface" },
  { NLE_NODEV, NET_ERROR_NOT_FOUND, "no such device" },
  { NLE_EXIST, NET_ERROR_EXISTS, "an interface of that name already exists" },
  { NLE_BUSY, NET_ERROR_NETLINK,
    "the interface is busy (is it a port of another bridge or a bond?)" },
  { NLE_OPNOTSUPP, NET_ERROR_UNSUPPORTED, "not supported by the running kernel" },
  { NLE_AF_NOSUPPORT, NET_ERROR_UNSUPPORTED,
    "not supported by the running kernel (is bridge support built or loaded?)" },
  { NLE_RANGE, NET_ERROR_NETLINK, "a value is out of the range the kernel accepts" },
  { NLE_INVAL, NET_ERROR_NETLINK, "the kernel rejected the request as invalid" },
  { NLE_NOMEM, NET_ERROR_NETLINK, "out of memory" },
  { NLE_MSGSIZE, NET_ERROR_NETLINK, "the request is too large for the kernel" },
  { NLE_AGAIN, NET_ERROR_NETLINK, "the kernel is busy; try again" },
};

static const NleText *
nle_text_find (int nle)
{
  for (guint i = 0; i < G_N_ELEMENTS (nle_texts); i++)
    if (nle_texts[i].nle == nle)
      return &nle_texts[i];
  return NULL;
}

void
net_error_set_nl (GError **error, int nle, int sys_errno, const char *extack, const char *what)
{
  const NleText *t;
  g_autofree char *generic = NULL;
  const char *text;
  NetError code = NET_ERROR_NETLINK;

  nle = ABS (nle);
  t = nle_text_find (nle);
  if (t != NULL)
    {
      code = t->code;
      text = t->text;
    }
  else if (nle == NLE_FAILURE && sys_errno != 0)
    text = generic = g_ascii_strdown (g_strerror (sys_errno), -1); /* libnl maps e.g. ELOOP here */
  else
    text = generic = g_ascii_strdown (nl_geterror (nle), -1);
  if (sys_errno == EOPNOTSUPP)
    code = NET_ERROR_UNSUPPORTED;

  if (extack != NULL && extack[0] != '\0')
    g_set_error (error, NET_ERROR, code, "%s: %s (kernel: %s)", what, text, extack);
  else
    g_set_error (error, NET_ERROR, code, "%s: %s", what, text);
}

void
net_error_from_nl (int nle, GError **error, const char *format, ...)
{
  g_autofree char *what = NULL;
  va_list args;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  net_error_set_nl (error, nle, 0, NULL, what);
}
