/* ETS calls on several objects or elements at once (OTP's insert/2 and
 * insert_new/2 with a list, lookup_element, update_element, update_counter
 * with a list and thresholds, delete_all_objects, tab2list): argument checks
 * and copies here, the writes through the table kind's put_many, update and
 * clear methods.
 *
 * Invariants. Everything the caller passes (objects, elements, counter
 * updates, default objects, the key) is copied into private memory before
 * the call enters a table, and results are copied out to the caller after
 * it leaves: no lock is ever held while user memory is touched. Every write
 * here holds the stripe locks of its keys for its whole length and changes
 * the objects between an odd and an even mseq of those stripes (ets_int.h),
 * so readers that copy never see part of it. Words of a record's value change
 * in place only by atomic stores, compare-and-swaps and adds of whole
 * 8-byte words (readers copy values word by word with atomic loads, and
 * lock-free counter adds may hit the same words). */
#include "ets_int.h"

#include <stdlib.h>

static inline bool bad_key(const void *k, size_t kl) { return !k || kl == 0 || kl > UINT32_MAX; }
static inline bool bad_val(const void *v, size_t vl) { return (!v && vl) || vl > UINT32_MAX; }

static inline _Atomic uint64_t *val_word(ets_rec *r, size_t off)
{
    return (_Atomic uint64_t *)(uintptr_t)(ets_rec_val(r) + off);
}

/* ---- insert and insert_new of several ----------------------------------------- */

static int put_many(ot_tab h, const ot_ets_obj *objs, size_t n, bool new_only)
{
    if (!objs && n)
        return -EINVAL;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (bad_key(objs[i].key, objs[i].klen) || bad_val(objs[i].val, objs[i].vlen))
            return -EINVAL;
        bytes += ets_pad8(objs[i].klen) + ets_pad8(objs[i].vlen);
    }
    ets_item *it = NULL;
    if (n) {
        if (n > (SIZE_MAX - bytes) / sizeof *it - 1 || !(it = malloc(n * sizeof *it + bytes)))
            return -ENOMEM;
        unsigned char *p = (unsigned char *)(it + n);
        for (size_t i = 0; i < n; i++) {
            memcpy(p, objs[i].key, objs[i].klen);
            it[i].k = p;
            it[i].kl = objs[i].klen;
            p += ets_pad8(objs[i].klen);
            if (objs[i].vlen)
                memcpy(p, objs[i].val, objs[i].vlen);
            it[i].v = p;
            it[i].vl = objs[i].vlen;
            p += ets_pad8(objs[i].vlen);
            it[i].h = ets__hash(it[i].k, it[i].kl);
        }
    }
    int tok, rc;
    ets_table *t = ets__begin(h, true, &tok, &rc);
    if (t && n) {
        ets_vec out;
        ets_vec_init(&out);
        rc = t->m->put_many(t, it, n, new_only, &out);
        ets__retire_all(&out);
    }
    ets__leave(tok);
    free(it);
    return rc;
}

OT_API int ot_ets_insert_many(ot_tab h, const ot_ets_obj *objs, size_t n)
{
    return put_many(h, objs, n, false);
}

OT_API int ot_ets_insert_new_many(ot_tab h, const ot_ets_obj *objs, size_t n)
{
    return put_many(h, objs, n, true);
}

/* ---- lookup_element -------------------------------------------------------------- */

/* len bytes at off of an object's value: a record's words read whole, with
 * atomic loads (counters may be changing); an inline snapshot as it is. */
static void elem_copy(unsigned char *dst, const ets_obj *o, size_t off, size_t len)
{
    if (!o->rec) {
        memcpy(dst, o->val + off, len);
        return;
    }
    size_t end = off + len;
    for (size_t w = off & ~(size_t)7; w < end; w += 8) {
        /* As in ets__val_copy: the value is padded to whole words. */
        uint64_t x = atomic_load_explicit(val_word(o->rec, w), memory_order_relaxed);
        size_t a = w < off ? off - w : 0, b = end - w < 8 ? end - w : 8;
        memcpy(dst, (unsigned char *)&x + a, b - a);
        dst += b - a;
    }
}

