/* Socket handles and lifetime. A handle is a slot index (low 32 bits, from 1)
 * and the slot's generation (high 32 bits, never 0), so OT_NOSOCK (0) never
 * names a socket. Slots live in chunks allocated on first use and never
 * freed (type-stable, like the fd table), each with the record of its live
 * socket and its generation, both under one of 64 stripe locks.
 *
 * Invariants: a slot points at a record iff the socket is alive, and then
 * the slot holds one reference to it. Killing (ot_sock_close from any
 * process, or the owner's exit) happens once: whoever empties the slot bumps
 * its generation in the same critical section, so no later look-up through
 * an old handle succeeds; the index goes back on the free list right away.
 * The killer shuts the socket down, which ends every op parked on it (a recv,
 * a send, an accept, the armed multishot receive) and lets their references
 * go; the fd is closed by the last reference's put, so an op that still holds
 * the socket never reaches a reused fd number. A second table, indexed by fd
 * number, marks the numbers that live records hold: one fd never gets two
 * records (ot_sock_adopt of an fd already adopted is -EBUSY), which would
 * close it twice, the second time under a stranger that reused the number.
 * A record's mark is cleared just before its close, never after, so a number
 * the kernel hands out again is never found marked. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/io/sock_priv.h"

#define CHUNK_BITS 12
#define CHUNK (1u << CHUNK_BITS)
#define CHUNKS 256u /* 1M sockets */
#define STRIPES 64u

struct slot {
    struct sock *s; /* under its stripe */
    uint32_t gen;   /* under its stripe */
    uint32_t next;  /* the free list, under free_mu */
};

