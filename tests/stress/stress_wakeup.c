/* Lost-wakeup stress (ARCHITECTURE 1: the sleep state word and the wake
 * around it). Ping-pong between two processes bound to different schedulers,
 * so every message wakes a process on the other scheduler: with the default
 * spin, and with spin_us = 1 so that the receiving scheduler has nearly
 * always gone to sleep and every wake takes the kick path. Then many such
 * pairs at once, and a foreign thread (ot_send + ot_receive, which gives it a
 * futex-backed mailbox) against a process. Every exchange carries a counter
 * that the other side checks, and each test has a Criterion timeout, so a
 * lost wakeup shows up as a hang that fails the test. */
#include <otter/testing.h>

#include <pthread.h>
#include <string.h>
#include <time.h>

#ifdef OT_SANITIZE
#define PINGS 50000u
#define SLEEPY_PINGS 10000u
#define FOREIGN_PINGS 20000u
#define PAIRS 20u
#define PAIR_PINGS 2000u
#else
#define PINGS 1000000u
#define SLEEPY_PINGS 100000u
#define FOREIGN_PINGS 1000000u
#define PAIRS 100u
#define PAIR_PINGS 20000u
#endif

enum { TAG_PING = OT_TAG_USER + 1, TAG_PONG, TAG_DONE, TAG_START };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t u32_of(const ot_msg *m) {
    uint32_t v;
    memcpy(&v, ot_msg_data(m), sizeof v);
    return v;
}

struct pp {
    ot_pid parent, peer;
    uint32_t rounds;
    int expect_sched; /* -1: any */
};

/* Answers each ping with the same counter; ends on a ping of ~0u. */
static void ponger(void *arg) {
    struct pp *a = arg;
    uint32_t bad = 0, want = 0;
    for (;;) {
        ot_msg *m = ot_receive(60000);
        ot_assert(m != NULL, "(ponger starved after %u pings)", want);
        uint32_t v = u32_of(m);
        ot_pid from = m->from;
        ot_msg_free(m);
        if (v == ~0u)
            break;
        bad += v != want;
        bad += a->expect_sched >= 0 && ot_scheduler_id() != a->expect_sched;
        want = v + 1;
        ot_send(from, TAG_PONG, &v, sizeof v);
    }
    ot_assert_eq(bad, 0);
}

static void pinger(void *arg) {
    struct pp *a = arg;
    uint32_t bad = 0;
    ot_msg *m = ot_receive_tag(TAG_START, OT_INFINITY);
    ot_msg_free(m);
    for (uint32_t i = 0; i < a->rounds; i++) {
        ot_send(a->peer, TAG_PING, &i, sizeof i);
        m = ot_receive(60000);
        ot_assert(m != NULL, "(no pong for ping %u)", i);
        bad += m->tag != TAG_PONG || u32_of(m) != i || !ot_pid_eq(m->from, a->peer);
        bad += a->expect_sched >= 0 && ot_scheduler_id() != a->expect_sched;
        ot_msg_free(m);
    }
    uint32_t end = ~0u;
    ot_send(a->peer, TAG_PING, &end, sizeof end);
    ot_send(a->parent, TAG_DONE, &bad, sizeof bad);
}

