/* The scheduler's ring (ring.c): setup, reaping completions, sleeping and
 * cross-scheduler wakes; the calls sched.c and proc.c make into the I/O folder. */
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

#endif
