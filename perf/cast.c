/* cast workload (BENCHMARKS.md), the C side of perf/beam/bench_cast.erl:
 * 1,000,000 ot_cast increments (100,000 with --quick) to a counter server,
 * then one call reads the count (checked). cast_rate is casts/s over the
 * casts and that call. */
#include "bench.h"

#include <otter.h>

enum { TAG_INCR = OT_TAG_USER, TAG_COUNT };

static ot_gs_ret srv_init(void *arg, void **state) {
    (void)arg;
    *state = ot_calloc(1, sizeof(uint64_t));
    return *state ? ot_gs_ok() : ot_gs_stop(ot_reason_error("no memory"));
}

static ot_gs_ret srv_call(void *state, const ot_msg *m, ot_from from) {
    (void)m;
    (void)from;
    return ot_gs_reply(state, sizeof(uint64_t)); /* the state outlives the callback */
}

static ot_gs_ret srv_cast(void *state, const ot_msg *m) {
    (void)m;
    ++*(uint64_t *)state;
    return ot_gs_ok();
}

static const ot_gen_server srv = {
    .name = "bench_cast", .init = srv_init, .handle_call = srv_call, .handle_cast = srv_cast};

static uint64_t count(ot_pid s, int64_t timeout) {
    ot_msg *r;
    int rc = ot_call(s, TAG_COUNT, NULL, 0, &r, timeout);
    if (rc < 0)
        bench_fail("ot_call", rc);
    uint64_t c;
    memcpy(&c, ot_msg_data(r), sizeof c);
    ot_msg_free(r);
    return c;
}

static void bench_main(void *arg) {
    uint64_t n = *(uint64_t *)arg;
    ot_pid s;
    int rc = ot_gen_server_start_link(&srv, NULL, NULL, &s);
    if (rc)
        bench_fail("start_link", rc);
    if (count(s, 5000) != 0)
        bench_fail("count", 0);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        rc = ot_cast(s, TAG_INCR, NULL, 0);
        if (rc < 0)
            bench_fail("ot_cast", rc);
    }
    if (count(s, OT_INFINITY) != n)
        bench_fail("count", 0);
    uint64_t t1 = bench_now_ns();
    bench_figure("cast_rate", bench_rate(n, t0, t1), "casts/s", true);
    ot_unlink(s);
    ot_gen_server_stop(s, OT_REASON(OT_NORMAL), OT_INFINITY);
}

int main(int argc, char **argv) {
    uint64_t n = bench_quick(argc, argv) ? 100000 : 1000000;
    bench_quiet();
    int rc = ot_run(bench_main, &n, NULL);
    if (rc != 0)
        fprintf(stderr, "cast: ot_run: %s\n", ot_strerror(rc));
    return rc == 0 ? 0 : 1;
}
