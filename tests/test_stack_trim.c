/* Stack memory goes back to the kernel (issue 10, item 18): after 100,000
 * stackful processes exit, the stack pools trim to their high-water budget
 * (WARM_HWM warm stacks a scheduler, stack.c) within a generous deadline,
 * measured as RSS from /proc/self/statm; the old trim kept each stack's top
 * page, 400 MB for 100,000 stacks. Also: stacks of an odd size trim too, and
 * trimmed stacks are reused (a new burst works and RSS stays bounded). */
#include <otter/testing.h>

#include "support/rss.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sanitizer builds run the same paths with fewer processes (TSan makes a
 * fiber per stack and dies past 8,128) and do not bound RSS: ASan's shadow
 * and quarantine and TSan's per-fiber memory are not the runtime's. */
#if defined(OT_TSAN)
enum { N = 3000 };
#elif defined(OT_SANITIZE)
enum { N = 20000 };
#else
enum { N = 100000 };
#endif
enum { TAG_GO = OT_TAG_USER + 1 };

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void wait_go(void *arg) {
    (void)arg;
    volatile char touch[2048]; /* a little more than the top page's frames */
    memset((char *)touch, 1, sizeof touch);
    ot_msg *m = ot_receive_tag(TAG_GO, OT_INFINITY);
    ot_msg_free(m);
}

/* Polls RSS (never assuming a speed) until it is at most limit; returns it. */
static size_t rss_settles(size_t limit) {
    uint64_t t0 = now_ns();
#if defined(OT_SANITIZE)
    ot_sleep(1000); /* no bound to wait for: give the trim a second */
    return ot_test_rss_bytes();
#endif
    size_t r = ot_test_rss_bytes();
    while (r > limit && now_ns() - t0 < 60000000000u) {
        ot_sleep(50);
        r = ot_test_rss_bytes();
        if (getenv("TRIM_DEBUG"))
            fprintf(stderr, "%llu ms: %zu MiB\n",
                    (unsigned long long)((now_ns() - t0) / 1000000), r >> 20);
    }
    return r;
}

static void burst(ot_pid *pids, size_t stack_size) {
    ot_spawn_opts o = {.stack_size = stack_size};
    for (int i = 0; i < N; i++) {
        pids[i] = ot_spawn_opt(wait_go, NULL, &o);
        ot_assert(pids[i].v != 0, "(spawn %d: errno %d)", i, errno);
    }
    ot_sleep(100);
    for (int i = 0; i < N; i++)
        ot_send(pids[i], TAG_GO, NULL, 0);
    for (int i = 0; i < N; i++)
        while (ot_is_alive(pids[i]))
            ot_sleep(1);
}

#if !defined(OT_SANITIZE)
/* Unbounded recursion with real frames: ends on the guard below the stack. */
static volatile int stop_never = -1;
static int recurse(int depth) {
    volatile char pad[256];
    pad[0] = (char)depth;
    pad[255] = (char)(depth >> 8);
    if (depth == stop_never)
        return pad[0];
    return recurse(depth + 1) + pad[depth & 255];
}

static void overflow(void *arg) {
    (void)arg;
    recurse(0);
}
#endif

/* A trimmed stack, reused, still has its guard: an overflow on it is a
 * contained OT_STACK_OVERFLOW (sanitizer builds own the SIGSEGV handler). */
static void guard_still_there(void) {
#if !defined(OT_SANITIZE)
    /* take this scheduler's warm stacks, so the next ones are trimmed ones */
    enum { HOLD = 4096 + 64 };
    int me = ot_scheduler_id();
    ot_pid *hold = malloc(HOLD * sizeof *hold);
    ot_spawn_opts b = {.scheduler = me, .scheduler_set = true, .bind = true};
    for (int i = 0; i < HOLD; i++)
        hold[i] = ot_spawn_opt(wait_go, NULL, &b);
    ot_sleep(100);
    for (int i = 0; i < 20; i++) {
        ot_ref r;
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &r, .scheduler = me,
                           .scheduler_set = true, .bind = true};
        ot_spawn_opt(overflow, NULL, &o);
        ot_msg *m = ot_receive_ref(r, 30000);
        ot_assert(m != NULL);
        ot_assert_eq(((ot_down_msg *)ot_msg_data(m))->reason.kind, OT_STACK_OVERFLOW);
        ot_msg_free(m);
    }
    for (int i = 0; i < HOLD; i++)
        ot_send(hold[i], TAG_GO, NULL, 0);
    free(hold);
#endif
}

OT_TEST(stack_trim, stacks_return_to_the_kernel_after_exit, .timeout = 240) {
    ot_pid *pids = malloc(N * sizeof *pids);
    memset(pids, 0, N * sizeof *pids);
    size_t base = ot_test_rss_bytes();
    burst(pids, 0);
    /* budget: 4,096 warm stacks a scheduler, each with its touched pages
     * (the top page and the frames above: 8 KiB here), the process table's
     * records (384 B each, resident for the runtime's life) and slack for
     * the allocator */
    size_t budget = (size_t)ot_schedulers() * 4096 * 8192 + (size_t)N * 384 + ((size_t)48 << 20);
    size_t after = rss_settles(base + budget);
    cr_log_info("stack trim: RSS %zu MiB at rest, %zu MiB after 100,000 exits (budget %zu MiB)",
                base >> 20, after >> 20, budget >> 20);
#if !defined(OT_SANITIZE)
    ot_assert(after <= base + budget, "(RSS %zu MiB above the rest level, budget %zu MiB)",
              (after - base) >> 20, budget >> 20);
#endif
    free(pids);
    guard_still_there();
}

OT_TEST(stack_trim, odd_size_stacks_trim_too, .timeout = 240) {
    ot_pid *pids = malloc(N * sizeof *pids);
    size_t base = ot_test_rss_bytes();
    burst(pids, 64 * 1024);
    size_t budget = (size_t)ot_schedulers() * 4096 * 8192 + (size_t)N * 384 + ((size_t)48 << 20);
    size_t after = rss_settles(base + budget);
    cr_log_info("odd-size stack trim: %zu MiB before, %zu MiB after (budget %zu MiB)",
                base >> 20, after >> 20, budget >> 20);
#if !defined(OT_SANITIZE)
    ot_assert(after <= base + budget, "(RSS %zu MiB above the start, budget %zu MiB)",
              (after - base) >> 20, budget >> 20);
#endif
    /* the trimmed stacks are used again: a second burst works */
    burst(pids, 64 * 1024);
    free(pids);
}
