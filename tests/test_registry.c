/* Registry and PubSub against Elixir 1.14's Registry documentation:
 * register/lookup/unregister/keys/count/update_value/meta for unique and
 * duplicate keys; -EEXIST with the holder for a taken unique key (also the
 * caller itself); entries gone the moment a registrant is killed (lookups at
 * once, count once its partition has cleaned up) and the key free again;
 * dispatch once per partition with exactly the live entries; PubSub delivers
 * exactly one copy per subscription; 100 processes racing for one unique key
 * on 4 schedulers: exactly one wins and the 99 others get -EEXIST naming it;
 * partitions (default one per scheduler, entries of one key spread over many
 * partitions); look-ups from foreign threads while processes register and
 * exit; bad input with its documented errno; stop. */
#include <otter/testing.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_GO = OT_TAG_USER + 1, TAG_RESULT, TAG_NEWS, TAG_END, TAG_COUNT, TAG_DIE };

#define WAIT_MS 20000

/* ---- helpers ------------------------------------------------------------------ */

static ot_reg start(const char *name, int keys, unsigned parts) {
    ot_pid pid;
    ot_assert_eq(ot_registry_start_link(name, keys, parts, &pid), 0);
    ot_reg r = ot_registry_of(pid);
    ot_assert(r.v != 0);
    ot_assert_eq(ot_registry_pid(r).v, pid.v);
    return r;
}

/* Count once the partitions have removed exited registrants (bounded wait:
 * the clean-up is a message to another process). */
static size_t settle_count(ot_reg r, size_t want) {
    size_t n = ot_registry_count(r);
    for (int i = 0; i < WAIT_MS && n != want; i++) {
        ot_sleep(1);
        n = ot_registry_count(r);
    }
    return n;
}

static void wait_down(ot_ref m) {
    ot_msg *d = ot_receive_ref(m, WAIT_MS);
    ot_assert(d != NULL && d->tag == OT_TAG_DOWN);
    ot_msg_free(d);
}

static void kill_and_wait(ot_pid p) {
    ot_ref m = ot_monitor(p);
    ot_assert_eq(ot_exit(p, OT_REASON(OT_KILL)), 0);
    wait_down(m);
}

struct result {
    int rc;
    uint64_t holder;
    uint64_t self;
    int index;
};

/* A registrant: registers its keys (key "<prefix><i>" for i < nkeys, value =
 * its index), reports, then waits to be killed or told to exit. */
struct regspec {
    ot_reg r;
    ot_pid parent;
    char prefix[16];
    int nkeys;
    int index;
    bool wait_go;
};

static void registrant(void *arg) {
    struct regspec sp = *(struct regspec *)arg;
    if (sp.wait_go) {
        ot_msg *g = ot_receive_tag(TAG_GO, OT_INFINITY);
        ot_msg_free(g);
    }
    struct result res = {.self = ot_self().v, .index = sp.index};
    for (int i = 0; i < sp.nkeys && !res.rc; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "%s%d", sp.prefix, i);
        ot_pid h;
        res.rc = ot_registry_register(sp.r, k, (size_t)kl, &sp.index, sizeof sp.index, &h);
        res.holder = h.v;
    }
    ot_send(sp.parent, TAG_RESULT, &res, sizeof res);
    ot_msg *m = ot_receive_tag(TAG_DIE, OT_INFINITY);
    ot_msg_free(m);
}

static ot_pid spawn_registrant(ot_reg r, const char *prefix, int nkeys, int index, bool go) {
    struct regspec sp = {.r = r, .parent = ot_self(), .nkeys = nkeys, .index = index,
                         .wait_go = go};
    snprintf(sp.prefix, sizeof sp.prefix, "%s", prefix);
    ot_pid p = ot_spawn(registrant, &sp);
    ot_assert(p.v != 0);
    if (!go) {
        ot_msg *m = ot_receive_tag(TAG_RESULT, WAIT_MS);
        ot_assert(m != NULL);
        struct result res;
        memcpy(&res, ot_msg_data(m), sizeof res);
        ot_msg_free(m);
        ot_assert_eq(res.rc, 0);
    }
    return p;
}

/* Links are read only from a parked process (or oneself): wait for it to park. */
static size_t nlinks(ot_pid p) {
    struct ot_process_info in;
    for (int i = 0; i < WAIT_MS; i++) {
        ot_assert_eq(ot_process_info(p, &in), 0);
        if (p.v == ot_self().v || in.status == OT_STATUS_WAITING)
            return in.n_links;
        ot_sleep(1);
    }
    ot_assert(false, "the process never parked");
    return 0;
}

/* ---- unique keys ------------------------------------------------------------- */

