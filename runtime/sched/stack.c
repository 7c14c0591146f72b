/* Green stacks (ARCHITECTURE 2). Each scheduler carves stacks out of its own
 * MAP_NORESERVE reservations (1 GiB chunks, one VMA each), a 64 KiB guard
 * region below every stack: larger than any frame a realistic function has,
 * so a frame that overflows lands in it rather than in the stack below (and
 * code built with -fstack-clash-protection probes larger frames page by page,
 * so they hit it too). A guard costs address space only. It is installed with MADV_GUARD_INSTALL where the
 * kernel has it (Linux >= 6.13: no VMA per guard, so a million guarded stacks
 * fit one mapping per chunk); otherwise with mprotect, which splits the VMA
 * twice per stack, so that fallback runs under a budget well inside
 * vm.max_map_count and fails cleanly past it. Freed stacks stay warm in the
 * freeing scheduler's pool (a fresh page is slow to fault in on a VM:
 * perf/NOTES.md, 2026-11-25 page faults); past a high-water mark (WARM_HWM
 * default-size stacks, ODD_HWM of other sizes) the idle loop gives their pages
 * back to the kernel in bounded batches, never the spawn or exit path, until
 * the pools are within it again. Each stack's record sits at the top of its own
 * memory, so a stack whose every page went back is kept as a bare {lo, size}
 * entry instead, and its record is written afresh when it is used again. */
#include "runtime/sched/sched.h"
#include "runtime/sched/sanit.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>



#define RES_CHUNK ((size_t)1 << 30)
#define GUARD_MIN ((size_t)64 * 1024)

/* The guard below each stack: 64 KiB, or a page where pages are larger. */
static size_t guard_size(void) {
    return ot__rt.page > GUARD_MIN ? ot__rt.page : GUARD_MIN;
}
#define WARM_HWM 4096
#define ODD_HWM 64
static _Atomic long mprotect_budget = 30000;

static size_t rec_size(void) {
    return (sizeof(struct stack) + 63) & ~(size_t)63;
}

/* The populate-ahead region's slots must be the default-size stacks that
 * carve_batch will cut from res_next on: set up again whenever res_next
 * moves otherwise (a new chunk, an odd-size stack). */
static void rebase_ahead(struct ot_sched *s) {
    ot__ahead_fini(&s->stk_ahead);
    ot__ahead_init(&s->stk_ahead, s->res_next, (size_t)(s->res_end - s->res_next),
                   guard_size() + ot__rt.stack_size);
}

