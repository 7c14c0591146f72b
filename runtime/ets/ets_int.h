/* ETS internals shared by the front end (ets.c), the table registry
 * (registry.c), the reclamation glue (qsbr.c) and the two table kinds
 * (hash.c for set/bag/duplicate_bag, skiplist.c for ordered_set).
 *
 * Invariants: an object lives either inline in a set's hash slot (small keys
 * and values, guarded by the slot's seqlock, see hash.c) or in an ets_rec,
 * immutable once published except for counter words that
 * ot_ets_update_counter changes in place with atomic adds (so every copy of a
 * record's value reads its words with atomic loads). Counters are never
 * added to inline: update_counter first moves an inline object out to a
 * record. Methods hand objects to the front end as ets_obj views: a record's
 * bytes in place, or a private snapshot of an inline object. Every ETS call
 * runs between ets__enter and ets__leave, online as a QSBR reader, and
 * anything unlinked from a table (records, nodes, arrays, the table itself)
 * is freed only through ets__retire after a grace period. Writers of one key
 * serialise on that key's stripe lock (hash tables) or node locks (skiplist);
 * an ordered_set's writers hold their key's stripe lock too (the front end
 * takes it around single-key writes, with the key and value copied first),
 * so that a write of several keys (ops.c) can exclude the writers of its
 * keys in both kinds. Size and memory counts are per stripe, summed on
 * read. */
#ifndef OT_ETS_INT_H
#define OT_ETS_INT_H

#include <otter.h>
#include <pthread.h>

#include "runtime/ext.h"
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#ifndef OT_TSAN
/* urcu's inline fast paths (rcu_read_ongoing for ets__enter). Not under
 * TSan: compiled here they race by design on urcu's own words. */
#define _LGPL_SOURCE
#endif
#include <urcu-qsbr.h>

#define ETS_CACHELINE 64
#define ETS_STRIPES_MAX 64 /* write_concurrency's lock stripes */

/* ---- records ---------------------------------------------------------------- */

/* Anything unlinked from a table, waiting for its grace period (qsbr.c):
 * bytes is what it holds, counted against the reclamation budget. */
typedef struct ets_rhead {
    struct ets_rhead *next;
    void (*fn)(struct ets_rhead *);
    size_t bytes;
} ets_rhead;

typedef struct ets_rec {
    ets_rhead rcu;
    uint64_t hash;
    uint32_t klen, vlen;
    /* ETS_REC_SEALED once a take has unlinked it and wants its final value
     * (ets__rec_seal), plus the lock-free counter adds in progress on it
     * from threads without a hazard slot (ets_rec_add_live). */
    _Atomic uint32_t adders;
    _Alignas(8) unsigned char data[]; /* value padded to 8 bytes, then key */
} ets_rec;

#define ETS_REC_SEALED 0x80000000u

static inline size_t ets_pad8(size_t n) { return (n + 7) & ~(size_t)7; }
static inline unsigned char *ets_rec_val(const ets_rec *r) { return (unsigned char *)r->data; }
static inline unsigned char *ets_rec_key(const ets_rec *r)
{
    return (unsigned char *)r->data + ets_pad8(r->vlen);
}
static inline size_t ets_rec_size(uint32_t klen, uint32_t vlen)
{
    return sizeof(ets_rec) + ets_pad8(vlen) + klen;
}

/* The key order of the API: bytes, then length. */
static inline int ets_keycmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return (al > bl) - (al < bl);
}

static inline uint64_t ets_fmix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

uint64_t ets__hash_long(const void *k, size_t kl);
/* Never 0 (0 marks an empty hash slot). A key of 8 bytes or fewer (integer
 * keys, short names) costs one finaliser over a word that holds all its
 * bytes and its length; the top bits pick the slot, the low the stripe. */
