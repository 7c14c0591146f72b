/* For the suites that run an example end to end: the example binary `make
 * examples` builds beside the test's build folder, run with its stdout read. */
#ifndef OT_TESTS_SUPPORT_EXAMPLE_H
#define OT_TESTS_SUPPORT_EXAMPLE_H

#include <stddef.h>

/* Runs BUILD/examples/<name> (stderr discarded) and copies its stdout into
 * out (NUL-terminated, at most cap - 1 bytes). Returns its wait status, or -1
 * when it is not built or cannot be run. */
int ot_test_run_example(const char *name, char *out, size_t cap);

#endif
