/* Micro benchmark of the process heap alone (runtime/alloc/heap.h, no runtime): the
 * cost of ot__heap_alloc + ot__heap_free of 64-byte blocks, one at a time and
 * in batches of 1,000, and of ot__heap_release of a heap holding 10,000 such
 * blocks, leased from the arena pool (heap_micro_teardown_us) and from the
 * malloc fallback (heap_micro_teardown_fallback_us). Teardowns are timed one
 * by one and the median is reported, so a stray page fault or preemption on
 * these shared machines does not move the figure. --quick runs 10x less. */
#include "runtime/alloc/heap_impl.h"
#include "bench.h"

#include <stdlib.h>

#define HOLD 10000 /* blocks held by a torn-down heap */
#define BATCH 1000

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what) {
    fprintf(stderr, "heap_micro: %s failed\n", what);
    exit(1);
}

static double pair_ns(long iters) {
    ot__heap h = {0};
    void *p = ot__heap_alloc(&h, 64); /* lease and first chunk outside the timing */
    ot__heap_free(&h, p);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        p = ot__heap_alloc(&h, 64);
        if (!p)
            die("alloc");
        *(volatile char *)p = 1;
        ot__heap_free(&h, p);
    }
    uint64_t t1 = bench_now_ns();
    ot__heap_release(&h);
    return (double)(t1 - t0) / (double)iters;
}

static double batch_ns(long rounds) {
    static void *blk[BATCH];
    ot__heap h = {0};
    for (int i = 0; i < BATCH; i++) /* warm: the runs exist, the free list is full */
        blk[i] = ot__heap_alloc(&h, 64);
    for (int i = 0; i < BATCH; i++)
        ot__heap_free(&h, blk[i]);
    uint64_t t0 = bench_now_ns();
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BATCH; i++) {
            if (!(blk[i] = ot__heap_alloc(&h, 64)))
                die("alloc");
            *(volatile char *)blk[i] = 1;
        }
        for (int i = 0; i < BATCH; i++)
            ot__heap_free(&h, blk[i]);
    }
    uint64_t t1 = bench_now_ns();
    ot__heap_release(&h);
    return (double)(t1 - t0) / (double)(rounds * BATCH);
}

/* Median microseconds of `reps` releases of a heap holding HOLD blocks; every
 * heap must have opened in expect_mode (main arranges which). */
static double teardown_us(int reps, int expect_mode) {
    uint64_t *ns = malloc(sizeof *ns * (size_t)reps);
    if (!ns)
        die("malloc");
    for (int r = 0; r < reps; r++) {
        ot__heap h = {0};
        for (int i = 0; i < HOLD; i++) {
            void *p = ot__heap_alloc(&h, 64);
            if (!p)
                die("alloc");
            *(volatile char *)p = 1;
        }
        if (ot__heap_mode_of(&h) != expect_mode)
            die("heap mode");
        uint64_t t0 = bench_now_ns();
        ot__heap_release(&h);
        ns[r] = bench_now_ns() - t0;
    }
    qsort(ns, (size_t)reps, sizeof *ns, cmp_u64);
    double med = (double)ns[reps / 2] / 1000.0;
    free(ns);
    return med;
}

int main(int argc, char **argv) {
    int scale = bench_quick(argc, argv) ? 1 : 10;
    if (ot__heap_pool_init_mode(1, OT__HEAP_ARENA) != 0)
        die("ot__heap_pool_init_mode");

    bench_figure("heap_micro_alloc_free_ns", pair_ns(2000000L * scale), "ns", false);
    bench_figure("heap_micro_alloc_free_batch_ns", batch_ns(2000L * scale), "ns", false);
    bench_figure("heap_micro_teardown_us", teardown_us(100 * scale, OT__HEAP_ARENA), "us", false);

    ot__heap hog = {0}; /* holds the pool's one arena: every other heap falls back */
    if (!ot__heap_alloc(&hog, 16) || ot__heap_mode_of(&hog) != OT__HEAP_ARENA)
        die("hog");
    bench_figure("heap_micro_teardown_fallback_us", teardown_us(100 * scale, OT__HEAP_FALLBACK),
                 "us", false);
    ot__heap_release(&hog);
    ot__heap_pool_fini();
    return 0;
}
