/* ETS internals shared by the front end (ets.c), the table registry
 * (registry.c), the reclamation glue (qsbr.c) and the two table kinds
 * (hash.c for set/bag/duplicate_bag, skiplist.c for ordered_set).
 *
 * Invariants: an object is an ets_rec, immutable once published except for
 * counter words that ot_ets_update_counter changes in place with atomic adds
 * (so every copy of a value reads its words with atomic loads). Every ETS
 * call runs between ets__enter and ets__leave, online as a QSBR reader, and
 * anything unlinked from a table (records, nodes, arrays, the table itself)
 * is freed only through ets__retire after a grace period. Writers of one key
 * serialise on that key's stripe lock (hash tables) or node locks (skiplist);
 * size and memory counts are per stripe, summed on read. */
#ifndef OT_ETS_INT_H
#define OT_ETS_INT_H

#include <otter.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <urcu-qsbr.h>

#define ETS_CACHELINE 64

/* ---- records ---------------------------------------------------------------- */

typedef struct ets_rec {
    struct ets_rec *_Atomic next; /* bag chain: an RCU list in insertion order */
    struct rcu_head rcu;
    uint64_t hash;
    uint32_t klen, vlen;
    _Alignas(8) unsigned char data[]; /* value padded to 8 bytes, then key */
} ets_rec;

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

uint64_t ets__hash(const void *k, size_t kl); /* never 0 */
ets_rec *ets__rec_new(const void *k, size_t kl, const void *v, size_t vl, uint64_t hash);
/* Copies a value that counters may be changing: word-wise atomic loads. */
void ets__val_copy(void *dst, const ets_rec *r);
bool ets__val_equal(const ets_rec *r, const void *v, size_t vl);

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
    pthread_mutex_t mu;  /* the writers of the stripe's keys (hash tables) */
    _Atomic long size;   /* objects; the table's size is the sum */
    _Atomic long bytes;  /* record bytes */
} __attribute__((aligned(ETS_CACHELINE))) ets_stripe;

typedef struct ets_table ets_table;
typedef int (*ets_visit_fn)(const ets_rec *r, void *arg); /* non-zero stops */

/* A dispatch table per table kind (erts' DbTableMethod). Readers (get,
 * fold, first, next, prev, last) are lock-free; writers push what they
 * unlink onto `out`. */
typedef struct ets_methods {
    int (*init)(ets_table *t);
    void (*destroy)(ets_table *t); /* after a grace period: frees everything */
    int (*get)(ets_table *t, const void *k, size_t kl, uint64_t h, ets_visit_fn fn, void *arg);
    /* new_only: -EEXIST when the key has an object. Takes r (freed on error
     * or when a bag already holds an equal object). */
    int (*put)(ets_table *t, ets_rec *r, bool new_only, ets_vec *out);
    /* v NULL: every object of the key; else the objects equal to (k, v).
     * Returns how many were removed. */
    int (*del)(ets_table *t, const void *k, size_t kl, uint64_t h, const void *v, size_t vl,
               ets_vec *out);
    int (*fold)(ets_table *t, ets_visit_fn fn, void *arg);
    /* Key walk: the record of the first/next/prev/last key, or NULL. k NULL
     * with first (or last) semantics. */
    const ets_rec *(*first)(ets_table *t);
    const ets_rec *(*last)(ets_table *t);
    const ets_rec *(*next)(ets_table *t, const void *k, size_t kl, uint64_t h);
    const ets_rec *(*prev)(ets_table *t, const void *k, size_t kl, uint64_t h);
    size_t (*overhead)(ets_table *t); /* bytes of structure beyond records */
} ets_methods;

extern const ets_methods ets__hash_methods;
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
    struct rcu_head rcu;
    void *impl;            /* the kind's structure */
    unsigned stripe_mask;  /* stripes - 1 */
    ets_stripe *stripes;
};

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
size_t ets__size(ets_table *t);
size_t ets__bytes(ets_table *t);

/* ---- registry (registry.c) -------------------------------------------------- */

/* The live table of a handle, or NULL: only between ets__enter/leave. */
ets_table *ets__lookup(ot_tab h);
void ets__registry_lock(void);
void ets__registry_unlock(void);

/* ---- QSBR (qsbr.c) ---------------------------------------------------------- */

/* Puts the calling thread online if it is not (registering a foreign thread
 * on first use); returns what ets__leave needs to undo. */
int ets__enter(void);
void ets__leave(int token);
/* Frees after a grace period; the caller must be online (inside an ETS call). */
void ets__retire_rec(ets_rec *r);
void ets__retire(struct rcu_head *h, void (*fn)(struct rcu_head *));
/* Called first by every reclamation callback: tells TSan the grace period
 * ordered every reader before the free (it cannot see urcu's barriers). */
void ets__reclaim_acquire(void);

#endif
