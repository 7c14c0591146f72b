/* Hash tables (set, bag, duplicate_bag): linear probing over an array of
 * {hash, record} slots, indexed by the top bits of the 64-bit key hash, with
 * no wrap-around (an overflow tail instead).
 *
 * Invariants. A slot's hash goes from 0 (empty) to the hash of the key that
 * claimed it, by CAS, and never changes again in that array; its record goes
 * from NULL to a live record chain, to TOMB when the key's last object goes,
 * and a later insert of a key with the same hash may reuse it. A key has at
 * most one live slot, placed at the first empty slot at or after its home, so
 * when slot e is empty every key whose home is below e sits below e: this
 * makes (hash, key bytes) a walk order that resizing does not change, which
 * ot_ets_next relies on. Writers hold the stripe lock of the key's hash (low
 * bits) and publish with release stores; readers probe with acquire loads and
 * take no lock. A resize holds every stripe lock, copies the live slots into
 * a new array (the records move, they are not copied), publishes it and
 * retires the old one, which stays frozen for readers still inside it. A
 * bag's objects hang off their slot as an RCU list in insertion order. */
#include "ets_int.h"

#include <stdlib.h>

#define HASH_MIN_CAP 16
#define HASH_OVERFLOW 32 /* slots past the last home before a forced resize */

typedef struct hslot {
    _Atomic uint64_t hash;
    ets_rec *_Atomic rec;
} hslot;

typedef struct harr {
    struct rcu_head rcu;
    unsigned shift; /* home = hash >> shift */
    size_t cap, nslots;
    hslot s[];
} harr;

typedef struct htab {
    harr *_Atomic arr;
    _Atomic size_t used; /* claimed slots, live or tomb: the resize trigger */
} htab;

static ets_rec hash_tomb;
#define TOMB (&hash_tomb)

static inline bool live(const ets_rec *r) { return r && r != TOMB; }
static inline size_t home(const harr *a, uint64_t h) { return (size_t)(h >> a->shift); }
static inline htab *H(ets_table *t) { return t->impl; }

static inline bool rec_is(const ets_rec *r, const void *k, size_t kl)
{
    return r->klen == kl && memcmp(ets_rec_key(r), k, kl) == 0;
}

/* The walk order: hash, then key bytes. */
static int order(const ets_rec *r, uint64_t h, const void *k, size_t kl)
{
    if (r->hash != h)
        return r->hash < h ? -1 : 1;
    return ets_keycmp(ets_rec_key(r), r->klen, k, kl);
}

static harr *harr_new(size_t cap)
{
    size_t nslots = cap + HASH_OVERFLOW;
    harr *a = calloc(1, sizeof(harr) + nslots * sizeof(hslot));
    if (!a)
        return NULL;
    a->cap = cap;
    a->nslots = nslots;
    a->shift = 64 - (unsigned)__builtin_ctzll(cap);
    return a;
}

static void harr_free_cb(struct rcu_head *h)
{
    ets__reclaim_acquire();
    free(caa_container_of(h, harr, rcu));
}

static int hash_init(ets_table *t)
{
    htab *ht = calloc(1, sizeof *ht);
    harr *a = harr_new(HASH_MIN_CAP);
    if (!ht || !a) {
        free(ht);
        free(a);
        return -ENOMEM;
    }
    atomic_init(&ht->arr, a);
    atomic_init(&ht->used, 0);
    t->impl = ht;
    return 0;
}

static void hash_destroy(ets_table *t)
{
    htab *ht = H(t);
    harr *a = atomic_load_explicit(&ht->arr, memory_order_relaxed); /* no one else left */
    for (size_t i = 0; i < a->nslots; i++) {
        ets_rec *r = atomic_load_explicit(&a->s[i].rec, memory_order_relaxed);
        while (live(r)) {
            ets_rec *n = atomic_load_explicit(&r->next, memory_order_relaxed);
            free(r);
            r = n;
        }
    }
    free(a);
    free(ht);
}

