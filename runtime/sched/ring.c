/* Each scheduler's io_uring (ARCHITECTURE 1, 10), behind a narrow interface:
 * set-up with the best flags the kernel takes, one submit per scheduler loop,
 * completion dispatch to ops (ext.h), sleeping until a deadline, and waking
 * another scheduler. The ring is created on its own scheduler thread, because
 * IORING_SETUP_SINGLE_ISSUER ties it to the creating task. user_data 0 is
 * ignored (cancellations, the sender's half of MSG_RING, burnt NOPs);
 * UD_EVFD is the read armed on the scheduler's eventfd (foreign threads' and
 * the fallback's wake-ups); UD_WAKE is a MSG_RING wake from a scheduler; an
 * op's address with UD_TMO set is that op's linked timeout, whose CQE the op
 * waits for as well, so the kernel is done with the op when it completes and
 * the op knows whether the timeout fired (-ECANCELED from a kill or a cancel
 * is not a timeout). */
#include "runtime/sched/ring.h"

#include <poll.h>

#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define UD_EVFD 1u
#define UD_WAKE 2u
#define UD_TMO 1u /* tag bit on an op's address: the op's linked timeout */

static int setup(struct io_uring *ring, unsigned entries, unsigned flags) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags;
    return io_uring_queue_init_params(entries, ring, &p);
}

static bool msg_ring_works(void) {
    struct io_uring a, b;
    if (setup(&a, 4, 0) < 0)
        return false;
    if (setup(&b, 4, 0) < 0) {
        io_uring_queue_exit(&a);
        return false;
    }
    bool ok = false;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&a);
    io_uring_prep_msg_ring(sqe, b.ring_fd, 7, 0x55, 0);
    sqe->user_data = 1;
    if (io_uring_submit(&a) == 1) {
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe(&a, &cqe) == 0) {
            ok = cqe->res == 0;
            io_uring_cqe_seen(&a, cqe);
        }
        struct __kernel_timespec ts = {0, 10000000};
        if (ok && io_uring_wait_cqe_timeout(&b, &cqe, &ts) == 0) {
            ok = cqe->user_data == 0x55 && cqe->res == 7;
            io_uring_cqe_seen(&b, cqe);
        } else {
            ok = false;
        }
    }
    io_uring_queue_exit(&a);
    io_uring_queue_exit(&b);
    return ok;
}

void ot__ring_probe(struct ot__io_features *f) {
    struct io_uring r;
    memset(f, 0, sizeof *f);
    if (ot__rt.valgrind) {
        /* plain rings, whose fd polls readable as soon as a CQE is posted
         * (with DEFER_TASKRUN, completions wait for our own enter) */
    } else if (setup(&r, 8, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN) == 0) {
        f->single_issuer = f->defer_taskrun = true;
        io_uring_queue_exit(&r);
    } else if (setup(&r, 8, IORING_SETUP_SINGLE_ISSUER) == 0) {
        f->single_issuer = true;
        io_uring_queue_exit(&r);
    }
    f->msg_ring = msg_ring_works();
    if (setup(&r, 8, 0) == 0) {
        if (ot__sched_hook_io_probe)
            ot__sched_hook_io_probe(&r, f);
        io_uring_queue_exit(&r);
    }
}

/* ot__io_test_refuse_sqes: requests to let through, then requests to refuse */
static _Atomic unsigned refuse_skip, refuse_n;

void ot__io_test_refuse_sqes(unsigned skip, unsigned n) {
    atomic_store_explicit(&refuse_skip, skip, memory_order_relaxed);
    atomic_store_explicit(&refuse_n, n, memory_order_release);
}

static __attribute__((noinline, cold)) bool refused(void) {
    unsigned k = atomic_load_explicit(&refuse_skip, memory_order_relaxed);
    while (k && !atomic_compare_exchange_weak_explicit(&refuse_skip, &k, k - 1,
                                                       memory_order_relaxed, memory_order_relaxed)) {
    }
    if (k)
        return false;
    unsigned n = atomic_load_explicit(&refuse_n, memory_order_relaxed);
    while (n && !atomic_compare_exchange_weak_explicit(&refuse_n, &n, n - 1, memory_order_relaxed,
                                                       memory_order_relaxed)) {
    }
    return n != 0;
}

/* An SQE of s's ring; a full SQ is submitted first. NULL only if the kernel
 * took none of it. */
