/* pingpong workload (BENCHMARKS.md): two processes, 1,000,000 round trips
 * (100,000 with --quick); pingpong_rtt is ns per round trip. The benchmark
 * process (stackful) pings an echo process and waits for each reply; one
 * untimed round trip first keeps the spawn out of the loop. pingpong_rtt
 * echoes from a stackful process blocked in ot_receive, as BEAM's does;
 * pingpong_handler_rtt echoes from a handler process (BEAM's column repeats
 * its one kind). */
#include "bench.h"

#include <otter/process.h>
#include <otter/runtime.h>

enum { TAG_PING = OT_TAG_USER, TAG_PONG, TAG_STOP };

static void stackful_pong(void *arg) {
    (void)arg;
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        if (!m) continue;
        uint32_t tag = m->tag;
        ot_pid from = m->from;
        ot_msg_free(m);
        if (tag == TAG_STOP) return;
        ot_send(from, TAG_PONG, NULL, 0);
    }
}

static int handler_pong(void *state, const ot_msg *m) {
    (void)state;
    if (m->tag == TAG_STOP) ot_exit_self(OT_REASON(OT_NORMAL));
    ot_send(m->from, TAG_PONG, NULL, 0);
    return 0;
}

static void round_trip(ot_pid pong) {
    int rc = ot_send(pong, TAG_PING, NULL, 0);
    if (rc < 0) bench_fail("ot_send", rc);
    ot_msg *m = ot_receive(OT_INFINITY);
    if (!m) bench_fail("ot_receive", errno);
    ot_msg_free(m);
}

static double run_pingpong(uint64_t n, bool handler) {
    ot_pid pong = handler ? ot_spawn_handler(handler_pong, NULL, NULL)
                          : ot_spawn(stackful_pong, NULL);
    if (ot_pid_eq(pong, OT_NOPID)) bench_fail("spawn", errno);
    round_trip(pong);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) round_trip(pong);
    uint64_t t1 = bench_now_ns();
    ot_send(pong, TAG_STOP, NULL, 0);
    return (double)(t1 - t0) / (double)n;
}

static void bench_main(void *arg) {
    uint64_t n = *(uint64_t *)arg;
    bench_figure("pingpong_rtt", run_pingpong(n, false), "ns", false);
    bench_figure("pingpong_handler_rtt", run_pingpong(n, true), "ns", false);
}

int main(int argc, char **argv) {
    uint64_t n = bench_quick(argc, argv) ? 100000 : 1000000;
    bench_quiet();
    int rc = ot_run(bench_main, &n, NULL);
    if (rc != 0) fprintf(stderr, "pingpong: ot_run: %s\n", ot_strerror(rc));
    return rc == 0 ? 0 : 1;
}
