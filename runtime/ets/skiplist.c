/* ordered_set: a lazy skiplist (Herlihy, Lev, Luchangco and Shavit, "A
 * Simple Optimistic Skiplist Algorithm", 2007) under QSBR.
 *
 * Invariants. Readers take no lock and write nothing: they follow next
 * pointers with acquire loads and accept a node only when it is linked (all
 * its levels are in) and not marked (being removed). Writers lock the nodes
 * whose next pointers they change, always in descending key order (level 0's
 * predecessor first, then the higher levels' smaller or equal ones), so they
 * cannot deadlock, and validate after locking that nothing changed under
 * them; writers of different keys lock different nodes. A removed node is
 * marked first, then unlinked from the top level down; its next pointers
 * stay as they were (no one changes a marked node's next), so a walk standing
 * on it continues to its old successor and every node that stays in the list
 * is visited once, in key order. The node's value record is replaced by a
 * release store under the node lock; nodes are freed after a grace period. */
#include "ets_int.h"

#include <sched.h>
#include <stdlib.h>

#define SL_LEVELS 24

typedef struct sl_node {
    ets_rhead rcu;
    ets_rec *_Atomic rec;
    _Atomic int lock;
    _Atomic bool marked, linked;
    int top;
    uint32_t klen;
    unsigned char *key;
    struct sl_node *_Atomic next[];
} sl_node;

static inline sl_node *HEAD(ets_table *t) { return t->impl; }

static inline int cmp(const sl_node *n, const void *k, size_t kl)
{
    return ets_keycmp(n->key, n->klen, k, kl);
}

static inline sl_node *nxt(sl_node *n, int l)
{
    /* Pairs with the release stores that link a node in or a victim out. */
    return atomic_load_explicit(&n->next[l], memory_order_acquire);
}

static inline bool visible(sl_node *n)
{
    /* Pairs with the release stores of linked (insert) and marked (remove). */
    return atomic_load_explicit(&n->linked, memory_order_acquire) &&
           !atomic_load_explicit(&n->marked, memory_order_acquire);
}

/* A critical section, as the hash tables' stripe locks (ets_int.h). */
static void nlock(sl_node *n)
{
    ot__crit_enter();
    unsigned spins = 0;
    /* Acquire pairs with the release in nunlock: the previous holder's
     * writes to this node are visible. */
    while (atomic_exchange_explicit(&n->lock, 1, memory_order_acquire)) {
        while (atomic_load_explicit(&n->lock, memory_order_relaxed)) {
            if (++spins > 64)
                sched_yield(); /* the holder may be preempted */
            else
                __builtin_ia32_pause();
        }
    }
}

static inline void nunlock(sl_node *n)
{
    atomic_store_explicit(&n->lock, 0, memory_order_release); /* pairs with nlock */
    ot__crit_exit();
}

static __thread uint64_t sl_rand;

static int random_top(void)
{
    if (!sl_rand)
        sl_rand = (uint64_t)(uintptr_t)&sl_rand * 0x9e3779b97f4a7c15ull | 1;
    sl_rand ^= sl_rand << 13;
    sl_rand ^= sl_rand >> 7;
    sl_rand ^= sl_rand << 17;
    int top = __builtin_ctzll(sl_rand | (1ull << 62)) / 2; /* p = 1/4 per level */
    return top < SL_LEVELS - 1 ? top : SL_LEVELS - 1;
}

static size_t node_size(int top, size_t kl)
{
    return sizeof(sl_node) + (size_t)(top + 1) * sizeof(sl_node *) + kl;
}

static sl_node *node_new(int top, const void *k, size_t kl)
{
    sl_node *n = malloc(node_size(top, kl));
    if (!n)
        return NULL;
    atomic_init(&n->rec, NULL);
    atomic_init(&n->lock, 0);
    atomic_init(&n->marked, false);
    atomic_init(&n->linked, false);
    n->top = top;
    n->klen = (uint32_t)kl;
    n->key = (unsigned char *)&n->next[top + 1];
    if (kl)
        memcpy(n->key, k, kl);
    for (int l = 0; l <= top; l++)
        atomic_init(&n->next[l], NULL);
    return n;
}

static void node_free_cb(ets_rhead *h)
{
    ets__reclaim_acquire();
    free(caa_container_of(h, sl_node, rcu));
}

static int sl_init(ets_table *t)
{
    sl_node *head = node_new(SL_LEVELS - 1, NULL, 0);
    if (!head)
        return -ENOMEM;
    atomic_store_explicit(&head->linked, true, memory_order_relaxed); /* not yet shared */
    t->impl = head;
    return 0;
}

