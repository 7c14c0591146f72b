/* ets workloads (BENCHMARKS.md ets_read and ets_write), inside the runtime.
 * ets_read: a set with read_concurrency holding 100,000 integer keys with
 * 8-byte values; 2 processes (bound to different schedulers when there are
 * two) do 5,000,000 look-ups in all, at random keys. ets_lookup copies each
 * object into the caller's heap and frees it, as ets:lookup/2 builds a list;
 * ets_read is the zero-copy callback. ets_write: 1,000,000 inserts of fresh
 * keys by one process (ets_insert), then 2 processes update_counter one key
 * 1,000,000 times in all (ets_update_counter). --quick does a tenth of each.
 * Rates are operations over the wall time from the first spawn to the last
 * worker's report. ets_stall: while one process grows a fresh set with
 * write_concurrency to 10,000,000 integer keys (--quick 1,000,000), through
 * every resize, a process bound to the other scheduler replaces objects of
 * its own 1,024 keys in a loop and times each insert; ets_stall_p99_us and
 * ets_stall_max_us are that writer's 99th percentile and longest insert
 * (wall time, so on a loaded machine they include its preemptions);
 * ets_resize_step_cpu_max_us is the longest CPU time a resize step held
 * every stripe lock (hash.c), the bound on an idle machine. */
#include "bench.h"

#include <otter.h>
#include <stdatomic.h>
#include <stdlib.h>

enum { TAG_DONE = OT_TAG_USER };
enum { W_LOOKUP, W_READ, W_COUNTER };

#define KEYS 100000

typedef struct {
    ot_tab t;
    int what;
    uint64_t n, seed;
    ot_pid parent;
} work;

static void read_cb(const void *v, size_t vl, void *arg)
{
    uint64_t x;
    memcpy(&x, v, 8);
    *(uint64_t *)arg += x;
}

static void worker(void *p)
{
    work *w = p;
    uint64_t x = w->seed, sink = 0;
    for (uint64_t i = 0; i < w->n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t k = x % KEYS;
        if (w->what == W_LOOKUP) {
            ot_ets_obj *o;
            size_t n;
            if (ot_ets_lookup(w->t, &k, 8, &o, &n) || n != 1)
                bench_fail("ot_ets_lookup", -ENOENT);
            sink += *(const uint64_t *)o[0].val;
            ot_free(o);
        } else if (w->what == W_READ) {
            if (ot_ets_read(w->t, &k, 8, read_cb, &sink) != 1)
                bench_fail("ot_ets_read", -ENOENT);
        } else {
            int64_t r;
            int rc = ot_ets_update_counter(w->t, "hot", 3, 0, 1, NULL, &r);
            if (rc)
                bench_fail("ot_ets_update_counter", rc);
        }
    }
    ot_send(w->parent, TAG_DONE, &sink, sizeof sink);
}

/* Runs `what` on 2 processes, n operations in all; returns ops/s. */
static double run2(ot_tab t, int what, uint64_t n)
{
    work w[2];
    unsigned ns = ot_schedulers();
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < 2; i++) {
        w[i] = (work){t, what, n / 2, UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(i + 1), ot_self()};
        ot_spawn_opts o = {.scheduler = (int)((unsigned)i % (ns ? ns : 1)), .scheduler_set = true,
                           .bind = true};
        if (ot_pid_eq(ot_spawn_opt(worker, &w[i], &o), OT_NOPID))
            bench_fail("ot_spawn_opt", errno);
    }
    for (int i = 0; i < 2; i++) {
        ot_msg *m = ot_receive_tag(TAG_DONE, 60000);
        if (!m)
            bench_fail("worker report", ETIMEDOUT);
        ot_msg_free(m);
    }
    return bench_rate(n, t0, bench_now_ns());
}

/* ---- writer stall during growth ----------------------------------------------- */

#define STALL_NS_BUCKET 100
#define STALL_BUCKETS 1000000 /* 0.1 us each, up to 100 ms; longer ones land in the last */

typedef struct {
    ot_tab t;
    uint64_t n;
    ot_pid parent;
} stall_arg;

static _Atomic int growing;
static uint32_t *stall_hist;
static uint64_t stall_max_ns, stall_samples;

static void stall_grower(void *p)
{
    stall_arg *a = p;
    for (uint64_t k = 0; k < a->n; k++)
        if (ot_ets_insert(a->t, &k, 8, &k, 8))
            bench_fail("ot_ets_insert", 0);
    atomic_store(&growing, 0);
    ot_send(a->parent, TAG_DONE, NULL, 0);
}

