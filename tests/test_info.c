/* ot_process_info and ot_processes (erlang:process_info/2, processes/0):
 * status (running, runnable, waiting), message queue length, reductions,
 * heap and stack bytes, links (count and the first OT_INFO_MAX_LIST pids),
 * monitors held and monitored-by counts, the registered name, the behaviour
 * given at spawn, the handler and trap_exit flags; -ESRCH for a dead or
 * never-issued pid and -EINVAL without an output; ot_processes lists exactly
 * the live processes. Another process's link and monitor fields are read
 * while it is parked (WAITING), as the API documents. */
#include <otter/testing.h>

#include "support/down.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

enum { TAG_GO = OT_TAG_USER + 1, TAG_OTHER, TAG_READY };

#define WAIT_MS 20000


static void wait_go(void *arg) {
    (void)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
}

static int nop_handler(void *state, const ot_msg *m) {
    (void)state;
    (void)m;
    return 0;
}

static void await_down(ot_ref r) {
    ot_msg *m = ot_receive_match(is_down_ref, &r.v, WAIT_MS);
    ot_assert(m != NULL, "no DOWN");
    ot_msg_free(m);
}

/* Polls until p is parked and pred holds (another process's info is a
 * snapshot; the link and monitor fields are filled only while it waits). */
static void wait_info(ot_pid p, struct ot_process_info *in,
                      bool (*pred)(const struct ot_process_info *, const void *), const void *arg) {
    for (int i = 0; i < 20000; i++) {
        ot_assert_eq(ot_process_info(p, in), 0);
        if (in->status == OT_STATUS_WAITING && (!pred || pred(in, arg)))
            return;
        ot_sleep(1);
    }
    ot_assert(false, "process_info never reached the expected state");
}

static bool queue_is(const struct ot_process_info *in, const void *arg) {
    return in->message_queue_len == *(const size_t *)arg;
}

static bool has_pid(const ot_pid *list, size_t n, ot_pid p) {
    for (size_t i = 0; i < n; i++)
        if (list[i].v == p.v)
            return true;
    return false;
}

OT_TEST(info, self_fields, .timeout = 60) {
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.status, OT_STATUS_RUNNING);
    ot_assert_eq(in.handler, false);
    ot_assert_eq(in.trap_exit, false);
    ot_assert(in.scheduler >= 0 && (unsigned)in.scheduler < ot_schedulers());
    ot_assert_eq(in.scheduler, ot_scheduler_id());
    ot_assert_eq(in.message_queue_len, 0);
    ot_assert_eq(in.heap_bytes, 0);
    ot_assert_eq(in.stack_bytes, 256 * 1024); /* the default reservation */
    ot_assert_eq(in.n_links, 0);
    ot_assert_eq(in.n_monitors, 0);
    ot_assert_eq(in.n_monitored_by, 0);
    ot_assert_eq(in.name[0], 0);
    ot_assert_eq(in.behaviour[0], 0);
    uint64_t red = in.reductions;

    for (int i = 0; i < 3; i++)
        ot_send(ot_self(), TAG_OTHER, &i, sizeof i);
    for (int i = 0; i < 100; i++)
        ot_send(ot_self(), TAG_GO, NULL, 0);
    ot_trap_exit(true);
    void *blk = ot_alloc(100);
    ot_assert(blk != NULL);
    ot_assert_eq(ot_register("info_self", ot_self()), 0);
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.message_queue_len, 103);
    ot_assert(in.reductions >= red + 103, "reductions %llu -> %llu", (unsigned long long)red,
              (unsigned long long)in.reductions);
    ot_assert_eq(in.trap_exit, true);
    ot_assert(in.heap_bytes >= 100);
    ot_assert(strcmp(in.name, "info_self") == 0);
    /* receiving shortens the queue */
    for (int i = 0; i < 100; i++)
        ot_msg_free(ot_receive_tag(TAG_GO, 0));
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.message_queue_len, 3);
    ot_assert_eq(ot_unregister("info_self"), 0);
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.name[0], 0);
}

