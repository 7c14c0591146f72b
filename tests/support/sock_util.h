/* Helpers shared by the socket suites (tests/test_sock*.c): socket pairs whose
 * one end is an ot_sock and the other a plain fd, TCP connections made
 * through the socket API, receiving socket messages, and reading the
 * white-box counters of runtime/io/sock_priv.h. Header-only: each suite
 * includes it once. */
#ifndef TESTS_SOCK_UTIL_H
#define TESTS_SOCK_UTIL_H

#include <otter/testing.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/io/sock_priv.h"

enum { T_READY = OT_TAG_USER + 1, T_GO, T_DONE, T_SOCK, T_RES };

static inline int fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* *s owns one end of a stream socketpair; *peer is the other, a plain fd. */
static inline void sock_pair(ot_sock *s, int *peer) {
    int sv[2];
    ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ot_assert_eq(ot_sock_adopt(sv[0], s), 0);
    *peer = sv[1];
}

static inline uint16_t sock_port(ot_sock l) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(ot_sock_fd(l), (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

/* A connected TCP pair through the API: *c the client, *a the accepted end. */
static inline void tcp_pair(ot_sock *c, ot_sock *a) {
    ot_sock l;
    ot_assert_eq(ot_sock_listen_tcp("127.0.0.1", 0, 16, &l), 0);
    ot_assert_eq(ot_sock_connect_tcp("127.0.0.1", sock_port(l), c, 5000), 0);
    ot_assert_eq(ot_sock_accept(l, a, NULL, NULL, 5000), 0);
    ot_assert_eq(ot_sock_close(l), 0);
}

/* The fixed part of an ot_sock_msg (a struct with a flexible array member
 * is not returned by value). */
struct sock_ev {
    ot_sock sock;
    int32_t err;
    uint32_t len;
};

/* The next message with this tag (ot_assert'ed), its header copied out. */
static inline struct sock_ev sock_event(uint32_t tag, int64_t tmo) {
    ot_msg *m = ot_receive_tag(tag, tmo);
    ot_assert(m != NULL, "no message with tag %u", tag);
    const ot_sock_msg *sm = ot_msg_data(m);
    struct sock_ev e = {sm->sock, sm->err, sm->len};
    ot_msg_free(m);
    return e;
}

static bool is_sock_tag(const ot_msg *m, void *arg) {
    (void)arg;
    return m->tag >= OT_TAG_SOCK_DATA && m->tag <= OT_TAG_SOCK_PASSIVE;
}

/* The next socket message of any kind, or NULL after tmo. */
static inline ot_msg *sock_any(int64_t tmo) {
    return ot_receive_match(is_sock_tag, NULL, tmo);
}

static inline void send_i64(ot_pid to, uint32_t tag, int64_t v) {
    ot_send(to, tag, &v, sizeof v);
}

static inline int64_t recv_i64(uint32_t tag, int64_t tmo) {
    ot_msg *m = ot_receive_tag(tag, tmo);
    ot_assert(m != NULL, "no message with tag %u", tag);
    int64_t v;
    memcpy(&v, ot_msg_data(m), sizeof v);
    ot_msg_free(m);
    return v;
}

static inline struct ot__sock_stats sock_stats(void) {
    struct ot__sock_stats st;
    ot__sock_get_stats(&st);
    return st;
}

/* Waits (up to 10 s) until no receive is armed and no record is left. */
static inline void wait_sockets_gone(uint64_t live_before) {
    struct ot__sock_stats st = sock_stats();
    for (int i = 0; i < 2000 && (st.armed || st.live > live_before); i++) {
        ot_sleep(5);
        st = sock_stats();
    }
    ot_assert_eq(st.armed, 0);
    ot_assert_eq(st.live, live_before);
}

/* Reads exactly n bytes from a plain fd through the ring. */
static inline ssize_t read_exact(int fd, char *buf, size_t n, int64_t tmo) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = ot_io_recv(fd, buf + got, n - got, tmo);
        if (r <= 0)
            return r;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

#endif