static int new_chunk(struct ot_sched *s, size_t need) {
    size_t sz = need > RES_CHUNK ? need : RES_CHUNK;
    void *m = mmap(NULL, sz, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return -ENOMEM;
    if (s->res_nchunks == s->res_capchunks) {
        size_t nc = s->res_capchunks ? s->res_capchunks * 2 : 16;
        void **n = realloc(s->res_chunks, nc * 2 * sizeof(void *));
        if (!n) {
            munmap(m, sz);
            return -ENOMEM;
        }
        s->res_chunks = n;
        s->res_capchunks = nc;
    }
    s->res_chunks[2 * s->res_nchunks] = m;
    s->res_chunks[2 * s->res_nchunks + 1] = (void *)sz;
    s->res_nchunks++;
    s->res_next = m;
    s->res_end = (char *)m + sz;
    rebase_ahead(s);
    return 0;
}

int ot__stack_reserve(struct ot_sched *s) {
    s->stack_warm_hwm = WARM_HWM;
    /* batches use ot__rt.self_pidfd; where the kernel refuses the advice
     * through process_madvise (before 6.13), the first batch finds out and
     * carving goes one by one */
    return new_chunk(s, RES_CHUNK);
}

/* Two phases, because a scheduler's pools hold stacks carved from other
 * schedulers' reservations: first every scheduler forgets its stacks (their
 * records live inside the reservations), then the reservations go. */
void ot__stack_forget_all(struct ot_sched *s) {
    free(s->stack_bare);
    s->stack_bare = NULL;
    s->bare_len = s->bare_cap = 0;
    s->stack_odd_len = 0;
    struct stack *lists[3] = {s->stack_pool, s->stack_cold, s->stack_odd};
    for (int i = 0; i < 3; i++) {
        for (struct stack *st = lists[i], *n; st; st = n) {
            n = st->next;
#if defined(OT_TSAN)
            __tsan_destroy_fiber(st->tsan_fiber);
#endif
            VG_STACK_DEREGISTER(st->vg_id);
        }
    }
    s->stack_pool = s->stack_cold = s->stack_odd = NULL;
    s->stack_pool_len = 0;
}

void ot__stack_release_reserve(struct ot_sched *s) {
    ot__ahead_fini(&s->stk_ahead);
    for (size_t i = 0; i < s->res_nchunks; i++)
        munmap(s->res_chunks[2 * i], (size_t)s->res_chunks[2 * i + 1]);
    free(s->res_chunks);
    s->res_chunks = NULL;
    s->res_nchunks = s->res_capchunks = 0;
}

static struct stack *stack_at(char *lo, size_t size) {
    struct stack *st = (struct stack *)(lo + size - rec_size());
    st->next = NULL;
    st->lo = lo;
    st->hi = (char *)st;
    st->size = size;
    st->tsan_fiber = NULL;
    st->tsan_pile = 0;
    st->tsan_reuses = 0;
#if defined(OT_TSAN)
    st->tsan_fiber = __tsan_create_fiber(0);
#endif
    st->vg_id = VG_STACK_REGISTER(lo, lo + size);
    return st;
}

/* A cold spawn of a stackful process costs a guard install and a fault on
 * its stack's top page, more in bursts of a million, where the host backs fresh
 * guest memory (perf/NOTES.md, 2026-11-25 cold stacks). Carving default-size
 * stacks CARVE_BATCH at a time, with one process_madvise installing every
 * guard, costs no trap per page and no system call per stack. The top pages
 * are the populate-ahead thread's (ahead.h) where it got there first, and
 * each batch asks it for as many more as have been carved, up to
 * AHEAD_TOPS: a burst of spawns on one core then has its pages made on
 * another. The guards are always installed here, by the owner, so a stack
 * never runs without one. The rest of a batch waits on the cold list (a
 * top page each, at most CARVE_BATCH - 1 of them per scheduler). */
enum { CARVE_BATCH = 32, AHEAD_TOPS = 512 };

static struct stack *carve_batch(struct ot_sched *s, size_t size) {
    size_t guard = guard_size();
    size_t total = guard + size;
    size_t n = (size_t)(s->res_end - s->res_next) / total;
    if (n > CARVE_BATCH)
        n = CARVE_BATCH;
    if (n < 2)
        return NULL; /* the end of a chunk: one at a time */
    struct iovec guards[CARVE_BATCH];
    for (size_t i = 0; i < n; i++)
        guards[i] = (struct iovec){.iov_base = s->res_next + i * total, .iov_len = guard};
    if (syscall(SYS_process_madvise, ot__rt.self_pidfd, guards, n, MADV_GUARD_INSTALL, 0) !=
        (long)(n * guard)) {
        /* nothing installed, or part: the one-by-one path installs again,
         * which is harmless, and this batch path is not tried again */
        s->stack_batch_off = true;
        return NULL;
    }
    /* best effort: a top page nobody populated faults in on first use */
    s->stk_carved += n;
    size_t tops = s->stk_carved < AHEAD_TOPS ? s->stk_carved : AHEAD_TOPS;
    (void)ot__ahead_use(&s->stk_ahead, (size_t)(s->res_next - s->stk_ahead.base) + n * total,
                        tops * total);
    char *base = s->res_next;
    s->res_next += n * total;
    for (size_t i = n - 1; i > 0; i--) {
        struct stack *st = stack_at(base + i * total + guard, size);
        st->next = s->stack_cold;
        s->stack_cold = st;
    }
    return stack_at(base + guard, size);
}

static struct stack *carve(struct ot_sched *s, size_t size) {
    size_t guard = guard_size();
    size_t total = guard + size;
    if ((size_t)(s->res_end - s->res_next) < total && new_chunk(s, total) != 0)
        return NULL;
    if (size == ot__rt.stack_size && ot__rt.self_pidfd >= 0 && !s->stack_batch_off &&
        ot__rt.feat.guard_regions) {
        struct stack *st = carve_batch(s, size);
        if (st)
            return st;
    }
    char *lo = s->res_next;
    s->res_next += total;
    if (size != ot__rt.stack_size)
        rebase_ahead(s);
    if (ot__rt.feat.guard_regions) {
        if (madvise(lo, guard, MADV_GUARD_INSTALL) != 0)
            return NULL;
    } else {
        /* each mprotect'd guard costs two VMAs: stay under vm.max_map_count */
        if (atomic_fetch_sub_explicit(&mprotect_budget, 1, memory_order_relaxed) <= 0) {
            atomic_fetch_add_explicit(&mprotect_budget, 1, memory_order_relaxed);
            errno = ENOMEM;
            return NULL;
        }
        if (mprotect(lo, guard, PROT_NONE) != 0)
            return NULL;
    }
    return stack_at(lo + guard, size);
}

struct stack *ot__stack_get(struct ot_sched *s, size_t size) {
    struct stack *st;
    if (size == ot__rt.stack_size) {
        if ((st = s->stack_pool)) {
            s->stack_pool = st->next;
            s->stack_pool_len--;
            /* the next stack's record and the line below it, where its first
             * context goes: cold in a pool of thousands, and the next
             * stackful first run reads and writes both */
            if (st->next) {
                __builtin_prefetch(st->next, 1);
                __builtin_prefetch((char *)st->next - 64, 1);
            }
            return st;
        }
        if ((st = s->stack_cold)) {
            s->stack_cold = st->next;
            return st;
        }
    } else {
        for (struct stack **pp = &s->stack_odd; (st = *pp); pp = &st->next) {
            if (st->size == size) {
                *pp = st->next;
                s->stack_odd_len--;
                return st;
            }
        }
    }
    /* a trimmed stack: its guard is still in place, its pages are not */
    for (size_t i = s->bare_len; i-- > 0;) {
        if (s->stack_bare[i].size == size) {
            char *lo = s->stack_bare[i].lo;
            s->stack_bare[i] = s->stack_bare[--s->bare_len];
            return stack_at(lo, size);
        }
        if (s->bare_len - i >= 8)
            break; /* odd sizes are few: do not walk far for one */
    }
    return carve(s, size);
}

void ot__stack_put(struct ot_sched *s, struct stack *st) {
    if (st->size != ot__rt.stack_size) {
        st->next = s->stack_odd;
        s->stack_odd = st;
        s->stack_odd_len++;
        return;
    }
    /* always warm here: trimming is the idle loop's job (ot__stack_trim) */
    st->next = s->stack_pool;
    s->stack_pool = st;
    s->stack_pool_len++;
}

/* Records st as a bare entry (its pages are given back by the caller);
 * false if the entry cannot be stored (st is then left as is). */
static bool make_bare(struct ot_sched *s, struct stack *st) {
    if (s->bare_len == s->bare_cap) {
        size_t nc = s->bare_cap ? s->bare_cap * 2 : 256;
        struct bare_stack *n = realloc(s->stack_bare, nc * sizeof *n);
        if (!n)
            return false;
        s->stack_bare = n;
        s->bare_cap = nc;
    }
#if defined(OT_TSAN)
    __tsan_destroy_fiber(st->tsan_fiber);
#endif
    VG_STACK_DEREGISTER(st->vg_id);
    s->stack_bare[s->bare_len++] = (struct bare_stack){st->lo, st->size};
    return true;
}

static int by_lo(const void *a, const void *b) {
    const char *x = ((const struct bare_stack *)a)->lo, *y = ((const struct bare_stack *)b)->lo;
    return (x > y) - (x < y);
}

/* Gives back the pages of bare entries [from, bare_len): sorted by address,
 * stacks that follow each other in a reservation (with only the next one's
 * guard between them) go in one madvise, since each call costs a TLB
 * shootdown to every core running our threads, far more than the pages.
 * MADV_DONTNEED leaves guard regions (and mprotect'd guards) in place. */
static void release_pages(struct ot_sched *s, size_t from) {
    struct bare_stack *b = s->stack_bare + from;
    size_t n = s->bare_len - from;
    qsort(b, n, sizeof *b, by_lo);
    size_t guard = guard_size(); /* below each stack's lo (carve) */
    for (size_t i = 0; i < n;) {
        char *lo = b[i].lo, *hi = b[i].lo + b[i].size;
        size_t k = i + 1;
        while (k < n && b[k].lo == hi + guard) {
            hi = b[k].lo + b[k].size;
            k++;
        }
        madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
        i = k;
    }
}

/* Off the hot path (an idle scheduler calls it): past the high-water marks,
 * a bounded batch of free stacks gives every page back to the kernel, at
 * most every TRIM_NS, so a burst of exits followed by a burst of spawns
 * reuses warm stacks without faults, while pools left large by a past burst
 * shrink to their budget within seconds (an idle scheduler with trimming
 * left to do sleeps no longer than TRIM_NS). The cold list (a carve
 * batch's rest, only their tops populated) holds fewer than CARVE_BATCH.
 * Returns true while there is more to trim. */
#define TRIM_NS 10000000u
#define TRIM_BATCH 1024
bool ot__stack_trim(struct ot_sched *s, uint64_t now_ns) {
    if (s->stack_pool_len <= s->stack_warm_hwm && s->stack_odd_len <= ODD_HWM)
        return false;
    if (now_ns - s->stack_trim_ns < TRIM_NS)
        return true;
    s->stack_trim_ns = now_ns;
    size_t from = s->bare_len;
    bool ok = true;
    for (int i = 0; ok && i < TRIM_BATCH && s->stack_pool_len > s->stack_warm_hwm; i++) {
        struct stack *st = s->stack_pool;
        if ((ok = make_bare(s, st))) {
            s->stack_pool = st->next;
            s->stack_pool_len--;
        }
    }
    for (int i = 0; ok && i < TRIM_BATCH && s->stack_odd_len > ODD_HWM; i++) {
        struct stack *st = s->stack_odd;
        if ((ok = make_bare(s, st))) {
            s->stack_odd = st->next;
            s->stack_odd_len--;
        }
    }
    release_pages(s, from);
    /* no memory for an entry: try again after a later exit */
    return ok && (s->stack_pool_len > s->stack_warm_hwm || s->stack_odd_len > ODD_HWM);
}

bool ot__stack_guard_hit(const struct stack *st, const void *addr) {
    const char *a = addr;
    return st && a < st->lo && a >= st->lo - guard_size();
}