OT_TEST(info, waiting_process_queue_and_stack, .timeout = 60) {
    ot_spawn_opts o = {.stack_size = 64 * 1024, .behaviour = "my_worker", .trap_exit = true};
    ot_pid p = ot_spawn_opt(wait_go, NULL, &o);
    ot_assert(p.v != 0);
    struct ot_process_info in;
    size_t want = 0;
    wait_info(p, &in, queue_is, &want);
    ot_assert_eq(in.handler, false);
    ot_assert_eq(in.trap_exit, true);
    ot_assert_eq(in.stack_bytes, 64 * 1024);
    ot_assert_eq(in.heap_bytes, 0);
    ot_assert(strcmp(in.behaviour, "my_worker") == 0);
    /* messages it is not waiting for pile up in its queue */
    for (int i = 0; i < 5; i++)
        ot_send(p, TAG_OTHER, &i, sizeof i);
    want = 5;
    wait_info(p, &in, queue_is, &want);
    ot_assert_eq(in.message_queue_len, 5);
    ot_ref r = ot_monitor(p);
    ot_send(p, TAG_GO, NULL, 0);
    await_down(r);
    ot_assert_eq(ot_process_info(p, &in), -ESRCH);
}

static bool reductions_at_least(const struct ot_process_info *in, const void *arg) {
    return in->reductions >= *(const uint64_t *)arg;
}

OT_TEST(info, handler_fields, .timeout = 60) {
    ot_spawn_opts o = {.behaviour = "gen_server"};
    ot_pid h = ot_spawn_handler(nop_handler, NULL, &o);
    ot_assert(h.v != 0);
    struct ot_process_info in;
    wait_info(h, &in, NULL, NULL);
    ot_assert_eq(in.handler, true);
    ot_assert_eq(in.trap_exit, false);
    ot_assert_eq(in.stack_bytes, 0); /* idle: no stack */
    ot_assert_eq(in.heap_bytes, 0);
    ot_assert(strcmp(in.behaviour, "gen_server") == 0);
    ot_assert_eq(ot_register("info_handler", h), 0);
    uint64_t r0 = in.reductions;
    for (int i = 0; i < 10; i++)
        ot_send(h, TAG_OTHER, NULL, 0);
    uint64_t want = r0 + 10;
    wait_info(h, &in, reductions_at_least, &want);
    ot_assert(in.reductions >= r0 + 10 && in.reductions <= r0 + 20, "reductions %llu",
              (unsigned long long)in.reductions);
    ot_assert_eq(in.message_queue_len, 0);
    ot_assert(strcmp(in.name, "info_handler") == 0);
    ot_ref r = ot_monitor(h);
    ot_exit(h, OT_REASON(OT_KILL));
    await_down(r);
    ot_assert_eq(ot_process_info(h, &in), -ESRCH);
    ot_assert_eq(ot_whereis("info_handler").v, 0);
}

static bool links_are(const struct ot_process_info *in, const void *arg) {
    return in->n_links == *(const size_t *)arg;
}

