/* Model-based tests of ETS, one per table type: a million random operations
 * (insert, insert_new, delete, delete_object, lookup, take, update_counter,
 * member, first/next/prev/last, size) run against a public table and against
 * a plain sequential model kept here, and every result must match exactly,
 * step by step. Keys are 620 byte strings (short ones over {00, 61, ff} that
 * are prefixes of one another, and longer ones), so the memcmp-then-length
 * order and the hash walk order are both exercised. The hash tables' walk
 * order is modelled too: (ets__hash(key), key bytes). The seed is fixed
 * (OT_SEED overrides it) and printed with every failure. These run on the
 * test's own thread, a foreign thread: no runtime needed; the *_big ones
 * start it, and take the table past 2,048 slots (fill). */
#include <criterion/criterion.h>
#include <otter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ets/ets_int.h"

/* A big run fills and empties its table FILL_ROUNDS times. TSan spent 267 s
 * on the eight at 200,000 ops and four rounds, mostly in the fills (each
 * 240,000 writes): it does 100,000 ops and one round. */
#if defined(OT_TSAN)
#define MODEL_OPS 100000
#define FILL_ROUNDS 1
#elif defined(OT_SANITIZE)
#define MODEL_OPS 200000
#define FILL_ROUNDS 4
#else
#define MODEL_OPS 1000000
#define FILL_ROUNDS 4
#endif
#define FILL_PERIOD (MODEL_OPS / FILL_ROUNDS) /* a fill in the middle of each */

#define NKEYS 620
#define MAXV 12
#define VMAX 24

typedef struct { unsigned char b[VMAX]; size_t len; } mval;
typedef struct {
    unsigned char k[24];
    size_t kl;
    uint64_t hash;
    size_t n; /* objects */
    mval v[MAXV];
} mkey;

static mkey keys[NKEYS];
static uint64_t rng;
static uint64_t seed;
static size_t step;

#define CHECK(c, ...)                                                                     \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            char m_[256];                                                                 \
            snprintf(m_, sizeof m_, __VA_ARGS__);                                         \
            cr_assert_fail("OT_SEED=%llu step %zu: %s (%s)", (unsigned long long)seed,    \
                           step, m_, #c);                                                 \
        }                                                                                 \
    } while (0)

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void init_keys(void)
{
    static const unsigned char alpha[3] = {0x00, 0x61, 0xff};
    size_t n = 0;
    for (size_t len = 1; len <= 4; len++) {
        size_t count = 1;
        for (size_t i = 0; i < len; i++)
            count *= 3;
        for (size_t c = 0; c < count; c++) {
            size_t x = c;
            for (size_t i = 0; i < len; i++) {
                keys[n].k[len - 1 - i] = alpha[x % 3];
                x /= 3;
            }
            keys[n++].kl = len;
        }
    }
    uint64_t x = 12345;
    while (n < NKEYS) { /* longer keys: 5 to 20 bytes */
        keys[n].kl = 5 + n % 16;
        for (size_t i = 0; i < keys[n].kl; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            keys[n].k[i] = (unsigned char)(x >> 56);
        }
        n++;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        keys[i].hash = ets__hash(keys[i].k, keys[i].kl);
        keys[i].n = 0;
    }
    const char *s = getenv("OT_SEED");
    seed = s ? strtoull(s, NULL, 0) : 0x5eed1234ull;
    rng = seed ? seed : 1;
}

static int type_;

/* The table's walk order for model keys a and b. */
static int korder(const mkey *a, const mkey *b)
{
    if (type_ != OT_ETS_ORDERED_SET && a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    return ets_keycmp(a->k, a->kl, b->k, b->kl);
}

static void rand_val(mval *v)
{
    static const size_t lens[] = {0, 3, 8, 8, 16, 16, 24};
    v->len = lens[rnd() % 7];
    for (size_t i = 0; i < v->len; i++)
        v->b[i] = (unsigned char)(rnd() % 4); /* few values: bags see equal ones */
}

static bool val_eq(const mval *a, const void *b, size_t bl)
{
    return a->len == bl && memcmp(a->b, b, bl) == 0;
}

static void model_remove(mkey *m, size_t i)
{
    memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof m->v[0]);
    m->n--;
}

