/* Memory figures of the test process, for the suites that bound memory. */
#ifndef OT_TESTS_SUPPORT_RSS_H
#define OT_TESTS_SUPPORT_RSS_H

#include <stddef.h>

/* Bytes resident now (from /proc/self/statm), 0 if it cannot be read. */
size_t ot_test_rss_bytes(void);

/* Bytes malloc has handed out and not had back now: jemalloc's
 * stats.allocated in plain builds (jemalloc is the process's malloc there),
 * the sanitizer allocator's count under ASan and TSan. Unlike RSS it leaves
 * out the pages an allocator keeps after a free. */
size_t ot_test_heap_bytes(void);

#endif