static _Atomic(void *) chunks[CHUNKS]; /* of struct slot */
static pthread_mutex_t stripe[STRIPES] = {[0 ... STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER};
static pthread_mutex_t free_mu = PTHREAD_MUTEX_INITIALIZER;
static uint32_t free_head; /* 0: empty; under free_mu */
static uint32_t hwm = 1;   /* next never-used index; under free_mu */
static _Atomic int64_t stats[SK_N];
static _Atomic(void *) fdmarks[CHUNKS]; /* of _Atomic uint8_t: 1 while a live record holds the fd */

void ot__sock_stat_add(int which, int64_t d) {
    /* relaxed: counters for tests, ordered with nothing */
    atomic_fetch_add_explicit(&stats[which], d, memory_order_relaxed);
}

void ot__sock_get_stats(struct ot__sock_stats *o) {
    /* relaxed: see ot__sock_stat_add */
    o->live = (uint64_t)atomic_load_explicit(&stats[SK_LIVE], memory_order_relaxed);
    o->armed = (uint64_t)atomic_load_explicit(&stats[SK_ARMED], memory_order_relaxed);
    o->pending = (uint64_t)atomic_load_explicit(&stats[SK_PENDING], memory_order_relaxed);
    o->multishot = (uint64_t)atomic_load_explicit(&stats[SK_MULTI], memory_order_relaxed);
    o->singleshot = (uint64_t)atomic_load_explicit(&stats[SK_SINGLE], memory_order_relaxed);
    o->owner_exits = (uint64_t)atomic_load_explicit(&stats[SK_EXIT], memory_order_relaxed);
}

static struct slot *slot_at(uint32_t idx, bool create) {
    if (idx == 0 || idx >= CHUNKS * CHUNK)
        return NULL;
    struct slot *c = io_chunk(&chunks[idx >> CHUNK_BITS], CHUNK, sizeof *c, create);
    return c ? &c[idx & (CHUNK - 1)] : NULL;
}

/* The mark of fd number fd, or NULL past the table (such fds are not checked). */
static _Atomic uint8_t *fd_mark(int fd, bool create) {
    if (fd < 0 || (unsigned)fd >= CHUNKS * CHUNK)
        return NULL;
    _Atomic uint8_t *c = io_chunk(&fdmarks[(unsigned)fd >> CHUNK_BITS], CHUNK, sizeof *c, create);
    return c ? &c[(unsigned)fd & (CHUNK - 1)] : NULL;
}

static bool fd_claim(int fd) {
    _Atomic uint8_t *m = fd_mark(fd, true);
    uint8_t zero = 0;
    /* relaxed: the mark guards no other memory, only the claim itself */
    return !m || atomic_compare_exchange_strong_explicit(m, &zero, 1, memory_order_relaxed,
                                                         memory_order_relaxed);
}

static void fd_unclaim(int fd) {
    _Atomic uint8_t *m = fd_mark(fd, false);
    if (m)
        atomic_store_explicit(m, 0, memory_order_relaxed); /* relaxed: see fd_claim */
}

static pthread_mutex_t *stripe_of(uint32_t idx) {
    return &stripe[idx % STRIPES];
}

/* An index with its slot, or 0 when the table is full or out of memory. */
static uint32_t idx_alloc(void) {
    io_lock(&free_mu);
    uint32_t idx = free_head;
    if (idx) {
        free_head = slot_at(idx, false)->next;
    } else if (hwm < CHUNKS * CHUNK && slot_at(hwm, true)) {
        idx = hwm++;
    }
    io_unlock(&free_mu);
    return idx;
}

static void idx_free(uint32_t idx) {
    io_lock(&free_mu);
    slot_at(idx, false)->next = free_head;
    free_head = idx;
    io_unlock(&free_mu);
}

void ot__sock_ref(struct sock *s) {
    /* relaxed: the caller already holds a reference */
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

static void sock_free(struct sock *s) {
    if (s->fd >= 0) {
        fd_unclaim(s->fd); /* before the close: see the table's comment */
        close(s->fd);
    }
    ot__sock_free_pending(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
    ot__sock_stat_add(SK_LIVE, -1);
}

void ot__sock_put(struct sock *s) {
    /* acq_rel: the last put sees every holder's writes before it frees */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        sock_free(s);
}

int ot__sock_new(int fd, struct io_lsn *lsn, ot_sock *out) {
    uint64_t self = ot_self().v;
    if (!self)
        return -EPERM;
    if (!fd_claim(fd))
        return -EBUSY; /* a live record holds this fd already */
    struct sock *s = calloc(1, sizeof *s);
    uint32_t idx = s ? idx_alloc() : 0;
    if (!idx) {
        fd_unclaim(fd);
        int rc = s ? -ENFILE : -ENOMEM;
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->refs, 1); /* the table's */
    s->fd = fd;
    s->idx = idx;
    s->lsn = lsn;
    s->mode = OT_PASSIVE;
    ot__sock_stat_add(SK_LIVE, 1);
    struct slot *sl = slot_at(idx, false);
    io_lock(stripe_of(idx));
    if (++sl->gen == 0)
        sl->gen = 1;
    s->h.v = (uint64_t)sl->gen << 32 | idx;
    sl->s = s;
    io_unlock(stripe_of(idx));
    int rc = ot__sock_own_add(s, self); /* the caller is alive: cannot fail but for memory */
    if (rc < 0) {
        fd_unclaim(fd);
        s->fd = -1; /* the caller keeps its fd */
        s->lsn = NULL;
        ot__sock_ref(s);
        ot__sock_kill(s);
        ot__sock_put(s);
        return rc;
    }
    *out = s->h;
    return 0;
}

int ot__sock_get(ot_sock h, struct sock **out) {
    uint32_t idx = (uint32_t)h.v, gen = (uint32_t)(h.v >> 32);
    struct slot *sl = gen ? slot_at(idx, false) : NULL;
    if (!sl)
        return -EBADF;
    struct sock *s = NULL;
    io_lock(stripe_of(idx));
    if (sl->gen == gen && sl->s) {
        s = sl->s;
        ot__sock_ref(s);
    }
    io_unlock(stripe_of(idx));
    if (!s)
        return -EBADF;
    *out = s;
    return 0;
}

int ot__sock_enter(ot_sock h, struct sock **out) {
    if (!ot_self().v)
        return -EPERM;
    return ot__sock_get(h, out);
}

static void call_died(struct ot__res *r, ot_pid owner) {
    (void)owner;
    ot__sock_put(OT_IO_CONTAINER_OF(r, struct sock_call, res)->s);
}

int ot__sock_call(ot_sock h, struct sock_call *c) {
    int rc = ot__sock_enter(h, &c->s);
    if (rc == 0) {
        c->res.release = call_died;
        ot__res_add(&c->res);
    }
    return rc;
}

void ot__sock_return(struct sock_call *c) {
    ot__res_del(&c->res);
    ot__sock_put(c->s);
}

bool ot__sock_kill(struct sock *s) {
    struct slot *sl = slot_at(s->idx, false);
    bool won = false;
    io_lock(stripe_of(s->idx));
    if (sl->s == s) {
        sl->s = NULL;
        if (++sl->gen == 0)
            sl->gen = 1;
        won = true;
    }
    io_unlock(stripe_of(s->idx));
    if (!won)
        return false;
    idx_free(s->idx);
    ot__sock_own_del(s);
    io_lock(&s->mu);
    s->closed = true;
    struct io_lsn *l = s->lsn;
    s->lsn = NULL;
    ot__sock_active_killed(s);
    ot__io_wq_wake_all(&s->swait); /* their sends find the socket closed */
    io_unlock(&s->mu);
    /* acquire: pairs with the puts of calls that ended, so a count of the
     * table's reference and ours means nothing else holds the socket (no
     * new reference can be taken: the slot is empty) */
    if (s->fd >= 0 && atomic_load_explicit(&s->refs, memory_order_acquire) > 2) {
        /* Ends what is parked on the socket on any ring: their requests pin
         * the file, so a close alone would leave them (and the connection)
         * waiting. A listener's multishot accept ends the same way. With
         * nothing parked the last put's close is the only one, as gen_tcp's,
         * so SO_LINGER keeps its meaning (0: a reset, not a FIN). */
        shutdown(s->fd, SHUT_RDWR);
    }
    if (l)
        ot__io_lsn_closed(l);
    ot__sock_put(s);
    return true;
}

int ot_sock_close(ot_sock h) {
    struct sock *s;
    int rc = ot__sock_enter(h, &s);
    if (rc)
        return rc;
    rc = ot__sock_kill(s) ? 0 : -EBADF;
    ot__sock_put(s);
    return rc;
}

int ot_sock_fd(ot_sock h) {
    struct sock *s;
    int rc = ot__sock_get(h, &s);
    if (rc)
        return rc;
    int fd = s->fd;
    ot__sock_put(s);
    return fd;
}

ot_pid ot_sock_owner(ot_sock h) {
    struct sock *s;
    if (ot__sock_get(h, &s)) {
        errno = EBADF;
        return OT_NOPID;
    }
    /* acquire pairs with the release store of a hand-over */
    ot_pid p = {atomic_load_explicit(&s->owner, memory_order_acquire)};
    ot__sock_put(s);
    if (!p.v)
        errno = EBADF; /* killed after the look-up */
    return p;
}

int ot_sock_adopt(int fd, ot_sock *out) {
    if (!ot_self().v)
        return -EPERM;
    if (!out)
        return -EINVAL;
    int type;
    socklen_t tl = sizeof type;
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return -EBADF;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
        return -ENOTSOCK;
    _Atomic uint8_t *m = fd_mark(fd, false);
    /* relaxed: a hint that keeps ot_io's claim; ot__sock_new's claim decides */
    if (m && atomic_load_explicit(m, memory_order_relaxed))
        return -EBUSY;
    /* an fd that ot_io handed out belongs to a process there: it moves here
     * (with its listener state), so that one table alone closes it */
    struct io_lsn *lsn = NULL;
    ot__io_fd_disown(fd, &lsn);
    int rc = ot__sock_new(fd, lsn, out);
    if (rc < 0 && lsn)
        ot__io_lsn_closed(lsn);
    return rc;
}
