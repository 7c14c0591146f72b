/* 1,000,000 idle gen_servers in one runtime: each is started (init has run
 * when the start returns), all answer afterwards, and the resident memory
 * they add, per server, is printed and bounded. The target is 512 bytes (the
 * process record is 384, the server's own record 96); BEAM spends about 2.7 KB
 * on an idle process. */
#include <otter/testing.h>

#include "support/rss.h"

#include <stdlib.h>

#define N 1000000

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
    ot_assert(per <= 512.0, "%.0f bytes per idle gen_server (target 512)", per);
    free(pids);
}
