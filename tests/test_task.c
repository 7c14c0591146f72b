/* Task against Elixir 1.14's Task: async/await with the reply copied to the
 * owner and nothing left in its mailbox; await's -ETIMEDOUT leaves the task
 * running and awaitable (yield's nil), ot_task_await_exit exits the caller
 * with timeout and takes the linked task with it; a crashing task takes a
 * non-trapping owner down with its reason and gives a trapping one
 * -ECONNRESET with the reason; shutdown's three outcomes (reply, nil,
 * {:exit, reason}) with a timeout, after a timeout (a task that ignores
 * shutdown is killed) and brutal; await_many; the owner rule and bad
 * arguments; async_stream ordered and unordered (every item exactly once, in
 * order when ordered), kill_task's timeout entries in place, on_timeout exit,
 * early stop from the callback and from the input, and a million lazily
 * produced items in bounded memory. */
#include <otter/testing.h>
#include <otter/task.h>

#include "support/rss.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 20000

/* Stream sizes: every task is a new process, and under TSan each is a new
 * fiber, hundreds of times slower to make. */
#if defined(OT_TSAN)
#define ITEMS 300
#else
#define ITEMS 5000
#endif

static int double_it(void *arg, ot_buf *out) {
    int64_t v = (int64_t)(intptr_t)arg * 2;
    int64_t *r = ot_alloc(sizeof *r);
    *r = v;
    out->data = r;
    out->len = sizeof *r;
    return 0;
}

static int64_t result_i64(ot_msg *m) {
    ot_assert(m != NULL);
    ot_assert_eq(m->size, sizeof(int64_t));
    int64_t v;
    memcpy(&v, ot_msg_data(m), sizeof v);
    ot_msg_free(m);
    return v;
}

static size_t queue_len(void) {
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    return in.message_queue_len;
}

OT_TEST(task, async_await_returns_the_result_and_leaves_no_mail, .timeout = 120) {
    ot_task t;
    ot_assert_eq(ot_task_async(double_it, (void *)(intptr_t)21, &t), 0);
    ot_msg *r = NULL;
    ot_assert_eq(ot_task_await(&t, WAIT_MS, &r), 0);
    ot_assert_eq(r->tag, OT_TAG_REPLY);
    ot_assert_eq(r->from.v, t.pid.v);
    ot_assert_eq(result_i64(r), 42);
    ot_assert_eq(ot_task_await(&t, 0, &r), -EALREADY);
    ot_sleep(20);
    ot_assert_eq(queue_len(), 0); /* no DOWN, no EXIT normal (not trapping) */
}

static int slow(void *arg, ot_buf *out) {
    ot_sleep((int64_t)(intptr_t)arg);
    static const char done[] = "done";
    out->data = done;
    out->len = sizeof done;
    return 0;
}

OT_TEST(task, await_timeout_leaves_the_task_running_and_awaitable, .timeout = 120) {
    ot_task t;
    ot_assert_eq(ot_task_async(slow, (void *)(intptr_t)300, &t), 0);
    ot_msg *r = (ot_msg *)1;
    ot_assert_eq(ot_task_await(&t, 10, &r), -ETIMEDOUT);
    ot_assert(r == NULL);
    ot_assert(ot_is_alive(t.pid));
    ot_assert_eq(ot_task_yield(&t, 0, &r), -ETIMEDOUT);
    ot_assert_eq(ot_task_yield(&t, WAIT_MS, &r), 0);
    ot_assert_eq(r->size, 5);
    ot_assert(strcmp(ot_msg_data(r), "done") == 0);
    ot_msg_free(r);
}

static void await_exit_proc(void *arg) {
    ot_task *t = arg;
    ot_assert_eq(ot_task_async(slow, (void *)(intptr_t)100000, t), 0);
    ot_task_await_exit(t, 20);
    ot_assert(false, "await_exit returned after a timeout");
}

