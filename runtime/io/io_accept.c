/* ot_io_accept, with multishot accept where the kernel has it (5.19+).
 *
 * An owned listener gets a small state record on its first accept. An accept
 * with an infinite timeout arms one multishot accept (IORING_ACCEPT_MULTISHOT)
 * on the caller's ring and parks on that op; its CQEs, handled by ms_cqe on
 * that ring's scheduler thread, queue accepted fds in the record, and later
 * accepts take from the queue without any SQE. IORING_CQE_F_MORE says whether
 * the multishot is still armed; once it is not, the next accept re-arms it.
 * At most one process parks on the multishot op at a time; an accept with a
 * finite timeout, a second concurrent acceptor, or one running on another
 * scheduler than the armed ring takes from the queue if it can and otherwise
 * submits a one-shot accept with a linked timeout (the two compete for the
 * next connection; a connection the multishot wins waits in the queue for the
 * next accept, it is never lost). Listeners not made by ot_io_listen_tcp, and
 * kernels without multishot accept, always use one-shot accepts.
 *
 * Lifetime: the record is reference counted (the fd table while the fd is
 * open, the armed multishot, each accept call using it) and freed at zero.
 * Fds still queued when the listener closes belong to no process and are
 * closed. A process killed while parked on the multishot op is torn down by
 * the core after the cancellation's final CQE; the call's reference is then
 * dropped by a temporary per-process resource. A one-shot accept's caller
 * killed after the kernel accepted closes the accepted fd from its exit
 * (accept_guard), so no connection is left on an fd nobody owns. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/io/io_priv.h"

struct io_lsn {
    struct ot__io_op op; /* the multishot accept */
    pthread_mutex_t mu;
    _Atomic uint32_t refs;
    int fd;
    int err;               /* an error the multishot ended with, reported once */
    struct io_uring *ring; /* where the multishot is armed */
    bool armed, closed, waiting, woken;
    int *q; /* accepted fds, a ring buffer */
    unsigned qhead, qlen, qcap;
};

/* The reference of an accept parked on the multishot op, dropped by the
 * process's exit if it never returns (killed while parked). */
struct lsn_wait {
    struct ot__res res;
    struct io_lsn *l;
};

static bool ms_cqe(struct ot__io_op *op, const struct io_uring_cqe *cqe);

struct io_lsn *ot__io_lsn_new(int fd) {
    struct io_lsn *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    pthread_mutex_init(&l->mu, NULL);
    atomic_init(&l->refs, 1);
    l->fd = fd;
    l->op.on_cqe = ms_cqe;
    ot__io_stat(IOS_LSN_NEW);
    return l;
}

void ot__io_lsn_ref(struct io_lsn *l) {
    /* relaxed: the caller already holds a reference or the table's stripe lock */
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}

static void lsn_free(struct io_lsn *l) {
    for (unsigned i = 0; i < l->qlen; i++)
        close(l->q[(l->qhead + i) % l->qcap]);
    free(l->q);
    pthread_mutex_destroy(&l->mu);
    free(l);
    ot__io_stat(IOS_LSN_FREE);
}

void ot__io_lsn_put(struct io_lsn *l) {
    /* acq_rel: the last put sees every other holder's writes before freeing */
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
        lsn_free(l);
}

void ot__io_lsn_closed(struct io_lsn *l) {
    io_lock(&l->mu);
    l->closed = true;
    io_unlock(&l->mu);
    ot__io_lsn_put(l);
}

static bool q_push(struct io_lsn *l, int fd) {
    if (l->qlen == l->qcap) {
        unsigned cap = l->qcap ? l->qcap * 2 : 16;
        int *q = malloc(cap * sizeof *q);
        if (!q)
            return false;
        for (unsigned i = 0; i < l->qlen; i++)
            q[i] = l->q[(l->qhead + i) % l->qcap];
        free(l->q);
        l->q = q, l->qcap = cap, l->qhead = 0;
    }
    l->q[(l->qhead + l->qlen++) % l->qcap] = fd;
    return true;
}

static int q_pop(struct io_lsn *l) {
    int fd = l->q[l->qhead];
    l->qhead = (l->qhead + 1) % l->qcap;
    l->qlen--;
    return fd;
}

/* On the armed ring's scheduler thread. Returns true (wake the parked
 * acceptor) once per wait, when there is an fd or the multishot ended. */
static bool ms_cqe(struct ot__io_op *op, const struct io_uring_cqe *cqe) {
    struct io_lsn *l = OT_IO_CONTAINER_OF(op, struct io_lsn, op);
    bool ended = !(cqe->flags & IORING_CQE_F_MORE);
    io_lock(&l->mu);
    if (cqe->res >= 0) {
        if (l->closed || !q_push(l, cqe->res))
            close(cqe->res);
    } else if (!l->closed && cqe->res != -ECANCELED) {
        l->err = cqe->res;
    }
    if (ended) {
        l->armed = false;
        l->ring = NULL;
    }
    bool wake = l->waiting && !l->woken && (l->qlen > 0 || ended);
    if (wake) {
        l->woken = true;
        op->res = cqe->res;
        op->cqe_flags = cqe->flags;
    }
    io_unlock(&l->mu);
    /* The armed multishot's reference: a waker still holds the waiter's
     * reference, so the core's use of op after we return true is safe. */
    if (ended)
        ot__io_lsn_put(l);
    return wake;
}

