/* The hash tables' slot layout and their lock-free look-up of 8-byte keys,
 * shared by hash.c and the front end's read path (ets.c), which inlines it.
 * The invariants are hash.c's (its opening paragraph): slot content changes
 * only under the stripe lock inside the slot's seqlock; readers copy it
 * between two reads of seq; a record they find stays readable until the
 * call leaves QSBR. */
#ifndef OT_ETS_HASH_INT_H
#define OT_ETS_HASH_INT_H

#include "ets_int.h"

#include <sched.h>

#define HW ETS_INLINE_WORDS

/* meta: klen | vlen << 8 | a kind: an inline object, or a set's record
 * whose key (8 bytes or fewer, in w[1]) and value length (under 256) the
 * slot repeats, so that update_counter finds its counter without reading
 * the record's header, which shares a cache line with the counter that the
 * other updaters keep taking away. 0: a record chain, TOMB or nothing. */
#define META_INLINE (1u << 31)
#define META_RECKEY (1u << 30)
#define META_BAG (1u << 29) /* w[0] is a bag key's hbag (hash.c) */
static inline uint32_t meta_klen(uint32_t m) { return m & 0xff; }
static inline uint32_t meta_vlen(uint32_t m) { return (m >> 8) & 0xff; }

typedef struct hslot {
    _Atomic uint64_t hash;
    _Atomic uint32_t seq;
    _Atomic uint32_t meta;
    _Atomic uint64_t w[HW]; /* meta 0: w[0] is a set's record (or NULL, TOMB) */
} __attribute__((aligned(32))) hslot;

_Static_assert(sizeof(hslot) == 32 && ETS_CACHELINE % sizeof(hslot) == 0,
               "a slot never straddles cache lines");

static inline ets_rec *as_rec(uint64_t w) { return (ets_rec *)(uintptr_t)w; }

/* A bag key's objects: an immutable array of its records in insertion order
 * (n >= 1), replaced whole by every write of the key (hash.c). */
typedef struct hbag {
    ets_rhead rcu;
    uint32_t n;
    ets_rec *r[];
} hbag;
static inline hbag *as_bag(uint64_t w) { return (hbag *)(uintptr_t)w; }
static inline uint64_t rec_word(const ets_rec *r) { return (uint64_t)(uintptr_t)r; }

typedef struct harr {
    ets_rhead rcu;
    void *base;         /* what calloc or mmap returned */
    size_t mapped;      /* bytes mmapped at base; 0: calloc */
    struct hprep *prep; /* hash.c: how it was made ahead, or NULL */
    unsigned shift;     /* home = hash >> shift */
    unsigned gen;       /* resizes before this array (hash.c's prepare) */
    size_t cap, nslots;
    hslot s[];
} harr;

typedef struct htab {
    harr *_Atomic arr;
} htab;

extern ets_rec ets__hash_tomb;
#define TOMB (&ets__hash_tomb)

static inline bool live(const ets_rec *r) { return r && r != TOMB; }
static inline size_t home(const harr *a, uint64_t h) { return (size_t)(h >> a->shift); }

static inline bool rec_is(const ets_rec *r, const void *k, size_t kl)
{
    return r->klen == kl && memcmp(ets_rec_key(r), k, kl) == 0;
}

/* A consistent copy of slot s's content (readers). */
#define ETS_INLINE_ALWAYS static inline __attribute__((always_inline))

ETS_INLINE_ALWAYS void snap(const hslot *s, uint32_t *meta, ets_rec **rec, uint64_t *w)
{
    unsigned spins = 0;
    for (;;) {
        /* Pairs with the release store that ends a writer's section. */
        uint32_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (s1 & 1) {
            if (++spins > 256)
                sched_yield(); /* the writer may be preempted */
            else
                __builtin_ia32_pause();
            continue;
        }
        /* Acquire pairs with the writers' release stores of these words: a
         * word from a section in progress makes its odd seq visible below. */
        *meta = atomic_load_explicit(&s->meta, memory_order_acquire);
        w[0] = atomic_load_explicit(&s->w[0], memory_order_acquire);
        w[1] = atomic_load_explicit(&s->w[1], memory_order_acquire);
        /* Ordered after the loads above by their acquire. */
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) == s1) {
            *rec = *meta & META_INLINE ? NULL : as_rec(w[0]);
            return;
        }
    }
}

