/* The ETS front end: argument checks, access rules, QSBR entry and exit,
 * dispatch to the table kind, and copying results into the caller's process
 * heap. Every public call runs between ets__enter and ets__leave; records a
 * writer unlinked come back in an ets_vec, are copied if the call returns
 * them (take), and are retired before the call leaves, so they stay readable
 * for the whole call. Access: public tables take anyone; protected tables
 * take reads from anyone and writes from the owner; private tables take the
 * owner only. The owner of a table created outside any process is "every
 * foreign thread" (owner pid 0 equals ot_self() there). */
#include "hash_int.h"

#include <stdlib.h>

size_t ets__size(ets_table *t)
{
    long n = 0;
    for (unsigned i = 0; i <= t->stripe_mask; i++) /* statistics: see ets_count */
        n += atomic_load_explicit(&t->stripes[i].size, memory_order_relaxed);
    return n > 0 ? (size_t)n : 0;
}

size_t ets__bytes(ets_table *t)
{
    long n = 0;
    for (unsigned i = 0; i <= t->stripe_mask; i++) /* statistics: see ets_count */
        n += atomic_load_explicit(&t->stripes[i].bytes, memory_order_relaxed);
    return n > 0 ? (size_t)n : 0;
}

static inline int check_access(ets_table *t, bool write)
{
    if (t->access == OT_ETS_PUBLIC || (!write && t->access == OT_ETS_PROTECTED))
        return 0;
    /* Changed under the registry lock by give_away and the exit hook; a
     * racing check linearises before or after the change. */
    uint64_t owner = atomic_load_explicit(&t->owner, memory_order_relaxed);
    return ot_self().v == owner ? 0 : -EACCES;
}

static inline bool bad_key(const void *k, size_t kl) { return !k || kl == 0 || kl > UINT32_MAX; }
static inline bool bad_val(const void *v, size_t vl) { return (!v && vl) || vl > UINT32_MAX; }

/* Enters QSBR and finds the table; on error *rc is set and NULL returned,
 * still inside (call ets__leave(tok) either way). */
static inline __attribute__((always_inline)) ets_table *begin(ot_tab h, bool write, int *tok,
                                                              int *rc)
{
    ets__charge();
    if (write && __builtin_expect(ot__stack_headroom() < ETS_STACK_NEED, 0)) {
        /* Writers take locks: not on a stack that might overflow under them. */
        *tok = ETS_TOKEN_NONE;
        *rc = -ENOMEM;
        return NULL;
    }
    *tok = ets__enter();
    ets_table *t = ets__lookup(h);
    if (!t) {
        *rc = -EBADF;
        return NULL;
    }
    *rc = check_access(t, write);
    return *rc ? NULL : t;
}

static inline void retire_all(ets_vec *v)
{
    if (!v->n && v->v == v->small)
        return; /* the common case: nothing unlinked, no call */
    for (size_t i = 0; i < v->n; i++)
        ets__retire_rec(v->v[i]);
    ets__vec_fini(v);
}

/* One block in the caller's heap: the ot_ets_obj array, then for each object
 * its value (8-aligned, padded) and its key. */
static int build(const ets_vec *v, ot_ets_obj **objs, size_t *n)
{
    *objs = NULL;
    *n = 0;
    if (!v->n)
        return 0;
    size_t total = v->n * sizeof(ot_ets_obj);
    for (size_t i = 0; i < v->n; i++)
        total += ets_pad8(v->v[i]->vlen) + ets_pad8(v->v[i]->klen);
    ot_ets_obj *o = ot_alloc(total);
    if (!o)
        return -ENOMEM;
    unsigned char *p = (unsigned char *)(o + v->n);
    for (size_t i = 0; i < v->n; i++) {
        const ets_rec *r = v->v[i];
        ets__val_copy(p, ets_rec_val(r), r->vlen);
        o[i].val = p;
        o[i].vlen = r->vlen;
        p += ets_pad8(r->vlen);
        memcpy(p, ets_rec_key(r), r->klen);
        o[i].key = p;
        o[i].klen = r->klen;
        p += ets_pad8(r->klen);
    }
    *objs = o;
    *n = v->n;
    return 0;
}

