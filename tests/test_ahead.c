/* The populate-ahead thread (runtime/sched/ahead.h): the owner's part is
 * resident when ot__ahead_use returns, the part asked ahead becomes resident
 * without the owner touching it, nothing beyond what was asked is touched,
 * claims never go backwards, ot__ahead_fini stops all work on a region so it
 * can be unmapped at once, and with the runtime stopped only the owner's
 * part is populated. Residency is read with mincore. */
#include "runtime/sched/ahead.h"

#include <criterion/criterion.h>
#include <otter.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

static size_t page;

static char *reserve(size_t len) {
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    return m;
}

/* Resident pages of [lo, lo + len). */
static size_t resident(char *lo, size_t len) {
    size_t n = len / page, r = 0;
    unsigned char *v = malloc(n);
    cr_assert_not_null(v);
    cr_assert_eq(mincore(lo, len, v), 0);
    for (size_t i = 0; i < n; i++)
        r += v[i] & 1;
    free(v);
    return r;
}

static bool wait_resident(char *lo, size_t len, int ms) {
    for (int i = 0; i < ms; i++) {
        if (resident(lo, len) == len / page)
            return true;
        usleep(1000);
    }
    return resident(lo, len) == len / page;
}

static void start(void) {
    page = (size_t)sysconf(_SC_PAGESIZE);
    cr_assert_eq(ot_start(NULL), 0);
}

static void stop(void) { ot_stop(); }

TestSuite(ahead, .init = start, .fini = stop, .timeout = 60);

Test(ahead, owner_part_now_asked_part_soon_nothing_beyond) {
    size_t len = 16 * MIB;
    char *m = reserve(len);
    struct ot__ahead a;
    ot__ahead_init(&a, m, len, 0);
    cr_assert_eq(ot__ahead_use(&a, 64 * KIB, MIB), 0);
    cr_assert_eq(resident(m, 64 * KIB), 64 * KIB / page, "the owner's part is populated on return");
    cr_assert(wait_resident(m + 64 * KIB, MIB, 5000), "the part asked ahead became resident");
    cr_assert_eq(atomic_load(&a.claimed), 64 * KIB + MIB);
    cr_assert_eq(resident(m + 64 * KIB + MIB, len - 64 * KIB - MIB), 0,
                 "nothing beyond what was asked");
    ot__ahead_fini(&a);
    munmap(m, len);
}

Test(ahead, claims_only_grow_and_stop_at_the_region_end) {
    size_t len = 256 * KIB;
    char *m = reserve(len);
    struct ot__ahead a;
    ot__ahead_init(&a, m, len - 1000, 0); /* rounded up to whole pages */
    cr_assert_eq(ot__ahead_use(&a, 10, 0), 0);
    cr_assert_eq(atomic_load(&a.claimed), page, "a part of a page claims the page");
    cr_assert_eq(ot__ahead_use(&a, 8 * KIB, 0), 0);
    cr_assert_eq(ot__ahead_use(&a, 4 * KIB, 0), 0);
    cr_assert_eq(atomic_load(&a.claimed), 8 * KIB, "a smaller use claims nothing");
    cr_assert_eq(ot__ahead_use(&a, 8 * KIB, 10 * MIB), 0);
    cr_assert(wait_resident(m, len, 5000));
    cr_assert_eq(atomic_load(&a.claimed), len);
    cr_assert_eq(atomic_load(&a.asked), len, "asks are clamped to the region");
    ot__ahead_fini(&a);
    munmap(m, len);
}

/* A region dropped while the thread works on it: after fini nothing moves
 * any more, and the region can go at once. Then the thread still serves a
 * new region. */
Test(ahead, fini_stops_work_on_the_region) {
    for (int i = 0; i < 20; i++) {
        size_t len = 64 * MIB;
        char *m = reserve(len);
        struct ot__ahead a;
        ot__ahead_init(&a, m, len, 0);
        cr_assert_eq(ot__ahead_use(&a, 4 * KIB, 32 * MIB), 0);
        usleep((useconds_t)(i * 100));
        ot__ahead_fini(&a);
        size_t c = atomic_load(&a.claimed);
        size_t r = resident(m, len);
        usleep(20000);
        cr_assert_eq(atomic_load(&a.claimed), c, "no claim after fini");
        cr_assert_eq(resident(m, len), r, "no page populated after fini");
        munmap(m, len);
    }
    size_t len = 4 * MIB;
    char *m = reserve(len);
    struct ot__ahead a;
    ot__ahead_init(&a, m, len, 0);
    cr_assert_eq(ot__ahead_use(&a, 4 * KIB, MIB), 0);
    cr_assert(wait_resident(m, MIB + 4 * KIB, 5000));
    ot__ahead_fini(&a);
    munmap(m, len);
}

