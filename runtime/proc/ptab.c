/* The process table (ARCHITECTURE 4): a fixed array of process records
 * reserved once with MAP_NORESERVE and touched only as slots are first used,
 * so capacity costs address space, not memory. A pid is generation << 32 |
 * index; a slot's generation grows on every reuse, so a stale pid never
 * reaches the new occupant. Free slots form a Treiber stack whose head carries
 * an ABA tag; fresh slots come from a bump index before the free list is used.
 * Records are never unmapped while the runtime runs (type-stable memory), so
 * any thread may read a slot's atomics through any pid. Generations also
 * outlive the table: each run's slots start above every generation an
 * earlier run issued (gen_base), so a pid kept across ot_stop/ot_start is
 * dead, never a new process's, and is answered as a dead pid. */
#include "runtime/sched/ahead.h"
#include "runtime/proc/proc.h"

#include <sys/mman.h>

static struct ot_proc *table;
static size_t cap;
static size_t map_bytes;
static _Atomic size_t bump;        /* slots ever handed out */
static _Atomic uint64_t free_head; /* tag << 32 | (index + 1), 0 = empty */
static _Atomic size_t live;
static struct ot__ahead ahead; /* the table, populated ahead of the bump index */
/* Every generation below it was issued by an earlier run (or never); kept
 * across runs: the process outlives the table. Written at stop, under
 * ot_start/ot_stop's lock, read while running. */
static uint32_t gen_base = 1;
/* Per-slot heap limits beside the table, also reserved with MAP_NORESERVE:
 * a page is touched only when a process of one of its 512 slots has a
 * limit, so the records keep their six lines and the others pay nothing. */
static size_t *limits;
static size_t limits_bytes;