/* ---- writes through the kind's methods --------------------------------------
 *
 * An ordered_set's single-key writers hold their key's stripe lock around
 * the method (ets_int.h), with the key and value copied first: user memory
 * is never read under a lock. Hash tables' methods take their own. */

typedef struct priv {
    const void *k, *v;
    unsigned char *heap;
    _Alignas(8) unsigned char small[256];
} priv;

/* Points p at private copies of (k, v); -ENOMEM. */
static int priv_in(priv *p, const void *k, size_t kl, const void *v, size_t vl)
{
    size_t kp = ets_pad8(kl);
    p->heap = NULL;
    unsigned char *b = p->small;
    if (kp + vl > sizeof p->small && !(b = p->heap = malloc(kp + vl)))
        return -ENOMEM;
    memcpy(b, k, kl);
    if (vl)
        memcpy(b + kp, v, vl);
    p->k = b;
    p->v = v ? b + kp : NULL;
    return 0;
}

int ets__put1(ets_table *t, const void *k, size_t kl, const void *v, size_t vl, uint64_t h,
              bool new_only, ets_vec *out)
{
    if (t->type != OT_ETS_ORDERED_SET)
        return t->m->put(t, k, kl, v, vl, h, new_only, out);
    priv p;
    if (priv_in(&p, k, kl, v, vl))
        return -ENOMEM;
    ets_stripe *st = ets_stripe_of(t, h);
    ets_stripe_lock(st);
    int rc = t->m->put(t, p.k, kl, p.v, vl, h, new_only, out);
    ets_stripe_unlock(st);
    free(p.heap);
    return rc;
}

/* mine: k and v are table memory or the caller's private copies already. */
static int del1(ets_table *t, const void *k, size_t kl, uint64_t h, const void *v, size_t vl,
                bool want, ets_vec *out, bool mine)
{
    if (t->type != OT_ETS_ORDERED_SET)
        return t->m->del(t, k, kl, h, v, vl, want, out);
    priv p = {.k = k, .v = v, .heap = NULL};
    if (!mine && priv_in(&p, k, kl, v, v ? vl : 0))
        return -ENOMEM;
    ets_stripe *st = ets_stripe_of(t, h);
    ets_stripe_lock(st);
    int rc = t->m->del(t, p.k, kl, h, p.v, vl, want, out);
    ets_stripe_unlock(st);
    free(p.heap);
    return rc;
}

ets_table *ets__begin(ot_tab h, bool write, int *tok, int *rc)
{
    return begin(h, write, tok, rc);
}

void ets__retire_all(ets_vec *v) { retire_all(v); }

int ets__build(const ets_vec *v, ot_ets_obj **objs, size_t *n) { return build(v, objs, n); }

static int collect_cb(const ets_obj *o, void *arg)
{
    return ets__vec_add(arg, o->rec) ? -ENOMEM : 0;
}

/* A set's look-up: the one object straight into one block of the caller's
 * heap (one ot_alloc), from the view the table shows. */
struct one_arg {
    ot_ets_obj *o;
};

