/* ring workload (BENCHMARKS.md): 10,000 processes in a ring pass a counter
 * 1,000,000 hops (100,000 with --quick). Each member forwards {token, n-1} to
 * its successor; the one that receives 0 tells the benchmark process. The
 * clock runs from the first send to that notice; building and tearing down
 * the ring are not timed. ring_hops uses stackful members (ot_spawn, each
 * blocked in ot_receive, as BEAM's processes are); ring_handler_hops runs the
 * same ring of handler processes (BEAM's column repeats its one kind). */
#include "bench.h"

#include <otter/process.h>
#include <otter/runtime.h>

#include <stdlib.h>

enum { TAG_TOKEN = OT_TAG_USER, TAG_STOP, TAG_DONE };
enum { RING = 10000 };

/* One per member, written by the benchmark process before the first token
 * is sent; members read it only after receiving a message, so the send
 * orders the write before the read. */
struct member {
    ot_pid next;
};

static ot_pid g_main;

/* Shared by both kinds: returns false when the member should stop. */
static bool on_message(struct member *me, const ot_msg *m) {
    if (m->tag == TAG_STOP) {
        ot_send(me->next, TAG_STOP, NULL, 0);
        return false;
    }
    uint64_t n;
    memcpy(&n, ot_msg_data(m), sizeof n);
    if (n == 0) {
        ot_send(g_main, TAG_DONE, NULL, 0);
    } else {
        n--;
        ot_send(me->next, TAG_TOKEN, &n, sizeof n);
    }
    return true;
}

static void stackful_member(void *arg) {
    struct member *me = arg;
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        if (!m) continue;
        bool go_on = on_message(me, m);
        ot_msg_free(m);
        if (!go_on) return;
    }
}

static int handler_member(void *state, const ot_msg *m) {
    if (!on_message(state, m)) ot_exit_self(OT_REASON(OT_NORMAL));
    return 0;
}

struct ring_args {
    uint64_t hops;
    struct member *members;
};

static double run_ring(struct ring_args *a, bool handler) {
    size_t base = ot_processes(NULL, 0);
    ot_pid first = OT_NOPID, prev = OT_NOPID;
    for (size_t i = 0; i < RING; i++) {
        ot_pid p = handler ? ot_spawn_handler(handler_member, &a->members[i], NULL)
                           : ot_spawn(stackful_member, &a->members[i]);
        if (ot_pid_eq(p, OT_NOPID)) bench_fail("spawn", errno);
        if (i == 0) first = p;
        a->members[i].next = prev; /* member i forwards to member i-1 */
        prev = p;
    }
    a->members[0].next = prev; /* and the first to the last: a ring */
    uint64_t t0 = bench_now_ns();
    int rc = ot_send(first, TAG_TOKEN, &a->hops, sizeof a->hops);
    if (rc < 0) bench_fail("ot_send", rc);
    ot_msg *m = ot_receive_tag(TAG_DONE, OT_INFINITY);
    uint64_t t1 = bench_now_ns();
    if (!m) bench_fail("ot_receive_tag", errno);
    ot_msg_free(m);
    ot_send(first, TAG_STOP, NULL, 0);
    while (ot_processes(NULL, 0) > base) ot_sleep(1);
    return bench_rate(a->hops, t0, t1);
}

static void bench_main(void *arg) {
    struct ring_args *a = arg;
    g_main = ot_self();
    bench_figure("ring_hops", run_ring(a, false), "hops/s", true);
    bench_figure("ring_handler_hops", run_ring(a, true), "hops/s", true);
}

int main(int argc, char **argv) {
    struct ring_args a = {.hops = bench_quick(argc, argv) ? 100000 : 1000000};
    a.members = calloc(RING, sizeof *a.members);
    if (!a.members) return 1;
    bench_quiet();
    int rc = ot_run(bench_main, &a, NULL);
    free(a.members);
    if (rc != 0) fprintf(stderr, "ring: ot_run: %s\n", ot_strerror(rc));
    return rc == 0 ? 0 : 1;
}
