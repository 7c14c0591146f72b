/* Hash tables (set, bag, duplicate_bag): linear probing over an array of
 * 32-byte slots (two to a cache line), indexed by the top bits of the 64-bit
 * key hash, with no wrap-around (an overflow tail instead). A set's object
 * whose key and value fit in ETS_INLINE_WORDS words (padded to 8 bytes each:
 * an 8-byte key and an 8-byte value, or a key of up to 16 bytes alone) lives
 * in its slot, so a hit reads one cache line; larger objects, and every bag
 * object, are ets_recs the slot points to. Slots are small because a big
 * table's cost is its memory: look-ups miss in cache on it and inserts pay
 * for its fresh pages.
 *
 * Invariants. A slot's hash goes from 0 (empty) to the hash of the key that
 * claimed it, by CAS, and never changes again in that array. Its content is
 * an inline object (META_INLINE: key and value in w), a set's record (the
 * record's address in w[0]; with META_RECKEY a set record's short key and
 * value length repeated in meta and w[1]), a bag key's hbag (META_BAG, its
 * address in w[0]), or nothing (w[0] TOMB: its key is gone, and a later
 * insert of a key with the same hash may reuse the slot).
 * Content changes only under the stripe lock of the key's hash (low bits),
 * inside the slot's seqlock: seq is made odd, the words are stored with
 * release, seq is made even again. Readers take no lock and write nothing:
 * they copy meta and w with acquire loads between two reads of seq
 * (hash_int.h's snap) and retry when seq was odd or moved, so an
 * inline object is never seen torn; a record they find stays readable (QSBR)
 * even if it is replaced meanwhile. Inline words never change outside that
 * lock: update_counter moves an inline object out to a record first and adds
 * there, so a resize, which copies inline objects, can never lose an add.
 * A key has at most one live slot, placed at the first empty slot at or
 * after its home, so when slot e is empty every key whose home is below e
 * sits below e: this makes (hash, key bytes) a walk order that resizing does
 * not change, which ot_ets_next relies on. A resize (resize, below) makes
 * the new array with no lock held, then fills it in steps, each holding
 * every stripe lock for MIG_CHUNK slots of the old array (records move,
 * inline objects are copied), while writers keep writing the old array and
 * repeat each write of an already copied key in the new one (slot_set); the
 * last step publishes it and retires the old one, which stays frozen for
 * readers still inside it. So a writer never waits for more than one step,
 * and readers always see one whole array. A growing big table's next array is mapped
 * ahead and populated by the populate-ahead thread, in proportion to the
 * table's progress toward its resize (prepare, below: the memory held ahead
 * is (steps + 1) / 16 of the next array); writers see it under one stripe
 * lock at least, readers never before it is published.
 *
 * Bags (bag, duplicate_bag) are copy-on-write per key, correct by
 * construction: a bag key's slot holds one immutable hbag, the array of its
 * records in insertion order, and every write of the key (insert,
 * delete_object, delete, take) builds the next array under the stripe lock
 * and publishes it with the one slot store (or a tombstone), retiring the
 * old array; records are shared between versions and never change. A reader
 * copies the slot once and walks that array, so it sees the key's objects
 * exactly as one write left them, each once, never a record that write had
 * removed nor one added after; a single-key write is atomic and isolated. */
#include "hash_int.h"

#include "runtime/sched/ahead.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define HASH_MIN_CAP 16
#define HASH_OVERFLOW 32 /* slots past the last home before a forced resize */
#define HASH_MAP_MIN ((size_t)1 << 20) /* arrays this big are mmapped */
#define HASH_HUGE ((size_t)2 << 20) /* a transparent huge page */
#define HASH_HUGE_MIN (2 * HASH_HUGE) /* arrays from this big ask for them, */
#define HASH_HUGE_MAX ((size_t)20 << 20) /* up to this (up to 512k slots) */
#define REHASH_AHEAD 16 /* slots between a resize's prefetch and its copy */

/* Writers and frozen arrays: the record chain of a slot (NULL when inline). */
static inline ets_rec *slot_rec(const hslot *s)
{
    if (atomic_load_explicit(&s->meta, memory_order_relaxed) & META_INLINE)
        return NULL;
    return as_rec(atomic_load_explicit(&s->w[0], memory_order_relaxed));
}


/* A table's private part: the htab that ets.c reads first, then the next
 * array made ahead of its resize (prepare, below). prep is written only with
 * every stripe lock held (prepare, resize, prep_drop) or by hash_destroy,
 * when no one else is left, so any one stripe lock keeps it in place for a
 * reader (want_grow's steps, hash_overhead); lock-free readers never see
 * it. prep_gen is the gen + 1 of the last array a prepare was tried for, so
 * one insert tries once per array however many cross the point. prep_mark:
 * the claimed slots of the current array above which want_grow looks at
 * the sum (the next prepare step, or the resize at cap / 2); written under
 * all stripe locks or, only ever upwards, under one. prep_floor: the live
 * objects below which hash_del gives a held prepared array back (0: none
 * held); written under all stripe locks. Both sit on the line every insert
 * reads anyway (pub.arr) and change a few times per resize. */
typedef struct hprep hprep;
typedef struct hash_tab {
    htab pub;
    hprep *prep;
    _Atomic unsigned prep_gen;
    _Atomic size_t prep_mark;
    _Atomic size_t prep_floor;
    /* A resize in progress (migrate, below): the array being filled, and
     * the home index of the current array below which every key is in it
     * too. Written under every stripe lock, read under one. */
    harr *mig;
    size_t mig_upto;
    _Atomic bool migrating;  /* elects the one writer that migrates */
    _Atomic bool mig_failed; /* mig ran out of slots: start again, bigger */
    long mig_claimed[ETS_STRIPES_MAX]; /* slots of mig each stripe claimed (its lock) */
} hash_tab;

static inline htab *H(ets_table *t) { return t->impl; }
static inline hash_tab *HT(ets_table *t) { return t->impl; }

ets_rec ets__hash_tomb;

static inline bool fits(ets_table *t, size_t kl, size_t vl)
{
    return t->type == OT_ETS_SET && ets_pad8(kl) + ets_pad8(vl) <= HW * 8;
}


/* The walk order: hash, then key bytes. */
static int order(const ets_obj *o, uint64_t h, const void *k, size_t kl)
{
    if (o->hash != h)
        return o->hash < h ? -1 : 1;
    return ets_keycmp(o->key, o->klen, k, kl);
}

/* ---- slots ------------------------------------------------------------------ */


/* Stripe lock held (or an array no one else sees): replaces the slot's
 * content. Writers of a table's current array use slot_set, which keeps a
 * resize in progress up to date. */
static void slot_store(hslot *s, uint32_t meta, const uint64_t *w)
{
    uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed); /* ours: locked */
    /* Made visible to a reader by any of the release stores below that it
     * reads (see snap). */
    atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
    /* Release pairs with the readers' acquire loads: a record is complete. */
    atomic_store_explicit(&s->w[0], w[0], memory_order_release);
    atomic_store_explicit(&s->w[1], w[1], memory_order_release);
    atomic_store_explicit(&s->meta, meta, memory_order_release);
    atomic_store_explicit(&s->seq, q + 2, memory_order_release); /* pairs with snap's first load */
}

/* The slot words and meta of a record chain r (or NULL, TOMB). */
static uint32_t rec_words(ets_table *t, ets_rec *r, uint64_t *w)
{
    w[0] = rec_word(r);
    w[1] = 0;
    if (t->type != OT_ETS_SET || !live(r) || r->klen > 8 || r->vlen > 0xff)
        return 0;
    memcpy(&w[1], ets_rec_key(r), r->klen);
    return META_RECKEY | r->klen | r->vlen << 8;
}

/* Packs (k, v) into inline words; returns the meta. */
static uint32_t pack(uint64_t *w, const void *k, size_t kl, const void *v, size_t vl)
{
    w[0] = w[1] = 0;
    if (kl == 8) /* the common integer key: no call to memcpy */
        memcpy(w, k, 8);
    else
        memcpy(w, k, kl);
    if (vl == 8)
        memcpy(&w[1], v, 8);
    else if (vl)
        memcpy((unsigned char *)w + ets_pad8(kl), v, vl);
    return META_INLINE | (uint32_t)kl | (uint32_t)vl << 8;
}

/* The view of inline words (a private copy). */
static inline void view_inline(ets_obj *o, uint32_t meta, uint64_t h)
{
    o->rec = NULL;
    o->hash = h;
    o->klen = meta_klen(meta);
    o->vlen = meta_vlen(meta);
    o->key = (const unsigned char *)o->snap;
    o->val = o->key + ets_pad8(o->klen);
}

/* The caller's key padded with zeros to whole words, as slots store it. */
static inline void key_words(uint64_t *kw, const void *k, size_t kl)
{
    if (kl <= 8) { /* no call to memcpy */
        kw[0] = ets_key_word(k, kl);
        kw[1] = 0;
        return;
    }
    kw[0] = kw[1] = 0;
    memcpy(kw, k, kl <= HW * 8 ? kl : 0);
}