static inline __attribute__((always_inline)) int one_cb(const ets_obj *v, void *arg)
{
    struct one_arg *a = arg;
    if (!v->rec && v->klen == 8 && v->vlen == 8) {
        /* An integer key and word value, from a private snapshot: fixed
         * sizes, so the copy is two word moves. */
        ot_ets_obj *o = ot_alloc(sizeof *o + 16);
        if (!o)
            return 1;
        uint64_t *p = (uint64_t *)(o + 1);
        memcpy(&p[0], v->val, 8);
        memcpy(&p[1], v->key, 8);
        *o = (ot_ets_obj){.key = &p[1], .klen = 8, .val = &p[0], .vlen = 8};
        a->o = o;
        return 1;
    }
    size_t vp = ets_pad8(v->vlen);
    ot_ets_obj *o = ot_alloc(sizeof *o + vp + ets_pad8(v->klen));
    if (!o)
        return 1;
    unsigned char *p = (unsigned char *)(o + 1);
    if (v->rec)
        ets__val_copy(p, v->val, v->vlen); /* counters may be changing */
    else if (vp == 8)
        memcpy(p, v->val, 8); /* a private snapshot; fixed size: no libc call */
    else
        memcpy(p, v->val, vp);
    o->val = p;
    o->vlen = v->vlen;
    if (v->klen == 8)
        memcpy(p + vp, v->key, 8);
    else
        memcpy(p + vp, v->key, v->klen);
    o->key = p + vp;
    o->klen = v->klen;
    a->o = o;
    return 1;
}

static int do_put(ot_tab h, const void *k, size_t kl, const void *v, size_t vl, bool new_only)
{
    if (bad_key(k, kl) || bad_val(v, vl))
        return -EINVAL;
    int tok, rc;
    ets_table *t = begin(h, true, &tok, &rc);
    if (t) {
        ets_vec out;
        ets_vec_init(&out);
        rc = ets__put1(t, k, kl, v, vl, ets__hash(k, kl), new_only, &out);
        retire_all(&out);
    }
    ets__leave(tok);
    ets__throttle();
    return rc;
}

OT_API int ot_ets_insert(ot_tab h, const void *k, size_t kl, const void *v, size_t vl)
{
    if (bad_key(k, kl) || bad_val(v, vl))
        return -EINVAL;
    if (kl <= 8 && vl <= 8) {
        /* A set's inline object (hash.c's fits): straight into its slot. */
        int tok, rc;
        ets_table *t = begin(h, true, &tok, &rc);
        if (t && t->type == OT_ETS_SET) {
            uint32_t meta = META_INLINE | (uint32_t)kl | (uint32_t)vl << 8;
            rc = ets__hash_put_small(t, ets_key_word(k, kl), meta, vl ? ets_key_word(v, vl) : 0,
                                     ets__hash(k, kl));
        } else if (t) {
            rc = -EAGAIN; /* not a set: the general path */
        }
        ets__leave(tok); /* t is not to be touched from here on */
        if (rc != -EAGAIN)
            return rc;
    }
    return do_put(h, k, kl, v, vl, false);
}

OT_API int ot_ets_insert_new(ot_tab h, const void *k, size_t kl, const void *v, size_t vl)
{
    return do_put(h, k, kl, v, vl, true);
}

OT_API int ot_ets_lookup(ot_tab h, const void *k, size_t kl, ot_ets_obj **objs, size_t *n)
{
    if (bad_key(k, kl) || !objs || !n)
        return -EINVAL;
    *objs = NULL;
    *n = 0;
    int tok, rc;
    ets_table *t = begin(h, false, &tok, &rc);
    uint64_t hh = ets__hash(k, kl);
    /* A copy that a write of several words or keys moved under is redone
     * (ets_mseq_begin): never part of one. */
    while (t) {
        uint32_t q = ets_mseq_begin(t, hh);
        if (t->type == OT_ETS_SET) {
            ets_obj o;
            struct one_arg a = {NULL};
            bool found = kl == 8 ? ets_hash_find8_tab(t, k, hh, &o)
                                 : ets__hash_find(t, k, kl, hh, &o);
            if (found)
                one_cb(&o, &a); /* inlined here */
            rc = found && !a.o ? -ENOMEM : 0;
            *objs = a.o;
            *n = a.o != NULL;
        } else if (t->type == OT_ETS_ORDERED_SET) {
            struct one_arg a = {NULL};
            int cnt = t->m->get(t, k, kl, hh, one_cb, &a);
            rc = cnt && !a.o ? -ENOMEM : 0;
            *objs = a.o;
            *n = a.o != NULL;
        } else {
            /* Bag objects are always records. */
            ets_vec got;
            ets_vec_init(&got);
            int cnt = t->m->get(t, k, kl, hh, collect_cb, &got);
            rc = (size_t)cnt > got.n ? -ENOMEM : build(&got, objs, n);
            ets__vec_fini(&got);
        }
        if (__builtin_expect(!ets_mseq_changed(t, hh, q), 1))
            break;
        ot_free(*objs);
        *objs = NULL;
        *n = 0;
    }
    ets__leave(tok);
    return rc;
}

