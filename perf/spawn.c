/* spawn workload (BENCHMARKS.md): spawn N = 1,000,000 processes (100,000 with
 * --quick) that each wait for one message, then stop them all by sending each
 * its message and waiting until every one of them is dead.
 *
 * Round 1, handler processes (ot_spawn_handler: no stack while waiting):
 * spawn_rate (the spawn phase only), spawn_exit_rate (first stop message to
 * the last exit) and spawn_bytes_per_proc (RSS growth while all N are alive,
 * over N). Rounds 2 and 3, stackful processes (ot_spawn, each blocked in
 * ot_receive): the first from a cold stack pool gives spawn_stackful_rate and
 * spawn_stackful_bytes_per_proc, the second, in the same runtime, from the
 * pool the first round warmed, gives spawn_stackful_warm_rate. The pid array
 * is allocated and touched before the first RSS reading, so the byte figures
 * are the runtime's cost alone (BEAM's figure includes its 16 B list cell). */
#include "bench.h"

#include <otter/process.h>
#include <otter/runtime.h>

#include <stdlib.h>

enum { TAG_STOP = OT_TAG_USER };

struct spawn_args {
    size_t n;
    ot_pid *pids;
};

static int stop_handler(void *state, const ot_msg *m) {
    (void)state;
    (void)m;
    ot_exit_self(OT_REASON(OT_NORMAL));
}

static void stackful_waiter(void *arg) {
    (void)arg;
    ot_msg *m = ot_receive(OT_INFINITY);
    if (m) ot_msg_free(m);
}

/* Waits until every pid is dead, polling each with ot_is_alive (O(1); they
 * die roughly in the order they were told to) and sleeping 1 ms while the
 * next one still lives. ot_processes would scan the whole process table. */
static void wait_all_dead(const ot_pid *pids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        while (ot_is_alive(pids[i])) ot_sleep(1);
    }
}

struct round {
    double spawn_rate, exit_rate, bytes_per_proc;
};

static struct round run_round(struct spawn_args *a, bool handler) {
    size_t rss0 = bench_rss_bytes();
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < a->n; i++) {
        ot_pid p = handler ? ot_spawn_handler(stop_handler, NULL, NULL)
                           : ot_spawn(stackful_waiter, NULL);
        if (ot_pid_eq(p, OT_NOPID)) bench_fail(handler ? "ot_spawn_handler" : "ot_spawn", errno);
        a->pids[i] = p;
    }
    uint64_t t1 = bench_now_ns();
    size_t rss1 = bench_rss_bytes();
    for (size_t i = 0; i < a->n; i++) {
        int rc = ot_send(a->pids[i], TAG_STOP, NULL, 0);
        if (rc < 0) bench_fail("ot_send", rc);
    }
    wait_all_dead(a->pids, a->n);
    uint64_t t2 = bench_now_ns();
    struct round r = {
        .spawn_rate = bench_rate(a->n, t0, t1),
        .exit_rate = bench_rate(a->n, t1, t2),
        .bytes_per_proc = rss1 > rss0 ? (double)(rss1 - rss0) / (double)a->n : 0.0,
    };
    return r;
}

static void bench_main(void *arg) {
    struct spawn_args *a = arg;
    struct round h = run_round(a, true);
    bench_figure("spawn_rate", h.spawn_rate, "spawns/s", true);
    bench_figure("spawn_bytes_per_proc", h.bytes_per_proc, "B", false);
    bench_figure("spawn_exit_rate", h.exit_rate, "exits/s", true);
    struct round cold = run_round(a, false);
    bench_figure("spawn_stackful_rate", cold.spawn_rate, "spawns/s", true);
    bench_figure("spawn_stackful_bytes_per_proc", cold.bytes_per_proc, "B", false);
    struct round warm = run_round(a, false);
    bench_figure("spawn_stackful_warm_rate", warm.spawn_rate, "spawns/s", true);
}

int main(int argc, char **argv) {
    struct spawn_args a = {.n = bench_quick(argc, argv) ? 100000 : 1000000};
    a.pids = calloc(a.n, sizeof *a.pids);
    if (!a.pids) return 1;
    memset(a.pids, 0xff, a.n * sizeof *a.pids); /* fault the array in before any RSS reading */
    bench_quiet();
    int rc = ot_run(bench_main, &a, NULL);
    free(a.pids);
    if (rc != 0) fprintf(stderr, "spawn: ot_run: %s\n", ot_strerror(rc));
    return rc == 0 ? 0 : 1;
}
