/* Active mode (gen_tcp's {active, once | N | true}) on the ring. An active
 * socket has one receive armed in the kernel: multishot (IORING_RECV_MULTISHOT)
 * for true and N above 1, single-shot for once and N 1, both selecting a
 * buffer from the scheduler's provided-buffer ring (io_bufring.c) only when data arrives, so
 * an idle socket holds no receive buffer. Its completions run rop_cqe on the
 * ring's scheduler thread, outside any process: the bytes go straight from
 * the buffer into a message to the owner (the buffer's headroom takes the
 * ot_sock_msg header) and the buffer goes back to the ring at once.
 *
 * Flow control: a data message is sent only while the socket is active (mode
 * not passive; active N's count > 0 in that mode). Delivering one takes once
 * to passive and counts N down, and at 0 goes passive with
 * OT_TAG_SOCK_PASSIVE. When the socket goes passive with a multishot still
 * armed, the callback cancels it on its own ring; what the kernel still
 * completes before the cancel lands is kept in the socket's pending queue and
 * delivered first by the next ot_sock_set_active or read by ot_sock_recv, so
 * no message ever goes beyond the allowance. The owner's explicit switch to
 * passive cancels at once when the owner runs on the armed ring; otherwise the
 * armed receive ends at its next completion (its data kept pending).
 *
 * Invariants (under the socket's mu): armed iff a receive is in the kernel,
 * which holds one reference to the socket until its final completion; a
 * message is sent to the owner read under mu, so each one goes either before
 * or after a hand-over; while pending data (or a pending end) exist, or the
 * owner is delivering them outside mu (flushing), new data joins the queue's
 * tail, so messages keep the byte order; nothing is delivered after the
 * socket is killed. */
#include <stdlib.h>
#include <string.h>

#include "runtime/io/sock_priv.h"

#define ACTIVE_MAX 32767 /* active N's count is a 16-bit signed value in OTP */

static bool rop_cqe(struct ot__io_op *op, const struct io_uring_cqe *cqe);

/* room: SOCK_HDR bytes for the header, then len bytes of data */
static void send_data(uint64_t to, ot_sock h, char *room, uint32_t len) {
    ot_sock_msg m = {.sock = h, .err = 0, .len = len};
    memcpy(room, &m, sizeof m);
    ot_send((ot_pid){to}, OT_TAG_SOCK_DATA, room, SOCK_HDR + len);
}

static void send_event(uint64_t to, ot_sock h, uint32_t tag, int32_t err) {
    ot_sock_msg m = {.sock = h, .err = err, .len = 0};
    ot_send((ot_pid){to}, tag, &m, sizeof m);
}

/* After one data message: true when the owner must also get PASSIVE. */
static bool consume(struct sock *s) {
    if (s->mode == OT_ACTIVE_ONCE) {
        s->mode = OT_PASSIVE;
    } else if (s->mode == OT_ACTIVE_N && --s->count == 0) {
        s->mode = OT_PASSIVE;
        return true;
    }
    return false;
}

static bool direct(const struct sock *s) {
    return s->mode != OT_PASSIVE && !s->ph && !s->term && !s->flushing;
}

static void pend(struct sock *s, const char *bytes, uint32_t len) {
    struct sock_chunk *c = malloc(sizeof *c + SOCK_HDR + len);
    if (!c) {
        /* the bytes are gone: the owner learns it as a read error */
        if (!s->term)
            s->term = -ENOMEM;
        return;
    }
    c->next = NULL;
    c->off = 0;
    c->len = len;
    memcpy(c->data + SOCK_HDR, bytes, len);
    if (s->pt)
        s->pt->next = c;
    else
        s->ph = c;
    s->pt = c;
    s->pbytes += len;
    ot__sock_stat_add(SK_PENDING, len);
}

void ot__sock_free_pending(struct sock *s) {
    for (struct sock_chunk *c = s->ph, *n; c; c = n) {
        n = c->next;
        ot__sock_stat_add(SK_PENDING, -(int64_t)c->len);
        free(c);
    }
    s->ph = s->pt = NULL;
    s->pbytes = 0;
}

/* Under mu: a receive on the calling scheduler's ring, from a process or from
 * a completion callback on that ring's thread. Takes a reference. */