static struct io_uring_sqe *ring_sqe(struct ot_sched *s) {
    if (unlikely(atomic_load_explicit(&refuse_n, memory_order_relaxed)) && refused())
        return NULL;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        io_uring_submit(&s->ring);
        s->pending_sqes = 0;
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

static void arm_evfd(struct ot_sched *s) {
    struct io_uring_sqe *sqe = ring_sqe(s);
    s->evfd_unarmed = !sqe; /* no SQE: ot__ring_submit tries again */
    if (!sqe)
        return;
    io_uring_prep_read(sqe, s->evfd, &s->evbuf, sizeof s->evbuf, 0);
    sqe->user_data = UD_EVFD;
    s->pending_sqes++;
}

int ot__ring_init(struct ot_sched *s) {
    unsigned entries = ot__rt.cfg.ring_entries ? ot__rt.cfg.ring_entries : 256;
    unsigned flags = 0;
    if (ot__rt.feat.single_issuer)
        flags |= IORING_SETUP_SINGLE_ISSUER;
    /* TASKRUN_FLAG (5.19, so present wherever DEFER_TASKRUN is): the kernel
     * sets IORING_SQ_TASKRUN while deferred completions wait for us, which
     * lets ot__ring_submit skip io_uring_enter when there is nothing to do. */
    if (ot__rt.feat.defer_taskrun)
        flags |= IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    int rc = setup(&s->ring, entries, flags);
    if (rc < 0 && flags)
        rc = setup(&s->ring, entries, 0);
    if (rc < 0)
        return rc;
    s->ring_ok = true;
    /* Every enter is made by this thread: a registered ring fd spares the
     * kernel an fget/fput per io_uring_enter. Optional (5.18). */
    (void)io_uring_register_ring_fd(&s->ring);
    /* blocking on purpose: io_uring honours O_NONBLOCK with -EAGAIN */
    s->evfd = eventfd(0, EFD_CLOEXEC);
    if (s->evfd < 0)
        return -errno;
    arm_evfd(s);
    io_uring_submit(&s->ring);
    s->pending_sqes = 0;
    return 0;
}

void ot__ring_fini(struct ot_sched *s) {
    if (s->ring_ok)
        io_uring_queue_exit(&s->ring);
    s->ring_ok = false;
    if (s->evfd >= 0)
        close(s->evfd);
    s->evfd = -1;
}

/* With DEFER_TASKRUN, completions that the kernel produced outside our own
 * io_uring_enter (a socket became readable, a timeout fired) wait as task
 * work until we enter again. With TASKRUN_FLAG the kernel says so in the SQ
 * flags (set when that work list becomes non-empty, cleared when we run it,
 * set again if some is left), so a loop with nothing to submit enters only
 * when there is work: the idle spin polls a word instead of making a syscall
 * per turn. CQ_OVERFLOW: CQEs parked in the kernel need an enter to flush. */
static bool ring_has_deferred(const struct ot_sched *s) {
    if (!(s->ring.flags & IORING_SETUP_TASKRUN_FLAG))
        return true;
    return IO_URING_READ_ONCE(*s->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW);
}

void ot__ring_submit(struct ot_sched *s) {
    if (unlikely(s->evfd_unarmed))
        arm_evfd(s);
    if (ot__rt.feat.defer_taskrun && s->inflight) {
        if (s->pending_sqes || ring_has_deferred(s))
            io_uring_submit_and_get_events(&s->ring);
    } else if (s->pending_sqes) {
        io_uring_submit(&s->ring);
    }
    s->pending_sqes = 0;
}

static void finish_op(struct ot__io_op *op) {
    if (!op->done) {
        op->done = 1;
        if (op->waiter)
            ot__wake(op->waiter);
    }
}

static void complete_op(struct ot_sched *s, struct ot__io_op *op, const struct io_uring_cqe *cqe) {
    bool done;
    if (op->on_cqe) {
        done = op->on_cqe(op, cqe);
    } else {
        op->res = cqe->res;
        op->cqe_flags = cqe->flags;
        done = true;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE) && s->inflight)
        s->inflight--;
    if (done) {
        op->main_done = 1;
        if (!op->tmo_pending) /* else the timeout's CQE completes it */
            finish_op(op);
    }
}

/* The CQE of an op's linked timeout (user_data: the op, tagged UD_TMO). */
static void complete_tmo(struct ot_sched *s, struct ot__io_op *op, const struct io_uring_cqe *cqe) {
    op->tmo_fired = cqe->res == -ETIME;
    op->tmo_pending = 0;
    if (s->inflight)
        s->inflight--;
    if (op->main_done)
        finish_op(op);
}

int ot__ring_reap(struct ot_sched *s) {
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    bool rearm = false;
    io_uring_for_each_cqe(&s->ring, head, cqe) {
        uint64_t ud = cqe->user_data;
        n++;
        if (ud == 0 || ud == UD_WAKE)
            continue;
        if (ud == UD_EVFD) {
            rearm = true;
            continue;
        }
        if (ud & UD_TMO)
            complete_tmo(s, (struct ot__io_op *)(uintptr_t)(ud & ~(uint64_t)UD_TMO), cqe);
        else
            complete_op(s, (struct ot__io_op *)(uintptr_t)ud, cqe);
    }
    if (n)
        io_uring_cq_advance(&s->ring, n);
    if (rearm)
        arm_evfd(s);
    return (int)n;
}