OT_TEST(task, await_exit_exits_the_caller_with_timeout_and_the_task_goes_too, .timeout = 120) {
    static ot_task t; /* written by the child before it awaits */
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    ot_pid c = ot_spawn_opt(await_exit_proc, &t, &o);
    ot_msg *m = ot_receive_ref(mon, WAIT_MS);
    ot_assert(m && m->tag == OT_TAG_DOWN);
    ot_down_msg *d = ot_msg_data(m);
    ot_assert_eq(d->pid.v, c.v);
    ot_assert_eq(d->reason.kind, OT_TIMEOUT);
    ot_assert(strcmp(d->reason.text, "Task.await") == 0);
    ot_msg_free(m);
    ot_ref tm = ot_monitor(t.pid); /* the linked task got exit(timeout) */
    m = ot_receive_ref(tm, WAIT_MS);
    ot_assert(m && m->tag == OT_TAG_DOWN);
    d = ot_msg_data(m);
    ot_assert(d->reason.kind == OT_TIMEOUT || d->reason.kind == OT_NOPROC);
    ot_msg_free(m);
    ot_assert(!ot_is_alive(t.pid));
}

static int crash(void *arg, ot_buf *out) {
    (void)out;
    ot_exit_self(ot_reason_error("boom %d", (int)(intptr_t)arg));
    return 0;
}

static int fail_rc(void *arg, ot_buf *out) {
    (void)arg;
    (void)out;
    return 7;
}

static void crash_owner(void *arg) {
    (void)arg;
    ot_task t;
    ot_assert_eq(ot_task_async(crash, (void *)(intptr_t)3, &t), 0);
    ot_msg *r;
    ot_task_await(&t, OT_INFINITY, &r);
    ot_assert(false, "the owner outlived its crashed task");
}

OT_TEST(task, a_task_crash_takes_a_non_trapping_owner_down, .timeout = 120) {
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    ot_spawn_opt(crash_owner, NULL, &o);
    ot_msg *m = ot_receive_ref(mon, WAIT_MS);
    ot_assert(m && m->tag == OT_TAG_DOWN);
    ot_down_msg *d = ot_msg_data(m);
    ot_assert_eq(d->reason.kind, OT_ERROR);
    ot_assert(strcmp(d->reason.text, "boom 3") == 0, "%s", d->reason.text);
    ot_msg_free(m);
}

OT_TEST(task, a_trapping_owner_gets_econnreset_with_the_reason_and_the_exit, .timeout = 120) {
    ot_trap_exit(true);
    ot_task t;
    ot_assert_eq(ot_task_async(crash, (void *)(intptr_t)9, &t), 0);
    ot_msg *r = NULL;
    ot_assert_eq(ot_task_await(&t, WAIT_MS, &r), -ECONNRESET);
    ot_assert_eq(t.reason.kind, OT_ERROR);
    ot_assert(strcmp(t.reason.text, "boom 9") == 0);
    ot_msg *x = ot_receive_tag(OT_TAG_EXIT, WAIT_MS);
    ot_assert(x != NULL);
    ot_assert_eq(((ot_exit_msg *)ot_msg_data(x))->pid.v, t.pid.v);
    ot_msg_free(x);
    ot_assert_eq(ot_task_async(fail_rc, NULL, &t), 0);
    ot_assert_eq(ot_task_await(&t, WAIT_MS, &r), -ECONNRESET);
    ot_assert(strcmp(t.reason.text, "task returned 7") == 0, "%s", t.reason.text);
    ot_assert((x = ot_receive_tag(OT_TAG_EXIT, WAIT_MS)) != NULL);
    ot_msg_free(x);
}

