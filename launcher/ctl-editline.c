/* ctl-editline.c: libedit for the QMP console, loaded on first use (see ctl-editline.h). */
#include "launcher/ctl-editline.h"

#include <dlfcn.h>
#include <gio/gio.h>

#define CTL_EDITLINE_SONAME "libedit.so.2"

const CtlEditline *
ctl_editline_load (GError **error)
{
  static CtlEditline el;
  static gboolean loaded;
  void *lib;

  if (loaded)
    return &el;
  lib = dlopen (CTL_EDITLINE_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "cannot load %s for line editing: %s (install libedit2, or pipe the commands "
                   "to `vmherd qmp NAME` instead)", CTL_EDITLINE_SONAME, dlerror ());
      return NULL;
    }
#define LOAD(symbol)                                                                    \
  if ((el.symbol = (__typeof__ (el.symbol)) dlsym (lib, #symbol)) == NULL)              \
    {                                                                                   \
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,                             \
                   "%s has no %s (a libedit with the readline interface is needed)",    \
                   CTL_EDITLINE_SONAME, #symbol);                                       \
      dlclose (lib);                                                                    \
      return NULL;                                                                      \
    }
  LOAD (readline);
  LOAD (add_history);
  LOAD (using_history);
  LOAD (read_history);
  LOAD (write_history);
  LOAD (rl_completion_matches);
  LOAD (rl_forced_update_display);
  LOAD (rl_line_buffer);
  LOAD (rl_attempted_completion_over);
  LOAD (rl_completion_append_character);
  LOAD (rl_attempted_completion_function);
  LOAD (rl_getc_function);
#undef LOAD
  loaded = TRUE;
  return &el;
}