void ot__ring_sleep(struct ot_sched *s, int64_t timeout_ns) {
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts, *tsp = NULL;
    if (unlikely(s->evfd_unarmed))
        arm_evfd(s);
    if (unlikely(s->evfd_unarmed) && (timeout_ns < 0 || timeout_ns > 1000000))
        timeout_ns = 1000000; /* deaf to eventfd wakes: look again soon */
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    s->pending_sqes = 0;
    if (unlikely(ot__rt.valgrind)) {
        /* valgrind runs one thread at a time and does not know that
         * io_uring_enter may block: a scheduler waiting in it would keep
         * every other thread, its wakers included, from running. ppoll on
         * the ring's fd is a wait valgrind lets go of the lock for. */
        io_uring_submit(&s->ring);
        if (!io_uring_cq_ready(&s->ring)) {
            struct pollfd pfd = {.fd = s->ring.ring_fd, .events = POLLIN};
            struct timespec pts = {ts.tv_sec, ts.tv_nsec};
            ppoll(&pfd, 1, tsp ? &pts : NULL, NULL);
        }
        ot__ring_reap(s);
        return;
    }
    int rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, tsp, NULL);
    (void)rc;
    ot__ring_reap(s);
}

void ot__ring_wake_remote(struct ot_sched *from, struct ot_sched *to) {
    if (from && from->ring_ok && ot__rt.feat.msg_ring && ot__sched_get() == from) {
        struct io_uring_sqe *sqe = ring_sqe(from);
        if (sqe) {
            io_uring_prep_msg_ring(sqe, to->ring.ring_fd, 0, UD_WAKE, 0);
            sqe->user_data = 0;
            io_uring_submit(&from->ring);
            from->pending_sqes = 0;
            return;
        }
    }
    eventfd_write(to->evfd, 1);
}

/* ---- the op interface of ext.h ------------------------------------------------ */

/* An SQE on s's ring with user_data 0, counted for the next submit; NULL
 * with errno EBUSY when the kernel takes none. */
static struct io_uring_sqe *take_sqe(struct ot_sched *s) {
    struct io_uring_sqe *sqe = ring_sqe(s);
    if (sqe) {
        io_uring_sqe_set_data64(sqe, 0);
        s->pending_sqes++;
    } else {
        errno = EBUSY;
    }
    return sqe;
}

struct io_uring_sqe *ot__io_get_sqe(void) {
    struct ot_sched *s = ot__sched_get();
    if (!s || !s->in_process) {
        errno = EPERM;
        return NULL;
    }
    return take_sqe(s);
}

void ot__io_sqe_op(struct io_uring_sqe *sqe, struct ot__io_op *op) {
    struct ot_sched *s = ot__sched_get();
    op->done = 0;
    op->main_done = 0;
    op->tmo_pending = 0;
    op->tmo_fired = 0;
    op->ring_owner = s;
    op->waiter = NULL;
    io_uring_sqe_set_data(sqe, op);
    s->inflight++;
}

void ot__io_sqe_link_timeout(struct io_uring_sqe *sqe, struct ot__io_op *op) {
    struct ot_sched *s = ot__sched_get();
    /* ops are at least 8-byte aligned: the low bit is free for the tag */
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | UD_TMO);
    op->tmo_pending = 1;
    s->inflight++;
}

struct io_uring_sqe *ot__io_get_sqe_cb(void) {
    struct ot_sched *s = ot__sched_get();
    if (!s || !s->ring_ok) {
        errno = EPERM;
        return NULL;
    }
    return take_sqe(s);
}

struct io_uring *ot__io_ring(void) {
    struct ot_sched *s = ot__sched_get();
    return s ? &s->ring : NULL;
}

const struct ot__io_features *ot__features(void) {
    return &ot__rt.feat;
}

/* Cancels op on the caller's ring (the op's own: ot__io_wait keeps the
 * process on that scheduler while the op is in flight); false when no SQE
 * could be had, and the caller tries again later (ot__exit_current). */
bool ot__io_cancel(struct ot__io_op *op) {
    struct ot_sched *s = ot__sched_get();
    struct io_uring_sqe *sqe = ring_sqe(s);
    if (!sqe)
        return false;
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    sqe->user_data = 0;
    s->pending_sqes++;
    return true;
}

/* At stop, after every process is gone: ops that outlive their processes
 * (a listener's multishot accept) are cancelled, and their final completions
 * reaped, so their callbacks free what they own before the ring goes. */
void ot__ring_drain(struct ot_sched *s) {
    if (!s->ring_ok)
        return;
    /* The registration belongs to this thread: undone here, not by
     * io_uring_queue_exit on the stopping thread (whose own registered
     * slot of the same index it would drop). */
    if (s->ring.enter_ring_fd != s->ring.ring_fd)
        io_uring_unregister_ring_fd(&s->ring);
    if (!s->inflight)
        return;
    struct io_uring_sqe *sqe = ring_sqe(s);
    if (sqe) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        sqe->user_data = 0;
    }
    for (int i = 0; i < 200 && s->inflight; i++) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {0, 5000000};
        io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
        ot__ring_reap(s);
    }
}

static _Atomic uint64_t deferred_teardowns;
void ot__io_count_deferred_teardown(void) {
    atomic_fetch_add_explicit(&deferred_teardowns, 1, memory_order_relaxed);
}
uint64_t ot__io_deferred_teardowns(void) {
    return atomic_load_explicit(&deferred_teardowns, memory_order_relaxed);
}
