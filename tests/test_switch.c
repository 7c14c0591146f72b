/* Tests of direct switches (runtime/sched/sched.c): a process that parks, or
 * a handler that finishes its messages, hands its thread straight to the
 * run-next process, skipping the scheduler loop. Checked here: every pairing
 * of the two kinds (stackful to stackful, to an idle handler, to a handler
 * blocked inside its callback, handler to handler) delivers every message in
 * order and ends every process normally; and a long chain of direct switches
 * does not starve the loop's other duties: a timer due during the chain fires
 * during it, and a process waiting in the run queue gets its turns. The
 * floating-point control state is each process's own: a process that sets
 * FE_UPWARD and parks keeps it, while the processes that run next on the
 * same scheduler (stackful, and a handler in its callback) see the default
 * FE_TONEAREST and round 1/3 to nearest. */
#include <otter/testing.h>

#include <fenv.h>
#include <stdatomic.h>
#include <string.h>

enum { TAG_TOKEN = OT_TAG_USER + 1, TAG_STOP, TAG_DONE, TAG_PING, TAG_PONG, TAG_CONT, TAG_TICK };

static uint64_t u64_of(const ot_msg *m) {
    uint64_t v;
    memcpy(&v, ot_msg_data(m), sizeof v);
    return v;
}

static ot_reason down_reason(const ot_msg *m) {
    ot_down_msg d;
    ot_assert_eq(m->size, sizeof d);
    memcpy(&d, ot_msg_data(m), sizeof d);
    return d.reason;
}

static void wait_dead(ot_pid p) {
    for (int i = 0; i < 10000 && ot_is_alive(p); i++)
        ot_sleep(1);
    ot_assert(!ot_is_alive(p));
}

/* ---- a ring of both kinds ------------------------------------------------------- */

/* Under TSan a tenth of the hops and rounds: every handler run makes a TSan
 * fiber (785 KB cleared, 5-10 ms), and the full counts ran past the timeouts. */
#ifdef OT_TSAN
enum { RING = 100, HOPS = 10000, BLOCKED_ROUNDS = 2000 };
#else
enum { RING = 100, HOPS = 100000, BLOCKED_ROUNDS = 20000 };
#endif

struct member {
    ot_pid next;
    ot_pid main;
    uint64_t seen; /* tokens this member forwarded */
};

static struct member members[RING];

/* Returns false when the member should stop. */
static bool on_token(struct member *me, const ot_msg *m) {
    if (m->tag == TAG_STOP) {
        ot_send(me->next, TAG_STOP, NULL, 0);
        return false;
    }
    ot_assert_eq(m->tag, (uint32_t)TAG_TOKEN);
    uint64_t n = u64_of(m);
    me->seen++;
    if (n == 0)
        ot_send(me->main, TAG_DONE, &me->seen, sizeof me->seen);
    else {
        n--;
        ot_send(me->next, TAG_TOKEN, &n, sizeof n);
    }
    return true;
}

static void stackful_member(void *arg) {
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        ot_assert(m != NULL);
        bool go_on = on_token(arg, m);
        ot_msg_free(m);
        if (!go_on)
            return;
    }
}

static int handler_member(void *state, const ot_msg *m) {
    return on_token(state, m) ? 0 : 1;
}

OT_TEST(sw, ring_of_both_kinds, .timeout = 120) {
    ot_pid pids[RING];
    ot_ref refs[RING];
    ot_spawn_opts so = {.bind = true, .scheduler_set = true, .scheduler = 0};
    memset(members, 0, sizeof members);
    for (int i = 0; i < RING; i++) {
        members[i].main = ot_self();
        so.monitor = true;
        so.monitor_ref = &refs[i];
        /* alternate kinds, with a run of each so both same-kind pairings occur */
        bool handler = (i % 4) >= 2;
        pids[i] = handler ? ot_spawn_handler(handler_member, &members[i], &so)
                          : ot_spawn_opt(stackful_member, &members[i], &so);
        ot_assert(pids[i].v != 0);
    }
    for (int i = 0; i < RING; i++)
        members[i].next = pids[(i + 1) % RING];
    uint64_t hops = HOPS;
    ot_assert_eq(ot_send(pids[0], TAG_TOKEN, &hops, sizeof hops), 0);
    ot_msg *m = ot_receive_tag(TAG_DONE, 60000);
    ot_assert(m != NULL);
    ot_msg_free(m);
    /* the token visited members 0, 1, 2, ... in turn, HOPS + 1 times */
    uint64_t total = 0;
    for (int i = 0; i < RING; i++) {
        uint64_t want = (HOPS + 1) / RING + ((uint64_t)i < (HOPS + 1) % RING ? 1 : 0);
        ot_assert(members[i].seen == want, "(member %d forwarded %llu, not %llu)", i,
                  (unsigned long long)members[i].seen, (unsigned long long)want);
        total += members[i].seen;
    }
    ot_assert_eq(total, (uint64_t)HOPS + 1);
    ot_send(pids[0], TAG_STOP, NULL, 0);
    for (int i = 0; i < RING; i++) {
        ot_msg *d = ot_receive_ref(refs[i], 10000);
        ot_assert(d != NULL);
        ot_assert_eq(d->tag, (uint32_t)OT_TAG_DOWN);
        ot_assert(down_reason(d).kind == OT_NORMAL, "(member %d)", i);
        ot_msg_free(d);
    }
}