static inline uint64_t ets__hash(const void *k, size_t kl)
{
    const unsigned char *p = k;
    uint64_t w;
    if (kl == 8) {
        memcpy(&w, p, 8);
        w ^= 0x9e3779b97f4a7c15ull;
    } else if (kl >= 4 && kl < 8) {
        uint32_t lo, hi; /* overlapping: together they cover every byte */
        memcpy(&lo, p, 4);
        memcpy(&hi, p + kl - 4, 4);
        w = ((uint64_t)hi << 32 | lo) ^ (uint64_t)kl * 0x2545f4914f6cdd1dull;
    } else if (kl > 0 && kl < 4) {
        w = (uint64_t)p[0] | (uint64_t)p[kl / 2] << 8 | (uint64_t)p[kl - 1] << 16 |
            (uint64_t)kl << 24;
        w ^= 0x5bd1e9955bd1e995ull;
    } else {
        return ets__hash_long(k, kl);
    }
    uint64_t h = ets_fmix(w);
    return h ? h : 1;
}

ets_rec *ets__rec_new(const void *k, size_t kl, const void *v, size_t vl, uint64_t hash);
/* Copies vl bytes of a value whose 8-byte aligned words counters may be
 * changing: word-wise atomic loads. */
void ets__val_copy(void *dst, const void *src, size_t vl);
/* Compares the value (src, sl) with (v, vl), reading src as ets__val_copy. */
bool ets__val_equal(const void *src, size_t sl, const void *v, size_t vl);
/* ot_ets_update_counter on a record: 0, -EINVAL when the word at off
 * does not fit in the value, -EAGAIN when the record is sealed (a take
 * unlinked it: look the key up again). */
int ets__rec_add(ets_rec *r, size_t off, int64_t incr, int64_t *result);
/* A take's unlinked record: later lock-free adds refuse it (they find the
 * key again, and no longer find this record), and the adds already in
 * progress end before this returns, so a copy made after it holds every
 * add that reported success. Without it an add landing after the take's
 * copy was reported done and lost. */
void ets__rec_seal(ets_rec *r);

/* Hazard slots for lock-free counter adds: each thread that adds claims
 * one (its own cache line) on its first add and gives it back at exit; a
 * thread that finds none free counts its adds on the record instead
 * (ets_rec.adders). */
#define ETS_HZ_MAX 512
typedef struct ets_hz {
    _Alignas(ETS_CACHELINE) ets_rec *_Atomic r;
} ets_hz;
extern ets_hz ets__hz[ETS_HZ_MAX];
extern __thread unsigned ets__hz_mine __attribute__((tls_model("initial-exec"))); /* slot + 1 */
unsigned ets__hz_claim(void); /* the slot + 1, or 0 when none is free */

/* The lock-free counter add on a record found without a lock (the caller
 * checked off + 8 <= vlen): false, with nothing added, when the record is
 * sealed. The add is announced first, in the thread's hazard slot, then
 * the seal is checked (both seq_cst: either the add sees the seal, or the
 * sealer's scan sees the announcement and waits for the add to end), so
 * the only shared line an add writes is the counter's own. Relaxed on the
 * word itself: the add is the whole effect (ets__val_copy reads words
 * atomically); the release that ends the announcement publishes it to the
 * sealer's copy. */
static inline bool ets_rec_add_live(ets_rec *r, size_t off, int64_t incr, int64_t *result)
{
    _Atomic int64_t *w = (_Atomic int64_t *)(uintptr_t)(r->data + off);
    /* For writing: the seal check below reads the record's line, which the
     * add then writes; fetched shared first, a contended line moves twice. */
    __builtin_prefetch((const void *)w, 1, 3);
    unsigned mine = ets__hz_mine;
    if (__builtin_expect(!mine, 0))
        mine = ets__hz_claim();
    if (__builtin_expect(mine != 0, 1)) {
        ets_rec *_Atomic *hz = &ets__hz[mine - 1].r;
        atomic_exchange_explicit(hz, r, memory_order_seq_cst);
        if (atomic_load_explicit(&r->adders, memory_order_seq_cst) & ETS_REC_SEALED) {
            atomic_store_explicit(hz, NULL, memory_order_relaxed);
            return false;
        }
        *result = atomic_fetch_add_explicit(w, incr, memory_order_relaxed) + incr;
        atomic_store_explicit(hz, NULL, memory_order_release); /* pairs with the seal's scan */
        return true;
    }
    if (atomic_fetch_add_explicit(&r->adders, 1, memory_order_seq_cst) & ETS_REC_SEALED) {
        atomic_fetch_sub_explicit(&r->adders, 1, memory_order_relaxed);
        return false;
    }
    *result = atomic_fetch_add_explicit(w, incr, memory_order_relaxed) + incr;
    atomic_fetch_sub_explicit(&r->adders, 1, memory_order_release); /* pairs with the seal */
    return true;
}

