/* Tests of otter/socket.h's handles, ownership and passive reads: every
 * call's errors (outside a process, OT_NOSOCK, stale handles, NULL, bad
 * timeouts), a closed handle that stays dead after the kernel reuses its fd
 * number, TCP through listen/connect/accept, adoption (of a socketpair and of
 * an fd ot_io_accept handed out), close at the owner's exit and never while
 * another process owns the socket, the hand-over and the old owner's loss of
 * the owner's rights (it may still send, as in gen_tcp), -ESRCH for a dead
 * target. */
#include <fcntl.h>
#include <stdlib.h>

#include "support/sock_util.h"

Test(sock, eperm_outside_process) {
    ot_sock s = {((uint64_t)1 << 32) | 1}, out;
    char b[4];
    struct iovec v = {b, sizeof b};
    cr_assert_eq(ot_sock_listen_tcp(NULL, 0, 0, &out), -EPERM);
    cr_assert_eq(ot_sock_accept(s, &out, NULL, NULL, 0), -EPERM);
    cr_assert_eq(ot_sock_connect_tcp("127.0.0.1", 1, &out, 0), -EPERM);
    cr_assert_eq(ot_sock_adopt(0, &out), -EPERM);
    cr_assert_eq(ot_sock_recv(s, b, sizeof b, 0), -EPERM);
    cr_assert_eq(ot_sock_send(s, b, sizeof b, 0), -EPERM);
    cr_assert_eq(ot_sock_sendv(s, &v, 1, 0), -EPERM);
    cr_assert_eq(ot_sock_set_active(s, OT_ACTIVE_ONCE, 0), -EPERM);
    cr_assert_eq(ot_sock_controlling_process(s, (ot_pid){1}), -EPERM);
    cr_assert_eq(ot_sock_close(s), -EPERM);
    cr_assert_eq(ot_sock_shutdown(s, SHUT_RDWR), -EPERM);
    cr_assert_eq(ot_sock_fd(s), -EBADF);
    errno = 0;
    cr_assert_eq(ot_sock_owner(s).v, 0);
    cr_assert_eq(errno, EBADF);
    cr_assert_neq(fcntl(0, F_GETFD), -1, "stdin must be untouched");
}

static void all_ebadf(ot_sock s) {
    char b[4] = "abc";
    struct iovec v = {b, 3};
    ot_sock out;
    ot_assert_eq(ot_sock_recv(s, b, sizeof b, 100), -EBADF);
    ot_assert_eq(ot_sock_send(s, b, 3, 100), -EBADF);
    ot_assert_eq(ot_sock_sendv(s, &v, 1, 100), -EBADF);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), -EBADF);
    ot_assert_eq(ot_sock_controlling_process(s, ot_self()), -EBADF);
    ot_assert_eq(ot_sock_close(s), -EBADF);
    ot_assert_eq(ot_sock_shutdown(s, SHUT_WR), -EBADF);
    ot_assert_eq(ot_sock_accept(s, &out, NULL, NULL, 100), -EBADF);
    ot_assert_eq(ot_sock_fd(s), -EBADF);
    errno = 0;
    ot_assert_eq(ot_sock_owner(s).v, 0);
    ot_assert_eq(errno, EBADF);
}

