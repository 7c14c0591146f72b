/* The registry's readers: lookup, match, count_match, keys, count, dispatch,
 * whereis_name. Each reads the partition tables directly (ot_ets_read, no
 * message to the registry), from any process or foreign thread. Entries are
 * copied out of the table inside the read callback with memcpy only (the
 * callback must not yield), then dead registrants are dropped: an entry
 * vanishes for readers the moment its process stops being alive, before
 * its partition has removed it. Everything a user callback sees is a copy,
 * so user callbacks run outside any table and may block. */
#include "registry_int.h"

#include <stdlib.h>

static inline size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

void reg__coll_init(struct reg_coll *c)
{
    c->buf = c->small;
    c->len = 0;
    c->cap = sizeof c->small;
    c->n = 0;
    c->oom = false;
    c->skip = OT_NOPID;
}

void reg__coll_fini(struct reg_coll *c)
{
    if (c->buf != c->small)
        free(c->buf);
}

/* Collected entry: [pid u64][vlen u64][value, padded to 8]. malloc, not
 * ot_alloc: this runs inside the table's read section. */
static void coll_cb(const void *v, size_t vl, void *arg)
{
    struct reg_coll *c = arg;
    if (c->oom || vl < 8)
        return;
    size_t need = 16 + pad8(vl - 8);
    if (c->len + need > c->cap) {
        size_t cap = c->cap * 2 > c->len + need ? c->cap * 2 : c->len + need;
        unsigned char *nb = malloc(cap);
        if (!nb) {
            c->oom = true;
            return;
        }
        memcpy(nb, c->buf, c->len);
        if (c->buf != c->small)
            free(c->buf);
        c->buf = nb;
        c->cap = cap;
    }
    unsigned char *p = c->buf + c->len;
    uint64_t len = vl - 8;
    memcpy(p, v, 8);
    memcpy(p + 8, &len, 8);
    memcpy(p + 16, (const unsigned char *)v + 8, len);
    c->len += need;
    c->n++;
}

bool reg__coll_next(const struct reg_coll *c, size_t *off, ot_reg_entry *e)
{
    if (*off >= c->len)
        return false;
    const unsigned char *p = c->buf + *off;
    uint64_t len;
    memcpy(&e->pid.v, p, 8);
    memcpy(&len, p + 8, 8);
    e->vlen = len;
    e->value = len ? p + 16 : NULL;
    *off += 16 + pad8(len);
    return true;
}

int reg__coll_read(struct reg_coll *c, ot_tab t, const void *k, size_t kl)
{
    size_t start = c->len;
    int rc = ot_ets_read(t, k, kl, coll_cb, c);
    if (rc < 0)
        return rc;
    if (c->oom)
        return -ENOMEM;
    /* Drop the dead (and the skipped) in place. */
    size_t in = start, out = start;
    ot_reg_entry e;
    while (reg__coll_next(c, &in, &e)) {
        size_t sz = 16 + pad8(e.vlen);
        if (e.pid.v == c->skip.v || !ot_is_alive(e.pid)) {
            c->n--;
            continue;
        }
        if (out != in - sz)
            memmove(c->buf + out, c->buf + in - sz, sz);
        out += sz;
    }
    c->len = out;
    return 0;
}

/* The live entries of key in every partition that may hold it. */
static int collect(ot_reg r, const void *key, size_t klen, struct reg_coll *c)
{
    int rc = reg_check_key(key, klen);
    if (rc)
        return rc;
    struct reg_view v;
    if ((rc = reg_open(r, &v)))
        return rc;
    if (v.kind == OT_UNIQUE) {
        ot_tab kt = reg_key_tab(&v, (unsigned)(reg_hash(key, klen) % v.nparts));
        if (!reg_valid(&v))
            return -EBADF;
        return reg__coll_read(c, kt, key, klen);
    }
    for (unsigned p = 0; p < v.nparts; p++) {
        ot_tab kt = reg_key_tab(&v, p);
        if (!reg_valid(&v))
            return -EBADF;
        if ((rc = reg__coll_read(c, kt, key, klen)))
            return rc;
    }
    return 0;
}

/* Copies the collected entries that match accepts into one block of the
 * caller's heap. match runs once per entry (it may count or keep state): an
 * entry it refuses has its pid cleared in c, which no live entry has. */
