/* Timers (ARCHITECTURE 9): a hierarchical timing wheel per scheduler at
 * 0.25 ms ticks (OT_TICK_NS). Level l has 128 slots of 64^l ticks; a timer sits in the lowest level
 * whose 128-slot reach from the current tick holds its deadline, and level 0
 * fires a slot exactly at its tick: never early. Instead of cascading a whole
 * slot at once when the wheel reaches it (a level-1 slot spans 64 ms of
 * timers, and moving all of them at once is a stall of cache misses that
 * makes every timer due meanwhile late: perf/NOTES.md, 2026-11-25 timer
 * wheel), the next slot of each level migrates
 * down during the slot before it, spread evenly over the ticks left (each
 * slot counts its timers), after the tick's due timers have fired; the
 * 128-slot reach is what leaves room for that. A migration still unfinished
 * when its slot becomes current is completed at once. Deadlines are taken
 * from an upper bound of the clock (clock_upper, below), never a lower one,
 * so rounding up to a tick keeps every timer from firing early.
 *
 * Timers live in their scheduler's table (chunks of 4096, never freed while
 * the runtime runs) and are addressed by refs that carry scheduler, index and
 * generation. Only the owning scheduler links, unlinks, fires and frees them;
 * any thread may cancel by CASing the generation+state word from ARMED to
 * CANCELLED, and the owner drops a remotely cancelled timer when it reaches it.
 * A reused timer has a new generation, so a stale ref's CAS fails. */
#include "runtime/timer/timer.h"
#include "runtime/proc/proc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ref layout: 1 (timer tag) | sched:7 | index:24 | gen:32 */
#define REF_TIMER (1ull << 63)
static inline ot_ref mk_ref(unsigned sched, uint32_t idx, uint32_t gen) {
    return (ot_ref){REF_TIMER | ((uint64_t)(sched & 0x7f) << 56) |
                    ((uint64_t)(idx & 0xffffff) << 32) | gen};
}

static inline uint64_t clock_upper(void);

_Static_assert(sizeof(struct ot_timer) == 64, "a timer is one cache line");

static inline uint64_t gs(uint32_t gen, unsigned st) {
    return (uint64_t)gen << 8 | st;
}

void ot__wheel_init(struct ot_wheel *w, uint64_t now_tick) {
    memset(w, 0, sizeof *w);
    w->now = now_tick;
    for (unsigned l = 0; l < WHEEL_LEVELS; l++)
        w->mig[l] = -1;
    clock_upper(); /* starts the TSC calibration (below) */
}

/* The table is one reservation of TMR_MAX timers (MAP_NORESERVE, so only what
 * is used costs memory), populated a chunk at a time: pages faulting in one by
 * one were a large share of arming many timers. A record's index is written
 * when it is first handed out, not in a pass over each new chunk. Not advised
 * for transparent huge pages: they would save the kernel's per-page work, but
 * with THP defrag at "madvise" (this machine's setting) a fault compacts
 * memory synchronously, which cost more than it saved (perf/NOTES.md,
 * 2026-11-25 timer table). */
#define TMR_MAX (1u << 24) /* the ref's 24-bit index */
#define TMR_CHUNK_BYTES ((size_t)TMR_CHUNK * sizeof(struct ot_timer))
#define TMR_AHEAD_MAX ((size_t)4 << 20) /* the most populated ahead of use */

void ot__wheel_fini(struct ot_wheel *w) {
    for (uint32_t c = 0; c < w->nchunks; c++) {
        struct ot_timer *ch = w->chunks[c];
        for (uint32_t i = 0; i < TMR_CHUNK; i++)
            if (ch[i].kind == TK_SEND && ch[i].size == TMR_ENV && ch[i].env)
                ot__env_free(ch[i].env);
    }
    ot__ahead_fini(&w->ahead);
    if (w->chunks && w->chunks[0])
        munmap(w->chunks[0], (size_t)TMR_MAX * sizeof(struct ot_timer));
    free(w->chunks);
    memset(w, 0, sizeof *w);
}

