/* Process I/O on the scheduler's io_uring. Each call parks only the calling
 * process until its completion; timeouts are linked timeouts (-ETIMEDOUT).
 * Outside a process they return -EPERM. */
#ifndef OTTER_IO_H
#define OTTER_IO_H

#include <otter/common.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

OT_API int ot_io_listen_tcp(const char *host, uint16_t port, int backlog);
OT_API int ot_io_accept(int lfd, struct sockaddr *sa, socklen_t *len, int64_t timeout_ms);
OT_API int ot_io_connect(int fd, const struct sockaddr *sa, socklen_t len, int64_t timeout_ms);
OT_API ssize_t ot_io_recv(int fd, void *buf, size_t n, int64_t timeout_ms);
OT_API ssize_t ot_io_send(int fd, const void *buf, size_t n, int64_t timeout_ms);
OT_API ssize_t ot_io_read(int fd, void *buf, size_t n, int64_t off, int64_t timeout_ms);
OT_API ssize_t ot_io_write(int fd, const void *buf, size_t n, int64_t off, int64_t timeout_ms);
OT_API int ot_io_close(int fd);

#ifdef __cplusplus
}
#endif
#endif
