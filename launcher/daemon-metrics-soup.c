/* daemon-metrics-soup.c: libsoup for the metrics endpoint, loaded on first use (see
 * daemon-metrics-soup.h). */
#include "launcher/daemon-metrics-soup.h"

#include <dlfcn.h>
#include <gio/gio.h>

#define METRICS_SOUP_SONAME "libsoup-3.0.so.0"

const MetricsSoup *
metrics_soup_load (GError **error)
{
  static MetricsSoup soup;
  static gboolean loaded;
  void *lib;

  if (loaded)
    return &soup;
  lib = dlopen (METRICS_SOUP_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (lib == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "cannot load %s: %s (install libsoup-3.0-0)",
                   METRICS_SOUP_SONAME, dlerror ());
      return NULL;
    }
#define LOAD(field, symbol)                                                             \
  if ((soup.field = (__typeof__ (soup.field)) dlsym (lib, #symbol)) == NULL)            \
    {                                                                                   \
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s has no %s",             \
                   METRICS_SOUP_SONAME, #symbol);                                       \
      return NULL;                                                                      \
    }
  LOAD (server_new, soup_server_new);
  LOAD (server_add_handler, soup_server_add_handler);
  LOAD (server_listen, soup_server_listen);
  LOAD (server_disconnect, soup_server_disconnect);
  LOAD (message_get_method, soup_server_message_get_method);
  LOAD (message_get_response_headers, soup_server_message_get_response_headers);
  LOAD (message_set_status, soup_server_message_set_status);
  LOAD (message_set_response, soup_server_message_set_response);
  LOAD (message_headers_append, soup_message_headers_append);
#undef LOAD
  loaded = TRUE;
  return &soup;
}
