/* Registry internals shared by its lifecycle (registry.c), its writers
 * (registry_write.c), its readers (registry_read.c) and PubSub.
 *
 * A registry lives in one of OT_REGISTRY_MAX static slots that are never
 * freed, so a reader holding a stale handle touches only memory that stays
 * valid. A slot is a seqlock: `id` (the handle value) is 0 while the slot is
 * set up or torn down and its other public fields are written only then,
 * with release stores after id went to 0; readers load id (acquire), read
 * fields with acquire loads (so the re-check cannot move above them, and a
 * field from a later registry shows that id changed), and load id again.
 * (No fences: TSan does not model them.) A slot is
 * reused only when its root and partition processes are all dead (their
 * tables went with the root, which owns them).
 *
 * Tables, per partition i: key_tab[i] maps key -> [pid u64][value] (a set for
 * unique keys, a duplicate_bag for duplicate ones); pid_tab[i] (an
 * ordered_set) holds one record per entry, keyed [pid u64][klen u32][key]
 * [nonce u64] (the value of a duplicate entry as its value, nothing for a
 * unique one), so that one process's records, and its records of one key,
 * are a key range: found in O(log n) however many keys the process holds,
 * which lets the partition find and remove a dead registrant's entries. A
 * unique key lives in partition hash(key); everything of one process lives
 * in partition hash(pid) for duplicate registries, and its pid records always
 * do. Deletions from key tables are by the exact bytes of an object, so
 * removing a stale entry can never remove one
 * that replaced it. Registration order is link, pid record, key record:
 * whenever a registrant dies, the partition it is linked to can clean up. */
#ifndef OT_REGISTRY_INT_H
#define OT_REGISTRY_INT_H

#include <otter.h>
#include <otter/registry.h>

#include <stdatomic.h>
#include <string.h>

/* Message tags the registry's own processes use (below OT_TAG_USER: not the
 * user's; above the core's). */
enum {
    REG_TAG_INIT = 200, /* starter -> root: build the partitions */
    REG_TAG_STOP,       /* ot_registry_stop -> root */
};

struct reg_slot;

/* The handler state of partition `idx` (static, in the slot). */
struct reg_part {
    struct reg_slot *slot;
    unsigned idx;
};

struct reg_slot {
    _Atomic uint64_t id; /* the handle value; 0: not readable */
    _Atomic int kind;    /* OT_UNIQUE / OT_DUPLICATE */
    _Atomic unsigned nparts;
    _Atomic uint64_t root;   /* pid */
    _Atomic uint64_t parent; /* pid the root is linked to at start */
    _Atomic uint64_t meta;   /* ot_tab */
    _Atomic uint64_t key_tab[OT_REGISTRY_PARTITIONS_MAX];
    _Atomic uint64_t pid_tab[OT_REGISTRY_PARTITIONS_MAX];
    _Atomic uint64_t part[OT_REGISTRY_PARTITIONS_MAX]; /* partition pids */
    struct reg_part pinfo[OT_REGISTRY_PARTITIONS_MAX];
    /* guarded by the slot-table mutex (registry.c) */
    uint32_t gen;
    bool used;
};

/* A consistent view of a live slot's header, taken by reg_open. */
struct reg_view {
    struct reg_slot *s;
    uint64_t id;
    int kind;
    unsigned nparts;
};

struct reg_slot *reg__slot_at(uint32_t idx); /* NULL if never allocated */

/* A pid record's key: [pid][klen][key][nonce]; its prefixes [pid] and
 * [pid][klen][key] select a process's records and its records of one key. */
#define REG_PIDKEY_MAX (8 + 4 + OT_REGISTRY_KEY_MAX + 8)
static inline size_t reg_pidkey(unsigned char *buf, ot_pid pid, const void *key, size_t klen)
{
    uint32_t kl = (uint32_t)klen;
    memcpy(buf, &pid.v, 8);
    memcpy(buf + 8, &kl, 4);
    memcpy(buf + 12, key, klen);
    return 12 + klen;
}

