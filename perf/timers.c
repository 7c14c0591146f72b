/* timers workload (BENCHMARKS.md): the benchmark process arms N = 1,000,000
 * (100,000 with --quick) ot_send_after timers to itself with delays of
 * 1000-2000 ms (the same stride sequence as perf/beam/bench_timers.erl),
 * cancels every other one with ot_cancel_timer, and receives the rest. Each
 * timer's payload is its deadline (CLOCK_MONOTONIC ns at arming plus the
 * delay), so lateness = receive time - deadline. Figures: timer_arm (arms/s),
 * timer_cancel (cancels/s over the N/2 attempts), timer_late_max (ms, worst
 * lateness over all received timers). A timer that fired before its cancel
 * reached it is received and counted like the others. */
#include "bench.h"

#include <otter/process.h>
#include <otter/runtime.h>
#include <otter/timer.h>

#include <stdlib.h>

enum { TAG_TIMER = OT_TAG_USER };

struct timer_args {
    size_t n;
    ot_ref *refs;
    int32_t *late_us; /* lateness of each received timer */
};

static int cmp_i32(const void *x, const void *y) {
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

/* The lateness distribution on stderr (the runner reads only FIGURE lines),
 * with the CLOCK_MONOTONIC time of the worst, to match against a trace such
 * as `perf sched record -k mono`: a worst case that is one timer among
 * thousands on time points at a stall of the thread, not of the wheel. */
static void report_lateness(int32_t *late_us, size_t n, uint64_t worst_at) {
    if (n == 0) return;
    qsort(late_us, n, sizeof *late_us, cmp_i32);
    size_t over1 = 0, over2 = 0;
    for (size_t i = 0; i < n; i++) {
        over1 += late_us[i] > 1000;
        over2 += late_us[i] > 2000;
    }
    fprintf(stderr,
            "timers: lateness over %zu timers: p50 %d us, p99 %d us, p99.9 %d us, max %d us "
            "(at %.6f s); %zu over 1 ms, %zu over 2 ms\n",
            n, late_us[n / 2], late_us[n * 99 / 100], late_us[n * 999 / 1000], late_us[n - 1],
            (double)worst_at / 1e9, over1, over2);
}

static int64_t delay_ms(size_t i) { return 1000 + (int64_t)((i * 7919) % 1001); }

static void bench_main(void *arg) {
    struct timer_args *a = arg;
    ot_pid self = ot_self();
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < a->n; i++) {
        int64_t d = delay_ms(i);
        uint64_t deadline = bench_now_ns() + (uint64_t)d * 1000000u;
        a->refs[i] = ot_send_after(self, d, TAG_TIMER, &deadline, sizeof deadline);
        if (ot_ref_eq(a->refs[i], OT_NOREF)) bench_fail("ot_send_after", errno);
    }
    uint64_t t1 = bench_now_ns();
    size_t cancelled = 0;
    for (size_t i = 0; i < a->n; i += 2) {
        if (ot_cancel_timer(a->refs[i]) >= 0) cancelled++;
    }
    uint64_t t2 = bench_now_ns();
    int64_t late_max = INT64_MIN, late_min = INT64_MAX;
    uint64_t worst_at = 0;
    size_t nrecv = 0;
    for (size_t left = a->n - cancelled; left > 0; left--) {
        /* The last deadline is at most 2 s after the arming ended: wait 10 s
         * before calling the run broken. */
        ot_msg *m = ot_receive_tag(TAG_TIMER, 10000);
        if (!m) bench_fail("receiving a timer", ETIMEDOUT);
        uint64_t now = bench_now_ns();
        uint64_t deadline;
        memcpy(&deadline, ot_msg_data(m), sizeof deadline);
        ot_msg_free(m);
        int64_t late = (int64_t)(now - deadline);
        a->late_us[nrecv++] = (int32_t)(late / 1000);
        if (late > late_max) {
            late_max = late;
            worst_at = now;
        }
        if (late < late_min) late_min = late;
    }
    /* send_after never fires early in Erlang; say so if one did here. */
    if (late_min < 0) fprintf(stderr, "timers: a timer fired %.3f ms early\n", (double)-late_min / 1e6);
    if (ot_receive_tag(TAG_TIMER, 50)) bench_fail("a cancelled timer fired", 0);
    bench_figure("timer_arm", bench_rate(a->n, t0, t1), "arms/s", true);
    bench_figure("timer_cancel", bench_rate((a->n + 1) / 2, t1, t2), "cancels/s", true);
    bench_figure("timer_late_max", (double)late_max / 1e6, "ms", false);
    report_lateness(a->late_us, nrecv, worst_at);
}

int main(int argc, char **argv) {
    struct timer_args a = {.n = bench_quick(argc, argv) ? 100000 : 1000000};
    a.refs = calloc(a.n, sizeof *a.refs);
    a.late_us = calloc(a.n, sizeof *a.late_us);
    if (!a.refs || !a.late_us) return 1;
    bench_quiet();
    int rc = ot_run(bench_main, &a, NULL);
    free(a.refs);
    free(a.late_us);
    if (rc != 0) fprintf(stderr, "timers: ot_run: %s\n", ot_strerror(rc));
    return rc == 0 ? 0 : 1;
}