/* A key of 8 bytes or fewer as a slot holds it (in w[0] inline, in w[1]
 * beside a record): its bytes in one word, zero-padded, built without a
 * call to memcpy. Little-endian, as the slots' memcpy packing is read. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ets_key_word assumes little-endian");
ETS_INLINE_ALWAYS uint64_t ets_key_word(const void *k, size_t kl)
{
    const unsigned char *p = k;
    if (kl == 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        return w;
    }
    if (kl >= 4) {
        uint32_t lo, hi; /* overlapping: together they cover every byte */
        memcpy(&lo, p, 4);
        memcpy(&hi, p + kl - 4, 4);
        return (uint64_t)lo | (uint64_t)hi << (8 * (kl - 4));
    }
    return (uint64_t)p[0] | (uint64_t)p[kl / 2] << (8 * (kl / 2)) |
           (uint64_t)p[kl - 1] << (8 * (kl - 1));
}

/* The key's object in a, for a key of 8 bytes or fewer (integer keys, short
 * names), kw its ets_key_word: the same walk as hash.c's find, with the key
 * in a register. light: for update_counter, *o gets only rec and vlen when
 * the slot has them (META_RECKEY). */
ETS_INLINE_ALWAYS bool ets_hash_find_small(const harr *a, uint64_t h, const void *k, uint64_t kw,
                                           size_t kl, ets_obj *o, bool light)
{
    for (size_t i = home(a, h); i < a->nslots; i++) {
        /* As in find. */
        uint64_t sh = atomic_load_explicit(&a->s[i].hash, memory_order_acquire);
        if (sh == 0)
            return false;
        if (sh != h)
            continue;
        uint32_t meta;
        ets_rec *r;
        snap(&a->s[i], &meta, &r, o->snap);
        if (meta_klen(meta) == kl && (meta & META_INLINE) && o->snap[0] == kw) {
            /* A key of 8 bytes or fewer pads to one word: the value is w[1]. */
            o->rec = NULL;
            o->hash = h;
            o->klen = (uint32_t)kl;
            o->vlen = meta_vlen(meta);
            o->key = (const unsigned char *)o->snap;
            o->val = (const unsigned char *)&o->snap[1];
            return true;
        }
        if (meta_klen(meta) == kl && (meta & META_RECKEY) && o->snap[1] == kw) {
            if (light) {
                o->rec = r; /* as in find */
                o->vlen = meta_vlen(meta);
            } else {
                ets_obj_of_rec(o, r);
            }
            return true;
        }
        if (!(meta & (META_INLINE | META_RECKEY | META_BAG)) && live(r) && rec_is(r, k, kl)) {
            ets_obj_of_rec(o, r);
            return true;
        }
    }
    return false;
}

/* The same for an 8-byte key (a constant length: the compiler drops the
 * length tests). */
ETS_INLINE_ALWAYS bool ets_hash_find8(const harr *a, uint64_t h, const void *k, ets_obj *o,
                                     bool light)
{
    return ets_hash_find_small(a, h, k, ets_key_word(k, 8), 8, o, light);
}

/* ets__hash_find for an 8-byte key, inline. */
ETS_INLINE_ALWAYS bool ets_hash_find8_tab(ets_table *t, const void *k, uint64_t h, ets_obj *o)
{
    /* Pairs with the release store that publishes a resized array. */
    const harr *a = atomic_load_explicit(&((htab *)t->impl)->arr, memory_order_acquire);
    return ets_hash_find8(a, h, k, o, false);
}

#endif