struct elem_arg {
    size_t off, len;
    size_t n;      /* objects seen */
    bool bad;      /* one too short */
    bool nomem;
    unsigned char *p; /* n elements */
    size_t cap;
    unsigned char small[256];
};

static int elem_cb(const ets_obj *o, void *arg)
{
    struct elem_arg *a = arg;
    if (o->vlen < a->off + a->len) {
        a->bad = true;
        return 1;
    }
    if ((a->n + 1) * a->len > a->cap) {
        size_t cap = a->cap * 2 > (a->n + 1) * a->len ? a->cap * 2 : (a->n + 1) * a->len;
        unsigned char *p = a->p == a->small ? malloc(cap) : realloc(a->p, cap);
        if (!p) {
            a->nomem = true;
            return 1;
        }
        if (a->p == a->small)
            memcpy(p, a->small, a->n * a->len);
        a->p = p;
        a->cap = cap;
    }
    elem_copy(a->p + a->n * a->len, o, a->off, a->len);
    a->n++;
    return 0;
}

OT_API int ot_ets_lookup_element(ot_tab h, const void *k, size_t kl, size_t off, size_t len,
                                 void *buf, size_t cap)
{
    if (bad_key(k, kl) || len == 0 || len > UINT32_MAX || off > UINT32_MAX || (!buf && cap))
        return -EINVAL;
    unsigned char kbuf[64], *kp = kl <= sizeof kbuf ? kbuf : malloc(kl);
    if (!kp)
        return -ENOMEM;
    memcpy(kp, k, kl); /* the table is read with our copy */
    struct elem_arg a = {.off = off, .len = len, .p = NULL};
    a.p = a.small;
    a.cap = sizeof a.small;
    int tok, rc;
    ets_table *t = ets__begin(h, false, &tok, &rc);
    uint64_t hh = ets__hash(kp, kl);
    while (t) {
        uint32_t q = ets_mseq_begin(t, hh);
        a.n = 0;
        a.bad = a.nomem = false;
        t->m->get(t, kp, kl, hh, elem_cb, &a);
        if (!ets_mseq_changed(t, hh, q))
            break; /* else a write of several words moved under the copy: again */
    }
    if (t)
        rc = a.nomem ? -ENOMEM : a.bad ? -EINVAL : a.n == 0 ? -ENOENT : (int)a.n;
    ets__leave(tok);
    if (rc > 0) {
        size_t fit = cap / len < a.n ? cap / len : a.n;
        memcpy(buf, a.p, fit * len);
    }
    if (a.p != a.small)
        free(a.p);
    if (kp != kbuf)
        free(kp);
    return rc;
}

/* ---- update_element ------------------------------------------------------------ */

struct uelem {
    size_t off, len;
    const unsigned char *data; /* our copy */
};

struct upd_arg {
    uint64_t h;
    const struct uelem *e;
    const ot_ets_counter_op *ops;
    int64_t *res;
    size_t n;
};

/* Bytes [off, off + len) of r's value from src: whole words stored, partial
 * ones merged by compare-and-swap (a counter add may hit the same word). */
static void elem_store(ets_rec *r, size_t off, size_t len, const unsigned char *src)
{
    size_t end = off + len;
    for (size_t w = off & ~(size_t)7; w < end; w += 8) {
        size_t a = w < off ? off - w : 0, b = end - w < 8 ? end - w : 8;
        _Atomic uint64_t *p = val_word(r, w);
        if (a == 0 && b == 8) {
            uint64_t x;
            memcpy(&x, src, 8);
            /* Relaxed: ordered for readers by the mseq (ets_mseq_open/close). */
            atomic_store_explicit(p, x, memory_order_relaxed);
        } else {
            uint64_t old = atomic_load_explicit(p, memory_order_relaxed), x;
            do {
                x = old;
                memcpy((unsigned char *)&x + a, src, b - a);
                /* Relaxed, as the store above. */
            } while (!atomic_compare_exchange_weak_explicit(p, &old, x, memory_order_relaxed,
                                                            memory_order_relaxed));
        }
        src += b - a;
    }
}

