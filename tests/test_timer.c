/* Tests of timers (otter/timer.h) and of the waits built on them: a timer
 * never fires before its deadline and, on an idle machine, within 2 ms after
 * it (50 samples: the median within 2 ms and 90% within 10 ms, so a busy
 * 2-core box does not make the test flaky; the numbers are printed);
 * ot_cancel_timer returns the
 * time left within 1 ms of what the clock says, and -1 once fired, cancelled
 * or for refs that are no timers; ot_read_timer counts down; cancelling from
 * another scheduler is safe and exact (a cancelled timer's message never
 * arrives, a timer whose cancel lost the race arrives exactly once); receive
 * timeouts and ot_sleep last at least their duration, and a timeout that was
 * not reached never cuts a later wait short. */
#include <otter/testing.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_T = OT_TAG_USER + 1, TAG_REF, TAG_DONE, TAG_X };

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t u32_of(const ot_msg *m) {
    uint32_t v;
    memcpy(&v, ot_msg_data(m), sizeof v);
    return v;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- accuracy -------------------------------------------------------------------- */

OT_TEST(timer, send_after_never_early_and_within_2ms, .timeout = 60) {
    enum { N = 50 };
    int64_t late_us[N];
    ot_pid self = ot_self();
    for (int i = 0; i < N; i++) {
        int64_t ms = 1 + (i * 7) % 20;
        uint32_t v = (uint32_t)i;
        uint64_t t0 = now_ns();
        ot_ref r = ot_send_after(self, ms, TAG_T, &v, sizeof v);
        ot_assert(r.v != 0);
        ot_msg *m = ot_receive_tag(TAG_T, 5000);
        uint64_t t1 = now_ns();
        ot_assert(m != NULL);
        ot_assert_eq(u32_of(m), i);
        ot_assert_eq(m->from.v, self.v);
        ot_msg_free(m);
        int64_t late = (int64_t)(t1 - t0) - ms * 1000000;
        ot_assert(late >= 0, "(timer %d of %lld ms fired %lld us early)", i, (long long)ms,
                  (long long)(-late / 1000));
        late_us[i] = late / 1000;
        ot_assert_eq(ot_read_timer(r), -1);
        ot_assert_eq(ot_cancel_timer(r), -1);
    }
    qsort(late_us, N, sizeof late_us[0], cmp_i64);
    int within = 0;
    for (int i = 0; i < N; i++)
        within += late_us[i] <= 2000;
    cr_log_info("send_after lateness over %d timers: median %lld us, p90 %lld us, max %lld us, "
                "%d within 2 ms",
                N, (long long)late_us[N / 2], (long long)late_us[N * 9 / 10],
                (long long)late_us[N - 1], within);
    /* A timer the wheel rounds or files one tick or slot too late, or one
     * that waits for some other wake-up, is late every time: the median
     * shows it. The tail is the OS's: on a loaded 2-core CI box 7 of 50
     * wake-ups came more than 2 ms late, so the tail gets 10 ms, still
     * short of a missed wake-up that only the next unrelated event ends. */
    ot_assert(late_us[N / 2] <= 2000, "(median %lld us)", (long long)late_us[N / 2]);
    ot_assert(late_us[N * 9 / 10] <= 10000, "(p90 %lld us, %d of %d within 2 ms)",
              (long long)late_us[N * 9 / 10], within, N);
}

/* Arming reads an upper bound of the clock from the TSC (timer.c): timers
 * armed back to back, in rounds 3 ms apart (each thread's TSC reference is
 * used for 1 ms), with deadlines 0-7 ms ahead. Each payload is the caller's
 * own CLOCK_MONOTONIC read before the arm plus the delay; none may arrive
 * before it. The first round comes after the 20 ms calibration. */
OT_TEST(timer, send_after_burst_never_early, .timeout = 60) {
    enum { ROUNDS = 8, PER = 2000 };
    ot_pid self = ot_self();
    ot_sleep(25);
    int64_t worst_us = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < PER; i++) {
            int64_t ms = i % 8;
            uint64_t deadline = now_ns() + (uint64_t)ms * 1000000u;
            ot_assert(ot_send_after(self, ms, TAG_T, &deadline, sizeof deadline).v != 0);
        }
        for (int i = 0; i < PER; i++) {
            ot_msg *m = ot_receive_tag(TAG_T, 5000);
            uint64_t t = now_ns();
            ot_assert(m != NULL);
            uint64_t deadline;
            memcpy(&deadline, ot_msg_data(m), sizeof deadline);
            ot_msg_free(m);
            ot_assert(t >= deadline, "(round %d: a timer arrived %lld ns early)", round,
                      (long long)(deadline - t));
            if ((int64_t)(t - deadline) / 1000 > worst_us)
                worst_us = (int64_t)(t - deadline) / 1000;
        }
        ot_sleep(3);
    }
    cr_log_info("burst: %d timers, none early, worst %lld us late", ROUNDS * PER,
                (long long)worst_us);
}

