/* The keyspace on one public ETS set (see store.h for the object layout).
 *
 * Why a stripe lock on writes: Redis runs commands one at a time, so INCR,
 * SET NX, EXPIRE and DEL are each atomic. ETS gives atomic single-object
 * operations, but not a compare-and-swap of a whole value, and
 * ot_ets_update_counter adds to a binary int64 while a Redis integer is
 * decimal text ("42"), so INCR must read, parse, format and write back. If
 * only INCR took a lock, a SET or DEL landing between its read and its write
 * would be overwritten and lost, which no serial order explains. So every
 * write (SET, DEL, INCR, EXPIRE, lazy expiry, FLUSHALL) holds the stripe lock
 * of its key for its read-modify-write; reads (GET, EXISTS, TTL) take no lock
 * and see either the old object or the new one whole, since each write is one
 * ETS insert or delete. 256 stripes make two writers on different keys
 * collide rarely. The lock is a test-and-set word that yields the process
 * (ot_yield) while it waits: holders are green processes that may be switched
 * out inside an ETS call, so a waiter must never hold its scheduler thread.
 *
 * Expiry is changed in place with ot_ets_update_counter on the header word,
 * under the stripe lock (the old value is known, so adding new - old sets it);
 * readers therefore load the header with a relaxed atomic load, as ets.h asks.
 * Expired keys are removed lazily when a command touches them and actively by
 * kv_store_expire_step, which walks the table round with ot_ets_next from a
 * saved cursor key, as Redis's active expiry samples its keys.
 *
 * ETS keys are one byte or more and Redis keys may be empty, so a key that
 * is empty or starts with a NUL byte is stored with one NUL byte in front;
 * every other key is stored as it is, without a copy. */
#include "examples/kv/store.h"

#include <errno.h>
#include <limits.h>
#include <otter.h>
#include <otter/ets.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "examples/kv/resp.h"

#define STRIPES 256
#define SMALL_VALUE 256

struct stripe {
    atomic_int lock;
    atomic_long volatile_keys; /* keys of this stripe with an expiry; written under lock */
    char pad[64 - sizeof(atomic_int) - sizeof(atomic_long)];
};

static struct stripe stripes[STRIPES] __attribute__((aligned(64)));
static ot_tab tab;
static atomic_ullong expired_total;
/* The active-expiry cursor: only the expiry process touches it. */
static char *cursor, *nextbuf;
static size_t cursor_len, cursor_cap, next_cap;

int64_t kv_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The stripe of a stored (encoded) key: the hash of the Redis key itself, so
 * that kv_store_lock_keys can find it from the unencoded key. */
static size_t stripe_hash(const void *k, size_t kl) {
    const unsigned char *p = k;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < kl; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29)) % STRIPES;
}

static size_t stripe_of(const void *k, size_t kl) {
    if (kl && ((const char *)k)[0] == '\0')
        return stripe_hash((const char *)k + 1, kl - 1);
    return stripe_hash(k, kl);
}

static void stripe_lock(size_t s) {
    atomic_int *l = &stripes[s].lock;
    for (unsigned spins = 0;; spins++) {
        /* Pairs with the release store in stripe_unlock. */
        if (atomic_load_explicit(l, memory_order_relaxed) == 0 &&
            atomic_exchange_explicit(l, 1, memory_order_acquire) == 0)
            return;
        if (spins >= 32)
            ot_yield();
        else
            __builtin_ia32_pause();
    }
}

static void stripe_unlock(size_t s) {
    /* Pairs with the acquire exchange in stripe_lock. */
    atomic_store_explicit(&stripes[s].lock, 0, memory_order_release);
}

/* The header word; relaxed atomic because update_counter changes it in place. */
static int64_t load_exp(const void *v) {
    if (((uintptr_t)v & 7) == 0)
        return __atomic_load_n((const int64_t *)v, __ATOMIC_RELAXED);
    int64_t e;
    memcpy(&e, v, 8);
    return e;
}

static int expired(int64_t exp, kv_clock *now) {
    return exp != 0 && exp <= kv_clock_ms(now);
}

