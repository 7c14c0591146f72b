/* Helpers shared by the C workloads in perf/: the FIGURE line protocol that
 * perf/run reads (`FIGURE <name> <value> <unit> <1 if higher is better>`),
 * --quick parsing, a monotonic clock, resident set size, and a logger that
 * keeps the runtime quiet during a run as BEAM's is (errors still reach
 * stderr, since they mean the measurement is broken). Everything is static
 * inline: each benchmark is one translation unit and one binary. */
#ifndef OT_PERF_BENCH_H
#define OT_PERF_BENCH_H

#include <otter/common.h>
#include <otter/process.h>
#include <otter/runtime.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* True when argv holds --quick: the runner's ~10x smaller smoke run. */
static inline bool bench_quick(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) return true;
    }
    return false;
}

static inline uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Flushed at once, so figures printed before a later crash still count. */
static inline void bench_figure(const char *name, double value, const char *unit,
                                bool higher_is_better) {
    printf("FIGURE %s %.3f %s %d\n", name, value, unit, higher_is_better ? 1 : 0);
    fflush(stdout);
}

/* Operations per second for n operations over [t0, t1] ns. */
static inline double bench_rate(uint64_t n, uint64_t t0, uint64_t t1) {
    return t1 > t0 ? (double)n * 1e9 / (double)(t1 - t0) : 0.0;
}

/* Resident bytes of the whole program, from /proc/self/statm (0 on error). */
static inline size_t bench_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f) return 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

static inline void bench_logger(int level, const char *line, void *arg) {
    (void)arg;
    if (level <= OT_LOG_ERROR) fprintf(stderr, "%s\n", line);
}

static inline void bench_quiet(void) { ot_set_logger(bench_logger, NULL); }

/* Ends the calling benchmark process abnormally after saying why on stderr,
 * so ot_run returns -ECHILD and the program exits non-zero. */
static inline _Noreturn void bench_fail(const char *what, int err) {
    fprintf(stderr, "bench: %s failed: %s\n", what, err ? strerror(err < 0 ? -err : err) : "");
    fflush(stderr);
    ot_exit_self(ot_reason_error("%s", what));
}

#endif