/* Readers: the first record of the key in a, or NULL. */
static ets_rec *find(const harr *a, uint64_t h, const void *k, size_t kl)
{
    for (size_t i = home(a, h); i < a->nslots; i++) {
        /* Pairs with the claiming CAS: a non-zero hash is final. */
        uint64_t sh = atomic_load_explicit(&a->s[i].hash, memory_order_acquire);
        if (sh == 0)
            return NULL;
        if (sh != h)
            continue;
        /* Pairs with the writers' release stores of the slot's record. */
        ets_rec *r = atomic_load_explicit(&a->s[i].rec, memory_order_acquire);
        if (live(r) && rec_is(r, k, kl))
            return r;
    }
    return NULL;
}

static int hash_get(ets_table *t, const void *k, size_t kl, uint64_t h, ets_visit_fn fn, void *arg)
{
    /* Pairs with the release store that publishes a resized array. */
    harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire);
    int n = 0;
    /* The chain as it stood when find read its head (the slot itself may
     * since hold another key with the same hash). */
    for (ets_rec *r = find(a, h, k, kl); r;
         r = atomic_load_explicit(&r->next, memory_order_acquire)) {
        n++;
        if (fn(r, arg))
            break;
    }
    return n;
}

/* Writers, under the stripe lock: the key's live slot (or -1), the first
 * tombstone with the key's hash (reusable) and the first empty slot. */
static long wfind(const harr *a, uint64_t h, const void *k, size_t kl, long *reuse, size_t *end)
{
    *reuse = -1;
    size_t i = home(a, h);
    for (; i < a->nslots; i++) {
        uint64_t sh = atomic_load_explicit(&a->s[i].hash, memory_order_acquire);
        if (sh == 0)
            break;
        if (sh != h)
            continue;
        ets_rec *r = atomic_load_explicit(&a->s[i].rec, memory_order_relaxed); /* ours: locked */
        if (live(r) && rec_is(r, k, kl)) {
            *end = i;
            return (long)i;
        }
        if (r == TOMB && *reuse < 0)
            *reuse = (long)i;
    }
    *end = i;
    return -1;
}

static void lock_all(ets_table *t)
{
    for (unsigned i = 0; i <= t->stripe_mask; i++)
        pthread_mutex_lock(&t->stripes[i].mu);
}

static void unlock_all(ets_table *t)
{
    for (unsigned i = t->stripe_mask + 1; i-- > 0;)
        pthread_mutex_unlock(&t->stripes[i].mu);
}

/* Copies the live slots of a into a new array of cap slots; NULL when one
 * cluster runs off the end (the caller doubles cap) or memory is short. */
static harr *rehash(const harr *a, size_t cap)
{
    harr *b = harr_new(cap);
    if (!b)
        return NULL;
    for (size_t i = 0; i < a->nslots; i++) {
        ets_rec *r = atomic_load_explicit(&a->s[i].rec, memory_order_relaxed);
        if (!live(r))
            continue;
        uint64_t h = atomic_load_explicit(&a->s[i].hash, memory_order_relaxed);
        size_t j = home(b, h);
        while (j < b->nslots && atomic_load_explicit(&b->s[j].hash, memory_order_relaxed))
            j++;
        if (j == b->nslots) {
            free(b);
            return NULL;
        }
        atomic_store_explicit(&b->s[j].hash, h, memory_order_relaxed); /* published below */
        atomic_store_explicit(&b->s[j].rec, r, memory_order_relaxed);
    }
    return b;
}

/* Grows (or cleans out tombstones of) the array `seen`, unless another writer
 * has already replaced it. force: the last insert ran off the end. */
