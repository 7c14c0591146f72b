/* 1,000,000 idle gen_servers in one runtime (3,000 under TSan): each is started (init has run
 * when the start returns), all answer afterwards, and the resident memory
 * they add, per server, is printed and bounded. The target is 512 bytes (the
 * process record is 384, the server's own record 96); BEAM spends about 2.7 KB
 * on an idle process. */
#include <otter/testing.h>

#include "support/rss.h"

#include <stdlib.h>

/* The sanitizer builds bound what their allocator and shadow add too, at a
 * figure that still catches a server keeping a stack (64 KiB) or a page:
 * ASan puts a header and redzones around each of the server's blocks and
 * shadows 1/8 of all (1,023 bytes measured); TSan's shadow is four times what
 * it covers, and its fibers (one per few handler runs, sched.c) cost
 * milliseconds each and widen its clocks, hence its smaller count (5,100-5,400
 * bytes measured). */
#if defined(OT_TSAN)
#define N 3000
#define PER_MAX 8192.0
#elif defined(OT_ASAN)
#define N 1000000
#define PER_MAX 1536.0
#else
#define N 1000000
#define PER_MAX 512.0
#endif

static ot_gs_ret idle_init(void *arg, void **state) {
    *state = NULL;
    return ot_gs_ok();
}

static ot_gs_ret idle_call(void *state, const ot_msg *m, ot_from from) {
    return ot_gs_reply("ok", 2);
}

static const ot_gen_server idle = {.name = "idle", .init = idle_init, .handle_call = idle_call};

OT_TEST(gen_server_mem, a_million_idle_servers, .timeout = 900) {
    ot_otp_rules(0, 0); /* a million unsupervised servers, on purpose */
    ot_pid *pids = malloc(N * sizeof *pids);
    ot_assert(pids != NULL);
    size_t rss0 = ot_test_rss_bytes();
    for (int i = 0; i < N; i++) {
        int rc = ot_gen_server_start(&idle, NULL, NULL, &pids[i]);
        if (rc != 0)
            ot_assert_eq(rc, 0);
    }
    size_t rss1 = ot_test_rss_bytes();
    double per = (double)(rss1 - rss0) / N;
    fprintf(stderr, "gen_server_mem: %d idle gen_servers, %.0f bytes of RSS each\n", N, per);
    /* every one of them answers: the first, the last and every 1000th */
    for (int i = 0; i < N; i += 999) {
        ot_msg *r;
        ot_assert_eq(ot_call(pids[i], 0, NULL, 0, &r, 60000), 0);
        ot_msg_free(r);
    }
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(pids[N - 1], &in), 0);
    ot_assert_eq(in.stack_bytes, 0);
    ot_assert_eq(in.n_monitored_by, 0);
    ot_assert(per <= PER_MAX, "%.0f bytes per idle gen_server (bound %.0f)", per, PER_MAX);
    free(pids);
}
