/* Wait queues for processes that wait on another thread's say-so (a socket's
 * send turn, the end of an armed receive). The waiter parks in ot__io_wait on
 * an IORING_OP_POLL_ADD of an eventfd of its own, linked to its timeout, so it
 * is an ordinary op of its own ring: a kill cancels it and the exit waits for
 * its final completion as for any other op. The granter, on any thread,
 * stores 1 in the waiter's word and writes the eventfd; a grant that comes
 * before the poll reaches the kernel finds the eventfd readable, so none is
 * lost. The eventfd costs two system calls per wait that parks, paid only
 * under contention; IORING_OP_FUTEX_WAIT would spare them from 6.7 on. With
 * no eventfd to be had (fd limit) the waiter sleeps 1 ms at a time.
 *
 * Invariants: queue and waiters change only under the caller's mutex; a
 * waiter is on the queue iff `queued`; a granted waiter is off the queue, and
 * its eventfd is written under the mutex before the waiter can close it. The
 * waiter's memory (on its stack) stays valid while it is queued: it leaves
 * wq_wait only through the mutex, and a killed waiter is taken off (or, if it
 * had been granted, hands the grant on through on_exit) by a resource its
 * exit releases before the stack goes. */
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/io/sock_priv.h"

/* Longer than this (INT64_MAX ns) is no timeout, as for every timed call. */
#define WQ_NEVER_MS (INT64_MAX / 1000000)

int64_t ot__io_deadline(int64_t timeout_ms) {
    if (timeout_ms < 0 || timeout_ms > WQ_NEVER_MS)
        return -1;
    int64_t now = ot_now_ms();
    return timeout_ms > INT64_MAX - now ? -1 : now + timeout_ms;
}

int64_t ot__io_left(int64_t deadline) {
    if (deadline < 0)
        return OT_INFINITY;
    int64_t left = deadline - ot_now_ms();
    return left > 0 ? left : 0;
}

static void q_remove(struct io_wq *q, struct io_waiter *w) {
    struct io_waiter *prev = NULL;
    for (struct io_waiter *x = q->head; x; prev = x, x = x->next) {
        if (x != w)
            continue;
        if (prev)
            prev->next = w->next;
        else
            q->head = w->next;
        if (q->tail == w)
            q->tail = prev;
        break;
    }
    w->next = NULL;
    w->queued = false;
}

static void grant(struct io_waiter *w) {
    w->queued = false;
    w->next = NULL;
    /* release pairs with the waiter's acquire load after it relocks mu */
    atomic_store_explicit(&w->word, 1, memory_order_release);
    if (w->efd >= 0)
        eventfd_write(w->efd, 1);
}

bool ot__io_wq_wake_one(struct io_wq *q) {
    struct io_waiter *w = q->head;
    if (!w)
        return false;
    q->head = w->next;
    if (!q->head)
        q->tail = NULL;
    grant(w);
    return true;
}

void ot__io_wq_wake_all(struct io_wq *q) {
    while (ot__io_wq_wake_one(q)) {
    }
}

/* On the scheduler thread, at the waiter's exit (killed while parked). */
static void waiter_exit(struct ot__res *r, ot_pid owner) {
    (void)owner;
    struct io_waiter *w = OT_IO_CONTAINER_OF(r, struct io_waiter, res);
    io_lock(w->mu);
    if (w->queued)
        q_remove(w->q, w);
    else if (w->on_exit)
        w->on_exit(w);
    io_unlock(w->mu);
    if (w->efd >= 0)
        close(w->efd);
}

/* One park: 0 when woken (or readable at once), -ETIMEDOUT. */
static int park(struct io_waiter *w, int64_t deadline) {
    int64_t left = ot__io_left(deadline);
    if (left == 0)
        return -ETIMEDOUT;
    if (w->efd >= 0) {
        struct io_req rq;
        struct io_uring_sqe *sqe = ot__io_begin(&rq, w->efd, left);
        if (sqe) {
            io_uring_prep_poll_add(sqe, w->efd, POLLIN);
            int32_t r = ot__io_finish(&rq, sqe, left);
            return r == -ETIMEDOUT ? -ETIMEDOUT : 0;
        }
        /* no SQE to be had: sleep as without the eventfd */
    }
    ot_sleep(left < 0 || left > 1 ? 1 : left);
    return 0;
}

int ot__io_wq_wait(struct io_wq *q, pthread_mutex_t *mu, struct io_waiter *w, int64_t deadline) {
    if (!ot_self().v)
        return -EPERM;
    atomic_init(&w->word, 0);
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->next = NULL;
    w->q = q;
    w->mu = mu;
    w->queued = true;
    w->res.release = waiter_exit;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    ot__res_add(&w->res);
    int rc;
    for (;;) {
        io_unlock(mu);
        rc = park(w, deadline);
        io_lock(mu);
        /* acquire pairs with the release store in grant */
        if (atomic_load_explicit(&w->word, memory_order_acquire)) {
            rc = 0;
            break;
        }
        if (rc == -ETIMEDOUT) {
            q_remove(q, w);
            break;
        }
    }
    ot__res_del(&w->res);
    if (w->efd >= 0)
        close(w->efd);
    return rc;
}
