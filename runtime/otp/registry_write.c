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

static int any_record(const unsigned char *pk, size_t pkl, void *arg)
{
    return 1; /* the first one is enough */
}

/* Unlinks the caller from its partition once it has no entry left there. */
static void unlink_if_unregistered(ot_tab pt, ot_pid part, ot_pid self)
{
    if (reg__pid_scan(pt, &self.v, 8, any_record, NULL) == 0)
        ot_unlink(part);
}

int reg__pid_scan(ot_tab pt, const void *prefix, size_t plen,
                  int (*fn)(const unsigned char *pk, size_t pkl, void *arg), void *arg)
{
    /* Two buffers: the key just visited is where the walk goes on from. */
    unsigned char bufs[2][REG_PIDKEY_MAX];
    const unsigned char *cur = prefix;
    size_t curl = plen;
    for (int b = 0;; b ^= 1) {
        size_t kl;
        int rc = ot_ets_next(pt, cur, curl, bufs[b], sizeof bufs[b], &kl);
        if (rc == -ENOENT)
            return 0;
        if (rc)
            return rc;
        if (kl < plen || memcmp(bufs[b], prefix, plen))
            return 0;
        if ((rc = fn(bufs[b], kl, arg)))
            return rc;
        cur = bufs[b];
        curl = kl;
    }
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
    unsigned char pk[REG_PIDKEY_MAX];
    size_t pkl = reg_pidkey(pk, self, key, klen);
    /* A unique number only: no ordering. */
    uint64_t nonce = atomic_fetch_add_explicit(&reg_nonce, 1, memory_order_relaxed);
    memcpy(pk + pkl, &nonce, 8);
    pkl += 8;
    struct scratch kb;
    unsigned char *kv = key_val(&kb, self, val, vlen);
    if (!kv) {
        unlink_if_unregistered(pt, part, self);
        return -ENOMEM;
    }
    /* A duplicate entry's value rides in its pid record too: removing the
     * entry later needs its exact bytes. */
    rc = ot_ets_insert(pt, pk, pkl, dup ? val : NULL, dup ? vlen : 0);
    if (!rc) {
        if (dup)
            rc = ot_ets_insert(kt, key, klen, kv, 8 + vlen);
        else
            rc = unique_insert(kt, key, klen, kv, 8 + vlen, self, holder);
        if (rc)
            ot_ets_delete(pt, pk, pkl);
    }
    if (rc)
        unlink_if_unregistered(pt, part, self);
    scratch_put(&kb);
    return rc;
}

/* Removes the entry behind the pid record pk (its pid, key and, for a
 * duplicate entry, value) from key table kt if match (NULL: any) accepts its
 * value, and then the pid record; a record whose unique key is no longer
 * held by its pid goes too. Returns 0 or -errno. */
struct drop {
    ot_tab pt;
    struct reg_slot *s; /* the key tables */
    unsigned nparts;
    int kind;
    ot_reg_match_fn match;
    void *arg;
};

static int drop_entry(const unsigned char *pk, size_t pkl, void *arg)
{
    struct drop *d = arg;
    ot_pid pid;
    uint32_t klen;
    memcpy(&pid.v, pk, 8);
    memcpy(&klen, pk + 8, 4);
    if (pkl != 12 + (size_t)klen + 8)
        return 0; /* never written so */
    const unsigned char *key = pk + 12;
    unsigned part = d->kind == OT_UNIQUE ? (unsigned)(reg_hash(key, klen) % d->nparts)
                                         : (unsigned)(reg_mix(pid.v) % d->nparts);
    ot_tab kt = {atomic_load_explicit(&d->s->key_tab[part], memory_order_acquire)};
    ot_ets_obj *o;
    size_t n;
    bool go = true;
    int rc;
    if (d->kind == OT_DUPLICATE) {
        if ((rc = ot_ets_lookup(d->pt, pk, pkl, &o, &n)))
            return rc;
        if (!n)
            return 0; /* gone meanwhile */
        go = !d->match || d->match(o->vlen ? o->val : NULL, o->vlen, d->arg);
        if (go) {
            struct scratch b;
            unsigned char *kv = key_val(&b, pid, o->val, o->vlen);
            if (!kv) {
                ot_free(o);
                return -ENOMEM;
            }
            ot_ets_delete_object(kt, key, klen, kv, 8 + o->vlen);
            scratch_put(&b);
        }
    } else {
        if ((rc = ot_ets_lookup(kt, key, klen, &o, &n)))
            return rc;
        if (n && o->vlen >= 8 && memcmp(o->val, &pid.v, 8) == 0) {
            const unsigned char *val = (const unsigned char *)o->val + 8;
            size_t vl = o->vlen - 8;
            go = !d->match || d->match(vl ? val : NULL, vl, d->arg);
            if (go)
                ot_ets_delete_object(kt, key, klen, o->val, o->vlen);
        }
    }
    ot_free(o);
    if (go)
        ot_ets_delete(d->pt, pk, pkl);
    return 0;
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
    unsigned pp = reg_pid_part(&v, self);
    ot_tab pt = reg_pid_tab(&v, pp);
    ot_pid part = reg_part_pid(&v, pp);
    if (!reg_valid(&v))
        return -EBADF;
    unsigned char prefix[REG_PIDKEY_MAX];
    size_t plen = reg_pidkey(prefix, self, key, klen);
    struct drop d = {.pt = pt, .s = v.s, .nparts = v.nparts, .kind = v.kind, .match = match,
                     .arg = arg};
    rc = reg__pid_scan(pt, prefix, plen, drop_entry, &d);
    if (rc < 0)
        return rc;
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
    struct drop d = {
        .pt = pt,
        .s = s,
        .nparts = atomic_load_explicit(&s->nparts, memory_order_relaxed),
        .kind = atomic_load_explicit(&s->kind, memory_order_relaxed),
    };
    reg__pid_scan(pt, &pid.v, 8, drop_entry, &d);
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