static void sl_destroy(ets_table *t)
{
    sl_node *n = HEAD(t);
    while (n) {
        sl_node *next = atomic_load_explicit(&n->next[0], memory_order_relaxed); /* alone now */
        free(atomic_load_explicit(&n->rec, memory_order_relaxed));
        free(n);
        n = next;
    }
}

/* Writers: predecessors and successors of k at every level; the highest
 * level at which a node with key k was found, or -1. */
static int find(sl_node *head, const void *k, size_t kl, sl_node **preds, sl_node **succs)
{
    int found = -1;
    sl_node *pred = head;
    for (int l = SL_LEVELS - 1; l >= 0; l--) {
        sl_node *cur = nxt(pred, l);
        int c = 1;
        while (cur && (c = cmp(cur, k, kl)) < 0) {
            pred = cur;
            cur = nxt(pred, l);
        }
        if (found < 0 && cur && c == 0)
            found = l;
        preds[l] = pred;
        succs[l] = cur;
    }
    return found;
}

/* Readers: the node with key k, or NULL. */
static sl_node *search(sl_node *head, const void *k, size_t kl)
{
    sl_node *pred = head;
    for (int l = SL_LEVELS - 1; l >= 0; l--) {
        sl_node *cur = nxt(pred, l);
        int c = 1;
        while (cur && (c = cmp(cur, k, kl)) < 0) {
            pred = cur;
            cur = nxt(pred, l);
        }
        if (cur && c == 0)
            return cur;
    }
    return NULL;
}

static int sl_get(ets_table *t, const void *k, size_t kl, uint64_t h, ets_visit_fn fn, void *arg)
{
    sl_node *n = search(HEAD(t), k, kl);
    if (!n || !visible(n))
        return 0;
    ets_obj o;
    /* Pairs with the release store of a replaced record. */
    ets_obj_of_rec(&o, atomic_load_explicit(&n->rec, memory_order_acquire));
    fn(&o, arg);
    return 1;
}

static void unlock_preds(sl_node **preds, int upto)
{
    for (int l = 0; l <= upto; l++)
        if (l == 0 || preds[l] != preds[l - 1])
            nunlock(preds[l]);
}

/* Locks preds[0..top] (each distinct node once) and checks that each still
 * points at succs[l] and that neither is being removed (the successor may be:
 * it is the victim, when `removing`). Returns true with every lock held, or
 * false with none. */
static bool lock_and_validate(sl_node **preds, sl_node **succs, int top, bool removing)
{
    for (int l = 0; l <= top; l++) {
        sl_node *p = preds[l], *s = succs[l];
        if (l == 0 || p != preds[l - 1])
            nlock(p);
        bool ok = !atomic_load_explicit(&p->marked, memory_order_relaxed) && /* p locked */
                  (removing || !s || !atomic_load_explicit(&s->marked, memory_order_acquire)) &&
                  atomic_load_explicit(&p->next[l], memory_order_relaxed) == s;
        if (!ok) {
            unlock_preds(preds, l);
            return false;
        }
    }
    return true;
}

/* The key exists in node n: replace its record, unless n is going away. */
static int replace(ets_table *t, sl_node *n, ets_rec *r, ets_vec *out, bool *retry)
{
    nlock(n);
    if (atomic_load_explicit(&n->marked, memory_order_relaxed)) { /* n locked */
        nunlock(n);
        *retry = true;
        return 0;
    }
    ets_rec *old = atomic_load_explicit(&n->rec, memory_order_relaxed);
    /* Pairs with the readers' acquire load of rec. */
    atomic_store_explicit(&n->rec, r, memory_order_release);
    nunlock(n);
    ets_count(t, r->hash, 0,
              (long)ets_rec_size(r->klen, r->vlen) - (long)ets_rec_size(old->klen, old->vlen));
    ets__vec_push(out, old);
    return 0;
}

