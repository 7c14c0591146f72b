/* The u64 map of map.h: linear probing over a power-of-two table kept at most
 * 3/4 full, hashed with a multiplicative mix so sequential pids and refs
 * spread; removal shifts later entries back so no tombstones accumulate. */
#include "runtime/proc/map.h"

#include <errno.h>
#include <stdlib.h>

static inline uint32_t mix(uint64_t k, uint32_t mask) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k & mask;
}

_Atomic int ot__map_fail_next;

static inline bool needs_room(const struct ot__u64map *m) {
    return (m->len + 1) * 4 > m->cap * 3;
}

/* A rehashed copy of m at twice its capacity; m is only read. */
static int grown_copy(const struct ot__u64map *m, struct ot__u64map *out) {
    int f = atomic_load_explicit(&ot__map_fail_next, memory_order_relaxed);
    while (f > 0 && !atomic_compare_exchange_weak_explicit(&ot__map_fail_next, &f, f - 1,
                                                           memory_order_relaxed,
                                                           memory_order_relaxed)) {
    }
    if (f > 0)
        return -ENOMEM;
    uint32_t ncap = m->cap ? m->cap * 2 : 8;
    uint64_t *nkv = calloc((size_t)ncap * 2, sizeof(uint64_t));
    if (!nkv)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->cap; i++) {
        uint64_t k = m->kv[2 * i];
        if (!k)
            continue;
        uint32_t j = mix(k, ncap - 1);
        while (nkv[2 * j])
            j = (j + 1) & (ncap - 1);
        nkv[2 * j] = k;
        nkv[2 * j + 1] = m->kv[2 * i + 1];
    }
    out->kv = nkv;
    out->cap = ncap;
    out->len = m->len;
    return 0;
}

int ot__map_reserve(const struct ot__u64map *m, struct ot__u64map *out) {
    if (!needs_room(m)) {
        *out = *m;
        return 0;
    }
    int rc = grown_copy(m, out);
    return rc < 0 ? rc : 1;
}

int ot__map_put(struct ot__u64map *m, uint64_t k, uint64_t v) {
    if (needs_room(m)) {
        struct ot__u64map g;
        int rc = grown_copy(m, &g);
        if (rc)
            return rc;
        free(m->kv);
        *m = g;
    }
    uint32_t mask = m->cap - 1, i = mix(k, mask);
    while (m->kv[2 * i]) {
        if (m->kv[2 * i] == k) {
            m->kv[2 * i + 1] = v;
            return 0;
        }
        i = (i + 1) & mask;
    }
    m->kv[2 * i] = k;
    m->kv[2 * i + 1] = v;
    m->len++;
    return 1;
}

static int64_t find(const struct ot__u64map *m, uint64_t k) {
    if (!m->len)
        return -1;
    uint32_t mask = m->cap - 1, i = mix(k, mask);
    while (m->kv[2 * i]) {
        if (m->kv[2 * i] == k)
            return i;
        i = (i + 1) & mask;
    }
    return -1;
}

bool ot__map_get(const struct ot__u64map *m, uint64_t k, uint64_t *v) {
    int64_t i = find(m, k);
    if (i < 0)
        return false;
    if (v)
        *v = m->kv[2 * i + 1];
    return true;
}

bool ot__map_del(struct ot__u64map *m, uint64_t k, uint64_t *v) {
    int64_t f = find(m, k);
    if (f < 0)
        return false;
    uint32_t mask = m->cap - 1, i = (uint32_t)f;
    if (v)
        *v = m->kv[2 * i + 1];
    /* backward-shift deletion: move later members of the cluster into the hole
     * when their home slot is not between the hole and their position */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint64_t kj = m->kv[2 * j];
        if (!kj)
            break;
        uint32_t h = mix(kj, mask);
        bool between = (i <= j) ? (i < h && h <= j) : (i < h || h <= j);
        if (between)
            continue;
        m->kv[2 * i] = kj;
        m->kv[2 * i + 1] = m->kv[2 * j + 1];
        i = j;
    }
    m->kv[2 * i] = 0;
    m->kv[2 * i + 1] = 0;
    m->len--;
    return true;
}

void ot__map_free(struct ot__u64map *m) {
    free(m->kv);
    m->kv = NULL;
    m->cap = m->len = 0;
}

bool ot__map_next(const struct ot__u64map *m, uint32_t *i, uint64_t *k, uint64_t *v) {
    while (*i < m->cap) {
        uint32_t j = (*i)++;
        if (m->kv[2 * j]) {
            *k = m->kv[2 * j];
            if (v)
                *v = m->kv[2 * j + 1];
            return true;
        }
    }
    return false;
}
