/* ETS reclamation (runtime/ets/qsbr.c): what a stalled reader can hold up is
 * bounded (issue 11 item 5), no ETS call starts a thread (the reclaimer
 * starts with the runtime), and ot_stop runs every deferred free (issue 10
 * item 19). */
#include <otter/testing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/ets/ets_int.h"
#include "support/rss.h"

#ifdef OT_ASAN
#include <sanitizer/lsan_interface.h>
#endif

/* What the churn retires (about 160 MiB of 1 KiB records; 100 MiB in the
 * slower sanitizer builds) is several times the bound below, so a writer that
 * did not wait for a grace period would show at once. */
#ifdef OT_SANITIZE
#define CHURN 100000
#else
#define CHURN 150000
#endif
#define VAL 1024
/* What the heap may grow by while the reader stalls: the 32 MiB budget of
 * ets_rec_size bytes, times 1.25 (jemalloc rounds a 1072-byte record up to
 * its 1280-byte class; the sanitizers' count is the bytes asked for), plus
 * 8 MiB for the thread caches, the 64 live records and the runtime's own
 * allocations meanwhile. Without the budget it grows by the whole churn. */
#define HEAP_BOUND ((size_t)48 << 20)

static ot_tab churn_tab;
static _Atomic int blocking;
static size_t heap0, heap_max, pending_max;

static void stalled(void *unused)
{
    atomic_store(&blocking, 1);
    usleep(1500 * 1000); /* a plain C call: its scheduler reports nothing meanwhile */
    atomic_store(&blocking, 2);
}

static void churner(void *parent)
{
    while (atomic_load(&blocking) == 0)
        ot_yield();
    static unsigned char v[VAL];
    for (uint64_t i = 0; i < CHURN; i++) {
        uint64_t k = i % 64;
        memcpy(v, &i, 8);
        ot_assert_eq(ot_ets_insert(churn_tab, &k, 8, v, VAL), 0); /* replaces: retires 1 KiB */
        size_t p = ets__reclaim_pending();
        if (p > pending_max)
            pending_max = p;
        if (i % 256 == 0) {
            size_t h = ot_test_heap_bytes();
            if (h > heap_max)
                heap_max = h;
        }
    }
    ot_send(*(ot_pid *)parent, OT_TAG_USER, NULL, 0);
}

/* A process blocks its scheduler 1.5 s in a plain C call while another
 * replaces 1 KiB objects: after every call, what waits for a grace period
 * is within the budget (32 MiB), and
 * the heap (malloc's bytes in use, which hold every record not yet freed)
 * grows by no more than that budget allows. Before the budget it grew by
 * the whole churn (RSS 10 -> 260 MiB in the run). RSS is not the
 * measure: jemalloc keeps freed pages resident for seconds and does not
 * carve small slabs out of the large free extents a cycle leaves behind, so
 * RSS rises well past what is allocated (about 100 MiB here with 40 MiB in
 * use), by an amount that depends on timing and load. */
OT_TEST(ets_reclaim, stalled_reader_bounds_what_waits, .timeout = 120)
{
    ot_ets_opts o = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC};
    churn_tab = ot_ets_new(NULL, &o);
    ot_assert(churn_tab.v != 0);
    unsigned char v[VAL] = {0};
    for (uint64_t k = 0; k < 64; k++)
        ot_assert_eq(ot_ets_insert(churn_tab, &k, 8, v, VAL), 0);
    heap0 = heap_max = ot_test_heap_bytes();
    ot_assert(heap0 != 0);
    ot_pid self = ot_self();
    int mine = ot_scheduler_id();
    ot_spawn_opts so = {.scheduler = 1 - mine, .scheduler_set = true, .bind = true};
    ot_spawn_opts co = {.scheduler = mine, .scheduler_set = true, .bind = true};
    ot_assert(ot_spawn_opt(stalled, NULL, &so).v != 0);
    ot_assert(ot_spawn_opt(churner, &self, &co).v != 0);
    ot_msg *m = ot_receive_tag(OT_TAG_USER, 60000);
    ot_assert(m != NULL);
    ot_msg_free(m);
    /* 1 MiB of slack: a cycle the reclaimer thread took just before this
     * writer's may still be freeing when the writer's call returns. */
    ot_assert(pending_max <= ETS_RECLAIM_BUDGET + ((size_t)1 << 20),
              "(%zu bytes waited for a grace period)", pending_max);
    size_t grew = heap_max > heap0 ? heap_max - heap0 : 0;
    ot_assert(grew < HEAP_BOUND, "(the heap grew %zu MiB during the churn)", grew >> 20);
    ot_assert_eq(ot_ets_delete_table(churn_tab), 0);
}