static int build(struct reg_coll *c, ot_reg_match_fn match, void *arg, ot_reg_entry **out,
                 size_t *n)
{
    size_t cnt = 0, bytes = 0, off = 0, at = 0;
    ot_reg_entry e;
    while (reg__coll_next(c, &off, &e)) {
        if (match && !match(e.value, e.vlen, arg)) {
            memset(c->buf + at, 0, 8); /* the entry's pid */
        } else {
            cnt++;
            bytes += pad8(e.vlen);
        }
        at = off;
    }
    if (!cnt)
        return 0;
    ot_reg_entry *o = ot_alloc(cnt * sizeof *o + bytes);
    if (!o)
        return -ENOMEM;
    unsigned char *p = (unsigned char *)(o + cnt);
    size_t i = 0;
    off = 0;
    while (i < cnt && reg__coll_next(c, &off, &e)) {
        if (!e.pid.v)
            continue;
        o[i] = (ot_reg_entry){.pid = e.pid, .value = e.vlen ? p : NULL, .vlen = e.vlen};
        if (e.vlen)
            memcpy(p, e.value, e.vlen);
        p += pad8(e.vlen);
        i++;
    }
    *out = o;
    *n = i;
    return 0;
}

static int lookup_common(ot_reg r, const void *key, size_t klen, ot_reg_match_fn match, void *arg,
                         ot_reg_entry **out, size_t *n)
{
    if (!out || !n)
        return -EINVAL;
    *out = NULL;
    *n = 0;
    struct reg_coll c;
    reg__coll_init(&c);
    int rc = collect(r, key, klen, &c);
    if (!rc)
        rc = build(&c, match, arg, out, n);
    reg__coll_fini(&c);
    return rc;
}

OT_API int ot_registry_lookup(ot_reg r, const void *key, size_t klen, ot_reg_entry **out,
                              size_t *n)
{
    return lookup_common(r, key, klen, NULL, NULL, out, n);
}

OT_API int ot_registry_match(ot_reg r, const void *key, size_t klen, ot_reg_match_fn match,
                             void *arg, ot_reg_entry **out, size_t *n)
{
    if (!match)
        return -EINVAL;
    return lookup_common(r, key, klen, match, arg, out, n);
}

OT_API int ot_registry_count_match(ot_reg r, const void *key, size_t klen, ot_reg_match_fn match,
                                   void *arg)
{
    struct reg_coll c;
    reg__coll_init(&c);
    int rc = collect(r, key, klen, &c);
    if (!rc) {
        size_t off = 0, cnt = 0;
        ot_reg_entry e;
        while (reg__coll_next(&c, &off, &e))
            cnt += !match || match(e.value, e.vlen, arg);
        rc = cnt > INT32_MAX ? INT32_MAX : (int)cnt;
    }
    reg__coll_fini(&c);
    return rc;
}

OT_API int ot_registry_dispatch(ot_reg r, const void *key, size_t klen,
                                void (*fn)(const ot_reg_entry *e, size_t n, void *arg),
                                void *arg)
{
    if (!fn)
        return -EINVAL;
    int rc = reg_check_key(key, klen);
    if (rc)
        return rc;
    struct reg_view v;
    if ((rc = reg_open(r, &v)))
        return rc;
    unsigned first = 0, end = v.nparts;
    if (v.kind == OT_UNIQUE) {
        first = (unsigned)(reg_hash(key, klen) % v.nparts);
        end = first + 1;
    }
    for (unsigned p = first; p < end && !rc; p++) {
        ot_tab kt = reg_key_tab(&v, p);
        if (!reg_valid(&v))
            return -EBADF;
        struct reg_coll c;
        reg__coll_init(&c);
        rc = reg__coll_read(&c, kt, key, klen);
        if (!rc && c.n) {
            /* One array for the partition's entries, pointing into c. */
            ot_reg_entry small[16];
            ot_reg_entry *es = c.n <= 16 ? small : malloc(c.n * sizeof *es);
            if (es) {
                size_t off = 0, i = 0;
                while (i < c.n && reg__coll_next(&c, &off, &es[i]))
                    i++;
                fn(es, i, arg);
                if (es != small)
                    free(es);
            } else {
                rc = -ENOMEM;
            }
        }
        reg__coll_fini(&c);
    }
    return rc;
}