/* Payloads of every size around the 16 bytes kept in the timer itself
 * (copied there without a call) and past it (an envelope at arm time). */
OT_TEST(timer, send_after_payload_sizes, .timeout = 30) {
    ot_pid self = ot_self();
    unsigned char buf[40];
    for (uint32_t size = 0; size <= sizeof buf; size++) {
        for (uint32_t i = 0; i < sizeof buf; i++)
            buf[i] = (unsigned char)(i * 7 + size);
        int64_t ms = (int64_t)size / 20; /* 0 and 1 ms, inline and envelope alike */
        ot_assert(ot_send_after(self, ms, TAG_T, buf, size).v != 0);
        memset(buf, 0, sizeof buf); /* the timer holds its own copy */
        ot_msg *m = ot_receive_tag(TAG_T, 5000);
        ot_assert(m != NULL);
        ot_assert_eq(m->size, size);
        const unsigned char *d = ot_msg_data(m);
        for (uint32_t i = 0; i < size; i++)
            ot_assert(d[i] == (unsigned char)(i * 7 + size), "(size %u, byte %u)", size, i);
        ot_msg_free(m);
    }
}

/* ---- cancel and read ------------------------------------------------------------- */

OT_TEST(timer, cancel_and_read_return_time_left, .timeout = 30) {
    ot_pid self = ot_self();
    uint32_t v = 1;
    uint64_t t0 = now_ns();
    ot_ref r = ot_send_after(self, 300, TAG_T, &v, sizeof v);
    uint64_t t0b = now_ns();
    ot_assert(r.v != 0);

    int64_t prev = 301;
    for (int i = 0; i < 4; i++) {
        ot_sleep(20);
        uint64_t a = now_ns();
        int64_t left = ot_read_timer(r);
        uint64_t b = now_ns();
        /* the deadline lies in [t0 + 300 ms, t0b + 300 ms + 1 tick) */
        double lo = (double)((int64_t)(t0 + 300000000u) - (int64_t)b) / 1e6 - 1.0;
        double hi = (double)((int64_t)(t0b + 300000000u) - (int64_t)a) / 1e6 + 1.0;
        ot_assert((double)left >= lo && (double)left <= hi, "(read %lld, expected %.2f..%.2f)",
                  (long long)left, lo, hi);
        ot_assert(left <= prev);
        prev = left;
    }
    uint64_t a = now_ns();
    int64_t left = ot_cancel_timer(r);
    uint64_t b = now_ns();
    double expect = ((double)(t0 + t0b) / 2 + 300e6 - (double)(a + b) / 2) / 1e6;
    double slack = (double)(t0b - t0 + b - a) / 2e6 + 1.0;
    ot_assert(left >= 0);
    ot_assert((double)left >= expect - slack && (double)left <= expect + slack,
              "(cancel said %lld ms left, clock says %.2f)", (long long)left, expect);
    cr_log_info("cancel_timer: %lld ms left, clock says %.3f", (long long)left, expect);
    ot_assert_eq(ot_cancel_timer(r), -1); /* second cancel */
    ot_assert_eq(ot_read_timer(r), -1);
    /* it never arrives */
    errno = 0;
    ot_assert(ot_receive_tag(TAG_T, 330 - (int64_t)((now_ns() - t0) / 1000000u)) == NULL);
    ot_assert_eq(errno, ETIMEDOUT);

    /* after firing: -1 */
    r = ot_send_after(self, 2, TAG_T, &v, sizeof v);
    ot_msg *m = ot_receive_tag(TAG_T, 1000);
    ot_assert(m != NULL);
    ot_assert_eq(m->from.v, self.v);
    ot_msg_free(m);
    ot_assert_eq(ot_cancel_timer(r), -1);
    ot_assert_eq(ot_read_timer(r), -1);

    /* refs that are not timers */
    ot_assert_eq(ot_cancel_timer(OT_NOREF), -1);
    ot_assert_eq(ot_read_timer(OT_NOREF), -1);
    ot_assert_eq(ot_cancel_timer(ot_make_ref()), -1);
    ot_assert_eq(ot_cancel_timer((ot_ref){~0ull}), -1);
    ot_assert_eq(ot_read_timer((ot_ref){~0ull}), -1);
    ot_assert_eq(ot_cancel_timer((ot_ref){(1ull << 63) | 0x00ffffff00000001ull}), -1);

    /* zero delay: fires at once, still as a message */
    r = ot_send_after(self, 0, TAG_T, &v, sizeof v);
    ot_assert(r.v != 0);
    m = ot_receive_tag(TAG_T, 1000);
    ot_assert(m != NULL);
    ot_msg_free(m);
}

