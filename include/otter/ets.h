/* ETS: global key-value tables shared between processes (Erlang's ets). A
 * table is a set, ordered_set, bag or duplicate_bag of objects; an object is
 * a key (1 byte or more) and a value (0 bytes or more), both plain bytes.
 * Keys order by bytes (memcmp, then length). Handles are values: an
 * operation on a deleted table returns -EBADF, never touches freed memory.
 * Look-ups never take a lock and write no shared memory; memory is reclaimed
 * by QSBR, so a pointer handed to a callback is valid only until that
 * callback returns, and callbacks must not block, yield or call ETS.
 *
 * Ownership: the process that creates a table owns it. A table is deleted
 * when its owner exits, unless it has a live heir, which then owns it and
 * receives an OT_TAG_ETS_TRANSFER message. A table created outside any
 * process (a foreign thread, where ot_self() is OT_NOPID) has no owner
 * process: every foreign thread counts as its owner (so protected and
 * private rules apply to processes only), and it lives until deleted or
 * given away to a process. */
#ifndef OTTER_ETS_H
#define OTTER_ETS_H

#include <otter/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A table handle, like an ETS tid. The null handle is { 0 }. */
typedef struct ot_tab {
    uint64_t v;
} ot_tab;
#define OT_NOTAB ((ot_tab){0})

enum ot_ets_type {
    OT_ETS_SET = 0,      /* one object per key */
    OT_ETS_ORDERED_SET,  /* one object per key, iterated in key order */
    OT_ETS_BAG,          /* several objects per key, no two equal */
    OT_ETS_DUPLICATE_BAG /* several objects per key, duplicates allowed */
};

enum ot_ets_access {
    OT_ETS_PROTECTED = 0, /* default: anyone reads, the owner writes */
    OT_ETS_PUBLIC,        /* anyone reads and writes, foreign threads too */
    OT_ETS_PRIVATE        /* the owner only */
};

#define OT_ETS_NAME_MAX 64 /* including the terminating NUL */

typedef struct ot_ets_opts {
    int type;               /* enum ot_ets_type; OT_ETS_SET when opts is NULL */
    int access;             /* enum ot_ets_access */
    bool named;             /* register `name` so ot_ets_whereis finds it (-EEXIST if taken) */
    bool read_concurrency;  /* accepted for OTP parity: reads are always lock-free */
    bool write_concurrency; /* many lock stripes (64) instead of a few (4) */
    ot_pid heir;            /* OT_NOPID: none; one not alive at ot_ets_new is none too */
    const void *heir_data;  /* copied; sent to the heir in its transfer message */
    size_t heir_data_len;
} ot_ets_opts;

/* One object copied into the caller's process heap (ot_alloc). A result array
 * and every key and value it points to are one block: free it with
 * ot_free(objs) (with free() on a foreign thread, see otter/alloc.h). Values
 * start 8-byte aligned. */
typedef struct ot_ets_obj {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
} ot_ets_obj;

/* The payload of an OT_TAG_ETS_TRANSFER message: the table, its former owner
 * and the heir data (ot_ets_opts) or the gift (ot_ets_give_away). */
typedef struct ot_ets_transfer_msg {
    ot_tab tab;
    ot_pid from;
    size_t len;
    unsigned char data[];
} ot_ets_transfer_msg;

/* A select predicate: true keeps the object. Runs inside the table walk, so
 * it must not block or call ETS; k and v are valid only during the call. */
typedef bool (*ot_ets_match_fn)(const void *k, size_t kl, const void *v, size_t vl, void *arg);

/* What ot_ets_info reports (ets:info/1). A struct tag, not a typedef, so the
 * function may carry the same name. */
struct ot_ets_info {
    int type;
    int access;
    size_t size;   /* objects */
    size_t memory; /* bytes held by the table, approximately */
    ot_pid owner;  /* OT_NOPID for a table owned by foreign threads */
    ot_pid heir;
    bool named;
    bool write_concurrency;
    char name[OT_ETS_NAME_MAX];
};

