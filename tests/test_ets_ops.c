/* ETS operations on several objects or elements (issue 11 item 9): exact
 * results of insert_many, insert_new_many, lookup_element, update_element,
 * update_counters (thresholds, several counters, defaults), delete_all_objects,
 * tab2list and setopts_heir on each table type they apply to; bad input
 * (NULL, bad positions, fields that are no counter, bags, stale handles,
 * access from other processes) with the documented errno and the table
 * unchanged; and atomicity under concurrency: many processes on four
 * schedulers read while others write several keys or words at once, and no
 * reader ever sees part of one write (ordered version checks, equal counter
 * pairs), and no counter add is lost. Runs under TSan and ASan too. */
#include <otter/testing.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const int TYPES[] = {OT_ETS_SET, OT_ETS_ORDERED_SET, OT_ETS_BAG, OT_ETS_DUPLICATE_BAG};

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

static ot_ets_obj obj(const char *k, const char *v)
{
    return (ot_ets_obj){.key = k, .klen = strlen(k), .val = v, .vlen = strlen(v)};
}

/* The key's values as one string "v1,v2,..." (lookup order). */
static void vals_of(ot_tab t, const char *k, char *out, size_t cap)
{
    ot_ets_obj *o;
    size_t n;
    cr_assert_eq(ot_ets_lookup(t, k, strlen(k), &o, &n), 0);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%.*s", i ? "," : "", (int)o[i].vlen, (const char *)o[i].val);
    }
    free(o);
}

static void assert_vals(ot_tab t, const char *k, const char *want)
{
    char got[256];
    vals_of(t, k, got, sizeof got);
    cr_assert_str_eq(got, want, "key %s: %s, not %s", k, got, want);
}

/* ---- insert_many / insert_new_many -------------------------------------------- */

Test(ets_ops, insert_many_each_type)
{
    /* a set keeps the last object of a key given more than once; a bag drops the equal
     * one; a duplicate_bag keeps both (ets:insert/2 with a list) */
    const char *want_a[] = {"1", "1", "1,3", "1,3,1"};
    const size_t want_size[] = {3, 3, 4, 5};
    for (int ti = 0; ti < 4; ti++) {
        ot_tab t = mk(TYPES[ti], OT_ETS_PUBLIC);
        ot_ets_obj objs[] = {obj("a", "1"), obj("b", "2"), obj("a", "3"), obj("a", "1"),
                             obj("long-key-of-more-than-sixteen-bytes", "long value, a record")};
        cr_assert_eq(ot_ets_insert_many(t, objs, 5), 0);
        assert_vals(t, "a", want_a[ti]);
        assert_vals(t, "b", "2");
        assert_vals(t, "long-key-of-more-than-sixteen-bytes", "long value, a record");
        cr_assert_eq(ot_ets_size(t), want_size[ti], "type %d", ti);
        cr_assert_eq(ot_ets_insert_many(t, NULL, 0), 0);
        cr_assert_eq(ot_ets_insert_many(t, objs, 0), 0);
        cr_assert_eq(ot_ets_size(t), want_size[ti]);
        cr_assert_eq(ot_ets_delete_table(t), 0);
    }
}

Test(ets_ops, insert_many_bad_input_inserts_nothing)
{
    ot_tab t = mk(OT_ETS_SET, OT_ETS_PUBLIC);
    ot_ets_obj bad[] = {obj("x", "1"), {.key = NULL, .klen = 1}, obj("y", "2")};
    cr_assert_eq(ot_ets_insert_many(t, NULL, 2), -EINVAL);
    cr_assert_eq(ot_ets_insert_many(t, bad, 3), -EINVAL);
    bad[1] = (ot_ets_obj){.key = "k", .klen = 0};
    cr_assert_eq(ot_ets_insert_many(t, bad, 3), -EINVAL);
    bad[1] = (ot_ets_obj){.key = "k", .klen = 1, .val = NULL, .vlen = 3};
    cr_assert_eq(ot_ets_insert_new_many(t, bad, 3), -EINVAL);
    cr_assert_eq(ot_ets_size(t), 0);
    cr_assert(!ot_ets_member(t, "x", 1));
    cr_assert_eq(ot_ets_delete_table(t), 0);
    cr_assert_eq(ot_ets_insert_many(t, bad, 1), -EBADF);
    cr_assert_eq(ot_ets_insert_many(OT_NOTAB, NULL, 0), -EBADF);
}

Test(ets_ops, insert_new_many_all_or_none)
{
    for (int ti = 0; ti < 4; ti++) {
        ot_tab t = mk(TYPES[ti], OT_ETS_PUBLIC);
        cr_assert_eq(ot_ets_insert(t, "k", 1, "old", 3), 0);
        ot_ets_obj o1[] = {obj("n1", "1"), obj("n2", "2"), obj("k", "new"), obj("n3", "3")};
        cr_assert_eq(ot_ets_insert_new_many(t, o1, 4), -EEXIST);
        cr_assert_eq(ot_ets_size(t), 1, "type %d: none inserted", ti);
        cr_assert(!ot_ets_member(t, "n1", 2) && !ot_ets_member(t, "n3", 2));
        assert_vals(t, "k", "old");
        /* new keys only: all inserted; a key twice as ets:insert_new/2 does */
        ot_ets_obj o2[] = {obj("n1", "1"), obj("n2", "2"), obj("n1", "9")};
        cr_assert_eq(ot_ets_insert_new_many(t, o2, 3), 0);
        assert_vals(t, "n1", ti < 2 ? "9" : "1,9");
        assert_vals(t, "n2", "2");
        cr_assert_eq(ot_ets_size(t), ti < 2 ? 3 : 4);
        cr_assert_eq(ot_ets_delete_table(t), 0);
    }
}

