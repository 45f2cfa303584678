/* vm-health-check.h: what a [health] probe (vm-probe.c) and the guest agent check (vm-agent.c)
 * share: each result counted against a threshold after a start period, the state (pending,
 * ok, failing) with its log line and event, the failing action, and the `status` members.
 * The owner runs the checks; this keeps the score. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "launcher/vm-config.h"
#include "launcher/vm.h"

typedef enum { VM_HEALTH_CHECK_PENDING, VM_HEALTH_CHECK_OK, VM_HEALTH_CHECK_FAILING } VmHealthCheckState;

typedef struct
{
  Vm *vm;
  const char *event;            /* the event's name: "PROBE", "AGENT" */
  char *probe;                  /* its "probe" member, or NULL */
  char *subject;                /* in logs and reasons: "probe tcp:10.0.0.2:22", "guest agent" */
  gint64 failures_max;          /* failures in a row that make it failing */
  VmProbeAction action;
  /* The start period: failures count from grace_end (monotonic us), or from the first
   * success of the run, whichever comes first. */
  gint64 grace_end;
  gboolean answered;
  /* Results. */
  VmHealthCheckState state;
  gint64 started;               /* monotonic us: when the check in flight began */
  gint64 last_time;             /* real us of the last result; 0: none yet */
  gint64 latency_us;
  guint failures;               /* in a row */
  guint64 checks;
  char *last_error;
} VmHealthCheck;

/* A check of vm for a run that started at run_started (monotonic us; 0: now).  probe
 * (nullable) and subject are copied. */
void vm_health_check_init (VmHealthCheck *c, Vm *vm, const char *event, const char *probe,
                           const char *subject, gint64 failures_max, VmProbeAction action,
                           gint64 grace_ms, gint64 run_started);
void vm_health_check_clear (VmHealthCheck *c);

/* Records the result of the check begun at c->started: the state, its log line and event,
 * and with action=restart the end of the run when it becomes failing.  Call it last: the
 * end of the run disarms the owner, which may free it. */
void vm_health_check_result (VmHealthCheck *c, gboolean ok, const char *error);

/* Sets o's members "state" ("-" when not active), "last-time", "latency-ms", "failures",
 * "checks" and "last-error"; c may be NULL (not run yet). */
void vm_health_check_describe (const VmHealthCheck *c, gboolean active, JsonObject *o);
