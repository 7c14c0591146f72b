/* Monitors against erlang:monitor/2 and demonitor/2 (OTP 25 checked in erl):
 * exactly one DOWN per monitor, carrying the monitor's ref, the monitored
 * pid and its exit reason, at scale (100,000 monitors on processes that die
 * in a random order: every ref exactly once, pid and reason matching);
 * demonitor with OT_DEMONITOR_FLUSH removes a DOWN already queued, plain
 * demonitor leaves one that was already queued (as OTP documents) and no
 * DOWN arrives after demonitor returned, also when the target dies at the
 * same moment; a dead or never-issued pid gets DOWN noproc at once (OTP 25
 * delivers it asynchronously; Otter queues it before ot_monitor returns);
 * the spawn option monitor, for stackful and handler processes. */
#include <otter/testing.h>

#include "support/down.h"

#include <stdlib.h>
#include <string.h>

enum { TAG_DIE = OT_TAG_USER + 1, TAG_GO };

#define WAIT_MS 20000

static ot_down_msg expect_down(ot_ref r) {
    ot_msg *m = ot_receive_match(is_down_ref, &r.v, WAIT_MS);
    ot_assert(m != NULL, "no DOWN for ref %llu", (unsigned long long)r.v);
    ot_assert_eq(m->size, sizeof(ot_down_msg));
    ot_down_msg d;
    memcpy(&d, ot_msg_data(m), sizeof d);
    ot_msg_free(m);
    ot_assert_eq(d.ref.v, r.v);
    return d;
}

static void no_down(ot_ref r, int64_t wait_ms) {
    ot_msg *m = ot_receive_match(is_down_ref, &r.v, wait_ms);
    ot_assert(m == NULL, "a DOWN arrived for a demonitored ref");
}

static size_t queue_len(void) {
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    return in.message_queue_len;
}

/* A handler that exits with the reason it is sent (an ot_reason payload). */
static int die_on_message(void *state, const ot_msg *m) {
    (void)state;
    if (m->tag == TAG_DIE && m->size == sizeof(ot_reason)) {
        ot_reason r;
        memcpy(&r, ot_msg_data(m), sizeof r);
        ot_exit_self(r);
    }
    return 0;
}

/* The stackful counterpart. */
static void wait_and_die(void *arg) {
    (void)arg;
    ot_msg *m = ot_receive_tag(TAG_DIE, OT_INFINITY);
    ot_reason r;
    memcpy(&r, ot_msg_data(m), sizeof r);
    ot_exit_self(r);
}

static void exit_at_once(void *arg) { (void)arg; }

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

struct ref_ix {
    uint64_t ref;
    uint32_t ix;
};

static int by_ref(const void *a, const void *b) {
    uint64_t x = ((const struct ref_ix *)a)->ref, y = ((const struct ref_ix *)b)->ref;
    return x < y ? -1 : x > y;
}

