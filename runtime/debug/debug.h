/* The debug folder's private header. Debug is the top of the runtime's
 * layers: it reads the records of every folder below (process table,
 * schedulers, stacks), and the lower folders reach it only through the hooks
 * they declare: sched.h's ot__sched_hook_symbolize (symbols.c, for fault
 * reports) and proc.h's ot__proc_hook_crash_report (log.c) and
 * ot__proc_hook_where (dump.c). */
#ifndef OT_DEBUG_H
#define OT_DEBUG_H

#include "runtime/proc/proc.h"

#endif