struct read_arg {
    void (*fn)(const void *v, size_t vl, void *arg);
    void *arg;
};

static int read_cb(const ets_obj *o, void *arg)
{
    struct read_arg *a = arg;
    a->fn(o->val, o->vlen, a->arg);
    return 0;
}

OT_API int ot_ets_read(ot_tab h, const void *k, size_t kl,
                       void (*fn)(const void *v, size_t vl, void *arg), void *arg)
{
    if (bad_key(k, kl) || !fn)
        return -EINVAL;
    int tok, rc;
    ets_table *t = begin(h, false, &tok, &rc);
    uint64_t hh = ets__hash(k, kl);
    if (t && t->type == OT_ETS_SET) {
        ets_obj o;
        rc = kl == 8 ? ets_hash_find8_tab(t, k, hh, &o) : ets__hash_find(t, k, kl, hh, &o);
        if (rc)
            fn(o.val, o.vlen, arg);
    } else if (t) {
        struct read_arg a = {fn, arg};
        rc = t->m->get(t, k, kl, hh, read_cb, &a);
    }
    if (t)
        ets_mseq_settle(t, hh); /* fn has run: answer after a write it saw part of */
    ets__leave(tok);
    return rc;
}

static int stop_cb(const ets_obj *o, void *arg) { return 1; }

OT_API bool ot_ets_member(ot_tab h, const void *k, size_t kl)
{
    if (bad_key(k, kl)) {
        errno = EINVAL;
        return false;
    }
    int tok, rc;
    ets_table *t = begin(h, false, &tok, &rc);
    uint64_t hh = ets__hash(k, kl);
    if (t && t->type == OT_ETS_SET) {
        ets_obj o;
        rc = kl == 8 ? ets_hash_find8_tab(t, k, hh, &o) : ets__hash_find(t, k, kl, hh, &o);
    } else if (t) {
        rc = t->m->get(t, k, kl, hh, stop_cb, NULL);
    }
    if (t)
        ets_mseq_settle(t, hh); /* as in ot_ets_read */
    ets__leave(tok);
    if (rc < 0)
        errno = -rc;
    return rc > 0;
}

/* The caller's key and value, copied in before any lock is taken: a bad
 * pointer faults here, where the fault ends only the caller. */
typedef struct copied {
    const void *k, *v;
    unsigned char *heap;
    _Alignas(8) unsigned char small[256];
} copied;

static int copy_in(copied *c, const void *k, size_t kl, const void *v, size_t vl)
{
    size_t kp = ets_pad8(kl);
    unsigned char *p = c->small;
    c->heap = NULL;
    if (kp + vl > sizeof c->small && !(p = c->heap = malloc(kp + vl)))
        return -ENOMEM;
    memcpy(p, k, kl);
    if (v && vl)
        memcpy(p + kp, v, vl);
    c->k = p;
    c->v = v ? p + kp : NULL;
    return 0;
}

