/* A small open-addressing map from non-zero u64 keys to u64 values, for a
 * process's links (pid -> 1) and monitors (ref -> pid). Owned by one process,
 * never shared, so no atomics. Empty maps hold no memory; deletion uses
 * backward-shift so lookups never see tombstones. */
#ifndef OT_CORE_MAP_H
#define OT_CORE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

struct ot__u64map {
    uint64_t *kv; /* 2 * cap words: key, value */
    uint32_t cap; /* power of two, 0 when empty */
    uint32_t len;
};

int ot__map_put(struct ot__u64map *m, uint64_t k, uint64_t v); /* 1 new, 0 replaced, -ENOMEM */
/* For maps that other threads read under a lock: *out becomes a copy of m
 * with room for one more key, in a new array when m must grow (returns 1:
 * adopt *out under the lock, then free m's old array after it) or m itself
 * (returns 0); -ENOMEM leaves m as it was. m is only read. */
int ot__map_reserve(const struct ot__u64map *m, struct ot__u64map *out);
/* Test hook: the next n array allocations of any map fail (-ENOMEM). */
extern _Atomic int ot__map_fail_next;
bool ot__map_get(const struct ot__u64map *m, uint64_t k, uint64_t *v);
bool ot__map_del(struct ot__u64map *m, uint64_t k, uint64_t *v);
void ot__map_free(struct ot__u64map *m);
/* Iterates: for (i = 0; ot__map_next(m, &i, &k, &v);) */
bool ot__map_next(const struct ot__u64map *m, uint32_t *i, uint64_t *k, uint64_t *v);

#endif