OT_TEST(sock, bad_handles_and_arguments, .timeout = 60) {
    all_ebadf(OT_NOSOCK);
    all_ebadf((ot_sock){((uint64_t)7 << 32) | 12345}); /* never issued */
    all_ebadf((ot_sock){UINT64_MAX});
    all_ebadf((ot_sock){5}); /* generation 0 is never issued */

    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    char b[8];
    struct iovec v[2] = {{b, 4}, {NULL, 4}};
    ot_assert_eq(ot_sock_recv(s, NULL, 4, 100), -EINVAL);
    ot_assert_eq(ot_sock_recv(s, b, 4, -2), -EINVAL);
    ot_assert_eq(ot_sock_send(s, NULL, 4, 100), -EINVAL);
    ot_assert_eq(ot_sock_send(s, b, 4, -5), -EINVAL);
    ot_assert_eq(ot_sock_sendv(s, v, 2, 100), -EINVAL); /* NULL base with a length */
    ot_assert_eq(ot_sock_sendv(s, NULL, 1, 100), -EINVAL);
    ot_assert_eq(ot_sock_sendv(s, v, -1, 100), -EINVAL);
    ot_assert_eq(ot_sock_sendv(s, v, 100000, 100), -EINVAL);
    struct iovec huge[2] = {{b, SIZE_MAX / 2}, {b, SIZE_MAX / 2}};
    ot_assert_eq(ot_sock_sendv(s, huge, 2, 100), -EINVAL); /* the sum overflows */
    ot_assert_eq(ot_sock_send(s, NULL, 0, 100), 0);
    ot_assert_eq(ot_sock_sendv(s, NULL, 0, 100), 0);
    ot_assert_eq(ot_sock_recv(s, b, 0, 100), 0);
    ot_assert_eq(ot_sock_set_active(s, (ot_active)42, 0), -EINVAL);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 32768), -EINVAL);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, -32769), -EINVAL);
    ot_assert_eq(ot_sock_accept(s, NULL, NULL, NULL, 100), -EINVAL);
    struct sockaddr_in sa;
    ot_assert_eq(ot_sock_accept(s, &s, (struct sockaddr *)&sa, NULL, 100), -EINVAL);
    ot_assert_eq(ot_sock_accept(s, &s, NULL, NULL, -3), -EINVAL);
    ot_assert_eq(ot_sock_listen_tcp("127.0.0.1", 0, 4, NULL), -EINVAL);
    ot_assert_eq(ot_sock_connect_tcp("127.0.0.1", 1, NULL, 100), -EINVAL);
    ot_assert_eq(ot_sock_connect_tcp("127.0.0.1", 1, &s, -2), -EINVAL);
    ot_assert_eq(ot_sock_connect_tcp("not a host", 1, &s, 100), -EINVAL);
    ot_assert_eq(ot_sock_shutdown(s, 99), -EINVAL);
    ot_assert_eq(ot_sock_controlling_process(s, OT_NOPID), -ESRCH);
    ot_assert_eq(ot_sock_adopt(-1, &s), -EBADF);
    ot_assert_eq(ot_sock_adopt(peer, NULL), -EINVAL);
    int pfd[2];
    ot_assert_eq(pipe(pfd), 0);
    ot_assert_eq(ot_sock_adopt(pfd[0], &s), -ENOTSOCK);
    close(pfd[0]);
    close(pfd[1]);
    ot_assert_eq(ot_sock_adopt(pfd[0], &s), -EBADF); /* closed */
    /* a huge timeout is no timeout; the recv has data to take */
    ot_assert_eq(ot_io_send(peer, "hi", 2, 1000), 2);
    ot_assert_eq(ot_sock_recv(s, b, sizeof b, INT64_MAX), 2);
    ot_assert_eq(ot_sock_recv(s, b, sizeof b, 50), -ETIMEDOUT);
    ot_assert_eq(ot_sock_send(s, "yo", 2, INT64_MAX), 2);
    ot_assert_eq(read_exact(peer, b, 2, 1000), 2);
    ot_sock l, c, a;
    ot_assert_eq(ot_sock_listen_tcp("127.0.0.1", 0, 4, &l), 0);
    ot_assert_eq(ot_sock_connect_tcp("127.0.0.1", sock_port(l), &c, INT64_MAX), 0);
    ot_assert_eq(ot_sock_accept(l, &a, NULL, NULL, INT64_MAX), 0);
    ot_assert_eq(ot_sock_close(a), 0);
    ot_assert_eq(ot_sock_close(c), 0);
    ot_assert_eq(ot_sock_close(l), 0);
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