/* ets:new/2. Owner: the calling process. Returns OT_NOTAB and sets errno:
 * EINVAL (bad options, name too long, named without a name), EEXIST (name
 * taken), EAGAIN (table registry full), ENOMEM. */
OT_API ot_tab ot_ets_new(const char *name, const ot_ets_opts *o);
/* ets:whereis/1: OT_NOTAB (errno ENOENT) if no named table has that name. */
OT_API ot_tab ot_ets_whereis(const char *name);
/* ets:delete/1: the owner, or anyone for a public table (-EACCES). */
OT_API int ot_ets_delete_table(ot_tab t);

/* ets:insert/2: replaces the object of the key in a set, adds an object to a
 * bag (unless an equal one is there) or duplicate_bag. -EINVAL: NULL or empty
 * key, NULL value with vl > 0. */
OT_API int ot_ets_insert(ot_tab t, const void *k, size_t kl, const void *v, size_t vl);
/* ets:insert_new/2: -EEXIST if the key has any object. */
OT_API int ot_ets_insert_new(ot_tab t, const void *k, size_t kl, const void *v, size_t vl);
/* ets:lookup/2: the key's objects, copied to one block in the caller's heap
 * (*objs NULL and *n 0 when there is none), in insertion order for bags. */
OT_API int ot_ets_lookup(ot_tab t, const void *k, size_t kl, ot_ets_obj **objs, size_t *n);
/* The zero-copy look-up: fn sees each object's value where it lies (a small
 * set object is shown from a consistent snapshot on the reader's stack, a
 * larger one in place). Returns the number of objects passed to fn (0 when
 * the key is absent) or -errno. A value that ot_ets_update_counter changes is
 * updated in place: read its counter words with relaxed atomic loads. fn runs
 * inside the table's read section, as ot_ets_foldl's does: it must not block,
 * yield or call ETS (a send may yield: copy what it needs and act after the
 * call returns). */
OT_API int ot_ets_read(ot_tab t, const void *k, size_t kl,
                       void (*fn)(const void *v, size_t vl, void *arg), void *arg);
/* ets:member/2: false also for a bad handle or access (errno says which). */
OT_API bool ot_ets_member(ot_tab t, const void *k, size_t kl);
/* ets:delete/2: 0 also when the key is absent. */
OT_API int ot_ets_delete(ot_tab t, const void *k, size_t kl);
/* ets:delete_object/2: removes the objects equal to (k, v) (all duplicates in
 * a duplicate_bag); 0 also when there is none. */
OT_API int ot_ets_delete_object(ot_tab t, const void *k, size_t kl, const void *v, size_t vl);
/* ets:take/2: lookup and delete in one step, result as ot_ets_lookup. */
OT_API int ot_ets_take(ot_tab t, const void *k, size_t kl, ot_ets_obj **objs, size_t *n);
/* ets:update_counter/3,4 on a set or ordered_set: adds incr to the int64 (host
 * order) at byte `offset` of the value, atomically, and stores the new value
 * in *result. offset must be a multiple of 8 and offset + 8 <= value length
 * (-EINVAL otherwise, and on a bag). When the key is absent: -ENOENT if dflt
 * is NULL, else the object (k, offset + 8 bytes of zeros with *dflt at
 * offset) is inserted first, as ets:update_counter/4 does. The sum wraps
 * (two's complement) where OTP's would grow into a bignum. Atomic against
 * ot_ets_take of the key too: every add that returned 0 is in the taken
 * object or in the key's object after it, never lost. */
OT_API int ot_ets_update_counter(ot_tab t, const void *k, size_t kl, size_t offset, int64_t incr,
                                 const int64_t *dflt, int64_t *result);