OT_TEST(info, links_and_monitors, .timeout = 60) {
    enum { N = 20 };
    ot_pid kids[N];
    ot_trap_exit(true);
    for (int i = 0; i < N; i++) {
        kids[i] = i < N / 2 ? ot_spawn_link(wait_go, NULL) : ot_spawn(wait_go, NULL);
        ot_assert(kids[i].v != 0);
        if (i >= N / 2)
            ot_assert_eq(ot_link(kids[i]), 0);
    }
    ot_ref m1 = ot_monitor(kids[0]), m2 = ot_monitor(kids[1]);
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_links, N);
    ot_assert_eq(in.n_monitors, 2);
    ot_assert_eq(in.n_monitored_by, 0);
    /* the first OT_INFO_MAX_LIST links, all distinct and all ours */
    for (int i = 0; i < OT_INFO_MAX_LIST; i++) {
        ot_assert(has_pid(kids, N, in.links[i]));
        ot_assert(!has_pid(in.links, (size_t)i, in.links[i]));
    }
    size_t one = 1;
    wait_info(kids[0], &in, links_are, &one);
    ot_assert_eq(in.n_links, 1);
    ot_assert_eq(in.links[0].v, ot_self().v);
    ot_assert_eq(in.n_monitored_by, 1);
    ot_assert_eq(in.n_monitors, 0);
    wait_info(kids[N - 1], &in, links_are, &one); /* linked by ot_link: the same */
    ot_assert_eq(in.links[0].v, ot_self().v);
    ot_assert_eq(in.n_monitored_by, 0);
    /* unlink and demonitor show at once on our side */
    ot_assert_eq(ot_unlink(kids[N - 1]), 0);
    ot_assert_eq(ot_demonitor(m2, 0), 0);
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_links, N - 1);
    ot_assert_eq(in.n_monitors, 1);
    size_t zero = 0;
    ot_send(kids[N - 1], TAG_OTHER, NULL, 0); /* wakes it to act on the unlink */
    wait_info(kids[N - 1], &in, links_are, &zero);
    for (int i = 0; i < N; i++)
        ot_send(kids[i], TAG_GO, NULL, 0);
    await_down(m1);
    for (int i = 0; i < N - 1; i++) {
        ot_msg *m = ot_receive_tag(OT_TAG_EXIT, WAIT_MS);
        ot_assert(m != NULL);
        ot_msg_free(m);
    }
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_links, 0);
    ot_assert_eq(in.n_monitors, 0);
}

static _Atomic int spin_state; /* 1: spinning, 2: told to stop */

static void spinner(void *arg) {
    (void)arg;
    atomic_store_explicit(&spin_state, 1, memory_order_release); /* pairs with the test's acquire */
    while (atomic_load_explicit(&spin_state, memory_order_acquire) != 2) {
    }
}

OT_TEST(info, running_process_on_another_scheduler, .timeout = 60) {
    if (ot_schedulers() < 2) {
        printf("info: one scheduler: no other process can be running\n");
        return;
    }
    ot_spawn_opts o = {.scheduler = (ot_scheduler_id() + 1) % (int)ot_schedulers(),
                       .scheduler_set = true, .bind = true};
    ot_ref r;
    o.monitor = true;
    o.monitor_ref = &r;
    ot_pid p = ot_spawn_opt(spinner, NULL, &o);
    ot_assert(p.v != 0);
    for (int i = 0; i < 20000 && atomic_load_explicit(&spin_state, memory_order_acquire) != 1;
         i++)
        ot_sleep(1);
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(p, &in), 0);
    atomic_store_explicit(&spin_state, 2, memory_order_release);
    ot_assert_eq(in.status, OT_STATUS_RUNNING);
    ot_assert_eq(in.scheduler, o.scheduler);
    await_down(r);
}

static void one_scheduler(void) { ot_test_config.schedulers = 1; }
static void default_schedulers(void) { ot_test_config.schedulers = 0; }

OT_TEST(info, spawned_process_is_runnable_until_it_runs, .timeout = 60, .init = one_scheduler,
        .fini = default_schedulers) {
    ot_assert_eq(ot_schedulers(), 1);
    ot_pid p = ot_spawn(wait_go, NULL);
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(p, &in), 0);
    ot_assert_eq(in.status, OT_STATUS_RUNNABLE); /* we have not yielded yet */
    ot_assert_eq(in.stack_bytes, 0);             /* its stack comes at its first run */
    wait_info(p, &in, NULL, NULL);
    ot_assert_eq(in.stack_bytes, 256 * 1024);
    ot_send(p, TAG_GO, NULL, 0);
}

OT_TEST(info, errors, .timeout = 60) {
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), NULL), -EINVAL);
    ot_assert_eq(ot_process_info(OT_NOPID, &in), -ESRCH);
    ot_pid never = {((uint64_t)0x7fff0000 << 32) | 0xfffff};
    ot_assert_eq(ot_process_info(never, &in), -ESRCH);
    ot_ref r;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &r};
    ot_pid p = ot_spawn_opt(wait_go, NULL, &o);
    ot_send(p, TAG_GO, NULL, 0);
    await_down(r);
    ot_assert_eq(ot_process_info(p, &in), -ESRCH);
}

