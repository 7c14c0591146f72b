/* Private interface of the process I/O layer (io.c, io_fd.c, io_accept.c,
 * io_bufring.c), built only on the core's ext.h: one request struct parked on
 * the caller's stack, the fd ownership table, listener state for multishot
 * accept, the per-scheduler provided-buffer ring, the start-up probe and the
 * white-box test hooks. Invariants: an io_req lives until its final CQE (the
 * core guarantees that for ops parked in ot__io_wait); every fd registered
 * here is closed exactly once, by whoever wins the CAS of its table slot. */
#ifndef OT_CORE_IO_PRIV_H
#define OT_CORE_IO_PRIV_H

#include <liburing.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "runtime/ext.h"

#include <pthread.h>

/* The I/O layer's mutexes are critical sections (ext.h): a fault while one
 * is held is not contained. Never held across ot__io_wait. */
static inline void io_lock(pthread_mutex_t *m) {
    ot__crit_enter();
    pthread_mutex_lock(m);
}
static inline void io_unlock(pthread_mutex_t *m) {
    pthread_mutex_unlock(m);
    ot__crit_exit();
}

#define OT_IO_CONTAINER_OF(p, type, field) ((type *)((char *)(p)-offsetof(type, field)))

/* ---- probe (the scheduler's hook, runtime/sched/ring.h, at ot_start) ---------
 * Fills multishot_accept, buf_ring and recv_multishot from real tries on a
 * private scratch ring (ring is used only for the opcode probe and may be
 * NULL); leaves the core's own fields alone. */
void ot__sched_hook_io_probe(struct io_uring *ring, struct ot__io_features *f);

/* ---- one request ------------------------------------------------------------ */
#define OT_IO_REQ_MAGIC 0x10c0ffeeu
struct io_req {
    struct ot__io_op op;
    struct __kernel_timespec ts; /* the linked timeout; read by the kernel at submit */
    int fd;
    uint32_t magic; /* OT_IO_REQ_MAGIC while the op is in flight */
    void *buf;      /* buffer-ring recv: where the CQE callback copies to */
    size_t cap;
};
/* Prepares rq and returns an SQE for it, with room for a linked timeout
 * right behind it when timeout_ms >= 0; NULL with errno EPERM outside a
 * process, EBUSY when the kernel takes no SQE (callers return -errno). */
struct io_uring_sqe *ot__io_begin(struct io_req *rq, int fd, int64_t timeout_ms);
/* Attaches rq (and its linked timeout) to the prepared sqe, parks until the
 * completion and returns its res, with the linked timeout's -ECANCELED as
 * -ETIMEDOUT (any other cancellation stays -ECANCELED); -EBUSY, with sqe
 * turned into a NOP, when the timeout's SQE cannot be had. */
int32_t ot__io_finish(struct io_req *rq, struct io_uring_sqe *sqe, int64_t timeout_ms);

/* The kernel's own cap on one read/write (MAX_RW_COUNT); a CQE res is an int. */
#define OT_IO_MAX_LEN 0x7ffff000u

/* ---- set-up shared with sockets (io.c, io_accept.c) ---------------------------- */
struct addrinfo;
struct io_lsn;
/* host: NULL (any IPv4 address), a numeric address or "localhost"; never DNS. */
int ot__io_resolve(const char *host, uint16_t port, struct addrinfo **out);
/* A listening TCP socket (SO_REUSEADDR, TCP_NODELAY), owned by nobody, or -errno. */
int ot__io_listen_fd(const char *host, uint16_t port, int backlog);
/* One accept on lfd, served by l's multishot accept when l (whose reference
 * it consumes) is given, else one-shot; the fd is owned by nobody. */
int ot__io_accept_fd(struct io_lsn *l, int lfd, struct sockaddr *sa, socklen_t *len,
                     int64_t timeout_ms);

/* ---- two-level tables (io_fd.c's fds, sock.c's slots and fd marks) --------
 * The chunk behind *cp, allocated zeroed (n elements of size bytes) and
 * published on first use when create is set; NULL when absent or out of
 * memory. Chunks are never freed, so a pointer read here stays valid. */
static inline void *io_chunk(_Atomic(void *) *cp, size_t n, size_t size, bool create) {
    /* acquire pairs with the release CAS that published the chunk */
    void *c = atomic_load_explicit(cp, memory_order_acquire);
    if (!c && create) {
        void *fresh = calloc(n, size);
        if (!fresh)
            return NULL;
        /* release publishes the zeroed chunk; acquire on failure pairs with
         * the winner's release */
        if (atomic_compare_exchange_strong_explicit(cp, &c, fresh, memory_order_acq_rel,
                                                    memory_order_acquire))
            c = fresh;
        else
            free(fresh);
    }
    return c;
}