/* Past the mmapped arrays: 100k objects in one call into an empty table,
 * which grows first, then a replace of all of them. */
Test(ets_ops, insert_many_large, .timeout = 60)
{
    for (int ti = 0; ti < 2; ti++) {
        ot_tab t = mk(TYPES[ti], OT_ETS_PUBLIC);
        enum { N = 100000 };
        ot_ets_obj *objs = malloc(N * sizeof *objs);
        uint64_t *kv = malloc(2 * N * sizeof *kv);
        for (size_t i = 0; i < N; i++) {
            kv[2 * i] = i * 0x9e3779b97f4a7c15ull;
            kv[2 * i + 1] = i;
            objs[i] = (ot_ets_obj){&kv[2 * i], 8, &kv[2 * i + 1], 8};
        }
        cr_assert_eq(ot_ets_insert_many(t, objs, N), 0);
        cr_assert_eq(ot_ets_size(t), N);
        for (size_t i = 0; i < N; i++)
            kv[2 * i + 1] = i + 7;
        cr_assert_eq(ot_ets_insert_new_many(t, objs, N), -EEXIST);
        cr_assert_eq(ot_ets_insert_many(t, objs, N), 0);
        cr_assert_eq(ot_ets_size(t), N);
        for (size_t i = 0; i < N; i += 997) {
            char v[8];
            cr_assert_eq(ot_ets_lookup_element(t, &kv[2 * i], 8, 0, 8, v, 8), 1);
            cr_assert_eq(i64(v), (int64_t)i + 7);
        }
        free(objs);
        free(kv);
        cr_assert_eq(ot_ets_delete_table(t), 0);
    }
}

/* ---- lookup_element --------------------------------------------------------------- */

Test(ets_ops, lookup_element_each_type)
{
    for (int ti = 0; ti < 4; ti++) {
        ot_tab t = mk(TYPES[ti], OT_ETS_PUBLIC);
        cr_assert_eq(ot_ets_insert(t, "s", 1, "abcdefgh", 8), 0); /* inline in a set */
        cr_assert_eq(ot_ets_insert(t, "r", 1, "0123456789ABCDEFGHIJ", 20), 0);
        char buf[64];
        cr_assert_eq(ot_ets_lookup_element(t, "s", 1, 2, 3, buf, sizeof buf), 1);
        cr_assert(memcmp(buf, "cde", 3) == 0);
        cr_assert_eq(ot_ets_lookup_element(t, "r", 1, 5, 12, buf, sizeof buf), 1);
        cr_assert(memcmp(buf, "56789ABCDEFG", 12) == 0);
        cr_assert_eq(ot_ets_lookup_element(t, "r", 1, 19, 1, buf, sizeof buf), 1);
        cr_assert_eq(buf[0], 'J');
        cr_assert_eq(ot_ets_lookup_element(t, "r", 1, 19, 2, buf, sizeof buf), -EINVAL);
        cr_assert_eq(ot_ets_lookup_element(t, "r", 1, 0, 0, buf, sizeof buf), -EINVAL);
        cr_assert_eq(ot_ets_lookup_element(t, "r", 1, 0, 1, NULL, 1), -EINVAL);
        cr_assert_eq(ot_ets_lookup_element(t, NULL, 1, 0, 1, buf, 1), -EINVAL);
        cr_assert_eq(ot_ets_lookup_element(t, "zz", 2, 0, 1, buf, 1), -ENOENT);
        if (ti >= 2) {
            /* a bag: each object's element, in insertion order; a buffer too
             * small gets what fits and the count says so */
            cr_assert_eq(ot_ets_insert(t, "s", 1, "ABCDEFGH", 8), 0);
            cr_assert_eq(ot_ets_insert(t, "s", 1, "xyz", 3), 0);
            cr_assert_eq(ot_ets_lookup_element(t, "s", 1, 1, 2, buf, sizeof buf), 3);
            cr_assert(memcmp(buf, "bcBCyz", 6) == 0);
            memset(buf, 0, sizeof buf);
            cr_assert_eq(ot_ets_lookup_element(t, "s", 1, 1, 2, buf, 5), 3);
            cr_assert(memcmp(buf, "bcBC\0", 5) == 0);
            cr_assert_eq(ot_ets_lookup_element(t, "s", 1, 0, 0 + 8, NULL, 0), -EINVAL,
                         "one object is too short: badarg, as OTP");
        }
        cr_assert_eq(ot_ets_delete_table(t), 0);
        cr_assert_eq(ot_ets_lookup_element(t, "r", 1, 0, 1, buf, 1), -EBADF);
    }
}

/* ---- update_element ---------------------------------------------------------------- */