OT_TEST(task, shutdown_outcomes, .timeout = 120) {
    ot_trap_exit(true);
    ot_task t;
    ot_msg *r = (ot_msg *)1;
    /* running: shut down, nil */
    ot_assert_eq(ot_task_async(slow, (void *)(intptr_t)100000, &t), 0);
    ot_assert_eq(ot_task_shutdown(&t, 1000, &r), 0);
    ot_assert(r == NULL);
    ot_assert(!ot_is_alive(t.pid));
    /* brutal */
    ot_assert_eq(ot_task_async(slow, (void *)(intptr_t)100000, &t), 0);
    ot_assert_eq(ot_task_shutdown(&t, OT_BRUTAL_KILL, &r), 0);
    ot_assert(r == NULL);
    ot_assert(!ot_is_alive(t.pid));
    /* already replied: the reply */
    ot_assert_eq(ot_task_async(double_it, (void *)(intptr_t)5, &t), 0);
    ot_sleep(50);
    ot_assert_eq(ot_task_shutdown(&t, 1000, &r), 0);
    ot_assert_eq(result_i64(r), 10);
    /* crashed on its own: {:exit, reason} */
    ot_assert_eq(ot_task_async(crash, (void *)(intptr_t)1, &t), 0);
    ot_sleep(50);
    ot_assert_eq(ot_task_shutdown(&t, 1000, &r), -ECONNRESET);
    ot_assert(strcmp(t.reason.text, "boom 1") == 0);
    ot_assert_eq(ot_task_shutdown(&t, 1000, &r), -EALREADY);
    ot_msg *x;
    while ((x = ot_receive_tag(OT_TAG_EXIT, 0)))
        ot_msg_free(x);
    /* no EXIT from the tasks we shut down reached us after they were unlinked */
    ot_assert_eq(queue_len(), 0);
}

static int stubborn(void *arg, ot_buf *out) {
    (void)arg;
    (void)out;
    ot_trap_exit(true);
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        ot_msg_free(m); /* ignores exit(shutdown) */
    }
    return 0;
}

OT_TEST(task, shutdown_kills_a_task_that_ignores_it_after_the_timeout, .timeout = 120) {
    ot_task t;
    ot_assert_eq(ot_task_async(stubborn, NULL, &t), 0);
    ot_sleep(20);
    int64_t t0 = ot_now_ms();
    ot_msg *r = (ot_msg *)1;
    /* Elixir 1.14: {:exit, :killed}, not nil, when the kill was needed */
    ot_assert_eq(ot_task_shutdown(&t, 100, &r), -ECONNRESET);
    ot_assert(r == NULL);
    ot_assert_eq(t.reason.kind, OT_KILLED);
    ot_assert(ot_now_ms() - t0 >= 100, "killed before its shutdown time");
    ot_assert(!ot_is_alive(t.pid));
}

OT_TEST(task, await_many_in_order_and_the_first_failure, .timeout = 120) {
    ot_task ts[8];
    ot_msg *rs[8];
    for (int i = 0; i < 8; i++)
        ot_assert_eq(ot_task_async(double_it, (void *)(intptr_t)i, &ts[i]), 0);
    ot_assert_eq(ot_task_await_many(ts, 8, WAIT_MS, rs, NULL), 0);
    for (int i = 0; i < 8; i++)
        ot_assert_eq(result_i64(rs[i]), 2 * i);
    ot_trap_exit(true);
    for (int i = 0; i < 3; i++)
        ot_assert_eq(ot_task_async(slow, (void *)(intptr_t)100000, &ts[i]), 0);
    ot_assert_eq(ot_task_async(crash, (void *)(intptr_t)4, &ts[3]), 0);
    size_t failed = 99;
    ot_assert_eq(ot_task_await_many(ts, 4, WAIT_MS, rs, &failed), -ECONNRESET);
    ot_assert_eq(failed, 3);
    ot_assert(strcmp(ts[3].reason.text, "boom 4") == 0);
    ot_assert_eq(ot_task_await_many(ts, 3, 20, rs, &failed), -ETIMEDOUT);
    ot_assert_eq(failed, 0);
    for (int i = 0; i < 3; i++)
        ot_assert_eq(ot_task_shutdown(&ts[i], OT_BRUTAL_KILL, &rs[i]), 0);
}

static void not_owner(void *arg) {
    ot_msg *r;
    ot_assert_eq(ot_task_await(arg, 0, &r), -EPERM);
    ot_assert_eq(ot_task_shutdown(arg, 0, &r), -EPERM);
}