/* ---- a handler blocked inside its callback -------------------------------------- */

/* On TAG_PING n it replies TAG_PONG n, then waits inside the callback for
 * TAG_CONT n and replies TAG_PONG n + 1: each wait parks the handler on a
 * borrowed stack, and the pinger's send makes it run-next with that stack. */
static int blocking_handler(void *state, const ot_msg *m) {
    (void)state;
    if (m->tag == TAG_STOP)
        return 1;
    uint64_t n = u64_of(m);
    ot_pid from = m->from;
    ot_send(from, TAG_PONG, &n, sizeof n);
    ot_msg *c = ot_receive_tag(TAG_CONT, 10000);
    ot_assert(c != NULL);
    ot_assert_eq(u64_of(c), n);
    ot_msg_free(c);
    n++;
    ot_send(from, TAG_PONG, &n, sizeof n);
    return 0;
}

OT_TEST(sw, handler_blocked_in_callback, .timeout = 60) {
    ot_spawn_opts so = {.bind = true, .scheduler_set = true, .scheduler = 0};
    ot_ref ref;
    so.monitor = true;
    so.monitor_ref = &ref;
    ot_pid h = ot_spawn_handler(blocking_handler, NULL, &so);
    ot_assert(h.v != 0);
    for (uint64_t i = 0; i < BLOCKED_ROUNDS; i += 2) {
        ot_assert_eq(ot_send(h, TAG_PING, &i, sizeof i), 0);
        ot_msg *r = ot_receive(5000);
        ot_assert(r != NULL);
        ot_assert_eq(r->tag, (uint32_t)TAG_PONG);
        ot_assert_eq(u64_of(r), i);
        ot_msg_free(r);
        ot_assert_eq(ot_send(h, TAG_CONT, &i, sizeof i), 0);
        r = ot_receive(5000);
        ot_assert(r != NULL);
        ot_assert_eq(u64_of(r), i + 1);
        ot_msg_free(r);
    }
    ot_send(h, TAG_STOP, NULL, 0);
    ot_msg *d = ot_receive_ref(ref, 5000);
    ot_assert(d != NULL);
    ot_assert_eq(down_reason(d).kind, OT_NORMAL);
    ot_msg_free(d);
}

/* ---- a long chain does not starve the loop ----------------------------------------- */

enum { ROUNDS = 300000 };

static _Atomic uint64_t rounds_done;
static _Atomic uint64_t yielder_turns;
static _Atomic bool chain_over;

static void ponger(void *arg) {
    (void)arg;
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        ot_assert(m != NULL);
        uint32_t tag = m->tag;
        ot_pid from = m->from;
        ot_msg_free(m);
        if (tag == TAG_STOP)
            return;
        ot_send(from, TAG_PONG, NULL, 0);
    }
}

static void pinger(void *arg) {
    ot_pid pong = *(ot_pid *)arg;
    for (uint64_t i = 0; i < ROUNDS; i++) {
        ot_send(pong, TAG_PING, NULL, 0);
        ot_msg *m = ot_receive(OT_INFINITY);
        ot_assert(m != NULL && m->tag == TAG_PONG);
        ot_msg_free(m);
        atomic_store_explicit(&rounds_done, i + 1, memory_order_relaxed);
    }
    ot_send(pong, TAG_STOP, NULL, 0);
    atomic_store_explicit(&chain_over, true, memory_order_release);
}

/* Runnable all the time: lives in the run queue, never run-next. */
static void yielder(void *arg) {
    (void)arg;
    while (!atomic_load_explicit(&chain_over, memory_order_acquire)) {
        atomic_fetch_add_explicit(&yielder_turns, 1, memory_order_relaxed);
        ot_yield();
    }
}

