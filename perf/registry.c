/* registry workload, Otter side (the peer is perf/beam/bench_registry.exs,
 * Elixir's Registry). A unique registry with one partition per scheduler
 * (Elixir's recommended partitions: System.schedulers_online()) holds 10,000
 * integer keys (8 bytes) with integer values, all registered by one holder
 * process. registry_lookup: 2 processes (bound to different schedulers when
 * there are two) do 2,000,000 ot_registry_lookup calls in all, each copying
 * the {pid, value} entry into the caller's heap and freeing it, as
 * Registry.lookup/2 builds a list; keys walk the key space by a stride prime
 * to it (k := (k + 7919) mod 10,000), as the Elixir side does.
 * registry_register: one process registers and unregisters 100,000 distinct
 * keys (pairs/s). --quick does a tenth of each count. */
#include "bench.h"

#include <otter.h>
#include <stdlib.h>

enum { TAG_DONE = OT_TAG_USER, TAG_READY, TAG_STOP };

#define KEYS 10000

typedef struct {
    ot_reg r;
    uint64_t start, n;
    ot_pid parent, holder;
} work;

static void holder(void *arg) {
    work *w = arg;
    for (uint64_t k = 0; k < KEYS; k++) {
        int rc = ot_registry_register(w->r, &k, 8, &k, 8, NULL);
        if (rc)
            bench_fail("ot_registry_register", rc);
    }
    ot_send(w->parent, TAG_READY, NULL, 0);
    ot_msg *m = ot_receive_tag(TAG_STOP, OT_INFINITY);
    ot_msg_free(m);
}

static void looker(void *arg) {
    work *w = arg;
    uint64_t k = w->start, sink = 0;
    for (uint64_t i = 0; i < w->n; i++) {
        ot_reg_entry *e;
        size_t n;
        int rc = ot_registry_lookup(w->r, &k, 8, &e, &n);
        if (rc || n != 1 || e[0].pid.v != w->holder.v)
            bench_fail("ot_registry_lookup", rc ? rc : -ENOENT);
        sink += *(const uint64_t *)e[0].value;
        ot_free(e);
        k = (k + 7919) % KEYS;
    }
    ot_send(w->parent, TAG_DONE, &sink, sizeof sink);
}

static double lookups(ot_reg r, ot_pid h, uint64_t total) {
    work w[2];
    unsigned ns = ot_schedulers();
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < 2; i++) {
        w[i] = (work){.r = r, .start = (uint64_t)i * KEYS / 2, .n = total / 2,
                      .parent = ot_self(), .holder = h};
        ot_spawn_opts o = {.scheduler = (int)((unsigned)i % (ns ? ns : 1)), .scheduler_set = true,
                           .bind = true};
        if (!ot_spawn_opt(looker, &w[i], &o).v)
            bench_fail("ot_spawn_opt", errno);
    }
    for (int i = 0; i < 2; i++) {
        ot_msg *m = ot_receive_tag(TAG_DONE, 120000);
        if (!m)
            bench_fail("looker report", ETIMEDOUT);
        ot_msg_free(m);
    }
    return bench_rate(total, t0, bench_now_ns());
}

static void bench_main(void *arg) {
    bool quick = *(bool *)arg;
    uint64_t n_lookups = quick ? 200000 : 2000000, n_regs = quick ? 10000 : 100000;
    ot_pid rp;
    int rc = ot_registry_start_link("bench_registry", OT_UNIQUE, 0, &rp);
    if (rc)
        bench_fail("ot_registry_start_link", rc);
    ot_reg r = ot_registry_of(rp);
    work hw = {.r = r, .parent = ot_self()};
    ot_pid h = ot_spawn(holder, &hw);
    ot_msg *m = ot_receive_tag(TAG_READY, 120000);
    if (!m)
        bench_fail("holder", ETIMEDOUT);
    ot_msg_free(m);
    if (ot_registry_count(r) != KEYS)
        bench_fail("count", 0);
    bench_figure("registry_lookup", lookups(r, h, n_lookups), "ops/s", true);
    ot_send(h, TAG_STOP, NULL, 0);

    uint64_t t0 = bench_now_ns();
    for (uint64_t k = KEYS; k < KEYS + n_regs; k++) {
        if ((rc = ot_registry_register(r, &k, 8, &k, 8, NULL)))
            bench_fail("ot_registry_register", rc);
        if ((rc = ot_registry_unregister(r, &k, 8)))
            bench_fail("ot_registry_unregister", rc);
    }
    bench_figure("registry_register", bench_rate(n_regs, t0, bench_now_ns()), "pairs/s", true);
}

int main(int argc, char **argv) {
    bool quick = bench_quick(argc, argv);
    bench_quiet();
    int rc = ot_run(bench_main, &quick, NULL);
    if (rc != 0)
        fprintf(stderr, "registry: ot_run: %s\n", ot_strerror(rc));
    return rc == 0 ? 0 : 1;
}