Test(ets_ops, update_element_sets)
{
    for (int ti = 0; ti < 2; ti++) {
        ot_tab t = mk(TYPES[ti], OT_ETS_PUBLIC);
        cr_assert_eq(ot_ets_insert(t, "s", 1, "abcdefgh", 8), 0);
        cr_assert_eq(ot_ets_insert(t, "r", 1, "0123456789ABCDEFGHIJ", 20), 0);
        ot_ets_elem e1[] = {{2, "XY", 2}};
        cr_assert_eq(ot_ets_update_element(t, "s", 1, e1, 1), 0);
        assert_vals(t, "s", "abXYefgh");
        /* in order, the later wins where they overlap; unaligned, across words */
        ot_ets_elem e2[] = {{3, "aaaaaaaaaaaa", 12}, {6, "--", 2}, {19, "!", 1}};
        cr_assert_eq(ot_ets_update_element(t, "r", 1, e2, 3), 0);
        assert_vals(t, "r", "012aaa--aaaaaaaFGHI!");
        cr_assert_eq(ot_ets_update_element(t, "r", 1, NULL, 0), 0);
        cr_assert_eq(ot_ets_update_element(t, "none", 4, NULL, 0), -ENOENT);
        cr_assert_eq(ot_ets_update_element(t, "none", 4, e1, 1), -ENOENT);
        /* past the end: nothing written, the earlier element neither */
        ot_ets_elem e3[] = {{0, "Z", 1}, {19, "ab", 2}};
        cr_assert_eq(ot_ets_update_element(t, "r", 1, e3, 2), -EINVAL);
        assert_vals(t, "r", "012aaa--aaaaaaaFGHI!");
        ot_ets_elem e4[] = {{0, NULL, 1}};
        cr_assert_eq(ot_ets_update_element(t, "r", 1, e4, 1), -EINVAL);
        ot_ets_elem e5[] = {{0, "Z", 0}};
        cr_assert_eq(ot_ets_update_element(t, "r", 1, e5, 1), -EINVAL);
        cr_assert_eq(ot_ets_update_element(t, "r", 1, NULL, 1), -EINVAL);
        cr_assert_eq(ot_ets_update_element(t, NULL, 1, e1, 1), -EINVAL);
        cr_assert_eq(ot_ets_size(t), 2);
        cr_assert_eq(ot_ets_delete_table(t), 0);
    }
    for (int ti = 2; ti < 4; ti++) {
        ot_tab t = mk(TYPES[ti], OT_ETS_PUBLIC);
        cr_assert_eq(ot_ets_insert(t, "s", 1, "abcdefgh", 8), 0);
        ot_ets_elem e1[] = {{2, "XY", 2}};
        cr_assert_eq(ot_ets_update_element(t, "s", 1, e1, 1), -EINVAL);
        assert_vals(t, "s", "abcdefgh");
        cr_assert_eq(ot_ets_delete_table(t), 0);
    }
}

/* ---- update_counters --------------------------------------------------------------- */

static void put2(ot_tab t, const char *k, int64_t a, int64_t b)
{
    int64_t v[2] = {a, b};
    cr_assert_eq(ot_ets_insert(t, k, strlen(k), v, 16), 0);
}

/* The figures are what OTP 25 answers for {k, 10, 20} (erl, by hand):
 * {2,5,12,0} -> 0, {2,12,12,7} -> 12, {2,0,3,99} -> 99, {2,-10,3,-1} -> 89,
 * {2,-4,3,-1} -> 85, [{2,1},{3,1},{2,1}] -> [86,21,87]. */
Test(ets_ops, update_counters_as_otp)
{
    for (int ti = 0; ti < 2; ti++) {
        ot_tab t = mk(TYPES[ti], OT_ETS_PUBLIC);
        put2(t, "k", 10, 20);
        struct {
            int64_t incr, thr, set, want;
        } steps[] = {{5, 12, 0, 0}, {12, 12, 7, 12}, {0, 3, 99, 99}, {-10, 3, -1, 89},
                     {-4, 3, -1, 85}};
        for (size_t i = 0; i < 5; i++) {
            ot_ets_counter_op op = {0, steps[i].incr, true, steps[i].thr, steps[i].set};
            int64_t r = -12345;
            cr_assert_eq(ot_ets_update_counters(t, "k", 1, &op, 1, NULL, 0, &r), 0);
            cr_assert_eq(r, steps[i].want, "type %d step %zu", ti, i);
        }
        ot_ets_counter_op ops[] = {{0, 1}, {8, 1}, {0, 1}};
        int64_t res[3];
        cr_assert_eq(ot_ets_update_counters(t, "k", 1, ops, 3, NULL, 0, res), 0);
        cr_assert(res[0] == 86 && res[1] == 21 && res[2] == 87);
        cr_assert_eq(ot_ets_update_counters(t, "k", 1, NULL, 0, NULL, 0, NULL), 0);
        cr_assert_eq(ot_ets_update_counters(t, "nokey", 5, NULL, 0, NULL, 0, NULL), -ENOENT);
        cr_assert_eq(ot_ets_update_counters(t, "nokey", 5, ops, 1, NULL, 0, res), -ENOENT);
        /* the single-counter call sees the same words */
        int64_t one;
        cr_assert_eq(ot_ets_update_counter(t, "k", 1, 8, 100, NULL, &one), 0);
        cr_assert_eq(one, 121);
        /* update_counter/4: the default object inserted with the updates applied */
        int64_t dflt[3] = {1, 2, 3};
        cr_assert_eq(ot_ets_update_counters(t, "d", 1, ops, 3, dflt, 24, res), 0);
        cr_assert(res[0] == 2 && res[1] == 3 && res[2] == 3);
        ot_ets_obj *o;
        size_t n;
        cr_assert_eq(ot_ets_lookup(t, "d", 1, &o, &n), 0);
        cr_assert(n == 1 && o[0].vlen == 24);
        cr_assert(i64(o[0].val) == 3 && i64((char *)o[0].val + 8) == 3 &&
                  i64((char *)o[0].val + 16) == 3);
        free(o);
        cr_assert_eq(ot_ets_update_counters(t, "d", 1, ops, 1, dflt, 24, res), 0);
        cr_assert_eq(res[0], 4); /* present now: the default is not used */
        cr_assert_eq(ot_ets_delete_table(t), 0);
    }
}

