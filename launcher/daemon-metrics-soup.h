/* daemon-metrics-soup.h: the libsoup calls of daemon-metrics.c, loaded with dlopen() when
 * metrics-listen is set.  Without it vmherdd never maps libsoup and the 13 libraries it pulls
 * in (Kerberos, SQLite, nghttp2, brotli, libpsl...): ~1.5 MB of RSS, a sixth of the 8 MiB
 * budget with 30 guests (bench/FINDINGS.md). */
#pragma once

#include <glib.h>
#include <libsoup/soup.h>

typedef struct
{
  __typeof__ (soup_server_new) *server_new;
  __typeof__ (soup_server_add_handler) *server_add_handler;
  __typeof__ (soup_server_listen) *server_listen;
  __typeof__ (soup_server_disconnect) *server_disconnect;
  __typeof__ (soup_server_message_get_method) *message_get_method;
  __typeof__ (soup_server_message_get_response_headers) *message_get_response_headers;
  __typeof__ (soup_server_message_set_status) *message_set_status;
  __typeof__ (soup_server_message_set_response) *message_set_response;
  __typeof__ (soup_message_headers_append) *message_headers_append;
} MetricsSoup;

/* Loads libsoup once (never unloaded: it registers GTypes); NULL with an error saying what
 * to install when it cannot. */
const MetricsSoup *metrics_soup_load (GError **error);