OT_TEST(registry, unique_register_lookup_unregister, .timeout = 120) {
    ot_reg r = start("reg_u1", OT_UNIQUE, 4);
    ot_assert_eq(ot_registry_whereis("reg_u1").v, r.v);
    ot_pid self = ot_self();
    ot_pid h = {123};
    ot_assert_eq(ot_registry_register(r, "alpha", 5, "one", 3, &h), 0);
    ot_assert_eq(h.v, 0);
    ot_assert_eq(ot_registry_register(r, "beta", 4, NULL, 0, NULL), 0);
    ot_assert_eq(ot_registry_count(r), 2);

    ot_reg_entry *e;
    size_t n;
    ot_assert_eq(ot_registry_lookup(r, "alpha", 5, &e, &n), 0);
    ot_assert_eq(n, 1);
    ot_assert_eq(e[0].pid.v, self.v);
    ot_assert_eq(e[0].vlen, 3);
    ot_assert(memcmp(e[0].value, "one", 3) == 0);
    ot_free(e);
    ot_assert_eq(ot_registry_lookup(r, "beta", 4, &e, &n), 0);
    ot_assert_eq(n, 1);
    ot_assert(e[0].value == NULL && e[0].vlen == 0);
    ot_free(e);
    ot_assert_eq(ot_registry_lookup(r, "gamma", 5, &e, &n), 0);
    ot_assert(e == NULL && n == 0);
    ot_assert_eq(ot_registry_whereis_name(r, "alpha", 5).v, self.v);
    ot_assert_eq(ot_registry_whereis_name(r, "gamma", 5).v, 0);
    ot_assert_eq(errno, ENOENT);

    /* Registered under the same key again: already registered by self. */
    ot_assert_eq(ot_registry_register(r, "alpha", 5, "two", 3, &h), -EEXIST);
    ot_assert_eq(h.v, self.v);

    ot_reg_key *ks;
    ot_assert_eq(ot_registry_keys(r, self, &ks, &n), 0);
    ot_assert_eq(n, 2);
    bool saw_a = false, saw_b = false;
    for (size_t i = 0; i < n; i++) {
        saw_a |= ks[i].klen == 5 && memcmp(ks[i].key, "alpha", 5) == 0;
        saw_b |= ks[i].klen == 4 && memcmp(ks[i].key, "beta", 4) == 0;
    }
    ot_assert(saw_a && saw_b);
    ot_free(ks);

    /* update_value keeps the holder and replaces the value. */
    ot_assert_eq(ot_registry_update_value(r, "alpha", 5, "uno!", 4), 0);
    ot_assert_eq(ot_registry_lookup(r, "alpha", 5, &e, &n), 0);
    ot_assert(n == 1 && e[0].vlen == 4 && memcmp(e[0].value, "uno!", 4) == 0);
    ot_free(e);
    ot_assert_eq(ot_registry_update_value(r, "gamma", 5, "x", 1), -ENOENT);

    /* Linked to the partition(s) while registered, unlinked after. */
    ot_assert(nlinks(self) >= 2); /* the registry (start_link) and a partition */
    ot_assert_eq(ot_registry_unregister(r, "alpha", 5), 0);
    ot_assert_eq(ot_registry_unregister(r, "alpha", 5), 0); /* :ok when not registered */
    ot_assert_eq(ot_registry_unregister(r, "beta", 4), 0);
    ot_assert_eq(nlinks(self), 1);
    ot_assert_eq(ot_registry_count(r), 0);
    ot_assert_eq(ot_registry_keys(r, self, &ks, &n), 0);
    ot_assert(ks == NULL && n == 0);
}

OT_TEST(registry, unique_key_taken_by_live_process_gives_holder, .timeout = 120) {
    ot_reg r = start(NULL, OT_UNIQUE, 2);
    ot_pid p = spawn_registrant(r, "k", 1, 7, false);
    ot_pid h;
    ot_assert_eq(ot_registry_register(r, "k0", 2, "me", 2, &h), -EEXIST);
    ot_assert_eq(h.v, p.v);
    ot_reg_entry *e;
    size_t n;
    ot_assert_eq(ot_registry_lookup(r, "k0", 2, &e, &n), 0);
    ot_assert(n == 1 && e[0].pid.v == p.v && e[0].vlen == sizeof(int));
    ot_assert_eq(*(const int *)e[0].value, 7);
    ot_free(e);
    /* The failed attempt left nothing behind: no key, no link. */
    ot_assert_eq(ot_registry_count(r), 1);
    ot_assert_eq(nlinks(ot_self()), 1);
    /* Another process's value is not ours to update or unregister. */
    ot_assert_eq(ot_registry_update_value(r, "k0", 2, "x", 1), -ENOENT);
    ot_assert_eq(ot_registry_unregister(r, "k0", 2), 0);
    ot_assert_eq(ot_registry_whereis_name(r, "k0", 2).v, p.v);
    ot_send(p, TAG_DIE, NULL, 0);
}

/* ---- clean-up at exit --------------------------------------------------------- */

OT_TEST(registry, killed_registrants_vanish_and_counts_stay_right, .timeout = 120) {
    ot_reg u = start(NULL, OT_UNIQUE, 4);
    ot_reg d = start(NULL, OT_DUPLICATE, 4);
    enum { N = 40, K = 3 };
    ot_pid ps[N];
    for (int i = 0; i < N; i++) {
        char pre[16];
        snprintf(pre, sizeof pre, "p%d.", i);
        ps[i] = spawn_registrant(u, pre, K, i, false);
    }
    ot_assert_eq(ot_registry_count(u), N * K);
    /* The same processes, in the duplicate registry under shared keys. */
    ot_pid qs[N];
    for (int i = 0; i < N; i++)
        qs[i] = spawn_registrant(d, "shared", K, i, false);
    ot_assert_eq(ot_registry_count(d), N * K);

    /* Kill every other one of each. */
    for (int i = 0; i < N; i += 2) {
        kill_and_wait(ps[i]);
        kill_and_wait(qs[i]);
        /* Gone for readers at once, before the partition cleaned up. */
        char k[32];
        int kl = snprintf(k, sizeof k, "p%d.1", i);
        ot_reg_entry *e;
        size_t n;
        ot_assert_eq(ot_registry_lookup(u, k, (size_t)kl, &e, &n), 0);
        ot_assert_eq(n, 0);
        ot_assert_eq(ot_registry_whereis_name(u, k, (size_t)kl).v, 0);
        ot_reg_key *ks;
        ot_assert_eq(ot_registry_keys(u, ps[i], &ks, &n), 0);
        ot_assert_eq(n, 0);
    }
    ot_assert_eq(settle_count(u, N / 2 * K), N / 2 * K);
    ot_assert_eq(settle_count(d, N / 2 * K), N / 2 * K);
    for (int k = 0; k < K; k++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "shared%d", k);
        ot_reg_entry *e;
        size_t n;
        ot_assert_eq(ot_registry_lookup(d, key, (size_t)kl, &e, &n), 0);
        ot_assert_eq(n, N / 2);
        for (size_t j = 0; j < n; j++) {
            int idx = *(const int *)e[j].value;
            ot_assert_eq(idx & 1, 1); /* no killed registrant's entry survived */
            ot_assert_eq(e[j].pid.v, qs[idx].v);
        }
        ot_free(e);
    }
    /* A killed holder's keys are free again. */
    ot_assert_eq(ot_registry_register(u, "p0.0", 4, NULL, 0, NULL), 0);
    ot_assert_eq(ot_registry_whereis_name(u, "p0.0", 4).v, ot_self().v);
    /* Normal exits clean up the same way. */
    for (int i = 1; i < N; i += 2) {
        ot_ref m1 = ot_monitor(ps[i]), m2 = ot_monitor(qs[i]);
        ot_send(ps[i], TAG_DIE, NULL, 0);
        ot_send(qs[i], TAG_DIE, NULL, 0);
        wait_down(m1);
        wait_down(m2);
    }
    ot_assert_eq(settle_count(u, 1), 1);
    ot_assert_eq(settle_count(d, 0), 0);
}