OT_TEST(task, bad_arguments_and_the_owner_rule, .timeout = 120) {
    ot_task t;
    ot_msg *r;
    ot_assert_eq(ot_task_async(NULL, NULL, &t), -EINVAL);
    ot_assert_eq(ot_task_async(double_it, NULL, NULL), -EINVAL);
    ot_assert_eq(ot_task_async(slow, (void *)(intptr_t)100000, &t), 0);
    ot_assert_eq(ot_task_await(&t, -5, &r), -EINVAL);
    ot_assert_eq(ot_task_await(&t, INT64_MIN, &r), -EINVAL);
    ot_assert_eq(ot_task_await(NULL, 0, &r), -EINVAL);
    ot_assert_eq(ot_task_await(&t, 0, NULL), -EINVAL);
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    ot_spawn_opt(not_owner, &t, &o);
    ot_msg *m = ot_receive_ref(mon, WAIT_MS);
    ot_assert_eq(((ot_down_msg *)ot_msg_data(m))->reason.kind, OT_NORMAL);
    ot_msg_free(m);
    ot_assert_eq(ot_task_shutdown(&t, OT_BRUTAL_KILL, &r), 0);
}

static void *foreign_async(void *arg) {
    ot_task t;
    *(int *)arg = ot_task_async(double_it, NULL, &t);
    return NULL;
}

Test(task, async_from_a_foreign_thread_is_eperm) {
    cr_assert_eq(ot_start(NULL), 0);
    int rc = 0;
    pthread_t th;
    pthread_create(&th, NULL, foreign_async, &rc);
    pthread_join(th, NULL);
    cr_assert_eq(rc, -EPERM);
    cr_assert_eq(ot_stop(), 0);
}

/* ---- async_stream ---------------------------------------------------------- */

struct counter {
    uint64_t n, limit;
    int fail_at; /* next returns -EIO at this item, -1 never */
    uint64_t v;
};

static int count_next(void *state, ot_buf *item) {
    struct counter *c = state;
    if (c->n >= c->limit)
        return 0;
    if (c->fail_at >= 0 && c->n == (uint64_t)c->fail_at)
        return -EIO;
    c->v = c->n++;
    item->data = &c->v;
    item->len = sizeof c->v;
    return 1;
}

static int square(void *arg, ot_buf *out) {
    const ot_buf *in = arg;
    uint64_t v;
    memcpy(&v, in->data, sizeof v);
    if (v % 7 == 3)
        ot_yield(); /* finish out of order now and then */
    uint64_t *r = ot_alloc(sizeof *r);
    *r = v * v;
    out->data = r;
    out->len = sizeof *r;
    return 0;
}

struct seen {
    uint64_t n, next;
    bool ordered, bad;
    uint8_t *hit;
    uint64_t stop_at;
};

static int check_item(const ot_stream_item *r, void *arg) {
    struct seen *s = arg;
    uint64_t v = 0;
    if (r->status != 0 || r->len != sizeof v)
        s->bad = true;
    else
        memcpy(&v, r->data, sizeof v);
    if (v != r->index * r->index || s->hit[r->index] || (s->ordered && r->index != s->next))
        s->bad = true;
    s->hit[r->index] = 1;
    s->next++;
    s->n++;
    return s->stop_at && s->n == s->stop_at ? 77 : 0;
}

static void run_stream(bool unordered, unsigned mc, uint64_t n) {
    struct counter c = {.limit = n, .fail_at = -1};
    ot_stream in = {count_next, &c};
    struct seen s = {.ordered = !unordered, .hit = calloc(n, 1)};
    ot_stream_opts o = {.max_concurrency = mc, .unordered = unordered};
    ot_assert_eq(ot_task_async_stream(&in, square, &o, check_item, &s), 0);
    ot_assert(!s.bad);
    ot_assert_eq(s.n, n);
    for (uint64_t i = 0; i < n; i++)
        ot_assert_eq(s.hit[i], 1);
    free(s.hit);
    ot_assert_eq(queue_len(), 0);
}

OT_TEST(task, async_stream_ordered_every_item_once_in_order, .timeout = 120) {
    run_stream(false, 0, ITEMS);
    run_stream(false, 1, 100);
    run_stream(false, 64, ITEMS);
}

OT_TEST(task, async_stream_unordered_every_item_once, .timeout = 120) {
    ot_trap_exit(true); /* and no EXIT per item reaches a trapping caller */
    run_stream(true, 0, ITEMS);
    run_stream(true, 64, ITEMS);
}

