/* Private interface of sockets that processes own (otter/socket.h): the
 * socket record shared by sock.c (handles and lifetime), sock_own.c (owners),
 * sock_io.c (set-up and passive reads), sock_active.c (active mode on the
 * ring), sock_send.c (serialised sends) and io_wq.c (processes parked until
 * another thread lets them go).
 *
 * Invariants: a handle names a socket while its slot's generation matches;
 * killing a socket (ot_sock_close, its owner's exit) bumps the generation
 * first, so every later call through any old handle is -EBADF. The fd stays
 * open until the last reference goes (the table's, each call in progress,
 * the armed receive), so an fd number is never reused under a call that
 * still holds the socket. Lock order: owner-map shard, then the socket's
 * mu (under which completion callbacks send messages); a handle stripe and
 * the free list are taken with nothing else held; none is held across a
 * park. */
#ifndef OT_IO_SOCK_PRIV_H
#define OT_IO_SOCK_PRIV_H

#include <otter/socket.h>

#include "runtime/io/io_priv.h"

/* ---- wait queues (io_wq.c) ---------------------------------------------------
 * A process parks on its own ring (a poll of an eventfd of its own, with a
 * linked timeout) until any thread grants it. The queue and the waiters are
 * guarded by the caller's mutex. A waiter killed while queued is taken off
 * by its exit (a per-process resource); one killed after being granted calls
 * on_exit so that what it was granted (a lock) passes on. */
struct io_waiter {
    _Atomic uint32_t word; /* 0 waiting, 1 granted */
    int efd;               /* the eventfd the waiter polls, -1 if none */
    struct io_waiter *next;
    struct io_wq *q;
    pthread_mutex_t *mu;
    struct ot__res res;
    bool queued;
    void (*on_exit)(struct io_waiter *w); /* under mu, after a granted waiter died */
    void *arg;
};
struct io_wq {
    struct io_waiter *head, *tail;
};
/* Called with mu held (through io_lock); returns with it held. 0 when
 * granted, -ETIMEDOUT at the deadline (ms on the runtime clock, -1 none),
 * -EPERM outside a process. */
int ot__io_wq_wait(struct io_wq *q, pthread_mutex_t *mu, struct io_waiter *w, int64_t deadline);
/* With mu held: grants the first waiter (false if none) or every waiter. */
bool ot__io_wq_wake_one(struct io_wq *q);
void ot__io_wq_wake_all(struct io_wq *q);
/* A timeout in ms as a deadline on ot_now_ms (-1: none); past the clock's
 * range is none. */
int64_t ot__io_deadline(int64_t timeout_ms);
/* What is left of a deadline as a timeout for a ring op (OT_INFINITY: none). */
int64_t ot__io_left(int64_t deadline);

/* ---- the socket ------------------------------------------------------------ */
#define SOCK_HDR ((uint32_t)sizeof(ot_sock_msg))
/* the header is written into the provided buffer's headroom, right before the data */
_Static_assert(sizeof(ot_sock_msg) == OT_IO_BR_HEAD, "the header must fill the headroom exactly");

struct sock_chunk {
    struct sock_chunk *next;
    uint32_t off, len; /* unread bytes at data + SOCK_HDR + off */
    char data[];       /* SOCK_HDR bytes of room for the message header, then bytes */
};

struct sock {
    pthread_mutex_t mu;
    _Atomic uint32_t refs;
    int fd;
    uint32_t idx;
    ot_sock h;
    struct io_lsn *lsn; /* a listener's multishot accept state, or NULL */
    /* ownership (sock_own.c): written under the owner shard and mu */
    _Atomic uint64_t owner;
    struct sock *onext, *oprev;
    bool closed; /* killed: the handle is dead (under mu) */
    /* active mode (sock_active.c), under mu */
    uint8_t mode;     /* enum ot_active */
    int32_t count;    /* OT_ACTIVE_N's count, > 0 while in that mode */
    bool armed;       /* a receive is in the kernel (it holds a reference) */
    bool multi;       /* ... and it is multishot */
    bool cancel_sent; /* ... and a cancel for it is on its way */
    bool flushing;    /* the owner is delivering pending chunks outside mu */
    bool rdone;       /* CLOSED was delivered: nothing more is read */
    int32_t term;     /* read that has not been delivered: 0, 1 (EOF) or -errno */
    void *ring;       /* the ring the receive is armed on */
    struct ot__io_op rop;
    struct sock_chunk *ph, *pt; /* pending data, read beyond the allowance */
    size_t pbytes;
    struct io_wq rwait; /* passive readers waiting for the armed receive to end */
    /* sends (sock_send.c), under mu */
    bool sbusy;
    struct io_wq swait;
};

/* sock.c */
int ot__sock_new(int fd, struct io_lsn *lsn, ot_sock *out); /* owned by the caller */
int ot__sock_get(ot_sock h, struct sock **out);             /* a reference, or -EBADF */
void ot__sock_ref(struct sock *s);
void ot__sock_put(struct sock *s);
/* True for the one caller that killed it; the caller holds a reference. */
bool ot__sock_kill(struct sock *s);
/* Common checks of a call by a process on a handle: 0 with a reference. */
int ot__sock_enter(ot_sock h, struct sock **out);
/* The same for a call that may park: the reference is also dropped by the
 * caller's exit if it is killed while parked (a per-process resource). */
struct sock_call {
    struct ot__res res;
    struct sock *s;
};
int ot__sock_call(ot_sock h, struct sock_call *c);
void ot__sock_return(struct sock_call *c);

/* sock_own.c */
int ot__sock_own_add(struct sock *s, uint64_t pid); /* -ESRCH: pid is not alive */
void ot__sock_own_del(struct sock *s);
void ot__sock_own_init(void);

/* sock_active.c */
void ot__sock_active_killed(struct sock *s); /* under mu, at kill */
void ot__sock_free_pending(struct sock *s);
/* Under mu: cancels the armed receive when it is on the caller's ring. */
void ot__sock_cancel_armed(struct sock *s);
/* Under mu, with pending data or a pending end: a passive read of them. */
ssize_t ot__sock_take_pending(struct sock *s, void *buf, size_t n);

/* white-box counters for tests */
struct ot__sock_stats {
    uint64_t live;        /* socket records not yet freed */
    uint64_t armed;       /* receives in the kernel */
    uint64_t pending;     /* bytes read beyond an allowance, held by sockets */
    uint64_t multishot;   /* multishot receives armed */
    uint64_t singleshot;  /* single-shot receives armed */
    uint64_t owner_exits; /* sockets closed by their owner's exit */
};
void ot__sock_get_stats(struct ot__sock_stats *out);
enum { SK_LIVE, SK_ARMED, SK_PENDING, SK_MULTI, SK_SINGLE, SK_EXIT, SK_N };
void ot__sock_stat_add(int which, int64_t d);

#endif