OT_TEST(timer, send_after_bad_input, .timeout = 30) {
    ot_pid self = ot_self();
    char b[4] = {0};
    errno = 0;
    ot_assert(ot_send_after(self, -5, TAG_T, b, 1).v == 0);
    ot_assert_eq(errno, EINVAL);
    errno = 0;
    ot_assert(ot_send_after(OT_NOPID, 5, TAG_T, b, 1).v == 0);
    ot_assert_eq(errno, EINVAL);
    errno = 0;
    ot_assert(ot_send_after(self, 5, TAG_T, NULL, 3).v == 0);
    ot_assert_eq(errno, EINVAL);
    errno = 0;
    ot_assert(ot_send_after(self, 5, TAG_T, b, OT_MSG_MAX + 1).v == 0);
    ot_assert_eq(errno, EMSGSIZE);
    /* to a pid that dies before the timer fires: nothing happens */
    ot_ref r = ot_send_after((ot_pid){.v = 0xdead00000000beefull}, 1, TAG_T, b, 1);
    if (r.v == 0)
        ot_assert(errno == ESRCH || errno == EINVAL);
    ot_sleep(5);
    ot_assert(ot_receive(0) == NULL);
}

/* The owner's own cancels leave timers linked until the wheel reaches them;
 * past 65,536 dead and half the wheel the owner sweeps them out of the
 * (singly linked) slots. A process bound to scheduler 0 arms and cancels, so
 * every cancel is the owner's. The survivors still fire, each exactly once,
 * and no cancelled one does. */
enum { SW_N = 140000, SW_CANCEL = 100000 };
static ot_pid sweep_parent;

static void sweep_worker(void *arg) {
    (void)arg;
    ot_pid self = ot_self();
    ot_ref *refs = calloc(SW_N, sizeof *refs);
    uint8_t *seen = calloc(SW_N, 1);
    ot_assert(refs && seen);
    for (uint32_t i = 0; i < SW_N; i++) {
        refs[i] = ot_send_after(self, 1000 + (int64_t)(i % 100), TAG_T, &i, sizeof i);
        ot_assert(refs[i].v != 0);
    }
    for (uint32_t i = 0; i < SW_CANCEL; i++)
        ot_assert(ot_cancel_timer(refs[i]) >= 0, "(timer %u fired before its cancel)", i);
    uint32_t got = 0;
    for (; got < SW_N - SW_CANCEL; got++) {
        ot_msg *m = ot_receive_tag(TAG_T, 10000);
        ot_assert(m != NULL, "(%u of %u arrived)", got, SW_N - SW_CANCEL);
        uint32_t i = u32_of(m);
        ot_msg_free(m);
        ot_assert(i >= SW_CANCEL && i < SW_N, "(cancelled timer %u fired)", i);
        ot_assert(!seen[i], "(timer %u fired twice)", i);
        seen[i] = 1;
    }
    ot_assert(ot_receive_tag(TAG_T, 150) == NULL);
    free(refs);
    free(seen);
    ot_send(sweep_parent, TAG_DONE, &got, sizeof got);
}

