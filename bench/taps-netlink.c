/* taps-netlink: the vmherd side of bench/taps-30.  It prepares guest taps exactly as
 * vmherdd does for a start, through net/ (net_tap_create(): /dev/net/tun, alias, MAC, MTU,
 * enslaved while down, VLAN applied, up), and holds their file descriptors as QEMU would.
 *
 *   taps-netlink names COUNT              prints the tap names of VMs bench00.. (NIC lan)
 *   taps-netlink create BRIDGE COUNT VLAN  makes those taps on BRIDGE, access VLAN VLAN
 *                                          (0: none); prints "ready USEC" (the time spent
 *                                          from opening netlink to the last tap up), then
 *                                          waits for end of input and exits, and the taps
 *                                          go away with their last file descriptor.
 * Built by bench/Makefile against the net/ library of a build (make -C bench). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "net/net.h"

static char *
vm_name (int i)
{
  return g_strdup_printf ("bench%02d", i);
}

static int
cmd_names (int count)
{
  for (int i = 0; i < count; i++)
    {
      g_autofree char *vm = vm_name (i);
      g_autofree char *tap = net_tap_name (vm, "lan");

      printf ("%s %s\n", tap, vm);
    }
  return 0;
}

static int
cmd_create (const char *bridge, int count, int vlan)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NetLink) nl = NULL;
  gint64 start = g_get_monotonic_time ();
  char buf[64];

  nl = net_link_open (&error);
  for (int i = 0; nl != NULL && i < count; i++)
    {
      g_autofree char *vm = vm_name (i);
      g_autofree char *tap = net_tap_name (vm, "lan");
      NetTapSpec spec = { .name = tap, .vm = vm, .nic = "lan", .bridge = bridge, .queues = 1 };
      int fd;

      if (vlan > 0)
        spec.vlan = (NetVlan) { .mode = NET_VLAN_MODE_ACCESS, .pvid = (guint16) vlan };
      if (!net_tap_create (nl, &spec, &fd, &error))
        break;
      /* Kept open until exit, as QEMU holds it. */
    }
  if (error != NULL)
    {
      fprintf (stderr, "taps-netlink: %s\n", error->message);
      return 1;
    }
  printf ("ready %" G_GINT64_FORMAT "\n", g_get_monotonic_time () - start);
  fflush (stdout);
  while (read (STDIN_FILENO, buf, sizeof buf) > 0)
    ;
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc == 3 && g_str_equal (argv[1], "names"))
    return cmd_names (atoi (argv[2]));
  if (argc == 5 && g_str_equal (argv[1], "create"))
    return cmd_create (argv[2], atoi (argv[3]), atoi (argv[4]));
  fprintf (stderr, "usage: taps-netlink names COUNT | create BRIDGE COUNT VLAN\n");
  return 2;
}
