/* The registry's writers: register, unregister (plain and by match),
 * update_value, the partition's clean-up of a dead registrant, and meta.
 * Every writer but the clean-up and put_meta acts for the calling process on
 * its own entries, so two writers never contend for one entry except on a
 * unique key, where ot_ets_insert_new decides and a holder found dead is
 * removed by its exact bytes (see registry_int.h for the order of writes). */
#include "registry_int.h"

#include <stdlib.h>

static _Atomic uint64_t reg_nonce;

/* A scratch buffer: on the stack when small, else in the process heap. */
struct scratch {
    unsigned char *p;
    _Alignas(8) unsigned char small[256];
};
static unsigned char *scratch_get(struct scratch *b, size_t n)
{
    b->p = n <= sizeof b->small ? b->small : ot_alloc(n);
    return b->p;
}
static void scratch_put(struct scratch *b)
{
    if (b->p != b->small)
        ot_free(b->p);
}

static int check_val(const void *val, size_t vlen)
{
    if (!val && vlen)
        return -EINVAL;
    return vlen > OT_REGISTRY_VALUE_MAX ? -EMSGSIZE : 0;
}

/* The key record's value: [pid][value]. */
static unsigned char *key_val(struct scratch *b, ot_pid pid, const void *val, size_t vlen)
{
    unsigned char *p = scratch_get(b, 8 + vlen);
    if (p) {
        memcpy(p, &pid.v, 8);
        if (vlen)
            memcpy(p + 8, val, vlen);
    }
    return p;
}

/* Unlinks the caller from its partition once it has no entry left there. */
static void unlink_if_unregistered(ot_tab pt, ot_pid part, ot_pid self)
{
    if (!ot_ets_member(pt, &self.v, 8) && errno != EBADF)
        ot_unlink(part);
}

/* insert_new on a unique key, taking over from a dead holder. */
static int unique_insert(ot_tab kt, const void *key, size_t klen, const void *kv, size_t kvl,
                         ot_pid self, ot_pid *holder)
{
    for (;;) {
        int rc = ot_ets_insert_new(kt, key, klen, kv, kvl);
        if (rc != -EEXIST)
            return rc;
        ot_ets_obj *o;
        size_t n;
        rc = ot_ets_lookup(kt, key, klen, &o, &n);
        if (rc)
            return rc;
        if (!n)
            continue; /* its holder left meanwhile */
        ot_pid h;
        memcpy(&h.v, o->val, 8);
        if (h.v == self.v || ot_is_alive(h)) {
            ot_free(o);
            if (holder)
                *holder = h;
            return -EEXIST;
        }
        /* A dead holder whose partition has not cleaned up yet: its exact
         * object goes, never a newer one. */
        ot_ets_delete_object(kt, key, klen, o->val, o->vlen);
        ot_free(o);
    }
}

OT_API int ot_registry_register(ot_reg r, const void *key, size_t klen, const void *val,
                                size_t vlen, ot_pid *holder)
{
    if (holder)
        *holder = OT_NOPID;
    int rc = reg_check_key(key, klen);
    if (!rc)
        rc = check_val(val, vlen);
    if (rc)
        return rc;
    ot_pid self = ot_self();
    if (!self.v)
        return -EPERM;
    struct reg_view v;
    if ((rc = reg_open(r, &v)))
        return rc;
    unsigned pp = reg_pid_part(&v, self), kp = reg_key_part(&v, key, klen, self);
    ot_tab pt = reg_pid_tab(&v, pp), kt = reg_key_tab(&v, kp);
    ot_pid part = reg_part_pid(&v, pp);
    if (!reg_valid(&v))
        return -EBADF;
    /* Linked first: from here on, whatever happens to us, the partition
     * learns of our exit and removes what we wrote. */
    rc = ot_link(part);
    if (rc)
        return rc == -ESRCH ? -EBADF : rc;
    bool dup = v.kind == OT_DUPLICATE;
    /* The key padded so that the value behind it is 8-byte aligned. */
    size_t kpad = (klen + 7) & ~(size_t)7;
    size_t plen = sizeof(struct reg_pidrec) + (dup ? kpad + vlen : klen);
    struct scratch pb, kb;
    unsigned char *prec = scratch_get(&pb, plen);
    unsigned char *kv = prec ? key_val(&kb, self, val, vlen) : NULL;
    if (!kv) {
        if (prec)
            scratch_put(&pb);
        unlink_if_unregistered(pt, part, self);
        return -ENOMEM;
    }
    struct reg_pidrec hdr = {
        /* A unique number only: no ordering. */
        .nonce = atomic_fetch_add_explicit(&reg_nonce, 1, memory_order_relaxed),
        .kpart = kp,
        .klen = (uint32_t)klen,
    };
    memcpy(prec, &hdr, sizeof hdr);
    memcpy(prec + sizeof hdr, key, klen);
    if (dup && kpad > klen)
        memset(prec + sizeof hdr + klen, 0, kpad - klen);
    if (dup && vlen)
        memcpy(prec + sizeof hdr + kpad, val, vlen);
    rc = ot_ets_insert(pt, &self.v, 8, prec, plen);
    if (!rc) {
        if (dup)
            rc = ot_ets_insert(kt, key, klen, kv, 8 + vlen);
        else
            rc = unique_insert(kt, key, klen, kv, 8 + vlen, self, holder);
        if (rc)
            ot_ets_delete_object(pt, &self.v, 8, prec, plen);
    }
    if (rc)
        unlink_if_unregistered(pt, part, self);
    scratch_put(&kb);
    scratch_put(&pb);
    return rc;
}