OT_TEST(timer, owner_cancels_sweep_the_wheel, .timeout = 60) {
    sweep_parent = ot_self();
    ot_spawn_opts o = {.scheduler = 0, .scheduler_set = true, .bind = true};
    ot_assert(ot_spawn_opt(sweep_worker, NULL, &o).v != 0);
    ot_msg *m = ot_receive_tag(TAG_DONE, 30000);
    ot_assert(m != NULL);
    ot_assert_eq(u32_of(m), SW_N - SW_CANCEL);
    ot_msg_free(m);
}

/* ---- cancelling from another scheduler -------------------------------------------- */

#ifdef OT_SANITIZE
#define XN 20000
#else
#define XN 100000
#endif

struct xarg {
    ot_pid parent, receiver, canceller;
};

static uint8_t *xcancelled; /* 1: cancel returned >= 0; 2: returned -1 */
static uint8_t *xarrived;

/* On scheduler 0: arms XN timers to the receiver with deadlines 1..40 ms
 * ahead, hands each ref to the canceller; the table of timers grows while
 * the other scheduler cancels. */
static void xarmer(void *arg) {
    struct xarg *a = arg;
    for (uint32_t i = 0; i < XN; i++) {
        ot_ref r = ot_send_after(a->receiver, 1 + (i % 40), TAG_T, &i, sizeof i);
        ot_assert(r.v != 0);
        struct {
            uint32_t i;
            ot_ref r;
        } x = {i, r};
        ot_send(a->canceller, TAG_REF, &x, sizeof x);
        if ((i & 255) == 255)
            ot_yield();
    }
    ot_send(a->canceller, TAG_DONE, NULL, 0);
}

static void xcanceller(void *arg) {
    struct xarg *a = arg;
    uint32_t won = 0;
    for (;;) {
        ot_msg *m = ot_receive(30000);
        ot_assert(m != NULL);
        if (m->tag == TAG_DONE) {
            ot_msg_free(m);
            break;
        }
        struct {
            uint32_t i;
            ot_ref r;
        } x;
        memcpy(&x, ot_msg_data(m), sizeof x);
        ot_msg_free(m);
        if (x.i % 3 == 2)
            continue; /* every third one is left to fire */
        int64_t left = ot_cancel_timer(x.r);
        /* the deadline is rounded up to the next 1 ms tick: up to 41 left */
        ot_assert(left >= -1 && left <= 41, "(cancel returned %lld)", (long long)left);
        xcancelled[x.i] = left >= 0 ? 1 : 2;
        won += left >= 0;
        ot_assert_eq(ot_cancel_timer(x.r), -1);
    }
    ot_send(a->parent, TAG_DONE, &won, sizeof won);
}

static void xreceiver(void *arg) {
    struct xarg *a = arg;
    uint32_t n = 0;
    for (;;) {
        ot_msg *m = ot_receive(300); /* the last deadline is 40 ms after the last arm */
        if (!m)
            break;
        uint32_t i = u32_of(m);
        ot_assert(i < XN);
        ot_assert_eq(xarrived[i], 0); /* at most once */
        xarrived[i] = 1;
        n++;
        ot_msg_free(m);
    }
    ot_send(a->parent, TAG_X, &n, sizeof n);
}