static int sleepy(void *arg, ot_buf *out) {
    const ot_buf *in = arg;
    uint64_t v;
    memcpy(&v, in->data, sizeof v);
    if (v % 4 == 1)
        ot_sleep(100000);
    uint64_t *r = ot_alloc(sizeof *r);
    *r = v;
    out->data = r;
    out->len = sizeof *r;
    return 0;
}

struct kt {
    uint64_t n, timeouts;
    bool bad;
};

static int check_kill_task(const ot_stream_item *r, void *arg) {
    struct kt *k = arg;
    if (r->index != k->n)
        k->bad = true;
    if (r->index % 4 == 1) {
        if (r->status != -ETIMEDOUT || r->data)
            k->bad = true;
        k->timeouts++;
    } else {
        uint64_t v;
        if (r->status != 0 || r->len != 8)
            k->bad = true;
        else if (memcpy(&v, r->data, 8), v != r->index)
            k->bad = true;
    }
    k->n++;
    return 0;
}

OT_TEST(task, async_stream_kill_task_gives_timeout_entries_in_place, .timeout = 120) {
    struct counter c = {.limit = 40, .fail_at = -1};
    ot_stream in = {count_next, &c};
    struct kt k = {0};
    /* long enough for a task that does not sleep to finish even under TSan */
    ot_stream_opts o = {.max_concurrency = 8, .timeout_ms = 2000,
                        .on_timeout = OT_ON_TIMEOUT_KILL_TASK};
    ot_assert_eq(ot_task_async_stream(&in, sleepy, &o, check_kill_task, &k), 0);
    ot_assert(!k.bad);
    ot_assert_eq(k.n, 40);
    ot_assert_eq(k.timeouts, 10);
    ot_sleep(20);
    ot_assert_eq(queue_len(), 0);
}

static int ignore_item(const ot_stream_item *r, void *arg) {
    (void)r;
    (void)arg;
    return 0;
}

static void stream_exit_proc(void *arg) {
    (void)arg;
    struct counter c = {.limit = 40, .fail_at = -1};
    ot_stream in = {count_next, &c};
    ot_stream_opts o = {.max_concurrency = 8, .timeout_ms = 30};
    ot_task_async_stream(&in, sleepy, &o, ignore_item, NULL);
    ot_assert(false, "the stream returned after a timeout with on_timeout exit");
}

OT_TEST(task, async_stream_on_timeout_exit_exits_the_caller_and_its_tasks, .timeout = 120) {
    size_t base = ot_processes(NULL, 0);
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    ot_spawn_opt(stream_exit_proc, NULL, &o);
    ot_msg *m = ot_receive_ref(mon, WAIT_MS);
    ot_assert(m != NULL);
    ot_assert_eq(((ot_down_msg *)ot_msg_data(m))->reason.kind, OT_TIMEOUT);
    ot_msg_free(m);
    /* its sleeping tasks were linked to it and are gone */
    for (int i = 0; i < 200; i++) {
        ot_pid ps[64];
        size_t n = ot_processes(ps, 64);
        if (n == base)
            return;
        ot_sleep(10);
    }
    ot_assert(false, "tasks outlived their stream's caller");
}

OT_TEST(task, async_stream_stops_early_from_each_and_from_next, .timeout = 120) {
    size_t base = ot_processes(NULL, 0);
    struct counter c = {.limit = 1000, .fail_at = -1};
    ot_stream in = {count_next, &c};
    struct seen s = {.ordered = true, .hit = calloc(1000, 1), .stop_at = 10};
    ot_stream_opts o = {.max_concurrency = 4};
    ot_assert_eq(ot_task_async_stream(&in, square, &o, check_item, &s), 77);
    ot_assert_eq(s.n, 10);
    ot_assert(!s.bad);
    free(s.hit);
    struct counter c2 = {.limit = 1000, .fail_at = 500};
    ot_stream in2 = {count_next, &c2};
    struct seen s2 = {.ordered = true, .hit = calloc(1000, 1)};
    ot_assert_eq(ot_task_async_stream(&in2, square, &o, check_item, &s2), -EIO);
    ot_assert(!s2.bad);
    ot_assert(s2.n <= 500);
    free(s2.hit);
    ot_sleep(20);
    ot_pid ps[8];
    ot_assert_eq(ot_processes(ps, 8), base); /* no task left behind */
    ot_assert_eq(ot_task_async_stream(NULL, square, &o, check_item, &s2), -EINVAL);
    o.timeout_ms = -7;
    ot_assert_eq(ot_task_async_stream(&in2, square, &o, check_item, &s2), -EINVAL);
}