OT_TEST(monitors, hundred_thousand_monitors_random_deaths, .timeout = 300) {
#ifdef OT_TSAN
    /* every handler run makes a TSan fiber (785 KB cleared, 5-10 ms):
     * 100,000 ran past the timeout there */
    enum { N = 10000 };
#else
    enum { N = 100000 };
#endif
    ot_pid *pids = malloc(N * sizeof *pids);
    struct ref_ix *refs = malloc(N * sizeof *refs);
    uint32_t *order = malloc(N * sizeof *order);
    uint8_t *seen = calloc(N, 1);
    ot_assert(pids && refs && order && seen);
    for (uint32_t i = 0; i < N; i++) {
        pids[i] = ot_spawn_handler(die_on_message, NULL, NULL);
        ot_assert(pids[i].v != 0, "spawn %u: %d", i, errno);
        ot_ref r = ot_monitor(pids[i]);
        ot_assert(r.v != 0);
        refs[i] = (struct ref_ix){r.v, i};
        order[i] = i;
    }
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_monitors, N);
    qsort(refs, N, sizeof *refs, by_ref);
    for (uint32_t i = 1; i < N; i++)
        ot_assert(refs[i].ref != refs[i - 1].ref, "duplicate monitor ref");
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (uint32_t i = N - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(xorshift(&seed) % (i + 1));
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint32_t k = 0; k < N; k++) {
        uint32_t i = order[k];
        /* {shutdown, text}: distinct per victim, and no crash report each */
        ot_reason r = OT_REASON(OT_SHUTDOWN);
        snprintf(r.text, sizeof r.text, "victim %u", i);
        ot_assert_eq(ot_send(pids[i], TAG_DIE, &r, sizeof r), 0);
    }
    for (uint32_t k = 0; k < N; k++) {
        ot_msg *m = ot_receive_tag(OT_TAG_DOWN, WAIT_MS);
        ot_assert(m != NULL, "only %u DOWN messages of %u", k, (unsigned)N);
        ot_down_msg d;
        ot_assert_eq(m->size, sizeof d);
        memcpy(&d, ot_msg_data(m), sizeof d);
        ot_assert_eq(m->ref.v, d.ref.v);
        ot_msg_free(m);
        struct ref_ix key = {d.ref.v, 0};
        struct ref_ix *hit = bsearch(&key, refs, N, sizeof *refs, by_ref);
        ot_assert(hit != NULL, "DOWN with an unknown ref");
        uint32_t i = hit->ix;
        ot_assert(!seen[i], "second DOWN for monitor %u", i);
        seen[i] = 1;
        ot_assert_eq(d.pid.v, pids[i].v);
        ot_assert_eq(d.reason.kind, OT_SHUTDOWN);
        char want[32];
        snprintf(want, sizeof want, "victim %u", i);
        ot_assert(strcmp(d.reason.text, want) == 0, "reason %s for %s", d.reason.text, want);
    }
    ot_assert(ot_receive_tag(OT_TAG_DOWN, 100) == NULL, "more than N DOWN messages");
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_monitors, 0);
    free(pids);
    free(refs);
    free(order);
    free(seen);
}

OT_TEST(monitors, down_carries_ref_pid_and_reason, .timeout = 60) {
    for (int kind = 0; kind < 2; kind++) {
        ot_pid p = kind ? ot_spawn_handler(die_on_message, NULL, NULL)
                        : ot_spawn(wait_and_die, NULL);
        ot_ref r = ot_monitor(p);
        ot_ref r2 = ot_monitor(p); /* two monitors, two DOWNs */
        ot_assert(r.v != r2.v);
        ot_reason why = ot_reason_error("kind %d", kind);
        ot_send(p, TAG_DIE, &why, sizeof why);
        ot_down_msg d = expect_down(r);
        ot_assert_eq(d.pid.v, p.v);
        ot_assert_eq(d.reason.kind, OT_ERROR);
        ot_assert(strcmp(d.reason.text, why.text) == 0);
        d = expect_down(r2);
        ot_assert_eq(d.pid.v, p.v);
        ot_assert_eq(d.reason.kind, OT_ERROR);
        no_down(r, 50);
        ot_assert_eq(queue_len(), 0);
    }
}

OT_TEST(monitors, down_reason_for_normal_and_killed, .timeout = 60) {
    ot_pid p = ot_spawn(exit_at_once, NULL);
    ot_ref r = ot_monitor(p);
    ot_down_msg d = expect_down(r);
    /* exited already (noproc) or normally: both are what OTP may report */
    ot_assert(d.reason.kind == OT_NORMAL || d.reason.kind == OT_NOPROC);
    p = ot_spawn_handler(die_on_message, NULL, NULL);
    r = ot_monitor(p);
    ot_assert_eq(ot_exit(p, OT_REASON(OT_KILL)), 0);
    d = expect_down(r);
    ot_assert_eq(d.pid.v, p.v);
    ot_assert_eq(d.reason.kind, OT_KILLED);
}

OT_TEST(monitors, demonitor_flush_removes_queued_down, .timeout = 60) {
    ot_pid p = ot_spawn_handler(die_on_message, NULL, NULL);
    ot_ref r = ot_monitor(p);
    ot_reason why = ot_reason_error("flushed");
    ot_send(p, TAG_DIE, &why, sizeof why);
    /* wait until the DOWN sits in the queue (process_info of self drains) */
    for (int i = 0; i < 20000 && queue_len() == 0; i++)
        ot_sleep(1);
    ot_assert_eq(queue_len(), 1);
    ot_assert_eq(ot_demonitor(r, OT_DEMONITOR_FLUSH), 0);
    ot_assert_eq(queue_len(), 0);
    no_down(r, 50);
}