Test(ets_ops, update_counters_bad_input_changes_nothing)
{
    ot_tab t = mk(OT_ETS_SET, OT_ETS_PUBLIC);
    put2(t, "k", 10, 20);
    cr_assert_eq(ot_ets_insert(t, "s", 1, "abc", 3), 0);
    int64_t res[2];
    /* a field that is no counter: unaligned, or past the value's end */
    ot_ets_counter_op unaligned[] = {{0, 1}, {4, 1}};
    cr_assert_eq(ot_ets_update_counters(t, "k", 1, unaligned, 2, NULL, 0, res), -EINVAL);
    ot_ets_counter_op past[] = {{0, 1}, {16, 1}};
    cr_assert_eq(ot_ets_update_counters(t, "k", 1, past, 2, NULL, 0, res), -EINVAL);
    ot_ets_counter_op one[] = {{0, 1}};
    cr_assert_eq(ot_ets_update_counters(t, "s", 1, one, 1, NULL, 0, res), -EINVAL);
    cr_assert_eq(ot_ets_update_counters(t, "k", 1, NULL, 1, NULL, 0, res), -EINVAL);
    cr_assert_eq(ot_ets_update_counters(t, NULL, 1, one, 1, NULL, 0, res), -EINVAL);
    cr_assert_eq(ot_ets_update_counters(t, "k", 1, one, 1, NULL, 8, res), -EINVAL);
    /* a default too short for the updates: nothing inserted */
    int64_t d = 0;
    cr_assert_eq(ot_ets_update_counters(t, "n", 1, past, 2, &d, 8, res), -EINVAL);
    cr_assert(!ot_ets_member(t, "n", 1));
    ot_ets_obj *o;
    size_t n;
    cr_assert_eq(ot_ets_lookup(t, "k", 1, &o, &n), 0);
    cr_assert(n == 1 && i64(o[0].val) == 10 && i64((char *)o[0].val + 8) == 20);
    free(o);
    assert_vals(t, "s", "abc");
    ot_tab b = mk(OT_ETS_BAG, OT_ETS_PUBLIC);
    put2(b, "k", 1, 2);
    cr_assert_eq(ot_ets_update_counters(b, "k", 1, one, 1, NULL, 0, res), -EINVAL);
    cr_assert_eq(ot_ets_delete_table(b), 0);
    cr_assert_eq(ot_ets_delete_table(t), 0);
    cr_assert_eq(ot_ets_update_counters(t, "k", 1, one, 1, NULL, 0, res), -EBADF);
}

/* ---- delete_all_objects, tab2list ---------------------------------------------------- */

Test(ets_ops, delete_all_objects_each_type, .timeout = 60)
{
    for (int ti = 0; ti < 4; ti++) {
        ot_tab t = mk(TYPES[ti], OT_ETS_PUBLIC);
        cr_assert_eq(ot_ets_delete_all_objects(t), 0); /* empty: fine */
        for (uint64_t i = 0; i < 100000; i++) {
            uint64_t v[3] = {i, i, i};
            cr_assert_eq(ot_ets_insert(t, &i, 8, v, i % 3 ? 8 : 24), 0);
        }
        cr_assert_eq(ot_ets_insert(t, "k", 1, "a", 1), 0);
        if (ti >= 2)
            cr_assert_eq(ot_ets_insert(t, "k", 1, "b", 1), 0);
        struct ot_ets_info before, after;
        cr_assert_eq(ot_ets_info(t, &before), 0);
        cr_assert_eq(ot_ets_delete_all_objects(t), 0);
        cr_assert_eq(ot_ets_size(t), 0);
        cr_assert_eq(ot_ets_info(t, &after), 0);
        cr_assert_lt(after.memory * 20, before.memory, "type %d: %zu -> %zu", ti, before.memory,
                     after.memory);
        cr_assert(!ot_ets_member(t, "k", 1));
        uint64_t i = 5;
        cr_assert(!ot_ets_member(t, &i, 8));
        size_t kl;
        char kb[16];
        cr_assert_eq(ot_ets_first(t, kb, sizeof kb, &kl), -ENOENT);
        cr_assert_eq(ot_ets_insert(t, "k", 1, "c", 1), 0);
        assert_vals(t, "k", "c");
        cr_assert_eq(ot_ets_size(t), 1);
        cr_assert_eq(ot_ets_delete_table(t), 0);
        cr_assert_eq(ot_ets_delete_all_objects(t), -EBADF);
    }
}

static int cmp_obj(const void *a, const void *b)
{
    const ot_ets_obj *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
    if (c || x->klen != y->klen)
        return c ? c : (int)x->klen - (int)y->klen;
    c = memcmp(x->val, y->val, x->vlen < y->vlen ? x->vlen : y->vlen);
    return c ? c : (int)x->vlen - (int)y->vlen;
}

