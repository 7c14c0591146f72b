/* Making sockets (listen, accept, connect) and reading them passively. A new
 * socket is owned by the calling process from the moment its fd exists as a
 * socket record, so a process killed in the middle of a connect still has
 * it closed by its exit. Accept takes its listener's multishot accept state
 * (io_accept.c) when the kernel has it, as ot_io_accept does.
 *
 * A passive read first takes what active mode read beyond its allowance (the
 * pending queue) and a pending end; while a receive of active mode is still
 * armed, it waits for that one to end (asking the kernel to cancel it when it
 * runs on the armed ring), so the kernel never has two reads of one socket
 * racing for the same bytes. */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/io/sock_priv.h"

int ot_sock_listen_tcp(const char *host, uint16_t port, int backlog, ot_sock *out) {
    if (!ot_self().v)
        return -EPERM;
    if (!out)
        return -EINVAL;
    int fd = ot__io_listen_fd(host, port, backlog);
    if (fd < 0)
        return fd;
    struct io_lsn *l = ot__features()->multishot_accept ? ot__io_lsn_new(fd) : NULL;
    int rc = ot__sock_new(fd, l, out);
    if (rc < 0) {
        if (l)
            ot__io_lsn_closed(l);
        close(fd);
    }
    return rc;
}

int ot_sock_accept(ot_sock lh, ot_sock *out, struct sockaddr *sa, socklen_t *len,
                   int64_t timeout_ms) {
    struct sock_call c;
    int rc = ot__sock_call(lh, &c);
    if (rc)
        return rc;
    struct sock *s = c.s;
    if (!out || (sa && !len) || timeout_ms < OT_INFINITY) {
        ot__sock_return(&c);
        return -EINVAL;
    }
    io_lock(&s->mu);
    struct io_lsn *l = s->closed ? NULL : s->lsn;
    if (l)
        ot__io_lsn_ref(l); /* consumed by ot__io_accept_fd */
    io_unlock(&s->mu);
    int fd = ot__io_accept_fd(l, s->fd, sa, len, timeout_ms);
    ot__sock_return(&c);
    if (fd < 0)
        return fd;
    rc = ot__sock_new(fd, NULL, out);
    if (rc < 0)
        close(fd);
    return rc;
}

int ot_sock_connect_tcp(const char *host, uint16_t port, ot_sock *out, int64_t timeout_ms) {
    if (!ot_self().v)
        return -EPERM;
    if (!out || timeout_ms < OT_INFINITY)
        return -EINVAL;
    struct addrinfo *ai;
    int rc = ot__io_resolve(host, port, &ai);
    if (rc)
        return rc;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        rc = -errno;
        freeaddrinfo(ai);
        return rc;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ot_sock h;
    rc = ot__sock_new(fd, NULL, &h);
    if (rc < 0) {
        close(fd);
        freeaddrinfo(ai);
        return rc;
    }
    struct sock_call c;
    if (ot__sock_call(h, &c) == 0) {
        struct io_req rq;
        struct io_uring_sqe *sqe = ot__io_begin(&rq, fd, timeout_ms);
        if (sqe) {
            io_uring_prep_connect(sqe, fd, ai->ai_addr, ai->ai_addrlen);
            rc = ot__io_finish(&rq, sqe, timeout_ms);
        } else {
            rc = -errno;
        }
        ot__sock_return(&c);
    } else {
        rc = -EBADF; /* closed by another process already */
    }
    freeaddrinfo(ai);
    if (rc < 0) {
        ot_sock_close(h);
        return rc;
    }
    *out = h;
    return 0;
}

int ot_sock_shutdown(ot_sock h, int how) {
    struct sock *s;
    int rc = ot__sock_enter(h, &s);
    if (rc)
        return rc;
    rc = shutdown(s->fd, how) < 0 ? -errno : 0;
    ot__sock_put(s);
    return rc;
}

/* Under mu: > 0, 0 or -errno when answered here; -EAGAIN when the kernel is
 * to be asked (after mu is dropped). May park on the armed receive's end. */
static ssize_t recv_local(struct sock *s, void *buf, size_t n, int64_t dl) {
    for (;;) {
        if (s->closed)
            return -EBADF;
        if (s->mode != OT_PASSIVE)
            return -EINVAL;
        if (s->ph || s->term)
            return ot__sock_take_pending(s, buf, n);
        if (!s->armed)
            return -EAGAIN;
        ot__sock_cancel_armed(s);
        struct io_waiter w = {0};
        int rc = ot__io_wq_wait(&s->rwait, &s->mu, &w, dl);
        if (rc < 0)
            return rc;
    }
}

ssize_t ot_sock_recv(ot_sock h, void *buf, size_t n, int64_t timeout_ms) {
    struct sock_call c;
    int rc = ot__sock_call(h, &c);
    if (rc)
        return rc;
    struct sock *s = c.s;
    if ((!buf && n > 0) || timeout_ms < OT_INFINITY) {
        ot__sock_return(&c);
        return -EINVAL;
    }
    int64_t dl = ot__io_deadline(timeout_ms);
    io_lock(&s->mu);
    ssize_t r = recv_local(s, buf, n, dl);
    io_unlock(&s->mu);
    if (r == -EAGAIN) {
        if (n == 0) {
            r = 0;
        } else {
            int64_t tmo = dl < 0 ? OT_INFINITY : ot__io_left(dl);
            struct io_req rq;
            struct io_uring_sqe *sqe = ot__io_begin(&rq, s->fd, tmo);
            if (sqe) {
                io_uring_prep_recv(sqe, s->fd, buf, n > OT_IO_MAX_LEN ? OT_IO_MAX_LEN : (unsigned)n,
                                   0);
                r = ot__io_finish(&rq, sqe, tmo);
            } else {
                r = -errno;
            }
        }
    }
    ot__sock_return(&c);
    return r;
}
