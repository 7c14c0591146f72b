/* Start-up probe of the kernel features the I/O layer can use, each by a real
 * try on a private scratch ring (never the schedulers' rings, which the core
 * owns): a multishot accept that must deliver a connection with
 * IORING_CQE_F_MORE (kernels before 5.19 reject the flag with -EINVAL), a
 * provided-buffer ring registration (5.19), and a multishot recv from such a
 * ring (6.0). Each missing feature has a fallback: one-shot accepts, plain
 * recvs. */
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/io/io_priv.h"

/* The next CQE within 1 s, consumed into res and flags; false if none came. */
static bool next_cqe(struct io_uring *r, int *res, unsigned *flags) {
    struct __kernel_timespec ts = {.tv_sec = 1};
    struct io_uring_cqe *cqe;
    if (io_uring_wait_cqe_timeout(r, &cqe, &ts) < 0)
        return false;
    *res = cqe->res;
    *flags = cqe->flags;
    io_uring_cqe_seen(r, cqe);
    return true;
}

/* Waits for the final CQE (no F_MORE) of a multishot request, closing any
 * fds it still delivers. */
static void drain_multishot(struct io_uring *r, bool fds) {
    int res;
    unsigned fl;
    while (next_cqe(r, &res, &fl)) {
        if (fds && res >= 0)
            close(res);
        if (!(fl & IORING_CQE_F_MORE))
            break;
    }
}

static bool probe_ms_accept(struct io_uring *r) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return false;
    bool ok = false;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 4) == 0 &&
        getsockname(lfd, (struct sockaddr *)&a, &al) == 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(r);
        io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, 1);
        io_uring_submit(r);
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int res = -1;
        unsigned fl = 0;
        if (c >= 0 && connect(c, (struct sockaddr *)&a, sizeof a) == 0 && next_cqe(r, &res, &fl)) {
            ok = res >= 0 && (fl & IORING_CQE_F_MORE);
            if (res >= 0)
                close(res);
        }
        if (c >= 0)
            close(c);
        /* shutting the listener down ends the multishot with its final CQE */
        shutdown(lfd, SHUT_RDWR);
        if (fl & IORING_CQE_F_MORE)
            drain_multishot(r, true);
    }
    close(lfd);
    return ok;
}

static bool probe_buf_ring(struct io_uring *r, bool *recv_ms) {
    size_t bytes = 2 * sizeof(struct io_uring_buf);
    struct io_uring_buf_ring *br =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED)
        return false;
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = 2, .bgid = 7};
    bool ok = io_uring_register_buf_ring(r, &reg, 0) == 0;
    *recv_ms = false;
    int sv[2];
    if (ok && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
        static char bufs[2][64];
        for (int i = 0; i < 2; i++)
            io_uring_buf_ring_add(br, bufs[i], sizeof bufs[i], (unsigned short)i,
                                  io_uring_buf_ring_mask(2), i);
        io_uring_buf_ring_advance(br, 2);
        struct io_uring_sqe *sqe = io_uring_get_sqe(r);
        io_uring_prep_recv(sqe, sv[0], NULL, 0, 0);
        sqe->ioprio |= IORING_RECV_MULTISHOT;
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = 7;
        io_uring_sqe_set_data64(sqe, 2);
        io_uring_submit(r);
        int res = -1;
        unsigned fl = 0;
        if (write(sv[1], "x", 1) == 1 && next_cqe(r, &res, &fl))
            *recv_ms = res == 1 && (fl & IORING_CQE_F_MORE) && (fl & IORING_CQE_F_BUFFER);
        shutdown(sv[0], SHUT_RDWR); /* EOF ends the multishot recv */
        if (fl & IORING_CQE_F_MORE)
            drain_multishot(r, false);
        close(sv[0]);
        close(sv[1]);
    }
    if (ok)
        io_uring_unregister_buf_ring(r, 7);
    munmap(br, bytes);
    return ok;
}

void ot__sched_hook_io_probe(struct io_uring *ring, struct ot__io_features *f) {
    (void)ring; /* the tries need a ring of their own to wait on */
    struct io_uring r;
    f->multishot_accept = f->buf_ring = f->recv_multishot = false;
    if (io_uring_queue_init(8, &r, 0) < 0)
        return;
    f->multishot_accept = probe_ms_accept(&r);
    f->buf_ring = probe_buf_ring(&r, &f->recv_multishot);
    io_uring_queue_exit(&r);
}
