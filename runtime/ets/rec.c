/* ETS records: allocation, hashing, value copies, counter adds and the small
 * vector that carries records a writer unlinked back to the front end. A
 * record's value sits first, 8-byte aligned and padded, so that counters
 * inside it can be updated with atomic adds and every copy reads whole words
 * atomically. */
#include "ets_int.h"

#include <stdlib.h>

/* Keys other than 8 bytes long (ets__hash handles those inline). */
uint64_t ets__hash_long(const void *k, size_t kl)
{
    const unsigned char *p = k;
    uint64_t h = (uint64_t)kl * 0x9e3779b97f4a7c15ull;
    while (kl >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = ets_fmix(h ^ w) + 0x9e3779b97f4a7c15ull;
        p += 8;
        kl -= 8;
    }
    if (kl) {
        uint64_t w = 0;
        memcpy(&w, p, kl);
        h = ets_fmix(h ^ w ^ 0x5bd1e9955bd1e995ull);
    }
    h = ets_fmix(h ^ 0x2545f4914f6cdd1dull);
    return h ? h : 1; /* 0 marks an empty hash slot */
}

ets_rec *ets__rec_new(const void *k, size_t kl, const void *v, size_t vl, uint64_t hash)
{
    ets_rec *r = malloc(ets_rec_size((uint32_t)kl, (uint32_t)vl));
    if (!r)
        return NULL;
    r->hash = hash;
    r->klen = (uint32_t)kl;
    r->vlen = (uint32_t)vl;
    unsigned char *val = ets_rec_val(r);
    if (vl)
        memcpy(val, v, vl);
    memset(val + vl, 0, ets_pad8(vl) - vl);
    memcpy(ets_rec_key(r), k, kl);
    return r;
}

void ets__val_copy(void *dst, const void *src, size_t vl)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t left = vl;
    while (left) {
        /* Pairs with the fetch_add of ets__rec_add: a counter word is read
         * whole, never torn. */
        uint64_t w = atomic_load_explicit((_Atomic uint64_t *)(uintptr_t)s, memory_order_relaxed);
        size_t n = left < 8 ? left : 8;
        memcpy(d, &w, n);
        d += n;
        s += 8;
        left -= n;
    }
}

bool ets__val_equal(const void *src, size_t sl, const void *v, size_t vl)
{
    if (sl != vl)
        return false;
    const unsigned char *s = src, *p = v;
    size_t left = vl;
    while (left) {
        /* As in ets__val_copy: counter words change under us, atomically. */
        uint64_t w = atomic_load_explicit((_Atomic uint64_t *)(uintptr_t)s, memory_order_relaxed);
        size_t n = left < 8 ? left : 8;
        if (memcmp(&w, p, n))
            return false;
        p += n;
        s += 8;
        left -= n;
    }
    return true;
}

int ets__rec_add(ets_rec *r, size_t off, int64_t incr, int64_t *result)
{
    if (r->vlen < off + 8)
        return -EINVAL;
    /* Pairs with the atomic word loads of every value copy (ets__val_copy):
     * counters change in place, never torn. Relaxed: the add is the whole
     * effect, nothing else is published with it. Wraps like OTP never does,
     * but never traps. */
    _Atomic int64_t *w = (_Atomic int64_t *)(uintptr_t)(ets_rec_val(r) + off);
    *result = atomic_fetch_add_explicit(w, incr, memory_order_relaxed) + incr;
    return 0;
}

int ets__vec_add(ets_vec *a, ets_rec *r)
{
    if (a->n == a->cap) {
        size_t cap = a->cap * 2;
        ets_rec **v = a->v == a->small ? malloc(cap * sizeof *v) : realloc(a->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        if (a->v == a->small)
            memcpy(v, a->small, sizeof a->small);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = r;
    return 0;
}

int ets__vec_push(ets_vec *a, ets_rec *r)
{
    if (a->n == a->cap) {
        size_t cap = a->cap * 2;
        ets_rec **v = a->v == a->small ? malloc(cap * sizeof *v) : realloc(a->v, cap * sizeof *v);
        if (!v) {
            /* Already unlinked: still reclaimed, only the caller's copy is lost. */
            ets__retire_rec(r);
            return -ENOMEM;
        }
        if (a->v == a->small)
            memcpy(v, a->small, sizeof a->small);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = r;
    return 0;
}

void ets__vec_fini(ets_vec *a)
{
    if (a->v != a->small)
        free(a->v);
    a->v = a->small;
    a->n = 0;
    a->cap = 8;
}