/* The parts of a pid record (rec of len bytes). */
struct pidrec_view {
    struct reg_pidrec h;
    const unsigned char *key, *val;
    size_t vlen;
};
static bool pidrec_parse(const void *rec, size_t len, int kind, struct pidrec_view *pv)
{
    if (len < sizeof pv->h)
        return false;
    memcpy(&pv->h, rec, sizeof pv->h);
    size_t kl = kind == OT_DUPLICATE ? ((size_t)pv->h.klen + 7) & ~(size_t)7 : pv->h.klen;
    if (len < sizeof pv->h + kl)
        return false;
    pv->key = (const unsigned char *)rec + sizeof pv->h;
    pv->val = pv->key + kl;
    pv->vlen = len - sizeof pv->h - kl;
    return true;
}

/* Removes pid's entry behind one pid record from key table kt, if the record
 * is for key (any key when key is NULL) and match accepts the value; returns
 * true when the pid record should go. */
static bool drop_entry(ot_tab kt, int kind, ot_pid pid, const struct pidrec_view *pv,
                       const void *key, size_t klen, ot_reg_match_fn match, void *arg)
{
    if (key && (pv->h.klen != klen || memcmp(pv->key, key, klen)))
        return false;
    if (kind == OT_DUPLICATE) {
        if (match && !match(pv->vlen ? pv->val : NULL, pv->vlen, arg))
            return false;
        struct scratch b;
        unsigned char *kv = key_val(&b, pid, pv->val, pv->vlen);
        if (!kv)
            return false;
        ot_ets_delete_object(kt, pv->key, pv->h.klen, kv, 8 + pv->vlen);
        scratch_put(&b);
        return true;
    }
    ot_ets_obj *o;
    size_t n;
    if (ot_ets_lookup(kt, pv->key, pv->h.klen, &o, &n))
        return false;
    bool mine = n && o->vlen >= 8 && memcmp(o->val, &pid.v, 8) == 0;
    bool go = true;
    if (mine) {
        const unsigned char *val = (const unsigned char *)o->val + 8;
        size_t vl = o->vlen - 8;
        go = !match || match(vl ? val : NULL, vl, arg);
        if (go)
            ot_ets_delete_object(kt, pv->key, pv->h.klen, o->val, o->vlen);
    }
    ot_free(o);
    return go; /* a record whose key is no longer ours goes too */
}

static int unregister_common(ot_reg r, const void *key, size_t klen, ot_reg_match_fn match,
                             void *arg)
{
    int rc = reg_check_key(key, klen);
    if (rc)
        return rc;
    ot_pid self = ot_self();
    if (!self.v)
        return -EPERM;
    struct reg_view v;
    if ((rc = reg_open(r, &v)))
        return rc;
    unsigned pp = reg_pid_part(&v, self), kp = reg_key_part(&v, key, klen, self);
    ot_tab pt = reg_pid_tab(&v, pp), kt = reg_key_tab(&v, kp);
    ot_pid part = reg_part_pid(&v, pp);
    if (!reg_valid(&v))
        return -EBADF;
    ot_ets_obj *recs;
    size_t n;
    rc = ot_ets_lookup(pt, &self.v, 8, &recs, &n);
    if (rc)
        return rc;
    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        struct pidrec_view pv;
        if (pidrec_parse(recs[i].val, recs[i].vlen, v.kind, &pv) &&
            drop_entry(kt, v.kind, self, &pv, key, klen, match, arg))
            ot_ets_delete_object(pt, &self.v, 8, recs[i].val, recs[i].vlen);
    }
    ot_free(recs);
    unlink_if_unregistered(pt, part, self);
    return 0;
}