Test(ets_ops, tab2list_each_type)
{
    for (int ti = 0; ti < 4; ti++) {
        ot_tab t = mk(TYPES[ti], OT_ETS_PUBLIC);
        ot_ets_obj *o;
        size_t n;
        cr_assert_eq(ot_ets_tab2list(t, &o, &n), 0);
        cr_assert(o == NULL && n == 0);
        ot_ets_obj in[] = {obj("c", "3"), obj("a", "1"), obj("b", "2"), obj("a", "0"),
                           obj("a-longer-key-than-sixteen", "a longer value than eight")};
        cr_assert_eq(ot_ets_insert_many(t, in, 5), 0);
        cr_assert_eq(ot_ets_tab2list(t, &o, &n), 0);
        cr_assert_eq(n, ti < 2 ? 4 : 5);
        if (ti != OT_ETS_ORDERED_SET)
            qsort(o, n, sizeof *o, cmp_obj);
        char got[256] = "";
        for (size_t i = 0; i < n; i++) {
            size_t l = strlen(got);
            snprintf(got + l, sizeof got - l, "%.*s=%.*s;", (int)o[i].klen,
                     (const char *)o[i].key, (int)o[i].vlen, (const char *)o[i].val);
        }
        free(o);
        cr_assert_str_eq(got,
                         ti < 2 ? "a=0;a-longer-key-than-sixteen=a longer value than eight;b=2;c=3;"
                                : "a=0;a=1;a-longer-key-than-sixteen=a longer value than "
                                  "eight;b=2;c=3;",
                         "type %d", ti);
        cr_assert_eq(ot_ets_tab2list(t, NULL, &n), -EINVAL);
        cr_assert_eq(ot_ets_delete_table(t), 0);
        cr_assert_eq(ot_ets_tab2list(t, &o, &n), -EBADF);
    }
}

/* ---- inside the runtime: access, heirs ---------------------------------------------- */

enum { TAG_RESULT = OT_TAG_USER, TAG_GO };

typedef struct {
    ot_tab t;
    ot_pid parent;
    int rc[8];
} probe_arg;