/* Maps the next chunk of the table; false when out of memory or timers. */
static __attribute__((noinline)) bool tmr_grow(struct ot_wheel *w) {
    uint32_t max = TMR_MAX >> TMR_CHUNK_BITS;
    if (w->nchunks == max)
        return false; /* 16 M timers on one scheduler */
    if (!w->chunks) {
        /* the whole index (32 KiB) at once: cancellers on other threads read
         * it while this scheduler grows the table, so it never moves */
        w->chunks = calloc(max, sizeof(*w->chunks));
        if (!w->chunks)
            return false;
        w->cap_chunks = max;
        void *base = mmap(NULL, (size_t)TMR_MAX * sizeof(struct ot_timer), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED) {
            free(w->chunks);
            w->chunks = NULL;
            return false;
        }
        for (uint32_t c = 0; c < max; c++)
            w->chunks[c] = (struct ot_timer *)base + (size_t)c * TMR_CHUNK;
        ot__ahead_init(&w->ahead, base, (size_t)TMR_MAX * sizeof(struct ot_timer), 0);
    }
    /* the chunk populated, in one call unless the populate-ahead thread
     * made it already (pages that fault in one by one are slow on a VM),
     * and as much again as the table has used asked of that thread */
    size_t used = (size_t)(w->nchunks + 1) * TMR_CHUNK_BYTES;
    if (ot__ahead_use(&w->ahead, used, used < TMR_AHEAD_MAX ? used : TMR_AHEAD_MAX) != 0)
        return false;
    /* release pairs with the acquire load in tmr_at: the chunk is mapped
     * before a canceller can see the new count */
    __atomic_store_n(&w->nchunks, w->nchunks + 1, __ATOMIC_RELEASE);
    return true;
}

static inline struct ot_timer *tmr_alloc(struct ot_wheel *w) {
    struct ot_timer *t = w->free;
    if (t) {
        w->free = t->next;
        return t;
    }
    if (w->used == w->nchunks * TMR_CHUNK && !tmr_grow(w))
        return NULL;
    t = &w->chunks[w->used >> TMR_CHUNK_BITS][w->used & (TMR_CHUNK - 1)];
    w->used++;
    return t;
}

/* Owner only; relaxed atomics because tests read the count from elsewhere. */
static inline void sends_add(struct ot_wheel *w, int d) {
    uint64_t n = atomic_load_explicit(&w->sends, memory_order_relaxed);
    atomic_store_explicit(&w->sends, n + (uint64_t)(int64_t)d, memory_order_relaxed);
}

static void tmr_free(struct ot_wheel *w, struct ot_timer *t) {
    uint32_t gen = (uint32_t)(atomic_load_explicit(&t->genstate, memory_order_relaxed) >> 8);
    /* a new generation: stale refs can no longer CAS it (release pairs with
     * cancellers' acquire) */
    atomic_store_explicit(&t->genstate, gs(gen + 1, TMR_FREE), memory_order_release);
    if (t->kind == TK_SEND) {
        if (t->size == TMR_ENV && t->env)
            ot__env_free(t->env);
        sends_add(w, -1);
    }
    t->kind = 0;
    t->env = NULL;
    t->next = w->free;
    w->free = t;
}

/* The table is one reservation: a timer's index is its offset in it. */
static inline uint32_t tmr_index(const struct ot_wheel *w, const struct ot_timer *t) {
    return (uint32_t)(t - w->chunks[0]);
}

static struct ot_timer *tmr_at(struct ot_wheel *w, uint32_t idx) {
    uint32_t c = idx >> TMR_CHUNK_BITS;
    /* chunks only grow and the index never moves; acquire pairs with the
     * release store in tmr_alloc */
    if (c >= __atomic_load_n(&w->nchunks, __ATOMIC_ACQUIRE))
        return NULL;
    return &w->chunks[c][idx & (TMR_CHUNK - 1)];
}

static inline unsigned shift_of(unsigned l) {
    return WHEEL_BITS * l;
}
static inline void bit_set(struct ot_wheel *w, unsigned l, unsigned k) {
    w->bitmap[l][k >> 6] |= 1ull << (k & 63);
}
static inline void bit_clear(struct ot_wheel *w, unsigned l, unsigned k) {
    w->bitmap[l][k >> 6] &= ~(1ull << (k & 63));
}

/* Slots and the due list are singly linked: only the sweep removes a timer
 * from the middle of one, and it walks the whole list anyway. */
static void slot_link(struct ot_wheel *w, struct ot_timer *t, unsigned lvl, unsigned slot) {
    t->next = w->slots[lvl][slot];
    w->slots[lvl][slot] = t;
    w->nslot[lvl][slot]++;
    bit_set(w, lvl, slot);
}

/* Lowest level whose 128-slot reach holds the deadline. A timer filed at
 * level l >= 1 is then at least two level-l slots away (else level l-1 would
 * hold it), so it never lands in the slot that is being migrated. */