static size_t model_size(void)
{
    size_t n = 0;
    for (size_t i = 0; i < NKEYS; i++)
        n += keys[i].n;
    return n;
}

/* Model insert; returns false when the model cannot hold another object. */
static bool model_insert(mkey *m, const mval *v)
{
    if (type_ == OT_ETS_SET || type_ == OT_ETS_ORDERED_SET) {
        m->v[0] = *v;
        m->n = 1;
        return true;
    }
    if (type_ == OT_ETS_BAG)
        for (size_t i = 0; i < m->n; i++)
            if (val_eq(&m->v[i], v->b, v->len))
                return true;
    if (m->n == MAXV)
        return false;
    m->v[m->n++] = *v;
    return true;
}

static void check_objs(const mkey *m, const ot_ets_obj *o, size_t n, const char *what)
{
    CHECK(n == m->n, "%s: %zu objects, model %zu", what, n, m->n);
    for (size_t i = 0; i < n; i++) {
        CHECK(o[i].klen == m->kl && memcmp(o[i].key, m->k, m->kl) == 0, "%s: key %zu", what, i);
        CHECK(val_eq(&m->v[i], o[i].val, o[i].vlen), "%s: value %zu", what, i);
        CHECK(((uintptr_t)o[i].val & 7) == 0, "%s: value alignment", what);
    }
}

/* The model's answer to first/next/prev/last: index of the key or -1. */
static long model_walk(int dir, const mkey *from)
{
    bool hash_kind = type_ != OT_ETS_ORDERED_SET;
    if (hash_kind && dir < 0)
        dir = 1; /* prev is next, last is first */
    long best = -1;
    for (size_t i = 0; i < NKEYS; i++) {
        if (!keys[i].n)
            continue;
        if (from) {
            int c = korder(&keys[i], from);
            if ((dir > 0 && c <= 0) || (dir < 0 && c >= 0))
                continue;
        }
        if (best < 0) {
            best = (long)i;
            continue;
        }
        int c = korder(&keys[i], &keys[best]);
        if ((dir > 0 && c < 0) || (dir < 0 && c > 0))
            best = (long)i;
    }
    return best;
}

static void check_walk(long want, int rc, const unsigned char *kb, size_t kl, const char *what)
{
    if (want < 0) {
        CHECK(rc == -ENOENT, "%s: rc %d, model end of table", what, rc);
        return;
    }
    CHECK(rc == 0, "%s: rc %d", what, rc);
    CHECK(kl == keys[want].kl && memcmp(kb, keys[want].k, kl) == 0, "%s: wrong key", what);
}

static void op_counter(ot_tab t, mkey *m)
{
    size_t off = (rnd() % 3) * 8;
    int64_t incr = (int64_t)(rnd() % 2001) - 1000, dflt = (int64_t)(rnd() % 100), res = 0;
    bool use_dflt = rnd() % 2;
    int rc = ot_ets_update_counter(t, m->k, m->kl, off, incr, use_dflt ? &dflt : NULL, &res);
    if (type_ == OT_ETS_BAG || type_ == OT_ETS_DUPLICATE_BAG) {
        CHECK(rc == -EINVAL, "update_counter on a bag: %d", rc);
        return;
    }
    if (!m->n) {
        if (!use_dflt) {
            CHECK(rc == -ENOENT, "update_counter absent: %d", rc);
            return;
        }
        CHECK(rc == 0 && res == dflt + incr, "update_counter default: %d %lld", rc, (long long)res);
        memset(m->v[0].b, 0, sizeof m->v[0].b);
        int64_t v = dflt + incr;
        memcpy(m->v[0].b + off, &v, 8);
        m->v[0].len = off + 8;
        m->n = 1;
        return;
    }
    if (m->v[0].len < off + 8) {
        CHECK(rc == -EINVAL, "update_counter short value: %d", rc);
        return;
    }
    int64_t v;
    memcpy(&v, m->v[0].b + off, 8);
    v = (int64_t)((uint64_t)v + (uint64_t)incr);
    CHECK(rc == 0 && res == v, "update_counter: %d %lld want %lld", rc, (long long)res,
          (long long)v);
    memcpy(m->v[0].b + off, &v, 8);
}