static inline bool inline_is(uint32_t meta, const uint64_t *w, const uint64_t *kw, size_t kl)
{
    if (meta_klen(meta) != kl)
        return false;
    for (size_t i = 0; i < (kl + 7) / 8; i++)
        if (w[i] != kw[i])
            return false;
    return true;
}

/* A big array's memory: anonymous and zeroed. populate: in one call, where
 * first touches would take one fault each, slow on a VM, since a resize is
 * about to write all over it anyway; else the caller has the populate-ahead
 * thread do it (prepare). Between HASH_HUGE_MIN and HASH_HUGE_MAX it is also
 * aligned to 2 MiB and asked for transparent huge pages: random probes into
 * a table of several megabytes otherwise miss the TLB on most look-ups (a
 * page walk that a VM makes two-dimensional), so reads of such a table gain.
 * Not above: on these VMs a fresh huge page is sometimes very slow to clear
 * (the host backing memory the guest never touched, where 4 KiB pages come
 * recycled), which made big insert runs slower instead of faster. The
 * populate-ahead thread's MADV_POPULATE_WRITE gets huge pages too
 * (AnonHugePages counts a prepared array's), and with it THP made inserts
 * neither faster nor slower, so it stays for the reads (perf/NOTES.md,
 * 2026-11-25 and 2026-12-04 ETS huge pages). THP off, or MADV_POPULATE_WRITE
 * missing (kernels before 5.14): the pages come as 4 KiB ones, or by faults on
 * first touch. */
static void *map_array(size_t size, size_t *mapped, bool populate)
{
    size = (size + 4095) & ~(size_t)4095;
    if (size < HASH_HUGE_MIN || size > HASH_HUGE_MAX) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
        *mapped = size;
        return p == MAP_FAILED ? NULL : p;
    }
    size_t len = size + HASH_HUGE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *b = (char *)(((uintptr_t)p + HASH_HUGE - 1) & ~(uintptr_t)(HASH_HUGE - 1));
    if (b > p)
        munmap(p, (size_t)(b - p));
    if (p + len > b + size)
        munmap(b + size, (size_t)(p + len - (b + size)));
    madvise(b, size, MADV_HUGEPAGE); /* advice: failure leaves 4 KiB pages */
    if (populate)
        madvise(b, size, MADV_POPULATE_WRITE); /* as is failure here: faults instead */
    *mapped = size;
    return b;
}

/* Bytes an array of cap slots takes (header, overflow tail, alignment). */
static inline size_t harr_bytes(size_t cap)
{
    return sizeof(harr) + (cap + HASH_OVERFLOW) * sizeof(hslot) + ETS_CACHELINE;
}

/* The array of cap slots in zeroed memory at base (mapped: bytes mmapped). */
static harr *harr_at(void *base, size_t mapped, size_t cap, unsigned gen)
{
    harr *a = (harr *)(((uintptr_t)base + ETS_CACHELINE - 1) & ~(uintptr_t)(ETS_CACHELINE - 1));
    a->base = base;
    a->mapped = mapped;
    a->cap = cap;
    a->nslots = cap + HASH_OVERFLOW;
    a->shift = 64 - (unsigned)__builtin_ctzll(cap);
    a->gen = gen;
    a->prep = NULL;
    return a;
}

static harr *harr_new(size_t cap, unsigned gen)
{
    /* Zeroed memory, never memset (zero slots are empty); big arrays are
     * mapped (map_array). */
    size_t size = harr_bytes(cap), mapped = 0;
    void *base;
    if (size >= HASH_MAP_MIN) {
        if (!(base = map_array(size, &mapped, true)))
            return NULL;
    } else if (!(base = calloc(1, size))) {
        return NULL;
    }
    return harr_at(base, mapped, cap, gen);
}

static void prep_done(struct hprep *p);

static void harr_free(harr *a)
{
    if (a && a->prep)
        prep_done(a->prep);
    if (a && a->mapped)
        munmap(a->base, a->mapped);
    else if (a)
        free(a->base);
}

static void harr_free_cb(ets_rhead *h)
{
    ets__reclaim_acquire();
    harr_free(caa_container_of(h, harr, rcu));
}

static size_t prep_mark_for(const harr *a);

static int hash_init(ets_table *t)
{
    hash_tab *ht = calloc(1, sizeof *ht);
    harr *a = harr_new(HASH_MIN_CAP, 0);
    if (!ht || !a) {
        free(ht);
        harr_free(a);
        return -ENOMEM;
    }
    atomic_init(&ht->pub.arr, a);
    atomic_init(&ht->prep_gen, 0);
    atomic_init(&ht->prep_mark, prep_mark_for(a));
    atomic_init(&ht->prep_floor, 0);
    t->impl = ht;
    return 0;
}

static void prep_release(hprep *p);

static void hash_destroy(ets_table *t)
{
    hash_tab *ht = HT(t);
    prep_release(ht->prep); /* no one else left */
    harr *a = atomic_load_explicit(&ht->pub.arr, memory_order_relaxed); /* no one else left */
    for (size_t i = 0; i < a->nslots; i++) {
        const hslot *s = &a->s[i];
        ets_rec *r = slot_rec(s);
        if (atomic_load_explicit(&s->meta, memory_order_relaxed) & META_BAG) {
            hbag *b = as_bag(rec_word(r));
            for (uint32_t j = 0; j < b->n; j++)
                free(b->r[j]);
            free(b);
        } else if (live(r)) {
            free(r);
        }
    }
    harr_free(a);
    free(ht);
}

/* ---- readers ---------------------------------------------------------------- */

/* The key's slot content in a (lock-free): true with *o filled (inline
 * snapshot, or the chain's first record), false when the key is absent. */

/* A slot's inline words, read by a writer holding its stripe lock (no
 * seqlock needed: no other writer can change them meanwhile). */
static inline void locked_words(const hslot *s, uint64_t w[HW])
{
    for (int j = 0; j < HW; j++)
        w[j] = atomic_load_explicit(&s->w[j], memory_order_relaxed);
}

static inline bool find(const harr *a, uint64_t h, const void *k, size_t kl, ets_obj *o,
                        bool light)
{
    if (kl <= 8)
        return ets_hash_find_small(a, h, k, ets_key_word(k, kl), kl, o, light);
    uint64_t kw[HW];
    key_words(kw, k, kl);
    for (size_t i = home(a, h); i < a->nslots; i++) {
        /* Pairs with the claiming CAS: a non-zero hash is final. */
        uint64_t sh = atomic_load_explicit(&a->s[i].hash, memory_order_acquire);
        if (sh == 0)
            return false;
        if (sh != h)
            continue;
        uint32_t meta;
        ets_rec *r;
        snap(&a->s[i], &meta, &r, o->snap);
        if (meta & META_INLINE) {
            if (inline_is(meta, o->snap, kw, kl)) {
                view_inline(o, meta, h);
                return true;
            }
        } else if (meta & META_RECKEY) {
            if (meta_klen(meta) == kl && o->snap[1] == kw[0]) {
                if (!light) {
                    ets_obj_of_rec(o, r);
                    return true;
                }
                o->rec = r; /* light: rec and vlen only, the header untouched */
                o->vlen = meta_vlen(meta);
                return true;
            }
        } else if (!(meta & META_BAG) && live(r) && rec_is(r, k, kl)) {
            ets_obj_of_rec(o, r);
            return true;
        }
    }
    return false;
}

/* A bag key's objects in a (lock-free), or NULL: one consistent version of
 * them, whatever writers do meanwhile (the opening paragraph). */
static hbag *bag_find(const harr *a, uint64_t h, const void *k, size_t kl)
{
    for (size_t i = home(a, h); i < a->nslots; i++) {
        /* As in find. */
        uint64_t sh = atomic_load_explicit(&a->s[i].hash, memory_order_acquire);
        if (sh == 0)
            return NULL;
        if (sh != h)
            continue;
        uint32_t meta;
        ets_rec *r;
        uint64_t w[HW];
        snap(&a->s[i], &meta, &r, w);
        if ((meta & META_BAG) && rec_is(as_bag(w[0])->r[0], k, kl))
            return as_bag(w[0]);
    }
    return NULL;
}

bool ets__hash_find(ets_table *t, const void *k, size_t kl, uint64_t h, ets_obj *o)
{
    /* Pairs with the release store that publishes a resized array. */
    return find(atomic_load_explicit(&H(t)->arr, memory_order_acquire), h, k, kl, o, false);
}

static int hash_get(ets_table *t, const void *k, size_t kl, uint64_t h, ets_visit_fn fn, void *arg)
{
    /* Pairs with the release store that publishes a resized array. */
    harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire);
    ets_obj o;
    if (t->type == OT_ETS_SET) {
        if (!find(a, h, k, kl, &o, false))
            return 0;
        fn(&o, arg);
        return 1;
    }
    hbag *b = bag_find(a, h, k, kl);
    if (!b)
        return 0;
    int n = 0;
    for (uint32_t j = 0; j < b->n; j++) {
        n++;
        ets_obj_of_rec(&o, b->r[j]);
        if (fn(&o, arg))
            break;
    }
    return n;
}

/* ---- writers ---------------------------------------------------------------- */

