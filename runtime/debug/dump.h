/* The dump's private interface (dump.c): the frames of a switched-out
 * process and the name of where it is, used by ot_process_info and ot_dump. */
#ifndef OT_DEBUG_DUMP_H
#define OT_DEBUG_DUMP_H

#include "runtime/core.h"

/* Return addresses of p's frames, innermost first (the first is where its
 * context switch returns to), at most max; 0 unless p is switched out on a
 * stack of its own. Every read stays inside p's stack: a process that runs
 * meanwhile gives a wrong trace, never a fault. */
OT_HIDDEN size_t ot__proc_frames(struct ot_proc *p, uintptr_t *pcs, size_t max);

#endif