/* ---- fd ownership (io_fd.c) ---------------------------------------------------
 * Owned fds are closed at their owner's exit unless ot_io_close came first. */
int ot__io_fd_own(int fd);    /* caller must be a process; -ENOMEM, -EBADF */
bool ot__io_fd_owned(int fd); /* some process owns fd right now */
int ot__io_fd_close(int fd);  /* closes once: 0 or -errno */
struct io_lsn;
/* fd leaves the table unclosed (true if it was owned); its listener state,
 * if any, goes to *lsn with the table's reference. */
bool ot__io_fd_disown(int fd, struct io_lsn **lsn);
/* The listener state of an owned fd, created on first use, with a reference
 * for the caller; NULL when fd is not owned (then no multishot). */
struct io_lsn *ot__io_lsn_get(int fd);

/* ---- listeners (io_accept.c) ---------------------------------------------- */
struct io_lsn *ot__io_lsn_new(int fd);
void ot__io_lsn_ref(struct io_lsn *l);
void ot__io_lsn_put(struct io_lsn *l);
void ot__io_lsn_closed(struct io_lsn *l); /* the fd is closed: drops the table's ref */

/* ---- provided-buffer ring for recv (io_bufring.c) ----------------------------- */
enum { OT_IO_RECV_PLAIN = 0, OT_IO_RECV_BUFRING = 1 };
void ot__io_set_recv_mode(int mode); /* process-wide; plain is the default */
int ot__io_recv_mode(void);
/* The calling scheduler's buffer group id, registering the ring on first use;
 * -1 when unavailable (then recv goes plain). */
int ot__io_bufring_group(void);
/* From a CQE callback on the ring's thread: copies the selected buffer's
 * bytes into rq->buf and hands the buffer back to the kernel. */
void ot__io_bufring_consume(struct io_req *rq, const struct io_uring_cqe *cqe);
/* Each buffer starts with OT_IO_BR_HEAD bytes the kernel does not fill (room
 * for a message header in front of the data). On the ring's thread: buffer
 * bid (from a CQE of a buffer-select op), and giving it back to the kernel. */
#define OT_IO_BR_HEAD 16u
char *ot__io_bufring_room(unsigned bid);
void ot__io_bufring_give(unsigned bid);
/* Buffers of the calling scheduler's ring the kernel may pick now (all of
 * them when none is held); -1 when it has none registered. Tests. */
int ot__io_bufring_avail(void);
int ot__io_bufring_entries(void);

/* ---- test hooks ------------------------------------------------------------------
 * The hook sees, on the scheduler thread: every final CQE of a parked request
 * (OT_IO_EV_CQE, with whether the request's memory was still intact, i.e. its
 * magic, when the CQE arrived), and every owned fd closed by its owner's exit
 * (OT_IO_EV_EXIT_CLOSE, res 0). A killed process's CQE must come first. */
enum { OT_IO_EV_CQE = 1, OT_IO_EV_EXIT_CLOSE = 2 };
typedef void (*ot__io_cqe_hook_fn)(int kind, int fd, int32_t res, bool intact);
void ot__io_set_cqe_hook(ot__io_cqe_hook_fn fn);
void ot__io_event(int kind, int fd, int32_t res, bool intact);
struct ot__io_stats {
    uint64_t ms_armed;          /* multishot accepts submitted */
    uint64_t ms_taken;          /* accepts served from a multishot queue */
    uint64_t oneshot;           /* one-shot accepts submitted */
    uint64_t bufring_recv;      /* recvs served through the buffer ring */
    uint64_t bufring_nobufs;    /* buffer-ring recvs that fell back (-ENOBUFS) */
    uint64_t fd_close_exit;     /* owned fds closed by their owner's exit */
    uint64_t lsn_new, lsn_free; /* listener states created and freed */
};
void ot__io_get_stats(struct ot__io_stats *out);
enum {
    IOS_MS_ARMED,
    IOS_MS_TAKEN,
    IOS_ONESHOT,
    IOS_BR_RECV,
    IOS_BR_NOBUFS,
    IOS_CLOSE_EXIT,
    IOS_LSN_NEW,
    IOS_LSN_FREE,
    IOS_N
};
void ot__io_stat(int which);

#endif
