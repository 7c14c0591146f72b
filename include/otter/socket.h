/* Sockets that processes own, as gen_tcp's are in Erlang. A socket is named
 * by a generation-checked handle (ot_sock), never by its fd number: once a
 * socket is closed every call through an old handle gets -EBADF, even after
 * the kernel hands the same fd number to a new socket. Every socket has one
 * controlling process (its owner): the process that made it, until
 * ot_sock_controlling_process hands it over. It is closed when its owner
 * exits, and never while another process owns it.
 *
 * Active mode delivers what arrives as messages to the owner
 * (OT_TAG_SOCK_DATA, OT_TAG_SOCK_CLOSED, OT_TAG_SOCK_ERROR,
 * OT_TAG_SOCK_PASSIVE; payload ot_sock_msg), received with io_uring
 * multishot recv into the scheduler's provided buffers, so an idle socket
 * holds no receive buffer. A new socket is passive (OT_PASSIVE) and read
 * with ot_sock_recv. Any process may send on a socket; one send (or sendv)
 * is never interleaved with another's bytes, and sends from one process
 * reach the peer in the order made. Calls that block park only the caller
 * and take a timeout in ms (OT_INFINITY: wait forever); outside a process
 * they return -EPERM. Errors are negative errnos, as everywhere. */
#ifndef OTTER_SOCKET_H
#define OTTER_SOCKET_H

#include <otter/common.h>
#include <otter/process.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A socket handle: slot and generation. OT_NOSOCK is { 0 }. */
typedef struct ot_sock {
    uint64_t v;
} ot_sock;
#define OT_NOSOCK ((ot_sock){0})
static inline bool ot_sock_eq(ot_sock a, ot_sock b) {
    return a.v == b.v;
}

/* The payload of the OT_TAG_SOCK_* messages. */
typedef struct ot_sock_msg {
    ot_sock sock;
    int32_t err;  /* OT_TAG_SOCK_ERROR: the -errno; 0 otherwise */
    uint32_t len; /* OT_TAG_SOCK_DATA: bytes at data; 0 otherwise */
    char data[];
} ot_sock_msg;

/* gen_tcp's {active, false | once | N | true}. */
typedef enum ot_active {
    OT_PASSIVE = 0,  /* {active, false}: read with ot_sock_recv */
    OT_ACTIVE_ONCE,  /* one data message, then passive (no PASSIVE message) */
    OT_ACTIVE_N,     /* n is added to the count, as {active, N}; at 0 the
                        socket goes passive and the owner gets OT_TAG_SOCK_PASSIVE */
    OT_ACTIVE_TRUE,  /* every arrival, no flow control */
} ot_active;

/* Listening and connecting; the new socket is owned by the caller. host is a
 * numeric address or "localhost" (no DNS look-up on a scheduler). */
OT_API int ot_sock_listen_tcp(const char *host, uint16_t port, int backlog, ot_sock *out);
OT_API int ot_sock_accept(ot_sock listener, ot_sock *out, struct sockaddr *sa, socklen_t *len,
                          int64_t timeout_ms);
OT_API int ot_sock_connect_tcp(const char *host, uint16_t port, ot_sock *out, int64_t timeout_ms);
/* The caller takes ownership of a socket fd made elsewhere: -EBADF for a
 * closed fd, -ENOTSOCK for a file, -EBUSY for an fd a socket holds already
 * (adopted before, or lent by ot_sock_fd): one fd never has two sockets. */
OT_API int ot_sock_adopt(int fd, ot_sock *out);

/* Passive reads (-EINVAL while active, as gen_tcp:recv's einval). */
OT_API ssize_t ot_sock_recv(ot_sock s, void *buf, size_t n, int64_t timeout_ms);
/* Sends everything or fails (-EPIPE for a closed peer, never SIGPIPE). */
OT_API ssize_t ot_sock_send(ot_sock s, const void *buf, size_t n, int64_t timeout_ms);
OT_API ssize_t ot_sock_sendv(ot_sock s, const struct iovec *iov, int iovcnt, int64_t timeout_ms);

/* Only the owner: -EPERM from anyone else. n is read for OT_ACTIVE_N only. */
OT_API int ot_sock_set_active(ot_sock s, ot_active mode, int n);
/* Only the owner may hand a socket over (-EPERM); -ESRCH for a dead `to`.
 * Messages already delivered to the old owner stay with it. */
OT_API int ot_sock_controlling_process(ot_sock s, ot_pid to);
OT_API ot_pid ot_sock_owner(ot_sock s); /* OT_NOPID and errno EBADF when stale */
/* Any process may close; the handle is dead from then on. */
OT_API int ot_sock_close(ot_sock s);
OT_API int ot_sock_shutdown(ot_sock s, int how);
/* The fd, for getsockopt, getpeername and the like; valid while the handle is
 * (do not close it). -EBADF for a stale handle. */
OT_API int ot_sock_fd(ot_sock s);

#ifdef __cplusplus
}
#endif
#endif
