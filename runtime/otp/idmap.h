/* A small map from a non-zero 64-bit id (a ref, a pid) to a 32-bit slot, for
 * runtime/otp's processes that must find one of many children or tasks by
 * the ref or pid a message carries: open addressing with linear probing and
 * backward-shift deletion (no tombstones, so lookups stay short under churn).
 * Memory comes from the owning process's heap (ot_alloc) and goes with it.
 * Invariants: key 0 marks an empty cell; the table is at most half full. */
#ifndef OT_OTP_IDMAP_H
#define OT_OTP_IDMAP_H

#include <otter/alloc.h>

#include <stdint.h>
#include <string.h>

#define OT__IDMAP_NONE UINT32_MAX

struct ot__idmap {
    uint64_t *keys;
    uint32_t *vals;
    uint32_t mask, n;
};

static inline uint32_t ot__idmap_pos(const struct ot__idmap *m, uint64_t k) {
    return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
}

/* cells: a power of two >= 8; 0 or -ENOMEM */
static inline int ot__idmap_init(struct ot__idmap *m, uint32_t cells) {
    m->keys = ot_calloc(cells, sizeof *m->keys);
    m->vals = ot_calloc(cells, sizeof *m->vals);
    m->mask = cells - 1;
    m->n = 0;
    if (!m->keys || !m->vals) {
        ot_free(m->keys);
        ot_free(m->vals);
        m->keys = NULL;
        m->vals = NULL;
        return -ENOMEM;
    }
    return 0;
}

static inline void ot__idmap_fini(struct ot__idmap *m) {
    ot_free(m->keys);
    ot_free(m->vals);
    memset(m, 0, sizeof *m);
}

static inline uint32_t ot__idmap_get(const struct ot__idmap *m, uint64_t k) {
    if (!m->keys || !k)
        return OT__IDMAP_NONE;
    for (uint32_t i = ot__idmap_pos(m, k); m->keys[i]; i = (i + 1) & m->mask)
        if (m->keys[i] == k)
            return m->vals[i];
    return OT__IDMAP_NONE;
}

static inline void ot__idmap_place(struct ot__idmap *m, uint64_t k, uint32_t v) {
    uint32_t i = ot__idmap_pos(m, k);
    while (m->keys[i])
        i = (i + 1) & m->mask;
    m->keys[i] = k;
    m->vals[i] = v;
    m->n++;
}

/* k must not be present; 0 or -ENOMEM (the map is unchanged then) */
static inline int ot__idmap_put(struct ot__idmap *m, uint64_t k, uint32_t v) {
    if (2 * (m->n + 1) > m->mask + 1) {
        struct ot__idmap g;
        if (ot__idmap_init(&g, 2 * (m->mask + 1)) < 0)
            return -ENOMEM;
        for (uint32_t i = 0; i <= m->mask; i++)
            if (m->keys[i])
                ot__idmap_place(&g, m->keys[i], m->vals[i]);
        ot__idmap_fini(m);
        *m = g;
    }
    ot__idmap_place(m, k, v);
    return 0;
}

static inline void ot__idmap_del(struct ot__idmap *m, uint64_t k) {
    if (!m->keys || !k)
        return;
    uint32_t i = ot__idmap_pos(m, k);
    while (m->keys[i] != k) {
        if (!m->keys[i])
            return;
        i = (i + 1) & m->mask;
    }
    for (uint32_t j = (i + 1) & m->mask; m->keys[j]; j = (j + 1) & m->mask) {
        uint32_t want = ot__idmap_pos(m, m->keys[j]);
        if (((j - want) & m->mask) >= ((j - i) & m->mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->n--;
}

#endif