/* Writers, under the stripe lock: the key's live slot (or -1), the first
 * tombstone with the key's hash (reusable) and the first empty slot. */
static long wfind(const harr *a, uint64_t h, const void *k, size_t kl, long *reuse, size_t *end)
{
    uint64_t kw[HW], w[HW];
    key_words(kw, k, kl);
    *reuse = -1;
    size_t i = home(a, h);
    for (; i < a->nslots; i++) {
        const hslot *s = &a->s[i];
        uint64_t sh = atomic_load_explicit(&s->hash, memory_order_acquire);
        if (sh == 0)
            break;
        if (sh != h)
            continue;
        /* Content of our stripe's keys: stable under our lock. */
        uint32_t meta = atomic_load_explicit(&s->meta, memory_order_relaxed);
        ets_rec *r = slot_rec(s);
        bool is;
        if (meta & META_INLINE) {
            locked_words(s, w);
            is = inline_is(meta, w, kw, kl);
        } else if (meta & META_BAG) {
            is = rec_is(as_bag(rec_word(r))->r[0], k, kl);
        } else {
            is = live(r) && rec_is(r, k, kl);
        }
        if (is) {
            *end = i;
            return (long)i;
        }
        if (!meta && r == TOMB && *reuse < 0)
            *reuse = (long)i;
    }
    *end = i;
    return -1;
}

/* The key of slot content (meta, w), or false when it holds none. */
static bool content_key(uint32_t meta, const uint64_t *w, const void **k, size_t *kl)
{
    ets_rec *r = NULL;
    if (meta & META_INLINE) {
        *k = w;
        *kl = meta_klen(meta);
        return true;
    }
    if (meta & META_BAG)
        r = as_bag(w[0])->r[0];
    else if (live(as_rec(w[0])))
        r = as_rec(w[0]);
    if (!r)
        return false;
    *k = ets_rec_key(r);
    *kl = r->klen;
    return true;
}

/* Stripe lock of h held, a resize in progress: gives the key's slot in b
 * the content (meta, w), claiming one if the key is new there. */
static void mirror(ets_table *t, harr *b, uint64_t h, const void *k, size_t kl, uint32_t meta,
                   const uint64_t *w)
{
    hash_tab *ht = HT(t);
    long reuse;
    size_t end;
    long i = wfind(b, h, k, kl, &reuse, &end);
    if (i >= 0) {
        slot_store(&b->s[i], meta, w);
        return;
    }
    const void *k2;
    size_t kl2;
    if (!content_key(meta, w, &k2, &kl2))
        return; /* a delete of a key b does not hold */
    for (size_t j = end; j < b->nslots && reuse < 0; j++) {
        uint64_t zero = 0;
        /* As in hash_put's claim. */
        if (atomic_compare_exchange_strong_explicit(&b->s[j].hash, &zero, h, memory_order_acq_rel,
                                                    memory_order_acquire))
            reuse = (long)j;
    }
    if (reuse < 0) {
        /* Relaxed: read by the migrator under every stripe lock. */
        atomic_store_explicit(&ht->mig_failed, true, memory_order_relaxed);
        return;
    }
    ht->mig_claimed[h & t->stripe_mask]++; /* the stripe's own count, its lock held */
    slot_store(&b->s[reuse], meta, w);
}

/* Writers, the key's stripe lock held, s in the current array: replaces the
 * slot's content, and while a resize is in progress gives the key the same
 * content in the new array when the key is already there (migrate). */
static void slot_set(ets_table *t, hslot *s, uint32_t meta, const uint64_t *w)
{
    hash_tab *ht = HT(t);
    harr *b = ht->mig; /* stable under our stripe lock */
    if (__builtin_expect(!b, 1)) {
        slot_store(s, meta, w);
        return;
    }
    uint32_t om = atomic_load_explicit(&s->meta, memory_order_relaxed); /* locked */
    uint64_t ow[HW];
    locked_words(s, ow);
    slot_store(s, meta, w);
    const harr *a = atomic_load_explicit(&ht->pub.arr, memory_order_relaxed); /* locked */
    uint64_t h = atomic_load_explicit(&s->hash, memory_order_relaxed);
    if (home(a, h) >= ht->mig_upto)
        return; /* the migration copies it later, as it is then */
    const void *k;
    size_t kl;
    if (content_key(meta, w, &k, &kl) || content_key(om, ow, &k, &kl))
        mirror(t, b, h, k, kl, meta, w);
}

static void lock_all_raw(ets_table *t)
{
    for (unsigned i = 0; i <= t->stripe_mask; i++)
        ets_stripe_lock(&t->stripes[i]);
}

static void unlock_all(ets_table *t)
{
    for (unsigned i = t->stripe_mask + 1; i-- > 0;)
        ets_stripe_unlock(&t->stripes[i]);
}

/* Every stripe lock, with no resize in progress: what a writer of several
 * keys at once needs (it may write any slot, so none may be half moved). A
 * resize in progress is waited out with no lock held. */
static __attribute__((unused)) void lock_all(ets_table *t)
{
    hash_tab *ht = HT(t);
    for (;;) {
        lock_all_raw(t);
        if (!ht->mig) /* stable: all locks held */
            return;
        unlock_all(t);
        sched_yield(); /* the migrating writer holds no lock between its steps */
    }
}

static inline bool slot_live(const hslot *s)
{
    return (atomic_load_explicit(&s->meta, memory_order_relaxed) & META_INLINE) ||
           live(slot_rec(s));
}

/* Copies the live slots of a into b, a fresh array of cap slots (NULL: a
 * new one is made here); NULL, with b freed, when one cluster runs off the
 * end (the caller doubles cap) or memory is short. All stripe locks are
 * held: nothing changes in a. */
static __attribute__((unused)) harr *rehash(ets_table *t, const harr *a, size_t cap, harr *b)
{
    if (!b && !(b = harr_new(cap, a->gen + 1)))
        return NULL;
    long claimed[ETS_STRIPES_MAX] = {0};
    for (size_t i = 0; i < a->nslots; i++) {
        const hslot *s = &a->s[i];
        /* a is read in order, b at random: start the miss on the slot that
         * a later key will land in while this one is copied (no branch: an
         * empty slot's hash 0 prefetches b's first slot, harmlessly). */
        size_t ahead = i + REHASH_AHEAD < a->nslots ? i + REHASH_AHEAD : i;
        __builtin_prefetch(
            &b->s[home(b, atomic_load_explicit(&a->s[ahead].hash, memory_order_relaxed))], 1);
        uint64_t h = atomic_load_explicit(&s->hash, memory_order_relaxed);
        if (!h || !slot_live(s))
            continue;
        size_t j = home(b, h);
        while (j < b->nslots && atomic_load_explicit(&b->s[j].hash, memory_order_relaxed))
            j++;
        if (j == b->nslots) {
            harr_free(b);
            return NULL;
        }
        hslot *d = &b->s[j];
        /* Relaxed: b is published by the release store of arr. */
        atomic_store_explicit(&d->hash, h, memory_order_relaxed);
        atomic_store_explicit(&d->meta, atomic_load_explicit(&s->meta, memory_order_relaxed),
                              memory_order_relaxed);
        for (int k = 0; k < HW; k++)
            atomic_store_explicit(&d->w[k], atomic_load_explicit(&s->w[k], memory_order_relaxed),
                                  memory_order_relaxed);
        claimed[h & t->stripe_mask]++;
    }
    /* Relaxed: read under the stripe locks, or as an estimate (want_grow). */
    for (unsigned i = 0; i <= t->stripe_mask; i++)
        atomic_store_explicit(&t->stripes[i].claimed, claimed[i], memory_order_relaxed);
    return b;
}

/* Load at most a half after a resize, so probes stay short while slots are
 * whole cache lines: the slots a resize gives nlive live keys. */
static size_t cap_for(size_t nlive)
{
    size_t cap = HASH_MIN_CAP;
    while (cap < (nlive + 1) * 2)
        cap *= 2;
    return cap;
}

/* ---- the next array, made ahead ---------------------------------------------
 *
 * A resize of a big table used to map and populate its new array there and
 * then, on the inserting thread, where page faults took a large share of a run
 * of fresh inserts (perf/NOTES.md, 2026-12-04 ETS next array). So a table whose
 * next array will be mmapped maps it ahead, unpopulated (address space only),
 * registers it with the populate-ahead thread (runtime/sched/ahead.h), which
 * fills it on an idle core, and the resize populates only what the thread has
 * not reached.
 *
 * Memory is asked for in proportion to progress. An array's interval runs
 * from cap / 4 claimed slots (the load a growing resize leaves) to cap / 2
 * (the next resize), in HASH_PREP_STEPS steps. At step HASH_PREP_AT one
 * insert maps the next array; from then on the thread is asked for
 * HASH_PREP_LEAD steps' share of it beyond the steps done (all of it from
 * HASH_PREP_STEPS - HASH_PREP_LEAD on), and each insert that crosses a step
 * (prep_mark, in want_grow) extends the ask. The thread needs about two
 * thirds of a single writer's time between two resizes (populating
 * 2 cap * 32 B against cap / 4 inserts), so it keeps up with
 * the ask and the lead only covers its wake-up and a step. A table that
 * stops growing holds the part asked so far: (steps + lead) / 16 of its next
 * array, where it used to hold all of it from 3/8 load on; one whose live
 * objects fall back under cap / 4 (mass deletes) gives it back at once
 * (hash_del), since the resize would then pick a smaller array anyway.
 * A resize's own peak (current plus next array) is what it was. Only while
 * the runtime runs: without the thread preparing gains nothing. The steps
 * below were chosen by measurement against other choices (perf/NOTES.md,
 * 2026-12-04 ETS next array). */
