/* File-descriptor ownership for process I/O. Every fd that ot_io hands out
 * (listeners, accepted sockets) belongs to the calling process and is closed
 * when that process exits, unless ot_io_close came first; it is closed
 * exactly once either way.
 *
 * Layout: a global table indexed by fd (two levels, chunks allocated on
 * first use, never freed) holds, per fd, the node of its current owner and
 * the listener state if any. Each owning process has one context, found by
 * pid (thread-local cache, then a sharded map), registered once as an
 * ot__res and holding a list of the nodes it created.
 *
 * Invariants: a node is live iff its table slot points at it. Whoever CASes
 * the slot from the node to NULL closes the fd (an explicit close from any
 * process, or the owner's exit), and does not touch the node afterwards, so
 * closers never race with the owner freeing it. Only the owner frees nodes:
 * dead ones in an amortised sweep when its list has doubled since the last
 * sweep (O(1) per fd), the rest at exit. The listener pointer of a slot is
 * read and swapped only under the slot's stripe lock, which is what makes
 * taking a reference on it safe against a concurrent close. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/io/io_priv.h"

#define FD_CHUNK_BITS 12
#define FD_CHUNK (1u << FD_CHUNK_BITS)
#define FD_CHUNKS 256u /* 1M fds: the kernel's default nr_open */
#define CTX_SHARDS 64u
#define FD_STRIPES 64u

struct io_fd {
    struct io_fd *next;
    int fd;
};

struct fd_slot {
    _Atomic(struct io_fd *) node;
    struct io_lsn *lsn; /* under fd_stripe[fd % FD_STRIPES] */
};

struct io_ctx {
    struct ot__res res;
    uint64_t pid;
    struct io_ctx *hnext;
    struct io_fd *fds;
    size_t n, sweep_at;
};

static _Atomic(void *) fd_chunks[FD_CHUNKS]; /* of struct fd_slot */
static pthread_mutex_t fd_stripe[FD_STRIPES] = {[0 ... FD_STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER};
static struct {
    pthread_mutex_t mu;
    struct io_ctx *head;
} ctx_map[CTX_SHARDS] = {[0 ... CTX_SHARDS - 1] = {PTHREAD_MUTEX_INITIALIZER, NULL}};
static __thread struct {
    uint64_t pid;
    struct io_ctx *ctx;
} tl_ctx;

/* The slot of fd, allocating its chunk when create is set; NULL past the table. */
static struct fd_slot *fd_slot(int fd, bool create) {
    if (fd < 0 || (unsigned)fd >= FD_CHUNKS * FD_CHUNK)
        return NULL;
    struct fd_slot *c =
        io_chunk(&fd_chunks[(unsigned)fd >> FD_CHUNK_BITS], FD_CHUNK, sizeof *c, create);
    return c ? &c[(unsigned)fd & (FD_CHUNK - 1)] : NULL;
}

static unsigned ctx_shard(uint64_t pid) {
    return (unsigned)((pid * 0x9e3779b97f4a7c15ull) >> 58) & (CTX_SHARDS - 1);
}

static void ctx_unmap(struct io_ctx *c) {
    unsigned s = ctx_shard(c->pid);
    io_lock(&ctx_map[s].mu);
    for (struct io_ctx **pp = &ctx_map[s].head; *pp; pp = &(*pp)->hnext) {
        if (*pp == c) {
            *pp = c->hnext;
            break;
        }
    }
    io_unlock(&ctx_map[s].mu);
}

/* Closes an fd whose slot the caller just emptied: a listener is shut down
 * first, which ends accepts parked on any ring (a plain close would not: a
 * pending io_uring request holds its own reference to the file). */
static int close_won(int fd, struct fd_slot *sl) {
    pthread_mutex_t *mu = &fd_stripe[(unsigned)fd % FD_STRIPES];
    io_lock(mu);
    struct io_lsn *l = sl->lsn;
    sl->lsn = NULL;
    io_unlock(mu);
    /* Every owned fd is a socket. Shutting it down wakes recvs that other
     * processes have parked on it (their requests pin the file, so close
     * alone would leave the connection open until they complete). */
    shutdown(fd, SHUT_RDWR);
    int rc = close(fd) < 0 ? -errno : 0;
    if (l)
        ot__io_lsn_closed(l);
    return rc;
}

static void ctx_release(struct ot__res *r, ot_pid owner) {
    (void)owner;
    struct io_ctx *c = OT_IO_CONTAINER_OF(r, struct io_ctx, res);
    ctx_unmap(c);
    if (tl_ctx.ctx == c)
        tl_ctx.pid = 0, tl_ctx.ctx = NULL;
    for (struct io_fd *n = c->fds, *next; n; n = next) {
        next = n->next;
        struct fd_slot *sl = fd_slot(n->fd, false);
        struct io_fd *expect = n;
        /* acq_rel pairs with the release store in ot__io_fd_own and with a
         * concurrent closer's CAS: exactly one of us wins */
        if (sl && atomic_compare_exchange_strong_explicit(
                      &sl->node, &expect, NULL, memory_order_acq_rel, memory_order_acquire)) {
            close_won(n->fd, sl);
            ot__io_stat(IOS_CLOSE_EXIT);
            ot__io_event(OT_IO_EV_EXIT_CLOSE, n->fd, 0, true);
        }
        free(n);
    }
    free(c);
}

/* The caller's context, created (and registered for release at exit) on first use. */
static struct io_ctx *ctx_self(void) {
    uint64_t pid = ot_self().v;
    if (!pid)
        return NULL;
    if (tl_ctx.pid == pid)
        return tl_ctx.ctx;
    unsigned s = ctx_shard(pid);
    struct io_ctx *c;
    io_lock(&ctx_map[s].mu);
    for (c = ctx_map[s].head; c && c->pid != pid; c = c->hnext)
        ;
    io_unlock(&ctx_map[s].mu);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return NULL;
        c->pid = pid;
        c->sweep_at = 16;
        c->res.release = ctx_release;
        if (ot__res_add(&c->res) < 0) {
            free(c);
            return NULL;
        }
        /* only this process inserts its own pid: no duplicate can appear */
        io_lock(&ctx_map[s].mu);
        c->hnext = ctx_map[s].head;
        ctx_map[s].head = c;
        io_unlock(&ctx_map[s].mu);
    }
    tl_ctx.pid = pid;
    tl_ctx.ctx = c;
    return c;
}

