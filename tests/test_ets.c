/* ETS API suite: exact behaviour of each call (bag semantics, counters with
 * defaults, select, foldl, walks, info, names), bad input (stale handles,
 * NULL and empty keys, counters on short values and bags) with the table
 * checked intact afterwards, and, inside the runtime, the access rules and
 * ownership: owner exit deletes, heirs inherit with a transfer message,
 * give_away. The first group runs on the test thread (a foreign thread). */
#include <otter/testing.h>
#include <stdlib.h>
#include <string.h>

static ot_tab mk(int type, int access)
{
    ot_ets_opts o = {.type = type, .access = access};
    ot_tab t = ot_ets_new(NULL, &o);
    cr_assert(t.v, "ot_ets_new: %d", errno);
    return t;
}

static int64_t i64(const void *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

Test(ets, set_basics)
{
    ot_tab t = mk(OT_ETS_SET, OT_ETS_PUBLIC);
    cr_assert_eq(ot_ets_insert(t, "a", 1, "one", 3), 0);
    cr_assert_eq(ot_ets_insert(t, "a", 1, "uno", 3), 0);
    cr_assert_eq(ot_ets_insert_new(t, "a", 1, "x", 1), -EEXIST);
    cr_assert_eq(ot_ets_insert_new(t, "b", 1, "", 0), 0);
    cr_assert_eq(ot_ets_size(t), 2);
    ot_ets_obj *o;
    size_t n;
    cr_assert_eq(ot_ets_lookup(t, "a", 1, &o, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert(o[0].klen == 1 && memcmp(o[0].key, "a", 1) == 0);
    cr_assert(o[0].vlen == 3 && memcmp(o[0].val, "uno", 3) == 0);
    free(o);
    cr_assert_eq(ot_ets_lookup(t, "zz", 2, &o, &n), 0);
    cr_assert(n == 0 && o == NULL);
    cr_assert(ot_ets_member(t, "b", 1));
    cr_assert(!ot_ets_member(t, "c", 1));
    cr_assert_eq(ot_ets_delete_object(t, "a", 1, "one", 3), 0); /* not that value */
    cr_assert_eq(ot_ets_size(t), 2);
    cr_assert_eq(ot_ets_delete_object(t, "a", 1, "uno", 3), 0);
    cr_assert_eq(ot_ets_size(t), 1);
    cr_assert_eq(ot_ets_take(t, "b", 1, &o, &n), 0);
    cr_assert(n == 1 && o[0].vlen == 0);
    free(o);
    cr_assert_eq(ot_ets_size(t), 0);
    cr_assert_eq(ot_ets_delete(t, "b", 1), 0);
    cr_assert_eq(ot_ets_delete_table(t), 0);
}

Test(ets, bags)
{
    ot_tab b = mk(OT_ETS_BAG, OT_ETS_PUBLIC), d = mk(OT_ETS_DUPLICATE_BAG, OT_ETS_PUBLIC);
    const char *vals[] = {"x", "y", "x", "z"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ot_ets_insert(b, "k", 1, vals[i], 1), 0);
        cr_assert_eq(ot_ets_insert(d, "k", 1, vals[i], 1), 0);
    }
    ot_ets_obj *o;
    size_t n;
    cr_assert_eq(ot_ets_lookup(b, "k", 1, &o, &n), 0);
    cr_assert_eq(n, 3); /* x y z: the second x is the same object */
    cr_assert(!memcmp(o[0].val, "x", 1) && !memcmp(o[1].val, "y", 1) && !memcmp(o[2].val, "z", 1));
    free(o);
    cr_assert_eq(ot_ets_lookup(d, "k", 1, &o, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert(!memcmp(o[2].val, "x", 1) && !memcmp(o[3].val, "z", 1));
    free(o);
    cr_assert_eq(ot_ets_insert_new(b, "k", 1, "w", 1), -EEXIST);
    cr_assert_eq(ot_ets_delete_object(d, "k", 1, "x", 1), 0); /* both duplicates */
    cr_assert_eq(ot_ets_size(d), 2);
    cr_assert_eq(ot_ets_take(d, "k", 1, &o, &n), 0);
    cr_assert(n == 2 && !memcmp(o[0].val, "y", 1) && !memcmp(o[1].val, "z", 1));
    free(o);
    cr_assert_eq(ot_ets_size(d), 0);
    int64_t r;
    cr_assert_eq(ot_ets_update_counter(b, "k", 1, 0, 1, NULL, &r), -EINVAL);
    cr_assert_eq(ot_ets_size(b), 3); /* intact */
    cr_assert_eq(ot_ets_delete_table(b), 0);
    cr_assert_eq(ot_ets_delete_table(d), 0);
}

Test(ets, update_counter)
{
    ot_tab t = mk(OT_ETS_SET, OT_ETS_PUBLIC);
    int64_t r = 0, dflt = 100, v2[2] = {5, 7};
    cr_assert_eq(ot_ets_update_counter(t, "c", 1, 0, 1, NULL, &r), -ENOENT);
    cr_assert_eq(ot_ets_update_counter(t, "c", 1, 8, 3, &dflt, &r), 0);
    cr_assert_eq(r, 103);
    ot_ets_obj *o;
    size_t n;
    cr_assert_eq(ot_ets_lookup(t, "c", 1, &o, &n), 0);
    cr_assert(n == 1 && o[0].vlen == 16 && i64(o[0].val) == 0 && i64((char *)o[0].val + 8) == 103);
    free(o);
    cr_assert_eq(ot_ets_insert(t, "v", 1, v2, 16), 0);
    cr_assert_eq(ot_ets_update_counter(t, "v", 1, 8, -10, NULL, &r), 0);
    cr_assert_eq(r, -3);
    cr_assert_eq(ot_ets_update_counter(t, "v", 1, 16, 1, NULL, &r), -EINVAL); /* too short */
    cr_assert_eq(ot_ets_update_counter(t, "v", 1, 4, 1, NULL, &r), -EINVAL);  /* unaligned */
    cr_assert_eq(ot_ets_insert(t, "s", 1, "abc", 3), 0);
    cr_assert_eq(ot_ets_update_counter(t, "s", 1, 0, 1, &dflt, &r), -EINVAL);
    cr_assert_eq(ot_ets_lookup(t, "v", 1, &o, &n), 0);
    cr_assert(n == 1 && i64(o[0].val) == 5 && i64((char *)o[0].val + 8) == -3); /* intact */
    free(o);
    cr_assert_eq(ot_ets_size(t), 3);
    cr_assert_eq(ot_ets_delete_table(t), 0);
}

static int sum_fold(const void *k, size_t kl, const void *v, size_t vl, void *acc)
{
    *(int64_t *)acc += i64(v);
    return 0;
}

static int stop_fold(const void *k, size_t kl, const void *v, size_t vl, void *acc)
{
    return ++*(int *)acc == 3 ? 42 : 0;
}

static bool odd(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    return i64(v) % 2 == 1;
}

Test(ets, fold_select_walk)
{
    for (int type = OT_ETS_SET; type <= OT_ETS_ORDERED_SET; type++) {
        ot_tab t = mk(type, OT_ETS_PUBLIC);
        for (int64_t i = 0; i < 100; i++) {
            unsigned char k[2] = {(unsigned char)(i / 10), (unsigned char)(i % 10)};
            cr_assert_eq(ot_ets_insert(t, k, (size_t)(1 + (i % 2)), &i, 8), 0);
        }
        /* keys of length 1 were overwritten by the later odd/even pairs */
        size_t size = ot_ets_size(t);
        cr_assert_eq(size, 60);
        int64_t sum = 0;
        cr_assert_eq(ot_ets_foldl(t, sum_fold, &sum), 0);
        int stop = 0;
        cr_assert_eq(ot_ets_foldl(t, stop_fold, &stop), 42);
        ot_ets_obj *o;
        size_t n, del;
        cr_assert_eq(ot_ets_select(t, odd, NULL, &o, &n), 0);
        cr_assert_eq(n, 50);
        free(o);
        cr_assert_eq(ot_ets_select_delete(t, odd, NULL, &del), 0);
        cr_assert_eq(del, 50);
        cr_assert_eq(ot_ets_size(t), 10);
        /* the survivors: keys {d} for d = 0..9 with value 10d+8 */
        unsigned char kb[4], prev[4];
        size_t kl, seen = 0;
        int rc = ot_ets_first(t, kb, sizeof kb, &kl);
        while (rc == 0) {
            cr_assert_eq(kl, 1);
            if (type == OT_ETS_ORDERED_SET)
                cr_assert_eq(kb[0], seen);
            seen++;
            memcpy(prev, kb, kl);
            rc = ot_ets_next(t, prev, kl, kb, sizeof kb, &kl);
        }
        cr_assert_eq(rc, -ENOENT);
        cr_assert_eq(seen, 10);
        if (type == OT_ETS_ORDERED_SET) {
            cr_assert_eq(ot_ets_last(t, kb, sizeof kb, &kl), 0);
            cr_assert(kl == 1 && kb[0] == 9);
            unsigned char k5[2] = {5, 0};
            cr_assert_eq(ot_ets_prev(t, k5, 2, kb, sizeof kb, &kl), 0); /* absent key */
            cr_assert(kl == 1 && kb[0] == 5);
            cr_assert_eq(ot_ets_next(t, k5, 2, kb, sizeof kb, &kl), 0);
            cr_assert(kl == 1 && kb[0] == 6);
            cr_assert_eq(ot_ets_prev(t, "\0", 1, kb, sizeof kb, &kl), -ENOENT);
        }
        cr_assert_eq(ot_ets_first(t, kb, 0, &kl), -ERANGE);
        cr_assert_eq(kl, 1);
        cr_assert_eq(ot_ets_delete_table(t), 0);
    }
}

Test(ets, names_and_info)
{
    ot_ets_opts o = {.type = OT_ETS_ORDERED_SET, .named = true, .write_concurrency = true};
    ot_tab t = ot_ets_new("ets_test_named", &o);
    cr_assert(t.v);
    cr_assert(ot_ets_new("ets_test_named", &o).v == 0 && errno == EEXIST);
    cr_assert_eq(ot_ets_whereis("ets_test_named").v, t.v);
    cr_assert(ot_ets_whereis("nope").v == 0 && errno == ENOENT);
    cr_assert_eq(ot_ets_insert(t, "k", 1, "v", 1), 0);
    struct ot_ets_info i;
    cr_assert_eq(ot_ets_info(t, &i), 0);
    cr_assert(i.type == OT_ETS_ORDERED_SET && i.access == OT_ETS_PROTECTED && i.size == 1);
    cr_assert(i.named && i.write_concurrency && i.owner.v == 0 && i.heir.v == 0);
    cr_assert_str_eq(i.name, "ets_test_named");
    cr_assert_gt(i.memory, 0);
    cr_assert_eq(ot_ets_delete_table(t), 0);
    cr_assert(ot_ets_whereis("ets_test_named").v == 0);
    o.named = true;
    cr_assert(ot_ets_new(NULL, &o).v == 0 && errno == EINVAL);
    o.type = 9;
    cr_assert(ot_ets_new("x", &o).v == 0 && errno == EINVAL);
}

Test(ets, bad_input)
{
    ot_tab t = mk(OT_ETS_SET, OT_ETS_PUBLIC);
    cr_assert_eq(ot_ets_insert(t, "k", 1, "v", 1), 0);
    ot_ets_obj *o;
    size_t n, kl;
    int64_t r;
    char kb[8];
    cr_assert_eq(ot_ets_insert(t, NULL, 1, "v", 1), -EINVAL);
    cr_assert_eq(ot_ets_insert(t, "k", 0, "v", 1), -EINVAL);
    cr_assert_eq(ot_ets_insert(t, "k", 1, NULL, 1), -EINVAL);
    cr_assert_eq(ot_ets_lookup(t, NULL, 0, &o, &n), -EINVAL);
    cr_assert_eq(ot_ets_delete(t, "", 0), -EINVAL);
    cr_assert_eq(ot_ets_next(t, NULL, 0, kb, sizeof kb, &kl), -EINVAL);
    cr_assert_eq(ot_ets_update_counter(t, NULL, 1, 0, 1, NULL, &r), -EINVAL);
    cr_assert(!ot_ets_member(t, NULL, 0) && errno == EINVAL);
    cr_assert_eq(ot_ets_size(t), 1); /* intact */
    cr_assert_eq(ot_ets_lookup(t, "k", 1, &o, &n), 0);
    cr_assert(n == 1 && !memcmp(o[0].val, "v", 1));
    free(o);

    ot_tab stale = t;
    cr_assert_eq(ot_ets_delete_table(t), 0);
    ot_tab t2 = mk(OT_ETS_SET, OT_ETS_PUBLIC); /* may reuse the slot: new generation */
    cr_assert_neq(t2.v, stale.v);
    cr_assert_eq(ot_ets_insert(stale, "k", 1, "v", 1), -EBADF);
    cr_assert_eq(ot_ets_lookup(stale, "k", 1, &o, &n), -EBADF);
    cr_assert_eq(ot_ets_take(stale, "k", 1, &o, &n), -EBADF);
    cr_assert_eq(ot_ets_delete(stale, "k", 1), -EBADF);
    cr_assert_eq(ot_ets_update_counter(stale, "k", 1, 0, 1, NULL, &r), -EBADF);
    cr_assert_eq(ot_ets_first(stale, kb, sizeof kb, &kl), -EBADF);
    cr_assert_eq(ot_ets_delete_table(stale), -EBADF);
    cr_assert(ot_ets_size(stale) == 0 && errno == EBADF);
    cr_assert(!ot_ets_member(stale, "k", 1) && errno == EBADF);
    cr_assert_eq(ot_ets_give_away(stale, (ot_pid){1}, NULL, 0), -EBADF);
    cr_assert_eq(ot_ets_insert(OT_NOTAB, "k", 1, "v", 1), -EBADF);
    cr_assert_eq(ot_ets_insert((ot_tab){~0ull}, "k", 1, "v", 1), -EBADF);
    cr_assert_eq(ot_ets_size(t2), 0);
    cr_assert_eq(ot_ets_delete_table(t2), 0);
}

/* ---- inside the runtime: access and ownership ---------------------------- */

enum { TAG_TAB = OT_TAG_USER, TAG_RESULT };

typedef struct {
    ot_tab t;
    ot_pid parent;
    int rc[8];
    size_t size;
    int size_errno;
} probe_arg;

/* Another process tries every kind of access and reports. */
static void prober(void *p)
{
    probe_arg *a = p;
    ot_ets_obj *o;
    size_t n, kl;
    char kb[8];
    a->rc[0] = ot_ets_lookup(a->t, "k", 1, &o, &n);
    a->rc[1] = ot_ets_insert(a->t, "k2", 2, "v", 1);
    a->rc[2] = ot_ets_delete(a->t, "k", 1);
    a->rc[3] = ot_ets_first(a->t, kb, sizeof kb, &kl);
    struct ot_ets_info i;
    a->rc[6] = ot_ets_info(a->t, &i);
    a->rc[7] = a->rc[6] ? a->rc[6] : (int)i.size * 10 + i.access;
    errno = 0;
    a->size = ot_ets_size(a->t);
    a->size_errno = errno;
    a->rc[4] = ot_ets_delete_table(a->t);
    a->rc[5] = ot_ets_give_away(a->t, a->parent, NULL, 0);
    ot_send(a->parent, TAG_RESULT, NULL, 0);
}

static void probe(ot_tab t, probe_arg *a)
{
    memset(a, 0, sizeof *a);
    a->t = t;
    a->parent = ot_self();
    ot_spawn(prober, a);
    ot_msg *m = ot_receive_tag(TAG_RESULT, 5000);
    ot_assert(m != NULL);
    ot_msg_free(m);
}

OT_TEST(ets_rt, access, .timeout = 30)
{
    probe_arg a;
    ot_tab prot = ot_ets_new(NULL, NULL);
    ot_assert(prot.v != 0);
    ot_assert_eq(ot_ets_insert(prot, "k", 1, "v", 1), 0);
    probe(prot, &a);
    ot_assert_eq(a.rc[0], 0);
    ot_assert_eq(a.rc[1], -EACCES);
    ot_assert_eq(a.rc[2], -EACCES);
    ot_assert_eq(a.rc[3], 0);
    ot_assert_eq(a.rc[4], -EACCES);
    ot_assert_eq(a.rc[5], -EPERM);
    ot_assert_eq(ot_ets_size(prot), 1);

    ot_ets_opts po = {.access = OT_ETS_PRIVATE};
    ot_tab priv = ot_ets_new(NULL, &po);
    ot_assert_eq(ot_ets_insert(priv, "k", 1, "v", 1), 0);
    ot_assert_eq(ot_ets_insert(priv, "k2", 2, "v", 1), 0);
    probe(priv, &a);
    ot_assert_eq(a.rc[0], -EACCES);
    ot_assert_eq(a.rc[1], -EACCES);
    ot_assert_eq(a.rc[3], -EACCES);
    ot_assert_eq(a.rc[4], -EACCES);
    /* ets:info/1,2 answer anyone, of a private table too (issue 11 item 8) */
    ot_assert_eq(a.rc[6], 0);
    ot_assert_eq(a.rc[7], 2 * 10 + OT_ETS_PRIVATE);
    ot_assert_eq(a.size, 2);
    ot_assert_eq(a.size_errno, 0);
    ot_assert_eq(ot_ets_delete(priv, "k2", 2), 0);
    ot_assert_eq(ot_ets_size(priv), 1);

    po.access = OT_ETS_PUBLIC;
    ot_tab pub = ot_ets_new(NULL, &po);
    ot_assert_eq(ot_ets_insert(pub, "k", 1, "v", 1), 0);
    probe(pub, &a);
    ot_assert_eq(a.rc[0], 0);
    ot_assert_eq(a.rc[1], 0);
    ot_assert_eq(a.rc[2], 0);
    ot_assert_eq(a.rc[4], 0); /* anyone may delete a public table */
    ot_assert_eq(ot_ets_size(pub), 0);
    ot_assert_eq(ot_ets_insert(pub, "k", 1, "v", 1), -EBADF);

    struct ot_ets_info i;
    ot_assert_eq(ot_ets_info(prot, &i), 0);
    ot_assert_eq(i.owner.v, ot_self().v);
    ot_assert_eq(ot_ets_delete_table(prot), 0);
    ot_assert_eq(ot_ets_delete_table(priv), 0);
}

typedef struct {
    ot_pid parent, heir;
    const char *data;
} owner_arg;

static void owner_proc(void *p)
{
    owner_arg *a = p;
    ot_ets_opts o = {.heir = a->heir, .heir_data = a->data,
                     .heir_data_len = a->data ? strlen(a->data) : 0};
    ot_tab t = ot_ets_new(NULL, &o);
    ot_ets_insert(t, "k", 1, "v", 1);
    ot_send(a->parent, TAG_TAB, &t, sizeof t);
}

static ot_tab start_owner(owner_arg *a, ot_ref *mon)
{
    ot_pid p = ot_spawn(owner_proc, a);
    *mon = ot_monitor(p);
    ot_msg *m = ot_receive_tag(TAG_TAB, 5000);
    ot_assert(m != NULL);
    ot_tab t;
    memcpy(&t, ot_msg_data(m), sizeof t);
    ot_msg_free(m);
    return t;
}

static void wait_down(ot_ref mon)
{
    ot_msg *m = ot_receive_ref(mon, 5000);
    ot_assert(m != NULL && m->tag == OT_TAG_DOWN);
    ot_msg_free(m);
}

static void idle_proc(void *p)
{
    ot_msg *m = ot_receive_tag(TAG_RESULT, OT_INFINITY);
    ot_msg_free(m);
}

OT_TEST(ets_rt, owner_exit_deletes, .timeout = 30)
{
    owner_arg a = {.parent = ot_self()};
    ot_ref mon;
    ot_tab t = start_owner(&a, &mon);
    wait_down(mon); /* the exit hook ran before the DOWN was sent */
    ot_assert_eq(ot_ets_insert(t, "x", 1, "y", 1), -EBADF);
    ot_assert(ot_ets_size(t) == 0 && errno == EBADF);
}

OT_TEST(ets_rt, heir_inherits, .timeout = 30)
{
    owner_arg a = {.parent = ot_self(), .heir = ot_self(), .data = "heirdata"};
    ot_ref mon;
    ot_tab t = start_owner(&a, &mon);
    ot_pid owner = ot_self(); /* set below from the message */
    ot_msg *m = ot_receive_tag(OT_TAG_ETS_TRANSFER, 5000);
    ot_assert(m != NULL);
    ot_ets_transfer_msg *tm = ot_msg_data(m);
    ot_assert_eq(tm->tab.v, t.v);
    ot_assert(tm->from.v != 0 && tm->from.v != owner.v);
    ot_assert_eq(tm->len, 8);
    ot_assert(memcmp(tm->data, "heirdata", 8) == 0);
    ot_msg_free(m);
    wait_down(mon);
    ot_assert_eq(ot_ets_size(t), 1);
    ot_assert_eq(ot_ets_insert(t, "x", 1, "y", 1), 0); /* protected: we own it now */
    struct ot_ets_info i;
    ot_assert_eq(ot_ets_info(t, &i), 0);
    ot_assert_eq(i.owner.v, ot_self().v);
    ot_assert_eq(i.heir.v, 0);
    ot_assert_eq(ot_ets_delete_table(t), 0);
}

OT_TEST(ets_rt, dead_heir_deletes, .timeout = 30)
{
    ot_pid heir = ot_spawn(idle_proc, NULL);
    ot_ref hm = ot_monitor(heir);
    ot_send(heir, TAG_RESULT, NULL, 0);
    wait_down(hm);
    owner_arg a = {.parent = ot_self(), .heir = heir};
    ot_ref mon;
    ot_tab t = start_owner(&a, &mon);
    wait_down(mon);
    ot_assert_eq(ot_ets_insert(t, "x", 1, "y", 1), -EBADF);
}

/* ets:new with an heir already dead: no heir (OTP's none), never the dead
 * pid; a live heir is kept. */
OT_TEST(ets_rt, dead_heir_at_new_reads_none, .timeout = 30)
{
    ot_pid dead = ot_spawn(idle_proc, NULL);
    ot_ref dm = ot_monitor(dead);
    ot_send(dead, TAG_RESULT, NULL, 0);
    wait_down(dm);
    ot_ets_opts o = {.heir = dead, .heir_data = "d", .heir_data_len = 1};
    ot_tab t = ot_ets_new(NULL, &o);
    ot_assert(t.v != 0);
    struct ot_ets_info i;
    ot_assert_eq(ot_ets_info(t, &i), 0);
    ot_assert_eq(i.heir.v, 0);
    ot_pid live = ot_spawn(idle_proc, NULL);
    o.heir = live;
    ot_tab t2 = ot_ets_new(NULL, &o);
    ot_assert_eq(ot_ets_info(t2, &i), 0);
    ot_assert_eq(i.heir.v, live.v);
    ot_send(live, TAG_RESULT, NULL, 0);
    ot_assert_eq(ot_ets_delete_table(t), 0);
    ot_assert_eq(ot_ets_delete_table(t2), 0);
}

OT_TEST(ets_rt, give_away, .timeout = 30)
{
    ot_tab t = ot_ets_new(NULL, NULL);
    ot_assert_eq(ot_ets_give_away(t, ot_self(), NULL, 0), -EINVAL);
    ot_pid dead = ot_spawn(idle_proc, NULL);
    ot_ref dm = ot_monitor(dead);
    ot_send(dead, TAG_RESULT, NULL, 0);
    wait_down(dm);
    ot_assert_eq(ot_ets_give_away(t, dead, NULL, 0), -ESRCH);
    ot_assert_eq(ot_ets_give_away(t, OT_NOPID, NULL, 0), -ESRCH);

    /* Give it to a process that hands it straight back with a gift. */
    ot_pid p = ot_spawn(idle_proc, NULL);
    ot_assert_eq(ot_ets_give_away(t, p, "gift", 4), 0);
    ot_assert_eq(ot_ets_insert(t, "k", 1, "v", 1), -EACCES); /* not ours any more */
    ot_assert_eq(ot_ets_give_away(t, p, NULL, 0), -EPERM);
    struct ot_ets_info i;
    ot_assert_eq(ot_ets_info(t, &i), 0);
    ot_assert_eq(i.owner.v, p.v);
    ot_ref pm = ot_monitor(p);
    ot_send(p, TAG_RESULT, NULL, 0);
    wait_down(pm); /* the new owner exits without heir: the table goes */
    ot_assert_eq(ot_ets_info(t, &i), -EBADF);
}

static void give_back(void *p)
{
    ot_pid parent = *(ot_pid *)p;
    ot_msg *m = ot_receive_tag(OT_TAG_ETS_TRANSFER, 5000);
    if (!m)
        return;
    ot_ets_transfer_msg *tm = ot_msg_data(m);
    int rc = ot_ets_insert(tm->tab, "mine", 4, tm->data, tm->len);
    rc = rc ? rc : ot_ets_give_away(tm->tab, parent, "back", 4);
    ot_msg_free(m);
    ot_send(parent, TAG_RESULT, &rc, sizeof rc);
}

OT_TEST(ets_rt, give_away_round_trip, .timeout = 30)
{
    ot_pid me = ot_self();
    ot_tab t = ot_ets_new(NULL, NULL);
    ot_pid p = ot_spawn(give_back, &me);
    ot_assert_eq(ot_ets_give_away(t, p, "gift", 4), 0);
    ot_msg *m = ot_receive_tag(OT_TAG_ETS_TRANSFER, 5000);
    ot_assert(m != NULL);
    ot_ets_transfer_msg *tm = ot_msg_data(m);
    ot_assert_eq(tm->from.v, p.v);
    ot_assert(tm->len == 4 && memcmp(tm->data, "back", 4) == 0);
    ot_msg_free(m);
    m = ot_receive_tag(TAG_RESULT, 5000);
    ot_assert(m != NULL);
    ot_assert_eq(*(int *)ot_msg_data(m), 0);
    ot_msg_free(m);
    ot_ets_obj *o;
    size_t n;
    ot_assert_eq(ot_ets_lookup(t, "mine", 4, &o, &n), 0);
    ot_assert(n == 1 && o[0].vlen == 4 && memcmp(o[0].val, "gift", 4) == 0);
    ot_free(o);
    ot_assert_eq(ot_ets_delete_table(t), 0);
}

/* Big tables grow through arrays made ahead of their resizes (hash.c's
 * prepare: from 3/8 load, for arrays of 1 MiB and up); every key must come
 * through each resize, including one that picks another size than the one
 * prepared (after mass deletes) and so releases it. */
static void check_keys(ot_tab t, uint64_t from, uint64_t to, uint64_t step)
{
    for (uint64_t k = from; k < to; k += step) {
        ot_ets_obj *o;
        size_t n;
        ot_assert_eq(ot_ets_lookup(t, &k, 8, &o, &n), 0);
        ot_assert_eq(n, 1);
        uint64_t v;
        memcpy(&v, o[0].val, 8);
        ot_assert_eq(v, k * 3);
        ot_assert_eq(o[0].vlen, k % 7 ? 8 : 24);
        ot_free(o);
    }
}

static void put_keys(ot_tab t, uint64_t from, uint64_t to)
{
    for (uint64_t k = from; k < to; k++) {
        uint64_t v[3] = {k * 3, k, ~k}; /* every 7th a record, the rest inline */
        ot_assert_eq(ot_ets_insert(t, &k, 8, v, k % 7 ? 8 : 24), 0);
    }
}

OT_TEST(ets_rt, grows_through_prepared_arrays, .timeout = 120)
{
    ot_ets_opts o = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC, .write_concurrency = true};
    ot_tab t = ot_ets_new(NULL, &o);
    ot_assert(t.v);
    /* resizes at arrays of 1 to 16 MiB, each prepared; 200k keys in 512k
     * slots is past 3/8: the 1M-slot array is prepared */
    put_keys(t, 0, 200000);
    ot_assert_eq(ot_ets_size(t), 200000);
    check_keys(t, 0, 200000, 1);
    for (uint64_t k = 0; k < 200000; k++)
        if (k % 10)
            ot_assert_eq(ot_ets_delete(t, &k, 8), 0);
    /* 20k live among tombstones: the next resize wants far fewer slots than
     * the prepared array has, and releases it */
    put_keys(t, 1000000, 1100000);
    ot_assert_eq(ot_ets_size(t), 120000);
    check_keys(t, 0, 200000, 10);
    check_keys(t, 1000000, 1100000, 1);
    ot_assert_eq(ot_ets_delete_table(t), 0);
    ot_sleep(100); /* a grace period: destroyed before the runtime stops (ASan) */
}

static size_t tab_memory(ot_tab t)
{
    struct ot_ets_info i;
    ot_assert_eq(ot_ets_info(t, &i), 0);
    return i.memory;
}

/* A table that stops just past its prepare point holds only the share of
 * its next array asked so far (hash.c: steps of 1/16 of the way from cap/4
 * to cap/2 claimed slots, mapped at the second, asked one step ahead), which
 * ot_ets_info's memory counts once the thread has claimed it; mass deletes
 * that take it back under cap/4 live keys give it back. */
OT_TEST(ets_rt, prepared_array_held_in_proportion, .timeout = 120)
{
    ot_ets_opts o = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC, .write_concurrency = true};
    ot_tab t = ot_ets_new(NULL, &o);
    ot_assert(t.v);
    /* 512k slots (16 MiB) from key 131073 on; its 1M-slot (32 MiB) next
     * array is mapped at 147456 claimed slots */
    put_keys(t, 0, 140000);
    size_t m0 = tab_memory(t);
    put_keys(t, 140000, 160000); /* step 3: 4/16 of it asked, 8 MiB */
    size_t m1 = m0;
    for (int i = 0; i < 1000 && m1 < m0 + (4u << 20); i++) {
        ot_sleep(10); /* an idle core for the SCHED_IDLE thread */
        m1 = tab_memory(t);
    }
    ot_assert(m1 >= m0 + (4u << 20), "prepared part counted: %zu -> %zu", m0, m1);
    ot_sleep(200); /* the thread stops at what was asked */
    m1 = tab_memory(t);
    ot_assert(m1 < m0 + (16u << 20), "at most half the next array: %zu -> %zu", m0, m1);
    for (uint64_t k = 0; k < 40000; k++)
        ot_assert_eq(ot_ets_delete(t, &k, 8), 0);
    /* 120k live keys, under a quarter of 512k slots: given back */
    size_t m2 = tab_memory(t);
    ot_assert(m2 < m0, "released: %zu -> %zu (before it: %zu)", m1, m2, m0);
    /* grows on through plain resizes */
    put_keys(t, 1000000, 1200000);
    ot_assert_eq(ot_ets_size(t), 320000);
    check_keys(t, 40000, 160000, 1);
    check_keys(t, 1000000, 1200000, 1);
    ot_assert_eq(ot_ets_delete_table(t), 0);
    ot_sleep(100); /* as in grows_through_prepared_arrays */
}

static void fill_and_exit(void *p)
{
    ot_tab *t = p;
    *t = ot_ets_new(NULL, NULL);
    if (t->v)
        put_keys(*t, 0, 200000); /* 3/8 of 512k slots: its 32 MiB next array prepared */
}

/* A table deleted while it holds a prepared array releases it (ASan sees
 * the rest of it leak), whether deleted by call or by its owner's exit. */
OT_TEST(ets_rt, delete_with_prepared_array, .timeout = 60)
{
    ot_tab t = ot_ets_new(NULL, NULL);
    put_keys(t, 0, 200000);
    ot_assert_eq(ot_ets_delete_table(t), 0);
    ot_tab t2 = OT_NOTAB;
    ot_ref mon = ot_monitor(ot_spawn(fill_and_exit, &t2));
    ot_msg *m = ot_receive_ref(mon, 60000); /* the exit hook ran before the DOWN */
    ot_assert(m != NULL && m->tag == OT_TAG_DOWN);
    ot_msg_free(m);
    ot_assert(t2.v != 0);
    struct ot_ets_info i;
    ot_assert_eq(ot_ets_info(t2, &i), -EBADF);
    ot_sleep(100); /* as above */
}

/* ---- reductions ---------------------------------------------------------------------------- */

static ot_tab spin_tab;
static _Atomic int spin_flag;
static _Atomic uint64_t spin_ops;

/* Reads in a loop with no other runtime call until the flag is up (or a
 * bound it never reaches when ETS calls do not yield). */
static void ets_spinner(void *arg) {
    (void)arg;
    uint64_t k = 1, n = 0;
    while (!atomic_load_explicit(&spin_flag, memory_order_relaxed) && n < 200000000u) {
        ot_ets_obj *objs;
        size_t cnt;
        if (ot_ets_lookup(spin_tab, &k, sizeof k, &objs, &cnt) == 0 && objs)
            ot_free(objs);
        n++;
    }
    atomic_store_explicit(&spin_ops, n, memory_order_relaxed);
}

static void flag_raiser(void *arg) {
    (void)arg;
    atomic_store_explicit(&spin_flag, 1, memory_order_relaxed);
}

/* ETS calls spend reductions (ARCHITECTURE 3): a process that loops over
 * look-ups yields when its budget is gone, so a process bound to the same
 * scheduler gets to run, and the looper's reductions count its calls. */
OT_TEST(ets_rt, calls_spend_reductions_and_yield, .timeout = 60) {
    ot_ets_opts o = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC};
    spin_tab = ot_ets_new(NULL, &o);
    ot_assert(spin_tab.v != 0);
    uint64_t k = 1, v = 2;
    ot_assert_eq(ot_ets_insert(spin_tab, &k, sizeof k, &v, sizeof v), 0);
    int on = ot_scheduler_id();
    ot_spawn_opts bo = {.scheduler = on, .scheduler_set = true, .bind = true};
    ot_ref r;
    ot_spawn_opts so = {.scheduler = on, .scheduler_set = true, .bind = true, .monitor = true,
                        .monitor_ref = &r};
    ot_pid spinner = ot_spawn_opt(ets_spinner, NULL, &so);
    ot_assert(spinner.v != 0);
    ot_assert(ot_spawn_opt(flag_raiser, NULL, &bo).v != 0);
    ot_msg *m = ot_receive_ref(r, 30000);
    ot_assert(m != NULL, "(the spinner did not stop)");
    ot_msg_free(m);
    uint64_t n = atomic_load_explicit(&spin_ops, memory_order_relaxed);
    ot_assert(n < 200000000u, "(the flag raiser never ran: %llu reads)", (unsigned long long)n);
    ot_assert(n > 0);
}