int ot__ptab_init(size_t n) {
    if (n == 0 || n > (1u << 31))
        return -EINVAL;
    map_bytes = n * sizeof(struct ot_proc);
    void *m = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -ENOMEM;
    limits_bytes = n * sizeof(size_t);
    void *l = mmap(NULL, limits_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (l == MAP_FAILED) {
        munmap(m, map_bytes);
        return -ENOMEM;
    }
    limits = l;
    table = m;
    cap = n;
    ot__ahead_init(&ahead, m, map_bytes, 0);
    atomic_store_explicit(&bump, 0, memory_order_relaxed);
    atomic_store_explicit(&free_head, 0, memory_order_relaxed);
    atomic_store_explicit(&live, 0, memory_order_relaxed);
    return 0;
}

void ot__ptab_fini(void) {
    /* the next run starts above every generation this one issued */
    size_t used = atomic_load_explicit(&bump, memory_order_relaxed);
    uint32_t top = gen_base;
    for (size_t i = 0; table && i < used; i++) {
        uint32_t g = atomic_load_explicit(&table[i].gen, memory_order_relaxed) + 1;
        if (g > top)
            top = g;
    }
    gen_base = top ? top : 1; /* 2^32 generations later it wraps, as a slot's own does */
    ot__ahead_fini(&ahead);
    if (table)
        munmap(table, map_bytes);
    if (limits)
        munmap(limits, limits_bytes);
    limits = NULL;
    table = NULL;
    cap = 0;
}

/* Records are 384 B, so a 4 KiB page holds ten, and a spawn burst through
 * fresh slots would take a page fault every tenth spawn, which costs more than
 * the spawn itself (perf/NOTES.md, 2026-11-25 page faults). The thread that
 * takes the first slot of each batch of POPULATE_SLOTS makes sure the batch is
 * populated, in one call where the populate-ahead thread (ahead.h) has not
 * done it already, and asks that thread for as much again as the table
 * has used so far, up to AHEAD_MAX, so a burst on one core finds its pages
 * made by another. Huge pages would cut the faults further but stall for
 * hundreds of microseconds in compaction when memory is fragmented. */
enum { POPULATE_SLOTS = 1024 };
#define AHEAD_MAX ((size_t)4 << 20)

static void populate_batch(size_t first) {
    size_t last = first + POPULATE_SLOTS < cap ? first + POPULATE_SLOTS : cap;
    size_t used = last * sizeof(struct ot_proc);
    /* best effort: a slot whose page could not be had faults in when used */
    (void)ot__ahead_use(&ahead, used, used < AHEAD_MAX ? used : AHEAD_MAX);
}

static void slot_first_use(struct ot_proc *p) {
    /* The mailbox is set up once for the life of the table (runtime/core.h). */
    atomic_store_explicit(&p->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&p->mq_tail, (struct env *)&p->stub, memory_order_relaxed);
    p->mq_head = (struct env *)&p->stub;
    atomic_store_explicit(&p->gen, gen_base - 1, memory_order_relaxed);
}

static inline void prefetch_record(const struct ot_proc *p) {
    for (size_t off = 0; off < sizeof *p; off += 64)
        __builtin_prefetch((const char *)p + off, 1);
}

struct ot_proc *ot__ptab_alloc(void) {
    struct ot_proc *p = NULL;
    /* acquire pairs with the release CAS in ot__ptab_free */
    uint64_t h = atomic_load_explicit(&free_head, memory_order_acquire);
    while (h & 0xffffffffu) {
        uint32_t idx = (uint32_t)(h & 0xffffffffu) - 1;
        uint64_t next = table[idx].next_free;
        uint64_t nh = ((h >> 32) + 1) << 32 | next;
        if (atomic_compare_exchange_weak_explicit(&free_head, &h, nh, memory_order_acquire,
                                                  memory_order_acquire)) {
            p = &table[idx];
            /* The next spawn will pop the new head: its record has been cold
             * since it was freed, and spawn writes most of its lines. */
            if (next)
                prefetch_record(&table[next - 1]);
            break;
        }
    }
    if (!p) {
        /* a CAS, never an add undone on failure: the bump index bounds every
         * walk of the table (ot__ptab_hwm, the slot look-up, ot_stop), so it
         * must never pass cap, not even for a moment while spawns fail */
        size_t i = atomic_load_explicit(&bump, memory_order_relaxed);
        do {
            if (i >= cap)
                return NULL;
        } while (!atomic_compare_exchange_weak_explicit(&bump, &i, i + 1, memory_order_relaxed,
                                                        memory_order_relaxed));
        if (i % POPULATE_SLOTS == 0)
            populate_batch(i);
        p = &table[i];
        slot_first_use(p);
    }
    uint32_t gen = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
    if (gen == 0)
        gen = 1;
    atomic_store_explicit(&p->gen, gen, memory_order_relaxed);
    atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void ot__ptab_free(struct ot_proc *p) {
    uint32_t idx = (uint32_t)(p - table);
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&free_head, memory_order_relaxed);
    for (;;) {
        p->next_free = (uint32_t)(h & 0xffffffffu);
        uint64_t nh = ((h >> 32) + 1) << 32 | (uint64_t)(idx + 1);
        /* release: the slot's reset is visible to the next ot__ptab_alloc */
        if (atomic_compare_exchange_weak_explicit(&free_head, &h, nh, memory_order_release,
                                                  memory_order_relaxed))
            return;
    }
}

struct ot_proc *ot__ptab_slot(ot_pid pid) {
    uint32_t idx = pid_index(pid);
    if (!table || pid.v == 0 || idx >= atomic_load_explicit(&bump, memory_order_relaxed))
        return NULL;
    return &table[idx];
}

struct ot_proc *ot__ptab_live(ot_pid pid) {
    struct ot_proc *p = ot__ptab_slot(pid);
    if (!p)
        return NULL;
    /* acquire pairs with the release store of pid in spawn */
    if (atomic_load_explicit(&p->pid, memory_order_acquire) != pid.v)
        return NULL;
    uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);
    if (st == PS_FREE || st == PS_EXITING)
        return NULL;
    return p;
}

bool ot__pid_never_issued(ot_pid pid) {
    uint32_t idx = pid_index(pid), g = pid_gen(pid);
    if (!table || pid.v == 0 || g == 0)
        return true;
    if (g < gen_base)
        return false; /* an earlier run's: dead */
    if (idx >= atomic_load_explicit(&bump, memory_order_relaxed))
        return true;
    return g > atomic_load_explicit(&table[idx].gen, memory_order_relaxed);
}

size_t *ot__ptab_heap_limit(struct ot_proc *p) {
    return &limits[p - table];
}

size_t ot__ptab_cap(void) {
    return cap;
}
struct ot_proc *ot__ptab_at(size_t i) {
    return &table[i];
}
size_t ot__ptab_hwm(void) {
    return atomic_load_explicit(&bump, memory_order_relaxed);
}
size_t ot__ptab_live_count(void) {
    return atomic_load_explicit(&live, memory_order_relaxed);
}