/* A registrant killed while its unique key is taken over: the new holder's
 * entry survives the old holder's clean-up (deletions are by exact bytes). */
OT_TEST(registry, takeover_of_a_dead_holder_survives_its_cleanup, .timeout = 120) {
    ot_reg r = start(NULL, OT_UNIQUE, 1);
    for (int round = 0; round < 50; round++) {
        ot_pid p = spawn_registrant(r, "t", 1, round, false);
        kill_and_wait(p);
        /* Possibly before the partition has run: take the key over. */
        ot_assert_eq(ot_registry_register(r, "t0", 2, &round, sizeof round, NULL), 0);
        ot_assert_eq(settle_count(r, 1), 1);
        ot_assert_eq(ot_registry_whereis_name(r, "t0", 2).v, ot_self().v);
        ot_assert_eq(ot_registry_unregister(r, "t0", 2), 0);
        ot_assert_eq(ot_registry_count(r), 0);
    }
}

/* ---- duplicate keys, dispatch, match -------------------------------------------- */

struct disp {
    int calls;
    size_t entries;
    int seen[64];
};

static void count_entries(const ot_reg_entry *e, size_t n, void *arg) {
    struct disp *d = arg;
    d->calls++;
    d->entries += n;
    for (size_t i = 0; i < n; i++)
        d->seen[*(const int *)e[i].value]++;
    /* dispatch's callback runs outside the tables: it may send and read. */
    ot_reg_entry *x;
    size_t xn;
    ot_registry_lookup(ot_registry_whereis("reg_dup"), "topic0", 6, &x, &xn);
    ot_free(x);
}

static bool is_odd(const void *v, size_t vl, void *arg) {
    (void)arg;
    return vl == sizeof(int) && *(const int *)v % 2 == 1;
}

OT_TEST(registry, duplicate_keys_dispatch_and_match, .timeout = 120) {
    ot_reg r = start("reg_dup", OT_DUPLICATE, 4);
    enum { N = 20 };
    ot_pid ps[N];
    for (int i = 0; i < N; i++)
        ps[i] = spawn_registrant(r, "topic", 1, i, false);
    /* This process twice under one key: two entries. */
    int mine = 30;
    ot_assert_eq(ot_registry_register(r, "topic0", 6, &mine, sizeof mine, NULL), 0);
    ot_assert_eq(ot_registry_register(r, "topic0", 6, &mine, sizeof mine, NULL), 0);
    ot_assert_eq(ot_registry_count(r), N + 2);

    struct disp d = {0};
    ot_assert_eq(ot_registry_dispatch(r, "topic0", 6, count_entries, &d), 0);
    ot_assert_eq(d.entries, N + 2);
    ot_assert(d.calls >= 1 && d.calls <= 4, "one call per partition with entries (%d)", d.calls);
    for (int i = 0; i < N; i++)
        ot_assert_eq(d.seen[i], 1);
    ot_assert_eq(d.seen[30], 2);

    /* No entries: the callback is not called. */
    struct disp none = {0};
    ot_assert_eq(ot_registry_dispatch(r, "nobody", 6, count_entries, &none), 0);
    ot_assert_eq(none.calls, 0);

    ot_reg_entry *e;
    size_t n;
    ot_assert_eq(ot_registry_match(r, "topic0", 6, is_odd, NULL, &e, &n), 0);
    ot_assert_eq(n, N / 2);
    for (size_t i = 0; i < n; i++)
        ot_assert_eq(*(const int *)e[i].value % 2, 1);
    ot_free(e);
    ot_assert_eq(ot_registry_count_match(r, "topic0", 6, is_odd, NULL), N / 2);
    ot_assert_eq(ot_registry_count_match(r, "topic0", 6, NULL, NULL), N + 2);

    ot_reg_key *ks;
    ot_assert_eq(ot_registry_keys(r, ot_self(), &ks, &n), 0);
    ot_assert_eq(n, 2); /* the key once per entry */
    ot_free(ks);

    /* unregister_match drops only what matches; unregister drops the rest. */
    int other = 31;
    ot_assert_eq(ot_registry_register(r, "topic0", 6, &other, sizeof other, NULL), 0);
    ot_assert_eq(ot_registry_unregister_match(r, "topic0", 6, is_odd, NULL), 0);
    ot_assert_eq(ot_registry_count_match(r, "topic0", 6, NULL, NULL), N + 2);
    ot_assert_eq(ot_registry_unregister(r, "topic0", 6), 0);
    ot_assert_eq(ot_registry_count(r), N);
    ot_assert_eq(nlinks(ot_self()), 1);
    /* update_value is for unique registries. */
    ot_assert_eq(ot_registry_update_value(r, "topic0", 6, "x", 1), -EINVAL);
    ot_assert_eq(ot_registry_whereis_name(r, "topic0", 6).v, 0);
    ot_assert_eq(errno, EINVAL);
    for (int i = 0; i < N; i++)
        ot_send(ps[i], TAG_DIE, NULL, 0);
    ot_assert_eq(settle_count(r, 0), 0);
}