/* ---- object views ----------------------------------------------------------- */

/* Inline capacity of a hash slot: key padded to 8 bytes, then value padded. */
#define ETS_INLINE_WORDS 2

/* One object as a method shows it. rec NULL: an inline object, whose bytes
 * are the snapshot in snap (key first, value at the next 8-byte boundary);
 * else key and val point into rec. Never copy the struct with `=` (the
 * pointers may point into snap): use ets_obj_copy. */
typedef struct ets_obj {
    const unsigned char *key, *val;
    uint32_t klen, vlen;
    uint64_t hash;
    ets_rec *rec;
    uint64_t snap[ETS_INLINE_WORDS];
} ets_obj;

static inline void ets_obj_of_rec(ets_obj *o, const ets_rec *r)
{
    o->rec = (ets_rec *)(uintptr_t)r;
    o->key = ets_rec_key(r);
    o->val = ets_rec_val(r);
    o->klen = r->klen;
    o->vlen = r->vlen;
    o->hash = r->hash;
}

static inline void ets_obj_copy(ets_obj *d, const ets_obj *s)
{
    if (s->rec) {
        ets_obj_of_rec(d, s->rec);
        return;
    }
    memcpy(d->snap, s->snap, sizeof d->snap);
    d->rec = NULL;
    d->klen = s->klen;
    d->vlen = s->vlen;
    d->hash = s->hash;
    d->key = (const unsigned char *)d->snap;
    d->val = d->key + ets_pad8(s->klen);
}

/* Records taken out of a table by one writer call, retired by the caller of
 * the method after it has copied what it needs (they stay readable until the
 * call leaves QSBR). */
typedef struct ets_vec {
    ets_rec **v;
    size_t n, cap;
    ets_rec *small[8];
} ets_vec;
static inline void ets_vec_init(ets_vec *a)
{
    a->v = a->small;
    a->n = 0;
    a->cap = 8;
}
/* For unlinked records: on -ENOMEM r is retired at once (no copy for take). */
int ets__vec_push(ets_vec *a, ets_rec *r);
/* For records still in the table (results being collected). */
int ets__vec_add(ets_vec *a, ets_rec *r);
void ets__vec_fini(ets_vec *a); /* frees the array, not the records */

/* ---- tables ----------------------------------------------------------------- */

typedef struct ets_stripe {
    _Atomic int lock;     /* the writers of the stripe's keys (hash tables) */
    _Atomic long size;    /* objects; the table's size is the sum */
    _Atomic long bytes;   /* record bytes */
    _Atomic long claimed; /* hash tables, written under lock: slots its keys claimed */
} __attribute__((aligned(ETS_CACHELINE))) ets_stripe;

/* A spinlock, not a mutex: held for one slot's update (a resize step, which
 * holds them all for MIG_CHUNK slots, is the long exception, so waiters
 * yield after a while), and it
 * costs one locked instruction where a mutex costs two. A blocked mutex
 * would stall the whole scheduler thread anyway. */
/* Every lock-holding section is a critical section (ARCHITECTURE 7): it
 * touches no caller memory (callers' bytes are copied in first, ets.c) and
 * runs only with ETS_STACK_NEED bytes of stack left, so a fault inside one
 * is a runtime bug, and ends the program with a report instead of leaving
 * the lock held. */
#define ETS_STACK_NEED ((size_t)8 << 10)

static inline void ets_stripe_lock(ets_stripe *s)
{
    ot__crit_enter();
    unsigned spins = 0;
    /* Acquire pairs with the release in ets_stripe_unlock. */
    while (atomic_exchange_explicit(&s->lock, 1, memory_order_acquire)) {
        while (atomic_load_explicit(&s->lock, memory_order_relaxed)) {
            if (++spins > 128)
                sched_yield();
            else
                __builtin_ia32_pause();
        }
    }
}