static int arm(struct sock *s, bool from_cb) {
    int bgid = ot__io_bufring_group();
    if (bgid < 0)
        return -EOPNOTSUPP;
    struct io_uring_sqe *sqe = from_cb ? ot__io_get_sqe_cb() : ot__io_get_sqe();
    if (!sqe)
        return -errno;
    /* an allowance of one is once's: a multishot would go on reading until
     * its cancel lands, and all of that would wait in the pending queue */
    bool multi = (s->mode == OT_ACTIVE_TRUE || (s->mode == OT_ACTIVE_N && s->count > 1)) &&
                 ot__features()->recv_multishot;
    /* len 0: as much as the selected buffer holds */
    io_uring_prep_recv(sqe, s->fd, NULL, 0, 0);
    if (multi)
        sqe->ioprio |= IORING_RECV_MULTISHOT;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = (uint16_t)bgid;
    s->rop.on_cqe = rop_cqe;
    ot__io_sqe_op(sqe, &s->rop);
    ot__sock_ref(s);
    s->armed = true;
    s->multi = multi;
    s->cancel_sent = false;
    s->ring = ot__io_ring();
    ot__sock_stat_add(SK_ARMED, 1);
    ot__sock_stat_add(multi ? SK_MULTI : SK_SINGLE, 1);
    return 0;
}

/* Under mu, on the armed ring's thread: asks the kernel to end the receive. */
static void cancel_here(struct sock *s, bool from_cb) {
    struct io_uring_sqe *sqe = from_cb ? ot__io_get_sqe_cb() : ot__io_get_sqe();
    if (!sqe)
        return; /* it ends at its next completion instead */
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&s->rop, 0);
    sqe->user_data = 0;
    s->cancel_sent = true;
}

void ot__sock_cancel_armed(struct sock *s) {
    if (s->armed && !s->cancel_sent && s->ring == ot__io_ring())
        cancel_here(s, false);
}

static bool want_arm(const struct sock *s) {
    return !s->closed && s->mode != OT_PASSIVE && !s->armed && !s->rdone && !s->ph && !s->term &&
           !s->flushing;
}

/* Under mu, in the callback: data came. */
static void on_data(struct sock *s, char *room, uint32_t len) {
    if (!direct(s)) {
        pend(s, room + SOCK_HDR, len);
        return;
    }
    uint64_t to = atomic_load_explicit(&s->owner, memory_order_relaxed);
    send_data(to, s->h, room, len);
    if (consume(s))
        send_event(to, s->h, OT_TAG_SOCK_PASSIVE, 0);
}

/* Under mu, in the callback: the peer closed (res 0) or the read failed. */
static void on_end(struct sock *s, int32_t res) {
    if (!direct(s)) {
        s->term = res < 0 ? res : 1;
        return;
    }
    uint64_t to = atomic_load_explicit(&s->owner, memory_order_relaxed);
    if (res < 0)
        send_event(to, s->h, OT_TAG_SOCK_ERROR, res);
    send_event(to, s->h, OT_TAG_SOCK_CLOSED, 0);
    s->rdone = true;
}

static bool rop_cqe(struct ot__io_op *op, const struct io_uring_cqe *cqe) {
    struct sock *s = OT_IO_CONTAINER_OF(op, struct sock, rop);
    bool more = cqe->flags & IORING_CQE_F_MORE;
    int32_t res = cqe->res;
    char *room = NULL;
    unsigned bid = 0;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        room = ot__io_bufring_room(bid);
    }
    bool put = false;
    io_lock(&s->mu);
    if (!s->closed) {
        if (res > 0 && room)
            on_data(s, room, (uint32_t)res);
        else if (res == 0 || (res < 0 && res != -ECANCELED && res != -ENOBUFS))
            on_end(s, res);
    }
    if (room)
        ot__io_bufring_give(bid);
    if (!more) {
        s->armed = false;
        s->cancel_sent = false;
        ot__sock_stat_add(SK_ARMED, -1);
        /* the re-armed receive takes its own reference: ours goes */
        if (want_arm(s) && arm(s, true) < 0) {
            /* the ring takes no SQE: say so, and leave the socket passive
             * for the owner to try again */
            uint64_t to = atomic_load_explicit(&s->owner, memory_order_relaxed);
            send_event(to, s->h, OT_TAG_SOCK_ERROR, -EBUSY);
            s->mode = OT_PASSIVE;
            s->count = 0;
        }
        put = true;
        ot__io_wq_wake_all(&s->rwait);
    } else if (!s->closed && s->mode == OT_PASSIVE && !s->cancel_sent) {
        cancel_here(s, true);
    }
    io_unlock(&s->mu);
    if (put)
        ot__sock_put(s);
    return false; /* nobody parks on this op */
}

