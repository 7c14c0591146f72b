/* The public I/O calls of otter/io.h. Each call that can block prepares one
 * SQE on the caller's scheduler ring (plus a linked timeout when it has a
 * timeout), parks the caller in ot__io_wait and returns the CQE's result;
 * the core batches the SQEs of a whole scheduler loop into one
 * io_uring_enter. The request lives on the parked caller's stack: the core
 * keeps a killed process's memory until the final CQE of its parked op.
 *
 * Timeouts: OT_INFINITY (or any ms past the clock's range) waits forever;
 * ms >= 0 links an IORING_OP_LINK_TIMEOUT behind the op (0 tries once: the
 * op is issued inline at submit, and if it would block the zero timeout
 * cancels it), and an op cancelled by it reports -ETIMEDOUT; one cancelled
 * otherwise reports -ECANCELED. When the ring has no room that the kernel
 * will take (ot__io_get_sqe: EBUSY) the call does nothing and returns
 * -EBUSY: an op is never queued without the timeout it was given. Set-up that cannot block (socket, bind, listen, close) uses
 * plain syscalls: a round trip through the ring would only add a park and a
 * CQE to a call the kernel completes inline anyway. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/io/io_priv.h"

/* A timeout longer than this (INT64_MAX ns: 292 years) is no timeout, as
 * for every other timed call. */
#define IO_NEVER_MS (INT64_MAX / 1000000)


/* The scheduler's ring calls ot__sched_hook_io_probe through a weak
 * reference, which does not pull io_probe.o out of libotter.a; this strong
 * one does, whenever I/O is used. */
__attribute__((used)) static void (*const keep_probe)(struct io_uring *, struct ot__io_features *) =
    ot__sched_hook_io_probe;

static _Atomic(ot__io_cqe_hook_fn) cqe_hook;
static _Atomic uint64_t io_stats[IOS_N];

void ot__io_set_cqe_hook(ot__io_cqe_hook_fn fn) {
    /* release pairs with the acquire load in req_cqe */
    atomic_store_explicit(&cqe_hook, fn, memory_order_release);
}

void ot__io_event(int kind, int fd, int32_t res, bool intact) {
    /* acquire pairs with the release store in ot__io_set_cqe_hook */
    ot__io_cqe_hook_fn hook = atomic_load_explicit(&cqe_hook, memory_order_acquire);
    if (hook)
        hook(kind, fd, res, intact);
}

void ot__io_stat(int which) {
    /* relaxed: statistics for tests, ordered with nothing */
    atomic_fetch_add_explicit(&io_stats[which], 1, memory_order_relaxed);
}

void ot__io_get_stats(struct ot__io_stats *o) {
    /* relaxed: statistics only, see ot__io_stat */
    o->ms_armed = atomic_load_explicit(&io_stats[IOS_MS_ARMED], memory_order_relaxed);
    o->ms_taken = atomic_load_explicit(&io_stats[IOS_MS_TAKEN], memory_order_relaxed);
    o->oneshot = atomic_load_explicit(&io_stats[IOS_ONESHOT], memory_order_relaxed);
    o->bufring_recv = atomic_load_explicit(&io_stats[IOS_BR_RECV], memory_order_relaxed);
    o->bufring_nobufs = atomic_load_explicit(&io_stats[IOS_BR_NOBUFS], memory_order_relaxed);
    o->fd_close_exit = atomic_load_explicit(&io_stats[IOS_CLOSE_EXIT], memory_order_relaxed);
    o->lsn_new = atomic_load_explicit(&io_stats[IOS_LSN_NEW], memory_order_relaxed);
    o->lsn_free = atomic_load_explicit(&io_stats[IOS_LSN_FREE], memory_order_relaxed);
}

/* Scheduler thread, outside the process: the op's only CQE (the linked
 * timeout's CQE carries user_data 0 and never reaches here). */
static bool req_cqe(struct ot__io_op *op, const struct io_uring_cqe *cqe) {
    struct io_req *rq = OT_IO_CONTAINER_OF(op, struct io_req, op);
    op->res = cqe->res;
    op->cqe_flags = cqe->flags;
    if (cqe->flags & IORING_CQE_F_BUFFER)
        ot__io_bufring_consume(rq, cqe);
    ot__io_event(OT_IO_EV_CQE, rq->fd, op->res, rq->magic == OT_IO_REQ_MAGIC);
    return true;
}