/* delete, delete_object and take: v NULL removes every object of the key. */
static int do_del(ot_tab h, const void *k, size_t kl, const void *v, size_t vl, ot_ets_obj **objs,
                  size_t *n)
{
    copied c;
    if (copy_in(&c, k, kl, v, vl))
        return -ENOMEM;
    k = c.k;
    v = c.v;
    int tok, rc;
    ets_table *t = begin(h, true, &tok, &rc);
    if (t) {
        ets_vec out;
        ets_vec_init(&out);
        int cnt = del1(t, k, kl, ets__hash(k, kl), v, vl, objs != NULL, &out, false);
        rc = cnt < 0 ? cnt : 0;
        if (objs && cnt > 0) {
            /* Counter adds that found the record before the unlink end
             * before the copy, and count in it (ets__rec_seal). */
            for (size_t i = 0; i < out.n; i++)
                ets__rec_seal(out.v[i]);
            rc = (size_t)cnt > out.n ? -ENOMEM : build(&out, objs, n);
        }
        retire_all(&out);
    }
    ets__leave(tok);
    free(c.heap);
    ets__throttle();
    return rc;
}

OT_API int ot_ets_delete(ot_tab h, const void *k, size_t kl)
{
    if (bad_key(k, kl))
        return -EINVAL;
    return do_del(h, k, kl, NULL, 0, NULL, NULL);
}

OT_API int ot_ets_delete_object(ot_tab h, const void *k, size_t kl, const void *v, size_t vl)
{
    static const char empty;
    if (bad_key(k, kl) || bad_val(v, vl))
        return -EINVAL;
    return do_del(h, k, kl, v ? v : &empty, vl, NULL, NULL);
}

OT_API int ot_ets_take(ot_tab h, const void *k, size_t kl, ot_ets_obj **objs, size_t *n)
{
    if (bad_key(k, kl) || !objs || !n)
        return -EINVAL;
    *objs = NULL;
    *n = 0;
    return do_del(h, k, kl, NULL, 0, objs, n);
}

static int counter_default(ets_table *t, const void *k, size_t kl, uint64_t h, size_t off,
                           int64_t init)
{
    unsigned char small[64], *val = off + 8 <= sizeof small ? small : malloc(off + 8);
    if (!val)
        return -ENOMEM;
    memset(val, 0, off);
    memcpy(val + off, &init, 8);
    ets_vec out;
    ets_vec_init(&out);
    int rc = ets__put1(t, k, kl, val, off + 8, h, true, &out);
    retire_all(&out);
    if (val != small)
        free(val);
    return rc;
}

/* update_counter's common case, with no call: a set's key of 8 bytes or
 * fewer whose object is already a record with room for the counter (from
 * its first update on; see hash.c's promote). Anything else (an absent key,
 * an inline object, a value too short) is left to counter_slow. */
static inline bool counter_fast(ets_table *t, const void *k, size_t kl, size_t off, int64_t incr,
                                int64_t *res)
{
    if (t->type != OT_ETS_SET || kl > 8)
        return false;
    /* Pairs with the release store that publishes a resized array. */
    const harr *a = atomic_load_explicit(&((htab *)t->impl)->arr, memory_order_acquire);
    ets_obj o;
    if (!ets_hash_find_small(a, ets__hash(k, kl), k, ets_key_word(k, kl), kl, &o, true) ||
        !o.rec || o.vlen < off + 8)
        return false;
    /* As in ets__rec_add, with the length the slot gave; a sealed record
     * (a take unlinked it) is left to counter_slow, which looks again. */
    return ets_rec_add_live(o.rec, off, incr, res);
}

static __attribute__((noinline)) int counter_slow(ets_table *t, const void *k, size_t kl,
                                                  size_t offset, int64_t incr, const int64_t *dflt,
                                                  int64_t *result)
{
    if (t->type == OT_ETS_BAG || t->type == OT_ETS_DUPLICATE_BAG)
        return -EINVAL;
    uint64_t hash = ets__hash(k, kl);
    int64_t res = 0;
    int rc;
    for (;;) {
        rc = t->m->counter(t, k, kl, hash, offset, incr, &res);
        if (rc != -ENOENT || !dflt)
            break;
        int64_t v = (int64_t)((uint64_t)*dflt + (uint64_t)incr);
        rc = counter_default(t, k, kl, hash, offset, v);
        if (rc == 0)
            res = v;
        if (rc != -EEXIST)
            break; /* -EEXIST: another writer created it first; add to theirs */
    }
    if (rc == 0 && result)
        *result = res;
    return rc;
}