static int resize(ets_table *t, harr *seen, bool force)
{
    htab *ht = H(t);
    lock_all(t);
    harr *a = atomic_load_explicit(&ht->arr, memory_order_relaxed); /* all locks held */
    if (a != seen) {
        unlock_all(t);
        return 0;
    }
    size_t nlive = 0;
    for (size_t i = 0; i < a->nslots; i++)
        nlive += live(atomic_load_explicit(&a->s[i].rec, memory_order_relaxed));
    size_t cap = HASH_MIN_CAP;
    while (cap < nlive * 4)
        cap *= 2;
    if (force && cap <= a->cap)
        cap = a->cap * 2;
    harr *b;
    while (!(b = rehash(a, cap))) {
        if (cap > ((size_t)1 << 40)) {
            unlock_all(t);
            return -ENOMEM;
        }
        cap *= 2;
    }
    atomic_store_explicit(&ht->used, nlive, memory_order_relaxed);
    /* Pairs with the readers' acquire load of arr: the slots are visible. */
    atomic_store_explicit(&ht->arr, b, memory_order_release);
    unlock_all(t);
    ets__retire(&a->rcu, harr_free_cb);
    return 0;
}

/* A key already in slot i: replace (set) or add (bags). */
static int put_existing(ets_table *t, harr *a, long i, ets_rec *r, ets_vec *out)
{
    ets_rec *head = atomic_load_explicit(&a->s[i].rec, memory_order_relaxed);
    if (t->type == OT_ETS_SET) {
        atomic_store_explicit(&r->next, NULL, memory_order_relaxed);
        /* Pairs with the readers' acquire loads of the slot. */
        atomic_store_explicit(&a->s[i].rec, r, memory_order_release);
        ets_count(t, r->hash, 0,
                  (long)ets_rec_size(r->klen, r->vlen) - (long)ets_rec_size(head->klen, head->vlen));
        ets__vec_push(out, head);
        return 0;
    }
    ets_rec *tail = head;
    for (ets_rec *c = head; c; c = atomic_load_explicit(&c->next, memory_order_relaxed)) {
        if (t->type == OT_ETS_BAG && ets__val_equal(c, ets_rec_val(r), r->vlen)) {
            free(r); /* never published */
            return 0;
        }
        tail = c;
    }
    /* Pairs with the readers' acquire loads of next: r is complete. */
    atomic_store_explicit(&tail->next, r, memory_order_release);
    ets_count(t, r->hash, 1, (long)ets_rec_size(r->klen, r->vlen));
    return 0;
}

/* Claims the first empty slot from `from` on; -1 when none is left. */
static long claim(harr *a, size_t from, uint64_t h)
{
    for (size_t i = from; i < a->nslots; i++) {
        uint64_t zero = 0;
        /* Pairs with the readers' acquire loads of the hash; writers of other
         * stripes race for the same empty slot, the loser moves on. */
        if (atomic_compare_exchange_strong_explicit(&a->s[i].hash, &zero, h, memory_order_acq_rel,
                                                    memory_order_acquire))
            return (long)i;
    }
    return -1;
}

static int hash_put(ets_table *t, ets_rec *r, bool new_only, ets_vec *out)
{
    htab *ht = H(t);
    const void *k = ets_rec_key(r);
    for (;;) {
        ets_stripe *st = ets_stripe_of(t, r->hash);
        pthread_mutex_lock(&st->mu);
        harr *a = atomic_load_explicit(&ht->arr, memory_order_acquire);
        long reuse;
        size_t end;
        long i = wfind(a, r->hash, k, r->klen, &reuse, &end);
        if (i >= 0) {
            int rc = new_only ? -EEXIST : put_existing(t, a, i, r, out);
            pthread_mutex_unlock(&st->mu);
            if (rc)
                free(r);
            return rc;
        }
        bool grow = false;
        if (reuse < 0) {
            reuse = claim(a, end, r->hash);
            if (reuse < 0) {
                pthread_mutex_unlock(&st->mu);
                int rc = resize(t, a, true);
                if (rc) {
                    free(r);
                    return rc;
                }
                continue;
            }
            /* Only a trigger: the exact count is rebuilt by resize. */
            size_t used = atomic_fetch_add_explicit(&ht->used, 1, memory_order_relaxed) + 1;
            grow = used * 2 > a->cap;
        }
        atomic_store_explicit(&r->next, NULL, memory_order_relaxed);
        /* Pairs with the readers' acquire loads of the slot. */
        atomic_store_explicit(&a->s[reuse].rec, r, memory_order_release);
        ets_count(t, r->hash, 1, (long)ets_rec_size(r->klen, r->vlen));
        pthread_mutex_unlock(&st->mu);
        if (grow)
            resize(t, a, false); /* the insert is done; a failed grow retries later */
        return 0;
    }
}