#define HASH_PREP_STEPS 16 /* steps from cap / 4 claimed slots to cap / 2 */
#define HASH_PREP_AT 2     /* the step at which the next array is mapped */
#define HASH_PREP_LEAD 1   /* steps of it asked beyond those done */
/* The most slot memory prepared for one table. What a table that stops
 * growing holds is speculation, so it is bounded in absolute terms too: a
 * bigger next array is mapped and populated by its resize, as before
 * preparing existed, at the cost of that one insert's faults (perf/NOTES.md,
 * 2026-12-04 ETS next array). */
#define HASH_PREP_MAX_SLOTS ((size_t)2 << 20)

struct hprep {
    struct ot__ahead ah; /* registered with the thread: a stable address */
    void *base;          /* what map_array returned */
    size_t mapped, cap;
};

/* Unregisters p, whose array is about to be unmapped: ot__ahead_fini
 * returns once the thread no longer touches it. */
static void prep_done(hprep *p)
{
    ot__ahead_fini(&p->ah);
    free(p);
}

/* No lock: unregisters and unmaps a prepared array that no resize took. */
static void prep_release(hprep *p)
{
    if (!p)
        return;
    void *base = p->base;
    size_t mapped = p->mapped;
    prep_done(p); /* before munmap: the thread may be populating it */
    munmap(base, mapped);
}

/* No lock held: the prepared array, populated now where the thread has not
 * been, as the array of a's resize. It stays registered until it is freed
 * (harr_free): all of it is claimed now, so the thread starts nothing more
 * on it, but a stretch it has in flight may still be running, and the
 * resize does not wait for a SCHED_IDLE thread. Populating never changes a
 * page, so the copy may write meanwhile. */
static harr *prep_take(hprep *p, const harr *a)
{
    /* best effort, as map_array's populate: a page that could not be had
     * faults in when the copy touches it */
    (void)ot__ahead_use(&p->ah, p->mapped, 0);
    harr *b = harr_at(p->base, p->mapped, p->cap, a->gen + 1);
    b->prep = p;
    return b;
}

/* Claimed slots at step s of a's interval. */
static inline size_t prep_step_at(const harr *a, size_t s)
{
    return a->cap / 4 + a->cap / 4 / HASH_PREP_STEPS * s;
}

/* The first mark of a fresh array: its prepare step, or its resize when its
 * next array would not be mmapped (then nothing is prepared). */
static size_t prep_mark_for(const harr *a)
{
    return harr_bytes(a->cap * 2) >= HASH_MAP_MIN && a->cap * 2 <= HASH_PREP_MAX_SLOTS
               ? prep_step_at(a, HASH_PREP_AT)
               : a->cap / 2;
}

