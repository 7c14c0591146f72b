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

static _Atomic uint64_t test_sup;

ot_pid ot_test_supervisor(void) {
    return (ot_pid){atomic_load_explicit(&test_sup, memory_order_acquire)};
}

ot_pid ot_start_supervised(const ot_child_spec *c) {
    ot_pid sup = ot_test_supervisor(), child = OT_NOPID;
    if (!sup.v) {
        errno = ESRCH;
        return OT_NOPID;
    }
    int rc = ot_supervisor_start_child(sup, c, &child);
    if (rc < 0 || rc == OT_IGNORED) {
        errno = rc < 0 ? -rc : ECHILD;
        return OT_NOPID;
    }
    return child;
}

/* The test's main process: the supervisor (started with the unsupervised
 * rule muted: this is the root of the test's tree), the body beside it, and
 * the supervisor's orderly stop once the body is done. */
static void test_root(void *arg) {
    void (*body)(void *) = *(void (**)(void *))arg;
    ot_sup_flags f = {0};
    ot_pid sup;
    unsigned rules = ot_otp_rules(0, 0);
    int rc = ot_supervisor_start_link(&f, NULL, 0, NULL, &sup);
    ot_otp_rules(rules, 0);
    if (rc < 0)
        ot_exit_self(ot_reason_error("test supervisor: %s", ot_strerror(rc)));
    atomic_store_explicit(&test_sup, sup.v, memory_order_release);
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    ot_pid b = ot_spawn_opt(body, NULL, &o);
    ot_reason why = OT_REASON(OT_NORMAL);
    if (!b.v) {
        why = ot_reason_error("test body: %s", ot_strerror(-errno));
    } else {
        ot_msg *m = ot_receive_ref(mon, OT_INFINITY);
        if (m && m->tag == OT_TAG_DOWN)
            why = ((const ot_down_msg *)ot_msg_data(m))->reason;
        ot_msg_free(m);
    }
    ot_supervisor_stop(sup, OT_REASON(OT_NORMAL), OT_INFINITY);
    atomic_store_explicit(&test_sup, 0, memory_order_release);
    if (why.kind != OT_NORMAL)
        ot_exit_self(why);
}

int ot__test_run(void (*body)(void *), const ot_config *cfg) {
    ot__test_reset();
    return ot_run(test_root, &body, cfg);
}