OT_TEST(sw, chain_keeps_loop_fair, .timeout = 120) {
    atomic_store(&rounds_done, 0);
    atomic_store(&yielder_turns, 0);
    atomic_store(&chain_over, false);
    ot_spawn_opts so = {.bind = true, .scheduler_set = true, .scheduler = 0};
    ot_pid me = ot_self();
    ot_assert(ot_send_after(me, 2, TAG_TICK, NULL, 0).v != 0);

    ot_pid y = ot_spawn_opt(yielder, NULL, &so);
    ot_pid pong = ot_spawn_opt(ponger, NULL, &so);
    ot_pid ping = ot_spawn_opt(pinger, &pong, &so);
    ot_assert(y.v && pong.v && ping.v);
    ot_msg *t = ot_receive_tag(TAG_TICK, 60000);
    ot_assert(t != NULL);
    ot_msg_free(t);
    uint64_t at_tick = atomic_load(&rounds_done);
    uint64_t turns_at_tick = atomic_load(&yielder_turns);
    /* the timer fired while the chain still ran, and the queue got turns */
    ot_assert(at_tick < ROUNDS, "(timer fired only after all %d rounds)", ROUNDS);
    ot_assert(turns_at_tick > 0);
    wait_dead(ping);
    wait_dead(pong);
    wait_dead(y);
    ot_assert_eq(atomic_load(&rounds_done), (uint64_t)ROUNDS);
    ot_assert(atomic_load(&yielder_turns) > turns_at_tick,
              "(the yielder got no turn during the chain: %llu)",
              (unsigned long long)atomic_load(&yielder_turns));
}

/* ---- floating-point control state per process ------------------------------------------ */

static volatile double fp_one = 1.0, fp_three = 3.0;

struct fp_seen {
    int mode;
    double third;
};

static void fp_report(ot_pid to, uint32_t tag) {
    struct fp_seen r = {fegetround(), fp_one / fp_three};
    ot_send(to, tag, &r, sizeof r);
}

static void fp_upward(void *arg) {
    ot_pid test = *(const ot_pid *)arg;
    fesetround(FE_UPWARD);
    fp_report(test, TAG_PING);
    ot_msg_free(ot_receive_tag(TAG_CONT, OT_INFINITY)); /* parks; others run meanwhile */
    fp_report(test, TAG_DONE);
}

static void fp_plain(void *arg) {
    fp_report(*(const ot_pid *)arg, TAG_PONG);
}

static int fp_handler(void *state, const ot_msg *m) {
    if (m->tag == TAG_TICK)
        fp_report(*(const ot_pid *)state, TAG_TICK);
    return 0;
}

static struct fp_seen fp_wait(uint32_t tag) {
    ot_msg *m = ot_receive_tag(tag, 30000);
    ot_assert(m != NULL, "no report %u", tag);
    struct fp_seen r;
    memcpy(&r, ot_msg_data(m), sizeof r);
    ot_msg_free(m);
    return r;
}

OT_TEST(sw, fp_rounding_mode_is_per_process, .timeout = 60) {
    static ot_pid test;
    test = ot_self();
    double nearest = fp_one / fp_three;
    ot_spawn_opts o = {.scheduler_set = true, .scheduler = 0};
    ot_pid up = ot_spawn_opt(fp_upward, &test, &o);
    ot_assert(up.v != 0);
    struct fp_seen a = fp_wait(TAG_PING);
    ot_assert_eq(a.mode, FE_UPWARD);
    ot_assert(a.third > nearest, "1/3 upward is above 1/3 to nearest");
    for (int i = 0; i < 20; i++) { /* each runs on scheduler 0 after the parked upward one */
        ot_assert(ot_spawn_opt(fp_plain, &test, &o).v != 0);
        struct fp_seen b = fp_wait(TAG_PONG);
        ot_assert_eq(b.mode, FE_TONEAREST);
        ot_assert(b.third == nearest);
    }
    ot_pid h = ot_spawn_handler(fp_handler, &test, &o);
    ot_send(h, TAG_TICK, NULL, 0);
    struct fp_seen c = fp_wait(TAG_TICK);
    ot_assert_eq(c.mode, FE_TONEAREST);
    ot_assert(c.third == nearest);
    ot_assert_eq(fegetround(), FE_TONEAREST);
    ot_send(up, TAG_CONT, NULL, 0);
    struct fp_seen d = fp_wait(TAG_DONE);
    ot_assert_eq(d.mode, FE_UPWARD);
    ot_assert(d.third > nearest);
    ot_exit(h, OT_REASON(OT_KILL));
}
