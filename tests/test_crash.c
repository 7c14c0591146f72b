/* Faults that are not contained (ARCHITECTURE 7, "Which faults are
 * contained"), and the critical-section interface that decides it
 * (runtime/ext.h): a fault inside a runtime critical section, inside
 * libc code that may hold a lock (stdio with a bad FILE), or in the
 * process's own code while libc holds a lock further up its stack (a custom
 * printf conversion, a fopencookie stream's write function: stdout's or the
 * stream's lock is held) aborts the whole program with a report on stderr
 * that names the signal, the address, the process and the code that may hold
 * the lock, and says the fault could not be contained: never a silent wedge
 * (before, such a fault was "contained" and the next printf hung forever).
 * Each such program runs in a forked child whose stderr the test reads (with
 * an alarm, so a hang fails instead of blocking); the test asserts SIGABRT
 * and the report's text. Sections nest and
 * leave no count behind: after balanced enter/exit pairs a fault is
 * contained as usual. ot__stack_headroom reports the room left on the
 * calling process's stack, less after a deep frame, and SIZE_MAX off a
 * process. Fault tests skip in sanitizer builds (the sanitizers own the
 * fault handlers there). */
#include <otter/testing.h>

#include "support/child.h"

#include <printf.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/ext.h"

#define WAIT_MS 30000

static int *volatile null_ptr;
static volatile int sink;

static void write_null(void) { *null_ptr = 42; }

/* ---- running a program that should die in a child (support/child.c) -------------- */

static void expect_abort_with(const struct child_result *r, const char *const *parts) {
    cr_assert(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT,
              "child status %#x (want SIGABRT); it wrote:\n%s", r->status, r->out);
    for (int i = 0; parts[i]; i++)
        cr_assert(strstr(r->out, parts[i]) != NULL, "report lacks \"%s\":\n%s", parts[i], r->out);
}

#if defined(OT_SANITIZE)
#define SKIP_IN_SANITIZER()                                                                        \
    cr_skip_test("sanitizer build: ASan/TSan own the fault handlers (runtime/sched/fault.c)")
#else
#define SKIP_IN_SANITIZER() ((void)0)
#endif

/* ---- a fault inside a critical section -------------------------------------------- */

static void fault_in_crit(void *arg) {
    (void)arg;
    ot__crit_enter();
    write_null();
    ot__crit_exit();
}

Test(crash, fault_in_critical_section_aborts_with_report, .timeout = 60) {
    SKIP_IN_SANITIZER();
    struct child_result r;
    run_child(fault_in_crit, &r);
    const char *parts[] = {"otter: fatal: SIGSEGV at address 0x0, pc 0x",
                           ", in process <0.",
                           "inside a runtime critical section",
                           "cannot be contained to one process, so the program aborts",
                           NULL};
    expect_abort_with(&r, parts);
}

/* ---- faults while libc holds a lock ------------------------------------------------ */

/* The conversion runs inside vfprintf, with stdout's lock held. */
static int print_w(FILE *f, const struct printf_info *info, const void *const *args) {
    (void)f;
    (void)info;
    (void)args;
    write_null();
    return 0;
}

static int arginfo_w(const struct printf_info *info, size_t n, int *types, int *sizes) {
    (void)info;
    (void)sizes;
    if (n > 0)
        types[0] = PA_INT;
    return 1;
}

static void printer(void *arg) {
    (void)arg;
    const char *volatile fmt = "%W\n"; /* a conversion gcc does not know */
    printf(fmt, 7);
}

/* After the faulter, the test process prints too: with the fault "contained"
 * and stdout's lock left held, that printf would never return. */
static void fault_in_printf(void *arg) {
    (void)arg;
    register_printf_specifier('W', print_w, arginfo_w);
    ot_ref mr;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mr};
    ot_spawn_opt(printer, NULL, &o);
    ot_msg_free(ot_receive_tag(OT_TAG_DOWN, WAIT_MS));
    printf("after the fault\n");
}

Test(crash, fault_in_printf_conversion_aborts, .timeout = 90) {
    SKIP_IN_SANITIZER();
    struct child_result r;
    run_child(fault_in_printf, &r);
    const char *parts[] = {"otter: fatal: SIGSEGV at address 0x0, pc 0x",
                           "(print_w+0x",
                           "the fault hit while the process was running code in libc.so.6 at 0x",
                           "cannot be contained to one process, so the program aborts",
                           NULL};
    expect_abort_with(&r, parts);
    cr_assert(strstr(r.out, "after the fault") == NULL);
}

static ssize_t cookie_write(void *c, const char *buf, size_t n) {
    (void)c;
    (void)buf;
    (void)n;
    write_null();
    return (ssize_t)n;
}

static void cookie_writer(void *arg) {
    FILE *f = arg;
    fprintf(f, "to the cookie %d\n", 42);
    fflush(f); /* the stream's lock is held while it calls cookie_write */
}