OT_TEST(info, processes_lists_live_pids, .timeout = 60) {
    enum { N = 10, CAP = 4096 };
    static ot_pid buf[CAP];
    size_t n0 = ot_processes(NULL, 0);
    ot_assert(n0 >= 1);
    ot_assert_eq(ot_processes(buf, CAP), n0);
    ot_assert(has_pid(buf, n0, ot_self()));
    ot_pid kids[N];
    ot_ref refs[N];
    for (int i = 0; i < N; i++) {
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &refs[i]};
        kids[i] = i & 1 ? ot_spawn_handler(nop_handler, NULL, &o) : ot_spawn_opt(wait_go, NULL, &o);
        ot_assert(kids[i].v != 0);
    }
    size_t n = ot_processes(buf, CAP);
    ot_assert_eq(n, n0 + N);
    for (int i = 0; i < N; i++)
        ot_assert(has_pid(buf, n, kids[i]), "pid %d missing", i);
    for (size_t i = 0; i < n; i++) {
        ot_assert(ot_is_alive(buf[i]));
        ot_assert(!has_pid(buf, i, buf[i]), "pid listed twice");
    }
    /* a short buffer: filled to cap, the total returned */
    ot_pid small[4] = {{0}, {0}, {0}, {0}};
    ot_assert_eq(ot_processes(small, 3), n0 + N);
    for (int i = 0; i < 3; i++)
        ot_assert(small[i].v != 0 && ot_is_alive(small[i]));
    ot_assert_eq(small[3].v, 0);
    for (int i = 0; i < N; i++)
        ot_exit(kids[i], OT_REASON(OT_KILL));
    for (int i = 0; i < N; i++)
        await_down(refs[i]);
    n = ot_processes(buf, CAP);
    ot_assert_eq(n, n0);
    for (int i = 0; i < N; i++)
        ot_assert(!has_pid(buf, n, kids[i]));
}

Test(info, outside_a_running_runtime) {
    struct ot_process_info in;
    /* like every call that needs a running runtime (docs/API.md, Errors) */
    cr_assert_eq(ot_process_info((ot_pid){1}, &in), -ENOTCONN);
    cr_assert_eq(ot_processes(NULL, 0), 0);
}

/* ---- process_info racing exits (issue 10 item 5) ---------------------------------------
 * Churners come and go (each registers a name that encodes its pid, grows and
 * shrinks its link and monitor maps, and exits, so slots are reused all the
 * time) while plain threads and processes call ot_process_info on pids picked
 * from the live set. Reading an exiting process's maps or name was a
 * use-after-free (ASan), and a reused slot gave the next occupant's name;
 * now every answer is -ESRCH or a consistent snapshot of that pid. */

/* Under TSan 200 lifetimes (5,000 processes): each new process makes a TSan
 * fiber (785 KB cleared, 5-10 ms), and 6,000 lifetimes, even 1,000, ran
 * past the 300 s timeout there. */
#ifdef OT_TSAN
enum { CHURN_SLOTS = 32, CHURN_LIFETIMES = 200, CHURN_LINKS = 24, READER_THREADS = 2 };
#else
enum { CHURN_SLOTS = 32, CHURN_LIFETIMES = 6000, CHURN_LINKS = 24, READER_THREADS = 2 };
#endif

static _Atomic uint64_t churn_pids[CHURN_SLOTS];
static _Atomic int churn_stop;
static _Atomic long churn_bad, churn_ok;

static void churn_name(uint64_t pid, char *buf, size_t n) {
    snprintf(buf, n, "c%llx", (unsigned long long)pid);
}

static void short_child(void *arg) {
    (void)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, WAIT_MS));
}