struct sum {
    uint64_t n, total;
    size_t peak_rss;
};

static int add_item(const ot_stream_item *r, void *arg) {
    struct sum *s = arg;
    uint64_t v;
    memcpy(&v, r->data, sizeof v);
    s->total += v;
    if (++s->n % 65536 == 0) {
        size_t rss = ot_test_rss_bytes();
        if (rss > s->peak_rss)
            s->peak_rss = rss;
    }
    return 0;
}

static int ident(void *arg, ot_buf *out) {
    const ot_buf *in = arg;
    out->data = in->data; /* the item lives in the start message until the task ends */
    out->len = in->len;
    return 0;
}

OT_TEST(task, async_stream_of_a_million_lazy_items_in_bounded_memory, .timeout = 120) {
#if defined(OT_TSAN)
    const uint64_t n = 3000;
#elif defined(OT_SANITIZE)
    const uint64_t n = 100000;
#else
    const uint64_t n = 1000000;
#endif
    struct counter c = {.limit = n, .fail_at = -1};
    ot_stream in = {count_next, &c};
    struct sum s = {0};
    size_t rss0 = ot_test_rss_bytes();
    ot_stream_opts o = {.max_concurrency = 16};
    ot_assert_eq(ot_task_async_stream(&in, ident, &o, add_item, &s), 0);
    ot_assert_eq(s.n, n);
    ot_assert_eq(s.total, n * (n - 1) / 2);
    fprintf(stderr, "async_stream %llu items: rss %zu KiB before, peak %zu KiB\n",
            (unsigned long long)n, rss0 >> 10, s.peak_rss >> 10);
    ot_assert(s.peak_rss < rss0 + ((size_t)64 << 20), "peak %zu KiB from %zu KiB",
              s.peak_rss >> 10, rss0 >> 10);
}

/* ---- Task.Supervisor ----------------------------------------------------------- */

#include <otter/supervisor.h>

static int start_task_sup(void *arg, ot_pid *out) {
    (void)arg;
    return ot_task_sup_start_link(NULL, NULL, out);
}

/* Under the test's supervisor (start_supervised!), stopped when the test ends. */
static ot_pid task_sup(void) {
    ot_child_spec c = {.id = "task_sup", .start = start_task_sup, .type = OT_SUPERVISOR};
    ot_pid sup = ot_start_supervised(&c);
    ot_assert(sup.v != 0);
    return sup;
}

static _Atomic int runs;

static int count_and_crash_twice(void *arg, ot_buf *out) {
    (void)arg;
    (void)out;
    int n = atomic_fetch_add(&runs, 1) + 1;
    if (n <= 2)
        ot_exit_self(ot_reason_error("run %d", n));
    return 0;
}

OT_TEST(task_sup, start_child_temporary_and_transient, .timeout = 120) {
    ot_pid sup = task_sup();
    ot_pid p;
    atomic_store(&runs, 0);
    ot_assert_eq(ot_task_sup_start_child(sup, count_and_crash_twice, NULL, OT_TEMPORARY, 0, &p), 0);
    ot_sleep(50);
    ot_assert_eq(atomic_load(&runs), 1); /* temporary: not run again */
    atomic_store(&runs, 0);
    ot_assert_eq(ot_task_sup_start_child(sup, count_and_crash_twice, NULL, OT_TRANSIENT, 0, &p), 0);
    for (int i = 0; i < 400 && atomic_load(&runs) < 3; i++)
        ot_sleep(5);
    ot_sleep(50);
    ot_assert_eq(atomic_load(&runs), 3); /* two crashes restarted, the normal end not */
    size_t n = 9;
    ot_pid kids[4];
    ot_assert_eq(ot_task_sup_children(sup, kids, 4, &n), 0);
    ot_assert_eq(n, 0);
    ot_assert_eq(ot_task_sup_start_child(sup, slow, (void *)(intptr_t)100000, OT_TEMPORARY, 0, &p),
                 0);
    ot_assert_eq(ot_task_sup_children(sup, kids, 4, &n), 0);
    ot_assert_eq(n, 1);
    ot_assert_eq(kids[0].v, p.v);
    ot_assert_eq(ot_task_sup_start_child(sup, NULL, NULL, OT_TEMPORARY, 0, &p), -EINVAL);
}