static _Atomic int filled;

static void filler(void *unused)
{
    ot_ets_opts o = {.type = OT_ETS_BAG, .access = OT_ETS_PUBLIC};
    ot_tab t = ot_ets_new(NULL, &o);
    ot_assert(t.v != 0);
    for (uint64_t k = 0; k < 10000; k++) {
        ot_assert_eq(ot_ets_insert(t, &k, 8, &k, 8), 0);
        ot_assert_eq(ot_ets_insert(t, &k, 8, "another value", 13), 0);
    }
    atomic_store(&filled, 1);
    ot_sleep(OT_INFINITY); /* killed by ot_stop: its table goes with it */
}

/* 10,000 keys left in a table whose owner ot_stop kills: once ot_stop
 * returns nothing waits for a grace period, and LeakSanitizer (ASan
 * builds) finds nothing. */
Test(ets_reclaim, stop_runs_every_deferred_free, .timeout = 60)
{
    ot_config c = {.schedulers = 2};
    cr_assert_eq(ot_start(&c), 0);
    cr_assert(ot_spawn(filler, NULL).v != 0);
    while (!atomic_load(&filled))
        usleep(1000);
    cr_assert_eq(ot_stop(), 0);
    cr_assert_eq(ets__reclaim_pending(), 0);
#ifdef OT_ASAN
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "(LeakSanitizer found leaks)");
#endif
}

/* No ETS call starts a thread: with the address space capped after
 * ot_start (a thread's stack no longer fits), replacing objects, which
 * retires the old ones, still works. liburcu's call_rcu used to start its
 * worker on the first retire and abort the program when it could not. */
static void *nothing(void *a) { return a; }

Test(ets_reclaim, no_thread_started_by_a_call, .timeout = 60)
{
#ifdef OT_TSAN
    cr_skip("TSan reserves its shadow memory: an address-space cap stops everything");
#endif
    pid_t pid = fork();
    if (pid == 0) { /* no Criterion assert before this: see tests/support/child.c */
        ot_config c = {.schedulers = 1};
        if (ot_start(&c))
            _exit(2);
        ot_ets_opts o = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC};
        ot_tab t = ot_ets_new(NULL, &o);
        uint64_t k = 1;
        char v[40] = "a value long enough to be a record";
        ot_ets_insert(t, &k, 8, v, sizeof v); /* the first use, before the cap */
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld", &pages) != 1)
            _exit(3);
        fclose(f);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = (rlim_t)pages * 4096 + (4u << 20);
        if (setrlimit(RLIMIT_AS, &rl))
            _exit(4);
        pthread_t th;
        if (pthread_create(&th, NULL, nothing, NULL) == 0)
            _exit(5); /* the cap does not stop threads: the test would prove nothing */
        for (int i = 0; i < 100; i++) {
            v[0] = (char)i;
            if (ot_ets_insert(t, &k, 8, v, sizeof v))
                _exit(6);
        }
        _exit(0);
    }
    cr_assert(pid > 0);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "(the child died of signal %d)", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    cr_assert_eq(WEXITSTATUS(st), 0);
}