/* Moves the mark up to m (never down: two stripes may step at once). */
static void prep_mark_raise(hash_tab *ht, size_t m)
{
    /* Relaxed: a stale mark costs one sum or one step later than due. */
    size_t cur = atomic_load_explicit(&ht->prep_mark, memory_order_relaxed);
    while (cur < m && !atomic_compare_exchange_weak_explicit(&ht->prep_mark, &cur, m,
                                                             memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

/* Asks the thread for p's share at a's progress `used` (claimed slots);
 * returns the mark of the next step (cap / 2 once all of it is asked).
 * Lock-free, no wait on the thread: a CAS, and a futex wake if it sleeps. */
static size_t prep_ask(hprep *p, const harr *a, size_t used)
{
    size_t s = used > a->cap / 4 ? (used - a->cap / 4) / (a->cap / 4 / HASH_PREP_STEPS) : 0;
    size_t want = s + HASH_PREP_LEAD < HASH_PREP_STEPS ? s + HASH_PREP_LEAD : HASH_PREP_STEPS;
    (void)ot__ahead_use(&p->ah, 0, p->mapped / HASH_PREP_STEPS * want);
    return want < HASH_PREP_STEPS ? prep_step_at(a, s + 1) : a->cap / 2;
}

/* Slots claimed in the current array. */
static size_t used_slots(ets_table *t)
{
    size_t used = 0;
    /* Relaxed: exact under all the stripe locks, else an estimate. */
    for (unsigned i = 0; i <= t->stripe_mask; i++)
        used += (size_t)atomic_load_explicit(&t->stripes[i].claimed, memory_order_relaxed);
    return used;
}

/* The slots the resize of a will likely want: the live keys now plus the
 * claims left until it, as new keys (a bag's claimed slots all count as
 * live, so its guess is the doubling). */
static size_t prep_cap(ets_table *t, const harr *a)
{
    size_t used = used_slots(t);
    size_t nlive = used;
    if (t->type == OT_ETS_SET && ets__size(t) < nlive)
        nlive = ets__size(t);
    size_t left = a->cap / 2 + 1 > used ? a->cap / 2 + 1 - used : 0;
    return cap_for(nlive + left);
}

/* No lock held, after an insert crossed the prepare point of a (want_grow):
 * maps a's next array and asks the thread for the share due. The first
 * insert to come tries, once per array; the array is installed under every
 * stripe lock, which serialises it with resize (hash_destroy comes after a
 * grace period, when no insert is left). Mapping and registering (a mutex
 * the SCHED_IDLE thread takes) happen with no lock held. */
static void prepare(ets_table *t, const harr *a)
{
    hash_tab *ht = HT(t);
    unsigned want = a->gen + 1;
    /* Relaxed: this only elects the one insert that tries; the array itself
     * is handed over under the stripe locks. Never moves back to an older
     * array's gen (an insert that saw a before a resize). */
    unsigned g = atomic_load_explicit(&ht->prep_gen, memory_order_relaxed);
    if ((int)(g - want) >= 0 || !atomic_compare_exchange_strong_explicit(
                                     &ht->prep_gen, &g, want, memory_order_relaxed,
                                     memory_order_relaxed))
        return;
    hprep *p = NULL;
    size_t cap = prep_cap(t, a);
    size_t size = harr_bytes(cap);
    /* no populate-ahead thread without schedulers */
    if (ot_schedulers() && size >= HASH_MAP_MIN && cap <= HASH_PREP_MAX_SLOTS &&
        (p = malloc(sizeof *p))) {
        p->cap = cap;
        if ((p->base = map_array(size, &p->mapped, false))) {
            ot__ahead_init(&p->ah, p->base, p->mapped, 0);
        } else {
            free(p);
            p = NULL;
        }
    }
    /* Asked before it is installed: the thread starts at once. */
    size_t mark = p ? prep_ask(p, a, used_slots(t)) : a->cap / 2;
    lock_all_raw(t);
    if (atomic_load_explicit(&ht->pub.arr, memory_order_relaxed) == a && !ht->prep) {
        /* all locks held; without p, the mark moves on to the resize */
        prep_mark_raise(ht, mark);
        if (p) {
            ht->prep = p;
            atomic_store_explicit(&ht->prep_floor, a->cap / 4, memory_order_relaxed);
            p = NULL;
        }
    }
    unlock_all(t);
    prep_release(p); /* a resize came first */
}

/* No lock held, after a delete took the live objects under prep_floor:
 * gives the prepared array back, unless a resize or another delete has. */
static void prep_drop(ets_table *t)
{
    hash_tab *ht = HT(t);
    hprep *p = NULL;
    lock_all_raw(t);
    /* all locks held: the size is exact */
    if (ht->prep && ets__size(t) < atomic_load_explicit(&ht->prep_floor, memory_order_relaxed)) {
        p = ht->prep;
        ht->prep = NULL;
        atomic_store_explicit(&ht->prep_floor, 0, memory_order_relaxed);
        const harr *a = atomic_load_explicit(&ht->pub.arr, memory_order_relaxed);
        /* nothing left to step: looks again only for the resize (prep_gen
         * stays, so this array is not prepared again) */
        atomic_store_explicit(&ht->prep_mark, a->cap / 2, memory_order_relaxed);
    }
    unlock_all(t);
    prep_release(p);
}

#define MIG_CHUNK 4096 /* slots of the old array copied per hold of every stripe lock */

/* The longest a resize step has held every stripe lock, in CPU time of the
 * migrating thread (so preemption by other programs does not count): what
 * a writer waits at most on an idle machine, for perf/ets. */
_Atomic uint64_t ets__step_cpu_max_ns;
/* Tests: called by the migrating writer between two steps, no lock held. */
void (*ets__mig_step_hook)(void);

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Every stripe lock held: copies the live keys of a whose home lies in
 * [from, to) into b, where slot to - 1 is empty (or to is the end), so they
 * all sit in [from, to) (the opening paragraph). false: b ran out of slots. */
static bool mig_copy(ets_table *t, const harr *a, harr *b, size_t from, size_t to)
{
    hash_tab *ht = HT(t);
    for (size_t i = from; i < to; i++) {
        const hslot *s = &a->s[i];
        /* As in rehash. */
        size_t ahead = i + REHASH_AHEAD < to ? i + REHASH_AHEAD : i;
        __builtin_prefetch(
            &b->s[home(b, atomic_load_explicit(&a->s[ahead].hash, memory_order_relaxed))], 1);
        uint64_t h = atomic_load_explicit(&s->hash, memory_order_relaxed);
        if (!h || home(a, h) < from || !slot_live(s))
            continue; /* empty, dead, or copied with an earlier step */
        size_t j = home(b, h);
        while (j < b->nslots && atomic_load_explicit(&b->s[j].hash, memory_order_relaxed))
            j++;
        if (j == b->nslots)
            return false;
        hslot *d = &b->s[j];
        /* Relaxed: b is seen by writers under the stripe locks we hold, by
         * readers only after the release store of arr. */
        atomic_store_explicit(&d->hash, h, memory_order_relaxed);
        atomic_store_explicit(&d->meta, atomic_load_explicit(&s->meta, memory_order_relaxed),
                              memory_order_relaxed);
        for (int k = 0; k < HW; k++)
            atomic_store_explicit(&d->w[k], atomic_load_explicit(&s->w[k], memory_order_relaxed),
                                  memory_order_relaxed);
        ht->mig_claimed[h & t->stripe_mask]++;
    }
    return true;
}

/* Grows (or cleans out tombstones of) the array `seen`, unless another writer
 * has replaced it or is already doing so; force: the last insert ran off the
 * end, and waits for a resize in progress. No stripe lock is held while the
 * new array is made (mapped and populated, or the prepared one taken and
 * finished), nor between the steps that fill it: each step holds every
 * stripe lock for MIG_CHUNK slots of the old array. Meanwhile writers keep
 * writing the old array, which readers keep reading, and mirror each write
 * of a key already copied into the new one (slot_set), so the new array is
 * whole when the last step publishes it. One writer migrates at a time. */
static int resize(ets_table *t, harr *seen, bool force)
{
    hash_tab *ht = HT(t);
    bool no = false;
    /* Acquire/release: the previous migrator's stores to ht are seen. */
    if (!atomic_compare_exchange_strong_explicit(&ht->migrating, &no, true, memory_order_acquire,
                                                 memory_order_relaxed)) {
        while (force && atomic_load_explicit(&ht->pub.arr, memory_order_acquire) == seen &&
               atomic_load_explicit(&ht->migrating, memory_order_acquire))
            sched_yield(); /* it holds no lock between its steps */
        return 0;
    }
    harr *a = atomic_load_explicit(&ht->pub.arr, memory_order_acquire);
    int rc = 0;
    if (a != seen)
        goto out;
    /* An estimate (no lock): a set's size, or a bag's live slots. */
    size_t nlive = 0;
    if (t->type == OT_ETS_SET)
        nlive = ets__size(t);
    else
        for (size_t i = 0; i < a->nslots; i++)
            nlive += slot_live(&a->s[i]);
    size_t cap = cap_for(nlive);
    if (force && cap <= a->cap)
        cap = a->cap * 2;
    for (;;) {
        lock_all_raw(t);
        hprep *p = ht->prep;
        ht->prep = NULL;
        atomic_store_explicit(&ht->prep_floor, 0, memory_order_relaxed);
        /* nothing to prepare or grow while this runs (want_grow) */
        atomic_store_explicit(&ht->prep_mark, SIZE_MAX / 4, memory_order_relaxed);
        unlock_all(t);
        harr *b = NULL;
        if (p && p->cap == cap) {
            b = prep_take(p, a);
            p = NULL;
        }
        prep_release(p);
        if (!b && !(b = harr_new(cap, a->gen + 1))) {
            rc = -ENOMEM;
            break;
        }
        atomic_store_explicit(&ht->mig_failed, false, memory_order_relaxed);
        lock_all_raw(t);
        if (atomic_load_explicit(&ht->pub.arr, memory_order_relaxed) != a) {
            unlock_all(t); /* a writer of several keys grew it meanwhile */
            harr_free(b);
            goto out;
        }
        memset(ht->mig_claimed, 0, sizeof ht->mig_claimed);
        ht->mig_upto = 0;
        ht->mig = b;
        unlock_all(t);
        for (size_t from = 0;;) {
            uint64_t c0 = thread_cpu_ns();
            lock_all_raw(t);
            size_t to = from + MIG_CHUNK;
            if (to >= a->cap)
                to = a->nslots;
            while (to < a->nslots && atomic_load_explicit(&a->s[to - 1].hash, memory_order_relaxed))
                to++;
            /* Relaxed: set by writers under a stripe lock we now hold. */
            if (atomic_load_explicit(&ht->mig_failed, memory_order_relaxed) ||
                !mig_copy(t, a, b, from, to)) {
                ht->mig = NULL;
                unlock_all(t);
                harr_free(b); /* no reader ever saw it, no writer holds it now */
                break;
            }
            ht->mig_upto = to;
            if (to == a->nslots) {
                for (unsigned i = 0; i <= t->stripe_mask; i++) /* relaxed: as in rehash */
                    atomic_store_explicit(&t->stripes[i].claimed, ht->mig_claimed[i],
                                          memory_order_relaxed);
                atomic_store_explicit(&ht->prep_mark, prep_mark_for(b), memory_order_relaxed);
                /* Pairs with the readers' acquire load of arr: the slots are visible. */
                atomic_store_explicit(&ht->pub.arr, b, memory_order_release);
                ht->mig = NULL;
                unlock_all(t);
                /* Not counted against the reclamation budget (qsbr.c): the
                 * old arrays waiting are at most the table's own size (one
                 * per doubling), and no writer should wait a grace period
                 * for a resize another one made. */
                ets__retire(&a->rcu, harr_free_cb, 0);
                goto out;
            }
            unlock_all(t);
            if (ets__mig_step_hook)
                ets__mig_step_hook();
            uint64_t c = thread_cpu_ns() - c0;
            /* Relaxed: a figure. */
            if (c > atomic_load_explicit(&ets__step_cpu_max_ns, memory_order_relaxed))
                atomic_store_explicit(&ets__step_cpu_max_ns, c, memory_order_relaxed);
            from = to;
        }
        if (cap > ((size_t)1 << 40)) {
            rc = -ENOMEM;
            break;
        }
        cap *= 2; /* a cluster ran off the end of b */
    }
    /* a stays, with nothing prepared (prep_gen says tried) */
    lock_all_raw(t);
    atomic_store_explicit(&ht->prep_mark, a->cap / 2, memory_order_relaxed);
    unlock_all(t);
out:
    atomic_store_explicit(&ht->migrating, false, memory_order_release); /* pairs with the CAS */
    return rc;
}

/* What an insert that claimed a slot does next (want_grow). */
enum { GROW_NO, GROW_PREPARE, GROW_NOW };

/* Stripe lock held, after claiming a slot: GROW_NOW when the array should
 * grow (more than half its slots claimed), GROW_PREPARE when its next array
 * should be mapped (prepare); a prepare step is taken here (prep_ask). Each
 * stripe checks its own share against the mark and sums all stripes only
 * when that share passes it, so inserts write no shared counter; between
 * two marks an insert reads one more word, on a line it reads anyway. */
static int want_grow(ets_table *t, const harr *a, ets_stripe *st)
{
    hash_tab *ht = HT(t);
    size_t stripes = t->stripe_mask + 1;
    /* Ours: only the holder of st's lock writes it; relaxed for the readers
     * of the sum below, which is an estimate. */
    long mine = atomic_load_explicit(&st->claimed, memory_order_relaxed) + 1;
    atomic_store_explicit(&st->claimed, mine, memory_order_relaxed);
    /* Relaxed: an estimate; writers hold a stripe lock (prep_mark_raise). */
    size_t mark = atomic_load_explicit(&ht->prep_mark, memory_order_relaxed);
    if ((size_t)mine * stripes <= mark)
        return GROW_NO;
    size_t used = used_slots(t);
    if (used * 2 > a->cap)
        return GROW_NOW;
    if (used <= mark)
        return GROW_NO;
    /* Relaxed: as in prepare; a stale answer costs one missed try. */
    if (atomic_load_explicit(&ht->prep_gen, memory_order_relaxed) != a->gen + 1)
        return GROW_PREPARE;
    /* Our lock keeps ht->prep in place (its writers hold them all); NULL
     * while the prepare that was elected maps it (it sets the mark). */
    if (ht->prep)
        prep_mark_raise(ht, prep_ask(ht->prep, a, used));
    return GROW_NO;
}

static inline long obj_bytes(const ets_rec *r) { return (long)ets_rec_size(r->klen, r->vlen); }

/* ---- bags ---------------------------------------------------------------------
 * A bag key's slot holds an hbag: its records in insertion order, never
 * changed once published. A write of the key builds the next version (the
 * record pointers copied, the records shared) and publishes it with one
 * slot store, then retires the old version; the records it dropped are
 * retired by the caller. */

static inline size_t bag_size(uint32_t n) { return sizeof(hbag) + n * sizeof(ets_rec *); }

static void bag_free_cb(ets_rhead *h)
{
    ets__reclaim_acquire();
    free(caa_container_of(h, hbag, rcu));
}

static void bag_retire(hbag *b) { ets__retire(&b->rcu, bag_free_cb, bag_size(b->n)); }

static hbag *bag_new(uint32_t n)
{
    hbag *b = malloc(bag_size(n));
    if (b)
        b->n = n;
    return b;
}

/* The slot words of a bag version. */
static inline uint32_t bag_words(hbag *b, uint64_t *w)
{
    w[0] = (uint64_t)(uintptr_t)b;
    w[1] = 0;
    return META_BAG;
}

/* Stripe lock held, a bag key already in slot s: adds r unless (bag) an
 * equal object is there (then r is freed). 0 or -ENOMEM (r freed). */
static int bag_add(ets_table *t, hslot *s, ets_rec *r)
{
    hbag *old = as_bag(rec_word(slot_rec(s))); /* locked */
    if (t->type == OT_ETS_BAG)
        for (uint32_t j = 0; j < old->n; j++)
            if (ets__val_equal(ets_rec_val(old->r[j]), old->r[j]->vlen, ets_rec_val(r), r->vlen)) {
                free(r); /* never published */
                return 0;
            }
    hbag *b = old->n < UINT32_MAX ? bag_new(old->n + 1) : NULL;
    if (!b) {
        free(r);
        return -ENOMEM;
    }
    memcpy(b->r, old->r, old->n * sizeof *b->r);
    b->r[old->n] = r;
    uint64_t w[HW];
    slot_set(t, s, bag_words(b, w), w);
    bag_retire(old);
    ets_count_locked(t, r->hash, 1, obj_bytes(r));
    return 0;
}

/* The home slot is most likely a cache miss in a big table: a writer starts
 * it before its stripe lock's locked instruction, which later loads wait for
 * (the array read here is re-read under the lock). */
static inline void prefetch_home(const htab *ht, uint64_t h)
{
    const harr *a = atomic_load_explicit(&ht->arr, memory_order_acquire);
    __builtin_prefetch(&a->s[home(a, h)], 1);
}

/* Under the key's stripe lock: its live slot in the current array, or NULL. */
static hslot *locked_slot(ets_table *t, const void *k, size_t kl, uint64_t h)
{
    harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire);
    long reuse;
    size_t end;
    long i = wfind(a, h, k, kl, &reuse, &end);
    return i >= 0 ? &a->s[i] : NULL;
}

/* A record holding the inline object of slot words w (key k). */
static inline ets_rec *rec_of_inline(const void *k, size_t kl, const uint64_t *w, uint32_t meta,
                                     uint64_t h)
{
    return ets__rec_new(k, kl, (const unsigned char *)w + ets_pad8(kl), meta_vlen(meta), h);
}

static int hash_put(ets_table *t, const void *k, size_t kl, const void *v, size_t vl, uint64_t h,
                    bool new_only, ets_vec *out)
{
    htab *ht = H(t);
    uint64_t w[HW], kc[HW];
    uint32_t meta = 0;
    ets_rec *r = NULL;
    /* The key the locked walk compares is ours, never the caller's: the
     * record's, or a copy of an inline one (ets_int.h's ETS_STACK_NEED). */
    if (fits(t, kl, vl)) {
        meta = pack(w, k, kl, v, vl);
        memcpy(kc, k, kl);
        k = kc;
    } else if (!(r = ets__rec_new(k, kl, v, vl, h))) {
        return -ENOMEM;
    } else {
        k = ets_rec_key(r);
    }
    long bytes = r ? obj_bytes(r) : 0;
    ets_stripe *st = ets_stripe_of(t, h);
    prefetch_home(ht, h);
    for (;;) {
        ets_stripe_lock(st);
        harr *a = atomic_load_explicit(&ht->arr, memory_order_acquire);
        long reuse;
        size_t end;
        long i = wfind(a, h, k, kl, &reuse, &end);
        if (i >= 0) {
            int rc = 0;
            hslot *s = &a->s[i];
            if (new_only) {
                rc = -EEXIST;
                free(r);
            } else if (t->type == OT_ETS_SET) {
                ets_rec *old = slot_rec(s); /* locked */
                slot_set(t, s, meta ? meta : rec_words(t, r, w), w);
                ets_count_locked(t, h, 0, bytes - (live(old) ? obj_bytes(old) : 0));
                if (live(old))
                    ets__vec_push(out, old);
            } else {
                rc = bag_add(t, s, r);
            }
            ets_stripe_unlock(st);
            return rc;
        }
        int grow = GROW_NO;
        if (reuse < 0) {
            long c = -1;
            for (size_t j = end; j < a->nslots && c < 0; j++) {
                uint64_t zero = 0;
                /* Pairs with the readers' acquire loads of the hash; writers of
                 * other stripes race for the same empty slot, the loser moves
                 * on. */
                if (atomic_compare_exchange_strong_explicit(&a->s[j].hash, &zero, h,
                                                            memory_order_acq_rel,
                                                            memory_order_acquire))
                    c = (long)j;
            }
            if (c < 0) {
                ets_stripe_unlock(st);
                int rc = resize(t, a, true);
                if (rc) {
                    free(r);
                    return rc;
                }
                continue;
            }
            reuse = c;
            grow = want_grow(t, a, st);
        }
        if (t->type != OT_ETS_SET) {
            hbag *b = bag_new(1);
            if (!b) { /* the claimed slot stays empty content: a tombstone */
                slot_set(t, &a->s[reuse], 0, (const uint64_t[HW]){rec_word(TOMB), 0});
                ets_stripe_unlock(st);
                free(r);
                return -ENOMEM;
            }
            b->r[0] = r;
            meta = bag_words(b, w);
        }
        slot_set(t, &a->s[reuse], meta ? meta : rec_words(t, r, w), w);
        ets_count_locked(t, h, 1, bytes);
        ets_stripe_unlock(st);
        if (grow == GROW_NOW)
            resize(t, a, false); /* the insert is done; a failed grow retries later */
        else if (grow == GROW_PREPARE)
            prepare(t, a);
        return 0;
    }
}

/* ot_ets_insert's common case: a set's inline object whose key fits one
 * word (kw, its ets_key_word), value word vw. hash_put's walk and claim with
 * the key in a register and nothing to retire, short enough that the next
 * insert's miss on its home slot can start while this one's is pending.
 * -EAGAIN, changing nothing, where hash_put has more to decide: a slot of
 * the key's hash holding a record or a tombstone, or a cluster that runs off
 * the end. */
int ets__hash_put_small(ets_table *t, uint64_t kw, uint32_t meta, uint64_t vw, uint64_t h)
{
    htab *ht = H(t);
    ets_stripe *st = ets_stripe_of(t, h);
    prefetch_home(ht, h);
    const uint64_t w[HW] = {kw, vw};
    ets_stripe_lock(st);
    harr *a = atomic_load_explicit(&ht->arr, memory_order_acquire);
    for (size_t i = home(a, h); i < a->nslots; i++) {
        hslot *s = &a->s[i];
        /* As in wfind. */
        uint64_t sh = atomic_load_explicit(&s->hash, memory_order_acquire);
        if (sh == 0) {
            uint64_t zero = 0;
            /* As in hash_put's claim. A loser sees another stripe's hash
             * (never ours: our stripe is locked) and walks on. */
            if (!atomic_compare_exchange_strong_explicit(&s->hash, &zero, h, memory_order_acq_rel,
                                                         memory_order_acquire))
                continue;
            slot_set(t, s, meta, w);
            ets_count_locked(t, h, 1, 0);
            int grow = want_grow(t, a, st);
            ets_stripe_unlock(st);
            if (grow == GROW_NOW)
                resize(t, a, false); /* as in hash_put */
            else if (grow == GROW_PREPARE)
                prepare(t, a);
            return 0;
        }
        if (sh != h)
            continue;
        /* Content of our stripe's keys: stable under our lock. */
        uint32_t m = atomic_load_explicit(&s->meta, memory_order_relaxed);
        if (!(m & META_INLINE))
            break;
        if (meta_klen(m) == meta_klen(meta) &&
            atomic_load_explicit(&s->w[0], memory_order_relaxed) == kw) {
            slot_set(t, s, meta, w); /* inline for inline: no bytes change hands */
            ets_stripe_unlock(st);
            return 0;
        }
    }
    ets_stripe_unlock(st);
    return -EAGAIN;
}

/* Stripe lock held, a bag key in slot s: removes its objects equal to v
 * (every one when v is NULL) in one store; how many, or -ENOMEM. */
static int bag_del(ets_table *t, hslot *s, const void *v, size_t vl, long *bytes, ets_vec *out)
{
    hbag *old = as_bag(rec_word(slot_rec(s))); /* locked */
    uint32_t keep = 0;
    if (v)
        for (uint32_t j = 0; j < old->n; j++)
            keep += !ets__val_equal(ets_rec_val(old->r[j]), old->r[j]->vlen, v, vl);
    if (keep == old->n)
        return 0;
    hbag *b = NULL;
    if (keep && !(b = bag_new(keep)))
        return -ENOMEM;
    uint32_t i = 0;
    for (uint32_t j = 0; j < old->n; j++) {
        ets_rec *c = old->r[j];
        if (b && !ets__val_equal(ets_rec_val(c), c->vlen, v, vl))
            b->r[i++] = c;
    }
    uint64_t w[HW] = {rec_word(TOMB), 0};
    slot_set(t, s, b ? bag_words(b, w) : 0, w);
    for (uint32_t j = 0; j < old->n; j++) {
        ets_rec *c = old->r[j];
        if (!b || ets__val_equal(ets_rec_val(c), c->vlen, v, vl)) {
            *bytes += obj_bytes(c);
            ets__vec_push(out, c);
        }
    }
    bag_retire(old);
    return (int)(old->n - keep);
}

static int hash_del(ets_table *t, const void *k, size_t kl, uint64_t h, const void *v, size_t vl,
                    bool want, ets_vec *out)
{
    ets_stripe *st = ets_stripe_of(t, h);
    ets_stripe_lock(st);
    hslot *s = locked_slot(t, k, kl, h);
    int n = 0;
    long bytes = 0;
    if (s) {
        uint32_t meta = atomic_load_explicit(&s->meta, memory_order_relaxed); /* locked */
        if (meta & META_INLINE) {
            uint64_t w[HW];
            locked_words(s, w);
            const unsigned char *val = (const unsigned char *)w + ets_pad8(kl);
            if (!v || (meta_vlen(meta) == vl && memcmp(val, v, vl) == 0)) {
                if (want) {
                    ets_rec *c = rec_of_inline(k, kl, w, meta, h);
                    if (c)
                        ets__vec_push(out, c);
                }
                slot_set(t, s, 0, (const uint64_t[HW]){rec_word(TOMB), 0});
                n = 1;
            }
        } else if (meta & META_BAG) {
            n = bag_del(t, s, v, vl, &bytes, out);
        } else {
            ets_rec *c = slot_rec(s); /* locked */
            if (!v || ets__val_equal(ets_rec_val(c), c->vlen, v, vl)) {
                slot_set(t, s, 0, (const uint64_t[HW]){rec_word(TOMB), 0});
                n = 1;
                bytes = obj_bytes(c);
                ets__vec_push(out, c);
            }
        }
        if (n < 0) {
            ets_stripe_unlock(st);
            return n;
        }
        ets_count_locked(t, h, -n, -bytes);
    }
    /* A prepared array held while the live objects fall under its floor is
     * given back (prep_drop). As in want_grow: our stripe's share first, on
     * lines this delete has read or written, the sum only past it. */
    size_t floor = atomic_load_explicit(&HT(t)->prep_floor, memory_order_relaxed);
    bool drop = n && floor &&
                (size_t)atomic_load_explicit(&st->size, memory_order_relaxed) *
                        (t->stripe_mask + 1) < floor &&
                ets__size(t) < floor;
    ets_stripe_unlock(st);
    if (drop)
        prep_drop(t);
    return n;
}

/* Moves the key's inline object out to a record, so that counters are added
 * where a resize cannot lose them (see the opening paragraph). */
static int promote(ets_table *t, const void *k, size_t kl, uint64_t h)
{
    ets_stripe *st = ets_stripe_of(t, h);
    ets_stripe_lock(st);
    hslot *s = locked_slot(t, k, kl, h);
    int rc = 0;
    if (s) {
        uint32_t meta = atomic_load_explicit(&s->meta, memory_order_relaxed); /* locked */
        if (meta & META_INLINE) {
            uint64_t w[HW];
            locked_words(s, w);
            ets_rec *r = rec_of_inline(k, kl, w, meta, h);
            if (r) {
                slot_set(t, s, rec_words(t, r, w), w);
                ets_count_locked(t, h, 0, obj_bytes(r));
            } else {
                rc = -ENOMEM;
            }
        }
    }
    ets_stripe_unlock(st);
    return rc;
}

static int hash_counter(ets_table *t, const void *k, size_t kl, uint64_t h, size_t off,
                        int64_t incr, int64_t *result)
{
    for (;;) {
        harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire); /* as in hash_get */
        ets_obj o;
        if (!find(a, h, k, kl, &o, true))
            return -ENOENT;
        if (o.vlen < off + 8)
            return -EINVAL;
        if (o.rec) {
            /* As in ets__rec_add, with the length the slot gave; a sealed
             * record (a take unlinked it) is looked for again. */
            if (ets_rec_add_live(o.rec, off, incr, result))
                return 0;
            continue;
        }
        int rc = promote(t, k, kl, h);
        if (rc)
            return rc;
    }
}

/* ---- walks ------------------------------------------------------------------ */

/* The view of slot s, or false when it holds nothing live. */
static bool slot_view(const hslot *s, uint64_t h, ets_obj *o)
{
    uint32_t meta;
    ets_rec *r;
    snap(s, &meta, &r, o->snap);
    if (meta & META_INLINE) {
        view_inline(o, meta, h);
        return true;
    }
    if (meta & META_BAG) {
        ets_obj_of_rec(o, as_bag(o->snap[0])->r[0]);
        return true;
    }
    if (!live(r))
        return false;
    ets_obj_of_rec(o, r);
    return true;
}

static int hash_fold(ets_table *t, ets_visit_fn fn, void *arg)
{
    harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire); /* as in hash_get */
    for (size_t i = 0; i < a->nslots; i++) {
        uint64_t h = atomic_load_explicit(&a->s[i].hash, memory_order_acquire);
        if (!h)
            continue;
        ets_obj o;
        uint32_t meta;
        ets_rec *r;
        snap(&a->s[i], &meta, &r, o.snap);
        if (meta & META_BAG) {
            hbag *b = as_bag(o.snap[0]); /* one version: each object once */
            for (uint32_t j = 0; j < b->n; j++) {
                ets_obj_of_rec(&o, b->r[j]);
                int rc = fn(&o, arg);
                if (rc)
                    return rc;
            }
            continue;
        }
        if (meta & META_INLINE)
            view_inline(&o, meta, h);
        else if (live(r))
            ets_obj_of_rec(&o, r);
        else
            continue;
        int rc = fn(&o, arg);
        if (rc)
            return rc;
    }
    return 0;
}