static void wait_release(struct ot__res *r, ot_pid owner) {
    (void)owner;
    struct lsn_wait *w = OT_IO_CONTAINER_OF(r, struct lsn_wait, res);
    io_lock(&w->l->mu);
    w->l->waiting = false;
    io_unlock(&w->l->mu);
    ot__io_lsn_put(w->l);
}

static int fill_peer(int fd, struct sockaddr *sa, socklen_t *len) {
    if (sa && len && getpeername(fd, sa, len) < 0)
        *len = 0; /* the peer may already have gone; the fd is still valid */
    return fd;
}

/* One multishot-served accept; -EAGAIN means "use a one-shot accept".
 * Called with a reference on l, which it consumes (or hands to the exit
 * resource while parked). */
static int ms_accept(struct io_lsn *l, struct sockaddr *sa, socklen_t *len, int64_t tmo) {
    io_lock(&l->mu);
    for (;;) {
        if (l->qlen > 0) {
            int fd = q_pop(l);
            io_unlock(&l->mu);
            ot__io_lsn_put(l);
            ot__io_stat(IOS_MS_TAKEN);
            return fill_peer(fd, sa, len);
        }
        int rc = l->closed ? -EBADF : l->err;
        l->err = 0;
        struct io_uring *ring = ot__io_ring();
        if (!rc && (tmo != OT_INFINITY || l->waiting || (l->armed && l->ring != ring)))
            rc = -EAGAIN;
        if (rc) {
            io_unlock(&l->mu);
            ot__io_lsn_put(l);
            return rc;
        }
        if (!l->armed) {
            struct io_uring_sqe *sqe = ot__io_get_sqe();
            if (!sqe) {
                int e = errno; /* EPERM outside a process, EBUSY with no SQE */
                io_unlock(&l->mu);
                ot__io_lsn_put(l);
                return -e;
            }
            io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
            ot__io_sqe_op(sqe, &l->op);
            l->armed = true;
            l->ring = ring;
            ot__io_lsn_ref(l); /* the armed multishot's */
            ot__io_stat(IOS_MS_ARMED);
        }
        /* Park on the multishot op itself: its CQEs arrive on this thread,
         * and the op is reused, so its core-private wait fields start afresh. */
        l->waiting = true;
        l->woken = false;
        l->op.waiter = NULL;
        l->op.done = 0;
        struct lsn_wait w = {.res = {.release = wait_release}, .l = l};
        bool tracked = ot__res_add(&w.res) == 0;
        io_unlock(&l->mu);
        ot__io_wait(&l->op);
        if (tracked)
            ot__res_del(&w.res);
        io_lock(&l->mu);
        l->waiting = false;
    }
}

/* A one-shot accept whose caller is killed after the kernel accepted (the
 * CQE came, and the kill is seen before the call returns, or the cancel lost
 * the race) would leave the connection on an fd nobody owns: the client
 * waits for ever. This resource, released by the exit after the op's final
 * completion, closes that fd. */
struct accept_guard {
    struct ot__res res;
    struct io_req *rq;
};

static void accept_orphaned(struct ot__res *r, ot_pid owner) {
    (void)owner;
    struct io_req *rq = OT_IO_CONTAINER_OF(r, struct accept_guard, res)->rq;
    if (rq->op.done && rq->op.res >= 0)
        close(rq->op.res);
}

static int oneshot_accept(int lfd, struct sockaddr *sa, socklen_t *len, int64_t tmo, bool ours) {
    struct io_req rq;
    struct io_uring_sqe *sqe = ot__io_begin(&rq, lfd, tmo);
    if (!sqe)
        return -errno; /* EPERM outside a process, EBUSY with no SQE */
    io_uring_prep_accept(sqe, lfd, sa, len, SOCK_CLOEXEC);
    ot__io_stat(IOS_ONESHOT);
    struct accept_guard g = {.res = {.release = accept_orphaned}, .rq = &rq};
    bool guarded = ot__res_add(&g.res) == 0;
    int fd = ot__io_finish(&rq, sqe, tmo);
    if (guarded)
        ot__res_del(&g.res);
    if (fd >= 0 && !ours) {
        /* Our listeners carry TCP_NODELAY, which accepted sockets inherit;
         * a foreign listener's may not: set it (fails harmlessly off TCP). */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

int ot__io_accept_fd(struct io_lsn *l, int lfd, struct sockaddr *sa, socklen_t *len,
                     int64_t timeout_ms) {
    int fd = l ? ms_accept(l, sa, len, timeout_ms) : -EAGAIN;
    if (fd == -EAGAIN)
        fd = oneshot_accept(lfd, sa, len, timeout_ms, l != NULL);
    return fd;
}

int ot_io_accept(int lfd, struct sockaddr *sa, socklen_t *len, int64_t timeout_ms) {
    if (!ot_self().v)
        return -EPERM;
    if (lfd < 0)
        return -EBADF;
    if ((sa && !len) || timeout_ms < OT_INFINITY)
        return -EINVAL;
    struct io_lsn *l = ot__features()->multishot_accept ? ot__io_lsn_get(lfd) : NULL;
    bool ours = l || ot__io_fd_owned(lfd);
    int fd = l ? ms_accept(l, sa, len, timeout_ms) : -EAGAIN;
    if (fd == -EAGAIN)
        fd = oneshot_accept(lfd, sa, len, timeout_ms, ours);
    if (fd >= 0) {
        int err = ot__io_fd_own(fd);
        if (err < 0) {
            close(fd);
            return err;
        }
    }
    return fd;
}
