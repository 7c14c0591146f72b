/* Concurrency stress for ETS on foreign threads (pthreads): per CPU, two
 * writers and two readers share one public table for a few seconds, plus
 * iterators walking it. Invariants checked: every value carries its key and a
 * checksum, so a torn or misplaced read is caught; a counter that all writers
 * bump with update_counter never goes backwards for any reader and ends at
 * the sum of the increments; the final size is the sum of what each writer
 * knows it left in the table; stable keys (never written during the run) are
 * seen exactly once, in order, by every first/next walk and every foldl while
 * the others write. Run it under TSan and ASan (make SAN=...): it is scaled
 * down there. The same run also goes inside the runtime, as processes (two
 * writers and two readers per scheduler), which yield every few operations
 * since scheduling is cooperative. */
#include <otter/testing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef OT_SANITIZE
#define RUN_MS 700
#else
#define RUN_MS 2500
#endif

#define NKEYS 20000
#define STABLE 1000 /* ids below this are inserted first and never written */
#define MAXW 16

/* A check usable on both sides: cr_assert must not run inside a process. */
#define SCHECK(c, ...)                                                                    \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            if (ot_self().v) {                                                            \
                ot__test_fail(__FILE__, __LINE__, "" __VA_ARGS__);                        \
                ot_exit_self(ot_reason_error("check failed: %s", #c));                    \
            }                                                                             \
            cr_assert_fail("" __VA_ARGS__);                                               \
        }                                                                                 \
    } while (0)

/* ot_yield inside processes; nothing on pthreads. */
static void (*pause_fn)(void);
static inline void maybe_pause(long i)
{
    if (pause_fn && (i & 63) == 0)
        pause_fn();
}

static const char CTR[] = "counters"; /* 9 bytes: never taken for an 8-byte id key */

typedef struct {
    ot_tab t;
    int type;
    int nwriters;
    atomic_bool stop;
    atomic_long failures;
    char first_failure[200];
    long live[MAXW];   /* keys each writer left in the table (set kinds) */
    long incr[MAXW];   /* counter increments each writer made */
    atomic_long reads, walks;
} run;

static void fail(run *r, const char *what)
{
    if (atomic_fetch_add(&r->failures, 1) == 0)
        snprintf(r->first_failure, sizeof r->first_failure, "%s", what);
}

static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    while (n--)
        h = (h ^ *p++) * 1099511628211ull;
    return h;
}

/* Value: key id, sequence, payload, checksum of everything before it. */
static size_t make_val(unsigned char *buf, uint64_t id, uint64_t seq)
{
    size_t len = 24 + (seq % 7) * 9; /* 24 .. 78 bytes */
    memcpy(buf, &id, 8);
    memcpy(buf + 8, &seq, 8);
    for (size_t i = 16; i < len - 8; i++)
        buf[i] = (unsigned char)(seq * 31 + i);
    uint64_t sum = fnv(buf, len - 8);
    memcpy(buf + len - 8, &sum, 8);
    return len;
}

static bool val_ok(const void *v, size_t len, uint64_t id)
{
    uint64_t got, sum;
    if (len < 24)
        return false;
    memcpy(&got, v, 8);
    memcpy(&sum, (const unsigned char *)v + len - 8, 8);
    return got == id && sum == fnv(v, len - 8);
}

static size_t make_key(unsigned char *k, uint64_t id)
{
    /* Big-endian, so byte order is numeric order for the ordered_set walk. */
    for (int i = 0; i < 8; i++)
        k[i] = (unsigned char)(id >> (56 - 8 * i));
    return 8;
}