void ot__sock_active_killed(struct sock *s) {
    ot__io_wq_wake_all(&s->rwait);
}

/* Under mu, owner's process: delivers pending data, then a pending end, as
 * far as the allowance goes, sending outside mu (a send may yield). */
static void flush(struct sock *s, uint64_t self) {
    s->flushing = true;
    while (s->mode != OT_PASSIVE && !s->closed) {
        struct sock_chunk *c = s->ph;
        if (c) {
            s->ph = c->next;
            if (!s->ph)
                s->pt = NULL;
            s->pbytes -= c->len;
            ot__sock_stat_add(SK_PENDING, -(int64_t)c->len);
            bool passive = consume(s);
            io_unlock(&s->mu);
            send_data(self, s->h, c->data + c->off, c->len);
            free(c);
            if (passive)
                send_event(self, s->h, OT_TAG_SOCK_PASSIVE, 0);
            io_lock(&s->mu);
            continue;
        }
        if (s->term) {
            int32_t t = s->term;
            s->term = 0;
            s->rdone = true;
            io_unlock(&s->mu);
            if (t < 0)
                send_event(self, s->h, OT_TAG_SOCK_ERROR, t);
            send_event(self, s->h, OT_TAG_SOCK_CLOSED, 0);
            io_lock(&s->mu);
        }
        break;
    }
    s->flushing = false;
}

/* Under mu: the new mode, or -EINVAL; *passive when PASSIVE must be sent. */
static int set_mode(struct sock *s, ot_active mode, int n, bool *passive) {
    *passive = false;
    switch (mode) {
    case OT_PASSIVE:
    case OT_ACTIVE_ONCE:
    case OT_ACTIVE_TRUE:
        s->mode = (uint8_t)mode;
        s->count = 0;
        return 0;
    case OT_ACTIVE_N: {
        if (n < -ACTIVE_MAX - 1 || n > ACTIVE_MAX)
            return -EINVAL;
        int32_t sum = (s->mode == OT_ACTIVE_N ? s->count : 0) + n;
        if (sum > ACTIVE_MAX)
            return -EINVAL;
        if (sum <= 0) {
            s->mode = OT_PASSIVE;
            s->count = 0;
            *passive = true;
        } else {
            s->mode = OT_ACTIVE_N;
            s->count = sum;
        }
        return 0;
    }
    }
    return -EINVAL;
}

int ot_sock_set_active(ot_sock h, ot_active mode, int n) {
    uint64_t self = ot_self().v;
    struct sock *s;
    int rc = ot__sock_enter(h, &s);
    if (rc)
        return rc;
    if (mode != OT_PASSIVE && !ot__features()->buf_ring) {
        ot__sock_put(s);
        return -EOPNOTSUPP;
    }
    bool passive = false;
    io_lock(&s->mu);
    if (s->closed)
        rc = -EBADF;
    else if (atomic_load_explicit(&s->owner, memory_order_relaxed) != self)
        rc = -EPERM;
    else
        rc = set_mode(s, mode, n, &passive);
    if (rc == 0) {
        if (passive) {
            io_unlock(&s->mu);
            send_event(self, s->h, OT_TAG_SOCK_PASSIVE, 0);
            io_lock(&s->mu);
        }
        flush(s, self);
        if (want_arm(s)) {
            rc = arm(s, false);
            if (rc < 0) {
                s->mode = OT_PASSIVE;
                s->count = 0;
            }
        } else if (s->mode == OT_PASSIVE) {
            ot__sock_cancel_armed(s);
        }
    }
    io_unlock(&s->mu);
    ot__sock_put(s);
    return rc;
}

ssize_t ot__sock_take_pending(struct sock *s, void *buf, size_t n) {
    size_t got = 0;
    while (s->ph && got < n) {
        struct sock_chunk *c = s->ph;
        size_t k = n - got < c->len ? n - got : c->len;
        memcpy((char *)buf + got, c->data + SOCK_HDR + c->off, k);
        got += k;
        c->off += (uint32_t)k;
        c->len -= (uint32_t)k;
        s->pbytes -= k;
        ot__sock_stat_add(SK_PENDING, -(int64_t)k);
        if (c->len == 0) {
            s->ph = c->next;
            if (!s->ph)
                s->pt = NULL;
            free(c);
        }
    }
    if (got || !s->term)
        return (ssize_t)got;
    int32_t t = s->term;
    s->term = 0; /* an end is read once; the kernel answers the next read */
    return t < 0 ? t : 0;
}