static void stall_prober(void *p)
{
    stall_arg *a = p;
    uint64_t i = 0;
    while (atomic_load_explicit(&growing, memory_order_relaxed)) {
        uint64_t k = (UINT64_C(1) << 62) + i % 1024, v = i++;
        uint64_t t0 = bench_now_ns();
        if (ot_ets_insert(a->t, &k, 8, &v, 8))
            bench_fail("ot_ets_insert", 0);
        uint64_t d = bench_now_ns() - t0;
        stall_hist[d / STALL_NS_BUCKET < STALL_BUCKETS ? d / STALL_NS_BUCKET : STALL_BUCKETS - 1]++;
        if (d > stall_max_ns)
            stall_max_ns = d;
        stall_samples++;
    }
    ot_send(a->parent, TAG_DONE, NULL, 0);
}

static void stall_bench(uint64_t n)
{
    stall_hist = calloc(STALL_BUCKETS, sizeof *stall_hist);
    if (!stall_hist)
        bench_fail("calloc", ENOMEM);
    ot_ets_opts wo = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC, .write_concurrency = true};
    stall_arg a = {ot_ets_new(NULL, &wo), n, ot_self()};
    if (!a.t.v)
        bench_fail("ot_ets_new", errno);
    atomic_store(&growing, 1);
    unsigned ns = ot_schedulers();
    ot_spawn_opts g = {.scheduler = 0, .scheduler_set = true, .bind = true};
    ot_spawn_opts q = {.scheduler = ns > 1 ? 1 : 0, .scheduler_set = true, .bind = true};
    if (ot_pid_eq(ot_spawn_opt(stall_grower, &a, &g), OT_NOPID) ||
        ot_pid_eq(ot_spawn_opt(stall_prober, &a, &q), OT_NOPID))
        bench_fail("ot_spawn_opt", errno);
    for (int i = 0; i < 2; i++) {
        ot_msg *m = ot_receive_tag(TAG_DONE, 600000);
        if (!m)
            bench_fail("stall report", ETIMEDOUT);
        ot_msg_free(m);
    }
    uint64_t want = stall_samples - stall_samples / 100, seen = 0;
    size_t b = 0;
    while (b < STALL_BUCKETS && (seen += stall_hist[b]) < want)
        b++;
    bench_figure("ets_stall_p99_us", (double)(b + 1) * STALL_NS_BUCKET / 1000.0, "us", false);
    bench_figure("ets_stall_max_us", (double)stall_max_ns / 1000.0, "us", false);
    /* The longest resize step in CPU time (hash.c): the stall left on an
     * idle machine, where no one preempts the migrating writer. */
    extern _Atomic uint64_t ets__step_cpu_max_ns;
    bench_figure("ets_resize_step_cpu_max_us",
                 (double)atomic_load(&ets__step_cpu_max_ns) / 1000.0, "us", false);
    ot_ets_delete_table(a.t);
    free(stall_hist);
}

static void bench_main(void *arg)
{
    bool quick = *(bool *)arg;
    uint64_t lookups = quick ? 500000 : 5000000, inserts = quick ? 100000 : 1000000,
             updates = quick ? 100000 : 1000000;

    ot_ets_opts ro = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC, .read_concurrency = true};
    ot_tab t = ot_ets_new(NULL, &ro);
    if (!t.v)
        bench_fail("ot_ets_new", errno);
    for (uint64_t k = 0; k < KEYS; k++)
        if (ot_ets_insert(t, &k, 8, &k, 8))
            bench_fail("ot_ets_insert", 0);
    bench_figure("ets_lookup", run2(t, W_LOOKUP, lookups), "ops/s", true);
    bench_figure("ets_read", run2(t, W_READ, lookups), "ops/s", true);
    ot_ets_delete_table(t);

    ot_ets_opts wo = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC, .write_concurrency = true};
    t = ot_ets_new(NULL, &wo);
    uint64_t t0 = bench_now_ns();
    for (uint64_t k = 0; k < inserts; k++)
        if (ot_ets_insert(t, &k, 8, &k, 8))
            bench_fail("ot_ets_insert", 0);
    bench_figure("ets_insert", bench_rate(inserts, t0, bench_now_ns()), "ops/s", true);
    int64_t zero = 0;
    ot_ets_insert(t, "hot", 3, &zero, 8);
    bench_figure("ets_update_counter", run2(t, W_COUNTER, updates), "ops/s", true);
    int64_t total = 0;
    ot_ets_update_counter(t, "hot", 3, 0, 0, NULL, &total);
    if ((uint64_t)total != updates / 2 * 2)
        bench_fail("counter total", 0);
    ot_ets_delete_table(t);
    stall_bench(quick ? 1000000 : 10000000);
}

int main(int argc, char **argv)
{
    bool quick = bench_quick(argc, argv);
    bench_quiet();
    int rc = ot_run(bench_main, &quick, NULL);
    if (rc != 0)
        fprintf(stderr, "ets: ot_run: %s\n", ot_strerror(rc));
    return rc == 0 ? 0 : 1;
}
