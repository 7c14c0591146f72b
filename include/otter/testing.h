/* Testing helpers for Criterion suites. OT_TEST(suite, name) defines a
 * Criterion test whose body runs as a stackful process in a fresh runtime.
 * ot_start_supervised starts a child under the test's supervisor (ExUnit's
 * start_supervised!), which is the runtime's application tree, started by the
 * first call: when the body has exited, passed or failed, the runtime's stop
 * stops those children in reverse start order, each within its shutdown
 * time, before anything else (a test that uses it cannot also start an
 * application tree of its own: -EALREADY).
 * Criterion's own cr_assert must not be used inside processes (it longjmps
 * across threads): use ot_assert / ot_assert_eq, which record the first
 * failure and end the calling process; the test then fails with that message. */
#ifndef OTTER_TESTING_H
#define OTTER_TESTING_H

#include <otter.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

OT_API void ot__test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
OT_API const char *ot__test_failure(void); /* NULL if none */
OT_API void ot__test_reset(void);
OT_API int ot__test_run(void (*body)(void *), const ot_config *cfg);

#define ot_assert(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ot__test_fail(__FILE__, __LINE__, "assertion failed: " #cond " " __VA_ARGS__);         \
            if (ot_self().v)                                                                       \
                ot_exit_self(ot_reason_error("test assertion"));                                   \
        }                                                                                          \
    } while (0)

#define ot_assert_eq(a, b)                                                                         \
    do {                                                                                           \
        long long ot__a = (long long)(a), ot__b = (long long)(b);                                  \
        if (ot__a != ot__b) {                                                                      \
            ot__test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, ot__a, ot__b);     \
            if (ot_self().v)                                                                       \
                ot_exit_self(ot_reason_error("test assertion"));                                   \
        }                                                                                          \
    } while (0)

/* start_supervised!/1: the child under the running test's supervisor, its
 * pid; OT_NOPID with errno set as ot_supervisor_start_child's error
 * (EEXIST for an id in use, ECHILD...) or ESRCH when no runtime runs. */
OT_API ot_pid ot_start_supervised(const struct ot_child_spec *c);
/* The running test's supervisor (OT_NOPID before the first ot_start_supervised). */
OT_API ot_pid ot_test_supervisor(void);

/* The config OT_TEST bodies run under; a suite may set it in an init hook. */
extern ot_config ot_test_config;

#define OT_TEST(suite, name, ...)                                                                  \
    static void ot__body_##suite##_##name(void *);                                                 \
    Test(suite, name, __VA_ARGS__) {                                                               \
        int ot__rc = ot__test_run(ot__body_##suite##_##name, &ot_test_config);                     \
        const char *ot__f = ot__test_failure();                                                    \
        if (ot__f)                                                                                 \
            cr_assert_fail("%s", ot__f);                                                           \
        cr_assert_eq(ot__rc, 0, "test process exited abnormally (%d)", ot__rc);                    \
    }                                                                                              \
    static void ot__body_##suite##_##name(void *ot_test_arg __attribute__((unused)))

#ifdef __cplusplus
}
#endif
#endif
