/* libotter-testing: the support behind include/otter/testing.h, kept out of
 * libotter so that the production library exports only the public API and
 * needs no Criterion. It uses the public API only. The first assertion
 * failure of a test is recorded (from any process or thread) and reported by
 * the Criterion test body on the test's own thread, where Criterion's
 * asserts are safe. */
#include <otter/supervisor.h>
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

ot_pid ot_test_supervisor(void) {
    return ot_application_sup();
}

/* The test's supervisor is its runtime's application tree, started with no
 * children by the first ot_start_supervised: ot_stop (at the end of ot_run,
 * once the body has exited, passed or failed) stops it first, children in
 * reverse start order, before anything else is killed. */
ot_pid ot_start_supervised(const ot_child_spec *c) {
    ot_pid sup = ot_application_sup(), child = OT_NOPID;
    if (!sup.v) {
        if (!ot_schedulers()) {
            errno = ESRCH;
            return OT_NOPID;
        }
        ot_sup_flags f = {0};
        int rc = ot_application_start(&f, NULL, 0, NULL, &sup);
        if (rc < 0 && rc != -EALREADY) {
            errno = -rc;
            return OT_NOPID;
        }
    }
    int rc = ot_supervisor_start_child(sup, c, &child);
    if (rc < 0 || rc == OT_IGNORED) {
        errno = rc < 0 ? -rc : ECHILD;
        return OT_NOPID;
    }
    return child;
}

int ot__test_run(void (*body)(void *), const ot_config *cfg) {
    ot__test_reset();
    return ot_run(body, NULL, cfg);
}
