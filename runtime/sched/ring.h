/* The scheduler's ring (ring.c): setup, reaping completions, sleeping and
 * cross-scheduler wakes. It is part of the scheduler's loop, so it lives in
 * runtime/sched; the I/O folder (runtime/io) builds on it through ext.h. */
#ifndef OT_RING_H
#define OT_RING_H

#include "runtime/sched/sched.h"

OT_HIDDEN int ot__ring_init(struct ot_sched *s);
OT_HIDDEN void ot__ring_fini(struct ot_sched *s);
OT_HIDDEN void ot__ring_probe(struct ot__io_features *f);
OT_HIDDEN int ot__ring_reap(struct ot_sched *s); /* handles CQEs; returns how many */
OT_HIDDEN void ot__ring_submit(struct ot_sched *s);
OT_HIDDEN void ot__ring_sleep(struct ot_sched *s, int64_t timeout_ns);
OT_HIDDEN void ot__ring_wake_remote(struct ot_sched *from, struct ot_sched *to);
OT_HIDDEN void ot__ring_drain(struct ot_sched *s);
OT_HIDDEN void ot__io_count_deferred_teardown(void);
OT_HIDDEN bool ot__io_cancel(struct ot__io_op *op); /* false: no SQE could be had */

/* hooks: called by sched, implemented by io (runtime/io/io_probe.c). The
 * start-up probe fills the I/O folder's features from tries on a scratch
 * ring. Weak, so that a static program that uses no I/O links without
 * io_probe.o (io.c pulls it in whenever I/O is used); ring.c tests it. */
void ot__sched_hook_io_probe(struct io_uring *ring, struct ot__io_features *f)
    __attribute__((weak));

#endif