OT_TEST(monitors, demonitor_without_flush_leaves_queued_down, .timeout = 60) {
    /* OTP: a DOWN placed in the queue before demonitor returned stays there */
    ot_pid p = ot_spawn_handler(die_on_message, NULL, NULL);
    ot_ref r = ot_monitor(p);
    ot_reason why = ot_reason_error("stays");
    ot_send(p, TAG_DIE, &why, sizeof why);
    for (int i = 0; i < 20000 && queue_len() == 0; i++)
        ot_sleep(1);
    ot_assert_eq(queue_len(), 1);
    ot_assert_eq(ot_demonitor(r, 0), 0);
    ot_down_msg d = expect_down(r);
    ot_assert_eq(d.pid.v, p.v);
    ot_assert(strcmp(d.reason.text, "stays") == 0);
}

OT_TEST(monitors, no_down_after_demonitor, .timeout = 60) {
    for (int kind = 0; kind < 2; kind++) {
        ot_pid p = kind ? ot_spawn_handler(die_on_message, NULL, NULL)
                        : ot_spawn(wait_and_die, NULL);
        ot_ref r = ot_monitor(p);
        ot_ref sync = ot_monitor(p);
        ot_assert_eq(ot_demonitor(r, 0), 0);
        struct ot_process_info in;
        ot_assert_eq(ot_process_info(ot_self(), &in), 0);
        ot_assert_eq(in.n_monitors, 1);
        ot_reason why = ot_reason_error("after demonitor");
        ot_send(p, TAG_DIE, &why, sizeof why);
        ot_down_msg d = expect_down(sync); /* the target is gone */
        ot_assert_eq(d.pid.v, p.v);
        no_down(r, 50);
        ot_assert_eq(queue_len(), 0);
        ot_assert_eq(ot_demonitor(r, 0), 0); /* twice: still 0, as OTP's true */
        ot_assert_eq(ot_demonitor(r, OT_DEMONITOR_FLUSH), 0);
    }
}

OT_TEST(monitors, demonitor_racing_the_exit, .timeout = 120) {
    /* the target exits on its own while we demonitor: whichever wins, no
     * DOWN for the demonitored ref may be seen afterwards */
    enum { ROUNDS = 2000 };
    for (int i = 0; i < ROUNDS; i++) {
        ot_pid p = ot_spawn(exit_at_once, NULL);
        ot_ref r = ot_monitor(p);
        ot_ref sync = ot_monitor(p);
        if (i & 1)
            ot_yield();
        ot_assert_eq(ot_demonitor(r, 0), 0);
        ot_down_msg d = expect_down(sync);
        ot_assert_eq(d.pid.v, p.v);
        ot_msg *m = ot_receive_match(is_down_ref, &r.v, 0);
        /* a DOWN queued before demonitor returned may remain (OTP); none
         * may arrive later, so the queue holds at most this one */
        if (m)
            ot_msg_free(m);
        no_down(r, 0);
    }
    ot_assert(ot_receive_tag(OT_TAG_DOWN, 50) == NULL);
    for (int i = 0; i < ROUNDS; i++) {
        ot_pid p = ot_spawn(exit_at_once, NULL);
        ot_ref r = ot_monitor(p);
        ot_ref sync = ot_monitor(p);
        if (i & 1)
            ot_yield();
        ot_assert_eq(ot_demonitor(r, OT_DEMONITOR_FLUSH), 0);
        expect_down(sync);
        no_down(r, 0); /* with flush: none at all */
    }
    ot_assert(ot_receive_tag(OT_TAG_DOWN, 50) == NULL);
}