OT_TEST(task_sup, async_replies_and_links, .timeout = 120) {
    ot_pid sup = task_sup();
    ot_task t;
    ot_assert_eq(ot_task_sup_async(sup, double_it, (void *)(intptr_t)8, &t), 0);
    ot_msg *r;
    ot_assert_eq(ot_task_await(&t, WAIT_MS, &r), 0);
    ot_assert_eq(result_i64(r), 16);
    ot_trap_exit(true);
    ot_assert_eq(ot_task_sup_async(sup, crash, (void *)(intptr_t)5, &t), 0);
    ot_assert_eq(ot_task_await(&t, WAIT_MS, &r), -ECONNRESET);
    ot_assert(strcmp(t.reason.text, "boom 5") == 0);
    ot_msg *x = ot_receive_tag(OT_TAG_EXIT, WAIT_MS); /* linked: the EXIT too */
    ot_assert(x != NULL);
    ot_assert_eq(((ot_exit_msg *)ot_msg_data(x))->pid.v, t.pid.v);
    ot_msg_free(x);
    ot_assert(ot_is_alive(sup));
}

OT_TEST(task_sup, async_nolink_crash_is_a_down_not_an_exit, .timeout = 120) {
    ot_pid sup = task_sup();
    ot_trap_exit(true);
    ot_task t;
    ot_assert_eq(ot_task_sup_async_nolink(sup, crash, (void *)(intptr_t)6, &t), 0);
    ot_msg *r;
    ot_assert_eq(ot_task_await(&t, WAIT_MS, &r), -ECONNRESET);
    ot_assert(strcmp(t.reason.text, "boom 6") == 0);
    ot_sleep(30);
    ot_assert(ot_receive_tag(OT_TAG_EXIT, 0) == NULL);
    ot_assert_eq(queue_len(), 0);
    ot_assert_eq(ot_task_sup_async_nolink(sup, double_it, (void *)(intptr_t)4, &t), 0);
    ot_assert_eq(ot_task_await(&t, WAIT_MS, &r), 0);
    ot_assert_eq(result_i64(r), 8);
}

static int square_or_crash(void *arg, ot_buf *out) {
    const ot_buf *in = arg;
    uint64_t v;
    memcpy(&v, in->data, sizeof v);
    if (v % 10 == 3)
        ot_exit_self(ot_reason_error("item %d", (int)v));
    return square(arg, out);
}

struct nl {
    uint64_t n, crashed;
    bool bad;
};

static int check_nolink(const ot_stream_item *r, void *arg) {
    struct nl *k = arg;
    if (r->index != k->n)
        k->bad = true;
    if (r->index % 10 == 3) {
        char want[32];
        snprintf(want, sizeof want, "item %d", (int)r->index);
        if (r->status != -ECONNRESET || strcmp(r->reason.text, want) != 0)
            k->bad = true;
        k->crashed++;
    } else {
        uint64_t v;
        if (r->status != 0 || r->len != 8)
            k->bad = true;
        else if (memcpy(&v, r->data, 8), v != r->index * r->index)
            k->bad = true;
    }
    k->n++;
    return 0;
}

OT_TEST(task_sup, async_stream_nolink_reports_crashes_in_place, .timeout = 120) {
    ot_pid sup = task_sup();
    struct counter c = {.limit = 200, .fail_at = -1};
    ot_stream in = {count_next, &c};
    struct nl k = {0};
    ot_stream_opts o = {.max_concurrency = 8};
    ot_assert_eq(ot_task_sup_async_stream_nolink(sup, &in, square_or_crash, &o, check_nolink, &k),
                 0);
    ot_assert(!k.bad);
    ot_assert_eq(k.n, 200);
    ot_assert_eq(k.crashed, 20);
    ot_sleep(20);
    ot_assert_eq(queue_len(), 0);
    ot_assert(ot_is_alive(sup));
}