/* Key iteration (ets:first/next/prev/last). The key is copied into the
 * caller's buffer kbuf of kcap bytes and its length stored in *klen; when kcap
 * is too small, -ERANGE with *klen set to the length needed. -ENOENT is
 * '$end_of_table'. ordered_set walks in key order. Hash tables (set, bag,
 * duplicate_bag) walk in an internal order (key hash, then bytes) that does
 * not change when the table grows; prev is next and last is first there, as
 * in OTP. next/prev of a key that is not (or no longer) in the table continue
 * from where that key would be, in both kinds of table, so every object that
 * stays in the table for the whole walk is seen exactly once. */
OT_API int ot_ets_first(ot_tab t, void *kbuf, size_t kcap, size_t *klen);
OT_API int ot_ets_last(ot_tab t, void *kbuf, size_t kcap, size_t *klen);
OT_API int ot_ets_next(ot_tab t, const void *k, size_t kl, void *kbuf, size_t kcap, size_t *klen);
OT_API int ot_ets_prev(ot_tab t, const void *k, size_t kl, void *kbuf, size_t kcap, size_t *klen);

/* ets:foldl/3: fn sees every object (key order for ordered_set); a non-zero
 * return from fn stops the walk and is returned. fn must not block or call
 * ETS. Objects that stay in the table for the whole walk are seen once. */
OT_API int ot_ets_foldl(ot_tab t,
                        int (*fn)(const void *k, size_t kl, const void *v, size_t vl, void *acc),
                        void *acc);
/* ets:select/2 with a predicate instead of a match spec: the objects for which
 * match returns true, copied as ot_ets_lookup does. */
OT_API int ot_ets_select(ot_tab t, ot_ets_match_fn match, void *arg, ot_ets_obj **objs, size_t *n);
/* ets:select_delete/2: deletes the matching objects; *deleted counts them. */
OT_API int ot_ets_select_delete(ot_tab t, ot_ets_match_fn match, void *arg, size_t *deleted);
/* ---- several objects or elements in one call ---------------------------------
 *
 * The writes below are atomic and isolated as OTP's: a writer of any key
 * they touch waits for them, and ot_ets_lookup, ot_ets_lookup_element,
 * ot_ets_member and ot_ets_read of any such key see the table before or
 * after, never part-way (an ot_ets_read callback is shown the value where
 * it lies, so it may see the words of an update_element or update_counters
 * change under it, as it sees single counters; the call returns after the
 * write). Walks (ot_ets_foldl, ot_ets_select, ot_ets_tab2list, first/next)
 * are not isolated from them, as OTP's are not: they may see some of an
 * ot_ets_insert_many's objects and not others. */

/* ets:insert/2 with a list: the n objects (key, klen, val, vlen as
 * ot_ets_obj) in one step. A key twice in a set's list: the last object wins;
 * a bag adds each (unless an equal one is there). n 0: 0. -EINVAL: objs
 * NULL with n > 0, or a bad key or value (as ot_ets_insert), nothing
 * inserted. -ENOMEM: nothing inserted, except when memory runs out half-way
 * (the table's array cannot grow, or a bag key's next version cannot be
 * allocated), which may leave a prefix in. */
OT_API int ot_ets_insert_many(ot_tab t, const ot_ets_obj *objs, size_t n);
/* ets:insert_new/2 with a list: all n objects, or, when any of their keys
 * has an object, none (-EEXIST). Errors as ot_ets_insert_many. */
OT_API int ot_ets_insert_new_many(ot_tab t, const ot_ets_obj *objs, size_t n);

/* ets:lookup_element/3. An element is `len` bytes at byte offset `off` of a
 * value (this API's tuple position). Copies the element of each of the key's
 * objects into buf, one after another (insertion order for bags), as many as
 * fit in cap bytes, and returns how many objects the key has: a result above
 * cap / len says buf was too small. -ENOENT: the key has no object (OTP's
 * badarg); -EINVAL: off + len past the end of some object's value, len 0,
 * buf NULL with cap > 0, a bad key. */
