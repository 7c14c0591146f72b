/* Sends. Any process may send on a socket; one send (or sendv) is never
 * interleaved with another's bytes, and one process's sends reach the peer in
 * the order made. A stream socket does not promise that by itself: a send
 * the kernel cannot finish at once (the socket buffer is full) is resumed
 * later, and another send may run in between. So each socket has a send
 * turn, handed out first come first served: the holder sends everything
 * (at most 64 iovecs and the kernel's per-call cap at a time: first with a
 * send that cannot block, then, for what that left, through the ring) and
 * passes the turn on; others wait parked on their own rings (io_wq.c).
 *
 * Invariants (under the socket's mu): sbusy iff some process holds the turn
 * or has just been granted it; a holder killed while sending passes it on
 * from its exit (a per-process resource), as does a waiter killed right
 * after the grant (on_exit). A send's timeout covers its wait for the turn
 * and its sending; a timed-out or failed send may have sent a prefix. */
#include <limits.h>
#include <string.h>

#include "runtime/io/sock_priv.h"

#define SEND_IOV 64

struct holder {
    struct ot__res res;
    struct sock *s;
};

/* Under mu: the turn goes to the next waiter, or is free. */
static void pass_on(struct sock *s) {
    if (!ot__io_wq_wake_one(&s->swait))
        s->sbusy = false;
}

static void waiter_died(struct io_waiter *w) {
    pass_on(w->arg);
}

static void holder_died(struct ot__res *r, ot_pid owner) {
    (void)owner;
    struct holder *h = OT_IO_CONTAINER_OF(r, struct holder, res);
    io_lock(&h->s->mu);
    pass_on(h->s);
    io_unlock(&h->s->mu);
}

static int take_turn(struct sock *s, int64_t dl) {
    io_lock(&s->mu);
    int rc = 0;
    if (s->closed) {
        rc = -EBADF;
    } else if (!s->sbusy) {
        s->sbusy = true;
    } else {
        struct io_waiter w = {.on_exit = waiter_died, .arg = s};
        rc = ot__io_wq_wait(&s->swait, &s->mu, &w, dl);
        if (rc == 0 && s->closed) {
            pass_on(s);
            rc = -EBADF;
        }
    }
    io_unlock(&s->mu);
    return rc;
}

static void give_turn(struct sock *s) {
    io_lock(&s->mu);
    pass_on(s);
    io_unlock(&s->mu);
}

/* Holding the turn: everything in v[0..cnt) (which it consumes). */
static ssize_t send_all(struct sock *s, const struct iovec *iov, int cnt, int64_t dl) {
    size_t total = 0;
    struct iovec v[SEND_IOV];
    int i = 0;
    size_t skip = 0; /* bytes of iov[i] already sent */
    while (i < cnt) {
        int k = 0;
        for (int j = i; j < cnt && k < SEND_IOV; j++) {
            size_t off = j == i ? skip : 0;
            if (iov[j].iov_len > off)
                v[k++] = (struct iovec){(char *)iov[j].iov_base + off, iov[j].iov_len - off};
        }
        if (k == 0)
            break;
        struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)k};
        /* First a send that cannot block, right here: with room in the
         * socket's buffer (the usual case) it is all there is, with no park
         * and no trip through the ring. MSG_NOSIGNAL: a closed peer is
         * -EPIPE, never SIGPIPE. */
        ssize_t r = sendmsg(s->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if (r < 0) {
            int64_t tmo = ot__io_left(dl);
            struct io_req rq;
            struct io_uring_sqe *sqe = ot__io_begin(&rq, s->fd, tmo);
            if (!sqe)
                return -errno;
            /* MSG_WAITALL: all of it unless an error or the timeout cuts it short */
            io_uring_prep_sendmsg(sqe, s->fd, &mh, MSG_WAITALL | MSG_NOSIGNAL);
            r = ot__io_finish(&rq, sqe, tmo);
            if (r < 0)
                return r;
        }
        if (r == 0)
            return -EPIPE;
        total += (size_t)r;
        /* advance past r bytes */
        size_t left = (size_t)r;
        while (i < cnt && left >= iov[i].iov_len - skip) {
            left -= iov[i].iov_len - skip;
            skip = 0;
            i++;
        }
        skip += left;
    }
    return (ssize_t)total;
}

ssize_t ot_sock_sendv(ot_sock h, const struct iovec *iov, int iovcnt, int64_t timeout_ms) {
    struct sock_call c;
    int rc = ot__sock_call(h, &c);
    if (rc)
        return rc;
    struct sock *s = c.s;
    size_t sum = 0;
    bool bad = iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt > 0 && !iov) || timeout_ms < OT_INFINITY;
    for (int i = 0; !bad && i < iovcnt; i++) {
        bad = (!iov[i].iov_base && iov[i].iov_len) || iov[i].iov_len > (size_t)SSIZE_MAX - sum;
        sum += iov[i].iov_len;
    }
    if (bad || sum == 0) {
        ot__sock_return(&c);
        return bad ? -EINVAL : 0;
    }
    int64_t dl = ot__io_deadline(timeout_ms);
    ssize_t r = take_turn(s, dl);
    if (r == 0) {
        struct holder hd = {.res = {.release = holder_died}, .s = s};
        ot__res_add(&hd.res);
        r = send_all(s, iov, iovcnt, dl);
        ot__res_del(&hd.res);
        give_turn(s);
    }
    ot__sock_return(&c);
    return r;
}

ssize_t ot_sock_send(ot_sock h, const void *buf, size_t n, int64_t timeout_ms) {
    struct iovec v = {(void *)buf, n};
    if (!buf && n)
        return ot_self().v ? -EINVAL : -EPERM;
    return ot_sock_sendv(h, &v, 1, timeout_ms);
}
