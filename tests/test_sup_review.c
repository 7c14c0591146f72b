/* A review of the supervision and task layer against its own contract: huge
 * timeouts and periods are bad input that must not wrap into "already past"
 * (a signed overflow of now + timeout, or of max_seconds * 1000), so each test
 * here gives the largest value the API accepts and checks that the call waits
 * for its result (or counts the restart) as it would with a sane one. */
#include <otter/testing.h>
#include <otter/supervisor.h>
#include <otter/task.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "support/sup_events.h"

#define WAIT_MS 20000

static int slow_ok(void *arg, ot_buf *out) {
    ot_sleep(30);
    static const char ok[] = "ok";
    (void)arg;
    *out = (ot_buf){ok, 2};
    return 0;
}

/* max_seconds large enough that max_seconds * 1000 leaves int: the second
 * crash with max_restarts 1 must still take the supervisor down. */
OT_TEST(sup_review, a_huge_max_seconds_still_counts_restarts, .timeout = 60) {
    ot_trap_exit(true);
    static struct wcfg a = {.id = "a"};
    ot_child_spec cs[1] = {worker_spec(&a, OT_PERMANENT)};
    ot_sup_flags f = {.strategy = OT_ONE_FOR_ONE, .max_restarts = 1, .max_seconds = INT_MAX};
    ot_pid sup;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 1, NULL, &sup), 0);
    for (int crash = 0; crash < 2; crash++) {
        ot_child_info in[1];
        size_t n = 0;
        ot_pid c = OT_NOPID;
        for (int i = 0; i < WAIT_MS / 5 && !c.v; i++) {
            ot_assert_eq(ot_supervisor_which_children(sup, in, 1, &n), 0);
            c = in[0].pid;
            if (!c.v)
                ot_sleep(5);
        }
        ot_assert(c.v != 0);
        ot_ref mon = ot_monitor(c);
        ot_send(c, TAG_CRASH, NULL, 0);
        ot_msg *d = ot_receive_ref(mon, WAIT_MS);
        ot_assert(d != NULL);
        ot_msg_free(d);
        if (crash == 0) { /* wait for the restart before the second crash */
            for (int i = 0; i < WAIT_MS / 5; i++) {
                ot_assert_eq(ot_supervisor_which_children(sup, in, 1, &n), 0);
                if (in[0].pid.v && in[0].pid.v != c.v)
                    break;
                ot_sleep(5);
            }
        }
    }
    ot_msg *m = ot_receive_tag(OT_TAG_EXIT, 5000);
    ot_assert(m != NULL, "the supervisor outlived max_restarts 1");
    ot_exit_msg *x = ot_msg_data(m);
    ot_assert_eq(x->pid.v, sup.v);
    ot_assert_eq(x->reason.kind, OT_SHUTDOWN);
    ot_msg_free(m);
}

OT_TEST(sup_review, await_many_with_a_huge_timeout_waits, .timeout = 60) {
    ot_task t[2];
    ot_msg *r[2];
    size_t failed = 99;
    ot_assert_eq(ot_task_async(slow_ok, NULL, &t[0]), 0);
    ot_assert_eq(ot_task_async(slow_ok, NULL, &t[1]), 0);
    ot_assert_eq(ot_task_await_many(t, 2, INT64_MAX, r, &failed), 0);
    for (int i = 0; i < 2; i++) {
        ot_assert_eq(r[i]->size, 2u);
        ot_assert(memcmp(ot_msg_data(r[i]), "ok", 2) == 0);
        ot_msg_free(r[i]);
    }
}

struct count_in {
    int left;
};

static int next_item(void *state, ot_buf *item) {
    struct count_in *c = state;
    if (c->left == 0)
        return 0;
    c->left--;
    *item = (ot_buf){"x", 1};
    return 1;
}

static int tally(const ot_stream_item *r, void *arg) {
    int *ok = arg;
    if (r->status == 0 && r->len == 2 && memcmp(r->data, "ok", 2) == 0)
        (*ok)++;
    return 0;
}

OT_TEST(sup_review, async_stream_kill_task_with_a_huge_timeout_kills_nothing, .timeout = 60) {
    struct count_in in = {4};
    ot_stream s = {next_item, &in};
    ot_stream_opts o = {.max_concurrency = 2,
                        .timeout_ms = INT64_MAX,
                        .on_timeout = OT_ON_TIMEOUT_KILL_TASK};
    int ok = 0;
    ot_assert_eq(ot_task_async_stream(&s, slow_ok, &o, tally, &ok), 0);
    ot_assert_eq(ok, 4);
}

static int stubborn_start(void *arg, ot_pid *out);

static void stubborn_main(void *arg) {
    (void)arg;
    ot_trap_exit(true);
    ot_msg *m = ot_receive_tag(OT_TAG_EXIT, OT_INFINITY); /* its supervisor's shutdown */
    ot_msg_free(m);
    ot_sleep(50); /* a slow but finite clean-up */
    ot_exit_self(OT_REASON(OT_SHUTDOWN));
}

static int stubborn_start(void *arg, ot_pid *out) {
    (void)arg;
    ot_spawn_opts so = {.link = true};
    *out = ot_spawn_opt(stubborn_main, NULL, &so);
    return out->v ? 0 : -EAGAIN;
}

