/* restart workload (BENCHMARKS.md), Otter side of perf/beam/bench_restart.erl:
 * a one_for_one supervisor with one permanent gen_server worker (shutdown
 * brutal_kill); the worker is killed and restarted 100,000 times (10,000 with
 * --quick). Each worker's init tells the benchmark process its pid, so one
 * cycle is: kill, the supervisor sees the EXIT, restarts the child, init runs
 * and reports. restart_rate is restarts/s. The intensity never trips. The
 * expected reports (child_terminated, crash) are dropped by the logger. */
#include "bench.h"

#include <otter.h>

enum { TAG_STARTED = OT_TAG_USER };

static ot_pid bench;

static ot_gs_ret w_init(void *arg, void **state) {
    (void)arg;
    *state = NULL;
    ot_pid me = ot_self();
    ot_send(bench, TAG_STARTED, &me, sizeof me);
    return ot_gs_ok();
}

static ot_gs_ret w_call(void *state, const ot_msg *req, ot_from from) {
    (void)state;
    (void)req;
    (void)from;
    return ot_gs_reply(NULL, 0);
}

static const ot_gen_server worker = {.name = "worker", .init = w_init, .handle_call = w_call};

static int start_worker(void *arg, ot_pid *out) {
    (void)arg;
    return ot_gen_server_start_link(&worker, NULL, NULL, out);
}

static void drop_expected(int level, const char *line, void *arg) {
    (void)arg;
    if (level <= OT_LOG_ERROR && !strstr(line, "child_terminated") && !strstr(line, "crash:"))
        fprintf(stderr, "%s\n", line);
}

static ot_pid started(void) {
    ot_msg *m = ot_receive_tag(TAG_STARTED, 10000);
    if (!m)
        bench_fail("waiting for a restart", ETIMEDOUT);
    ot_pid p;
    memcpy(&p, ot_msg_data(m), sizeof p);
    ot_msg_free(m);
    return p;
}

static void run(void *arg) {
    uint64_t n = *(uint64_t *)arg;
    bench = ot_self();
    ot_otp_rules(0, 0);
    ot_child_spec c = {.id = "worker", .start = start_worker, .shutdown = OT_BRUTAL_KILL};
    ot_sup_flags f = {.strategy = OT_ONE_FOR_ONE, .max_restarts = 100000000, .max_seconds = 1};
    ot_pid sup;
    int rc = ot_supervisor_start_link(&f, &c, 1, NULL, &sup);
    if (rc)
        bench_fail("supervisor start", rc);
    ot_pid w = started();
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        ot_exit(w, OT_REASON(OT_KILL));
        w = started();
    }
    uint64_t t1 = bench_now_ns();
    bench_figure("restart_rate", bench_rate(n, t0, t1), "restarts/s", true);
    ot_unlink(sup);
    ot_supervisor_stop(sup, OT_REASON(OT_SHUTDOWN), OT_INFINITY);
}

int main(int argc, char **argv) {
    uint64_t n = bench_quick(argc, argv) ? 10000 : 100000;
    ot_set_logger(drop_expected, NULL);
    return ot_run(run, &n, NULL) == 0 ? 0 : 1;
}