static int update_elem_fn(ets_table *t, ets_rec *r, void *arg)
{
    struct upd_arg *u = arg;
    for (size_t i = 0; i < u->n; i++)
        if (u->e[i].off + u->e[i].len > r->vlen)
            return -EINVAL;
    unsigned s = (unsigned)(u->h & t->stripe_mask);
    ets_mseq_open(t, s);
    for (size_t i = 0; i < u->n; i++)
        elem_store(r, u->e[i].off, u->e[i].len, u->e[i].data);
    ets_mseq_close(t, s);
    return 0;
}

static inline bool is_bag(const ets_table *t)
{
    return t->type == OT_ETS_BAG || t->type == OT_ETS_DUPLICATE_BAG;
}

OT_API int ot_ets_update_element(ot_tab h, const void *k, size_t kl, const ot_ets_elem *elems,
                                 size_t n)
{
    if (bad_key(k, kl) || (!elems && n))
        return -EINVAL;
    size_t bytes = ets_pad8(kl);
    for (size_t i = 0; i < n; i++) {
        if (!elems[i].data || elems[i].len == 0 || elems[i].len > UINT32_MAX ||
            elems[i].off > UINT32_MAX)
            return -EINVAL;
        bytes += elems[i].len;
    }
    if (n > SIZE_MAX / 2 / sizeof(struct uelem))
        return -EINVAL;
    struct uelem *e = malloc(n * sizeof *e + bytes);
    if (!e)
        return -ENOMEM;
    unsigned char *kp = (unsigned char *)(e + n), *p = kp + ets_pad8(kl);
    memcpy(kp, k, kl);
    for (size_t i = 0; i < n; i++) {
        memcpy(p, elems[i].data, elems[i].len);
        e[i] = (struct uelem){elems[i].off, elems[i].len, p};
        p += elems[i].len;
    }
    int tok, rc;
    ets_table *t = ets__begin(h, true, &tok, &rc);
    if (t && is_bag(t)) {
        rc = -EINVAL;
    } else if (t) {
        struct upd_arg u = {.h = ets__hash(kp, kl), .e = e, .n = n};
        rc = t->m->update(t, kp, kl, u.h, update_elem_fn, &u);
    }
    ets__leave(tok);
    free(e);
    return rc;
}

/* ---- update_counter with a list -------------------------------------------------- */

static inline int64_t counter_next(const ot_ets_counter_op *op, int64_t cur)
{
    int64_t v = (int64_t)((uint64_t)cur + (uint64_t)op->incr); /* wraps, never traps */
    if (op->bounded && (op->incr >= 0 ? v > op->threshold : v < op->threshold))
        v = op->set_value;
    return v;
}

static int update_ctr_fn(ets_table *t, ets_rec *r, void *arg)
{
    struct upd_arg *u = arg;
    for (size_t i = 0; i < u->n; i++)
        if (u->ops[i].offset + 8 > r->vlen)
            return -EINVAL;
    unsigned s = (unsigned)(u->h & t->stripe_mask);
    if (u->n > 1)
        ets_mseq_open(t, s);
    for (size_t i = 0; i < u->n; i++) {
        const ot_ets_counter_op *op = &u->ops[i];
        _Atomic int64_t *w = (_Atomic int64_t *)val_word(r, op->offset);
        int64_t v;
        if (!op->bounded) {
            /* As in ets__rec_add: lock-free adds hit the same words. */
            v = atomic_fetch_add_explicit(w, op->incr, memory_order_relaxed) + op->incr;
        } else {
            int64_t old = atomic_load_explicit(w, memory_order_relaxed);
            /* Relaxed, as the add: a compare-and-swap, since adds race it. */
            while (!atomic_compare_exchange_weak_explicit(w, &old, v = counter_next(op, old),
                                                          memory_order_relaxed,
                                                          memory_order_relaxed)) {
            }
        }
        u->res[i] = v;
    }
    if (u->n > 1)
        ets_mseq_close(t, s);
    return 0;
}

