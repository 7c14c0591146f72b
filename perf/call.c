/* call workload (BENCHMARKS.md), the C side of perf/beam/bench_call.erl:
 * ot_call round trips to a gen_server that replies at once. call_rtt: one
 * client, 1,000,000 calls (100,000 with --quick), ns per call. call_4clients:
 * 4 client processes together make 1,000,000 calls in all against the same
 * server, calls/s from a common start signal to the last client's finish.
 * Calls use gen_server:call's default timeout (5,000 ms), so the deadline
 * travels with each request as it does on BEAM. */
#include "bench.h"

#include <otter.h>

enum { TAG_PING = OT_TAG_USER, TAG_GO, TAG_DONE };

#define CALL_TIMEOUT_MS 5000

static ot_gs_ret srv_init(void *arg, void **state) {
    (void)arg;
    *state = NULL;
    return ot_gs_ok();
}

static ot_gs_ret srv_call(void *state, const ot_msg *m, ot_from from) {
    (void)state;
    (void)m;
    (void)from;
    return ot_gs_reply("pong", 4);
}

static const ot_gen_server srv = {.name = "bench_call", .init = srv_init, .handle_call = srv_call};

static void call_once(ot_pid s) {
    ot_msg *r;
    int rc = ot_call(s, TAG_PING, NULL, 0, &r, CALL_TIMEOUT_MS);
    if (rc < 0)
        bench_fail("ot_call", rc);
    if (r->size != 4)
        bench_fail("reply", 0);
    ot_msg_free(r);
}

static void calls(ot_pid s, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        call_once(s);
}

struct client {
    ot_pid server, parent;
    uint64_t n;
};

static void client_main(void *arg) {
    struct client *c = arg;
    ot_msg *go = ot_receive_tag(TAG_GO, OT_INFINITY);
    ot_msg_free(go);
    calls(c->server, c->n);
    ot_send(c->parent, TAG_DONE, NULL, 0);
}

static void bench_main(void *arg) {
    uint64_t n = *(uint64_t *)arg;
    ot_pid s;
    int rc = ot_gen_server_start_link(&srv, NULL, NULL, &s);
    if (rc)
        bench_fail("start_link", rc);
    call_once(s);
    uint64_t t0 = bench_now_ns();
    calls(s, n);
    uint64_t t1 = bench_now_ns();
    bench_figure("call_rtt", (double)(t1 - t0) / (double)n, "ns", false);

    struct client c = {s, ot_self(), n / 4};
    ot_pid clients[4];
    for (int i = 0; i < 4; i++) {
        clients[i] = ot_spawn_link(client_main, &c);
        if (!clients[i].v)
            bench_fail("spawn", errno);
    }
    uint64_t t2 = bench_now_ns();
    for (int i = 0; i < 4; i++)
        ot_send(clients[i], TAG_GO, NULL, 0);
    for (int i = 0; i < 4; i++)
        ot_msg_free(ot_receive_tag(TAG_DONE, OT_INFINITY));
    uint64_t t3 = bench_now_ns();
    bench_figure("call_4clients", bench_rate(4 * c.n, t2, t3), "calls/s", true);
    ot_unlink(s);
    ot_gen_server_stop(s, OT_REASON(OT_NORMAL), OT_INFINITY);
}

int main(int argc, char **argv) {
    uint64_t n = bench_quick(argc, argv) ? 100000 : 1000000;
    bench_quiet();
    int rc = ot_run(bench_main, &n, NULL);
    if (rc != 0)
        fprintf(stderr, "call: ot_run: %s\n", ot_strerror(rc));
    return rc == 0 ? 0 : 1;
}