static void prober(void *p)
{
    probe_arg *a = p;
    ot_ets_obj o = obj("k", "12345678"); /* room for a counter */
    ot_ets_elem e = {0, "x", 1};
    ot_ets_counter_op c = {0, 1};
    char buf[8];
    ot_ets_obj *objs;
    size_t n;
    a->rc[0] = ot_ets_insert_many(a->t, &o, 1);
    a->rc[1] = ot_ets_insert_new_many(a->t, &o, 1);
    a->rc[2] = ot_ets_update_element(a->t, "k", 1, &e, 1);
    a->rc[3] = ot_ets_update_counters(a->t, "k", 1, &c, 1, NULL, 0, NULL);
    a->rc[4] = ot_ets_delete_all_objects(a->t);
    a->rc[5] = ot_ets_lookup_element(a->t, "k", 1, 0, 1, buf, sizeof buf);
    a->rc[6] = ot_ets_tab2list(a->t, &objs, &n);
    if (a->rc[6] == 0)
        ot_free(objs);
    a->rc[7] = ot_ets_setopts_heir(a->t, a->parent, NULL, 0);
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

OT_TEST(ets_ops_rt, access_of_other_processes, .timeout = 30)
{
    probe_arg a;
    ot_ets_opts o = {.access = OT_ETS_PROTECTED};
    ot_tab prot = ot_ets_new(NULL, &o);
    int64_t v = 5;
    ot_assert_eq(ot_ets_insert(prot, "k", 1, &v, 8), 0);
    probe(prot, &a);
    for (int i = 0; i < 5; i++)
        ot_assert_eq(a.rc[i], -EACCES);
    ot_assert_eq(a.rc[5], 1);
    ot_assert_eq(a.rc[6], 0);
    ot_assert_eq(a.rc[7], -EPERM);
    ot_assert_eq(ot_ets_size(prot), 1);

    o.access = OT_ETS_PRIVATE;
    ot_tab priv = ot_ets_new(NULL, &o);
    ot_assert_eq(ot_ets_insert(priv, "k", 1, &v, 8), 0);
    probe(priv, &a);
    for (int i = 0; i < 7; i++)
        ot_assert_eq(a.rc[i], -EACCES);
    ot_assert_eq(a.rc[7], -EPERM);

    o.access = OT_ETS_PUBLIC;
    ot_tab pub = ot_ets_new(NULL, &o);
    ot_assert_eq(ot_ets_insert(pub, "k", 1, &v, 8), 0);
    probe(pub, &a);
    ot_assert_eq(a.rc[0], 0);
    ot_assert_eq(a.rc[1], -EEXIST);
    ot_assert_eq(a.rc[2], 0);
    ot_assert_eq(a.rc[3], 0);
    ot_assert_eq(a.rc[4], 0);
    ot_assert_eq(a.rc[5], -ENOENT); /* deleted by rc[4] */
    ot_assert_eq(a.rc[6], 0);
    ot_assert_eq(a.rc[7], -EPERM); /* public: still the owner's option */
    ot_assert_eq(ot_ets_delete_table(prot), 0);
    ot_assert_eq(ot_ets_delete_table(priv), 0);
    ot_assert_eq(ot_ets_delete_table(pub), 0);
}

static void idle_proc(void *p)
{
    ot_msg *m = ot_receive_tag(TAG_GO, OT_INFINITY);
    ot_msg_free(m);
}

static void wait_down(ot_ref mon)
{
    ot_msg *m = ot_receive_ref(mon, 5000);
    ot_assert(m != NULL && m->tag == OT_TAG_DOWN);
    ot_msg_free(m);
}

typedef struct {
    ot_pid parent;
    ot_pid heir; /* set with setopts, not at new */
} owner_arg;

static void owner_proc(void *p)
{
    owner_arg *a = p;
    ot_tab t = ot_ets_new(NULL, NULL);
    int rc = ot_ets_setopts_heir(t, a->heir, "later", 5);
    ot_ets_insert(t, "k", 1, "v", 1);
    struct {
        ot_tab t;
        int rc;
    } r = {t, rc};
    ot_send(a->parent, TAG_RESULT, &r, sizeof r);
}

OT_TEST(ets_ops_rt, setopts_heir, .timeout = 30)
{
    /* set after ot_ets_new: the heir inherits with the data given then */
    owner_arg a = {.parent = ot_self(), .heir = ot_self()};
    ot_pid p = ot_spawn(owner_proc, &a);
    ot_ref mon = ot_monitor(p);
    ot_msg *m = ot_receive_tag(TAG_RESULT, 5000);
    ot_assert(m != NULL);
    struct {
        ot_tab t;
        int rc;
    } r;
    memcpy(&r, ot_msg_data(m), sizeof r);
    ot_msg_free(m);
    ot_assert_eq(r.rc, 0);
    m = ot_receive_tag(OT_TAG_ETS_TRANSFER, 5000);
    ot_assert(m != NULL);
    ot_ets_transfer_msg *tm = ot_msg_data(m);
    ot_assert_eq(tm->tab.v, r.t.v);
    ot_assert(tm->len == 5 && memcmp(tm->data, "later", 5) == 0);
    ot_msg_free(m);
    wait_down(mon);
    ot_assert_eq(ot_ets_size(r.t), 1);

    /* ours now: set, reset to none, set a dead one (none) */
    ot_pid live = ot_spawn(idle_proc, NULL);
    struct ot_ets_info i;
    ot_assert_eq(ot_ets_setopts_heir(r.t, live, NULL, 0), 0);
    ot_assert_eq(ot_ets_info(r.t, &i), 0);
    ot_assert_eq(i.heir.v, live.v);
    ot_assert_eq(ot_ets_setopts_heir(r.t, OT_NOPID, NULL, 0), 0);
    ot_assert_eq(ot_ets_info(r.t, &i), 0);
    ot_assert_eq(i.heir.v, 0);
    ot_ref lm = ot_monitor(live);
    ot_send(live, TAG_GO, NULL, 0);
    wait_down(lm);
    ot_assert_eq(ot_ets_setopts_heir(r.t, live, "x", 1), 0);
    ot_assert_eq(ot_ets_info(r.t, &i), 0);
    ot_assert_eq(i.heir.v, 0);
    ot_assert_eq(ot_ets_setopts_heir(r.t, live, NULL, 1), -EINVAL);
    ot_assert_eq(ot_ets_delete_table(r.t), 0);
    ot_assert_eq(ot_ets_setopts_heir(r.t, OT_NOPID, NULL, 0), -EBADF);
}

/* ---- atomicity under concurrency ---------------------------------------------------- */

#ifdef OT_SANITIZE
#define ROUNDS 100
#else
#define ROUNDS 1000
#endif
#define NK 512 /* keys per multi-key write: spread over the stripes, and long to write */
#define READERS 6

typedef struct {
    ot_tab t;
    int type;
    ot_pid parent;
    atomic_bool done;
    atomic_long bad;
    atomic_long reads;
    char why[160];
} conc;

static void conc_fail(conc *c, const char *why)
{
    if (atomic_fetch_add(&c->bad, 1) == 0)
        snprintf(c->why, sizeof c->why, "%s", why);
}

static void finish(conc *c) { ot_send(c->parent, TAG_RESULT, NULL, 0); }

/* The largest int64 value among the key's objects, or -1 when absent. */
static int64_t max_ver(conc *c, uint64_t k)
{
    ot_ets_obj *o;
    size_t n;
    if (ot_ets_lookup(c->t, &k, 8, &o, &n)) {
        conc_fail(c, "lookup failed");
        return -1;
    }
    int64_t m = -1;
    for (size_t i = 0; i < n; i++)
        if (i64(o[i].val) > m)
            m = i64(o[i].val);
    ot_free(o);
    return m;
}

/* Writer: round v inserts every key with version v in one call; on even
 * rounds after the first it empties the table first (delete_all_objects). */
static void multi_writer(void *p)
{
    conc *c = p;
    ot_ets_obj objs[NK];
    uint64_t keys[NK];
    int64_t ver;
    for (int64_t v = 1; v <= ROUNDS; v++) {
        ver = v;
        for (int i = 0; i < NK; i++) {
            keys[i] = (uint64_t)i * (uint64_t)0x9e3779b97f4a7c15ull;
            objs[i] = (ot_ets_obj){&keys[i], 8, &ver, 8};
        }
        if (v % 2 == 0 && c->type >= OT_ETS_BAG && ot_ets_delete_all_objects(c->t))
            conc_fail(c, "delete_all_objects failed");
        if (v % 16 == 0 && ot_ets_delete_all_objects(c->t))
            conc_fail(c, "delete_all_objects failed");
        if (ot_ets_insert_many(c->t, objs, NK))
            conc_fail(c, "insert_many failed");
    }
    atomic_store(&c->done, true);
    finish(c);
}

/* Reader: scans the keys in order (forwards or backwards). Each lookup is a
 * point in time, and versions only grow, so within a scan a version never
 * drops; after a key is seen absent (a delete_all_objects), a later key
 * present must carry a newer version than any seen before the absence. */
static void multi_reader(void *p)
{
    conc *c = p;
    bool back = (atomic_fetch_add(&c->reads, 1) & 1) != 0;
    while (!atomic_load(&c->done)) {
        /* The key written first, then the one written last: a write in
         * progress would show here as a newer first key. */
        int64_t first = max_ver(c, 0), final = max_ver(c, (uint64_t)(NK - 1) * (uint64_t)0x9e3779b97f4a7c15ull);
        if (first >= 0 && final >= 0 && final < first) {
            char why[160];
            snprintf(why, sizeof why, "first key at %lld, then the last at %lld", (long long)first,
                     (long long)final);
            conc_fail(c, why);
        }
        int64_t last = -1;
        bool absent_after_last = false;
        for (int j = 0; j < NK; j++) {
            int i = back ? NK - 1 - j : j;
            int64_t v = max_ver(c, (uint64_t)i * (uint64_t)0x9e3779b97f4a7c15ull);
            if (v < 0) {
                absent_after_last = true;
                continue;
            }
            if (v < last || (absent_after_last && v == last)) {
                char why[160];
                snprintf(why, sizeof why, "key %d: version %lld after %lld%s", i, (long long)v,
                         (long long)last, absent_after_last ? " and an absence" : "");
                conc_fail(c, why);
            }
            last = v;
            absent_after_last = false;
        }
        ot_yield();
    }
    finish(c);
}

/* Spread over every scheduler: the spawner's own would run them in turn. */
static void spawn_on(void (*fn)(void *), void *arg, int i)
{
    ot_spawn_opts o = {.scheduler = (int)((unsigned)i % ot_schedulers()), .scheduler_set = true};
    ot_assert(!ot_pid_eq(ot_spawn_opt(fn, arg, &o), OT_NOPID));
}

static void run_conc(int type, void (*writer)(void *), void (*reader)(void *), int writers)
{
    conc *c = calloc(1, sizeof *c);
    ot_ets_opts o = {.type = type, .access = OT_ETS_PUBLIC, .write_concurrency = true};
    c->t = ot_ets_new(NULL, &o);
    c->type = type;
    c->parent = ot_self();
    ot_assert(c->t.v != 0);
    for (int i = 0; i < READERS; i++)
        spawn_on(reader, c, i + 1);
    for (int i = 0; i < writers; i++)
        spawn_on(writer, c, i);
    for (int i = 0; i < READERS + writers; i++) {
        ot_msg *m = ot_receive_tag(TAG_RESULT, 120000);
        ot_assert(m != NULL);
        ot_msg_free(m);
    }
    ot_assert(atomic_load(&c->bad) == 0, "%ld bad: %s", atomic_load(&c->bad), c->why);
    ot_assert_eq(ot_ets_delete_table(c->t), 0);
    free(c);
}

static void four_schedulers(void) { ot_test_config.schedulers = 4; }

OT_TEST(ets_ops_conc, insert_many_isolated_set, .init = four_schedulers, .timeout = 120)
{
    run_conc(OT_ETS_SET, multi_writer, multi_reader, 1);
}
OT_TEST(ets_ops_conc, insert_many_isolated_ordered_set, .init = four_schedulers, .timeout = 120)
{
    run_conc(OT_ETS_ORDERED_SET, multi_writer, multi_reader, 1);
}
OT_TEST(ets_ops_conc, insert_many_isolated_bag, .init = four_schedulers, .timeout = 120)
{
    run_conc(OT_ETS_BAG, multi_writer, multi_reader, 1);
}
OT_TEST(ets_ops_conc, insert_many_isolated_duplicate_bag, .init = four_schedulers,
        .timeout = 120)
{
    run_conc(OT_ETS_DUPLICATE_BAG, multi_writer, multi_reader, 1);
}

/* insert_new_many of fresh keys, all or none: round v's keys are never
 * deleted, so once a reader sees any of them, every one is there. */
static void new_writer(void *p)
{
    conc *c = p;
    ot_ets_obj objs[NK];
    uint64_t keys[NK];
    int64_t zero = 0;
    for (uint64_t v = 1; v <= ROUNDS / 4; v++) {
        for (int i = 0; i < NK; i++) {
            keys[i] = v << 16 | (uint64_t)i;
            objs[i] = (ot_ets_obj){&keys[i], 8, &zero, 8};
        }
        if (ot_ets_insert_new_many(c->t, objs, NK))
            conc_fail(c, "insert_new_many failed");
        if (ot_ets_insert_new_many(c->t, objs, NK) != -EEXIST)
            conc_fail(c, "insert_new_many again did not fail");
    }
    atomic_store(&c->done, true);
    finish(c);
}

static void new_reader(void *p)
{
    conc *c = p;
    uint64_t v = 1;
    while (!atomic_load(&c->done)) {
        /* the last key first: if it is there, so must the others be */
        uint64_t k = v << 16 | (NK - 1);
        if (!ot_ets_member(c->t, &k, 8)) {
            ot_yield(); /* scheduling is cooperative */
            continue;
        }
        for (int i = NK - 2; i >= 0; i--) {
            k = v << 16 | (uint64_t)i;
            if (!ot_ets_member(c->t, &k, 8))
                conc_fail(c, "part of an insert_new_many");
        }
        v++;
    }
    finish(c);
}

OT_TEST(ets_ops_conc, insert_new_many_all_or_none, .init = four_schedulers, .timeout = 120)
{
    run_conc(OT_ETS_SET, new_writer, new_reader, 1);
    run_conc(OT_ETS_ORDERED_SET, new_writer, new_reader, 1);
}

/* Several words of one object: update_counters adds 1 to each of the VW
 * counters of "vec" in one call, update_element sets them all to one value
 * in one call; readers (lookup and lookup_element) must always find them
 * all equal. */
#define PAIR_WRITERS 3
#define VW 64
#ifdef OT_SANITIZE
#define PAIR_OPS 1000
#else
#define PAIR_OPS 10000
#endif

static void pair_writer(void *p)
{
    conc *c = p;
    ot_ets_counter_op ops[VW];
    for (int i = 0; i < VW; i++)
        ops[i] = (ot_ets_counter_op){.offset = 8 * (size_t)i, .incr = 1};
    int64_t res[VW];
    for (int i = 0; i < PAIR_OPS; i++) {
        if (ot_ets_update_counters(c->t, "vec", 3, ops, VW, NULL, 0, res))
            conc_fail(c, "update_counters failed");
        else if (res[0] != res[VW - 1])
            conc_fail(c, "update_counters results differ");
        if (i % 16 == 0) {
            int64_t big[VW];
            for (int j = 0; j < VW; j++)
                big[j] = 1000000000 + i;
            ot_ets_elem e[] = {{0, big, 8 * VW / 2}, {8 * VW / 2, big, 8 * VW / 2}};
            if (ot_ets_update_element(c->t, "vec", 3, e, 2))
                conc_fail(c, "update_element failed");
        }
        ot_yield();
    }
    finish(c);
}

static bool all_equal(const void *p)
{
    for (int i = 1; i < VW; i++)
        if (i64((const char *)p + 8 * i) != i64(p))
            return false;
    return true;
}

static void pair_reader(void *p)
{
    conc *c = p;
    while (atomic_load(&c->done) == false) {
        ot_ets_obj *o;
        size_t n;
        if (ot_ets_lookup(c->t, "vec", 3, &o, &n) || n != 1 || o[0].vlen != 8 * VW) {
            conc_fail(c, "lookup");
            break;
        }
        if (!all_equal(o[0].val))
            conc_fail(c, "lookup saw part of a write of several words");
        ot_free(o);
        int64_t w[VW];
        if (ot_ets_lookup_element(c->t, "vec", 3, 0, sizeof w, w, sizeof w) != 1)
            conc_fail(c, "lookup_element");
        else if (!all_equal(w))
            conc_fail(c, "lookup_element saw part of a write of several words");
        ot_yield();
    }
    finish(c);
}

static void run_pairs(int type)
{
    conc *c = calloc(1, sizeof *c);
    ot_ets_opts o = {.type = type, .access = OT_ETS_PUBLIC};
    c->t = ot_ets_new(NULL, &o);
    c->parent = ot_self();
    int64_t zero[VW] = {0};
    ot_assert_eq(ot_ets_insert(c->t, "vec", 3, zero, sizeof zero), 0);
    for (int i = 0; i < READERS; i++)
        spawn_on(pair_reader, c, i + 1);
    for (int i = 0; i < PAIR_WRITERS; i++)
        spawn_on(pair_writer, c, i);
    for (int i = 0; i < PAIR_WRITERS; i++) {
        ot_msg *m = ot_receive_tag(TAG_RESULT, 120000);
        ot_assert(m != NULL);
        ot_msg_free(m);
    }
    atomic_store(&c->done, true);
    for (int i = 0; i < READERS; i++) {
        ot_msg *m = ot_receive_tag(TAG_RESULT, 120000);
        ot_assert(m != NULL);
        ot_msg_free(m);
    }
    ot_assert(atomic_load(&c->bad) == 0, "%ld bad: %s", atomic_load(&c->bad), c->why);
    ot_ets_obj *ob;
    size_t n;
    ot_assert_eq(ot_ets_lookup(c->t, "vec", 3, &ob, &n), 0);
    ot_assert(all_equal(ob[0].val));
    ot_free(ob);
    ot_assert_eq(ot_ets_delete_table(c->t), 0);
    free(c);
}

OT_TEST(ets_ops_conc, several_words_isolated_set, .init = four_schedulers, .timeout = 120)
{
    run_pairs(OT_ETS_SET);
}
OT_TEST(ets_ops_conc, several_words_isolated_ordered_set, .init = four_schedulers,
        .timeout = 120)
{
    run_pairs(OT_ETS_ORDERED_SET);
}

/* No add lost: counters updated by update_counters (one and several),
 * thresholds that never trigger, and the single call, all at once. */
static void adder(void *p)
{
    conc *c = p;
    ot_ets_counter_op two[] = {{0, 1}, {8, 2}};
    ot_ets_counter_op bounded = {0, 1, true, INT64_MAX, 0};
    for (int i = 0; i < PAIR_OPS; i++) {
        int64_t r[2];
        if (ot_ets_update_counters(c->t, "c", 1, two, 2, NULL, 0, r) ||
            ot_ets_update_counters(c->t, "c", 1, &bounded, 1, NULL, 0, r) ||
            ot_ets_update_counter(c->t, "c", 1, 8, 1, NULL, r))
            conc_fail(c, "update failed");
    }
    finish(c);
}

OT_TEST(ets_ops_conc, no_add_lost, .init = four_schedulers, .timeout = 120)
{
    for (int ti = 0; ti < 2; ti++) {
        conc *c = calloc(1, sizeof *c);
        ot_ets_opts o = {.type = TYPES[ti], .access = OT_ETS_PUBLIC};
        c->t = ot_ets_new(NULL, &o);
        c->parent = ot_self();
        int64_t zero[2] = {0};
        ot_assert_eq(ot_ets_insert(c->t, "c", 1, zero, 16), 0);
        enum { N = 6 };
        for (int i = 0; i < N; i++)
            spawn_on(adder, c, i);
        for (int i = 0; i < N; i++) {
            ot_msg *m = ot_receive_tag(TAG_RESULT, 120000);
            ot_assert(m != NULL);
            ot_msg_free(m);
        }
        ot_assert(atomic_load(&c->bad) == 0, "%s", c->why);
        int64_t w[2];
        ot_assert_eq(ot_ets_lookup_element(c->t, "c", 1, 0, 16, w, sizeof w), 1);
        ot_assert_eq(w[0], 2 * N * PAIR_OPS);
        ot_assert_eq(w[1], 3 * N * PAIR_OPS);
        ot_assert_eq(ot_ets_delete_table(c->t), 0);
        free(c);
    }
}