OT_TEST(sock, stale_handle_after_close, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    ot_assert(ot_sock_eq(s, s) && !ot_sock_eq(s, OT_NOSOCK));
    ot_assert_eq(ot_sock_owner(s).v, ot_self().v);
    ot_assert(ot_sock_fd(s) >= 0);
    ot_assert_eq(ot_sock_close(s), 0);
    all_ebadf(s);
    char b[4];
    ot_assert_eq(ot_io_recv(peer, b, sizeof b, 1000), 0); /* the peer saw the close */
    close(peer);
}

/* The kernel hands out the lowest free fd number: the new socket gets the old
 * one's, and the old handle still reaches nothing. */
OT_TEST(sock, reused_fd_number_unreachable_through_old_handle, .timeout = 60) {
    ot_sock a, b;
    int pa, pb;
    sock_pair(&a, &pa);
    int old_fd = ot_sock_fd(a);
    ot_assert_eq(ot_sock_close(a), 0);
    sock_pair(&b, &pb);
    ot_assert_eq(ot_sock_fd(b), old_fd);
    ot_assert(!ot_sock_eq(a, b));
    all_ebadf(a);
    /* nothing sent through a reached b's peer; b works */
    ot_assert_eq(ot_sock_send(b, "new", 3, 1000), 3);
    char buf[8];
    ot_assert_eq(ot_io_recv(pb, buf, sizeof buf, 1000), 3);
    ot_assert_eq(memcmp(buf, "new", 3), 0);
    ot_assert_eq(ot_io_recv(pb, buf, sizeof buf, 50), -ETIMEDOUT);
    ot_assert_eq(ot_sock_close(b), 0);
    close(pa);
    close(pb);
}

OT_TEST(sock, tcp_round_trip, .timeout = 60) {
    ot_sock l, c, a;
    ot_assert_eq(ot_sock_listen_tcp("localhost", 0, 8, &l), 0);
    uint16_t port = sock_port(l);
    ot_assert(port != 0);
    ot_assert_eq(ot_sock_connect_tcp("127.0.0.1", port, &c, 5000), 0);
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    ot_assert_eq(ot_sock_accept(l, &a, (struct sockaddr *)&peer, &pl, 5000), 0);
    ot_assert_eq(peer.sin_family, AF_INET);
    ot_assert_eq(ot_sock_owner(a).v, ot_self().v);
    ot_assert_eq(ot_sock_send(c, "ping", 4, 1000), 4);
    char b[8];
    ot_assert_eq(ot_sock_recv(a, b, sizeof b, 1000), 4);
    ot_assert_eq(memcmp(b, "ping", 4), 0);
    ot_assert_eq(ot_sock_shutdown(a, SHUT_WR), 0);
    ot_assert_eq(ot_sock_recv(c, b, sizeof b, 1000), 0);
    /* an accept times out; the listener closed under nobody */
    ot_sock x;
    ot_assert_eq(ot_sock_accept(l, &x, NULL, NULL, 30), -ETIMEDOUT);
    ot_assert_eq(ot_sock_close(l), 0);
    ot_assert_eq(ot_sock_connect_tcp("127.0.0.1", port, &x, 1000), -ECONNREFUSED);
    ot_assert_eq(ot_sock_close(a), 0);
    ot_assert_eq(ot_sock_close(c), 0);
}

/* ot_io_accept's fd belongs to its process in io_fd.c; adopted, it moves
 * here: the acceptor's exit no longer closes it, the adopter's does. */
static void io_acceptor(void *arg) {
    int lfd = (int)(intptr_t)arg;
    int fd = ot_io_accept(lfd, NULL, NULL, 5000);
    ot_assert(fd >= 0, "%d", fd);
    ot_sock s;
    ot_assert_eq(ot_sock_adopt(fd, &s), 0);
    ot_msg *m = ot_receive_tag(T_GO, 5000); /* the parent's pid */
    ot_assert(m != NULL);
    ot_pid to;
    memcpy(&to, ot_msg_data(m), sizeof to);
    ot_msg_free(m);
    ot_assert_eq(ot_sock_controlling_process(s, to), 0);
    ot_send(to, T_SOCK, &s, sizeof s);
}