static inline void file_timer(struct ot_wheel *w, struct ot_timer *t) {
    uint64_t e = atomic_load_explicit(&t->expire, memory_order_relaxed);
    if (e <= w->now) {
        t->next = w->due;
        w->due = t;
        return;
    }
    for (unsigned l = 0; l < WHEEL_LEVELS; l++) {
        uint64_t d = (e >> shift_of(l)) - (w->now >> shift_of(l));
        if (d < WHEEL_SLOTS) {
            slot_link(w, t, l, (unsigned)(e >> shift_of(l)) & (WHEEL_SLOTS - 1));
            return;
        }
    }
    /* beyond every reach: the top level's farthest slot; re-filed when it
     * migrates */
    unsigned l = WHEEL_LEVELS - 1;
    unsigned far = (unsigned)((w->now >> shift_of(l)) + WHEEL_SLOTS - 1) & (WHEEL_SLOTS - 1);
    slot_link(w, t, l, far);
}

static void fire(struct ot_sched *s, struct ot_timer *t) {
    uint64_t v = atomic_load_explicit(&t->genstate, memory_order_relaxed);
    uint64_t want = (v & ~0xffull) | TMR_ARMED;
    /* acq_rel: wins against a concurrent canceller's CAS on the same word */
    if (!atomic_compare_exchange_strong_explicit(&t->genstate, &want, (v & ~0xffull) | TMR_FIRED,
                                                 memory_order_acq_rel, memory_order_relaxed)) {
        if (s->wheel.dead)
            s->wheel.dead--;
        tmr_free(&s->wheel, t); /* cancelled */
        return;
    }
    if (t->kind == TK_SEND) {
        struct env *e;
        if (t->size == TMR_ENV) {
            e = t->env;
            t->env = NULL;
        } else {
            uint32_t gen = (uint32_t)(v >> 8);
            ot_ref r = mk_ref((unsigned)s->id, tmr_index(&s->wheel, t), gen);
            e = ot__env_new(t->target, t->tag, t->from, r, t->inl, t->size);
        }
        if (e)
            ot__deliver(e->to, e);
    } else {
        struct ot_proc *p = ot__ptab_slot(t->target);
        if (p && atomic_load_explicit(&p->pid, memory_order_acquire) == t->target.v) {
            /* The slot may change hands between the check above and the
             * store: wait numbers grow across a slot's occupants (reset_record
             * keeps them), so a stale number never equals a live wait, and
             * timeout_seq only grows, so a stale store never hides the
             * number of a newer wait that fired first. seq_cst store + fence
             * pair with park_from_sched's store of PS_WAITING and its load
             * of timeout_seq. */
            uint64_t cur = atomic_load_explicit(&p->timeout_seq, memory_order_relaxed);
            while (cur < t->seq &&
                   !atomic_compare_exchange_weak_explicit(&p->timeout_seq, &cur, t->seq,
                                                          memory_order_seq_cst,
                                                          memory_order_relaxed)) {
            }
            atomic_thread_fence(memory_order_seq_cst);
            if (atomic_load_explicit(&p->state, memory_order_relaxed) == PS_WAITING)
                ot__wake(p);
        }
    }
    tmr_free(&s->wheel, t);
}

static void fire_list(struct ot_sched *s, struct ot_timer *head) {
    while (head) {
        struct ot_timer *n = head->next;
        s->wheel.count--;
        fire(s, head);
        head = n;
    }
}

static inline bool is_cancelled(struct ot_timer *t) {
    /* relaxed: only the owner frees; a cancel racing with this read is seen
     * by fire() instead */
    return (atomic_load_explicit(&t->genstate, memory_order_relaxed) & 0xff) == TMR_CANCELLED;
}

/* Drops a cancelled timer that has just been taken off its list. */
static void drop(struct ot_wheel *w, struct ot_timer *t) {
    w->count--;
    if (w->dead)
        w->dead--;
    tmr_free(w, t);
}

#define SWEEP_MIN 65536
/* Unlinks and frees every cancelled timer: O(timers), run only when the
 * owner's cancels have left more than SWEEP_MIN and more than half the wheel
 * dead, so its cost is at most a few steps per cancel. */
static void sweep(struct ot_wheel *w) {
    for (unsigned l = 0; l < WHEEL_LEVELS; l++) {
        for (unsigned k = 0; k < WHEEL_SLOTS; k++) {
            struct ot_timer **pp = &w->slots[l][k], *t;
            while ((t = *pp)) {
                if (is_cancelled(t)) {
                    *pp = t->next; /* before drop puts t on the free list */
                    w->nslot[l][k]--;
                    drop(w, t);
                } else {
                    pp = &t->next;
                }
            }
            if (!w->slots[l][k])
                bit_clear(w, l, k);
        }
    }
    w->dead = 0;
}