OT_TEST(monitors, monitor_dead_or_unknown_pid_is_noproc_at_once, .timeout = 60) {
    ot_pid p = ot_spawn_handler(die_on_message, NULL, NULL);
    ot_ref sync = ot_monitor(p);
    ot_exit(p, OT_REASON(OT_KILL));
    expect_down(sync);
    ot_pid never = {((uint64_t)0x7fff0000 << 32) | 0xfffff};
    ot_pid pids[3] = {p, never, OT_NOPID};
    for (int i = 0; i < 3; i++) {
        ot_ref r = ot_monitor(pids[i]);
        ot_assert(r.v != 0);
        ot_msg *m = ot_receive_match(is_down_ref, &r.v, 0); /* already queued */
        ot_assert(m != NULL, "no immediate DOWN for case %d", i);
        ot_down_msg d;
        memcpy(&d, ot_msg_data(m), sizeof d);
        ot_msg_free(m);
        ot_assert_eq(d.ref.v, r.v);
        ot_assert_eq(d.pid.v, pids[i].v);
        ot_assert_eq(d.reason.kind, OT_NOPROC);
    }
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_monitors, 0);
}

OT_TEST(monitors, spawn_option_monitor, .timeout = 60) {
    for (int kind = 0; kind < 2; kind++) {
        ot_ref r = OT_NOREF;
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &r};
        ot_pid p = kind ? ot_spawn_handler(die_on_message, NULL, &o)
                        : ot_spawn_opt(wait_and_die, NULL, &o);
        ot_assert(p.v != 0);
        ot_assert(r.v != 0);
        ot_reason why = OT_REASON(OT_SHUTDOWN);
        ot_send(p, TAG_DIE, &why, sizeof why);
        ot_down_msg d = expect_down(r);
        ot_assert_eq(d.pid.v, p.v);
        ot_assert_eq(d.reason.kind, OT_SHUTDOWN);
        ot_assert_eq(ot_process_info(p, &(struct ot_process_info){0}), -ESRCH);
    }
    /* monitor without a place for the ref is refused */
    ot_spawn_opts bad = {.monitor = true};
    errno = 0;
    ot_assert_eq(ot_spawn_opt(wait_and_die, NULL, &bad).v, 0);
    ot_assert_eq(errno, EINVAL);
}

OT_TEST(monitors, monitor_self_never_fires, .timeout = 60) {
    ot_ref r = ot_monitor(ot_self());
    ot_assert(r.v != 0);
    no_down(r, 20);
    ot_assert_eq(ot_demonitor(r, OT_DEMONITOR_FLUSH), 0);
}

OT_TEST(monitors, monitored_by_and_release_on_exit, .timeout = 60) {
    /* the monitor is removed from both sides when the target exits, and
     * from the target when the watcher demonitors */
    ot_pid p = ot_spawn_handler(die_on_message, NULL, NULL);
    ot_ref r1 = ot_monitor(p), r2 = ot_monitor(p);
    struct ot_process_info in;
    for (int i = 0; i < 20000; i++) {
        ot_assert_eq(ot_process_info(p, &in), 0);
        if (in.status == OT_STATUS_WAITING && in.n_monitored_by == 2)
            break;
        ot_sleep(1);
    }
    ot_assert_eq(in.n_monitored_by, 2);
    ot_assert_eq(ot_demonitor(r1, 0), 0);
    /* the target learns of it asynchronously; a message wakes it to drain */
    ot_send(p, TAG_GO, NULL, 0);
    for (int i = 0; i < 20000; i++) {
        ot_assert_eq(ot_process_info(p, &in), 0);
        if (in.status == OT_STATUS_WAITING && in.n_monitored_by == 1)
            break;
        ot_sleep(1);
    }
    ot_assert_eq(in.n_monitored_by, 1);
    ot_exit(p, ot_reason_error("bye"));
    ot_down_msg d = expect_down(r2);
    ot_assert_eq(d.reason.kind, OT_ERROR);
    no_down(r1, 20);
}

Test(monitors, calls_outside_a_process) {
    errno = 0;
    cr_assert_eq(ot_monitor((ot_pid){1}).v, 0);
    cr_assert_eq(errno, EPERM);
    cr_assert_eq(ot_demonitor((ot_ref){1}, 0), -EPERM);
}

OT_TEST(monitors, demonitor_bad_flags, .timeout = 60) {
    ot_assert_eq(ot_demonitor((ot_ref){12345}, 0x80), -EINVAL);
}