OT_TEST(sock, adopt_an_io_accepted_fd, .timeout = 60) {
    int lfd = ot_io_listen_tcp("127.0.0.1", 0, 4);
    ot_assert(lfd >= 0);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    ot_pid acc = ot_spawn_opt(io_acceptor, (void *)(intptr_t)lfd, &o);
    ot_sock c;
    ot_assert_eq(ot_sock_connect_tcp("127.0.0.1", ntohs(a.sin_port), &c, 5000), 0);
    ot_pid me = ot_self();
    ot_send(acc, T_GO, &me, sizeof me);
    ot_msg *m = ot_receive_tag(T_SOCK, 5000);
    ot_assert(m != NULL);
    ot_sock s;
    memcpy(&s, ot_msg_data(m), sizeof s);
    ot_msg_free(m);
    ot_receive_tag(OT_TAG_DOWN, 5000); /* the acceptor is gone */
    ot_assert_eq(ot_sock_owner(s).v, me.v);
    ot_assert_eq(ot_sock_send(c, "x", 1, 1000), 1);
    char b[2];
    ot_assert_eq(ot_sock_recv(s, b, 2, 1000), 1);
    ot_assert_eq(ot_sock_close(s), 0);
    ot_assert_eq(ot_sock_recv(c, b, 2, 1000), 0);
    ot_assert_eq(ot_sock_close(c), 0);
    ot_assert_eq(ot_io_close(lfd), 0);
}

/* ---- ownership -------------------------------------------------------------- */

static void own_then_exit(void *arg) {
    int fd = (int)(intptr_t)arg;
    ot_sock s;
    ot_assert_eq(ot_sock_adopt(fd, &s), 0);
    ot_pid parent;
    ot_msg *m = ot_receive_tag(T_GO, 5000);
    memcpy(&parent, ot_msg_data(m), sizeof parent);
    ot_msg_free(m);
    ot_send(parent, T_SOCK, &s, sizeof s);
    ot_receive_tag(T_DONE, OT_INFINITY); /* until killed or told */
}

static ot_sock get_sock(void) {
    ot_msg *m = ot_receive_tag(T_SOCK, 5000);
    ot_assert(m != NULL);
    ot_sock s;
    memcpy(&s, ot_msg_data(m), sizeof s);
    ot_msg_free(m);
    return s;
}

OT_TEST(sock, closed_when_owner_exits, .timeout = 60) {
    uint64_t exits0 = sock_stats().owner_exits;
    int fds0 = fd_count();
    for (int killed = 0; killed < 2; killed++) {
        int sv[2];
        ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ot_ref mon;
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
        ot_pid c = ot_spawn_opt(own_then_exit, (void *)(intptr_t)sv[0], &o);
        ot_pid me = ot_self();
        ot_send(c, T_GO, &me, sizeof me);
        ot_sock s = get_sock();
        ot_assert_eq(ot_sock_owner(s).v, c.v);
        if (killed)
            ot_exit(c, OT_REASON(OT_KILL));
        else
            ot_send(c, T_DONE, NULL, 0);
        ot_receive_tag(OT_TAG_DOWN, 5000);
        char b[4];
        ot_assert_eq(ot_io_recv(sv[1], b, sizeof b, 2000), 0); /* EOF */
        all_ebadf(s);
        close(sv[1]);
    }
    ot_assert_eq(sock_stats().owner_exits, exits0 + 2);
    ot_assert_eq(fd_count(), fds0);
}

static void new_owner(void *arg) {
    (void)arg;
    ot_sock s = get_sock();
    ot_assert_eq(ot_sock_owner(s).v, ot_self().v);
    char b[16];
    ssize_t n = ot_sock_recv(s, b, sizeof b, 5000);
    ot_assert_eq(n, 5);
    ot_assert_eq(ot_sock_send(s, b, (size_t)n, 5000), 5);
    ot_receive_tag(T_DONE, OT_INFINITY);
}

/* The creator hands the socket over and exits: the socket lives on with its
 * new owner, and closes when that one exits. The old owner lost set_active
 * and the hand-over (-EPERM) but may still send, as in gen_tcp. */
