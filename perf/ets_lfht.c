/* Why ETS has its own hash table (ARCHITECTURE 8): liburcu's cds_lfht and
 * our open addressing (through ot_ets_read and ot_ets_insert) on the same
 * work, interleaved in one run: ROUNDS rounds, each running both sides one
 * after the other (the order swapped every round), the figure a side's
 * median, so that the machine's load falls on both alike.
 * Reads (ets_lfht_lookup, ets_oa_lookup): 100,000 integer keys with 8-byte
 * values, 2 readers, 5,000,000 look-ups in all at random keys (--quick a
 * tenth). Write/resize mix (ets_*_mix_insert, ets_*_mix_lookup): one writer
 * inserts 1,000,000 fresh keys (--quick 100,000) into an empty table, which
 * grows through every resize (lfht with CDS_LFHT_AUTO_RESIZE from 1,024
 * buckets), while one reader looks up random keys among those already in;
 * rates are each thread's operations over its own time. Every thread is a
 * QSBR reader that stays online and reports a quiescent state every 1,024
 * operations, as a scheduler thread does, so neither side pays for going
 * online per call. No runtime: the ETS table is used from plain threads. */
#include "bench.h"

#include <otter.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>

#define KEYS 100000
#define ROUNDS 3

typedef struct {
    uint64_t key, val;
    struct cds_lfht_node node;
} lnode;

typedef struct {
    int which; /* 0: lfht, 1: ETS */
    struct cds_lfht *ht;
    ot_tab t;
    uint64_t n, seed, sink;
    lnode *nodes;       /* mix: the writer's nodes */
    double rate;        /* mix: this thread's ops/s */
} targ;

static _Atomic uint64_t inserted; /* mix: keys [0, inserted) are in */
static _Atomic int writing;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static int match(struct cds_lfht_node *node, const void *key)
{
    return caa_container_of(node, lnode, node)->key == *(const uint64_t *)key;
}

static void read_cb(const void *v, size_t vl, void *arg)
{
    uint64_t x;
    memcpy(&x, v, 8);
    *(uint64_t *)arg += x;
}