static int hash_del(ets_table *t, const void *k, size_t kl, uint64_t h, const void *v, size_t vl,
                    ets_vec *out)
{
    ets_stripe *st = ets_stripe_of(t, h);
    pthread_mutex_lock(&st->mu);
    harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire);
    long reuse;
    size_t end;
    long i = wfind(a, h, k, kl, &reuse, &end);
    int n = 0;
    long bytes = 0;
    if (i >= 0) {
        ets_rec *prev = NULL;
        ets_rec *c = atomic_load_explicit(&a->s[i].rec, memory_order_relaxed);
        while (c) {
            ets_rec *nx = atomic_load_explicit(&c->next, memory_order_relaxed);
            if (v && !ets__val_equal(c, v, vl)) {
                prev = c;
                c = nx;
                continue;
            }
            /* Unlinked, c keeps its next: readers standing on it go on. The
             * release stores pair with the readers' acquire loads. */
            if (prev)
                atomic_store_explicit(&prev->next, nx, memory_order_release);
            else
                atomic_store_explicit(&a->s[i].rec, nx ? nx : TOMB, memory_order_release);
            n++;
            bytes += (long)ets_rec_size(c->klen, c->vlen);
            ets__vec_push(out, c);
            c = nx;
        }
        ets_count(t, h, -n, -bytes);
    }
    pthread_mutex_unlock(&st->mu);
    return n;
}

static int hash_fold(ets_table *t, ets_visit_fn fn, void *arg)
{
    harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire); /* as in hash_get */
    for (size_t i = 0; i < a->nslots; i++) {
        ets_rec *r = atomic_load_explicit(&a->s[i].rec, memory_order_acquire);
        for (; live(r); r = atomic_load_explicit(&r->next, memory_order_acquire)) {
            int rc = fn(r, arg);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* The least key above (h, k) in walk order (the least of all when k is
 * NULL). Keys above (h, k) live at or after home(h). Scanning cluster by
 * cluster (a cluster ends at an empty slot) is enough: a key past an empty
 * slot e has its home past e, so it sorts after every key of the clusters
 * before e. */
static const ets_rec *walk_from(ets_table *t, const void *k, size_t kl, uint64_t h)
{
    harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire); /* as in hash_get */
    size_t i = k ? home(a, h) : 0;
    const ets_rec *best = NULL;
    while (i < a->nslots) {
        for (; i < a->nslots; i++) {
            if (atomic_load_explicit(&a->s[i].hash, memory_order_acquire) == 0)
                break;
            ets_rec *r = atomic_load_explicit(&a->s[i].rec, memory_order_acquire);
            if (!live(r) || (k && order(r, h, k, kl) <= 0))
                continue;
            if (!best || order(r, best->hash, ets_rec_key(best), best->klen) < 0)
                best = r;
        }
        if (best)
            return best;
        while (i < a->nslots && atomic_load_explicit(&a->s[i].hash, memory_order_acquire) == 0)
            i++;
    }
    return NULL;
}

static const ets_rec *hash_first(ets_table *t) { return walk_from(t, NULL, 0, 0); }

static const ets_rec *hash_next(ets_table *t, const void *k, size_t kl, uint64_t h)
{
    return walk_from(t, k, kl, h);
}

static size_t hash_overhead(ets_table *t)
{
    harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire); /* as in hash_get */
    return sizeof(htab) + sizeof(harr) + a->nslots * sizeof(hslot);
}

const ets_methods ets__hash_methods = {
    .init = hash_init,
    .destroy = hash_destroy,
    .get = hash_get,
    .put = hash_put,
    .del = hash_del,
    .fold = hash_fold,
    .first = hash_first,
    .last = hash_first,
    .next = hash_next,
    .prev = hash_next,
    .overhead = hash_overhead,
};
