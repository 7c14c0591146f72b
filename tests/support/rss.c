/* Resident set size from /proc/self/statm, shared by the memory-bound suites
 * (stress_park, heap_proc, ets_churn). Plain stdio: safe from any thread. */
#include "support/rss.h"

#include <stdio.h>
#include <unistd.h>

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