int kv_store_open(void) {
    ot_ets_opts o = {.type = OT_ETS_SET,
                     .access = OT_ETS_PUBLIC,
                     .read_concurrency = true,
                     .write_concurrency = true};
    tab = ot_ets_new("kv_keyspace", &o);
    if (!tab.v)
        return -errno;
    for (size_t i = 0; i < STRIPES; i++) {
        atomic_store_explicit(&stripes[i].lock, 0, memory_order_relaxed);
        atomic_store_explicit(&stripes[i].volatile_keys, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&expired_total, 0, memory_order_relaxed);
    cursor_len = 0;
    return 0;
}

void kv_store_close(void) {
    if (tab.v)
        ot_ets_delete_table(tab);
    tab = OT_NOTAB;
    free(cursor);
    free(nextbuf);
    cursor = nextbuf = NULL;
    cursor_len = cursor_cap = next_cap = 0;
}

/* ---- reads ------------------------------------------------------------- */

struct peek {
    int found;
    int64_t exp;
    kv_val_fn fn;
    void *arg;
    kv_clock *now;
};

static void peek_cb(const void *v, size_t vl, void *arg) {
    struct peek *p = arg;
    if (vl < 8)
        return;
    p->found = 1;
    p->exp = load_exp(v);
    if (p->fn && !expired(p->exp, p->now))
        p->fn((const char *)v + 8, vl - 8, p->arg);
}

static void volatile_add(size_t s, long d) {
    /* Written under the stripe lock; relaxed because INFO only sums them. */
    atomic_fetch_add_explicit(&stripes[s].volatile_keys, d, memory_order_relaxed);
}

/* Under the stripe lock: removes k if it is still expired; 1 if it did. */
static int drop_expired_locked(size_t s, const void *k, size_t kl, kv_clock *now) {
    struct peek p = {0};
    if (ot_ets_read(tab, k, kl, peek_cb, &p) > 0 && p.found && expired(p.exp, now)) {
        ot_ets_delete(tab, k, kl);
        volatile_add(s, -1);
        /* A statistic only. */
        atomic_fetch_add_explicit(&expired_total, 1, memory_order_relaxed);
        return 1;
    }
    return 0;
}

static int lazy_expire(const void *k, size_t kl, kv_clock *now) {
    size_t s = stripe_of(k, kl);
    stripe_lock(s);
    int r = drop_expired_locked(s, k, kl, now);
    stripe_unlock(s);
    return r;
}

static int raw_get(const void *k, size_t kl, kv_clock *now, kv_val_fn fn, void *arg, int locked) {
    struct peek p = {.fn = fn, .arg = arg, .now = now};
    if (ot_ets_read(tab, k, kl, peek_cb, &p) <= 0 || !p.found)
        return 0;
    if (expired(p.exp, now)) {
        if (locked)
            drop_expired_locked(stripe_of(k, kl), k, kl, now);
        else
            lazy_expire(k, kl, now);
        return 0;
    }
    return 1;
}

static int64_t raw_pttl(const void *k, size_t kl, kv_clock *now) {
    struct peek p = {.now = now};
    if (ot_ets_read(tab, k, kl, peek_cb, &p) <= 0 || !p.found)
        return -2;
    if (expired(p.exp, now)) {
        lazy_expire(k, kl, now);
        return -2;
    }
    return p.exp ? p.exp - kv_clock_ms(now) : -1;
}

size_t kv_store_size(void) {
    return ot_ets_size(tab);
}

size_t kv_store_volatile(void) {
    long n = 0;
    for (size_t i = 0; i < STRIPES; i++)
        n += atomic_load_explicit(&stripes[i].volatile_keys, memory_order_relaxed);
    return n > 0 ? (size_t)n : 0;
}

uint64_t kv_store_expired_total(void) {
    return atomic_load_explicit(&expired_total, memory_order_relaxed);
}

/* ---- writes (each under its key's stripe lock) ------------------------- */

/* Writes the object (k, [at][v]) with one ETS insert. */
static int put(const void *k, size_t kl, const void *v, size_t vl, int64_t at) {
    char small[SMALL_VALUE + 8];
    char *buf = small;
    if (vl > SMALL_VALUE) {
        buf = ot_alloc(vl + 8);
        if (!buf)
            return -ENOMEM;
    }
    memcpy(buf, &at, 8);
    memcpy(buf + 8, v, vl);
    int r = ot_ets_insert(tab, k, kl, buf, vl + 8);
    if (buf != small)
        ot_free(buf);
    return r;
}

/* The live object's header, under the lock: 1 live (and *exp), 0 none. An
 * expired object is removed here, as Redis's lookupKeyWrite does. */
static int live_locked(size_t s, const void *k, size_t kl, kv_clock *now, int64_t *exp) {
    struct peek p = {0};
    if (ot_ets_read(tab, k, kl, peek_cb, &p) <= 0 || !p.found)
        return 0;
    if (expired(p.exp, now)) {
        drop_expired_locked(s, k, kl, now);
        return 0;
    }
    *exp = p.exp;
    return 1;
}

/* The GET reply of SET ... GET: the old live value's bulk, or null. */
static int reply_old(const void *k, size_t kl, kv_out *o) {
    ot_ets_obj *objs = NULL;
    size_t n = 0;
    int r = ot_ets_lookup(tab, k, kl, &objs, &n);
    if (r < 0)
        return r;
    if (n == 1 && objs[0].vlen >= 8)
        kv_reply_bulk(o, (const char *)objs[0].val + 8, objs[0].vlen - 8);
    else
        kv_reply_null(o);
    if (objs)
        ot_free(objs);
    return 0;
}

static int raw_set(const void *k, size_t kl, const void *v, size_t vl, int64_t at, int flags,
                   kv_clock *now, kv_out *getout) {
    size_t s = stripe_of(k, kl);
    stripe_lock(s);
    int64_t old_exp = 0;
    int live = live_locked(s, k, kl, now, &old_exp);
    int r = 0;
    if (flags & KV_SET_GET) {
        if (live)
            r = reply_old(k, kl, getout);
        else
            kv_reply_null(getout);
    }
    if (r < 0 || (live && (flags & KV_SET_NX)) || (!live && (flags & KV_SET_XX)))
        goto out;
    if ((flags & KV_SET_KEEPTTL) && live)
        at = old_exp;
    r = put(k, kl, v, vl, at);
    if (r == 0) {
        volatile_add(s, (at != 0) - (live && old_exp != 0));
        r = 1;
    }
out:
    stripe_unlock(s);
    return r;
}

static int raw_del(const void *k, size_t kl, kv_clock *now) {
    size_t s = stripe_of(k, kl);
    stripe_lock(s);
    int64_t exp = 0;
    int live = live_locked(s, k, kl, now, &exp);
    if (live) {
        ot_ets_delete(tab, k, kl);
        if (exp)
            volatile_add(s, -1);
    }
    stripe_unlock(s);
    return live;
}

struct num {
    int ok;
    long long v;
};

static void num_cb(const void *v, size_t vl, void *arg) {
    struct num *n = arg;
    n->ok = vl >= 8 && kv_str2ll((const char *)v + 8, vl - 8, &n->v);
}

static int raw_incrby(const void *k, size_t kl, int64_t by, kv_clock *now, int64_t *out) {
    size_t s = stripe_of(k, kl);
    stripe_lock(s);
    int64_t exp = 0;
    long long cur = 0;
    int r = 0;
    if (live_locked(s, k, kl, now, &exp)) {
        struct num n = {0};
        ot_ets_read(tab, k, kl, num_cb, &n);
        if (!n.ok) {
            r = -EINVAL;
            goto out;
        }
        cur = n.v;
    }
    if ((by < 0 && cur < 0 && by < LLONG_MIN - cur) ||
        (by > 0 && cur > 0 && by > LLONG_MAX - cur)) {
        r = -ERANGE;
        goto out;
    }
    cur += by;
    /* The object built in place, [expiry][decimal text]: no second copy, and
     * no memcpy of a length GCC cannot bound (through put, -O3 saw a copy of
     * up to 256 bytes out of a 24-byte buffer: -Warray-bounds). */
    char obj[8 + 24];
    memcpy(obj, &exp, 8);
    size_t tl = kv_ll2str(obj + 8, cur);
    r = ot_ets_insert(tab, k, kl, obj, 8 + tl);
    if (r == 0)
        *out = cur;
out:
    stripe_unlock(s);
    return r;
}

static int raw_expire(const void *k, size_t kl, int64_t at, int flags, kv_clock *now) {
    size_t s = stripe_of(k, kl);
    stripe_lock(s);
    int64_t exp = 0;
    int r = 0;
    if (!live_locked(s, k, kl, now, &exp))
        goto out;
    /* Redis: a key without expiry counts as an infinite TTL for GT and LT. */
    if (((flags & KV_EXP_NX) && exp) || ((flags & KV_EXP_XX) && !exp) ||
        ((flags & KV_EXP_GT) && (!exp || at <= exp)) || ((flags & KV_EXP_LT) && exp && at >= exp))
        goto out;
    if (at <= kv_clock_ms(now)) {
        ot_ets_delete(tab, k, kl);
        if (exp)
            volatile_add(s, -1);
        r = 1;
        goto out;
    }
    int64_t res;
    r = ot_ets_update_counter(tab, k, kl, 0, at - exp, NULL, &res);
    if (r == 0) {
        if (!exp)
            volatile_add(s, 1);
        r = 1;
    }
out:
    stripe_unlock(s);
    return r;
}

/* Under the stripe lock: a blind write with no expiry (SET's plain form). */
static int set_plain_locked(size_t s, const void *k, size_t kl, const void *v, size_t vl,
                            kv_clock *now) {
    int64_t old_exp = 0;
    int live = live_locked(s, k, kl, now, &old_exp);
    int r = put(k, kl, v, vl, 0);
    if (r == 0 && live && old_exp)
        volatile_add(s, -1);
    return r;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int raw_mset(const void *const *p, const size_t *len, size_t n, kv_clock *now) {
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++)
        r = set_plain_locked(stripe_of(p[2 * i], len[2 * i]), p[2 * i], len[2 * i], p[2 * i + 1],
                             len[2 * i + 1], now);
    return r;
}

size_t kv_store_lock_keys(const void *const *k, const size_t *kl, size_t step, size_t n,
                          size_t *held) {
    for (size_t i = 0; i < n; i++)
        held[i] = stripe_hash(k[i * step], kl[i * step]);
    qsort(held, n, sizeof *held, cmp_size);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || held[u - 1] != held[i])
            held[u++] = held[i];
    /* Ascending order, each stripe once: no deadlock with another multi-key
     * command or FLUSHALL, which lock in the same order. */
    for (size_t i = 0; i < u; i++)
        stripe_lock(held[i]);
    return u;
}