struct io_uring_sqe *ot__io_begin(struct io_req *rq, int fd, int64_t timeout_ms) {
    *rq = (struct io_req){.op = {.on_cqe = req_cqe}, .fd = fd, .magic = OT_IO_REQ_MAGIC};
    struct io_uring_sqe *sqe = ot__io_get_sqe();
    if (!sqe || timeout_ms < 0)
        return sqe;
    /* The op and its linked timeout must reach the kernel in one submission
     * (a link does not span io_uring_enter calls: a head submitted alone runs
     * without its timeout). ot__io_get_sqe flushes only when the SQ is full,
     * so if this SQE took the last slot, burn it as a NOP (user_data 0 is
     * ignored) and take one from the flushed queue. */
    struct io_uring *ring = ot__io_ring();
    if (ring && io_uring_sq_space_left(ring) == 0) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, 0);
        sqe = ot__io_get_sqe();
    }
    return sqe;
}

int32_t ot__io_finish(struct io_req *rq, struct io_uring_sqe *sqe, int64_t timeout_ms) {
    bool timed = timeout_ms >= 0 && timeout_ms <= IO_NEVER_MS;
    if (timed) {
        /* the timeout's SQE first: an op queued without the timeout it was
         * promised could wait forever */
        struct io_uring_sqe *t = ot__io_get_sqe();
        if (!t) {
            io_uring_prep_nop(sqe); /* the op's own SQE is queued: made harmless */
            io_uring_sqe_set_data64(sqe, 0);
            rq->magic = 0;
            return -EBUSY;
        }
        rq->ts.tv_sec = timeout_ms / 1000;
        rq->ts.tv_nsec = (timeout_ms % 1000) * 1000000;
        ot__io_sqe_op(sqe, &rq->op);
        sqe->flags |= IOSQE_IO_LINK;
        io_uring_prep_link_timeout(t, &rq->ts, 0);
        ot__io_sqe_link_timeout(t, &rq->op);
    } else {
        ot__io_sqe_op(sqe, &rq->op);
    }
    int32_t res = ot__io_wait(&rq->op);
    rq->magic = 0;
    /* only the op's own timeout is a timeout: any other cancellation (an
     * IORING_OP_ASYNC_CANCEL, the kernel's own) stays -ECANCELED */
    if (timed && res == -ECANCELED && rq->op.tmo_fired)
        res = -ETIMEDOUT;
    return res;
}

/* Common argument checks: 0, or the documented error. */
static int check(int fd, const void *buf, size_t n, int64_t timeout_ms) {
    if (!ot_self().v)
        return -EPERM;
    if (fd < 0)
        return -EBADF;
    if ((!buf && n > 0) || timeout_ms < OT_INFINITY)
        return -EINVAL;
    return 0;
}

static unsigned clamp_len(size_t n) {
    return n > OT_IO_MAX_LEN ? OT_IO_MAX_LEN : (unsigned)n;
}

