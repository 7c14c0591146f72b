/* The runtime's base header: what every folder's private header starts
 * from (build macros, and the forward declarations of the records the
 * scheduler, process, timer and I/O folders point at each other with). The
 * records themselves live with their folder: runtime/timer/timer.h (timers,
 * the wheel), runtime/sched/sched.h (stacks, schedulers, the runtime),
 * runtime/proc/proc.h (envelopes, process records, critical sections),
 * runtime/sched/ring.h (the scheduler's ring). Folders include only their
 * own and lower folders' headers (alloc < timer < sched < proc < io < debug,
 * make check-layers), and call up through the hooks each lower header
 * declares; docs/ARCHITECTURE.md (layers) lists the hooks and the upward
 * includes not yet broken.
 *
 * Invariants kept across the runtime:
 * - A process record lives in its process-table slot for the life of the
 *   runtime (type-stable memory): other threads may read a slot's atomics
 *   at any time; a pid whose generation differs from the slot's is dead.
 * - A slot's mailbox queue is never reinitialised: a late sender may push an
 *   envelope addressed to a dead pid into it; receivers drop envelopes whose
 *   `to` is not their own pid.
 * - Signals that need an answer when the target is dead (link, monitor) are
 *   pushed under the slot's lock while the target is alive; the exit path takes
 *   the same lock to mark the process dead, then drains them.
 * - A process is in at most one run queue, and only a successful CAS of its
 *   state to RUNNABLE puts it there. */
#ifndef OT_CORE_H
#define OT_CORE_H

#include <otter.h>
#include <pthread.h>
#include <stdatomic.h>
#include <liburing.h>
#include <setjmp.h>
#include <sys/mman.h>

/* madvise advice newer than some libc headers: populating (5.14) and guard
 * regions (6.13); each use has a fallback for kernels without them. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#include "runtime/ext.h"

#define OT_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define OT_CACHELINE 64
#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

struct env;
struct stack;
struct ot_proc;
struct ot_sched;
struct ot_timer;
struct ot_wheel;
struct ot__io_op;

#endif