OT_API int ot_registry_unregister(ot_reg r, const void *key, size_t klen)
{
    return unregister_common(r, key, klen, NULL, NULL);
}

OT_API int ot_registry_unregister_match(ot_reg r, const void *key, size_t klen,
                                        ot_reg_match_fn match, void *arg)
{
    if (!match)
        return -EINVAL;
    return unregister_common(r, key, klen, match, arg);
}

OT_API int ot_registry_update_value(ot_reg r, const void *key, size_t klen, const void *val,
                                    size_t vlen)
{
    int rc = reg_check_key(key, klen);
    if (!rc)
        rc = check_val(val, vlen);
    if (rc)
        return rc;
    ot_pid self = ot_self();
    if (!self.v)
        return -EPERM;
    struct reg_view v;
    if ((rc = reg_open(r, &v)))
        return rc;
    if (v.kind != OT_UNIQUE)
        return -EINVAL;
    ot_tab kt = reg_key_tab(&v, reg_key_part(&v, key, klen, self));
    if (!reg_valid(&v))
        return -EBADF;
    /* Only the holder changes its entry, and we are it: no race between the
     * check and the write. */
    ot_ets_obj *o;
    size_t n;
    if ((rc = ot_ets_lookup(kt, key, klen, &o, &n)))
        return rc;
    bool mine = n && o->vlen >= 8 && memcmp(o->val, &self.v, 8) == 0;
    ot_free(o);
    if (!mine)
        return -ENOENT;
    struct scratch b;
    unsigned char *kv = key_val(&b, self, val, vlen);
    if (!kv)
        return -ENOMEM;
    rc = ot_ets_insert(kt, key, klen, kv, 8 + vlen);
    scratch_put(&b);
    return rc;
}

void reg__cleanup(struct reg_slot *s, unsigned part, ot_pid pid)
{
    ot_tab pt = {atomic_load_explicit(&s->pid_tab[part], memory_order_relaxed)};
    int kind = atomic_load_explicit(&s->kind, memory_order_relaxed);
    ot_ets_obj *recs;
    size_t n;
    if (ot_ets_lookup(pt, &pid.v, 8, &recs, &n) || !n)
        return;
    for (size_t i = 0; i < n; i++) {
        struct pidrec_view pv;
        if (!pidrec_parse(recs[i].val, recs[i].vlen, kind, &pv) ||
            pv.h.kpart >= OT_REGISTRY_PARTITIONS_MAX)
            continue;
        ot_tab kt = {atomic_load_explicit(&s->key_tab[pv.h.kpart], memory_order_relaxed)};
        drop_entry(kt, kind, pid, &pv, NULL, 0, NULL, NULL);
    }
    ot_free(recs);
    ot_ets_delete(pt, &pid.v, 8);
}

/* ---- meta ------------------------------------------------------------------ */

OT_API int ot_registry_put_meta(ot_reg r, const void *key, size_t klen, const void *val,
                                size_t vlen)
{
    int rc = reg_check_key(key, klen);
    if (!rc)
        rc = check_val(val, vlen);
    if (rc)
        return rc;
    struct reg_view v;
    if ((rc = reg_open(r, &v)))
        return rc;
    ot_tab mt = {atomic_load_explicit(&v.s->meta, memory_order_acquire)};
    if (!reg_valid(&v))
        return -EBADF;
    return ot_ets_insert(mt, key, klen, val, vlen);
}

struct meta_copy {
    void *buf;
    size_t cap, len;
};
static void meta_cb(const void *val, size_t vl, void *arg)
{
    struct meta_copy *c = arg;
    c->len = vl;
    if (vl <= c->cap && vl)
        memcpy(c->buf, val, vl);
}

OT_API int ot_registry_meta(ot_reg r, const void *key, size_t klen, void *buf, size_t cap,
                            size_t *vlen)
{
    int rc = reg_check_key(key, klen);
    if (rc)
        return rc;
    if ((!buf && cap) || !vlen)
        return -EINVAL;
    struct reg_view v;
    if ((rc = reg_open(r, &v)))
        return rc;
    ot_tab mt = {atomic_load_explicit(&v.s->meta, memory_order_acquire)};
    if (!reg_valid(&v))
        return -EBADF;
    struct meta_copy c = {.buf = buf, .cap = cap};
    rc = ot_ets_read(mt, key, klen, meta_cb, &c);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return -ENOENT;
    *vlen = c.len;
    return c.len > cap ? -ERANGE : 0;
}