static void churner(void *arg) {
    (void)arg;
    char name[32];
    churn_name(ot_self().v, name, sizeof name);
    ot_register(name, ot_self());
    ot_trap_exit(true);
    ot_pid kids[CHURN_LINKS];
    ot_ref mons[CHURN_LINKS];
    ot_spawn_opts lo = {.link = true};
    for (int i = 0; i < CHURN_LINKS; i++) {
        kids[i] = ot_spawn_opt(short_child, NULL, &lo);
        mons[i] = kids[i].v ? ot_monitor(kids[i]) : OT_NOREF;
    }
    for (int i = 0; i < CHURN_LINKS; i += 2) {
        if (mons[i].v)
            ot_demonitor(mons[i], OT_DEMONITOR_FLUSH);
        if (kids[i].v)
            ot_unlink(kids[i]);
    }
    for (int i = 0; i < CHURN_LINKS; i++)
        if (kids[i].v)
            ot_send(kids[i], TAG_GO, NULL, 0);
    if (ot_self().v & 1)
        ot_unregister(name); /* half of them drop the name first */
}

static void check_info(ot_pid p) {
    struct ot_process_info in;
    int rc = ot_process_info(p, &in);
    if (rc == -ESRCH)
        return;
    char want[32];
    churn_name(p.v, want, sizeof want);
    bool ok = rc == 0 && in.n_links <= CHURN_LINKS && in.n_monitors <= CHURN_LINKS &&
              (in.name[0] == 0 || strcmp(in.name, want) == 0);
    for (size_t i = 0; ok && i < in.n_links && i < OT_INFO_MAX_LIST; i++)
        ok = in.links[i].v != 0 && in.links[i].v != p.v;
    atomic_fetch_add(ok ? &churn_ok : &churn_bad, 1);
}

static void *info_thread(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&churn_stop)) {
        seed = seed * 1103515245u + 12345u;
        uint64_t v = atomic_load(&churn_pids[(seed >> 8) % CHURN_SLOTS]);
        if (v)
            check_info((ot_pid){v});
    }
    return NULL;
}

static void info_process(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&churn_stop)) {
        for (int i = 0; i < 4; i++) { /* each call unwinds the target's stack */
            seed = seed * 1103515245u + 12345u;
            uint64_t v = atomic_load(&churn_pids[(seed >> 8) % CHURN_SLOTS]);
            if (v)
                check_info((ot_pid){v});
        }
        ot_yield();
    }
}

OT_TEST(info, races_with_exits, .timeout = 300) {
    atomic_store(&churn_stop, 0);
    pthread_t th[READER_THREADS];
    for (int i = 0; i < READER_THREADS; i++)
        ot_assert_eq(pthread_create(&th[i], NULL, info_thread, (void *)(uintptr_t)(i + 1)), 0);
    ot_ref rr[2];
    for (int i = 0; i < 2; i++) {
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &rr[i]};
        ot_assert(ot_spawn_opt(info_process, (void *)(uintptr_t)(i + 7), &o).v != 0);
    }
    ot_ref refs[CHURN_SLOTS];
    for (int i = 0; i < CHURN_SLOTS; i++) {
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &refs[i]};
        ot_pid p = ot_spawn_opt(churner, NULL, &o);
        ot_assert(p.v != 0);
        atomic_store(&churn_pids[i], p.v);
    }
    for (int done = 0; done < CHURN_LIFETIMES; done++) {
        ot_msg *m = ot_receive_tag(OT_TAG_DOWN, WAIT_MS);
        ot_assert(m != NULL, "(a churner never ended)");
        for (int i = 0; i < CHURN_SLOTS; i++) {
            if (refs[i].v != m->ref.v)
                continue;
            ot_spawn_opts o = {.monitor = true, .monitor_ref = &refs[i]};
            ot_pid p = ot_spawn_opt(churner, NULL, &o);
            ot_assert(p.v != 0);
            atomic_store(&churn_pids[i], p.v);
        }
        ot_msg_free(m);
    }
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < READER_THREADS; i++)
        pthread_join(th[i], NULL);
    printf("info races: %ld consistent answers, %ld inconsistent\n", atomic_load(&churn_ok),
           atomic_load(&churn_bad));
    ot_assert_eq(atomic_load(&churn_bad), 0);
    ot_assert(atomic_load(&churn_ok) > 0);
}