OT_TEST(timer, cancel_from_another_scheduler, .timeout = 120) {
    unsigned ns = ot_schedulers();
    xcancelled = calloc(XN, 1);
    xarrived = calloc(XN, 1);
    static struct xarg a;
    a.parent = ot_self();
    ot_spawn_opts o0 = {.scheduler = 0, .scheduler_set = true, .bind = true};
    ot_spawn_opts o1 = {.scheduler = (int)(ns > 1 ? 1 : 0), .scheduler_set = true, .bind = true};
    a.receiver = ot_spawn_opt(xreceiver, &a, &o1);
    a.canceller = ot_spawn_opt(xcanceller, &a, &o1);
    ot_assert(a.receiver.v && a.canceller.v);
    ot_assert(ot_spawn_opt(xarmer, &a, &o0).v != 0);
    uint32_t won = 0, arrived = 0;
    for (int k = 0; k < 2; k++) {
        ot_msg *m = ot_receive(60000);
        ot_assert(m != NULL);
        if (m->tag == TAG_DONE)
            won = u32_of(m);
        else
            arrived = u32_of(m);
        ot_msg_free(m);
    }
    uint32_t fired_uncancelled = 0, lost_race = 0;
    for (uint32_t i = 0; i < XN; i++) {
        if (i % 3 == 2) {
            ot_assert_eq(xarrived[i], 1); /* never cancelled: arrives */
            fired_uncancelled++;
        } else if (xcancelled[i] == 1) {
            ot_assert(xarrived[i] == 0, "(timer %u cancelled, yet arrived)", i);
        } else {
            ot_assert_eq(xcancelled[i], 2); /* cancel came too late: it fired */
            ot_assert_eq(xarrived[i], 1);
            lost_race++;
        }
    }
    ot_assert_eq(arrived, fired_uncancelled + lost_race);
    ot_assert_eq(won + lost_race + fired_uncancelled, XN);
    cr_log_info("cross-scheduler cancel: %u cancelled, %u fired first, %u left to fire", won,
                lost_race, fired_uncancelled);
    free(xcancelled);
    free(xarrived);
}

/* The owner's timer table grows (past 32,768 and 65,536 timers armed at
 * once) while another scheduler cancels timers in it: every cancel of a
 * timer 10 s away succeeds with about 10 s left, a second cancel says -1, and
 * nothing arrives. */
#ifdef OT_SANITIZE
#define GN 40000
#else
#define GN 80000
#endif

static void grow_armer(void *arg) {
    struct xarg *a = arg;
    for (uint32_t i = 0; i < GN; i++) {
        ot_ref r = ot_send_after(a->receiver, 10000, TAG_T, &i, sizeof i);
        ot_assert(r.v != 0);
        ot_send(a->canceller, TAG_REF, &r, sizeof r);
        if ((i & 1023) == 1023)
            ot_yield();
    }
    ot_send(a->canceller, TAG_DONE, NULL, 0);
}

static void grow_canceller(void *arg) {
    struct xarg *a = arg;
    uint32_t ok = 0, n = 0;
    for (;;) {
        ot_msg *m = ot_receive(30000);
        ot_assert(m != NULL);
        if (m->tag == TAG_DONE) {
            ot_msg_free(m);
            break;
        }
        ot_ref r;
        memcpy(&r, ot_msg_data(m), sizeof r);
        ot_msg_free(m);
        int64_t left = ot_cancel_timer(r);
        ok += left >= 9000 && left <= 10001;
        ok += ot_cancel_timer(r) == -1;
        n++;
    }
    ot_assert_eq(ok, 2 * n);
    ot_send(a->parent, TAG_DONE, &n, sizeof n);
}

OT_TEST(timer, cancel_while_owner_table_grows, .timeout = 120) {
    unsigned ns = ot_schedulers();
    static struct xarg a;
    a.parent = ot_self();
    a.receiver = ot_self();
    ot_spawn_opts o0 = {.scheduler = 0, .scheduler_set = true, .bind = true};
    ot_spawn_opts o1 = {.scheduler = (int)(ns > 1 ? 1 : 0), .scheduler_set = true, .bind = true};
    a.canceller = ot_spawn_opt(grow_canceller, &a, &o1);
    ot_assert(a.canceller.v != 0);
    ot_assert(ot_spawn_opt(grow_armer, &a, &o0).v != 0);
    ot_msg *m = ot_receive_tag(TAG_DONE, 60000);
    ot_assert(m != NULL);
    ot_assert_eq(u32_of(m), GN);
    ot_msg_free(m);
    ot_assert(ot_receive_tag(TAG_T, 50) == NULL);
}

/* ---- receive timeouts and sleep ----------------------------------------------------- */

