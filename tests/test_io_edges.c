/* I/O when the ring refuses SQEs, and cancellations that are not timeouts
 * (issue 10, item 20), with the outcomes docs/API.md defines:
 * - a killed process whose op is in flight exits even when no SQE can be had
 *   for the cancellation at first (it tries again after each scheduler loop);
 * - a timed call whose linked timeout cannot be queued does nothing and
 *   returns -EBUSY (the op is never issued without its timeout);
 * - an op cancelled by anything but its own timeout returns -ECANCELED, and
 *   only an expired timeout gives -ETIMEDOUT;
 * - a timeout past the clock's range is no timeout.
 * SQE refusal is injected with ot__io_test_refuse_sqes (ext.h). */
#include <otter/testing.h>

#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ext.h"

enum { TAG_REPORT = OT_TAG_USER + 1, TAG_GO };

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct rx {
    int fd;
    int64_t ms;
    ot_pid parent;
    int refuse_skip, refuse_n; /* set inside the process, right before the call */
};

/* One recv as told, reporting its result and how long it took. */
static void recv_once(void *arg) {
    struct rx *r = arg;
    char buf[16];
    if (r->refuse_n)
        ot__io_test_refuse_sqes((unsigned)r->refuse_skip, (unsigned)r->refuse_n);
    uint64_t t0 = now_ns();
    long rep[2];
    rep[0] = (long)ot_io_recv(r->fd, buf, sizeof buf, r->ms);
    rep[1] = (long)((now_ns() - t0) / 1000000u);
    ot__io_test_refuse_sqes(0, 0);
    ot_send(r->parent, TAG_REPORT, rep, sizeof rep);
}

static long *report(ot_msg **m) {
    *m = ot_receive_tag(TAG_REPORT, 20000);
    ot_assert(*m != NULL, "(the recv did not return within 20 s)");
    return ot_msg_data(*m);
}

OT_TEST(io_edges, kill_while_no_sqe_for_the_cancel, .timeout = 60) {
    int sv[2];
    ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct rx r = {.fd = sv[0], .ms = OT_INFINITY, .parent = ot_self()};
    ot_ref mref;
    /* on this scheduler: the kill's wake-up needs no SQE, the cancel is
     * the first to ask for one */
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mref, .scheduler = ot_scheduler_id(),
                       .scheduler_set = true, .bind = true};
    ot_pid a = ot_spawn_opt(recv_once, &r, &o);
    ot_sleep(100); /* parked on its recv */
    uint64_t before = ot__io_deferred_teardowns();
    ot__io_test_refuse_sqes(0, 3); /* the cancel's first three tries find none */
    ot_assert_eq(ot_exit(a, OT_REASON(OT_KILL)), 0);
    ot_msg *m = ot_receive_ref(mref, 20000);
    ot__io_test_refuse_sqes(0, 0);
    ot_assert(m != NULL, "(the killed process never exited)");
    ot_assert_eq(((ot_down_msg *)ot_msg_data(m))->reason.kind, OT_KILLED);
    ot_msg_free(m);
    ot_assert_eq(ot__io_deferred_teardowns(), before + 1);
    close(sv[0]);
    close(sv[1]);
}

OT_TEST(io_edges, linked_timeout_not_queued_is_ebusy, .timeout = 60) {
    int sv[2];
    ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* the op's SQE is had, its timeout's is refused */
    struct rx r = {.fd = sv[0], .ms = 5000, .parent = ot_self(), .refuse_skip = 1,
                   .refuse_n = 1};
    ot_spawn(recv_once, &r);
    ot_msg *m;
    long *rep = report(&m);
    ot_assert_eq(rep[0], -EBUSY);
    ot_msg_free(m);
    /* nothing was issued: data sent now is there for the next recv whole */
    ot_assert_eq(write(sv[1], "abc", 3), 3);
    r = (struct rx){.fd = sv[0], .ms = 5000, .parent = ot_self()};
    ot_spawn(recv_once, &r);
    rep = report(&m);
    ot_assert_eq(rep[0], 3);
    ot_msg_free(m);
    /* no SQE at all: -EBUSY too (it was -EPERM, "not a process") */
    r = (struct rx){.fd = sv[0], .ms = 5000, .parent = ot_self(), .refuse_n = 1};
    ot_spawn(recv_once, &r);
    rep = report(&m);
    ot_assert_eq(rep[0], -EBUSY);
    ot_msg_free(m);
    close(sv[0]);
    close(sv[1]);
}

struct canceller {
    int fd;
};

static void cancel_fd_ops(void *arg) {
    struct canceller *c = arg;
    struct io_uring_sqe *sqe = ot__io_get_sqe();
    ot_assert(sqe != NULL);
    io_uring_prep_cancel_fd(sqe, c->fd, 0);
    io_uring_sqe_set_data64(sqe, 0);
    ot_yield(); /* the loop submits */
}

OT_TEST(io_edges, cancelled_is_ecanceled_not_etimedout, .timeout = 60) {
    int sv[2];
    ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int me = ot_scheduler_id();
    ot_spawn_opts o = {.scheduler = me, .scheduler_set = true, .bind = true};
    struct rx r = {.fd = sv[0], .ms = 10000, .parent = ot_self()};
    ot_spawn_opt(recv_once, &r, &o);
    ot_sleep(100);
    /* a cancel on the same ring, from another process bound there */
    struct canceller c = {.fd = sv[0]};
    ot_spawn_opt(cancel_fd_ops, &c, &o);
    ot_msg *m;
    long *rep = report(&m);
    ot_assert_eq(rep[0], -ECANCELED);
    ot_assert(rep[1] < 9000, "(returned after %ld ms: the timeout, not the cancel)", rep[1]);
    ot_msg_free(m);
    /* an expired timeout is still -ETIMEDOUT */
    r = (struct rx){.fd = sv[0], .ms = 30, .parent = ot_self()};
    ot_spawn_opt(recv_once, &r, &o);
    rep = report(&m);
    ot_assert_eq(rep[0], -ETIMEDOUT);
    ot_assert(rep[1] >= 30);
    ot_msg_free(m);
    close(sv[0]);
    close(sv[1]);
}

OT_TEST(io_edges, huge_timeout_is_no_timeout, .timeout = 60) {
    const int64_t huge[] = {INT64_MAX, INT64_MAX / 1000000 + 1};
    for (int i = 0; i < 2; i++) {
        int sv[2];
        ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        struct rx r = {.fd = sv[0], .ms = huge[i], .parent = ot_self()};
        ot_spawn(recv_once, &r);
        ot_msg *m = ot_receive_tag(TAG_REPORT, 200);
        ot_assert(m == NULL, "(recv with %lld ms returned %ld at once)", (long long)huge[i],
                  m ? *(long *)ot_msg_data(m) : 0L);
        ot_assert_eq(write(sv[1], "xy", 2), 2);
        long *rep = report(&m);
        ot_assert_eq(rep[0], 2);
        ot_msg_free(m);
        close(sv[0]);
        close(sv[1]);
    }
}
