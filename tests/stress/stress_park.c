/* Parked-process footprint (ARCHITECTURE 2, 4): 1,000,000 idle handler
 * processes, then 1,000,000 stackful processes parked in receive on top of
 * them, all alive at once. The resident-memory growth per process is printed
 * and bounded (handler <= 1 KiB including its process-table slot, stackful
 * <= 8 KiB), and /proc/self/maps stays under 1,000 lines: stack guards are
 * guard regions inside a few reservations, not VMAs of their own. Every
 * process proves it ran (a counter) before the measurement, and all are
 * still alive after it. Under ASan 20,000 of each, under TSan 3,000 (each
 * stack is a TSan fiber, counted against its 8,128-thread limit, with
 * mappings of its own, so the maps bound is not asserted there); under both
 * the RSS bounds are not asserted (shadow memory dominates); when the
 * machine has too little free memory for the full run, the count is scaled
 * to fit and the scaling is printed. */
#include <otter/testing.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/rss.h"

#if defined(OT_TSAN)
#define NPARK 3000u /* every stack is a TSan fiber, and TSan dies past 8,128 threads */
#elif defined(OT_SANITIZE)
#define NPARK 20000u
#else
#define NPARK 1000000u
#endif
#define HANDLER_MAX_BYTES 1024.0
#define STACKFUL_MAX_BYTES 8192.0

enum { TAG_POKE = OT_TAG_USER + 1 };

static _Atomic uint32_t handled, parked;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int maps_lines(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static size_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

static int poked_handler(void *state, const ot_msg *m) {
    (void)state;
    if (m->tag == TAG_POKE)
        atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
    return 0;
}

static void parked_receiver(void *arg) {
    (void)arg;
    atomic_fetch_add_explicit(&parked, 1, memory_order_relaxed);
    ot_msg *m = ot_receive(OT_INFINITY);
    ot_msg_free(m);
}

static void big_table(void) {
    ot_test_config.max_processes = (size_t)1 << 21;
}

static void wait_count(_Atomic uint32_t *c, uint32_t n, const char *what) {
    double t0 = now_s();
    while (atomic_load_explicit(c, memory_order_relaxed) < n && now_s() - t0 < 120)
        ot_sleep(5);
    ot_assert(atomic_load_explicit(c, memory_order_relaxed) == n, "(%u of %u %s)",
              atomic_load_explicit(c, memory_order_relaxed), n, what);
    ot_sleep(20); /* the last ones finish parking */
}

OT_TEST(stress_park, million_handlers_then_million_stackful, .init = big_table, .timeout = 600) {
    size_t base = ot_processes(NULL, 0); /* the body */
    uint32_t n = NPARK;
    /* room for both kinds at their bounds, twice over */
    size_t need = (size_t)n * (size_t)(HANDLER_MAX_BYTES + STACKFUL_MAX_BYTES) * 2;
    size_t avail = mem_available();
    if (avail && avail < need) {
        n = (uint32_t)((double)n * (double)avail / (double)need);
        cr_log_warn("only %zu MiB available: %u processes of each kind instead of %u", avail >> 20,
                    n, NPARK);
    }
    ot_assert(n >= NPARK / 100, "(too little memory for a meaningful run)");
    ot_pid *hp = malloc(n * sizeof *hp);
    ot_pid *sp = malloc(n * sizeof *sp);
    ot_assert(hp && sp);
    memset(hp, 0, n * sizeof *hp);
    memset(sp, 0, n * sizeof *sp);
    unsigned ns = ot_schedulers();
    ot_sleep(20);
    size_t rss0 = ot_test_rss_bytes();
    int maps0 = maps_lines();

    double t0 = now_s();
    for (uint32_t i = 0; i < n; i++) {
        ot_spawn_opts o = {.scheduler = (int)(i % ns), .scheduler_set = true};
        hp[i] = ot_spawn_handler(poked_handler, NULL, &o);
        ot_assert(hp[i].v != 0, "(handler %u: %s)", i, strerror(errno));
    }
    for (uint32_t i = 0; i < n; i++)
        ot_send(hp[i], TAG_POKE, NULL, 0);
    wait_count(&handled, n, "handlers ran");
    double t1 = now_s();
    size_t rss1 = ot_test_rss_bytes();
    double per_h = ((double)rss1 - (double)rss0) / n;

    for (uint32_t i = 0; i < n; i++) {
        ot_spawn_opts o = {.scheduler = (int)(i % ns), .scheduler_set = true};
        sp[i] = ot_spawn_opt(parked_receiver, NULL, &o);
        ot_assert(sp[i].v != 0, "(stackful %u: %s)", i, strerror(errno));
    }
    wait_count(&parked, n, "stackful processes parked");
    double t2 = now_s();
    size_t rss2 = ot_test_rss_bytes();
    int maps2 = maps_lines();
    double per_s = ((double)rss2 - (double)rss1) / n;

    cr_log_info("%u idle handlers: RSS +%.1f MiB, %.0f bytes each (spawned and run in %.2f s)", n,
                ((double)rss1 - (double)rss0) / 1048576.0, per_h, t1 - t0);
    cr_log_info("%u parked stackful: RSS +%.1f MiB, %.0f bytes each (spawned and parked in "
                "%.2f s)",
                n, ((double)rss2 - (double)rss1) / 1048576.0, per_s, t2 - t1);
    cr_log_info("/proc/self/maps: %d lines before, %d with %u processes", maps0, maps2, 2 * n);
    fprintf(stderr, "stress_park: handler %.0f B/process, stackful %.0f B/process, maps %d\n",
            per_h, per_s, maps2);

    /* all still there, and waiting */
    ot_assert_eq(ot_processes(NULL, 0), 2 * (size_t)n + base);
    for (uint32_t i = 0; i < n; i += 9973) {
        struct ot_process_info in;
        ot_assert_eq(ot_process_info(hp[i], &in), 0);
        ot_assert_eq(in.status, OT_STATUS_WAITING);
        ot_assert(in.handler);
        ot_assert_eq(in.stack_bytes, 0);
        ot_assert_eq(ot_process_info(sp[i], &in), 0);
        ot_assert_eq(in.status, OT_STATUS_WAITING);
        ot_assert(!in.handler);
    }
#ifndef OT_TSAN /* TSan maps memory of its own for every fiber (stack) */
    ot_assert(maps2 < 1000, "(%d lines in /proc/self/maps)", maps2);
#endif
#ifndef OT_SANITIZE
    ot_assert(per_h <= HANDLER_MAX_BYTES, "(%.0f bytes per idle handler)", per_h);
    ot_assert(per_s <= STACKFUL_MAX_BYTES, "(%.0f bytes per parked stackful process)", per_s);
#endif
    free(hp);
    free(sp);
}