OT_API int ot_ets_update_counters(ot_tab h, const void *k, size_t kl, const ot_ets_counter_op *ops,
                                  size_t n, const void *dflt, size_t dlen, int64_t *results)
{
    if (bad_key(k, kl) || (!ops && n) || bad_val(dflt, dlen) || n > SIZE_MAX / 64)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (ops[i].offset % 8 || ops[i].offset > UINT32_MAX - 8 ||
            (dflt && ops[i].offset + 8 > dlen))
            return -EINVAL; /* the default object too must hold every counter */
    /* Our copies: the updates, their results, the key and the default. */
    size_t bytes = n * (sizeof *ops + 8) + ets_pad8(kl) + ets_pad8(dlen);
    ot_ets_counter_op *op = malloc(bytes);
    if (!op)
        return -ENOMEM;
    int64_t *res = (int64_t *)(op + n);
    unsigned char *kp = (unsigned char *)(res + n), *dp = kp + ets_pad8(kl);
    if (n)
        memcpy(op, ops, n * sizeof *ops);
    memcpy(kp, k, kl);
    if (dflt && dlen)
        memcpy(dp, dflt, dlen);
    int tok, rc;
    ets_table *t = ets__begin(h, true, &tok, &rc);
    if (t && is_bag(t))
        rc = -EINVAL;
    uint64_t hh = ets__hash(kp, kl);
    struct upd_arg u = {.h = hh, .ops = op, .res = res, .n = n};
    while (t && !rc) {
        rc = t->m->update(t, kp, kl, hh, update_ctr_fn, &u);
        if (rc != -ENOENT || !dflt)
            break;
        /* The default object with the updates applied, inserted as one new
         * object: no reader sees it before them. */
        for (size_t i = 0; i < n; i++) {
            int64_t cur;
            memcpy(&cur, dp + op[i].offset, 8);
            res[i] = counter_next(&op[i], cur);
            memcpy(dp + op[i].offset, &res[i], 8);
        }
        ets_vec out;
        ets_vec_init(&out);
        rc = ets__put1(t, kp, kl, dp, dlen, hh, true, &out);
        ets__retire_all(&out);
        if (rc != -EEXIST)
            break;
        /* Another writer made it first: update theirs, from the caller's default again. */
        memcpy(dp, dflt, dlen);
        rc = 0;
    }
    ets__leave(tok);
    if (rc == 0 && results && n)
        memcpy(results, res, n * sizeof *res);
    free(op);
    return rc;
}

/* ---- the whole table ------------------------------------------------------------- */

OT_API int ot_ets_delete_all_objects(ot_tab h)
{
    int tok, rc;
    ets_table *t = ets__begin(h, true, &tok, &rc);
    if (t)
        t->m->clear(t);
    ets__leave(tok);
    return rc;
}

static bool match_all(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    return true;
}

/* ot_ets_select walks as ot_ets_foldl does: each kind's walk sees every object
 * that stays in the table for the whole walk exactly once (hash.c: the array
 * read at the start, frozen if a resize replaces it, in slot order; skiplist.c:
 * level 0, whose removed nodes keep their successors). */
OT_API int ot_ets_tab2list(ot_tab h, ot_ets_obj **objs, size_t *n)
{
    return ot_ets_select(h, match_all, NULL, objs, n);
}