static ssize_t recv_bufring(int fd, void *buf, size_t n, int64_t timeout_ms, int bgid) {
    struct io_req rq;
    struct io_uring_sqe *sqe = ot__io_begin(&rq, fd, timeout_ms);
    if (!sqe)
        return -errno; /* EPERM outside a process, EBUSY with no SQE */
    rq.buf = buf;
    rq.cap = n;
    io_uring_prep_recv(sqe, fd, NULL, clamp_len(n), 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = (uint16_t)bgid;
    return ot__io_finish(&rq, sqe, timeout_ms);
}

ssize_t ot_io_recv(int fd, void *buf, size_t n, int64_t timeout_ms) {
    int rc = check(fd, buf, n, timeout_ms);
    if (rc)
        return rc;
    if (n > 0 && ot__io_recv_mode() == OT_IO_RECV_BUFRING) {
        int bgid = ot__io_bufring_group();
        if (bgid >= 0) {
            ssize_t r = recv_bufring(fd, buf, n, timeout_ms, bgid);
            if (r != -ENOBUFS)
                return r;
            /* every buffer is lent out: fall through to a plain recv */
            ot__io_stat(IOS_BR_NOBUFS);
        }
    }
    struct io_req rq;
    struct io_uring_sqe *sqe = ot__io_begin(&rq, fd, timeout_ms);
    if (!sqe)
        return -errno; /* EPERM outside a process, EBUSY with no SQE */
    io_uring_prep_recv(sqe, fd, buf, clamp_len(n), 0);
    return ot__io_finish(&rq, sqe, timeout_ms);
}

ssize_t ot_io_send(int fd, const void *buf, size_t n, int64_t timeout_ms) {
    int rc = check(fd, buf, n, timeout_ms);
    if (rc)
        return rc;
    struct io_req rq;
    struct io_uring_sqe *sqe = ot__io_begin(&rq, fd, timeout_ms);
    if (!sqe)
        return -errno; /* EPERM outside a process, EBUSY with no SQE */
    /* MSG_WAITALL: like a blocking send(2), all n bytes unless an error or
     * the timeout cuts it short; MSG_NOSIGNAL: a closed peer is -EPIPE, not a
     * process-wide SIGPIPE. */
    io_uring_prep_send(sqe, fd, buf, clamp_len(n), MSG_WAITALL | MSG_NOSIGNAL);
    return ot__io_finish(&rq, sqe, timeout_ms);
}

static ssize_t rw(int op, int fd, const void *buf, size_t n, int64_t off, int64_t timeout_ms) {
    int rc = check(fd, buf, n, timeout_ms);
    if (rc)
        return rc;
    if (off < -1)
        return -EINVAL;
    struct io_req rq;
    struct io_uring_sqe *sqe = ot__io_begin(&rq, fd, timeout_ms);
    if (!sqe)
        return -errno; /* EPERM outside a process, EBUSY with no SQE */
    /* off -1: the file's own position, used and advanced (as read(2)) */
    io_uring_prep_rw(op, sqe, fd, buf, clamp_len(n), (uint64_t)off);
    return ot__io_finish(&rq, sqe, timeout_ms);
}

ssize_t ot_io_read(int fd, void *buf, size_t n, int64_t off, int64_t timeout_ms) {
    return rw(IORING_OP_READ, fd, buf, n, off, timeout_ms);
}

ssize_t ot_io_write(int fd, const void *buf, size_t n, int64_t off, int64_t timeout_ms) {
    return rw(IORING_OP_WRITE, fd, buf, n, off, timeout_ms);
}

int ot_io_connect(int fd, const struct sockaddr *sa, socklen_t len, int64_t timeout_ms) {
    int rc = check(fd, sa, len, timeout_ms);
    if (rc)
        return rc;
    if (!sa)
        return -EINVAL;
    struct io_req rq;
    struct io_uring_sqe *sqe = ot__io_begin(&rq, fd, timeout_ms);
    if (!sqe)
        return -errno; /* EPERM outside a process, EBUSY with no SQE */
    io_uring_prep_connect(sqe, fd, sa, len);
    return ot__io_finish(&rq, sqe, timeout_ms);
}

int ot_io_close(int fd) {
    if (!ot_self().v)
        return -EPERM;
    if (fd < 0)
        return -EBADF;
    /* A plain close: closing a socket does not block (no SO_LINGER here), so
     * IORING_OP_CLOSE would add a park and a CQE for the same work. */
    return ot__io_fd_close(fd);
}

/* host: NULL (any IPv4 address), a numeric IPv4/IPv6 address, or "localhost".
 * No name resolution: a DNS query would block the whole scheduler thread. */
int ot__io_resolve(const char *host, uint16_t port, struct addrinfo **out) {
    char ps[8];
    snprintf(ps, sizeof ps, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    if (!host || strcmp(host, "localhost") == 0) {
        hints.ai_family = AF_INET;
        host = host ? "127.0.0.1" : NULL;
    }
    int e = getaddrinfo(host, ps, &hints, out);
    switch (e) {
    case 0:
        return 0;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return -errno;
    case EAI_FAMILY:
        return -EAFNOSUPPORT;
    default:
        return -EINVAL; /* not a numeric address */
    }
}

static int listen_one(const struct addrinfo *ai, int backlog) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* TCP_NODELAY here is inherited by every accepted socket: one syscall
     * per listener instead of one per connection. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int ot__io_listen_fd(const char *host, uint16_t port, int backlog) {
    struct addrinfo *res;
    int rc = ot__io_resolve(host, port, &res);
    if (rc)
        return rc;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        rc = listen_one(ai, backlog > 0 ? backlog : SOMAXCONN);
        if (rc >= 0)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

int ot_io_listen_tcp(const char *host, uint16_t port, int backlog) {
    if (!ot_self().v)
        return -EPERM;
    int rc = ot__io_listen_fd(host, port, backlog);
    if (rc >= 0) {
        int err = ot__io_fd_own(rc);
        if (err < 0) {
            close(rc);
            return err;
        }
    }
    return rc;
}