/* The least key above (h, k) in walk order (the least of all when k is
 * NULL), into *best. Keys above (h, k) live at or after home(h). Scanning
 * cluster by cluster (a cluster ends at an empty slot) is enough: a key past
 * an empty slot e has its home past e, so it sorts after every key of the
 * clusters before e. */
static bool walk_from(ets_table *t, const void *k, size_t kl, uint64_t h, ets_obj *best)
{
    harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire); /* as in hash_get */
    size_t i = k ? home(a, h) : 0;
    bool found = false;
    while (i < a->nslots) {
        for (; i < a->nslots; i++) {
            uint64_t sh = atomic_load_explicit(&a->s[i].hash, memory_order_acquire);
            if (sh == 0)
                break;
            ets_obj o;
            if (!slot_view(&a->s[i], sh, &o) || (k && order(&o, h, k, kl) <= 0))
                continue;
            if (!found || order(&o, best->hash, best->key, best->klen) < 0) {
                ets_obj_copy(best, &o);
                found = true;
            }
        }
        if (found)
            return true;
        while (i < a->nslots && atomic_load_explicit(&a->s[i].hash, memory_order_acquire) == 0)
            i++;
    }
    return false;
}

static bool hash_first(ets_table *t, ets_obj *o) { return walk_from(t, NULL, 0, 0, o); }