OT_API int ot_ets_update_counter(ot_tab h, const void *k, size_t kl, size_t offset, int64_t incr,
                                 const int64_t *dflt, int64_t *result)
{
    if (bad_key(k, kl) || offset % 8 || offset > UINT32_MAX - 8)
        return -EINVAL;
    int tok, rc;
    ets_table *t = begin(h, true, &tok, &rc);
    int64_t res;
    if (t && counter_fast(t, k, kl, offset, incr, &res)) {
        if (result)
            *result = res;
    } else if (t) {
        copied c; /* counter_slow's writers compare the key under a lock */
        rc = copy_in(&c, k, kl, NULL, 0);
        if (!rc)
            rc = counter_slow(t, c.k, kl, offset, incr, dflt, result);
        free(c.heap);
    }
    if (t)
        ets_mseq_settle(t, ets__hash(k, kl)); /* as in ot_ets_read */
    ets__leave(tok);
    ets__throttle();
    return rc;
}

static int key_out(bool found, const ets_obj *o, void *kbuf, size_t kcap, size_t *klen)
{
    if (!found)
        return -ENOENT;
    *klen = o->klen;
    if (kcap < o->klen)
        return -ERANGE;
    memcpy(kbuf, o->key, o->klen);
    return 0;
}

enum walk { WALK_FIRST, WALK_LAST, WALK_NEXT, WALK_PREV };

static int walk(ot_tab h, enum walk w, const void *k, size_t kl, void *kbuf, size_t kcap,
                size_t *klen)
{
    if (!klen || (!kbuf && kcap) || (w >= WALK_NEXT && bad_key(k, kl)))
        return -EINVAL;
    int tok, rc;
    ets_table *t = begin(h, false, &tok, &rc);
    if (t) {
        ets_obj o;
        bool found;
        switch (w) {
        case WALK_FIRST: found = t->m->first(t, &o); break;
        case WALK_LAST: found = t->m->last(t, &o); break;
        case WALK_NEXT: found = t->m->next(t, k, kl, ets__hash(k, kl), &o); break;
        default: found = t->m->prev(t, k, kl, ets__hash(k, kl), &o); break;
        }
        rc = key_out(found, &o, kbuf, kcap, klen);
    }
    ets__leave(tok);
    return rc;
}

OT_API int ot_ets_first(ot_tab h, void *kbuf, size_t kcap, size_t *klen)
{
    return walk(h, WALK_FIRST, NULL, 0, kbuf, kcap, klen);
}

OT_API int ot_ets_last(ot_tab h, void *kbuf, size_t kcap, size_t *klen)
{
    return walk(h, WALK_LAST, NULL, 0, kbuf, kcap, klen);
}

OT_API int ot_ets_next(ot_tab h, const void *k, size_t kl, void *kbuf, size_t kcap, size_t *klen)
{
    return walk(h, WALK_NEXT, k, kl, kbuf, kcap, klen);
}

OT_API int ot_ets_prev(ot_tab h, const void *k, size_t kl, void *kbuf, size_t kcap, size_t *klen)
{
    return walk(h, WALK_PREV, k, kl, kbuf, kcap, klen);
}

struct fold_arg {
    int (*fn)(const void *k, size_t kl, const void *v, size_t vl, void *acc);
    void *acc;
};

static int fold_cb(const ets_obj *o, void *arg)
{
    struct fold_arg *a = arg;
    return a->fn(o->key, o->klen, o->val, o->vlen, a->acc);
}