static void run_pairs(uint32_t npairs, uint32_t rounds, const char *what) {
    static struct pp args[2 * 128];
    unsigned ns = ot_schedulers();
    ot_pid self = ot_self();
    ot_pid pingers[128];
    for (uint32_t p = 0; p < npairs; p++) {
        int s0 = (int)(p % ns), s1 = (int)((p + 1) % ns);
        struct pp *po = &args[2 * p], *pi = &args[2 * p + 1];
        *po = (struct pp){self, OT_NOPID, rounds, s1};
        ot_spawn_opts o1 = {.scheduler = s1, .scheduler_set = true, .bind = true};
        ot_pid pong = ot_spawn_opt(ponger, po, &o1);
        ot_assert(pong.v != 0);
        *pi = (struct pp){self, pong, rounds, s0};
        ot_spawn_opts o0 = {.scheduler = s0, .scheduler_set = true, .bind = true};
        pingers[p] = ot_spawn_opt(pinger, pi, &o0);
        ot_assert(pingers[p].v != 0);
    }
    double t0 = now_s();
    for (uint32_t p = 0; p < npairs; p++)
        ot_send(pingers[p], TAG_START, NULL, 0);
    for (uint32_t p = 0; p < npairs; p++) {
        ot_msg *m = ot_receive_tag(TAG_DONE, 300000);
        ot_assert(m != NULL);
        ot_assert_eq(u32_of(m), 0);
        ot_msg_free(m);
    }
    double t = now_s() - t0;
    uint64_t total = (uint64_t)npairs * rounds;
    cr_log_info("%s: %llu round trips in %.2f s (%.2f us each)", what, (unsigned long long)total, t,
                t / (double)total * 1e6 * npairs);
}

OT_TEST(stress_wakeup, pinned_pingpong, .timeout = 300) {
    ot_assert(ot_schedulers() >= 2, "(needs two schedulers)");
    run_pairs(1, PINGS, "pinned ping-pong, default spin");
}

static void sleepy(void) {
    ot_test_config.spin_us = 1;
}

OT_TEST(stress_wakeup, pinned_pingpong_sleepy_schedulers, .init = sleepy, .timeout = 300) {
    ot_assert(ot_schedulers() >= 2, "(needs two schedulers)");
    run_pairs(1, SLEEPY_PINGS, "pinned ping-pong, spin 1 us");
}

OT_TEST(stress_wakeup, many_pairs, .timeout = 300) {
    run_pairs(PAIRS, PAIR_PINGS, "many pinned pairs");
}

OT_TEST(stress_wakeup, many_pairs_sleepy, .init = sleepy, .timeout = 300) {
    run_pairs(PAIRS, PAIR_PINGS / 4, "many pinned pairs, spin 1 us");
}

/* ---- a foreign thread against a process --------------------------------------------- */

struct fa {
    ot_pid peer;
    uint32_t rounds;
    uint32_t ok;
    int done;
};

static void *foreign_pinger(void *v) {
    struct fa *a = v;
    for (uint32_t i = 0; i < a->rounds; i++) {
        if (ot_send(a->peer, TAG_PING, &i, sizeof i) != 0)
            break;
        ot_msg *m = ot_receive(60000);
        if (!m)
            break;
        bool good = m->tag == TAG_PONG && u32_of(m) == i && ot_pid_eq(m->from, a->peer);
        ot_msg_free(m);
        if (!good)
            break;
        a->ok++;
    }
    uint32_t end = ~0u;
    ot_send(a->peer, TAG_PING, &end, sizeof end);
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void foreign_run(uint32_t rounds, const char *what) {
    static struct pp pa;
    pa = (struct pp){ot_self(), OT_NOPID, rounds, -1};
    ot_pid pong = ot_spawn(ponger, &pa);
    ot_assert(pong.v != 0);
    static struct fa a;
    a = (struct fa){pong, rounds, 0, 0};
    pthread_t th;
    double t0 = now_s();
    ot_assert_eq(pthread_create(&th, NULL, foreign_pinger, &a), 0);
    while (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE))
        ot_sleep(10);
    double t = now_s() - t0;
    pthread_join(th, NULL);
    ot_assert_eq(a.ok, rounds);
    cr_log_info("%s: %u round trips in %.2f s (%.2f us each)", what, rounds, t, t / rounds * 1e6);
}

OT_TEST(stress_wakeup, foreign_thread_pingpong, .timeout = 300) {
    foreign_run(FOREIGN_PINGS, "foreign thread <-> process");
}

OT_TEST(stress_wakeup, foreign_thread_pingpong_sleepy, .init = sleepy, .timeout = 300) {
    foreign_run(FOREIGN_PINGS / 10, "foreign thread <-> process, spin 1 us");
}