/* ---- PubSub -------------------------------------------------------------------------- */

struct sub_arg {
    ot_reg ps;
    ot_pid parent;
    int index;
    bool subscribe_twice;
};

/* Counts TAG_NEWS until TAG_END (sent after the news by the same sender, so
 * every copy of the news is in before it), reports and exits. */
static void subscriber(void *arg) {
    struct sub_arg a = *(struct sub_arg *)arg;
    ot_assert_eq(ot_pubsub_subscribe(a.ps, "news", 4), 0);
    if (a.subscribe_twice)
        ot_assert_eq(ot_pubsub_subscribe(a.ps, "news", 4), 0);
    ot_assert_eq(ot_pubsub_subscribe(a.ps, "end", 3), 0);
    int ready[2] = {a.index, 0};
    ot_send(a.parent, TAG_RESULT, ready, sizeof ready);
    int got[2] = {a.index, 0};
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        if (m->tag == TAG_NEWS) {
            ot_assert_eq(m->size, 5);
            ot_assert(memcmp(ot_msg_data(m), "hello", 5) == 0);
            got[1]++;
        }
        bool end = m->tag == TAG_END;
        ot_msg_free(m);
        if (end)
            break;
    }
    ot_send(a.parent, TAG_COUNT, got, sizeof got);
}

OT_TEST(registry, pubsub_each_subscriber_gets_exactly_one_copy, .timeout = 120) {
    ot_pid pspid;
    ot_assert_eq(ot_pubsub_start_link("news_ps", 0, &pspid), 0);
    ot_reg ps = ot_registry_whereis("news_ps");
    ot_assert(ps.v != 0);
    enum { N = 50 };
    static struct sub_arg args[N]; /* read by the children after we go on */
    for (int i = 0; i < N; i++) {
        args[i] = (struct sub_arg){.ps = ps, .parent = ot_self(), .index = i,
                                   .subscribe_twice = i == 7};
        ot_assert(ot_spawn(subscriber, &args[i]).v != 0);
    }
    for (int i = 0; i < N; i++) {
        ot_msg *m = ot_receive_tag(TAG_RESULT, WAIT_MS);
        ot_assert(m != NULL);
        ot_msg_free(m);
    }
    /* Nobody on this topic: nothing sent. */
    ot_assert_eq(ot_pubsub_broadcast(ps, "sports", 6, TAG_NEWS, "hello", 5), 0);
    ot_assert_eq(ot_pubsub_broadcast(ps, "news", 4, TAG_NEWS, "hello", 5), N + 1);
    ot_assert_eq(ot_pubsub_broadcast(ps, "end", 3, TAG_END, NULL, 0), N);
    int counts[N] = {0};
    for (int i = 0; i < N; i++) {
        ot_msg *m = ot_receive_tag(TAG_COUNT, WAIT_MS);
        ot_assert(m != NULL);
        int got[2];
        memcpy(got, ot_msg_data(m), sizeof got);
        ot_msg_free(m);
        counts[got[0]] = got[1];
    }
    for (int i = 0; i < N; i++)
        ot_assert_eq(counts[i], i == 7 ? 2 : 1);
    /* They all exited: no subscriber is left. */
    ot_assert_eq(settle_count(ps, 0), 0);
    ot_assert_eq(ot_pubsub_broadcast(ps, "news", 4, TAG_NEWS, "hello", 5), 0);
}

OT_TEST(registry, pubsub_unsubscribe_and_broadcast_from, .timeout = 120) {
    ot_pid pspid;
    ot_assert_eq(ot_pubsub_start_link(NULL, 2, &pspid), 0);
    ot_reg ps = ot_registry_of(pspid);
    ot_assert_eq(ot_pubsub_subscribe(ps, "t", 1), 0);
    ot_assert_eq(ot_pubsub_broadcast_from(ps, ot_self(), "t", 1, TAG_NEWS, "x", 1), 0);
    ot_assert_eq(ot_pubsub_broadcast(ps, "t", 1, TAG_NEWS, "x", 1), 1);
    ot_msg *m = ot_receive_tag(TAG_NEWS, WAIT_MS);
    ot_assert(m != NULL && m->size == 1 && m->from.v == ot_self().v);
    ot_msg_free(m);
    ot_assert_eq(ot_pubsub_unsubscribe(ps, "t", 1), 0);
    ot_assert_eq(ot_pubsub_broadcast(ps, "t", 1, TAG_NEWS, "x", 1), 0);
    ot_assert(ot_receive_tag(TAG_NEWS, 0) == NULL);
    ot_assert_eq(ot_pubsub_broadcast(ps, "t", 1, TAG_NEWS, NULL, 3), -EINVAL);
}

/* ---- races ----------------------------------------------------------------------------- */

static void four_schedulers(void) { ot_test_config.schedulers = 4; }
static void default_schedulers(void) { ot_test_config.schedulers = 0; }

