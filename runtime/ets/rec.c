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
    atomic_init(&r->adders, 0);
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

/* ---- hazard slots for counter adds (ets_int.h) ---------------------------- */

ets_hz ets__hz[ETS_HZ_MAX];
__thread unsigned ets__hz_mine __attribute__((tls_model("initial-exec")));
static _Atomic unsigned hz_high; /* slots ever handed out: the seal's scan bound */
static unsigned hz_free[ETS_HZ_MAX], hz_nfree; /* hz_mu */
static pthread_mutex_t hz_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t hz_key;
static pthread_once_t hz_once = PTHREAD_ONCE_INIT;
static bool hz_key_ok;

static void hz_release(void *slot)
{
    unsigned s = (unsigned)(uintptr_t)slot; /* slot + 1 */
    atomic_store_explicit(&ets__hz[s - 1].r, NULL, memory_order_relaxed); /* never left set */
    pthread_mutex_lock(&hz_mu);
    hz_free[hz_nfree++] = s;
    pthread_mutex_unlock(&hz_mu);
}

static void hz_key_init(void) { hz_key_ok = pthread_key_create(&hz_key, hz_release) == 0; }

unsigned ets__hz_claim(void)
{
    pthread_once(&hz_once, hz_key_init);
    if (!hz_key_ok)
        return 0;
    unsigned s = 0;
    pthread_mutex_lock(&hz_mu);
    if (hz_nfree)
        s = hz_free[--hz_nfree];
    else if (atomic_load_explicit(&hz_high, memory_order_relaxed) < ETS_HZ_MAX) /* hz_mu */
        /* seq_cst: a seal that read the bound before this sees our seal
         * check come after it (ets_int.h) */
        s = atomic_fetch_add_explicit(&hz_high, 1, memory_order_seq_cst) + 1;
    pthread_mutex_unlock(&hz_mu);
    if (s && pthread_setspecific(hz_key, (void *)(uintptr_t)s) != 0) {
        hz_release((void *)(uintptr_t)s);
        s = 0;
    }
    ets__hz_mine = s; /* 0: count on the record; asked again next time */
    return s;
}

int ets__rec_add(ets_rec *r, size_t off, int64_t incr, int64_t *result)
{
    if (r->vlen < off + 8)
        return -EINVAL;
    /* Wraps like OTP never does, but never traps. */
    return ets_rec_add_live(r, off, incr, result) ? 0 : -EAGAIN;
}

static inline void relax(unsigned *spins)
{
    if (++*spins > 64)
        sched_yield(); /* the adder's thread may be preempted mid-add */
    else
        __builtin_ia32_pause();
}

void ets__rec_seal(ets_rec *r)
{
    /* seq_cst, as the adds' announcements and checks (ets_int.h): an add
     * either sees the seal and adds nothing, or is announced (or counted)
     * before it, and is waited for here. */
    uint32_t a = atomic_fetch_or_explicit(&r->adders, ETS_REC_SEALED, memory_order_seq_cst);
    unsigned spins = 0;
    while (a & ~ETS_REC_SEALED) {
        relax(&spins);
        /* Pairs with the adder's release: its add is visible to our copy. */
        a = atomic_load_explicit(&r->adders, memory_order_acquire);
    }
    unsigned high = atomic_load_explicit(&hz_high, memory_order_seq_cst);
    for (unsigned i = 0; i < high; i++)
        while (atomic_load_explicit(&ets__hz[i].r, memory_order_seq_cst) == r)
            relax(&spins);
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