OT_API int ot_ets_lookup_element(ot_tab t, const void *k, size_t kl, size_t off, size_t len,
                                 void *buf, size_t cap);

/* One element for ot_ets_update_element: len bytes at byte `off` of the value. */
typedef struct ot_ets_elem {
    size_t off;
    const void *data;
    size_t len;
} ot_ets_elem;
/* ets:update_element/3 on a set or ordered_set: writes the n elements into
 * the key's value in place, in order (where two overlap the later wins); the
 * value's length never changes. 0, or -ENOENT when the key is absent (OTP's
 * false). -EINVAL, nothing written: a bag, an element past the end of the
 * value or of length 0, elems NULL with n > 0, data NULL, a bad key. */
OT_API int ot_ets_update_element(ot_tab t, const void *k, size_t kl, const ot_ets_elem *elems,
                                 size_t n);

/* One update for ot_ets_update_counters, OTP's {Pos, Incr} or, with bounded,
 * {Pos, Incr, Threshold, SetValue}: incr is added to the int64 (host order)
 * at byte `offset` of the value; when bounded, a result above threshold
 * (incr >= 0) or below it (incr < 0) is replaced by set_value. */
typedef struct ot_ets_counter_op {
    size_t offset;
    int64_t incr;
    bool bounded;
    int64_t threshold, set_value;
} ot_ets_counter_op;
/* ets:update_counter/3,4 with a list: the n updates, in order, on the key's
 * object of a set or ordered_set, in one step; results[i] (results may be
 * NULL) is the counter's value after ops[i]. The same offset may come more
 * than once. When the key is absent: -ENOENT if dflt is NULL, else the
 * object (k, dflt of dlen bytes) is inserted first (update_counter/4's
 * default object) and updated. -EINVAL, nothing changed: a bag, an offset
 * that is not a multiple of 8 or whose word passes the end of the value (a
 * field that is no counter), ops NULL with n > 0, dflt NULL with dlen > 0. */
OT_API int ot_ets_update_counters(ot_tab t, const void *k, size_t kl, const ot_ets_counter_op *ops,
                                  size_t n, const void *dflt, size_t dlen, int64_t *results);

/* ets:delete_all_objects/1: empties the table in one step (writers of the
 * table wait for it; a reader sees each key's objects before or after). */
OT_API int ot_ets_delete_all_objects(ot_tab t);
/* ets:setopts(T, {heir, Pid, Data}): the heir and its data (copied) from now
 * on; OT_NOPID, or a process that is not alive, sets none (OTP's
 * {heir, none}). The owner only: -EPERM. -EINVAL: data NULL with len > 0. */
OT_API int ot_ets_setopts_heir(ot_tab t, ot_pid heir, const void *data, size_t len);
/* ets:tab2list/1: every object, copied into one block of the caller's heap
 * as ot_ets_lookup's (*objs NULL and *n 0 for an empty table); key order for
 * ordered_set. Safe against concurrent writes as OTP's safe_fixtable: an
 * object in the table for the whole call is in the result exactly once; one
 * inserted or deleted meanwhile may or may not be. */
OT_API int ot_ets_tab2list(ot_tab t, ot_ets_obj **objs, size_t *n);

/* ets:info(T, size): objects; 0 for a bad handle (errno EBADF). Any process
 * may ask, of a private table too (only object reads and writes are the
 * owner's). */
OT_API size_t ot_ets_size(ot_tab t);
/* ets:give_away/3: the owner hands the table to the live process `to`, which
 * receives OT_TAG_ETS_TRANSFER with the gift. -EPERM if the caller is not the
 * owner, -EINVAL if `to` is the owner, -ESRCH if `to` is not a live process. */
OT_API int ot_ets_give_away(ot_tab t, ot_pid to, const void *gift, size_t len);
/* ets:info/1: any process may ask, of a private table too. */
OT_API int ot_ets_info(ot_tab t, struct ot_ets_info *out);

#ifdef __cplusplus
}
#endif
#endif