static uint64_t key_id(const unsigned char *k)
{
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = id << 8 | k[i];
    return id;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct {
    run *r;
    int id;
} targ;

static void *writer(void *p)
{
    targ *a = p;
    run *r = a->r;
    uint64_t x = UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(a->id + 1), seq = 0;
    unsigned char k[8], v[96];
    bool bagish = r->type == OT_ETS_BAG || r->type == OT_ETS_DUPLICATE_BAG;
    char *present = calloc(NKEYS, 1);
    for (long it = 0; !atomic_load(&r->stop); it++) {
        maybe_pause(it);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* This writer's keys: ids >= STABLE with id % nwriters == writer. */
        uint64_t id = STABLE + (x >> 8) % (NKEYS - STABLE);
        id -= (id - STABLE) % (uint64_t)r->nwriters;
        id += (uint64_t)a->id;
        if (id >= NKEYS)
            continue;
        size_t kl = make_key(k, id);
        size_t vl = make_val(v, id, ++seq);
        switch (x % 8) {
        case 0: case 1: case 2:
            if (ot_ets_insert(r->t, k, kl, v, vl))
                fail(r, "insert");
            present[id] = 1;
            break;
        case 3:
            if (ot_ets_delete(r->t, k, kl))
                fail(r, "delete");
            present[id] = 0;
            break;
        case 4: {
            /* This writer alone writes key id: it knows the answer. */
            int rc = ot_ets_insert_new(r->t, k, kl, v, vl);
            if (rc != (present[id] ? -EEXIST : 0))
                fail(r, "insert_new");
            present[id] = 1;
            break;
        }
        case 5: {
            ot_ets_obj *o;
            size_t n;
            if (ot_ets_take(r->t, k, kl, &o, &n))
                fail(r, "take");
            else if ((n > 0) != present[id] || (!bagish && n > 1))
                fail(r, "take count");
            for (size_t i = 0; i < n; i++)
                if (!val_ok(o[i].val, o[i].vlen, id))
                    fail(r, "take value");
            ot_free(o);
            present[id] = 0;
            break;
        }
        default:
            if (!bagish) {
                int64_t res;
                if (ot_ets_update_counter(r->t, CTR, sizeof CTR, 0, 1, NULL, &res))
                    fail(r, "update_counter");
                r->incr[a->id]++;
            }
            break;
        }
    }
    for (long i = 0; i < NKEYS; i++)
        r->live[a->id] += present[i];
    free(present);
    return NULL;
}

static void read_cb(const void *v, size_t vl, void *arg)
{
    uint64_t *want = arg;
    if (!val_ok(v, vl, *want))
        want[1]++;
}

static void *reader(void *p)
{
    targ *a = p;
    run *r = a->r;
    uint64_t x = UINT64_C(0x2545f4914f6cdd1d) * (uint64_t)(a->id + 7);
    int64_t last_ctr = 0;
    unsigned char k[8];
    long n_reads = 0;
    bool bagish = r->type == OT_ETS_BAG || r->type == OT_ETS_DUPLICATE_BAG;
    while (!atomic_load(&r->stop)) {
        maybe_pause(n_reads);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t id = (x >> 8) % NKEYS;
        size_t kl = make_key(k, id);
        if (x % 2) {
            ot_ets_obj *o;
            size_t n;
            if (ot_ets_lookup(r->t, k, kl, &o, &n))
                fail(r, "lookup");
            for (size_t i = 0; i < n; i++)
                if (!val_ok(o[i].val, o[i].vlen, id) || o[i].klen != 8 ||
                    key_id(o[i].key) != id)
                    fail(r, "lookup: torn or misplaced value");
            if (id < STABLE && n != 1)
                fail(r, "lookup: stable key missing");
            ot_free(o);
        } else {
            uint64_t arg[2] = {id, 0};
            int n = ot_ets_read(r->t, k, kl, read_cb, arg);
            if (n < 0 || arg[1])
                fail(r, "read: torn value");
        }
        if (!bagish && n_reads % 16 == 0) {
            ot_ets_obj *o;
            size_t n;
            if (ot_ets_lookup(r->t, CTR, sizeof CTR, &o, &n) || n != 1 || o[0].vlen != 8) {
                fail(r, "counter lookup");
            } else {
                int64_t c;
                memcpy(&c, o[0].val, 8);
                if (c < last_ctr)
                    fail(r, "counter went backwards");
                last_ctr = c;
            }
            ot_free(o);
        }
        n_reads++;
    }
    atomic_fetch_add(&r->reads, n_reads);
    return NULL;
}

typedef struct {
    run *r;
    long seen, count;
    uint64_t last;
    bool ordered;
} fold_acc;

static int fold_cb(const void *k, size_t kl, const void *v, size_t vl, void *p)
{
    fold_acc *a = p;
    if (kl != 8) /* the counter */
        return 0;
    uint64_t id = key_id(k);
    if (!val_ok(v, vl, id))
        fail(a->r, "foldl: torn value");
    if (a->ordered && a->count && id <= a->last)
        fail(a->r, "foldl: out of order");
    a->last = id;
    a->count++;
    a->seen += id < STABLE;
    return 0;
}

/* Walks with first/next and with foldl: stable keys exactly once each. */
static void *iterator(void *p)
{
    targ *a = p;
    run *r = a->r;
    bool ordered = r->type == OT_ETS_ORDERED_SET;
    char *seen = malloc(STABLE);
    long walks = 0;
    while (!atomic_load(&r->stop)) {
        maybe_pause(0);
        memset(seen, 0, STABLE);
        unsigned char k[16], prev[16];
        size_t kl, pl = 0;
        uint64_t last = 0;
        bool any = false;
        int rc = ot_ets_first(r->t, k, sizeof k, &kl);
        while (rc == 0) {
            if (kl == 8) {
                uint64_t id = key_id(k);
                if (ordered && any && id <= last)
                    fail(r, "walk: out of order");
                if (id < STABLE && seen[id]++)
                    fail(r, "walk: stable key seen twice");
                last = id;
                any = true;
            }
            memcpy(prev, k, kl);
            pl = kl;
            rc = ot_ets_next(r->t, prev, pl, k, sizeof k, &kl);
        }
        if (rc != -ENOENT)
            fail(r, "walk: error");
        for (int i = 0; i < STABLE; i++)
            if (!seen[i])
                fail(r, "walk: stable key missed");
        fold_acc acc = {.r = r, .ordered = ordered};
        if (ot_ets_foldl(r->t, fold_cb, &acc) || acc.seen != STABLE)
            fail(r, "foldl: stable keys not seen exactly once");
        walks++;
    }
    free(seen);
    atomic_fetch_add(&r->walks, walks);
    return NULL;
}

static void run_threads(run *r, int nw, int nr)
{
    pthread_t th[3 * MAXW];
    targ args[3 * MAXW];
    int n = 0;
    for (int i = 0; i < nw; i++, n++) {
        args[n] = (targ){r, i};
        pthread_create(&th[n], NULL, writer, &args[n]);
    }
    for (int i = 0; i < nr; i++, n++) {
        args[n] = (targ){r, i};
        pthread_create(&th[n], NULL, reader, &args[n]);
    }
    args[n] = (targ){r, 0};
    pthread_create(&th[n], NULL, iterator, &args[n]);
    n++;
    long end = now_ms() + RUN_MS;
    while (now_ms() < end)
        usleep(20000);
    atomic_store(&r->stop, true);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

typedef struct {
    targ a;
    void *(*fn)(void *);
    ot_pid parent;
} parg;

enum { TAG_DONE = OT_TAG_USER };

static void proc_main(void *p)
{
    parg *a = p;
    a->fn(&a->a);
    ot_send(a->parent, TAG_DONE, NULL, 0);
}

/* The same roles as processes spread over every scheduler. */
static void run_procs(run *r, int nw, int nr)
{
    parg args[3 * MAXW];
    int n = 0;
    unsigned ns = ot_schedulers();
    pause_fn = ot_yield;
    for (int i = 0; i < nw + nr + 1; i++, n++) {
        void *(*fn)(void *) = i < nw ? writer : i < nw + nr ? reader : iterator;
        args[n] = (parg){{r, i < nw ? i : i < nw + nr ? i - nw : 0}, fn, ot_self()};
        ot_spawn_opts o = {.scheduler = (int)((unsigned)i % ns), .scheduler_set = true};
        ot_assert(!ot_pid_eq(ot_spawn_opt(proc_main, &args[n], &o), OT_NOPID));
    }
    ot_sleep(RUN_MS);
    atomic_store(&r->stop, true);
    for (int i = 0; i < n; i++) {
        ot_msg *m = ot_receive_tag(TAG_DONE, 10000);
        ot_assert(m != NULL);
        ot_msg_free(m);
    }
    pause_fn = NULL;
}

static void stress(int type, bool in_runtime)
{
    long ncpu = in_runtime ? (long)ot_schedulers() : sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    int nw = (int)(2 * ncpu > MAXW ? MAXW : 2 * ncpu), nr = nw;
    run *r = calloc(1, sizeof *r);
    r->type = type;
    r->nwriters = nw;
    ot_ets_opts o = {.type = type, .access = OT_ETS_PUBLIC, .write_concurrency = true,
                     .read_concurrency = true};
    r->t = ot_ets_new(NULL, &o);
    SCHECK(r->t.v, "ot_ets_new");
    unsigned char k[8], v[96];
    for (uint64_t id = 0; id < STABLE; id++)
        SCHECK(ot_ets_insert(r->t, k, make_key(k, id), v, make_val(v, id, 1)) == 0, "insert");
    bool bagish = type == OT_ETS_BAG || type == OT_ETS_DUPLICATE_BAG;
    int64_t zero = 0;
    if (!bagish)
        SCHECK(ot_ets_insert(r->t, CTR, sizeof CTR, &zero, 8) == 0, "insert counter");

    if (in_runtime)
        run_procs(r, nw, nr);
    else
        run_threads(r, nw, nr);

    SCHECK(atomic_load(&r->failures) == 0, "%ld failures, first: %s",
                 atomic_load(&r->failures), r->first_failure);
    long live = STABLE, incr = 0;
    for (int i = 0; i < nw; i++) {
        live += r->live[i];
        incr += r->incr[i];
    }
    if (!bagish) {
        ot_ets_obj *ob;
        size_t cnt;
        SCHECK(ot_ets_lookup(r->t, CTR, sizeof CTR, &ob, &cnt) == 0 && cnt == 1, "counter");
        int64_t c;
        memcpy(&c, ob[0].val, 8);
        ot_free(ob);
        SCHECK(c == incr, "counter %lld, increments %ld", (long long)c, incr);
        SCHECK(ot_ets_size(r->t) == (size_t)live + 1, "size %zu, expected %ld",
                     ot_ets_size(r->t), live + 1);
    }
    SCHECK(atomic_load(&r->walks) > 0, "no walk finished");
    cr_log_info("type %d: %d writers, %d readers, %ld reads, %ld walks, %ld counter updates", type,
                nw, nr, atomic_load(&r->reads), atomic_load(&r->walks), incr);
    SCHECK(ot_ets_delete_table(r->t) == 0, "delete_table");
    free(r);
}

Test(ets_stress, set, .timeout = 60) { stress(OT_ETS_SET, false); }
Test(ets_stress, ordered_set, .timeout = 60) { stress(OT_ETS_ORDERED_SET, false); }
Test(ets_stress, bag, .timeout = 60) { stress(OT_ETS_BAG, false); }
OT_TEST(ets_stress_rt, set, .timeout = 60) { stress(OT_ETS_SET, true); }
OT_TEST(ets_stress_rt, ordered_set, .timeout = 60) { stress(OT_ETS_ORDERED_SET, true); }