static int sl_put(ets_table *t, const void *k, size_t kl, const void *v, size_t vl, uint64_t h,
                  bool new_only, ets_vec *out)
{
    sl_node *preds[SL_LEVELS], *succs[SL_LEVELS];
    ets_rec *r = ets__rec_new(k, kl, v, vl, h);
    if (!r)
        return -ENOMEM;
    int top = random_top();
    sl_node *n = node_new(top, k, r->klen);
    if (!n) {
        free(r);
        return -ENOMEM;
    }
    atomic_init(&n->rec, r);
    for (;;) {
        int found = find(HEAD(t), k, r->klen, preds, succs);
        if (found >= 0) {
            sl_node *cur = succs[found];
            if (atomic_load_explicit(&cur->marked, memory_order_acquire)) {
                sched_yield(); /* its remover is unlinking it: wait for that */
                continue;
            }
            while (!atomic_load_explicit(&cur->linked, memory_order_acquire))
                __builtin_ia32_pause(); /* its inserter holds the locks: brief */
            if (new_only) {
                free(n);
                free(r);
                return -EEXIST;
            }
            bool retry = false;
            int rc = replace(t, cur, r, out, &retry);
            if (retry)
                continue; /* n still holds r, for the insert after the removal */
            free(n);
            return rc;
        }
        if (!lock_and_validate(preds, succs, top, false))
            continue;
        for (int l = 0; l <= top; l++)
            atomic_store_explicit(&n->next[l], succs[l], memory_order_relaxed); /* published below */
        for (int l = 0; l <= top; l++) /* pairs with the readers' acquire loads of next */
            atomic_store_explicit(&preds[l]->next[l], n, memory_order_release);
        atomic_store_explicit(&n->linked, true, memory_order_release); /* pairs with visible() */
        unlock_preds(preds, top);
        ets_count(t, r->hash, 1, (long)(ets_rec_size(r->klen, r->vlen) + node_size(top, r->klen)));
        return 0;
    }
}

static int sl_del(ets_table *t, const void *k, size_t kl, uint64_t h, const void *v, size_t vl,
                  bool want, ets_vec *out)
{
    sl_node *preds[SL_LEVELS], *succs[SL_LEVELS];
    sl_node *victim = NULL;
    for (;;) {
        int found = find(HEAD(t), k, kl, preds, succs);
        if (!victim) {
            if (found < 0)
                return 0;
            sl_node *c = succs[found];
            if (!atomic_load_explicit(&c->linked, memory_order_acquire) || c->top != found ||
                atomic_load_explicit(&c->marked, memory_order_acquire))
                return 0; /* not yet in, or someone else is removing it */
            nlock(c);
            if (atomic_load_explicit(&c->marked, memory_order_relaxed)) { /* c locked */
                nunlock(c);
                return 0;
            }
            ets_rec *cr = atomic_load_explicit(&c->rec, memory_order_relaxed); /* c locked */
            if (v && !ets__val_equal(ets_rec_val(cr), cr->vlen, v, vl)) {
                nunlock(c);
                return 0;
            }
            /* Pairs with visible(): from here on readers skip it. */
            atomic_store_explicit(&c->marked, true, memory_order_release);
            victim = c;
        }
        int top = victim->top;
        bool ok = true;
        for (int l = 0; l <= top && ok; l++)
            ok = succs[l] == victim;
        if (!ok || !lock_and_validate(preds, succs, top, true))
            continue;
        for (int l = top; l >= 0; l--) { /* pairs with the readers' acquire loads of next */
            sl_node *after = atomic_load_explicit(&victim->next[l], memory_order_relaxed);
            atomic_store_explicit(&preds[l]->next[l], after, memory_order_release);
        }
        ets_rec *rec = atomic_load_explicit(&victim->rec, memory_order_relaxed); /* locked */
        nunlock(victim);
        unlock_preds(preds, top);
        ets_count(t, h, -1,
                  -(long)(ets_rec_size(rec->klen, rec->vlen) + node_size(top, victim->klen)));
        ets__vec_push(out, rec);
        ets__retire(&victim->rcu, node_free_cb, node_size(victim->top, victim->klen));
        return 1;
    }
}

static int sl_fold(ets_table *t, ets_visit_fn fn, void *arg)
{
    for (sl_node *n = nxt(HEAD(t), 0); n; n = nxt(n, 0)) {
        if (!visible(n))
            continue;
        ets_obj o;
        /* As in sl_get. */
        ets_obj_of_rec(&o, atomic_load_explicit(&n->rec, memory_order_acquire));
        int rc = fn(&o, arg);
        if (rc)
            return rc;
    }
    return 0;
}

static bool view_of(sl_node *n, ets_obj *o)
{
    ets_obj_of_rec(o, atomic_load_explicit(&n->rec, memory_order_acquire)); /* as in sl_get */
    return true;
}

static int sl_counter(ets_table *t, const void *k, size_t kl, uint64_t h, size_t off, int64_t incr,
                      int64_t *result)
{
    for (;;) {
        sl_node *n = search(HEAD(t), k, kl);
        if (!n || !visible(n))
            return -ENOENT;
        /* As in sl_get: records are immutable but for their counter words.
         * -EAGAIN: a take sealed it; it is unlinked, so look again. */
        int rc = ets__rec_add(atomic_load_explicit(&n->rec, memory_order_acquire), off, incr,
                              result);
        if (rc != -EAGAIN)
            return rc;
    }
}

