/* The keyspace: one database (Redis's db 0) in one public ETS set. The key
 * is the Redis key's bytes; the value is an int64 expiry (Unix ms, 0 for
 * none) followed by the Redis value's bytes. Reads are lock-free ETS reads;
 * every write holds the key's stripe lock for its read-modify-write (see
 * store.c for why). Times are Unix milliseconds, as Redis's are. */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "examples/kv/reply.h"

enum {
    KV_SET_NX = 1,
    KV_SET_XX = 2,
    KV_SET_KEEPTTL = 4,
    KV_SET_GET = 8, /* the old value goes to the callback */
};

enum {
    KV_EXP_NX = 1,
    KV_EXP_XX = 2,
    KV_EXP_GT = 4,
    KV_EXP_LT = 8,
};

/* A value seen in place. It runs inside an ETS read, so it must not block,
 * yield, allocate from the process heap or call ETS (see otter/ets.h). */
typedef void (*kv_val_fn)(const void *v, size_t n, void *arg);

/* A clock read at most once: ms is 0 until the first kv_clock_ms. A command
 * batch shares one, and a GET of a key without expiry never reads it (a
 * clock_gettime per command was 5% of a pipelined GET's CPU). */
typedef struct kv_clock {
    int64_t ms;
} kv_clock;

/* Unix ms now (CLOCK_REALTIME). */
int64_t kv_now_ms(void);

static inline int64_t kv_clock_ms(kv_clock *c) {
    if (!c->ms)
        c->ms = kv_now_ms();
    return c->ms;
}

/* Creates the table (from any thread; it has no owner process and lives
 * until kv_store_close). -errno on failure. */
int kv_store_open(void);
void kv_store_close(void);

/* 1 and fn called with the value if the key is live, 0 if not. fn may be
 * called and then the look-up retried, so it must be idempotent per call. */
int kv_store_get(const void *k, size_t kl, kv_clock *now, kv_val_fn fn, void *arg);
/* Multi-key commands (MGET, MSET) lock the stripes of all their keys at once
 * so that they are atomic against every write. Keys are k[i * step] for i <
 * n; held needs n slots; returns how many stripes are held. */
size_t kv_store_lock_keys(const void *const *k, const size_t *kl, size_t step, size_t n,
                          size_t *held);
void kv_store_unlock_keys(const size_t *held, size_t u);
/* kv_store_get for a key whose stripe the caller holds. */
int kv_store_get_locked(const void *k, size_t kl, kv_clock *now, kv_val_fn fn, void *arg);
/* 1 if the key is live. */
int kv_store_exists(const void *k, size_t kl, kv_clock *now);
/* Sets k to v with expiry at (0: none), under flags. Returns 1 if it was set,
 * 0 if NX/XX refused it, -errno on failure. With KV_SET_GET the GET reply for
 * the old value (its bulk, or null) is appended to getout first. */
int kv_store_set(const void *k, size_t kl, const void *v, size_t vl, int64_t at, int flags,
                 kv_clock *now, kv_out *getout);
/* MSET: sets n key/value pairs (kv[2i] is a key, kv[2i+1] its value, as
 * pointer and length pairs) with no expiry, atomically: all the stripes
 * involved are held together. 0 or -errno. */
int kv_store_mset(const void *const *p, const size_t *len, size_t n);
/* 1 if a live key was deleted, 0 if there was none. */
int kv_store_del(const void *k, size_t kl, kv_clock *now);
/* Adds by to the key's decimal integer (0 when absent), keeping its expiry.
 * 0 and *out, -EINVAL if the value is not an integer, -ERANGE on overflow. */
int kv_store_incrby(const void *k, size_t kl, int64_t by, kv_clock *now, int64_t *out);
/* Sets the expiry to at (Unix ms) under KV_EXP_* flags; an at not after now
 * deletes the key. 1 if done, 0 if the key is absent or a flag refused it. */
int kv_store_expire(const void *k, size_t kl, int64_t at, int flags, kv_clock *now);
/* ms left; -2 if the key is absent, -1 if it has no expiry. */
int64_t kv_store_pttl(const void *k, size_t kl, kv_clock *now);
size_t kv_store_size(void);
/* Keys with an expiry (INFO keyspace). */
size_t kv_store_volatile(void);
void kv_store_flush(void);
/* One active-expiry step: looks at up to `sample` keys from a cursor that
 * walks the table round, deletes the expired ones, returns how many. */
size_t kv_store_expire_step(size_t sample, int64_t now_ms);
/* Keys removed because they expired (lazily or actively), since open. */
uint64_t kv_store_expired_total(void);

#endif