static inline void ets_stripe_unlock(ets_stripe *s)
{
    atomic_store_explicit(&s->lock, 0, memory_order_release); /* pairs with ets_stripe_lock */
    ot__crit_exit();
}

typedef struct ets_table ets_table;
typedef int (*ets_visit_fn)(const ets_obj *o, void *arg); /* non-zero stops */
/* An update in place (ops.c), run under the key's stripe lock on the key's
 * record (a set's inline object is moved out to one first); it may touch
 * only table memory and the caller's private copies. */
typedef int (*ets_update_fn)(ets_table *t, ets_rec *r, void *arg);

/* One object of a multi-object write, in the caller's private copy (never
 * the user's memory: methods read it under their locks). */
typedef struct ets_item {
    const void *k, *v;
    size_t kl, vl;
    uint64_t h;
} ets_item;

/* A dispatch table per table kind (erts' DbTableMethod). Readers (get,
 * counter on a record, fold, first, next, prev, last) are lock-free; writers
 * push the records they unlink onto `out`. */
typedef struct ets_methods {
    int (*init)(ets_table *t);
    void (*destroy)(ets_table *t); /* after a grace period: frees everything */
    /* Visits the key's objects; returns how many were visited. */
    int (*get)(ets_table *t, const void *k, size_t kl, uint64_t h, ets_visit_fn fn, void *arg);
    /* new_only: -EEXIST when the key has an object. */
    int (*put)(ets_table *t, const void *k, size_t kl, const void *v, size_t vl, uint64_t h,
               bool new_only, ets_vec *out);
    /* v NULL: every object of the key; else the objects equal to (k, v).
     * Returns how many were removed. want: the caller needs them (take), so
     * inline objects are pushed onto out as fresh records too. */
    int (*del)(ets_table *t, const void *k, size_t kl, uint64_t h, const void *v, size_t vl,
               bool want, ets_vec *out);
    /* update_counter on a set or ordered_set: 0, -ENOENT, -EINVAL, -ENOMEM. */
    int (*counter)(ets_table *t, const void *k, size_t kl, uint64_t h, size_t off, int64_t incr,
                   int64_t *result);
    int (*fold)(ets_table *t, ets_visit_fn fn, void *arg);
    /* Key walk: fills *o with the object of the first/next/prev/last key and
     * returns true, or false at the end. k NULL for first and last. */
    bool (*first)(ets_table *t, ets_obj *o);
    bool (*last)(ets_table *t, ets_obj *o);
    bool (*next)(ets_table *t, const void *k, size_t kl, uint64_t h, ets_obj *o);
    bool (*prev)(ets_table *t, const void *k, size_t kl, uint64_t h, ets_obj *o);
    size_t (*overhead)(ets_table *t); /* bytes of structure beyond records */
    /* ops.c's writes. Each holds the stripe locks of every key it touches
     * for its whole length and brackets its changes with the mseq of those
     * stripes (ets_mseq_open). put_many: ets:insert/2 and insert_new/2 with
     * a list, all or nothing (-EEXIST when new_only and a key has an
     * object; -ENOMEM half-way only when memory runs out under the locks,
     * which may leave a prefix in). update: fn on the key's record, or -ENOENT. clear:
     * ets:delete_all_objects/1; what it unlinks it retires itself. */
    int (*put_many)(ets_table *t, const ets_item *it, size_t n, bool new_only, ets_vec *out);
    int (*update)(ets_table *t, const void *k, size_t kl, uint64_t h, ets_update_fn fn, void *arg);
    void (*clear)(ets_table *t);
} ets_methods;

extern const ets_methods ets__hash_methods;
/* A set's object straight from its hash table (no callback): the front
 * end's fast path for look-ups. */
bool ets__hash_find(ets_table *t, const void *k, size_t kl, uint64_t h, ets_obj *o);
/* ot_ets_insert into a set, inline object, key of 8 bytes or fewer: 0, or
 * -EAGAIN when the general put must decide (hash.c). */
int ets__hash_put_small(ets_table *t, uint64_t kw, uint32_t meta, uint64_t vw, uint64_t h);
extern const ets_methods ets__skiplist_methods;

