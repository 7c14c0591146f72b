/* libotter-testing: the support behind include/otter/testing.h, kept out of
 * libotter so that the production library exports only the public API and
 * needs no Criterion. It uses the public API only. The first assertion
 * failure of a test is recorded (from any process or thread) and reported by
 * the Criterion test body on the test's own thread, where Criterion's
 * asserts are safe. */
#include <otter/testing.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

OT_API ot_config ot_test_config;
static char failure[1024];
static _Atomic int failed;

void ot__test_fail(const char *file, int line, const char *fmt, ...) {
    int expected = 0;
    /* first failure wins; acq_rel pairs with the acquire in ot__test_failure */
    if (!atomic_compare_exchange_strong_explicit(&failed, &expected, 1, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return;
    int n = snprintf(failure, sizeof failure, "%s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof failure)
        vsnprintf(failure + n, sizeof failure - (size_t)n, fmt, ap);
    va_end(ap);
    atomic_store_explicit(&failed, 2, memory_order_release);
}

const char *ot__test_failure(void) {
    return atomic_load_explicit(&failed, memory_order_acquire) == 2 ? failure : NULL;
}

void ot__test_reset(void) {
    atomic_store_explicit(&failed, 0, memory_order_release);
}

int ot__test_run(void (*body)(void *), const ot_config *cfg) {
    ot__test_reset();
    return ot_run(body, NULL, cfg);
}