/* Moves up to budget timers of level l's slot k one level (or more) down,
 * dropping cancelled ones; returns the budget left. */
static unsigned migrate_slot(struct ot_wheel *w, unsigned l, unsigned k, unsigned budget) {
    struct ot_timer *t = w->slots[l][k];
    unsigned moved = 0;
    while (t && moved < budget) {
        struct ot_timer *n = t->next;
        if (is_cancelled(t))
            drop(w, t);
        else
            file_timer(w, t);
        t = n;
        moved++;
    }
    w->slots[l][k] = t;
    w->nslot[l][k] -= moved;
    if (!t)
        bit_clear(w, l, k);
    return budget - moved;
}

/* Ring distance from index `from` to the next set bit of a 128-bit map, or -1. */
static int next_bit(const uint64_t *bm, unsigned from) {
    unsigned pos = from & (WHEEL_SLOTS - 1), scanned = 0;
    while (scanned < WHEEL_SLOTS) {
        unsigned bit = pos & 63;
        uint64_t m = bm[pos >> 6] >> bit;
        if (m)
            return (int)(scanned + (unsigned)__builtin_ctzll(m));
        scanned += 64 - bit;
        pos = (pos + 64 - bit) & (WHEEL_SLOTS - 1);
    }
    return -1;
}

int64_t ot__wheel_next(struct ot_wheel *w) {
    if (w->due)
        return 0;
    if (!w->count)
        return -1;
    int64_t best = -1;
    for (unsigned l = 1; l < WHEEL_LEVELS; l++)
        if (w->mig[l] >= 0)
            return 1; /* migrations proceed a budget per tick */
    int d0 = next_bit(w->bitmap[0], (unsigned)(w->now + 1) & (WHEEL_SLOTS - 1));
    if (d0 >= 0)
        best = d0 + 1;
    for (unsigned l = 1; l < WHEEL_LEVELS; l++) {
        uint64_t cur = w->now >> shift_of(l);
        int d = next_bit(w->bitmap[l], (unsigned)(cur + 1) & (WHEEL_SLOTS - 1));
        if (d < 0)
            continue;
        /* slot cur+1+d starts migrating when the wheel enters slot cur+d */
        uint64_t at = (cur + (uint64_t)d) << shift_of(l);
        int64_t delta = at > w->now ? (int64_t)(at - w->now) : 1;
        if (best < 0 || delta < best)
            best = delta;
    }
    return best;
}

/* Each timer moved is a cache miss: a slot is spread evenly over the ticks
 * left before it becomes current, at least MIG_MIN a tick. A fixed 4,096 a
 * tick stalled the scheduler every few ticks while big level-1 slots
 * migrated (perf/NOTES.md, 2026-11-25 timer wheel). */
#define MIG_MIN 64

static void tick(struct ot_sched *s, uint64_t t) {
    struct ot_wheel *w = &s->wheel;
    for (unsigned l = WHEEL_LEVELS - 1; l >= 1; l--) {
        uint64_t cur = t >> shift_of(l);
        unsigned kc = (unsigned)cur & (WHEEL_SLOTS - 1);
        /* the current slot's timers are due from now on: an unfinished
         * migration completes at once */
        if (w->slots[l][kc])
            migrate_slot(w, l, kc, UINT32_MAX);
        unsigned k1 = (unsigned)(cur + 1) & (WHEEL_SLOTS - 1);
        w->mig[l] = w->slots[l][k1] ? (int16_t)k1 : -1;
    }
    /* what is due first, then the migrations, which are not */
    unsigned s0 = (unsigned)t & (WHEEL_SLOTS - 1);
    struct ot_timer *head = w->slots[0][s0];
    if (head) {
        w->slots[0][s0] = NULL;
        w->nslot[0][s0] = 0;
        bit_clear(w, 0, s0);
        fire_list(s, head);
    }
    if (w->due) {
        struct ot_timer *d = w->due;
        w->due = NULL;
        fire_list(s, d);
    }
    for (unsigned l = 1; l < WHEEL_LEVELS; l++) {
        if (w->mig[l] < 0)
            continue;
        unsigned k = (unsigned)w->mig[l];
        /* ticks until slot k becomes current (at least 1: it is the next one) */
        uint64_t left = (((t >> shift_of(l)) + 1) << shift_of(l)) - t;
        uint64_t budget = w->nslot[l][k] / left + 1;
        migrate_slot(w, l, k, budget < MIG_MIN ? MIG_MIN : (unsigned)budget);
        if (!w->slots[l][k])
            w->mig[l] = -1;
    }
}