struct ets_table {
    uint64_t id; /* the handle value, immutable */
    const ets_methods *m;
    int type, access;
    bool named, write_concurrency;
    _Atomic uint64_t owner; /* ot_pid.v; 0: the foreign threads */
    _Atomic uint64_t heir;  /* guarded by the registry lock */
    void *heir_data;        /* guarded by the registry lock */
    size_t heir_data_len;
    char name[OT_ETS_NAME_MAX];
    struct ets_table *name_next;              /* registry lock */
    struct ets_table *owner_next, *owner_prev; /* registry lock */
    ets_rhead rcu;
    void *impl;            /* the kind's structure */
    unsigned stripe_mask;  /* stripes - 1 */
    ets_stripe *stripes;
    /* A seqlock per stripe over its keys' objects, for the writes that
     * change more than one word or key in one step (ops.c): odd while one is
     * in progress, written only by the holder of the stripe's lock. Apart
     * from the stripes' write-hot lines: readers load it on every call. */
    _Alignas(ETS_CACHELINE) _Atomic uint32_t mseq[ETS_STRIPES_MAX];
};

/* ---- multi-word writes and their readers ------------------------------------
 *
 * A write that changes several keys (put_many, clear) or several words of
 * one record (update_element, several counters) holds the stripe locks of
 * its keys, so other writers of those keys wait for it, and makes the
 * stripes' mseq odd around its changes. A reader that copies objects out
 * (lookup) retries when the mseq of its key moved under it
 * (ets_mseq_begin, ets_mseq_changed): it never returns part of such a
 * write. A reader that cannot retry (a callback already ran, a counter was
 * added) and found the mseq odd afterwards waits for the write to end
 * before it returns (ets_mseq_settle): it may have seen part of the write,
 * and it then answers after the whole of it, which is linearisable. */
/* The fences the mseq protocol needs. TSan does not model fences (gcc warns
 * about them there): its builds leave them out, which changes nothing it
 * checks, since every access they order is atomic, and nothing it runs,
 * since its atomics are calls the compiler does not move loads across. */
#ifdef OT_TSAN
#define ETS_FENCE(order) ((void)0)
#else
#define ETS_FENCE(order) atomic_thread_fence(order)
#endif

static inline void ets_mseq_open(ets_table *t, unsigned s)
{
    uint32_t q = atomic_load_explicit(&t->mseq[s], memory_order_relaxed); /* stripe locked */
    atomic_store_explicit(&t->mseq[s], q + 1, memory_order_relaxed);
    /* Orders the odd value before every change that follows: a reader that
     * sees a change (then an acquire fence) sees the odd value or later. */
    ETS_FENCE(memory_order_release);
}

static inline void ets_mseq_close(ets_table *t, unsigned s)
{
    uint32_t q = atomic_load_explicit(&t->mseq[s], memory_order_relaxed); /* stripe locked */
    /* Pairs with ets_mseq_begin's acquire: the changes are visible. */
    atomic_store_explicit(&t->mseq[s], q + 1, memory_order_release);
}

static inline void ets_mseq_wait(_Atomic uint32_t *q, uint32_t s)
{
    unsigned spins = 0;
    while (atomic_load_explicit(q, memory_order_acquire) == s) {
        if (++spins > 128)
            sched_yield(); /* the writer may be preempted */
        else
            __builtin_ia32_pause();
    }
}

/* An even mseq of h's stripe, waited for. */
static inline uint32_t ets_mseq_begin(ets_table *t, uint64_t h)
{
    _Atomic uint32_t *q = &t->mseq[h & t->stripe_mask];
    /* Pairs with ets_mseq_close's release. */
    uint32_t s = atomic_load_explicit(q, memory_order_acquire);
    while (__builtin_expect(s & 1, 0)) {
        ets_mseq_wait(q, s);
        s = atomic_load_explicit(q, memory_order_acquire); /* as above */
    }
    return s;
}

