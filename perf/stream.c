/* stream workload (BENCHMARKS.md), Otter side of perf/beam/bench_stream.exs:
 * ot_task_async_stream over 200,000 lazily produced items (20,000 with
 * --quick), each mapped to x * 2 by a task, max_concurrency 2, results taken
 * in order and summed (checked). stream_items is items/s. */
#include "bench.h"

#include <otter.h>

struct input {
    uint64_t next, n, cur;
};

static int produce(void *state, ot_buf *item) {
    struct input *in = state;
    if (in->next >= in->n)
        return 0;
    in->cur = ++in->next;
    item->data = &in->cur;
    item->len = sizeof in->cur;
    return 1;
}

static int twice(void *arg, ot_buf *out) {
    const ot_buf *in = arg;
    uint64_t x;
    memcpy(&x, in->data, sizeof x);
    uint64_t *r = ot_alloc(sizeof *r);
    *r = 2 * x;
    out->data = r;
    out->len = sizeof *r;
    return 0;
}

static int add(const ot_stream_item *r, void *arg) {
    uint64_t v;
    if (r->status != 0 || r->len != sizeof v)
        return -EIO;
    memcpy(&v, r->data, sizeof v);
    *(uint64_t *)arg += v;
    return 0;
}

static void run(void *arg) {
    uint64_t n = *(uint64_t *)arg, sum = 0;
    struct input in = {.n = n};
    ot_stream s = {produce, &in};
    ot_stream_opts o = {.max_concurrency = 2};
    uint64_t t0 = bench_now_ns();
    int rc = ot_task_async_stream(&s, twice, &o, add, &sum);
    uint64_t t1 = bench_now_ns();
    if (rc != 0)
        bench_fail("async_stream", rc);
    if (sum != n * (n + 1))
        bench_fail("the sum", EIO);
    bench_figure("stream_items", bench_rate(n, t0, t1), "items/s", true);
}

int main(int argc, char **argv) {
    uint64_t n = bench_quick(argc, argv) ? 20000 : 200000;
    bench_quiet();
    return ot_run(run, &n, NULL) == 0 ? 0 : 1;
}