OT_TEST(timer, receive_timeouts, .timeout = 30) {
    int64_t ds[] = {1, 5, 20, 50};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        uint64_t t0 = now_ns();
        errno = 0;
        ot_msg *m = ot_receive(ds[i]);
        uint64_t el = now_ns() - t0;
        ot_assert(m == NULL);
        ot_assert_eq(errno, ETIMEDOUT);
        ot_assert(el >= (uint64_t)ds[i] * 1000000u, "(receive(%lld) returned after %llu us)",
                  (long long)ds[i], (unsigned long long)(el / 1000));
        ot_assert(el < (uint64_t)ds[i] * 1000000u + 500000000u);
    }
    /* a selective receive keeps waiting its full time while others arrive */
    ot_pid self = ot_self();
    uint32_t v = 5;
    for (int k = 1; k <= 4; k++)
        ot_send_after(self, 8 * k, TAG_X, &v, sizeof v);
    uint64_t t0 = now_ns();
    ot_assert(ot_receive_tag(TAG_T, 50) == NULL);
    ot_assert(now_ns() - t0 >= 50000000u);
    for (int k = 0; k < 4; k++) {
        ot_msg *m = ot_receive(0);
        ot_assert(m != NULL);
        ot_assert_eq(m->tag, TAG_X);
        ot_msg_free(m);
    }
    /* a receive satisfied early leaves no timeout behind: a later longer
     * wait is not cut short by the old timer */
    ot_send_after(self, 5, TAG_X, &v, sizeof v);
    ot_msg *m = ot_receive(40);
    ot_assert(m != NULL);
    ot_msg_free(m);
    t0 = now_ns();
    ot_assert(ot_receive(100) == NULL);
    ot_assert(now_ns() - t0 >= 100000000u, "(cut short after %llu us)",
              (unsigned long long)((now_ns() - t0) / 1000));
    /* the same for ot_sleep after a receive whose timer was cancelled */
    ot_send_after(self, 2, TAG_X, &v, sizeof v);
    m = ot_receive(30);
    ot_assert(m != NULL);
    ot_msg_free(m);
    t0 = now_ns();
    ot_sleep(60);
    ot_assert(now_ns() - t0 >= 60000000u);
}

OT_TEST(timer, sleep_durations, .timeout = 30) {
    int64_t ds[] = {1, 2, 10, 25, 100};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        uint64_t t0 = now_ns();
        ot_sleep(ds[i]);
        uint64_t el = now_ns() - t0;
        ot_assert(el >= (uint64_t)ds[i] * 1000000u, "(sleep(%lld) took %llu us)", (long long)ds[i],
                  (unsigned long long)(el / 1000));
        ot_assert(el < (uint64_t)ds[i] * 1000000u + 500000000u);
    }
    ot_sleep(0); /* a yield */
    /* a message does not end a sleep, and stays for the next receive */
    ot_pid self = ot_self();
    uint32_t v = 3;
    ot_send_after(self, 5, TAG_X, &v, sizeof v);
    uint64_t t0 = now_ns();
    ot_sleep(40);
    ot_assert(now_ns() - t0 >= 40000000u);
    ot_msg *m = ot_receive(0);
    ot_assert(m != NULL);
    ot_assert_eq(u32_of(m), 3);
    ot_msg_free(m);
}

/* Many processes sleeping and waiting with timeouts at once on every
 * scheduler: each wakes no earlier than asked. */
static void sleeper(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    ot_pid self = ot_self();
    int64_t ms = 1 + (int64_t)((self.v * 2654435761u) % 30);
    uint64_t t0 = now_ns();
    if (self.v & 1)
        ot_sleep(ms);
    else
        ot_receive(ms);
    uint32_t early = now_ns() - t0 < (uint64_t)ms * 1000000u;
    ot_send(parent, TAG_DONE, &early, sizeof early);
}

OT_TEST(timer, many_concurrent_waits, .timeout = 60) {
    ot_pid self = ot_self();
    enum { N = 5000 };
    for (int i = 0; i < N; i++)
        ot_assert(ot_spawn(sleeper, &self).v != 0);
    int early = 0;
    for (int i = 0; i < N; i++) {
        ot_msg *m = ot_receive(10000);
        ot_assert(m != NULL, "(%d of %d reported)", i, N);
        early += (int)u32_of(m);
        ot_msg_free(m);
    }
    ot_assert_eq(early, 0);
}