#define FILL 120000
static bool fillers_in; /* big runs: FILL filler keys are in the table */

static void one_op(ot_tab t)
{
    mkey *m = &keys[rnd() % NKEYS];
    mval v;
    ot_ets_obj *o;
    size_t n;
    unsigned char kb[32];
    size_t kl = 0;
    int rc;
    switch (rnd() % 16) {
    case 0:
    case 1:
    case 2: {
        rand_val(&v);
        mkey save = *m;
        if (!model_insert(m, &v)) {
            *m = save;
            rc = ot_ets_delete(t, m->k, m->kl);
            CHECK(rc == 0, "delete (full) %d", rc);
            m->n = 0;
            break;
        }
        rc = ot_ets_insert(t, m->k, m->kl, v.b, v.len);
        CHECK(rc == 0, "insert %d", rc);
        break;
    }
    case 3:
        rand_val(&v);
        rc = ot_ets_insert_new(t, m->k, m->kl, v.b, v.len);
        if (m->n) {
            CHECK(rc == -EEXIST, "insert_new existing %d", rc);
        } else {
            CHECK(rc == 0, "insert_new %d", rc);
            model_insert(m, &v);
        }
        break;
    case 4:
        rc = ot_ets_delete(t, m->k, m->kl);
        CHECK(rc == 0, "delete %d", rc);
        m->n = 0;
        break;
    case 5:
        if (m->n && rnd() % 4)
            v = m->v[rnd() % m->n];
        else
            rand_val(&v);
        rc = ot_ets_delete_object(t, m->k, m->kl, v.b, v.len);
        CHECK(rc == 0, "delete_object %d", rc);
        for (size_t i = m->n; i-- > 0;)
            if (val_eq(&m->v[i], v.b, v.len))
                model_remove(m, i);
        break;
    case 6:
    case 7:
        rc = ot_ets_lookup(t, m->k, m->kl, &o, &n);
        CHECK(rc == 0, "lookup %d", rc);
        check_objs(m, o, n, "lookup");
        free(o); /* a foreign thread: ot_alloc fell back to malloc */
        break;
    case 8:
        rc = ot_ets_take(t, m->k, m->kl, &o, &n);
        CHECK(rc == 0, "take %d", rc);
        check_objs(m, o, n, "take");
        free(o);
        m->n = 0;
        break;
    case 9:
    case 10:
        op_counter(t, m);
        break;
    case 11:
        CHECK(ot_ets_member(t, m->k, m->kl) == (m->n > 0), "member");
        break;
    case 12:
        rc = ot_ets_next(t, m->k, m->kl, kb, sizeof kb, &kl);
        if (!fillers_in) /* the walk would meet them */
            check_walk(model_walk(1, m), rc, kb, kl, "next");
        break;
    case 13:
        rc = ot_ets_prev(t, m->k, m->kl, kb, sizeof kb, &kl);
        if (!fillers_in)
            check_walk(model_walk(-1, m), rc, kb, kl, "prev");
        break;
    case 14:
        if (rnd() % 2) {
            rc = ot_ets_first(t, kb, sizeof kb, &kl);
            if (!fillers_in)
                check_walk(model_walk(1, NULL), rc, kb, kl, "first");
        } else {
            rc = ot_ets_last(t, kb, sizeof kb, &kl);
            if (!fillers_in)
                check_walk(model_walk(-1, NULL), rc, kb, kl, "last");
        }
        break;
    default:
        CHECK(ot_ets_size(t) == model_size() + (fillers_in ? FILL : 0), "size %zu model %zu",
              ot_ets_size(t), model_size());
        break;
    }
}

