/* Memory figures: resident set size from /proc/self/statm, and malloc's
 * bytes in use from whichever allocator is the process's malloc (jemalloc,
 * or the sanitizer's). Shared by the memory-bound suites (stress_park,
 * heap_proc, ets_churn, ets_reclaim). Plain stdio: safe from any thread. */
#include "support/rss.h"

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#ifdef OT_SANITIZE
/* The sanitizer runtimes' allocator interface (GCC ships no header for it). */
size_t __sanitizer_get_current_allocated_bytes(void);
#else
#include <jemalloc/jemalloc.h>
#endif

size_t ot_test_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

size_t ot_test_heap_bytes(void) {
#ifdef OT_SANITIZE
    return __sanitizer_get_current_allocated_bytes();
#else
    uint64_t epoch = 1; /* jemalloc's statistics are a snapshot refreshed by "epoch" */
    size_t sz = sizeof epoch;
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    size_t v = 0;
    sz = sizeof v;
    if (mallctl("stats.allocated", &v, &sz, NULL, 0))
        return 0;
    return v;
#endif
}