void kv_store_unlock_keys(const size_t *held, size_t u) {
    for (size_t i = u; i-- > 0;)
        stripe_unlock(held[i]);
}

static bool match_all(const void *k, size_t kl, const void *v, size_t vl, void *arg) {
    return true;
}

void kv_store_flush(void) {
    /* All stripes, in order, so FLUSHALL is atomic against every write and
     * cannot deadlock with single-key writers (they hold one stripe). */
    for (size_t i = 0; i < STRIPES; i++)
        stripe_lock(i);
    size_t n = 0;
    ot_ets_select_delete(tab, match_all, NULL, &n);
    for (size_t i = 0; i < STRIPES; i++)
        atomic_store_explicit(&stripes[i].volatile_keys, 0, memory_order_relaxed);
    for (size_t i = STRIPES; i-- > 0;)
        stripe_unlock(i);
}

/* ---- active expiry ------------------------------------------------------ */

/* Moves the cursor to the key after it (or to the first key): 0, or
 * -ENOENT at the end of the table. Two buffers, swapped, so a walk does not
 * allocate per key. */
static int advance(void) {
    for (;;) {
        if (!nextbuf) {
            nextbuf = malloc(64);
            if (!nextbuf)
                return -ENOMEM;
            next_cap = 64;
        }
        size_t need = 0;
        int r = cursor_len ? ot_ets_next(tab, cursor, cursor_len, nextbuf, next_cap, &need)
                           : ot_ets_first(tab, nextbuf, next_cap, &need);
        if (r == -ERANGE) {
            char *grown = realloc(nextbuf, need);
            if (!grown)
                return -ENOMEM;
            nextbuf = grown;
            next_cap = need;
            continue;
        }
        if (r == 0) {
            char *t = cursor;
            size_t tc = cursor_cap;
            cursor = nextbuf;
            cursor_cap = next_cap;
            cursor_len = need;
            nextbuf = t;
            next_cap = tc;
        }
        return r;
    }
}