void ot__wheel_advance(struct ot_sched *s, uint64_t now_tick) {
    struct ot_wheel *w = &s->wheel;
    if (w->due) {
        struct ot_timer *d = w->due;
        w->due = NULL;
        fire_list(s, d);
    }
    while (w->now < now_tick) {
        if (!w->count) {
            w->now = now_tick;
            break;
        }
        int64_t next = ot__wheel_next(w);
        uint64_t step = next <= 0 ? 1 : (uint64_t)next;
        if (w->now + step > now_tick) {
            w->now = now_tick;
            break;
        }
        w->now += step;
        tick(s, w->now);
    }
}

/* ---- the arm path's clock --------------------------------------------------------- */

/* A deadline is "now" plus the delay, and "now" must be an upper bound of the
 * caller's CLOCK_MONOTONIC, or the timer fires early relative to it. Reading
 * CLOCK_MONOTONIC through the vDSO was a large part of an arm, and reading the
 * TSC costs half as much (perf/NOTES.md, 2026-11-25 timer clock). When the
 * kernel's clocksource is the TSC, CLOCK_MONOTONIC is a linear function of it
 * whose slope NTP moves by at most 500 ppm, so each thread keeps a reference
 * pair (TSC read first, then the clock: the clock at that TSC value is at most
 * the one read) and bounds the time now from above as ref_ns + elapsed cycles x
 * a slope measured over the first 20 ms and raised by 1/256 (3,900 ppm). The
 * pair is refreshed every 1 ms, so the bound is at most 4 us over the clock.
 * Any other clocksource, a TSC that went backwards or an old pair reads the
 * clock itself. */
#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#define CAL_NS 20000000u          /* calibration interval */
#define REF_NS 1000000u           /* a thread's reference pair is used this long */
static _Atomic uint64_t tsc_mult; /* ns per cycle << 32, raised; 0 until calibrated */
static _Atomic uint64_t tsc_span; /* REF_NS in cycles */
static _Atomic int tsc_state;     /* 0 unprobed, 1 probing, 2 usable, -1 not */
static uint64_t cal_tsc, cal_ns;  /* the calibration's first pair, written while probing */
static __thread uint64_t ref_tsc __attribute__((tls_model("initial-exec")));
static __thread uint64_t ref_ns __attribute__((tls_model("initial-exec")));

static inline uint64_t tsc_read(void) {
    unsigned aux;
    /* rdtscp waits for every earlier instruction: the caller's own clock read
     * comes first */
    return __rdtscp(&aux);
}

/* The TSC is used when the CPU has rdtscp and the kernel's clocksource is
 * the TSC (the kernel picks it only when it is stable and synchronised). */