OT_TEST(registry, hundred_processes_race_for_one_unique_key, .init = four_schedulers,
        .fini = default_schedulers, .timeout = 120) {
    ot_reg r = start(NULL, OT_UNIQUE, 0);
    enum { N = 100, ROUNDS = 20 };
    for (int round = 0; round < ROUNDS; round++) {
        ot_pid ps[N];
        static struct regspec sp[N]; /* read by the children after we go on */
        char pre[16];
        snprintf(pre, sizeof pre, "race%d.", round);
        for (int i = 0; i < N; i++) {
            sp[i] = (struct regspec){.r = r, .parent = ot_self(), .nkeys = 1, .index = i,
                                     .wait_go = true};
            snprintf(sp[i].prefix, sizeof sp[i].prefix, "%s", pre);
            ot_spawn_opts o = {.scheduler = i % 4, .scheduler_set = true};
            ps[i] = ot_spawn_opt(registrant, &sp[i], &o);
            ot_assert(ps[i].v != 0);
        }
        for (int i = 0; i < N; i++)
            ot_send(ps[i], TAG_GO, NULL, 0);
        int wins = 0, losses = 0;
        uint64_t winner = 0, holders[N];
        for (int i = 0; i < N; i++) {
            ot_msg *m = ot_receive_tag(TAG_RESULT, WAIT_MS);
            ot_assert(m != NULL);
            struct result res;
            memcpy(&res, ot_msg_data(m), sizeof res);
            ot_msg_free(m);
            if (res.rc == 0) {
                wins++;
                winner = res.self;
                ot_assert_eq(res.holder, 0);
            } else {
                ot_assert_eq(res.rc, -EEXIST);
                holders[losses++] = res.holder;
            }
        }
        ot_assert_eq(wins, 1);
        ot_assert_eq(losses, N - 1);
        for (int i = 0; i < losses; i++)
            ot_assert_eq(holders[i], winner);
        char k[32];
        int kl = snprintf(k, sizeof k, "%s0", pre);
        ot_assert_eq(ot_registry_whereis_name(r, k, (size_t)kl).v, winner);
        for (int i = 0; i < N; i++)
            ot_send(ps[i], TAG_DIE, NULL, 0);
        ot_assert_eq(settle_count(r, 0), 0);
    }
}

/* ---- partitions ----------------------------------------------------------------------- */

OT_TEST(registry, partitions_default_spread_and_limits, .timeout = 120) {
    ot_pid pid;
    ot_assert_eq(ot_registry_start_link(NULL, OT_UNIQUE, 0, &pid), 0);
    /* One partition per scheduler: each linked to the root, as is its parent. */
    ot_assert_eq(nlinks(pid), ot_schedulers() + 1);
    ot_assert_eq(ot_registry_start_link(NULL, OT_UNIQUE, OT_REGISTRY_PARTITIONS_MAX + 1, &pid),
                 -EINVAL);

    ot_reg r = start(NULL, OT_UNIQUE, 8);
    ot_assert_eq(nlinks(ot_registry_pid(r)), 9);
    enum { P = 10, K = 100 };
    ot_pid ps[P];
    for (int i = 0; i < P; i++) {
        char pre[16];
        snprintf(pre, sizeof pre, "w%d.", i);
        ps[i] = spawn_registrant(r, pre, K, i, false);
    }
    ot_assert_eq(ot_registry_count(r), P * K);
    /* Keys spread over all 8 partitions, yet each registrant is linked to
     * one partition only (its pid's). */
    for (int i = 0; i < P; i++)
        ot_assert_eq(nlinks(ps[i]), 1);
    for (int i = 0; i < P; i++)
        for (int k = 0; k < K; k++) {
            char key[32];
            int kl = snprintf(key, sizeof key, "w%d.%d", i, k);
            ot_assert_eq(ot_registry_whereis_name(r, key, (size_t)kl).v, ps[i].v);
        }
    for (int i = 0; i < P; i++)
        kill_and_wait(ps[i]);
    ot_assert_eq(settle_count(r, 0), 0);
}

/* Duplicate entries of one key live in their registrants' partitions: a
 * look-up gathers them from all of them. */
OT_TEST(registry, duplicate_key_across_partitions, .timeout = 120) {
    ot_reg r = start(NULL, OT_DUPLICATE, 16);
    enum { N = 64 };
    ot_pid ps[N];
    for (int i = 0; i < N; i++)
        ps[i] = spawn_registrant(r, "all", 1, i, false);
    struct disp d = {0};
    ot_assert_eq(ot_registry_dispatch(r, "all0", 4, count_entries, &d), 0);
    ot_assert_eq(d.entries, N);
    ot_assert(d.calls > 1 && d.calls <= 16, "%d partitions", d.calls);
    ot_assert_eq(ot_registry_count_match(r, "all0", 4, NULL, NULL), N);
    for (int i = 0; i < N; i++)
        ot_send(ps[i], TAG_DIE, NULL, 0);
    ot_assert_eq(settle_count(r, 0), 0);
}

/* ---- foreign threads ----------------------------------------------------------------- */

struct reader {
    ot_reg r;
    _Atomic int *stop;
    _Atomic long lookups;
    long found, bad;
    int foreign_register_rc, foreign_start_rc;
};

static void *reader_thread(void *arg) {
    struct reader *rd = arg;
    rd->foreign_register_rc = ot_registry_register(rd->r, "f", 1, NULL, 0, NULL);
    rd->foreign_start_rc = ot_registry_start_link(NULL, OT_UNIQUE, 1, NULL);
    while (!atomic_load(rd->stop)) {
        for (int k = 0; k < 16; k++) {
            char key[16];
            int kl = snprintf(key, sizeof key, "fk%d", k);
            ot_reg_entry *e;
            size_t n;
            int rc = ot_registry_lookup(rd->r, key, (size_t)kl, &e, &n);
            atomic_fetch_add(&rd->lookups, 1);
            if (rc || n > 1) {
                rd->bad++;
                continue;
            }
            /* The value is the registrant's pid: a torn or foreign entry
             * would not match. */
            if (n == 1) {
                rd->found++;
                if (e[0].vlen != 8 || memcmp(e[0].value, &e[0].pid.v, 8) != 0)
                    rd->bad++;
            }
            free(e);
        }
    }
    return NULL;
}