size_t kv_store_expire_step(size_t sample, int64_t now_ms) {
    kv_clock clk = {now_ms}, *now = &clk;
    size_t removed = 0;
    for (size_t i = 0; i < sample; i++) {
        if (advance() != 0) {
            cursor_len = 0; /* wrap round */
            if (advance() != 0)
                break;
        }
        struct peek p = {0};
        if (ot_ets_read(tab, cursor, cursor_len, peek_cb, &p) > 0 && p.found &&
            expired(p.exp, now)) {
            removed += (size_t)lazy_expire(cursor, cursor_len, now);
        }
    }
    return removed;
}

/* ---- key encoding and the public entry points ---------------------------- */

struct ekey {
    const void *p;
    size_t n;
    char *heap;
    char buf[128];
};

static int ekey_init(struct ekey *e, const void *k, size_t kl) {
    e->heap = NULL;
    if (kl > 0 && ((const char *)k)[0] != '\0') {
        e->p = k;
        e->n = kl;
        return 0;
    }
    char *b = e->buf;
    if (kl + 1 > sizeof e->buf) {
        b = e->heap = ot_alloc(kl + 1);
        if (!b)
            return -ENOMEM;
    }
    b[0] = '\0';
    if (kl)
        memcpy(b + 1, k, kl);
    e->p = b;
    e->n = kl + 1;
    return 0;
}