/* After a copy begun at ets_mseq_begin's s: true when it must be redone. */
static inline bool ets_mseq_changed(ets_table *t, uint64_t h, uint32_t s)
{
    /* Pairs with ets_mseq_open's fence: the copy's loads come first. */
    ETS_FENCE(memory_order_acquire);
    return atomic_load_explicit(&t->mseq[h & t->stripe_mask], memory_order_relaxed) != s;
}

/* After a read that cannot be redone: waits out a write in progress. */
static inline void ets_mseq_settle(ets_table *t, uint64_t h)
{
    _Atomic uint32_t *q = &t->mseq[h & t->stripe_mask];
    ETS_FENCE(memory_order_acquire); /* as in ets_mseq_changed */
    uint32_t s = atomic_load_explicit(q, memory_order_relaxed);
    if (__builtin_expect(s & 1, 0))
        ets_mseq_wait(q, s);
}

/* Every stripe lock, in index order (as hash.c's resize takes them). */
static inline void ets_lock_all(ets_table *t)
{
    for (unsigned i = 0; i <= t->stripe_mask; i++)
        ets_stripe_lock(&t->stripes[i]);
}

static inline void ets_unlock_all(ets_table *t)
{
    for (unsigned i = t->stripe_mask + 1; i-- > 0;)
        ets_stripe_unlock(&t->stripes[i]);
}

/* The stripes of n items, as a mask (at most ETS_STRIPES_MAX of them). */
static inline uint64_t ets_items_stripes(ets_table *t, const ets_item *it, size_t n)
{
    uint64_t m = 0;
    for (size_t i = 0; i < n; i++)
        m |= 1ull << (it[i].h & t->stripe_mask);
    return m;
}
_Static_assert(ETS_STRIPES_MAX <= 64, "ets_items_stripes keeps a 64-bit mask");

static inline void ets_mseq_open_mask(ets_table *t, uint64_t m)
{
    for (unsigned s = 0; m; s++, m >>= 1)
        if (m & 1)
            ets_mseq_open(t, s);
}

static inline void ets_mseq_close_mask(ets_table *t, uint64_t m)
{
    for (unsigned s = 0; m; s++, m >>= 1)
        if (m & 1)
            ets_mseq_close(t, s);
}

static inline ets_stripe *ets_stripe_of(ets_table *t, uint64_t h)
{
    return &t->stripes[h & t->stripe_mask];
}
static inline void ets_count(ets_table *t, uint64_t h, long objs, long bytes)
{
    ets_stripe *s = ets_stripe_of(t, h);
    /* Statistics only: summed with relaxed loads in ets__size; no ordering. */
    atomic_fetch_add_explicit(&s->size, objs, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes, bytes, memory_order_relaxed);
}
/* The same, by the only writer of the stripe (hash tables, stripe lock held):
 * no read-modify-write needed. */
static inline void ets_count_locked(ets_table *t, uint64_t h, long objs, long bytes)
{
    ets_stripe *s = ets_stripe_of(t, h);
    /* Pairs with the relaxed loads of ets__size: statistics, no ordering. */
    atomic_store_explicit(&s->size, atomic_load_explicit(&s->size, memory_order_relaxed) + objs,
                          memory_order_relaxed);
    atomic_store_explicit(&s->bytes,
                          atomic_load_explicit(&s->bytes, memory_order_relaxed) + bytes,
                          memory_order_relaxed);
}
size_t ets__size(ets_table *t);
size_t ets__bytes(ets_table *t);

/* ---- front end (ets.c), for ops.c ------------------------------------------- */

/* Charges, enters QSBR and finds the table, checking access; on error *rc is
 * set and NULL returned, still inside (ets__leave(*tok) either way). */
ets_table *ets__begin(ot_tab h, bool write, int *tok, int *rc);
/* A single-key put by the kind's method, under the ordered_set discipline. */
int ets__put1(ets_table *t, const void *k, size_t kl, const void *v, size_t vl, uint64_t h,
              bool new_only, ets_vec *out);
void ets__retire_all(ets_vec *v); /* retires what a writer unlinked, frees the vector */
/* The records of v copied into one block of the caller's heap (ot_ets_lookup's). */
int ets__build(const ets_vec *v, ot_ets_obj **objs, size_t *n);

/* ---- registry (registry.c) -------------------------------------------------- */