static void fault_in_cookie_write(void *arg) {
    (void)arg;
    cookie_io_functions_t io = {.write = cookie_write};
    FILE *f = fopencookie(NULL, "w", io);
    ot_ref mr;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mr};
    ot_spawn_opt(cookie_writer, f, &o);
    ot_msg_free(ot_receive_tag(OT_TAG_DOWN, WAIT_MS));
    fputs("after the fault\n", f); /* would wait for the stream's lock forever */
    printf("after the fault\n");
}

Test(crash, fault_in_fopencookie_write_aborts, .timeout = 90) {
    SKIP_IN_SANITIZER();
    struct child_result r;
    run_child(fault_in_cookie_write, &r);
    const char *parts[] = {"otter: fatal: SIGSEGV at address 0x0",
                           "while the process was running code in libc.so.6",
                           "so the program aborts", NULL};
    expect_abort_with(&r, parts);
    cr_assert(strstr(r.out, "after the fault") == NULL);
}

/* A bad FILE: the fault is inside libc's stdio itself. */
static void fault_in_stdio(void *arg) {
    (void)arg;
    FILE *volatile bad = (FILE *)(uintptr_t)0x40;
    fputs("x", bad);
}

Test(crash, fault_inside_libc_stdio_aborts, .timeout = 90) {
    SKIP_IN_SANITIZER();
    struct child_result r;
    run_child(fault_in_stdio, &r);
    const char *parts[] = {"otter: fatal: SIGSEGV at address 0x", "the fault hit code in libc.so.6",
                           "so the program aborts", NULL};
    expect_abort_with(&r, parts);
}

/* Balanced, nested sections leave nothing behind: the next fault is contained. */
static void nested_then_fault(void *arg) {
    (void)arg;
    ot__crit_enter();
    ot__crit_enter();
    ot__crit_exit();
    ot__crit_exit();
    write_null();
}

OT_TEST(crash, balanced_sections_leave_faults_contained, .timeout = 60) {
#if defined(OT_SANITIZE)
    return; /* faults end sanitizer builds by design */
#endif
    ot_ref mr;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mr};
    ot_pid p = ot_spawn_opt(nested_then_fault, NULL, &o);
    ot_assert(p.v != 0);
    ot_msg *m = ot_receive_tag(OT_TAG_DOWN, WAIT_MS);
    ot_assert(m != NULL, "no DOWN");
    ot_down_msg d;
    memcpy(&d, ot_msg_data(m), sizeof d);
    ot_msg_free(m);
    ot_assert_eq(d.reason.kind, OT_FAULT);
    ot_assert_eq(d.reason.detail, SIGSEGV);
    /* and the test process itself, which entered nothing, is at depth zero:
     * the same thread may have run the section */
    ot_assert_eq(ot_is_alive(ot_self()), true);
}

/* ---- stack headroom ------------------------------------------------------------------- */

static size_t headroom_deeper(int n) {
    volatile char pad[4096];
    pad[0] = (char)n;
    pad[4095] = 0;
    if (n == 0)
        return ot__stack_headroom() + (size_t)pad[4095];
    /* a volatile read after the call: not a tail call, so every frame stays */
    return headroom_deeper(n - 1) + (size_t)pad[4095];
}

static void *foreign_headroom(void *arg) {
    *(size_t *)arg = ot__stack_headroom();
    return NULL;
}

static void report_headroom(void *arg) {
    size_t *out = arg;
    out[0] = ot__stack_headroom();
    out[1] = headroom_deeper(8);
    ot_send(*(ot_pid *)(out + 2), OT_TAG_USER, NULL, 0);
}

OT_TEST(crash, stack_headroom_is_the_room_left, .timeout = 60) {
    size_t mine = ot__stack_headroom();
    ot_assert(mine > 16 * 1024 && mine <= 256 * 1024, "(headroom %zu)", mine);
    size_t got[3] = {0, 0, 0};
    ot_pid me = ot_self();
    memcpy(&got[2], &me, sizeof me);
    ot_spawn_opts o = {.stack_size = 1024 * 1024};
    ot_assert(ot_spawn_opt(report_headroom, got, &o).v != 0);
    ot_msg_free(ot_receive_tag(OT_TAG_USER, WAIT_MS));
    ot_assert(got[0] > 1000 * 1024 && got[0] <= 1024 * 1024, "(headroom %zu)", got[0]);
    /* nine frames of 4 KiB and more each */
    ot_assert(got[1] + 9 * 4096 <= got[0], "(%zu then %zu)", got[0], got[1]);
    ot_assert(got[1] + 64 * 1024 > got[0], "(%zu then %zu)", got[0], got[1]);
    size_t f = 0;
    pthread_t t;
    ot_assert_eq(pthread_create(&t, NULL, foreign_headroom, &f), 0);
    pthread_join(t, NULL);
    ot_assert(f == SIZE_MAX, "(foreign thread: %zu)", f);
}

Test(crash, stack_headroom_off_a_process_is_unbounded) {
    cr_assert_eq(ot__stack_headroom(), SIZE_MAX);
}
