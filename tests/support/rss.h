/* Resident set size of the test process, for the suites that bound memory. */
#ifndef OT_TESTS_SUPPORT_RSS_H
#define OT_TESTS_SUPPORT_RSS_H

#include <stddef.h>

/* Bytes resident now (from /proc/self/statm), 0 if it cannot be read. */
size_t ot_test_rss_bytes(void);

#endif