OT_TEST(sup_review, supervisor_stop_with_a_huge_timeout_waits, .timeout = 60) {
    ot_child_spec cs[1] = {{.id = "slow", .start = stubborn_start, .shutdown = OT_INFINITY}};
    ot_sup_flags f = {.strategy = OT_ONE_FOR_ONE};
    ot_pid sup;
    ot_trap_exit(true);
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 1, NULL, &sup), 0);
    ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_SHUTDOWN), INT64_MAX), 0);
    ot_assert(!ot_is_alive(sup));
}

static int stop_self(void *arg, ot_pid *out) {
    (void)out;
    *(int *)arg = ot_supervisor_stop(ot_self(), OT_REASON(OT_NORMAL), 1000);
    return OT_IGNORED;
}

OT_TEST(sup_review, bad_start_timeout_and_stopping_oneself, .timeout = 60) {
    ot_sup_flags f = {0};
    ot_pid sup;
    ot_start_opts o = {.timeout_ms = -5};
    ot_assert_eq(ot_supervisor_start_link(&f, NULL, 0, &o, &sup), -EINVAL);
    o.timeout_ms = INT64_MIN;
    ot_assert_eq(ot_dynsup_start_link(NULL, &o, &sup), -EINVAL);
    static int rc = 1;
    ot_child_spec c = {.id = "self_stopper", .start = stop_self, .arg = &rc};
    ot_assert_eq(ot_supervisor_start_link(&f, &c, 1, NULL, &sup), 0);
    ot_assert_eq(rc, -EDEADLK); /* the start ran inside the supervisor */
    ot_assert(ot_is_alive(sup));
}

static void idle(void *arg) {
    (void)arg;
    ot_receive_tag(OT_TAG_USER, OT_INFINITY);
    ot_exit_self(ot_reason_error("told to crash"));
}

static int idle_start(void *arg, ot_pid *out) {
    (void)arg;
    ot_spawn_opts o = {.link = true};
    *out = ot_spawn_opt(idle, NULL, &o);
    return out->v ? 0 : -errno;
}

static ot_pid child_pid(ot_pid sup) {
    ot_child_info in[1];
    size_t n = 0;
    for (int i = 0; i < 5000; i++) {
        if (ot_supervisor_which_children(sup, in, 1, &n) == 0 && n == 1 && in[0].pid.v)
            return in[0].pid;
        ot_sleep(1);
    }
    return OT_NOPID;
}

/* The restart ring grows with the restarts in the period: a huge
 * max_restarts costs nothing up front, and a count past the first 16 is
 * still exact. */
OT_TEST(sup_review, restart_ring_grows_and_counts_exactly, .timeout = 120) {
    ot_otp_rules(0, 0);
    ot_trap_exit(true);
    ot_child_spec c = {.id = "idle", .start = idle_start};
    ot_sup_flags huge = {.max_restarts = 2147483647, .max_seconds = 60};
    ot_pid sup;
    ot_assert_eq(ot_supervisor_start_link(&huge, &c, 1, NULL, &sup), 0);
    for (int i = 0; i < 100; i++) {
        ot_pid p = child_pid(sup);
        ot_assert(p.v != 0);
        ot_send(p, OT_TAG_USER, NULL, 0);
        while (ot_is_alive(p))
            ot_sleep(1);
    }
    ot_assert(ot_is_alive(sup));
    ot_sup_flags twenty = {.max_restarts = 20, .max_seconds = 60};
    ot_assert_eq(ot_supervisor_start_link(&twenty, &c, 1, NULL, &sup), 0);
    for (int i = 0; i < 20; i++) {
        ot_pid p = child_pid(sup);
        ot_assert(p.v != 0);
        ot_send(p, OT_TAG_USER, NULL, 0);
        while (ot_is_alive(p))
            ot_sleep(1);
        ot_sleep(2);
    }
    ot_assert(ot_is_alive(sup));
    ot_send(child_pid(sup), OT_TAG_USER, NULL, 0); /* the 21st within the period */
    bool gone = false;
    for (int i = 0; i < 5000 && !gone; i++) {
        gone = !ot_is_alive(sup);
        ot_sleep(1);
    }
    ot_assert(gone, "21 restarts in 60 s with max_restarts 20 did not stop it");
    ot_otp_rules(OT_RULES_ALL, 0);
}

static int kill_my_supervisor(void *arg, ot_pid *out) {
    (void)arg;
    (void)out;
    ot_exit(ot_self(), OT_REASON(OT_KILL)); /* the start runs in the supervisor */
    return -EIO;
}

/* A supervisor that dies during a call: the caller gets -ECONNRESET, a
 * later call -ESRCH, and a stale pid never reaches anything. */
OT_TEST(sup_review, a_supervisor_dying_during_a_call, .timeout = 60) {
    ot_trap_exit(true);
    ot_sup_flags f = {0};
    ot_pid sup, p;
    ot_assert_eq(ot_supervisor_start_link(&f, NULL, 0, NULL, &sup), 0);
    ot_child_spec c = {.id = "killer", .start = kill_my_supervisor};
    ot_assert_eq(ot_supervisor_start_child(sup, &c, &p), -ECONNRESET);
    ot_child_counts k;
    ot_assert_eq(ot_supervisor_count_children(sup, &k), -ESRCH);
    ot_assert_eq(ot_supervisor_terminate_child(sup, "killer"), -ESRCH);
    ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_NORMAL), 1000), -ESRCH);
    ot_msg *x = ot_receive_tag(OT_TAG_EXIT, 10000);
    ot_assert(x != NULL);
    ot_assert_eq(((ot_exit_msg *)ot_msg_data(x))->reason.kind, OT_KILLED);
    ot_msg_free(x);
}
