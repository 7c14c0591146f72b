/* Why ETS has its own hash table (ARCHITECTURE 8): the ets_read look-up
 * workload (100,000 integer keys, 8-byte values, 2 readers, 5,000,000
 * look-ups in all; --quick a tenth) on liburcu's cds_lfht and on our open
 * addressing through ot_ets_read. Both run on the same two pthreads,
 * registered as QSBR readers that stay online and report a quiescent state
 * every 1,024 look-ups, as a scheduler thread does, so neither side pays for
 * going online per call. Prints ets_lfht_lookup and ets_oa_lookup. */
#include "bench.h"

#include <otter.h>
#include <pthread.h>
#include <stdlib.h>
#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>

#define KEYS 100000

typedef struct {
    uint64_t key, val;
    struct cds_lfht_node node;
} lnode;

typedef struct {
    int which; /* 0: lfht, 1: ETS */
    struct cds_lfht *ht;
    ot_tab t;
    uint64_t n, seed, sink;
} reader_arg;

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

static void *reader(void *p)
{
    reader_arg *a = p;
    rcu_register_thread();
    uint64_t x = a->seed, sink = 0;
    for (uint64_t i = 0; i < a->n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t k = x % KEYS;
        if (a->which == 0) {
            struct cds_lfht_iter it;
            cds_lfht_lookup(a->ht, mix(k), match, &k, &it);
            struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
            if (!n)
                abort();
            sink += caa_container_of(n, lnode, node)->val;
        } else if (ot_ets_read(a->t, &k, 8, read_cb, &sink) != 1) {
            abort();
        }
        if ((i & 1023) == 1023)
            rcu_quiescent_state();
    }
    a->sink = sink;
    rcu_unregister_thread();
    return NULL;
}

static double run(int which, struct cds_lfht *ht, ot_tab t, uint64_t total)
{
    reader_arg a[2];
    pthread_t th[2];
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < 2; i++) {
        a[i] = (reader_arg){which, ht, t, total / 2, UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(i + 1), 0};
        pthread_create(&th[i], NULL, reader, &a[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    return bench_rate(total, t0, bench_now_ns());
}

int main(int argc, char **argv)
{
    uint64_t total = bench_quick(argc, argv) ? 500000 : 5000000;
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
    rcu_thread_offline(); /* the readers' grace periods must not wait for main */

    bench_figure("ets_lfht_lookup", run(0, ht, t, total), "ops/s", true);
    bench_figure("ets_oa_lookup", run(1, ht, t, total), "ops/s", true);

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