#define ETS_MAX_TABLES (1u << 16)

typedef struct ets_regslot {
    ets_table *_Atomic tab;
    uint32_t gen;       /* registry lock */
    uint32_t next_free; /* registry lock */
} ets_regslot;
extern ets_regslot ets__reg[ETS_MAX_TABLES];

/* The live table of a handle, or NULL: only between ets__enter/leave. A
 * handle is gen << 32 | index + 1 and the table holds its own, so a stale
 * handle finds NULL or a table with another id. */
static inline ets_table *ets__lookup(ot_tab h)
{
    uint32_t idx = (uint32_t)h.v - 1;
    if (idx >= ETS_MAX_TABLES)
        return NULL;
    /* Pairs with the release store that publishes a table (registry.c). */
    ets_table *t = atomic_load_explicit(&ets__reg[idx].tab, memory_order_acquire);
    return t && t->id == h.v ? t : NULL;
}
void ets__registry_lock(void);
void ets__registry_unlock(void);

/* ---- QSBR (qsbr.c) ---------------------------------------------------------- */

/* Reductions (ARCHITECTURE 3): every table operation costs one, charged
 * ETS_CHARGE_BATCH at a time from a per-thread count, so that a process
 * looping over ETS calls yields as one that sends does, while an operation
 * pays only an increment and a test. The charge comes at the start of an
 * operation, before it enters the table, where a yield holds nothing (a
 * callback inside a read section must not call ETS). A batch lands on
 * whichever process makes its last operation: the count is per thread, and
 * reductions are a measure of work, not an account. */
#define ETS_CHARGE_BATCH 64
extern __thread unsigned ets__ops __attribute__((tls_model("initial-exec")));
static inline void ets__charge(void)
{
    if (__builtin_expect(++ets__ops % ETS_CHARGE_BATCH == 0, 0))
        ot__spend_here(ETS_CHARGE_BATCH);
}

enum { ETS_TOKEN_NONE = 0, ETS_TOKEN_OFFLINE = 1 };
int ets__enter_slow(void);
void ets__leave_slow(int token);

/* Puts the calling thread online if it is not (registering a foreign thread
 * on first use); returns what ets__leave needs to undo. A scheduler thread
 * is always online (the core keeps it so), which the inline check sees in
 * one thread-local load. */
static inline int ets__enter(void)
{
#ifdef _LGPL_SOURCE
    if (rcu_read_ongoing())
        return ETS_TOKEN_NONE;
#endif
    return ets__enter_slow();
}

static inline void ets__leave(int token)
{
#ifndef OT_TSAN
    if (token == ETS_TOKEN_NONE)
        return;
#endif
    ets__leave_slow(token); /* under TSan: also the release for reclamation */
}
/* Frees after a grace period; the caller must be online (inside an ETS call). */
void ets__retire_rec(ets_rec *r);
/* Reclamation's bound (qsbr.c): past ETS_RECLAIM_BUDGET bytes waiting for a
 * grace period, a writer reclaims before it returns; the thread is woken at
 * ETS_RECLAIM_KICK bytes, and every ETS_RECLAIM_TICK_MS anyway. */
#define ETS_RECLAIM_BUDGET ((size_t)32 << 20)
#define ETS_RECLAIM_KICK ((size_t)1 << 20)
#define ETS_RECLAIM_TICK_MS 10
size_t ets__reclaim_pending(void); /* bytes retired and not yet freed */
void ets__throttle_slow(void);
extern _Atomic size_t ets__retired_bytes;
/* After a writer's call has left the table (after ets__leave): holds the
 * caller until what waits is back under the budget. */
static inline void ets__throttle(void)
{
    /* Relaxed: a figure; the slow path looks again. */
    if (__builtin_expect(
            atomic_load_explicit(&ets__retired_bytes, memory_order_relaxed) > ETS_RECLAIM_KICK, 0))
        ets__throttle_slow();
}
void ets__retire(ets_rhead *h, void (*fn)(ets_rhead *), size_t bytes);
/* Called first by every reclamation callback: tells TSan the grace period
 * ordered every reader before the free (it cannot see urcu's barriers). */
void ets__reclaim_acquire(void);

#endif