static bool hash_next(ets_table *t, const void *k, size_t kl, uint64_t h, ets_obj *o)
{
    return walk_from(t, k, kl, h, o);
}

/* The current array, and of a prepared one the part the thread has
 * claimed (populated, or being populated); its unasked rest is address
 * space only. */
static size_t hash_overhead(ets_table *t)
{
    harr *a = atomic_load_explicit(&H(t)->arr, memory_order_acquire); /* as in hash_get */
    size_t n = sizeof(hash_tab) + sizeof(harr) + a->nslots * sizeof(hslot);
    ets_stripe_lock(&t->stripes[0]); /* keeps ht->prep in place (see hash_tab) */
    hprep *p = HT(t)->prep;
    if (p) {
        /* Relaxed: a figure, moved by the thread's claims. */
        size_t c = atomic_load_explicit(&p->ah.claimed, memory_order_relaxed);
        n += c < p->mapped ? c : p->mapped;
    }
    ets_stripe_unlock(&t->stripes[0]);
    return n;
}

/* ---- multi-object writes and in-place updates (ops.c) ----------------------- */

/* Every stripe lock held: grows a into a fresh array of cap slots (or more,
 * if a cluster runs off the end), as resize does; the prepared array it did
 * not take comes back in *drop, to release after the locks. NULL: a stays. */