/* A whole walk with first/next visits exactly the model's keys, in order. */
static void full_walk(ot_tab t)
{
    unsigned char kb[32], prev[32];
    size_t kl, pl, seen = 0, want = 0;
    for (size_t i = 0; i < NKEYS; i++)
        want += keys[i].n > 0;
    int rc = ot_ets_first(t, kb, sizeof kb, &kl);
    long m = model_walk(1, NULL);
    while (rc == 0) {
        check_walk(m, rc, kb, kl, "walk");
        seen++;
        memcpy(prev, kb, kl);
        pl = kl;
        rc = ot_ets_next(t, prev, pl, kb, sizeof kb, &kl);
        m = model_walk(1, &keys[m]);
    }
    CHECK(rc == -ENOENT && m < 0, "walk end %d", rc);
    CHECK(seen == want, "walk saw %zu keys, model %zu", seen, want);
}

/* Big runs: filler keys (24 bytes, longer than any model key) in and out
 * again, so the model's keys move through mmapped and (with the runtime
 * running) prepared arrays and back; in between the model's checks run on
 * the grown array. */
static void fill(ot_tab t, bool in)
{
    fillers_in = in;
    unsigned char k[24];
    memset(k, 0xee, sizeof k);
    for (uint32_t i = 0; i < FILL; i++) {
        memcpy(k, &i, 4);
        int rc = in ? ot_ets_insert(t, k, sizeof k, &i, 4) : ot_ets_delete(t, k, sizeof k);
        CHECK(rc == 0, "filler %s: %d", in ? "insert" : "delete", rc);
    }
    CHECK(ot_ets_size(t) == model_size() + (in ? FILL : 0), "size with fillers");
}

static void run_model_in(int type, bool big)
{
    type_ = type;
    init_keys();
    ot_ets_opts o = {.type = type, .access = OT_ETS_PUBLIC, .write_concurrency = true};
    ot_tab t = ot_ets_new("model", &o);
    cr_assert(t.v != 0, "ot_ets_new: %d", errno);
    for (step = 0; step < MODEL_OPS; step++) {
        if (big && step % FILL_PERIOD == FILL_PERIOD / 2)
            fill(t, true);
        if (big && step % FILL_PERIOD == FILL_PERIOD / 2 + 2000)
            fill(t, false); /* 2,000 model steps on the big array, fillers in */
        one_op(t);
        if (step % 50000 == 0 && (!big || step % FILL_PERIOD < FILL_PERIOD / 2 ||
                                  step % FILL_PERIOD > FILL_PERIOD / 2 + 2000))
            full_walk(t);
    }
    full_walk(t);
    CHECK(ot_ets_size(t) == model_size(), "final size");
    cr_assert_eq(ot_ets_delete_table(t), 0);
    cr_assert_eq(ot_ets_size(t), 0);
    cr_assert_eq(ot_ets_insert(t, "k", 1, "v", 1), -EBADF);
}

static void run_model(int type) { run_model_in(type, false); }

/* The same past 2,048 slots: with the runtime running (so the next array
 * is prepared ahead), fillers take each table through mmapped arrays. */
static void run_model_big(int type)
{
    ot_config c = {.schedulers = 1};
    cr_assert_eq(ot_start(&c), 0);
    run_model_in(type, true);
    cr_assert_eq(ot_stop(), 0);
}

Test(ets_model, set_big, .timeout = 300) { run_model_big(OT_ETS_SET); }
Test(ets_model, ordered_set_big, .timeout = 300) { run_model_big(OT_ETS_ORDERED_SET); }
Test(ets_model, bag_big, .timeout = 300) { run_model_big(OT_ETS_BAG); }
Test(ets_model, duplicate_bag_big, .timeout = 300) { run_model_big(OT_ETS_DUPLICATE_BAG); }

Test(ets_model, set, .timeout = 120) { run_model(OT_ETS_SET); }
Test(ets_model, ordered_set, .timeout = 120) { run_model(OT_ETS_ORDERED_SET); }
Test(ets_model, bag, .timeout = 120) { run_model(OT_ETS_BAG); }
Test(ets_model, duplicate_bag, .timeout = 120) { run_model(OT_ETS_DUPLICATE_BAG); }