/* The first visible node with a key above k (k NULL: above nothing). */
static bool sl_next(ets_table *t, const void *k, size_t kl, uint64_t h, ets_obj *o)
{
    sl_node *pred = HEAD(t), *cur = NULL;
    if (k) {
        for (int l = SL_LEVELS - 1; l >= 0; l--) {
            cur = nxt(pred, l);
            while (cur && cmp(cur, k, kl) <= 0) {
                pred = cur;
                cur = nxt(pred, l);
            }
        }
    } else {
        cur = nxt(pred, 0);
    }
    while (cur && !visible(cur))
        cur = nxt(cur, 0);
    return cur ? view_of(cur, o) : false;
}

static bool sl_first(ets_table *t, ets_obj *o) { return sl_next(t, NULL, 0, 0, o); }

/* The last visible node with a key below k (k NULL: below nothing, i.e. the
 * last). A node found invisible is being removed or inserted: look below it. */
static bool sl_prev(ets_table *t, const void *k, size_t kl, uint64_t h, ets_obj *o)
{
    sl_node *head = HEAD(t);
    for (;;) {
        sl_node *pred = head;
        for (int l = SL_LEVELS - 1; l >= 0; l--) {
            sl_node *cur = nxt(pred, l);
            while (cur && (!k || cmp(cur, k, kl) < 0)) {
                pred = cur;
                cur = nxt(pred, l);
            }
        }
        if (pred == head)
            return false;
        if (visible(pred))
            return view_of(pred, o);
        k = pred->key;
        kl = pred->klen;
    }
}

static bool sl_last(ets_table *t, ets_obj *o) { return sl_prev(t, NULL, 0, 0, o); }

static size_t sl_overhead(ets_table *t) { return node_size(SL_LEVELS - 1, 0); }

/* ---- multi-object writes and in-place updates (ops.c) -----------------------
 *
 * An ordered_set's writers hold their key's stripe lock around the list
 * operation (the front end takes it for single-key writes; these take it
 * themselves), so that these exclude every other writer of their keys; the
 * list's own node locks still order the changes for the lock-free readers. */

static int sl_put_many(ets_table *t, const ets_item *it, size_t n, bool new_only, ets_vec *out)
{
    uint64_t stripes = ets_items_stripes(t, it, n);
    int rc = 0;
    ets_lock_all(t);
    for (size_t i = 0; new_only && i < n && !rc; i++) {
        sl_node *x = search(HEAD(t), it[i].k, it[i].kl);
        if (x && visible(x))
            rc = -EEXIST; /* stable: every writer of the key waits for our locks */
    }
    if (!rc) {
        ets_mseq_open_mask(t, stripes);
        for (size_t i = 0; i < n && !rc; i++)
            rc = sl_put(t, it[i].k, it[i].kl, it[i].v, it[i].vl, it[i].h, false, out);
        ets_mseq_close_mask(t, stripes);
    }
    ets_unlock_all(t);
    return rc;
}

static int sl_update(ets_table *t, const void *k, size_t kl, uint64_t h, ets_update_fn fn,
                     void *arg)
{
    ets_stripe *st = ets_stripe_of(t, h);
    ets_stripe_lock(st);
    sl_node *n = search(HEAD(t), k, kl);
    int rc = -ENOENT;
    /* Stable under the stripe lock: no writer of the key can run. */
    if (n && visible(n))
        rc = fn(t, atomic_load_explicit(&n->rec, memory_order_acquire), arg); /* as in sl_get */
    ets_stripe_unlock(st);
    return rc;
}

static void sl_clear(ets_table *t)
{
    ets_lock_all(t);
    for (unsigned s = 0; s <= t->stripe_mask; s++)
        ets_mseq_open(t, s);
    ets_obj o;
    while (sl_first(t, &o)) {
        ets_vec out;
        ets_vec_init(&out);
        /* o.key lies in the record del unlinks, readable until we leave */
        sl_del(t, o.key, o.klen, o.hash, NULL, 0, false, &out);
        for (size_t i = 0; i < out.n; i++)
            ets__retire_rec(out.v[i]);
        ets__vec_fini(&out);
    }
    for (unsigned s = 0; s <= t->stripe_mask; s++)
        ets_mseq_close(t, s);
    ets_unlock_all(t);
}

const ets_methods ets__skiplist_methods = {
    .init = sl_init,
    .destroy = sl_destroy,
    .get = sl_get,
    .put = sl_put,
    .del = sl_del,
    .counter = sl_counter,
    .fold = sl_fold,
    .first = sl_first,
    .last = sl_last,
    .next = sl_next,
    .prev = sl_prev,
    .overhead = sl_overhead,
    .put_many = sl_put_many,
    .update = sl_update,
    .clear = sl_clear,
};