/* Owners on several threads at once over one region (as the process table
 * is): every byte used is claimed exactly once, so claimed ends at the
 * largest use plus what was asked ahead of it. */
static struct ot__ahead shared;
static char *shared_mem;

/* Criterion's asserts belong to the test's own thread: a failure is returned. */
static void *owner(void *arg) {
    size_t base = (size_t)arg;
    for (size_t i = 1; i <= 64; i++) {
        if (ot__ahead_use(&shared, (base + i) * 16 * KIB, 64 * KIB) != 0)
            return (void *)1;
    }
    return NULL;
}

Test(ahead, concurrent_owners) {
    size_t len = 32 * MIB;
    shared_mem = reserve(len);
    ot__ahead_init(&shared, shared_mem, len, 0);
    pthread_t th[4];
    for (size_t t = 0; t < 4; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, owner, (void *)(t * 32)), 0);
    for (size_t t = 0; t < 4; t++) {
        void *failed;
        pthread_join(th[t], &failed);
        cr_assert_null(failed);
    }
    size_t top = (96 + 64) * 16 * KIB;
    cr_assert(wait_resident(shared_mem, top + 64 * KIB, 5000));
    cr_assert_eq(atomic_load(&shared.claimed), top + 64 * KIB);
    cr_assert_eq(resident(shared_mem + top + 64 * KIB, len - top - 64 * KIB), 0);
    ot__ahead_fini(&shared);
    munmap(shared_mem, len);
}

/* With the runtime stopped there is no thread: the owner populates its own
 * part and nothing is asked. */
Test(ahead_stopped, without_the_thread_only_the_owner_part, .timeout = 60) {
    page = (size_t)sysconf(_SC_PAGESIZE);
    cr_assert_eq(ot_start(NULL), 0); /* ot__rt.page set, then the thread gone */
    cr_assert_eq(ot_stop(), 0);
    size_t len = 4 * MIB;
    char *m = reserve(len);
    struct ot__ahead a;
    ot__ahead_init(&a, m, len, 0);
    cr_assert_eq(ot__ahead_use(&a, 64 * KIB, MIB), 0);
    cr_assert_eq(resident(m, 64 * KIB), 64 * KIB / page);
    usleep(50000);
    cr_assert_eq(atomic_load(&a.asked), 0);
    cr_assert_eq(resident(m + 64 * KIB, len - 64 * KIB), 0);
    ot__ahead_fini(&a);
    munmap(m, len);
}

/* Slots (stacks): only each slot's last page is populated, by the owner for
 * the slots it uses and by the thread for the slots asked ahead; the rest
 * of every slot, its guard page included, is never touched. */
Test(ahead, slots_populate_only_their_last_page) {
    size_t slot = 4 * page, nslots = 64, len = nslots * slot + 3 * page;
    char *m = reserve(len);
    struct ot__ahead a;
    ot__ahead_init(&a, m, len, slot);
    cr_assert_eq(a.len, nslots * slot, "a partial slot at the end is not the region's");
    cr_assert_eq(ot__ahead_use(&a, 2 * slot - page, 0), 0);
    cr_assert_eq(atomic_load(&a.claimed), 2 * slot, "positions round up to whole slots");
    cr_assert_eq(ot__ahead_use(&a, 2 * slot, 4 * slot), 0);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(resident(m + i * slot + slot - page, page), 1, "slot %zu's top", i);
        cr_assert_eq(resident(m + i * slot, slot - page), 0, "slot %zu below its top", i);
    }
    for (size_t i = 2; i < 6; i++)
        cr_assert(wait_resident(m + i * slot + slot - page, page, 5000), "slot %zu ahead", i);
    cr_assert_eq(atomic_load(&a.claimed), 6 * slot);
    cr_assert_eq(resident(m, len), 6, "six tops and nothing else");
    ot__ahead_fini(&a);
    munmap(m, len);
}