OT_API size_t ot_registry_count(ot_reg r)
{
    struct reg_view v;
    if (reg_open(r, &v)) {
        errno = EBADF;
        return 0;
    }
    size_t total = 0;
    for (unsigned p = 0; p < v.nparts; p++) {
        ot_tab kt = reg_key_tab(&v, p);
        if (!reg_valid(&v)) {
            errno = EBADF;
            return 0;
        }
        size_t n = ot_ets_size(kt);
        if (!n && errno == EBADF)
            return 0;
        total += n;
    }
    return total;
}

/* Keys gathered from pid-table keys ([pid][klen][key][nonce]) into a
 * growable buffer: [klen u64][key padded to 8]... */
struct keys_acc {
    unsigned char *buf;
    size_t len, cap, n, bytes;
};

static int keys_cb(const unsigned char *pk, size_t pkl, void *arg)
{
    struct keys_acc *a = arg;
    uint32_t kl;
    memcpy(&kl, pk + 8, 4);
    if (pkl != 12 + (size_t)kl + 8)
        return 0;
    size_t need = 8 + pad8(kl);
    if (a->len + need > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        while (cap < a->len + need)
            cap *= 2;
        unsigned char *nb = realloc(a->buf, cap);
        if (!nb)
            return -ENOMEM;
        a->buf = nb;
        a->cap = cap;
    }
    uint64_t l = kl;
    memcpy(a->buf + a->len, &l, 8);
    memcpy(a->buf + a->len + 8, pk + 12, kl);
    a->len += need;
    a->n++;
    a->bytes += pad8(kl);
    return 0;
}

OT_API int ot_registry_keys(ot_reg r, ot_pid pid, ot_reg_key **out, size_t *n)
{
    if (!out || !n)
        return -EINVAL;
    *out = NULL;
    *n = 0;
    struct reg_view v;
    int rc = reg_open(r, &v);
    if (rc)
        return rc;
    if (!pid.v || !ot_is_alive(pid))
        return 0;
    ot_tab pt = reg_pid_tab(&v, reg_pid_part(&v, pid));
    if (!reg_valid(&v))
        return -EBADF;
    struct keys_acc a = {0};
    rc = reg__pid_scan(pt, &pid.v, 8, keys_cb, &a);
    ot_reg_key *o = NULL;
    if (!rc && a.n) {
        o = ot_alloc(a.n * sizeof *o + a.bytes);
        if (!o)
            rc = -ENOMEM;
    }
    if (o) {
        unsigned char *p = (unsigned char *)(o + a.n);
        size_t off = 0;
        for (size_t i = 0; i < a.n; i++) {
            uint64_t kl;
            memcpy(&kl, a.buf + off, 8);
            memcpy(p, a.buf + off + 8, kl);
            o[i] = (ot_reg_key){.key = p, .klen = kl};
            p += pad8(kl);
            off += 8 + pad8(kl);
        }
        *out = o;
        *n = a.n;
    }
    free(a.buf);
    return rc;
}

/* The holder of a unique key, straight from its set (no copy but the pid). */
static void holder_cb(const void *v, size_t vl, void *arg)
{
    if (vl >= 8)
        memcpy(arg, v, 8);
}

OT_API ot_pid ot_registry_whereis_name(ot_reg r, const void *key, size_t klen)
{
    int rc = reg_check_key(key, klen);
    struct reg_view v;
    if (!rc)
        rc = reg_open(r, &v);
    if (!rc && v.kind != OT_UNIQUE)
        rc = -EINVAL;
    if (rc) {
        errno = -rc;
        return OT_NOPID;
    }
    ot_tab kt = reg_key_tab(&v, (unsigned)(reg_hash(key, klen) % v.nparts));
    if (!reg_valid(&v)) {
        errno = EBADF;
        return OT_NOPID;
    }
    ot_pid p = OT_NOPID;
    rc = ot_ets_read(kt, key, klen, holder_cb, &p.v);
    if (rc < 0) {
        errno = -rc;
        return OT_NOPID;
    }
    if (!p.v || !ot_is_alive(p)) {
        errno = ENOENT;
        return OT_NOPID;
    }
    return p;
}