static void churner(void *arg) {
    ot_reg r = *(ot_reg *)arg;
    ot_pid self = ot_self();
    for (int round = 0; round < 200; round++) {
        for (int k = 0; k < 16; k++) {
            char key[16];
            int kl = snprintf(key, sizeof key, "fk%d", k);
            int rc = ot_registry_register(r, key, (size_t)kl, &self.v, 8, NULL);
            ot_assert(rc == 0 || rc == -EEXIST);
        }
        if (round % 3 == 0)
            return; /* exit holding keys: the partition cleans up */
        for (int k = 0; k < 16; k++) {
            char key[16];
            int kl = snprintf(key, sizeof key, "fk%d", k);
            ot_assert_eq(ot_registry_unregister(r, key, (size_t)kl), 0);
        }
    }
}

OT_TEST(registry, foreign_threads_look_up_while_processes_churn, .timeout = 120) {
    ot_reg r = start(NULL, OT_UNIQUE, 4);
    _Atomic int stop = 0;
    static struct reader rd[2];
    for (int i = 0; i < 2; i++) {
        rd[i] = (struct reader){.r = r, .stop = &stop};
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ot_assert_eq(pthread_create(&th[i], NULL, reader_thread, &rd[i]), 0);
    for (int i = 0; i < 2; i++)
        for (int w = 0; w < WAIT_MS && atomic_load(&rd[i].lookups) == 0; w++)
            ot_sleep(1);
    for (int wave = 0; wave < 20; wave++) {
        ot_ref ms[4];
        for (int i = 0; i < 4; i++) {
            ot_spawn_opts o = {.monitor = true, .monitor_ref = &ms[i]};
            ot_assert(ot_spawn_opt(churner, &r, &o).v != 0);
        }
        for (int i = 0; i < 4; i++)
            wait_down(ms[i]);
    }
    /* Both readers overlapped the churn (they may start late on a loaded
     * machine): each does lookups after it, then stops. */
    long seen[2] = {atomic_load(&rd[0].lookups), atomic_load(&rd[1].lookups)};
    for (int i = 0; i < 2; i++)
        for (int w = 0; w < WAIT_MS && atomic_load(&rd[i].lookups) == seen[i]; w++)
            ot_sleep(1);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        ot_assert_eq(rd[i].bad, 0);
        ot_assert(rd[i].lookups > 0);
        ot_assert_eq(rd[i].foreign_register_rc, -EPERM);
        ot_assert_eq(rd[i].foreign_start_rc, -EPERM);
    }
    ot_assert_eq(settle_count(r, 0), 0);
}

/* ---- bad input, meta, stop --------------------------------------------------------------- */

OT_TEST(registry, bad_input_gets_documented_errno, .timeout = 120) {
    ot_reg r = start("reg_bad", OT_UNIQUE, 2);
    ot_pid h;
    ot_assert_eq(ot_registry_register(r, NULL, 3, NULL, 0, &h), -EINVAL);
    ot_assert_eq(ot_registry_register(r, "k", 0, NULL, 0, &h), -EINVAL);
    ot_assert_eq(ot_registry_register(r, "k", 1, NULL, 4, &h), -EINVAL);
    static char big[OT_REGISTRY_VALUE_MAX + 2];
    ot_assert_eq(ot_registry_register(r, big, OT_REGISTRY_KEY_MAX + 1, NULL, 0, &h),
                 -ENAMETOOLONG);
    ot_assert_eq(ot_registry_register(r, big, OT_REGISTRY_KEY_MAX, NULL, 0, &h), 0);
    ot_assert_eq(ot_registry_register(r, "v", 1, big, OT_REGISTRY_VALUE_MAX + 1, &h), -EMSGSIZE);
    ot_assert_eq(ot_registry_register(r, "v", 1, big, OT_REGISTRY_VALUE_MAX, &h), 0);
    ot_assert_eq(ot_registry_register(OT_NOREG, "k", 1, NULL, 0, &h), -EBADF);
    ot_assert_eq(ot_registry_register((ot_reg){r.v + (1ull << 32)}, "k", 1, NULL, 0, &h), -EBADF);
    ot_assert_eq(ot_registry_register((ot_reg){~0ull}, "k", 1, NULL, 0, &h), -EBADF);

    ot_reg_entry *e;
    size_t n;
    ot_assert_eq(ot_registry_lookup(r, NULL, 1, &e, &n), -EINVAL);
    ot_assert_eq(ot_registry_lookup(r, "k", 1, NULL, &n), -EINVAL);
    ot_assert_eq(ot_registry_lookup(r, big, OT_REGISTRY_KEY_MAX + 1, &e, &n), -ENAMETOOLONG);
    ot_assert_eq(ot_registry_lookup(OT_NOREG, "k", 1, &e, &n), -EBADF);
    ot_assert_eq(ot_registry_match(r, "k", 1, NULL, NULL, &e, &n), -EINVAL);
    ot_assert_eq(ot_registry_dispatch(r, "k", 1, NULL, NULL), -EINVAL);
    ot_assert_eq(ot_registry_unregister_match(r, "k", 1, NULL, NULL), -EINVAL);
    ot_assert_eq(ot_registry_update_value(r, "v", 1, NULL, 1), -EINVAL);
    ot_assert_eq(ot_registry_count(OT_NOREG), 0);
    ot_assert_eq(errno, EBADF);
    ot_assert_eq(ot_registry_pid(OT_NOREG).v, 0);
    ot_reg_key *ks;
    ot_assert_eq(ot_registry_keys(r, OT_NOPID, &ks, &n), 0);
    ot_assert(ks == NULL && n == 0);
    ot_assert_eq(ot_registry_keys(r, (ot_pid){12345}, &ks, &n), 0);
    ot_assert_eq(n, 0);

    /* start_link */
    ot_pid p;
    ot_assert_eq(ot_registry_start_link(NULL, 0, 1, &p), -EINVAL);
    ot_assert_eq(ot_registry_start_link(NULL, 3, 1, &p), -EINVAL);
    char longname[OT_NAME_MAX + 1];
    memset(longname, 'n', sizeof longname - 1);
    longname[OT_NAME_MAX] = 0;
    ot_assert_eq(ot_registry_start_link(longname, OT_UNIQUE, 1, &p), -EINVAL);
    ot_assert_eq(ot_registry_start_link("", OT_UNIQUE, 1, &p), -EINVAL);
    ot_assert_eq(ot_registry_start_link("reg_bad", OT_UNIQUE, 1, &p), -EEXIST);
    ot_assert_eq(p.v, ot_registry_pid(r).v);
    ot_assert_eq(ot_registry_whereis("no_such_registry").v, 0);
    ot_assert_eq(errno, ENOENT);
    ot_assert_eq(ot_registry_whereis(NULL).v, 0);
    ot_assert_eq(errno, EINVAL);
    /* A process name that is not a registry. */
    ot_assert_eq(ot_register("plain_proc", ot_self()), 0);
    ot_assert_eq(ot_registry_whereis("plain_proc").v, 0);
    ot_assert_eq(errno, ENOENT);

    /* meta */
    ot_assert_eq(ot_registry_put_meta(r, "m", 1, "meta!", 5), 0);
    char buf[8];
    size_t vl = 0;
    ot_assert_eq(ot_registry_meta(r, "m", 1, buf, sizeof buf, &vl), 0);
    ot_assert(vl == 5 && memcmp(buf, "meta!", 5) == 0);
    ot_assert_eq(ot_registry_meta(r, "m", 1, buf, 2, &vl), -ERANGE);
    ot_assert_eq(vl, 5);
    ot_assert_eq(ot_registry_meta(r, "nope", 4, buf, sizeof buf, &vl), -ENOENT);
    ot_assert_eq(ot_registry_meta(r, "m", 1, buf, sizeof buf, NULL), -EINVAL);
    ot_assert_eq(ot_registry_meta(OT_NOREG, "m", 1, buf, sizeof buf, &vl), -EBADF);
}