static void creator(void *arg) {
    ot_pid to = *(ot_pid *)arg;
    int fd;
    ot_msg *m = ot_receive_tag(T_GO, 5000);
    memcpy(&fd, ot_msg_data(m), sizeof fd);
    ot_msg_free(m);
    ot_sock s;
    ot_assert_eq(ot_sock_adopt(fd, &s), 0);
    ot_assert_eq(ot_sock_controlling_process(s, ot_self()), 0); /* to itself: no-op */
    ot_assert_eq(ot_sock_controlling_process(s, to), 0);
    ot_assert_eq(ot_sock_owner(s).v, to.v);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_ONCE, 0), -EPERM);
    ot_assert_eq(ot_sock_controlling_process(s, ot_self()), -EPERM);
    ot_assert_eq(ot_sock_send(s, "old", 3, 1000), 3);
    ot_send(to, T_SOCK, &s, sizeof s);
}

OT_TEST(sock, handover_outlives_the_old_owner, .timeout = 60) {
    int sv[2];
    ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ot_ref m1, m2;
    ot_spawn_opts o1 = {.monitor = true, .monitor_ref = &m1};
    ot_spawn_opts o2 = {.monitor = true, .monitor_ref = &m2};
    ot_pid b = ot_spawn_opt(new_owner, NULL, &o2);
    ot_pid a = ot_spawn_opt(creator, &b, &o1);
    ot_send(a, T_GO, &sv[0], sizeof sv[0]);
    char buf[16];
    ot_assert_eq(read_exact(sv[1], buf, 3, 5000), 3);
    ot_assert_eq(memcmp(buf, "old", 3), 0);
    ot_msg *d = ot_receive_tag(OT_TAG_DOWN, 5000); /* a ended */
    ot_assert(d != NULL);
    ot_msg_free(d);
    /* b still owns an open socket: an echo through it */
    ot_assert_eq(ot_io_send(sv[1], "hello", 5, 1000), 5);
    ot_assert_eq(read_exact(sv[1], buf, 5, 5000), 5);
    ot_assert_eq(memcmp(buf, "hello", 5), 0);
    ot_send(b, T_DONE, NULL, 0);
    ot_receive_tag(OT_TAG_DOWN, 5000);
    ot_assert_eq(ot_io_recv(sv[1], buf, sizeof buf, 2000), 0); /* closed by b's exit */
    close(sv[1]);
}

static void quick(void *arg) {
    (void)arg;
}

OT_TEST(sock, handover_rules, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    ot_pid dead = ot_spawn_opt(quick, NULL, &o);
    ot_receive_tag(OT_TAG_DOWN, 5000);
    ot_assert_eq(ot_sock_controlling_process(s, dead), -ESRCH);
    ot_assert_eq(ot_sock_controlling_process(s, (ot_pid){((uint64_t)999 << 32) | 77}), -ESRCH);
    ot_assert_eq(ot_sock_owner(s).v, ot_self().v); /* unchanged */
    ot_assert_eq(ot_sock_set_active(s, OT_PASSIVE, 0), 0);
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

/* A non-owner may close a socket; its owner's exit later finds nothing. */
OT_TEST(sock, any_process_may_close, .timeout = 60) {
    int sv[2];
    ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    ot_pid c = ot_spawn_opt(own_then_exit, (void *)(intptr_t)sv[0], &o);
    ot_pid me = ot_self();
    ot_send(c, T_GO, &me, sizeof me);
    ot_sock s = get_sock();
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), -EPERM);
    ot_assert_eq(ot_sock_close(s), 0);
    char b[4];
    ot_assert_eq(ot_io_recv(sv[1], b, sizeof b, 2000), 0);
    uint64_t exits = sock_stats().owner_exits;
    ot_send(c, T_DONE, NULL, 0);
    ot_receive_tag(OT_TAG_DOWN, 5000);
    ot_assert_eq(sock_stats().owner_exits, exits);
    close(sv[1]);
}