/* Frees the nodes whose fds were closed since (their slots moved on). */
static void ctx_sweep(struct io_ctx *c) {
    size_t live = 0;
    for (struct io_fd **pp = &c->fds; *pp;) {
        struct io_fd *n = *pp;
        struct fd_slot *sl = fd_slot(n->fd, false);
        /* acquire pairs with the closer's CAS; a stale read only delays the free */
        if (sl && atomic_load_explicit(&sl->node, memory_order_acquire) == n) {
            live++;
            pp = &n->next;
        } else {
            *pp = n->next;
            free(n);
        }
    }
    c->n = live;
    c->sweep_at = live * 2 > 16 ? live * 2 : 16;
}

int ot__io_fd_own(int fd) {
    struct io_ctx *c = ctx_self();
    if (!c)
        return ot_self().v ? -ENOMEM : -EPERM;
    struct fd_slot *sl = fd_slot(fd, true);
    if (!sl)
        return fd < 0 ? -EBADF : -ENOMEM;
    if (c->n >= c->sweep_at)
        ctx_sweep(c);
    struct io_fd *n = malloc(sizeof *n);
    if (!n)
        return -ENOMEM;
    n->fd = fd;
    n->next = c->fds;
    c->fds = n;
    c->n++;
    /* release publishes the node to closers, pairs with their acquire loads/CAS */
    atomic_store_explicit(&sl->node, n, memory_order_release);
    return 0;
}

bool ot__io_fd_owned(int fd) {
    struct fd_slot *sl = fd_slot(fd, false);
    /* acquire pairs with the release store in ot__io_fd_own */
    return sl && atomic_load_explicit(&sl->node, memory_order_acquire) != NULL;
}

int ot__io_fd_close(int fd) {
    struct fd_slot *sl = fd_slot(fd, false);
    if (sl) {
        /* acquire pairs with the release store in ot__io_fd_own */
        struct io_fd *n = atomic_load_explicit(&sl->node, memory_order_acquire);
        while (n) {
            /* acq_rel: the winner of this CAS (us, or the owner's exit) closes */
            if (atomic_compare_exchange_weak_explicit(&sl->node, &n, NULL, memory_order_acq_rel,
                                                      memory_order_acquire))
                return close_won(fd, sl);
        }
    }
    /* Not ours: the caller's own fd (a socket it made, a file it opened). */
    return close(fd) < 0 ? -errno : 0;
}

bool ot__io_fd_disown(int fd, struct io_lsn **lsn) {
    *lsn = NULL;
    struct fd_slot *sl = fd_slot(fd, false);
    if (!sl)
        return false;
    /* acquire pairs with the release store in ot__io_fd_own */
    struct io_fd *n = atomic_load_explicit(&sl->node, memory_order_acquire);
    while (n) {
        /* acq_rel: as a closer's CAS; the winner takes the listener state */
        if (atomic_compare_exchange_weak_explicit(&sl->node, &n, NULL, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            pthread_mutex_t *mu = &fd_stripe[(unsigned)fd % FD_STRIPES];
            io_lock(mu);
            *lsn = sl->lsn;
            sl->lsn = NULL;
            io_unlock(mu);
            return true;
        }
    }
    return false;
}

struct io_lsn *ot__io_lsn_get(int fd) {
    struct fd_slot *sl = fd_slot(fd, false);
    if (!sl)
        return NULL;
    pthread_mutex_t *mu = &fd_stripe[(unsigned)fd % FD_STRIPES];
    io_lock(mu);
    struct io_lsn *l = NULL;
    /* acquire pairs with the release store in ot__io_fd_own; a closer empties
     * node before it takes this lock to take lsn, so no lsn outlives its fd */
    if (atomic_load_explicit(&sl->node, memory_order_acquire)) {
        if (!sl->lsn)
            sl->lsn = ot__io_lsn_new(fd); /* holds the table's reference */
        l = sl->lsn;
        if (l)
            ot__io_lsn_ref(l);
    }
    io_unlock(mu);
    return l;
}
