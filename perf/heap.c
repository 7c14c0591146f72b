/* heap workload (BENCHMARKS.md; no BEAM peer). All of it runs in processes,
 * so ot_alloc/ot_free go to the process heap, never to malloc.
 *
 * heap_alloc_free: ns per ot_alloc(64) + ot_free pair, 10,000,000 pairs
 * (1,000,000 with --quick), after one untimed allocation has leased the
 * process its arena. heap_alloc_free_batch: the same per block when 1,000
 * blocks are allocated and then all freed, so the free path cannot simply
 * hand the last block back.
 *
 * heap_teardown: µs to tear down a process holding 10,000 blocks of 64 B.
 * Method: a worker spawned with a monitor allocates its blocks (checked with
 * ot_process_info's heap_bytes), reports ready and waits; the clock starts
 * when the benchmark process sends it "exit" and stops when the DOWN message
 * arrives. One sample is thus a local send, the worker's exit (heap release,
 * monitor firing) and the DOWN delivery; heap_teardown_empty measures the
 * same cycle for a worker that allocated nothing, so the heap's share is the
 * difference. Each figure is the mean of 1,000 cycles (100 with --quick). */
#include "bench.h"

#include <otter/alloc.h>
#include <otter/process.h>
#include <otter/runtime.h>

enum { TAG_READY = OT_TAG_USER, TAG_EXIT };
enum { BLOCKS = 10000, BLOCK_SIZE = 64, BATCH = 1000 };

struct heap_args {
    uint64_t pairs;
    unsigned cycles;
};

static double alloc_free_pairs(uint64_t pairs) {
    void *lease = ot_alloc(BLOCK_SIZE);
    if (!lease) bench_fail("ot_alloc", ENOMEM);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < pairs; i++) {
        void *p = ot_alloc(BLOCK_SIZE);
        if (!p) bench_fail("ot_alloc", ENOMEM);
        /* One store, so the block is really handed out and used. */
        *(volatile char *)p = (char)i;
        ot_free(p);
    }
    uint64_t t1 = bench_now_ns();
    ot_free(lease);
    return (double)(t1 - t0) / (double)pairs;
}

static double alloc_free_batches(uint64_t blocks) {
    static void *batch[BATCH];
    uint64_t rounds = blocks / BATCH;
    uint64_t t0 = bench_now_ns();
    for (uint64_t r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < BATCH; i++) {
            batch[i] = ot_alloc(BLOCK_SIZE);
            if (!batch[i]) bench_fail("ot_alloc", ENOMEM);
            *(volatile char *)batch[i] = (char)i;
        }
        for (unsigned i = 0; i < BATCH; i++) ot_free(batch[i]);
    }
    uint64_t t1 = bench_now_ns();
    return (double)(t1 - t0) / (double)(rounds * BATCH);
}

/* The worker: arg is the number of blocks to allocate and keep. */
static void worker(void *arg) {
    size_t blocks = (size_t)(uintptr_t)arg;
    ot_pid parent = OT_NOPID;
    for (size_t i = 0; i < blocks; i++) {
        char *p = ot_alloc(BLOCK_SIZE);
        if (!p) bench_fail("ot_alloc", ENOMEM);
        p[0] = (char)i;
    }
    ot_msg *m = ot_receive_tag(TAG_READY, OT_INFINITY); /* carries the parent's pid */
    if (m) {
        parent = m->from;
        ot_msg_free(m);
    }
    ot_send(parent, TAG_READY, NULL, 0);
    m = ot_receive_tag(TAG_EXIT, OT_INFINITY);
    (void)m; /* freed with the rest of the heap by the exit being measured */
    ot_exit_self(OT_REASON(OT_NORMAL));
}

static bool is_down(const ot_msg *m, void *arg) {
    const ot_ref *ref = arg;
    if (m->tag != OT_TAG_DOWN) return false;
    const ot_down_msg *d = ot_msg_data(m);
    return ot_ref_eq(d->ref, *ref);
}

/* Mean µs from the exit request to the DOWN over `cycles` workers. */
static double teardown(unsigned cycles, size_t blocks) {
    uint64_t total = 0;
    for (unsigned c = 0; c < cycles; c++) {
        ot_ref mref = OT_NOREF;
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &mref, .scheduler = -1};
        ot_pid w = ot_spawn_opt(worker, (void *)(uintptr_t)blocks, &o);
        if (ot_pid_eq(w, OT_NOPID)) bench_fail("ot_spawn_opt", errno);
        ot_send(w, TAG_READY, NULL, 0);
        ot_msg *m = ot_receive_tag(TAG_READY, OT_INFINITY);
        if (!m) bench_fail("ot_receive_tag", errno);
        ot_msg_free(m);
        if (c == 0 && blocks > 0) {
            struct ot_process_info info;
            int rc = ot_process_info(w, &info);
            if (rc < 0) bench_fail("ot_process_info", rc);
            if (info.heap_bytes < blocks * BLOCK_SIZE) {
                fprintf(stderr, "heap: worker holds %zu heap bytes, expected >= %zu\n",
                        info.heap_bytes, blocks * (size_t)BLOCK_SIZE);
            }
        }
        uint64_t t0 = bench_now_ns();
        ot_send(w, TAG_EXIT, NULL, 0);
        m = ot_receive_match(is_down, &mref, OT_INFINITY);
        uint64_t t1 = bench_now_ns();
        if (!m) bench_fail("waiting for DOWN", errno);
        const ot_down_msg *d = ot_msg_data(m);
        if (d->reason.kind != OT_NORMAL) bench_fail("worker exit reason", 0);
        ot_msg_free(m);
        total += t1 - t0;
    }
    return (double)total / 1e3 / (double)cycles;
}

static void bench_main(void *arg) {
    struct heap_args *a = arg;
    bench_figure("heap_alloc_free", alloc_free_pairs(a->pairs), "ns", false);
    bench_figure("heap_alloc_free_batch", alloc_free_batches(a->pairs), "ns", false);
    bench_figure("heap_teardown", teardown(a->cycles, BLOCKS), "us", false);
    bench_figure("heap_teardown_empty", teardown(a->cycles, 0), "us", false);
}

int main(int argc, char **argv) {
    bool quick = bench_quick(argc, argv);
    struct heap_args a = {.pairs = quick ? 1000000 : 10000000, .cycles = quick ? 100 : 1000};
    bench_quiet();
    int rc = ot_run(bench_main, &a, NULL);
    if (rc != 0) fprintf(stderr, "heap: ot_run: %s\n", ot_strerror(rc));
    return rc == 0 ? 0 : 1;
}