static void ekey_fini(struct ekey *e) {
    if (e->heap)
        ot_free(e->heap);
}

int kv_store_get(const void *k, size_t kl, kv_clock *now, kv_val_fn fn, void *arg) {
    struct ekey e;
    if (ekey_init(&e, k, kl) < 0)
        return 0;
    int r = raw_get(e.p, e.n, now, fn, arg, 0);
    ekey_fini(&e);
    return r;
}

int kv_store_exists(const void *k, size_t kl, kv_clock *now) {
    return kv_store_get(k, kl, now, NULL, NULL);
}

int64_t kv_store_pttl(const void *k, size_t kl, kv_clock *now) {
    struct ekey e;
    if (ekey_init(&e, k, kl) < 0)
        return -2;
    int64_t r = raw_pttl(e.p, e.n, now);
    ekey_fini(&e);
    return r;
}

int kv_store_set(const void *k, size_t kl, const void *v, size_t vl, int64_t at, int flags,
                 kv_clock *now, kv_out *getout) {
    struct ekey e;
    if (ekey_init(&e, k, kl) < 0)
        return -ENOMEM;
    int r = raw_set(e.p, e.n, v, vl, at, flags, now, getout);
    ekey_fini(&e);
    return r;
}

int kv_store_del(const void *k, size_t kl, kv_clock *now) {
    struct ekey e;
    if (ekey_init(&e, k, kl) < 0)
        return 0;
    int r = raw_del(e.p, e.n, now);
    ekey_fini(&e);
    return r;
}

int kv_store_incrby(const void *k, size_t kl, int64_t by, kv_clock *now, int64_t *out) {
    struct ekey e;
    if (ekey_init(&e, k, kl) < 0)
        return -ENOMEM;
    int r = raw_incrby(e.p, e.n, by, now, out);
    ekey_fini(&e);
    return r;
}

int kv_store_expire(const void *k, size_t kl, int64_t at, int flags, kv_clock *now) {
    struct ekey e;
    if (ekey_init(&e, k, kl) < 0)
        return 0;
    int r = raw_expire(e.p, e.n, at, flags, now);
    ekey_fini(&e);
    return r;
}

int kv_store_mset(const void *const *p, const size_t *len, size_t n) {
    /* Keys encoded first (see ekey), so the locked part does no allocation. */
    struct ekey *e = ot_alloc(n * sizeof *e);
    const void **ep = ot_alloc(2 * n * sizeof *ep);
    size_t *el = ot_alloc(2 * n * sizeof *el);
    size_t *held = ot_alloc(n * sizeof *held);
    int r = -ENOMEM;
    size_t done = 0;
    if (!e || !ep || !el || !held)
        goto out;
    for (; done < n; done++) {
        if (ekey_init(&e[done], p[2 * done], len[2 * done]) < 0)
            goto out;
        ep[2 * done] = e[done].p;
        el[2 * done] = e[done].n;
        ep[2 * done + 1] = p[2 * done + 1];
        el[2 * done + 1] = len[2 * done + 1];
    }
    size_t u = kv_store_lock_keys(p, len, 2, n, held);
    kv_clock now = {0};
    r = raw_mset(ep, el, n, &now);
    kv_store_unlock_keys(held, u);
out:
    for (size_t i = 0; i < done; i++)
        ekey_fini(&e[i]);
    ot_free(e);
    ot_free(ep);
    ot_free(el);
    ot_free(held);
    return r;
}

int kv_store_get_locked(const void *k, size_t kl, kv_clock *now, kv_val_fn fn, void *arg) {
    struct ekey e;
    if (ekey_init(&e, k, kl) < 0)
        return 0;
    int r = raw_get(e.p, e.n, now, fn, arg, 1);
    ekey_fini(&e);
    return r;
}
