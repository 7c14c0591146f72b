/* The provided-buffer ring that ot_io_recv can use instead of reading into
 * the caller's buffer (OT_IO_RECV_BUFRING). Plain recv is the default: it
 * measured faster for the loopback echo, most of all for big messages (the
 * ring's extra copy; perf/NOTES.md, 2026-11-25 buffer ring). ot_io_recv takes
 * the caller's buffer, so a parked recv pins that buffer either way: the ring
 * saves no memory here. It pays for the receives of active sockets
 * (sock_active.c): an idle connection holds no buffer, the kernel picks one
 * only when data arrives. Each buffer starts with OT_IO_BR_HEAD bytes the
 * kernel does not fill, where a socket writes its message header in front of
 * the data, so the bytes are copied once, into the message.
 *
 * One buffer group per scheduler ring, registered lazily by the first recv on
 * that scheduler and kept in thread-local state: the recv SQE is prepared on
 * the ring's own thread (by a process, or by a completion callback that
 * re-arms), and the CQE callback that copies the data out and hands the
 * buffer back runs on that same thread, so the buffer ring (a
 * single-producer structure) is only ever touched by one thread. A process
 * that migrates between calls simply uses the next scheduler's group; it
 * never migrates while parked. Copying inside the callback is what makes the
 * buffer's return immediate: the caller's buffer is valid there, since the
 * caller is parked until this very CQE. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/io/io_priv.h"

#define BR_BGID 1
#define BR_ENTRIES 256u
#define BR_BUFSZ 16384u

struct br_state {
    struct io_uring *ring;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *mem;
    bool failed;
};

static _Atomic int recv_mode;
static __thread struct br_state *tl_br;
static pthread_key_t br_key;
static pthread_once_t br_once = PTHREAD_ONCE_INIT;

void ot__io_set_recv_mode(int mode) {
    /* relaxed: a mode switch needs no ordering with any data */
    atomic_store_explicit(&recv_mode, mode, memory_order_relaxed);
}

int ot__io_recv_mode(void) {
    /* relaxed: pairs with the relaxed store in ot__io_set_recv_mode */
    return atomic_load_explicit(&recv_mode, memory_order_relaxed);
}

/* At scheduler-thread exit. No unregister: the ring may already be gone
 * (and its fd number reused); its own teardown drops the registration, and
 * the kernel holds its pages of the ring until then. Nothing is in flight:
 * every process of this scheduler has ended, each after its final CQE. */
static void br_destroy(void *p) {
    struct br_state *s = p;
    if (s->br)
        munmap(s->br, s->br_bytes);
    free(s->mem);
    free(s);
}

static void br_key_init(void) {
    pthread_key_create(&br_key, br_destroy);
}

static void br_give(struct br_state *s, unsigned bid, int offset) {
    io_uring_buf_ring_add(s->br, s->mem + (size_t)bid * BR_BUFSZ + OT_IO_BR_HEAD,
                          BR_BUFSZ - OT_IO_BR_HEAD, (unsigned short)bid,
                          io_uring_buf_ring_mask(BR_ENTRIES), offset);
}

static int br_setup(struct br_state *s, struct io_uring *ring) {
    s->ring = ring;
    s->br_bytes = BR_ENTRIES * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, s->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    s->mem = malloc((size_t)BR_ENTRIES * BR_BUFSZ);
    if (br == MAP_FAILED || !s->mem)
        return -ENOMEM;
    s->br = br;
    io_uring_buf_ring_init(s->br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = BR_ENTRIES, .bgid = BR_BGID};
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < BR_ENTRIES; i++)
        br_give(s, i, (int)i);
    io_uring_buf_ring_advance(s->br, (int)BR_ENTRIES);
    return 0;
}

int ot__io_bufring_group(void) {
    struct io_uring *ring = ot__io_ring();
    if (!ring || !ot__features()->buf_ring)
        return -1;
    struct br_state *s = tl_br;
    if (s && s->ring == ring)
        return s->failed ? -1 : BR_BGID;
    if (s) /* a scheduler thread serves one ring for its whole life */
        return -1;
    pthread_once(&br_once, br_key_init);
    s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    tl_br = s;
    pthread_setspecific(br_key, s);
    s->failed = br_setup(s, ring) < 0;
    return s->failed ? -1 : BR_BGID;
}

void ot__io_bufring_consume(struct io_req *rq, const struct io_uring_cqe *cqe) {
    struct br_state *s = tl_br;
    if (!s || !s->br)
        return;
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (bid >= BR_ENTRIES)
        return;
    if (cqe->res > 0) {
        size_t n = (size_t)cqe->res < rq->cap ? (size_t)cqe->res : rq->cap;
        memcpy(rq->buf, s->mem + (size_t)bid * BR_BUFSZ + OT_IO_BR_HEAD, n);
    }
    br_give(s, bid, 0);
    io_uring_buf_ring_advance(s->br, 1);
    ot__io_stat(IOS_BR_RECV);
}

char *ot__io_bufring_room(unsigned bid) {
    struct br_state *s = tl_br;
    if (!s || !s->br || bid >= BR_ENTRIES)
        return NULL;
    return s->mem + (size_t)bid * BR_BUFSZ;
}

void ot__io_bufring_give(unsigned bid) {
    struct br_state *s = tl_br;
    if (!s || !s->br || bid >= BR_ENTRIES)
        return;
    br_give(s, bid, 0);
    io_uring_buf_ring_advance(s->br, 1);
}

int ot__io_bufring_entries(void) {
    return (int)BR_ENTRIES;
}

/* IORING_REGISTER_PBUF_STATUS (6.8) reads the kernel's head of the ring; the
 * tail is ours. */
int ot__io_bufring_avail(void) {
    struct br_state *s = tl_br;
    struct io_uring *ring = ot__io_ring();
    if (!s || !s->br || s->ring != ring)
        return -1;
    struct {
        uint32_t buf_group, head, resv[8];
    } st = {.buf_group = BR_BGID};
    if (syscall(__NR_io_uring_register, ring->ring_fd, 26, &st, 1) < 0)
        return -1;
    uint16_t tail = io_uring_smp_load_acquire(&s->br->tail);
    return (uint16_t)(tail - (uint16_t)st.head);
}