OT_TEST(registry, stop_makes_the_handle_stale_and_spares_registrants, .timeout = 120) {
    ot_reg r = start("reg_stop", OT_UNIQUE, 2);
    ot_pid p = spawn_registrant(r, "s", 2, 1, false);
    ot_pid root = ot_registry_pid(r);
    ot_assert_eq(ot_registry_stop(r), 0);
    ot_assert(!ot_is_alive(root));
    ot_assert_eq(ot_registry_stop(r), -EBADF);
    ot_assert_eq(ot_registry_whereis("reg_stop").v, 0);
    ot_reg_entry *e;
    size_t n;
    ot_assert_eq(ot_registry_lookup(r, "s0", 2, &e, &n), -EBADF);
    ot_assert_eq(ot_registry_register(r, "s9", 2, NULL, 0, NULL), -EBADF);
    ot_assert_eq(ot_registry_count(r), 0);
    ot_assert_eq(errno, EBADF);
    /* Stopped with reason normal: the linked registrant lives on. */
    ot_sleep(10);
    ot_assert(ot_is_alive(p));
    ot_send(p, TAG_DIE, NULL, 0);
    /* The name and a slot are free again. */
    ot_reg r2 = start("reg_stop", OT_UNIQUE, 2);
    ot_assert(r2.v != r.v);
    ot_assert_eq(ot_registry_count(r2), 0);
}

/* A killed registry takes its non-trapping registrants with it (they are
 * linked to its partitions, as in Elixir); a trapping one gets the EXIT. */
OT_TEST(registry, a_killed_registry_kills_linked_registrants, .timeout = 120) {
    ot_trap_exit(true);
    ot_reg r = start(NULL, OT_UNIQUE, 1);
    ot_pid p = spawn_registrant(r, "z", 1, 1, false);
    ot_ref m = ot_monitor(p);
    ot_pid root = ot_registry_pid(r);
    ot_assert_eq(ot_exit(root, OT_REASON(OT_KILL)), 0);
    ot_msg *d = ot_receive_ref(m, WAIT_MS);
    ot_assert(d != NULL && d->tag == OT_TAG_DOWN);
    ot_down_msg dm;
    memcpy(&dm, ot_msg_data(d), sizeof dm);
    ot_msg_free(d);
    ot_assert_eq(dm.reason.kind, OT_KILLED);
    ot_reg_entry *e;
    size_t n;
    ot_assert_eq(ot_registry_lookup(r, "z0", 2, &e, &n), -EBADF);
}

/* ---- via names ----------------------------------------------------------------------- */

