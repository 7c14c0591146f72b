/* The concurrent model test of ETS (issue 11 item 10): on each of the four
 * table types, writers and readers (processes on two schedulers and foreign
 * threads, half of each) run random single-key operations on a small key
 * space while a grower inserts and deletes filler keys, so that the hash
 * tables resize (past calloc'd, mmapped and prepared arrays) under them.
 * Every key has one writer, which logs the key's state after each of its
 * operations (the exact sequential model); its take and delete results are
 * checked against it at once. Readers log what each look-up, read and fold
 * showed; afterwards each reader's observations of a key must match states
 * of that key in order (some prefix of its writes, never going back), in
 * insertion order for bags; a lookup never shows an object twice, nor a fold
 * (filler keys included). Values are unique ids (writer, key, sequence), 8
 * or 24 bytes (inline objects and records). Sizes shrink under sanitizers;
 * OT_CONC_ROUNDS repeats the whole run. */
#include <otter/testing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#ifdef OT_SANITIZE
#define WOPS 3000
#define ROPS 3000
#define FILL 40000
#else
#define WOPS 20000
#define ROPS 20000
#define FILL 150000
#endif

#define NW 4        /* writers: 2 processes, 2 threads */
#define NR 4        /* readers: the same */
#define KPW 3       /* keys per writer */
#define NK (NW * KPW)
#define MAXO 6      /* a key's bag holds at most this many objects */
#define FILL_BASE 1000000u

typedef struct { uint32_t n; uint64_t id[MAXO]; } kstate;
typedef struct { uint32_t key, n; uint64_t id[MAXO + 2]; } obs; /* n > MAXO: too many */

static int type_;
static ot_tab tab;
static kstate *wlog[NK];      /* states of each key: [0] empty, then one per write */
static size_t wlen[NK];
static obs *rlog[NR];
static size_t rlen[NR];
static _Atomic int failed;
static char failmsg[512];
static _Atomic int writers_left;

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (!atomic_exchange(&failed, 1))                                                          \
            snprintf(failmsg, sizeof failmsg, __VA_ARGS__);                                        \
    } while (0)