static harr *grow_locked(ets_table *t, harr *a, size_t cap, hprep **drop)
{
    hash_tab *ht = HT(t);
    *drop = ht->prep; /* all locks held */
    ht->prep = NULL;
    atomic_store_explicit(&ht->prep_floor, 0, memory_order_relaxed);
    harr *b = NULL;
    if (*drop && (*drop)->cap == cap) {
        b = prep_take(*drop, a);
        *drop = NULL;
    }
    while (!(b = rehash(t, a, cap, b))) {
        if (cap > ((size_t)1 << 40)) {
            atomic_store_explicit(&ht->prep_mark, a->cap / 2, memory_order_relaxed);
            return NULL;
        }
        cap *= 2;
    }
    atomic_store_explicit(&ht->prep_mark, prep_mark_for(b), memory_order_relaxed);
    /* As in resize: pairs with the readers' acquire load of arr. */
    atomic_store_explicit(&ht->pub.arr, b, memory_order_release);
    ets__retire(&a->rcu, harr_free_cb, a->mapped ? a->mapped : harr_bytes(a->cap));
    return b;
}

/* What put_many stores for one item: inline words or a record, and for a
 * bag the one-record version that a new key starts with, made before any
 * lock is taken. */
typedef struct hitem {
    uint64_t w[HW];
    uint32_t meta;
    ets_rec *r;
    hbag *b;
} hitem;

/* ets:insert/2 with a list: every stripe lock for the whole write (OTP takes
 * the table's write lock), the table grown first to hold every item as a new
 * key, then each item stored as hash_put would. */
static int hash_put_many(ets_table *t, const ets_item *it, size_t n, bool new_only, ets_vec *out)
{
    hash_tab *ht = HT(t);
    hitem small[16], *p = n <= 16 ? small : malloc(n * sizeof *p);
    if (!p)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        p[i].r = NULL;
        p[i].b = NULL;
        p[i].meta = 0;
        if (fits(t, it[i].kl, it[i].vl))
            p[i].meta = pack(p[i].w, it[i].k, it[i].kl, it[i].v, it[i].vl);
        else if (!(p[i].r = ets__rec_new(it[i].k, it[i].kl, it[i].v, it[i].vl, it[i].h)))
            rc = -ENOMEM;
        else if (t->type != OT_ETS_SET && !(p[i].b = bag_new(1)))
            rc = -ENOMEM;
    }
    hprep *drop = NULL;
    uint64_t stripes = ets_items_stripes(t, it, n);
    size_t i = 0;
    if (rc)
        goto out;
    lock_all(t);
    harr *a = atomic_load_explicit(&ht->pub.arr, memory_order_relaxed); /* all locks held */
    size_t fresh = 0; /* keys not in the table (a key twice in the list counts twice) */
    for (size_t j = 0; j < n; j++) {
        long reuse;
        size_t end;
        fresh += wfind(a, it[j].h, it[j].k, it[j].kl, &reuse, &end) < 0;
    }
    if (new_only && fresh < n) {
        rc = -EEXIST;
        unlock_all(t);
        goto out;
    }
    size_t used = used_slots(t); /* exact: all locks held */
    if ((used + fresh) * 2 > a->cap) {
        harr *b = grow_locked(t, a, cap_for(used + fresh), &drop);
        if (!b) {
            unlock_all(t);
            rc = -ENOMEM;
            goto out;
        }
        a = b;
        used = used_slots(t);
    }
    ets_mseq_open_mask(t, stripes);
    for (; i < n; i++) {
        uint64_t h = it[i].h;
        long reuse;
        size_t end;
        long j = wfind(a, h, it[i].k, it[i].kl, &reuse, &end);
        ets_rec *r = p[i].r;
        long bytes = r ? obj_bytes(r) : 0;
        if (j >= 0 && t->type == OT_ETS_SET) {
            hslot *s = &a->s[j];
            ets_rec *old = slot_rec(s); /* locked */
            slot_set(t, s, p[i].meta ? p[i].meta : rec_words(t, r, p[i].w), p[i].w);
            ets_count_locked(t, h, 0, bytes - (live(old) ? obj_bytes(old) : 0));
            if (live(old))
                ets__vec_push(out, old);
            continue;
        }
        if (j >= 0) {
            free(p[i].b); /* the key has its version already */
            p[i].b = NULL;
            p[i].r = NULL; /* bag_add owns it: added, or freed */
            if ((rc = bag_add(t, &a->s[j], r)))
                break; /* memory exhausted half-way (see put_many) */
            continue;
        }
        if (reuse < 0) {
            for (size_t e = end; e < a->nslots && reuse < 0; e++) {
                uint64_t zero = 0;
                /* As in hash_put's claim (no other writer holds a lock). */
                if (atomic_compare_exchange_strong_explicit(&a->s[e].hash, &zero, h,
                                                            memory_order_acq_rel,
                                                            memory_order_acquire))
                    reuse = (long)e;
            }
            if (reuse < 0) {
                /* A cluster ran off the end: grow, then store this item. */
                hprep *d2;
                harr *b = grow_locked(t, a, a->cap * 2, &d2);
                if (d2)
                    drop = d2; /* then none came before: a grow leaves prep NULL */
                if (!b) {
                    rc = -ENOMEM;
                    break;
                }
                a = b;
                used = used_slots(t);
                i--;
                continue;
            }
            ets_stripe *st = ets_stripe_of(t, h);
            /* As in want_grow: ours, all locks held. */
            atomic_store_explicit(&st->claimed,
                                  atomic_load_explicit(&st->claimed, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            used++;
        }
        uint32_t meta = p[i].meta;
        if (p[i].b) {
            p[i].b->r[0] = r;
            meta = bag_words(p[i].b, p[i].w);
        } else if (!meta) {
            meta = rec_words(t, r, p[i].w);
        }
        slot_set(t, &a->s[reuse], meta, p[i].w);
        ets_count_locked(t, h, 1, bytes);
    }
    ets_mseq_close_mask(t, stripes);
    unlock_all(t);
out:
    for (; i < n; i++) {
        free(p[i].r); /* never published */
        free(p[i].b);
    }
    prep_release(drop);
    if (p != small)
        free(p);
    return rc;
}

static int hash_update(ets_table *t, const void *k, size_t kl, uint64_t h, ets_update_fn fn,
                       void *arg)
{
    ets_stripe *st = ets_stripe_of(t, h);
    ets_stripe_lock(st);
    hslot *s = locked_slot(t, k, kl, h);
    int rc = -ENOENT;
    if (s) {
        uint32_t meta = atomic_load_explicit(&s->meta, memory_order_relaxed); /* locked */
        ets_rec *r = NULL;
        if (meta & META_INLINE) {
            /* As promote: words change in place only in records. */
            uint64_t w[HW];
            locked_words(s, w);
            if ((r = rec_of_inline(k, kl, w, meta, h))) {
                slot_set(t, s, rec_words(t, r, w), w);
                ets_count_locked(t, h, 0, obj_bytes(r));
            } else {
                rc = -ENOMEM;
            }
        } else {
            r = slot_rec(s); /* locked; a set's: one record */
        }
        if (r)
            rc = fn(t, r, arg);
    }
    ets_stripe_unlock(st);
    return rc;
}

/* Every stripe lock and mseq for the whole clear; every live slot becomes
 * a tombstone and its records are retired; then the array shrinks. */
static void hash_clear(ets_table *t)
{
    htab *ht = H(t);
    lock_all(t);
    for (unsigned s = 0; s <= t->stripe_mask; s++)
        ets_mseq_open(t, s);
    harr *a = atomic_load_explicit(&ht->arr, memory_order_relaxed); /* all locks held */
    for (size_t i = 0; i < a->nslots; i++) {
        hslot *s = &a->s[i];
        if (!atomic_load_explicit(&s->hash, memory_order_relaxed) || !slot_live(s))
            continue;
        ets_rec *r = slot_rec(s); /* locked */
        bool bag = atomic_load_explicit(&s->meta, memory_order_relaxed) & META_BAG; /* locked */
        slot_set(t, s, 0, (const uint64_t[HW]){rec_word(TOMB), 0});
        if (bag) {
            hbag *b = as_bag(rec_word(r));
            for (uint32_t j = 0; j < b->n; j++)
                ets__retire_rec(b->r[j]);
            bag_retire(b);
        } else if (r) {
            ets__retire_rec(r);
        }
    }
    for (unsigned s = 0; s <= t->stripe_mask; s++) {
        /* Statistics (see ets_count); exact under all the locks. */
        atomic_store_explicit(&t->stripes[s].size, 0, memory_order_relaxed);
        atomic_store_explicit(&t->stripes[s].bytes, 0, memory_order_relaxed);
        ets_mseq_close(t, s);
    }
    unlock_all(t);
    if (a->cap > HASH_MIN_CAP)
        resize(t, a, false); /* tombstones out, back to the smallest array */
}

const ets_methods ets__hash_methods = {
    .init = hash_init,
    .destroy = hash_destroy,
    .get = hash_get,
    .put = hash_put,
    .del = hash_del,
    .counter = hash_counter,
    .fold = hash_fold,
    .first = hash_first,
    .last = hash_first,
    .next = hash_next,
    .prev = hash_next,
    .overhead = hash_overhead,
    .put_many = hash_put_many,
    .update = hash_update,
    .clear = hash_clear,
};
