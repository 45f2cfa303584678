/* ctl-editline.h: libedit's readline interface for the interactive QMP console, loaded with
 * dlopen() when the console starts.  Every other vmherd command then starts without libedit
 * and the three libraries it pulls in (libtinfo, libbsd, libmd): ~0.3 ms of each command's
 * exec, a tenth of the budget of a `vmherd start` (bench/FINDINGS.md). */
#pragma once

#include <glib.h>
#include <stdio.h>
#include <editline/readline.h>

typedef struct
{
  __typeof__ (readline) *readline;
  __typeof__ (add_history) *add_history;
  __typeof__ (using_history) *using_history;
  __typeof__ (read_history) *read_history;
  __typeof__ (write_history) *write_history;
  __typeof__ (rl_completion_matches) *rl_completion_matches;
  __typeof__ (rl_forced_update_display) *rl_forced_update_display;
  /* libedit's variables, by address. */
  __typeof__ (rl_line_buffer) *rl_line_buffer;
  __typeof__ (rl_attempted_completion_over) *rl_attempted_completion_over;
  __typeof__ (rl_completion_append_character) *rl_completion_append_character;
  __typeof__ (rl_attempted_completion_function) *rl_attempted_completion_function;
  __typeof__ (rl_getc_function) *rl_getc_function;
} CtlEditline;

/* Loads libedit once; NULL with an error saying what to install when it cannot. */
const CtlEditline *ctl_editline_load (GError **error);