static void tsc_probe(void) {
    int want = 0;
    /* acquire/release: one prober; the others read the clock meanwhile */
    if (!atomic_compare_exchange_strong_explicit(&tsc_state, &want, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return;
    unsigned a, b, c, d;
    bool ok = __get_cpuid(0x80000001u, &a, &b, &c, &d) && (d & (1u << 27)); /* RDTSCP */
    if (ok) {
        char buf[16] = {0};
        FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
        ok = f && fgets(buf, sizeof buf, f) && strncmp(buf, "tsc\n", 4) == 0;
        if (f)
            fclose(f);
    }
    if (ok) {
        cal_tsc = tsc_read();
        cal_ns = ot__clock_ns();
    }
    /* release pairs with the acquire load in clock_refresh: cal_* first */
    atomic_store_explicit(&tsc_state, ok ? 2 : -1, memory_order_release);
}

/* Reads the clock and makes it this thread's reference pair. */
static uint64_t clock_refresh(void) {
    int st = atomic_load_explicit(&tsc_state, memory_order_acquire);
    if (st != 2) {
        if (st == 0)
            tsc_probe();
        return ot__clock_ns();
    }
    uint64_t c = tsc_read(), ns = ot__clock_ns();
    ref_tsc = c;
    ref_ns = ns;
    if (!atomic_load_explicit(&tsc_mult, memory_order_relaxed) && ns - cal_ns >= CAL_NS &&
        c > cal_tsc) {
        double per = (double)(ns - cal_ns + 1000) / (double)(c - cal_tsc); /* ns per cycle */
        uint64_t mult = (uint64_t)(per * (1.0 + 1.0 / 256) * 4294967296.0) + 1;
        atomic_store_explicit(&tsc_span, (uint64_t)(REF_NS / per), memory_order_relaxed);
        /* release pairs with the acquire load in clock_upper: span first */
        atomic_store_explicit(&tsc_mult, mult, memory_order_release);
    }
    return ns;
}

/* An upper bound of CLOCK_MONOTONIC now, in ns. */
static inline uint64_t clock_upper(void) {
    uint64_t mult = atomic_load_explicit(&tsc_mult, memory_order_acquire);
    if (mult) {
        uint64_t d = tsc_read() - ref_tsc;
        if (d < atomic_load_explicit(&tsc_span, memory_order_relaxed))
            return ref_ns + ((d * mult) >> 32) + 1;
    }
    return clock_refresh();
}
#else
static inline uint64_t clock_upper(void) {
    return ot__clock_ns();
}
#endif

uint64_t ot__tick_deadline(int64_t ms) {
    uint64_t now = clock_upper();
    /* a deadline past the clock's range (INT64_MAX ns, 292 years of uptime)
     * is "never": ms * 1000000 would wrap and fire at once */
    if (ms < 0 || (uint64_t)ms > ((uint64_t)INT64_MAX - now) / 1000000u)
        return OT_TICK_NEVER;
    uint64_t at = now + (uint64_t)ms * 1000000u;
    return (at + OT_TICK_NS - 1) / OT_TICK_NS; /* round up: never early */
}

static inline __attribute__((always_inline)) struct ot_timer *arm(struct ot_sched *s,
                                                                  uint64_t expire, uint8_t kind) {
    struct ot_timer *t = tmr_alloc(&s->wheel);
    if (!t)
        return NULL;
    atomic_store_explicit(&t->expire, expire, memory_order_relaxed);
    t->kind = kind;
    t->size = 0;
    t->env = NULL;
    uint32_t gen = (uint32_t)(atomic_load_explicit(&t->genstate, memory_order_relaxed) >> 8);
    /* release: expire and payload are visible to a canceller that sees ARMED */
    atomic_store_explicit(&t->genstate, gs(gen, TMR_ARMED), memory_order_release);
    s->wheel.count++;
    file_timer(&s->wheel, t);
    return t;
}

struct ot_timer *ot__timer_arm_wake(struct ot_sched *s, struct ot_proc *p, uint64_t expire,
                                    uint64_t seq, uint64_t *gen_out) {
    struct ot_timer *t = arm(s, expire, TK_WAKE);
    if (!t)
        return NULL;
    t->target = (ot_pid){atomic_load_explicit(&p->pid, memory_order_relaxed)};
    t->seq = seq;
    *gen_out = atomic_load_explicit(&t->genstate, memory_order_relaxed) >> 8;
    return t;
}

/* Whole ms from now (ns precision) to a tick: within 1 ms of the true time
 * left (the tick is the deadline rounded up), never more than 1 ms over. */
static int64_t ms_left(uint64_t expire_tick) {
    if (expire_tick == OT_TICK_NEVER)
        return INT64_MAX;
    uint64_t now = clock_upper(), at = expire_tick * OT_TICK_NS;
    return at > now ? (int64_t)((at - now) / 1000000u) : 0;
}

static int64_t cancel(struct ot_timer *t, uint32_t gen, struct ot_sched *owner, bool want_left) {
    uint64_t want = gs(gen, TMR_ARMED);
    /* read before the CAS: once it succeeds the owner may free and re-arm
     * this timer. If it was re-armed before we read, the generation differs
     * and the CAS fails, so a successful CAS means this expire was ours. */
    /* acquire pairs with the release store of ARMED in arm: the expire read
     * next belongs to this generation or a later one */
    if (atomic_load_explicit(&t->genstate, memory_order_acquire) != want)
        return -1;
    uint64_t expire = atomic_load_explicit(&t->expire, memory_order_relaxed);
    /* acq_rel against fire and other cancellers */
    if (!atomic_compare_exchange_strong_explicit(&t->genstate, &want, gs(gen, TMR_CANCELLED),
                                                 memory_order_acq_rel, memory_order_acquire))
        return -1;
    int64_t left = 0;
    if (want_left) { /* a receive's own timeout does not need the clock */
        left = ms_left(expire);
    }
    /* The timer stays linked: unlinking it writes both neighbours, two cache
     * misses that were most of a cancel's cost. The wheel drops cancelled
     * timers when it migrates or fires their slot, and the owner sweeps when
     * its own cancels have left many behind, so memory stays bounded. */
    struct ot_sched *me = ot__sched_get();
    if (me == owner && ++owner->wheel.dead > SWEEP_MIN &&
        owner->wheel.dead > owner->wheel.count / 2)
        sweep(&owner->wheel);
    return left;
}

void ot__timer_cancel_wake(struct ot_proc *p) {
    if (!p->tmo)
        return;
    struct ot_timer *t = p->tmo;
    p->tmo = NULL;
    cancel(t, p->tmo_gen, ot__rt.sched[p->tmo_owner], false);
}

/* ---- timers whose target died ------------------------------------------------------ */

/* Cancels an armed send timer of the owner's wheel and frees its payload at
 * once; the record itself goes back to the free list when the wheel reaches
 * it or sweeps. false: it had fired or been cancelled already. */
static bool kill_timer(struct ot_wheel *w, struct ot_timer *t) {
    uint64_t v = atomic_load_explicit(&t->genstate, memory_order_relaxed);
    uint64_t want = (v & ~0xffull) | TMR_ARMED;
    /* acq_rel against remote cancellers, as in cancel() */
    if (!atomic_compare_exchange_strong_explicit(&t->genstate, &want,
                                                 (v & ~0xffull) | TMR_CANCELLED,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return false;
    if (t->size == TMR_ENV && t->env) {
        ot__env_free(t->env);
        t->env = NULL;
    }
    w->dead++;
    return true;
}

#define SCAN_BUDGET 1024 /* table entries looked at per call */

/* erlang:send_after/3 to a pid cancels the timer when that process exits.
 * Exits do not know which timers name them (the arming process may be any,
 * and the timer lives on its scheduler), so each scheduler scans its own
 * table after exits happened, SCAN_BUDGET entries per loop turn, and cancels
 * every armed send timer whose target is dead; a scan that cancelled many
 * sweeps them off the wheel, so their records return to the free list. */
bool ot__wheel_reap_dead(struct ot_sched *s) {
    struct ot_wheel *w = &s->wheel;
    if (w->scan_pos == 0) {
        uint64_t ex = 0;
        for (unsigned k = 0; k < ot__rt.nsched; k++)
            ex += atomic_load_explicit(&ot__rt.sched[k]->exits, memory_order_relaxed);
        if (ex == w->scan_exits || !atomic_load_explicit(&w->sends, memory_order_relaxed))
            return false;
        w->scan_exits = ex;
    }
    uint32_t end = w->used, i = w->scan_pos;
    for (uint32_t n = 0; n < SCAN_BUDGET && i < end; n++, i++) {
        struct ot_timer *t = &w->chunks[i >> TMR_CHUNK_BITS][i & (TMR_CHUNK - 1)];
        if (t->kind == TK_SEND &&
            (atomic_load_explicit(&t->genstate, memory_order_relaxed) & 0xff) == TMR_ARMED &&
            !ot__ptab_live(t->target))
            kill_timer(w, t);
    }
    if (i < end) {
        w->scan_pos = i;
        return true;
    }
    w->scan_pos = 0;
    if (w->dead && w->dead * 4 >= w->count)
        sweep(w);
    return false;
}

/* ---- the public timer API ------------------------------------------------------- */

static struct ot_timer *from_ref(ot_ref r, struct ot_sched **owner, uint32_t *gen) {
    if (!(r.v & REF_TIMER) || !ot__rt.sched)
        return NULL;
    unsigned si = (unsigned)(r.v >> 56) & 0x7f;
    if (si >= ot__rt.nsched)
        return NULL;
    *owner = ot__rt.sched[si];
    *gen = (uint32_t)r.v;
    return tmr_at(&(*owner)->wheel, (uint32_t)(r.v >> 32) & 0xffffff);
}

/* errno for a send_after that cannot arm, checked in this order */
static __attribute__((noinline, cold)) ot_ref
send_after_fail(struct ot_sched *s, ot_pid to, int64_t ms, const void *data, size_t size) {
    if (!atomic_load_explicit(&ot__rt.running, memory_order_acquire))
        errno = ENOTCONN;
    else if (!s || ms < 0 || (size && !data) || to.v == 0)
        errno = !s ? EPERM : EINVAL;
    else
        errno = EMSGSIZE;
    return OT_NOREF;
}

/* A payload of at most TMR_INLINE bytes, copied without a call (the libc
 * memcpy call showed in an arm's profile): overlapping moves. */
static inline void copy_inline(unsigned char *dst, const unsigned char *src, size_t n) {
    if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n) {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

ot_ref ot_send_after(ot_pid to, int64_t ms, uint32_t tag, const void *data, size_t size) {
    struct ot_sched *s = ot__sched_get();
    if (unlikely(!atomic_load_explicit(&ot__rt.running, memory_order_acquire) || !s || ms < 0 ||
                 (size && !data) || to.v == 0 || size > OT_MSG_MAX))
        return send_after_fail(s, to, ms, data, size);
    struct ot_proc *me = s->in_process ? s->current : NULL; /* cur_proc(), s in hand */
    ot_pid from = me ? (ot_pid){atomic_load_explicit(&me->pid, memory_order_relaxed)} : OT_NOPID;
    struct env *e = NULL;
    unsigned char inl[TMR_INLINE];
    /* the caller's payload is copied before the wheel changes: a bad pointer
     * then faults with the wheel whole (ARCHITECTURE 7) */
    if (size > TMR_INLINE && !(e = ot__env_new(to, tag, from, OT_NOREF, data, size))) {
        errno = ENOMEM;
        return OT_NOREF;
    }
    if (!e)
        copy_inline(inl, data, size);
    struct ot_timer *t = arm(s, ot__tick_deadline(ms), TK_SEND);
    if (unlikely(!t)) {
        if (e)
            ot__env_free(e);
        errno = ENOMEM;
        return OT_NOREF;
    }
    sends_add(&s->wheel, 1);
    /* only the owner reads these (when it fires the timer) */
    t->target = to;
    t->from = from;
    t->tag = tag;
    t->size = e ? TMR_ENV : (uint8_t)size;
    if (e)
        t->env = e;
    else
        copy_inline(t->inl, inl, size);
    uint32_t gen = (uint32_t)(atomic_load_explicit(&t->genstate, memory_order_relaxed) >> 8);
    ot_ref r = mk_ref((unsigned)s->id, tmr_index(&s->wheel, t), gen);
    if (e)
        e->msg.ref = r;
    if (unlikely(!ot__ptab_live(to)))
        kill_timer(&s->wheel, t); /* erlang:send_after/3 to a dead pid: cancelled at once */
    if (me)
        ot__spend(me, 1);
    return r;
}

static int64_t cancel_timer_impl(ot_ref r) {
    struct ot_sched *owner;
    uint32_t gen;
    struct ot_timer *t = from_ref(r, &owner, &gen);
    if (!t)
        return -1;
    return cancel(t, gen, owner, true);
}

/* the public call passes the gate when made on a plain thread (foreign.c) */
int64_t ot_cancel_timer(ot_ref r) {
    bool gated;
    if (!ot__gate_in(&gated)) {
        return -1;
    }
    int64_t left = cancel_timer_impl(r);
    ot__gate_out(gated);
    if (!gated)
        ot__spend_here(1); /* timer calls spend, so a loop of them stays preemptible */
    return left;
}

static int64_t read_timer_impl(ot_ref r) {
    struct ot_sched *owner;
    uint32_t gen;
    struct ot_timer *t = from_ref(r, &owner, &gen);
    if (!t)
        return -1;
    /* acquire pairs with the release store in arm */
    if (atomic_load_explicit(&t->genstate, memory_order_acquire) != gs(gen, TMR_ARMED))
        return -1;
    uint64_t expire = atomic_load_explicit(&t->expire, memory_order_relaxed);
    if (atomic_load_explicit(&t->genstate, memory_order_acquire) != gs(gen, TMR_ARMED))
        return -1;
    return ms_left(expire);
}

/* the public call passes the gate when made on a plain thread (foreign.c) */
int64_t ot_read_timer(ot_ref r) {
    bool gated;
    if (!ot__gate_in(&gated)) {
        return -1;
    }
    int64_t left = read_timer_impl(r);
    ot__gate_out(gated);
    if (!gated)
        ot__spend_here(1); /* timer calls spend, so a loop of them stays preemptible */
    return left;
}

uint64_t ot__timers_pending(void) {
    uint64_t n = 0;
    for (unsigned i = 0; ot__rt.sched && i < ot__rt.nsched; i++)
        n += atomic_load_explicit(&ot__rt.sched[i]->wheel.sends, memory_order_relaxed);
    return n;
}

int64_t ot_now_ms(void) {
    return (int64_t)(ot__clock_ns() / 1000000u);
}