static uint64_t xs(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static size_t vlen_of(uint64_t id) { return id % 3 == 0 ? 24 : 8; }

static void put_val(unsigned char *v, uint64_t id)
{
    memset(v, 0, 24);
    memcpy(v, &id, 8);
    memcpy(v + 16, &id, 8);
}

static uint64_t id_of(const void *v) { uint64_t id; memcpy(&id, v, 8); return id; }

/* ---- writers ---------------------------------------------------------------------------------- */

static bool same(const kstate *s, const ot_ets_obj *o, size_t n)
{
    if (n != s->n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (id_of(o[i].val) != s->id[i])
            return false;
    return true;
}

static void writer(int w)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (unsigned)(w + 7), seq = 0;
    kstate cur[KPW] = {{0}};
    bool bag = type_ == OT_ETS_BAG || type_ == OT_ETS_DUPLICATE_BAG;
    for (int i = 0; i < WOPS && !atomic_load(&failed); i++) {
        int j = (int)(xs(&x) % KPW);
        uint64_t key = (uint64_t)(w * KPW + j);
        kstate *s = &cur[j];
        unsigned op = (unsigned)(xs(&x) % 10);
        unsigned char v[24];
        if (op < 5 && (!bag || s->n < MAXO)) { /* insert a fresh object */
            uint64_t id = (uint64_t)(w + 1) << 48 | key << 32 | ++seq;
            put_val(v, id);
            int rc = ot_ets_insert(tab, &key, 8, v, vlen_of(id));
            if (rc)
                FAIL("insert: %d", rc);
            if (!bag)
                s->n = 0;
            s->id[s->n++] = id;
        } else if (op < 6 && bag && s->n) { /* an object already there: no change in a bag */
            if (type_ == OT_ETS_DUPLICATE_BAG)
                continue;
            uint64_t id = s->id[xs(&x) % s->n];
            put_val(v, id);
            if (ot_ets_insert(tab, &key, 8, v, vlen_of(id)))
                FAIL("insert again");
        } else if (op < 8 && s->n) { /* delete_object of one of them */
            uint32_t at = (uint32_t)(xs(&x) % s->n);
            put_val(v, s->id[at]);
            if (ot_ets_delete_object(tab, &key, 8, v, vlen_of(s->id[at])))
                FAIL("delete_object");
            memmove(&s->id[at], &s->id[at + 1], (s->n - at - 1) * 8);
            s->n--;
        } else if (op < 9) { /* take: exactly the model's objects */
            ot_ets_obj *o;
            size_t n;
            if (ot_ets_take(tab, &key, 8, &o, &n))
                FAIL("take");
            else if (!same(s, o, n))
                FAIL("take of key %llu: %zu objects, the model has %u",
                     (unsigned long long)key, n, s->n);
            ot_free(o);
            s->n = 0;
        } else {
            if (ot_ets_delete(tab, &key, 8))
                FAIL("delete");
            s->n = 0;
        }
        kstate *l = &wlog[key][++wlen[key]];
        *l = *s;
    }
}

/* The grower: filler keys in, then most of them out again, so the hash
 * tables grow through several resizes and shrink back while the others run. */
static void grower(void)
{
    unsigned char v[24] = {0};
    for (uint64_t k = FILL_BASE; k < FILL_BASE + FILL && !atomic_load(&failed); k++)
        if (ot_ets_insert(tab, &k, 8, v, 8))
            FAIL("filler insert");
    for (uint64_t k = FILL_BASE; k < FILL_BASE + FILL * 3 / 4 && !atomic_load(&failed); k++)
        if (ot_ets_delete(tab, &k, 8))
            FAIL("filler delete");
}

/* ---- readers ---------------------------------------------------------------------------------- */

typedef struct { obs *o; } rd_arg;

static void read_cb(const void *v, size_t vl, void *arg)
{
    obs *o = arg;
    if (o->n < MAXO + 2)
        o->id[o->n] = vl >= 8 ? id_of(v) : 0;
    o->n++;
}

typedef struct {
    uint8_t *fill_seen; /* a bit per filler key */
    uint64_t ids[NK * MAXO * 2];
    size_t nids;
    bool bad;
} fold_acc;

static int fold_cb(const void *k, size_t kl, const void *v, size_t vl, void *acc)
{
    fold_acc *a = acc;
    uint64_t key;
    memcpy(&key, k, 8);
    if (key >= FILL_BASE) {
        uint64_t f = key - FILL_BASE;
        if (a->fill_seen[f / 8] & (1u << (f % 8))) {
            FAIL("fold saw filler key %llu twice", (unsigned long long)key);
            return 1;
        }
        a->fill_seen[f / 8] |= (uint8_t)(1u << (f % 8));
        return 0;
    }
    uint64_t id = id_of(v);
    if (id >> 32 != ((key / KPW + 1) << 16 | key)) {
        FAIL("fold: key %llu shows id %llx", (unsigned long long)key, (unsigned long long)id);
        return 1;
    }
    for (size_t i = 0; i < a->nids; i++)
        if (a->ids[i] == id) {
            FAIL("fold saw object %llx of key %llu twice", (unsigned long long)id,
                 (unsigned long long)key);
            return 1;
        }
    if (a->nids < sizeof a->ids / sizeof a->ids[0])
        a->ids[a->nids++] = id;
    else
        FAIL("fold: more objects than the model allows");
    return 0;
}

static void reader(int r)
{
    uint64_t x = 0x2545f4914f6cdd1dull * (unsigned)(r + 3);
    fold_acc *fa = calloc(1, sizeof *fa);
    fa->fill_seen = calloc(FILL / 8 + 1, 1);
    while (!atomic_load(&failed) && rlen[r] < ROPS) {
        uint64_t key = xs(&x) % NK;
        unsigned op = (unsigned)(xs(&x) % 100);
        if (op == 0) {
            memset(fa->fill_seen, 0, FILL / 8 + 1);
            fa->nids = 0;
            int rc = ot_ets_foldl(tab, fold_cb, fa);
            if (rc < 0)
                FAIL("foldl: %d", rc);
            continue;
        }
        obs *o = &rlog[r][rlen[r]];
        o->key = (uint32_t)key;
        o->n = 0;
        if (op < 50) {
            ot_ets_obj *objs;
            size_t n;
            if (ot_ets_lookup(tab, &key, 8, &objs, &n)) {
                FAIL("lookup");
                break;
            }
            for (size_t i = 0; i < n; i++)
                read_cb(objs[i].val, objs[i].vlen, o);
            ot_free(objs);
        } else {
            int rc = ot_ets_read(tab, &key, 8, read_cb, o);
            if (rc < 0 || (uint32_t)rc != o->n)
                FAIL("read: %d for %u objects", rc, o->n);
        }
        for (uint32_t i = 0; i < o->n && i < MAXO + 2; i++)
            for (uint32_t j = 0; j < i; j++)
                if (o->id[i] == o->id[j])
                    FAIL("a read of key %llu shows object %llx twice", (unsigned long long)key,
                         (unsigned long long)o->id[i]);
        rlen[r]++;
        if (atomic_load(&writers_left) == 0 && rlen[r] >= ROPS / 4)
            break;
    }
    free(fa->fill_seen);
    free(fa);
}

/* ---- roles on processes and threads ------------------------------------------------------------ */

typedef struct { int role, idx; ot_pid parent; } role_arg; /* role 0 writer, 1 reader, 2 grower */

static void run_role(role_arg *a)
{
    if (a->role == 0) {
        writer(a->idx);
        atomic_fetch_sub(&writers_left, 1);
    } else if (a->role == 1) {
        reader(a->idx);
    } else {
        grower();
        atomic_fetch_sub(&writers_left, 1);
    }
}

static void role_proc(void *p)
{
    role_arg *a = p;
    run_role(a);
    ot_send(a->parent, OT_TAG_USER, NULL, 0);
}

static void *role_thread(void *p)
{
    run_role(p);
    return NULL;
}

static bool eq_state(const kstate *s, const obs *o)
{
    if (o->n != s->n)
        return false;
    for (uint32_t i = 0; i < s->n; i++)
        if (o->id[i] != s->id[i])
            return false;
    return true;
}

static void check_logs(void)
{
    for (int r = 0; r < NR; r++) {
        size_t at[NK] = {0};
        for (size_t i = 0; i < rlen[r]; i++) {
            obs *o = &rlog[r][i];
            size_t j = at[o->key];
            while (j <= wlen[o->key] && !eq_state(&wlog[o->key][j], o))
                j++;
            if (j > wlen[o->key]) {
                char ids[200] = "";
                for (uint32_t q = 0; q < o->n && q < MAXO + 2; q++)
                    snprintf(ids + strlen(ids), sizeof ids - strlen(ids), " %llx",
                             (unsigned long long)o->id[q]);
                cr_assert_fail("reader %d, read %zu of key %u: {%s } (%u objects) is no state "
                               "of the key at or after its state %zu",
                               r, i, o->key, ids, o->n, at[o->key]);
            }
            at[o->key] = j;
        }
    }
}

static void conc_body(void *unused)
{
    ot_ets_opts oo = {.type = type_, .access = OT_ETS_PUBLIC, .write_concurrency = true,
                      .read_concurrency = true};
    tab = ot_ets_new(NULL, &oo);
    ot_assert(tab.v != 0);
    for (int k = 0; k < NK; k++) {
        wlog[k] = calloc(WOPS + 1, sizeof(kstate));
        wlen[k] = 0;
    }
    for (int r = 0; r < NR; r++) {
        rlog[r] = calloc(ROPS, sizeof(obs));
        rlen[r] = 0;
    }
    atomic_store(&failed, 0);
    atomic_store(&writers_left, NW + 1);
    role_arg args[NW + NR + 1];
    pthread_t th[NW + NR + 1];
    int nth = 0, nproc = 0;
    for (int i = 0; i < NW + NR + 1; i++) {
        args[i] = (role_arg){i < NW ? 0 : i < NW + NR ? 1 : 2, i < NW ? i : i - NW, ot_self()};
        if (i % 2 == 0) {
            ot_spawn_opts so = {.scheduler = (i / 2) % 2, .scheduler_set = true};
            ot_assert(ot_spawn_opt(role_proc, &args[i], &so).v != 0);
            nproc++;
        } else {
            ot_assert_eq(pthread_create(&th[nth++], NULL, role_thread, &args[i]), 0);
        }
    }
    for (int i = 0; i < nproc; i++) {
        ot_msg *m = ot_receive_tag(OT_TAG_USER, 300000);
        ot_assert(m != NULL, "(a role process did not finish)");
        ot_msg_free(m);
    }
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    ot_assert(!atomic_load(&failed), "%s", failmsg);
    /* the final state is each writer's last one */
    for (int k = 0; k < NK; k++) {
        uint64_t key = (uint64_t)k;
        obs o = {.key = (uint32_t)k};
        ot_ets_read(tab, &key, 8, read_cb, &o);
        ot_assert(eq_state(&wlog[k][wlen[k]], &o), "(key %d ends wrong)", k);
    }
    ot_assert_eq(ot_ets_delete_table(tab), 0);
}

static void conc_rounds(int type)
{
    type_ = type;
    const char *e = getenv("OT_CONC_ROUNDS");
    int rounds = e ? atoi(e) : 1;
    ot_config cfg = {.schedulers = 2};
    for (int i = 0; i < rounds; i++) {
        ot__test_reset();
        int rc = ot__test_run(conc_body, &cfg);
        const char *f = ot__test_failure();
        if (f)
            cr_assert_fail("round %d: %s", i, f);
        cr_assert_eq(rc, 0, "round %d", i);
        check_logs();
        for (int k = 0; k < NK; k++)
            free(wlog[k]);
        for (int r = 0; r < NR; r++)
            free(rlog[r]);
    }
}

Test(ets_conc, set, .timeout = 300) { conc_rounds(OT_ETS_SET); }
Test(ets_conc, ordered_set, .timeout = 300) { conc_rounds(OT_ETS_ORDERED_SET); }
Test(ets_conc, bag, .timeout = 300) { conc_rounds(OT_ETS_BAG); }
Test(ets_conc, duplicate_bag, .timeout = 300) { conc_rounds(OT_ETS_DUPLICATE_BAG); }

/* ---- focused: a bag key's states under delete_object, delete and take ------------------------ */

/* One writer cycles a bag key through {a,b,c} -> {a,c} -> {a} -> {a,b} ->
 * {a,b,c}, and every fourth cycle deletes the key (or takes it) and puts a,
 * b, c back one by one; so a reader may only ever see {}, {a}, {a,b}, {a,c}
 * or {a,b,c}, in that order of values (issue 11 items 1 and 2: readers
 * followed deleted records into later ones; deletes showed {c} and {b,c}). */
static ot_tab btab;
static _Atomic int bstop;
static const char *bag_valid[] = {"", "a", "ab", "ac", "abc"};

static void *bag_writer(void *unused)
{
    uint64_t k = 7;
    for (int i = 0; i < 100000 && !atomic_load(&failed); i++) {
        if (ot_ets_delete_object(btab, &k, 8, "b", 1) || ot_ets_delete_object(btab, &k, 8, "c", 1) ||
            ot_ets_insert(btab, &k, 8, "b", 1) || ot_ets_insert(btab, &k, 8, "c", 1))
            FAIL("bag writer");
        if (i % 4 == 3) {
            if (i % 8 == 3) {
                ot_ets_obj *o;
                size_t n;
                if (ot_ets_take(btab, &k, 8, &o, &n) || n != 3)
                    FAIL("take: %zu objects", n);
                ot_free(o);
            } else if (ot_ets_delete(btab, &k, 8)) {
                FAIL("delete");
            }
            if (ot_ets_insert(btab, &k, 8, "a", 1) || ot_ets_insert(btab, &k, 8, "b", 1) ||
                ot_ets_insert(btab, &k, 8, "c", 1))
                FAIL("bag writer");
        }
    }
    atomic_store(&bstop, 1);
    return NULL;
}

typedef struct { char s[8]; size_t n; } bseen;

static void bag_read_cb(const void *v, size_t vl, void *arg)
{
    bseen *b = arg;
    if (b->n < 7 && vl == 1)
        b->s[b->n] = *(const char *)v;
    b->n++;
}

static int bag_fold_cb(const void *k, size_t kl, const void *v, size_t vl, void *acc)
{
    bag_read_cb(v, vl, acc);
    return 0;
}

static void bag_check(const bseen *b, const char *how)
{
    bool ok = false;
    for (size_t i = 0; i < 5 && !ok; i++)
        ok = b->n == strlen(bag_valid[i]) && memcmp(b->s, bag_valid[i], b->n) == 0;
    if (!ok)
        FAIL("%s saw %zu objects \"%.*s\"", how, b->n, (int)(b->n < 7 ? b->n : 7), b->s);
}

static void *bag_reader(void *unused)
{
    uint64_t k = 7;
    for (unsigned i = 0; !atomic_load(&bstop) && !atomic_load(&failed); i++) {
        bseen b = {{0}, 0};
        if (i % 3 == 0) {
            ot_ets_obj *o;
            size_t n;
            if (ot_ets_lookup(btab, &k, 8, &o, &n))
                FAIL("lookup");
            for (size_t j = 0; j < n; j++)
                bag_read_cb(o[j].val, o[j].vlen, &b);
            ot_free(o);
            bag_check(&b, "lookup");
        } else if (i % 3 == 1) {
            ot_ets_read(btab, &k, 8, bag_read_cb, &b);
            bag_check(&b, "read");
        } else {
            ot_ets_foldl(btab, bag_fold_cb, &b);
            bag_check(&b, "foldl");
        }
    }
    return NULL;
}

static void bag_states(int type)
{
    ot_ets_opts o = {.type = type, .access = OT_ETS_PUBLIC};
    btab = ot_ets_new(NULL, &o);
    cr_assert(btab.v);
    uint64_t k = 7;
    cr_assert_eq(ot_ets_insert(btab, &k, 8, "a", 1), 0);
    cr_assert_eq(ot_ets_insert(btab, &k, 8, "b", 1), 0);
    cr_assert_eq(ot_ets_insert(btab, &k, 8, "c", 1), 0);
    atomic_store(&failed, 0);
    atomic_store(&bstop, 0);
    pthread_t w, r[2];
    pthread_create(&w, NULL, bag_writer, NULL);
    for (int i = 0; i < 2; i++)
        pthread_create(&r[i], NULL, bag_reader, NULL);
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    cr_assert(!atomic_load(&failed), "%s", failmsg);
    bseen b = {{0}, 0};
    cr_assert_eq(ot_ets_read(btab, &k, 8, bag_read_cb, &b), 3);
    cr_assert_eq(ot_ets_delete_table(btab), 0);
}

Test(ets_conc, bag_reads_see_whole_states, .timeout = 120) { bag_states(OT_ETS_BAG); }
Test(ets_conc, duplicate_bag_reads_see_whole_states, .timeout = 120)
{
    bag_states(OT_ETS_DUPLICATE_BAG);
}

/* ---- a resize lets writers through ------------------------------------------------------------- */

/* Issue 11 item 3: a resize held every stripe lock while it mapped,
 * populated and filled the new array, so every writer waited for all of
 * it. Now it fills the array in steps with no lock held between them: the
 * hook (hash.c, absent on 2ce4983) holds the migrating writer after its
 * first step of a big resize until a writer of another key has completed an
 * insert (or 20 s have passed). Without the hook, the test counts the
 * inserts another writer completes during the insert that resizes to 2M
 * slots, which was none. */
extern void (*ets__mig_step_hook)(void) __attribute__((weak));
#define GROW_KEYS 600000
static ot_tab rtab;
static _Atomic uint64_t probe_done, grown, in_step_probes;
static _Atomic int hook_hit, grow_over;

/* The migrating writer, between two steps of a resize of 512k+ keys. */
static void step_hook(void)
{
    if (atomic_load(&grown) < GROW_KEYS / 2 || atomic_exchange(&hook_hit, 1))
        return;
    uint64_t before = atomic_load(&probe_done);
    for (int i = 0; i < 20000 && atomic_load(&probe_done) == before; i++)
        usleep(1000);
    atomic_store(&in_step_probes, atomic_load(&probe_done) - before);
}

/* Replaces one object of its own key in a loop, on its own thread. */
static void *resize_prober(void *unused)
{
    uint64_t k = UINT64_C(1) << 62, v = 0;
    while (!atomic_load(&grow_over)) {
        v++;
        if (ot_ets_insert(rtab, &k, 8, &v, 8))
            FAIL("probe insert");
        atomic_fetch_add(&probe_done, 1);
    }
    return NULL;
}

Test(ets_conc, resize_lets_writers_through, .timeout = 120)
{
    ot_ets_opts o = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC, .write_concurrency = true};
    rtab = ot_ets_new(NULL, &o);
    cr_assert(rtab.v);
    atomic_store(&failed, 0);
    if (&ets__mig_step_hook)
        ets__mig_step_hook = step_hook;
    pthread_t th;
    pthread_create(&th, NULL, resize_prober, NULL);
    uint64_t longest = 0, probes_in_longest = UINT64_MAX;
    for (uint64_t k = 0; k < GROW_KEYS; k++) {
        uint64_t before = atomic_load(&probe_done);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        cr_assert_eq(ot_ets_insert(rtab, &k, 8, &k, 8), 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        uint64_t ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
                      (uint64_t)a.tv_nsec;
        uint64_t got = atomic_load(&probe_done) - before;
        if (k > 520000 && k < 560000 && ns > 20000000 && got < probes_in_longest) {
            /* past half of 1M slots, a long one: the resize, or a preemption */
            longest = ns;
            probes_in_longest = got;
        }
        atomic_store(&grown, k + 1);
    }
    atomic_store(&grow_over, 1);
    pthread_join(th, NULL);
    if (&ets__mig_step_hook)
        ets__mig_step_hook = NULL;
    cr_assert(!atomic_load(&failed), "%s", failmsg);
    if (&ets__mig_step_hook) {
        cr_assert(atomic_load(&hook_hit), "(no resize of 300k+ keys ran in steps)");
        cr_assert(atomic_load(&in_step_probes) >= 1,
                  "(no other writer got through while a resize was between steps)");
    } else {
        /* a probe or two may slip in before the resize takes the locks */
        cr_assert(probes_in_longest >= 3 && probes_in_longest != UINT64_MAX,
                  "(%llu inserts of another writer got through the %.1f ms of the insert that "
                  "resized to 2M slots)",
                  (unsigned long long)probes_in_longest, (double)longest / 1e6);
    }
    cr_assert_eq(ot_ets_size(rtab), GROW_KEYS + 1);
    cr_assert_eq(ot_ets_delete_table(rtab), 0);
}