/* The via callbacks as gen_server calls them (from the new process itself). */
OT_TEST(registry, via_ops_register_whereis_unregister, .timeout = 120) {
    ot_reg r = start(NULL, OT_UNIQUE, 2);
    ot_name n = OT_NAME_REGISTRY(r, "srv", 3);
    ot_assert_eq(n.kind, OT_NAME_VIA);
    const ot_via_ops *ops = n.via;
    ot_assert(ops == &ot_registry_via);
    ot_assert_eq(ops->whereis_name(n.via_arg, "srv", 3).v, 0);
    ot_assert_eq(ops->register_name(n.via_arg, "srv", 3, ot_self()), 0);
    ot_assert_eq(ops->whereis_name(n.via_arg, "srv", 3).v, ot_self().v);
    ot_assert_eq(ops->register_name(n.via_arg, "srv", 3, ot_self()), -EEXIST);
    /* Only the caller registers itself; only unique registries name. */
    ot_pid other = spawn_registrant(r, "o", 1, 0, false);
    ot_assert_eq(ops->register_name(n.via_arg, "srv2", 4, other), -EINVAL);
    ot_reg d = start(NULL, OT_DUPLICATE, 1);
    ot_assert_eq(ot_registry_via.register_name(OT_REG_VIA(d), "x", 1, ot_self()), -EINVAL);
    ot_assert_eq(ot_registry_via.register_name(OT_REG_VIA(OT_NOREG), "x", 1, ot_self()), -EBADF);
    ot_assert_eq(ops->unregister_name(n.via_arg, "srv", 3), 0);
    ot_assert_eq(ops->whereis_name(n.via_arg, "srv", 3).v, 0);
    /* The holder's exit frees the name. */
    ot_assert_eq(ops->whereis_name(n.via_arg, "o0", 2).v, other.v);
    kill_and_wait(other);
    ot_assert_eq(ops->whereis_name(n.via_arg, "o0", 2).v, 0);
}

/* One process with many keys: its records are a key range in the pid table,
 * so keys, unregister and the exit clean-up find them without a scan of all
 * the process's entries per key. */
OT_TEST(registry, one_process_with_many_keys, .timeout = 120) {
    ot_reg r = start(NULL, OT_UNIQUE, 2);
    ot_reg d = start(NULL, OT_DUPLICATE, 2);
    /* (Fewer duplicates: the entries of one key are one bag key in the key
     * table, whose inserts and deletes cost time linear in its entries.) */
    enum { K = 20000, KD = 2000 };
    for (uint32_t k = 0; k < K; k++)
        ot_assert_eq(ot_registry_register(r, &k, 4, &k, 4, NULL), 0);
    for (uint32_t k = 0; k < KD; k++)
        ot_assert_eq(ot_registry_register(d, "same", 4, &k, 4, NULL), 0);
    ot_assert_eq(ot_registry_count(r), K);
    ot_assert_eq(ot_registry_count(d), KD);
    ot_reg_key *ks;
    size_t n;
    ot_assert_eq(ot_registry_keys(r, ot_self(), &ks, &n), 0);
    ot_assert_eq(n, K);
    static bool seen[K];
    for (size_t i = 0; i < n; i++) {
        ot_assert_eq(ks[i].klen, 4);
        uint32_t k;
        memcpy(&k, ks[i].key, 4);
        ot_assert(k < K && !seen[k]);
        seen[k] = true;
    }
    ot_free(ks);
    ot_assert_eq(ot_registry_keys(d, ot_self(), &ks, &n), 0);
    ot_assert_eq(n, KD); /* "same" once per entry */
    ot_free(ks);
    /* Every other unique key goes one by one; the odd duplicate values by match. */
    for (uint32_t k = 0; k < K; k += 2)
        ot_assert_eq(ot_registry_unregister(r, &k, 4), 0);
    ot_assert_eq(ot_registry_count(r), K / 2);
    ot_assert_eq(ot_registry_unregister_match(d, "same", 4, is_odd, NULL), 0);
    ot_assert_eq(ot_registry_count(d), KD / 2);
    ot_assert_eq(ot_registry_count_match(d, "same", 4, is_odd, NULL), 0);
    uint32_t one = 1, two = 2;
    ot_assert_eq(ot_registry_whereis_name(r, &one, 4).v, ot_self().v);
    ot_assert_eq(ot_registry_whereis_name(r, &two, 4).v, 0);
    /* The rest of the duplicates at once. */
    ot_assert_eq(ot_registry_unregister(d, "same", 4), 0);
    ot_assert_eq(ot_registry_count(d), 0);
}

/* A partition that dies takes the registry with it (no restart here: a
 * supervisor above restarts the whole registry), with the partition's reason;
 * other exit signals are only messages to a partition. */
OT_TEST(registry, a_dead_partition_stops_the_registry, .timeout = 120) {
    ot_trap_exit(true);
    ot_reg r = start(NULL, OT_UNIQUE, 3);
    ot_pid root = ot_registry_pid(r);
    struct ot_process_info in;
    ot_assert_eq(nlinks(root), 4);
    ot_assert_eq(ot_process_info(root, &in), 0);
    ot_pid part = OT_NOPID;
    for (size_t i = 0; i < in.n_links && !part.v; i++)
        if (in.links[i].v != ot_self().v)
            part = in.links[i];
    ot_assert(part.v != 0);
    ot_ref m = ot_monitor(root);
    /* Partitions trap exits (a registrant's EXIT is their work): an exit
     * signal from elsewhere is only a message to them, kill is not. */
    ot_assert_eq(ot_exit(part, ot_reason_error("boom")), 0);
    ot_assert(ot_receive_ref(m, 50) == NULL);
    ot_assert(ot_is_alive(part));
    ot_assert_eq(ot_exit(part, OT_REASON(OT_KILL)), 0);
    ot_msg *d = ot_receive_ref(m, WAIT_MS);
    ot_assert(d != NULL && d->tag == OT_TAG_DOWN);
    ot_down_msg dm;
    memcpy(&dm, ot_msg_data(d), sizeof dm);
    ot_msg_free(d);
    ot_assert_eq(dm.reason.kind, OT_KILLED);
    ot_reg_entry *e;
    size_t n;
    ot_assert_eq(ot_registry_lookup(r, "k", 1, &e, &n), -EBADF);
    ot_assert_eq(ot_registry_register(r, "k", 1, NULL, 0, NULL), -EBADF);
}
