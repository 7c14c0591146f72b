/* The arena pool: a Treiber stack of slot numbers shared by every scheduler
 * thread. The head word packs a generation tag (high 32 bits) with the top
 * slot plus one (low 32 bits, 0 when empty); every successful pop or push
 * bumps the tag, so a pop that read a stale `next` fails its CAS instead of
 * corrupting the stack (ABA). next[] is only written by the thread that owns
 * the slot (it popped it, or it is pushing it), and only read after an acquire
 * load of the head. Lease and return happen once per allocating process, next
 * to an arena reset that costs far more, so a CAS loop here is cheap enough; jemalloc's
 * control calls go through mibs translated once at init.
 *
 * Warm pages: after a reset jemalloc keeps the arena's pages dirty, and the
 * next lessee reuses them without a page fault (a fresh page is slow to fault
 * in here). Since each lessee reuses the same extents first, an arena's dirty
 * bytes are about the largest heap it held since its last purge; warm[slot]
 * keeps that estimate (owned like next[slot]) and warm_total their sum. A
 * return that would take the sum over OT__ARENA_POOL_WARM_BUDGET purges that
 * arena instead (all of its dirty pages back to the kernel). */
#include "runtime/alloc/arena_pool.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

static struct {
    alignas(64) _Atomic uint64_t head; /* tag << 32 | (top slot + 1) */
    _Atomic unsigned avail;
    _Atomic size_t warm_total;
    alignas(64) unsigned size;
    bool ready;
    size_t reset_mib[3], purge_mib[3], destroy_mib[3];
    unsigned arena[OT__ARENA_POOL_MAX];
    _Atomic uint32_t next[OT__ARENA_POOL_MAX]; /* slot + 1 below this one; 0 at the bottom */
    size_t warm[OT__ARENA_POOL_MAX];           /* estimated dirty bytes of the slot's arena */
} pool;

static int mib_of(const char *name, size_t mib[3]) {
    size_t len = 3;
    return mallctlnametomib(name, mib, &len) == 0 && len == 3 ? 0 : -ENOSYS;
}

/* Runs a write-nothing control call (reset, purge, destroy) on one arena. */
static int arena_ctl(const size_t base[3], unsigned arena) {
    size_t mib[3] = {base[0], (size_t)arena, base[2]};
    return mallctlbymib(mib, 3, NULL, NULL, NULL, 0);
}

static void push(unsigned slot) {
    /* Pairs with the acquire CAS in ot__arena_pool_lease: the reset done before
     * this push, and next[slot], are visible to whoever pops the slot. */
    uint64_t h = atomic_load_explicit(&pool.head, memory_order_relaxed);
    for (;;) {
        atomic_store_explicit(&pool.next[slot], (uint32_t)h, memory_order_relaxed);
        uint64_t nh = ((h >> 32) + 1) << 32 | (uint64_t)(slot + 1);
        if (atomic_compare_exchange_weak_explicit(&pool.head, &h, nh, memory_order_release,
                                                  memory_order_relaxed))
            break;
    }
    /* A statistic only: relaxed, read by tests and ot__arena_pool_available. */
    atomic_fetch_add_explicit(&pool.avail, 1, memory_order_relaxed);
}

int ot__arena_pool_init(unsigned n) {
    if (pool.ready)
        return -EBUSY;
    if (n > OT__ARENA_POOL_MAX)
        n = OT__ARENA_POOL_MAX;
    if (mib_of("arena.0.reset", pool.reset_mib) || mib_of("arena.0.purge", pool.purge_mib) ||
        mib_of("arena.0.destroy", pool.destroy_mib))
        return -ENOSYS;
    atomic_store_explicit(&pool.head, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.avail, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.warm_total, 0, memory_order_relaxed);
    pool.size = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned a;
        size_t len = sizeof a;
        if (mallctl("arenas.create", &a, &len, NULL, 0) != 0)
            break; /* jemalloc's arena limit: keep what we have */
        pool.arena[pool.size] = a;
        pool.warm[pool.size] = 0;
        push(pool.size++);
    }
    pool.ready = true;
    return (int)pool.size;
}

unsigned ot__arena_pool_fini(void) {
    if (!pool.ready)
        return 0;
    unsigned slot, arena, destroyed = 0;
    while (ot__arena_pool_lease(&slot, &arena) == 0) {
        if (arena_ctl(pool.destroy_mib, arena) != 0)
            fprintf(stderr, "otter: arena.%u.destroy failed\n", arena);
        destroyed++;
    }
    unsigned leased = pool.size - destroyed;
    pool.size = 0;
    pool.ready = false;
    return leased;
}

int ot__arena_pool_lease(unsigned *slot, unsigned *arena) {
    /* Pairs with the release CAS in push. */
    uint64_t h = atomic_load_explicit(&pool.head, memory_order_acquire);
    for (;;) {
        uint32_t top = (uint32_t)h;
        if (top == 0)
            return -EAGAIN;
        uint32_t below = atomic_load_explicit(&pool.next[top - 1], memory_order_relaxed);
        uint64_t nh = ((h >> 32) + 1) << 32 | below;
        if (atomic_compare_exchange_weak_explicit(&pool.head, &h, nh, memory_order_acquire,
                                                  memory_order_acquire)) {
            /* Statistic only; pairs with the add in push. */
            atomic_fetch_sub_explicit(&pool.avail, 1, memory_order_relaxed);
            *slot = top - 1;
            *arena = pool.arena[top - 1];
            return 0;
        }
    }
}

/* Decides whether the arena stays warm: true means purge it. */
static bool over_budget(unsigned slot, size_t bytes) {
    size_t w = pool.warm[slot];
    if (bytes <= w)
        return false;
    /* A sum only ever compared against the budget; no data hangs on it. */
    size_t total = atomic_fetch_add_explicit(&pool.warm_total, bytes - w, memory_order_relaxed);
    if (total + (bytes - w) <= OT__ARENA_POOL_WARM_BUDGET) {
        pool.warm[slot] = bytes;
        return false;
    }
    atomic_fetch_sub_explicit(&pool.warm_total, bytes, memory_order_relaxed);
    pool.warm[slot] = 0;
    return true;
}

void ot__arena_pool_return(unsigned slot, size_t bytes) {
    unsigned arena = pool.arena[slot];
    /* Reset cannot fail for an arena made by arenas.create; if it ever does,
     * the arena's blocks are unknown, so it must not be leased again. */
    if (arena_ctl(pool.reset_mib, arena) != 0) {
        fprintf(stderr, "otter: arena.%u.reset failed; arena retired\n", arena);
        return;
    }
    if (over_budget(slot, bytes))
        arena_ctl(pool.purge_mib, arena);
    if (!pool.ready) { /* returned after ot__arena_pool_fini: nobody will lease it again */
        arena_ctl(pool.destroy_mib, arena);
        return;
    }
    push(slot);
}

unsigned ot__arena_pool_size(void) {
    return pool.size;
}

unsigned ot__arena_pool_available(void) {
    return atomic_load_explicit(&pool.avail, memory_order_relaxed);
}

size_t ot__arena_pool_warm(void) {
    return atomic_load_explicit(&pool.warm_total, memory_order_relaxed);
}