/* Calls fn on each pid-table key that starts with prefix, in key order; fn
 * may delete the record it is given. Returns 0, fn's non-zero result, or
 * -errno. */
int reg__pid_scan(ot_tab pt, const void *prefix, size_t plen,
                  int (*fn)(const unsigned char *pk, size_t pkl, void *arg), void *arg);

static inline int reg_open(ot_reg r, struct reg_view *v)
{
    uint32_t idx = (uint32_t)r.v - 1;
    if (r.v == 0 || idx >= OT_REGISTRY_MAX)
        return -EBADF;
    struct reg_slot *s = reg__slot_at(idx);
    if (!s)
        return -EBADF;
    /* Pairs with the release store that publishes the slot (registry.c). */
    if (atomic_load_explicit(&s->id, memory_order_acquire) != r.v)
        return -EBADF;
    v->s = s;
    v->id = r.v;
    /* Seqlock fields: acquire, pairing with slot_clear's release stores. */
    v->kind = atomic_load_explicit(&s->kind, memory_order_acquire);
    v->nparts = atomic_load_explicit(&s->nparts, memory_order_acquire);
    return v->nparts ? 0 : -EBADF;
}

/* The seqlock's second read: true when everything read since reg_open belongs
 * to the same registry. */
static inline bool reg_valid(const struct reg_view *v)
{
    /* After the fields' acquire loads, which keep this load below them. */
    return atomic_load_explicit(&v->s->id, memory_order_relaxed) == v->id;
}

/* Seqlock field loads: acquire, as in reg_open. */
static inline ot_tab reg_key_tab(const struct reg_view *v, unsigned p)
{
    return (ot_tab){atomic_load_explicit(&v->s->key_tab[p], memory_order_acquire)};
}
static inline ot_tab reg_pid_tab(const struct reg_view *v, unsigned p)
{
    return (ot_tab){atomic_load_explicit(&v->s->pid_tab[p], memory_order_acquire)};
}
static inline ot_pid reg_part_pid(const struct reg_view *v, unsigned p)
{
    return (ot_pid){atomic_load_explicit(&v->s->part[p], memory_order_acquire)};
}

static inline uint64_t reg_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline uint64_t reg_hash(const void *k, size_t kl)
{
    const unsigned char *p = k;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ kl;
    while (kl >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = reg_mix(h ^ w);
        p += 8;
        kl -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, kl);
    return reg_mix(h ^ w ^ 0x2545f4914f6cdd1dull);
}

static inline unsigned reg_pid_part(const struct reg_view *v, ot_pid p)
{
    return (unsigned)(reg_mix(p.v) % v->nparts);
}
static inline unsigned reg_key_part(const struct reg_view *v, const void *k, size_t kl,
                                    ot_pid self)
{
    return v->kind == OT_UNIQUE ? (unsigned)(reg_hash(k, kl) % v->nparts) : reg_pid_part(v, self);
}

static inline int reg_check_key(const void *k, size_t kl)
{
    if (!k || kl == 0)
        return -EINVAL;
    return kl > OT_REGISTRY_KEY_MAX ? -ENAMETOOLONG : 0;
}

/* Removes every entry of the dead process `pid` from partition `part`
 * (registry_write.c; run by the partition on its EXIT). */
void reg__cleanup(struct reg_slot *s, unsigned part, ot_pid pid);

/* Entries of one key in one key table, copied out of the table (a stack
 * buffer first, malloc past it). Dead registrants are left out. */
struct reg_coll {
    unsigned char *buf;
    size_t len, cap, n;
    bool oom;
    ot_pid skip; /* leave this pid out too (OT_NOPID: none) */
    _Alignas(8) unsigned char small[512];
};
void reg__coll_init(struct reg_coll *c);
void reg__coll_fini(struct reg_coll *c);
/* Appends the entries of key in table t; 0 or -errno. */
int reg__coll_read(struct reg_coll *c, ot_tab t, const void *k, size_t kl);
/* Walks the collected entries: *off starts at 0; false at the end. */
bool reg__coll_next(const struct reg_coll *c, size_t *off, ot_reg_entry *e);

#endif