static inline uint64_t xs(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* One look-up of k; false when absent. */
static inline bool look(const targ *a, uint64_t k, uint64_t *sink)
{
    if (a->which == 0) {
        struct cds_lfht_iter it;
        cds_lfht_lookup(a->ht, mix(k), match, &k, &it);
        struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
        if (!n)
            return false;
        *sink += caa_container_of(n, lnode, node)->val;
        return true;
    }
    return ot_ets_read(a->t, &k, 8, read_cb, sink) == 1;
}

static void *reader(void *p)
{
    targ *a = p;
    rcu_register_thread();
    uint64_t x = a->seed, sink = 0;
    for (uint64_t i = 0; i < a->n; i++) {
        if (!look(a, xs(&x) % KEYS, &sink))
            abort();
        if ((i & 1023) == 1023)
            rcu_quiescent_state();
    }
    a->sink = sink;
    rcu_unregister_thread();
    return NULL;
}

static double run_reads(int which, struct cds_lfht *ht, ot_tab t, uint64_t total)
{
    targ a[2];
    pthread_t th[2];
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < 2; i++) {
        a[i] = (targ){.which = which, .ht = ht, .t = t, .n = total / 2,
                      .seed = UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(i + 1)};
        pthread_create(&th[i], NULL, reader, &a[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    return bench_rate(total, t0, bench_now_ns());
}

static void *mix_writer(void *p)
{
    targ *a = p;
    rcu_register_thread();
    uint64_t t0 = bench_now_ns();
    for (uint64_t k = 0; k < a->n; k++) {
        if (a->which == 0) {
            a->nodes[k].key = a->nodes[k].val = k;
            cds_lfht_node_init(&a->nodes[k].node);
            cds_lfht_add(a->ht, mix(k), &a->nodes[k].node);
        } else if (ot_ets_insert(a->t, &k, 8, &k, 8)) {
            abort();
        }
        atomic_store_explicit(&inserted, k + 1, memory_order_release);
        if ((k & 1023) == 1023)
            rcu_quiescent_state();
    }
    a->rate = bench_rate(a->n, t0, bench_now_ns());
    atomic_store(&writing, 0);
    rcu_unregister_thread();
    return NULL;
}

static void *mix_reader(void *p)
{
    targ *a = p;
    rcu_register_thread();
    uint64_t x = a->seed, sink = 0, n = 0;
    while (atomic_load_explicit(&inserted, memory_order_acquire) == 0)
        ;
    uint64_t t0 = bench_now_ns();
    while (atomic_load_explicit(&writing, memory_order_relaxed)) {
        uint64_t in = atomic_load_explicit(&inserted, memory_order_acquire);
        if (!look(a, xs(&x) % in, &sink))
            abort();
        if ((++n & 1023) == 0)
            rcu_quiescent_state();
    }
    a->rate = bench_rate(n, t0, bench_now_ns());
    a->sink = sink;
    rcu_unregister_thread();
    return NULL;
}

/* One write/resize mix on a fresh table; *ins and *lk get the rates. */
static void run_mix(int which, uint64_t n, double *ins, double *lk)
{
    struct cds_lfht *ht = NULL;
    lnode *nodes = NULL;
    ot_tab t = {0};
    if (which == 0) {
        ht = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
        nodes = calloc(n, sizeof *nodes);
        if (!ht || !nodes)
            bench_fail("cds_lfht_new", ENOMEM);
    } else {
        ot_ets_opts o = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC};
        t = ot_ets_new(NULL, &o);
        if (!t.v)
            bench_fail("ot_ets_new", errno);
    }
    atomic_store(&inserted, 0);
    atomic_store(&writing, 1);
    targ w = {.which = which, .ht = ht, .t = t, .n = n, .nodes = nodes};
    targ r = {.which = which, .ht = ht, .t = t, .seed = UINT64_C(0x2545f4914f6cdd1d)};
    pthread_t tw, tr;
    pthread_create(&tr, NULL, mix_reader, &r);
    pthread_create(&tw, NULL, mix_writer, &w);
    pthread_join(tw, NULL);
    pthread_join(tr, NULL);
    *ins = w.rate;
    *lk = r.rate;
    if (which == 0) {
        rcu_thread_online();
        for (uint64_t k = 0; k < n; k++)
            cds_lfht_del(ht, &nodes[k].node);
        rcu_thread_offline();
        cds_lfht_destroy(ht, NULL);
        rcu_barrier();
        free(nodes);
    } else {
        rcu_thread_online();
        ot_ets_delete_table(t);
        rcu_thread_offline();
    }
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmpd);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    bool quick = bench_quick(argc, argv);
    uint64_t total = quick ? 500000 : 5000000, grow = quick ? 100000 : 1000000;
    rcu_register_thread();
    struct cds_lfht *ht = cds_lfht_new(1 << 17, 1, 0, CDS_LFHT_AUTO_RESIZE, NULL) /* powers of 2 */;
    lnode *nodes = calloc(KEYS, sizeof *nodes);
    if (!ht || !nodes)
        return 1;
    for (uint64_t k = 0; k < KEYS; k++) {
        nodes[k].key = nodes[k].val = k;
        cds_lfht_node_init(&nodes[k].node);
        cds_lfht_add(ht, mix(k), &nodes[k].node);
    }
    ot_ets_opts o = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC, .read_concurrency = true};
    ot_tab t = ot_ets_new(NULL, &o);
    if (!t.v)
        return 1;
    for (uint64_t k = 0; k < KEYS; k++)
        ot_ets_insert(t, &k, 8, &k, 8);
    rcu_thread_offline(); /* the others' grace periods must not wait for main */

    double rd[2][ROUNDS], in[2][ROUNDS], lk[2][ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        for (int j = 0; j < 2; j++) {
            int which = (r + j) % 2; /* alternate which side goes first */
            rd[which][r] = run_reads(which, ht, t, total);
            run_mix(which, grow, &in[which][r], &lk[which][r]);
        }
    }
    bench_figure("ets_lfht_lookup", median(rd[0], ROUNDS), "ops/s", true);
    bench_figure("ets_oa_lookup", median(rd[1], ROUNDS), "ops/s", true);
    bench_figure("ets_lfht_mix_insert", median(in[0], ROUNDS), "ops/s", true);
    bench_figure("ets_oa_mix_insert", median(in[1], ROUNDS), "ops/s", true);
    bench_figure("ets_lfht_mix_lookup", median(lk[0], ROUNDS), "ops/s", true);
    bench_figure("ets_oa_mix_lookup", median(lk[1], ROUNDS), "ops/s", true);

    rcu_thread_online();
    ot_ets_delete_table(t);
    for (uint64_t k = 0; k < KEYS; k++)
        cds_lfht_del(ht, &nodes[k].node);
    rcu_thread_offline();
    cds_lfht_destroy(ht, NULL);
    rcu_barrier();
    free(nodes);
    rcu_unregister_thread();
    return 0;
}