OT_API int ot_ets_foldl(ot_tab h,
                        int (*fn)(const void *k, size_t kl, const void *v, size_t vl, void *acc),
                        void *acc)
{
    if (!fn)
        return -EINVAL;
    int tok, rc;
    ets_table *t = begin(h, false, &tok, &rc);
    if (t) {
        struct fold_arg a = {fn, acc};
        rc = t->m->fold(t, fold_cb, &a);
    }
    ets__leave(tok);
    return rc;
}

struct select_arg {
    ets_table *t;
    ot_ets_match_fn match;
    void *arg;
    ets_vec v;
    ets_vec tmp; /* copies of inline objects in v, freed after the build */
    size_t deleted;
    int rc;
};

static int select_cb(const ets_obj *o, void *arg)
{
    struct select_arg *s = arg;
    if (!s->match(o->key, o->klen, o->val, o->vlen, s->arg))
        return 0;
    if (o->rec)
        return ets__vec_add(&s->v, o->rec) ? -ENOMEM : 0;
    /* An inline object's view lasts only for this call: keep a copy. */
    ets_rec *c = ets__rec_new(o->key, o->klen, o->val, o->vlen, o->hash);
    if (!c)
        return -ENOMEM;
    if (ets__vec_add(&s->tmp, c)) {
        free(c);
        return -ENOMEM;
    }
    return ets__vec_add(&s->v, c) ? -ENOMEM : 0;
}

OT_API int ot_ets_select(ot_tab h, ot_ets_match_fn match, void *arg, ot_ets_obj **objs, size_t *n)
{
    if (!match || !objs || !n)
        return -EINVAL;
    *objs = NULL;
    *n = 0;
    int tok, rc;
    ets_table *t = begin(h, false, &tok, &rc);
    if (t) {
        struct select_arg s = {.t = t, .match = match, .arg = arg};
        ets_vec_init(&s.v);
        ets_vec_init(&s.tmp);
        rc = t->m->fold(t, select_cb, &s);
        if (rc == 0)
            rc = build(&s.v, objs, n);
        for (size_t i = 0; i < s.tmp.n; i++)
            free(s.tmp.v[i]); /* never published */
        ets__vec_fini(&s.tmp);
        ets__vec_fini(&s.v);
    }
    ets__leave(tok);
    return rc;
}

static int select_delete_cb(const ets_obj *o, void *arg)
{
    struct select_arg *s = arg;
    if (!s->match(o->key, o->klen, o->val, o->vlen, s->arg))
        return 0;
    /* The value is compared word by word against a private copy: counters
     * may change in the record meanwhile. */
    unsigned char small[256], *val = o->vlen <= sizeof small ? small : malloc(o->vlen);
    if (!val)
        return -ENOMEM;
    ets__val_copy(val, o->val, o->vlen);
    ets_vec out;
    ets_vec_init(&out);
    /* the key is table memory, the value our copy */
    int cnt = del1(s->t, o->key, o->klen, o->hash, val, o->vlen, false, &out, true);
    if (cnt > 0)
        s->deleted += (size_t)cnt;
    retire_all(&out);
    if (val != small)
        free(val);
    return 0;
}

OT_API int ot_ets_select_delete(ot_tab h, ot_ets_match_fn match, void *arg, size_t *deleted)
{
    if (!match)
        return -EINVAL;
    if (deleted)
        *deleted = 0;
    int tok, rc;
    ets_table *t = begin(h, true, &tok, &rc);
    if (t) {
        struct select_arg s = {.t = t, .match = match, .arg = arg};
        rc = t->m->fold(t, select_delete_cb, &s);
        if (deleted)
            *deleted = s.deleted;
    }
    ets__leave(tok);
    ets__throttle();
    return rc;
}

/* Not an object read: answered for private tables too, as ets:info/2. */
OT_API size_t ot_ets_size(ot_tab h)
{
    ets__charge();
    int tok = ets__enter();
    size_t n = 0;
    ets_table *t = ets__lookup(h);
    if (t)
        n = ets__size(t);
    ets__leave(tok);
    if (!t)
        errno = EBADF;
    return n;
}
