/* Registry and PubSub: Elixir's Registry for C. A registry maps keys (bytes)
 * to the processes that registered them, each with a value (bytes). A
 * process registers itself only; its entries vanish when it exits. Keys are
 * unique (one process per key) or duplicate (any number of entries per key,
 * a process may register one key several times). A registry is a handler
 * process with one partition process per partition, each holding two ETS
 * tables; registrants are linked to their partition, which removes their
 * entries when they exit. Look-ups read the ETS tables directly, from any
 * process or foreign thread, never with a message to the registry. */
#ifndef OTTER_REGISTRY_H
#define OTTER_REGISTRY_H

#include <otter/common.h>
#include <otter/gen_server.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A registry handle, a value: a handle of a registry that has stopped gives
 * -EBADF, never a crash. The null handle is { 0 }. */
typedef struct ot_reg {
    uint64_t v;
} ot_reg;
#define OT_NOREG ((ot_reg){0})

enum ot_registry_keys {
    OT_UNIQUE = 1,    /* keys: :unique */
    OT_DUPLICATE = 2, /* keys: :duplicate */
};

#define OT_REGISTRY_KEY_MAX 1024u          /* bytes; -ENAMETOOLONG above */
#define OT_REGISTRY_VALUE_MAX (64u << 10)  /* bytes; -EMSGSIZE above */
#define OT_REGISTRY_PARTITIONS_MAX 128u    /* -EINVAL above */
#define OT_REGISTRY_MAX 1024u              /* registries alive at once; -EAGAIN above */

/* One entry as a look-up returns it: the registrant and a copy of its value
 * (8-byte aligned; NULL when vlen is 0). */
typedef struct ot_reg_entry {
    ot_pid pid;
    const void *value;
    size_t vlen;
} ot_reg_entry;

/* One key of ot_registry_keys. */
typedef struct ot_reg_key {
    const void *key;
    size_t klen;
} ot_reg_key;

/* A predicate on an entry's value (match, count_match, unregister_match),
 * given 8-byte aligned (NULL when vlen is 0). It runs in the caller, outside
 * any table, once per entry considered, so it may do anything (keep state,
 * block, call the registry). */
typedef bool (*ot_reg_match_fn)(const void *value, size_t vlen, void *arg);

/* Registry.start_link(keys:, name:, partitions:). The caller (a process) is
 * linked to the registry. name NULL: unnamed (use ot_registry_of). partitions
 * 0: one per scheduler. *out: the registry's pid. -EINVAL: bad keys, too many
 * partitions, name too long; -EEXIST: name taken (*out the holder); -EPERM:
 * not in a process; -EAGAIN: OT_REGISTRY_MAX registries or the ETS table
 * limit reached. */
OT_API int ot_registry_start_link(const char *name, int keys, unsigned partitions, ot_pid *out);
/* Stops the registry (reason normal) and returns once it has exited: its
 * entries and tables are gone, its handle gives -EBADF. -EBADF if it is not
 * running. */
OT_API int ot_registry_stop(ot_reg r);
/* The handle of the registry named name (OT_NOREG, errno ENOENT if none). */
OT_API ot_reg ot_registry_whereis(const char *name);
/* The handle of the registry whose pid is p (OT_NOREG, errno ENOENT if none). */
OT_API ot_reg ot_registry_of(ot_pid p);
/* The registry's pid, OT_NOPID for a stale handle. */
OT_API ot_pid ot_registry_pid(ot_reg r);

/* Registry.register/3 for the calling process, with a copy of the value.
 * Unique keys: -EEXIST when the key is held by a live process, which is
 * stored in *holder (may be NULL; the caller itself if it holds the key).
 * Duplicate keys always add an entry. -EINVAL: NULL or empty key, NULL value
 * with vlen > 0; -ENAMETOOLONG: key over OT_REGISTRY_KEY_MAX; -EMSGSIZE:
 * value over OT_REGISTRY_VALUE_MAX; -EPERM: not in a process; -EBADF: stale
 * handle. */
OT_API int ot_registry_register(ot_reg r, const void *key, size_t klen, const void *val,
                                size_t vlen, ot_pid *holder);
/* Registry.unregister/2: removes every entry of the caller under key; 0 also
 * when there was none. The caller is unlinked from the partition once it has
 * no entry left there. */
OT_API int ot_registry_unregister(ot_reg r, const void *key, size_t klen);
/* Registry.unregister_match/4: removes the caller's entries under key whose
 * value satisfies match. */
OT_API int ot_registry_unregister_match(ot_reg r, const void *key, size_t klen,
                                        ot_reg_match_fn match, void *arg);
/* Registry.update_value/3, unique registries: replaces the value of the
 * caller's entry. -ENOENT if the caller does not hold the key, -EINVAL on a
 * duplicate registry. (Elixir passes a function of the old value; here the
 * caller, the only one who may change it, reads it with lookup first.) */
OT_API int ot_registry_update_value(ot_reg r, const void *key, size_t klen, const void *val,
                                    size_t vlen);

/* Registry.lookup/2: the live entries under key, copied into one block of the
 * caller's heap (ot_free it; free() on a foreign thread); *out NULL and *n 0
 * when there is none. Any thread. */
OT_API int ot_registry_lookup(ot_reg r, const void *key, size_t klen, ot_reg_entry **out,
                              size_t *n);
/* Registry.match/4 with a predicate instead of a pattern: lookup's entries
 * whose value satisfies match. */
OT_API int ot_registry_match(ot_reg r, const void *key, size_t klen, ot_reg_match_fn match,
                             void *arg, ot_reg_entry **out, size_t *n);
/* Registry.count_match/4: how many entries under key satisfy match (all
 * when match is NULL), or -errno. */
OT_API int ot_registry_count_match(ot_reg r, const void *key, size_t klen, ot_reg_match_fn match,
                                   void *arg);
/* Registry.keys/2: the keys p registered (a key once per entry), as one block
 * like lookup's; none for a dead process. */
OT_API int ot_registry_keys(ot_reg r, ot_pid p, ot_reg_key **out, size_t *n);
/* Registry.count/1: entries in the registry; 0 and errno EBADF for a stale
 * handle. Entries of a process that just exited count until its partition
 * has removed them. */
OT_API size_t ot_registry_count(ot_reg r);
/* Registry.dispatch/3: calls fn with the live entries under key, once per
 * partition that has any (never with none); the entries are valid during the
 * call only. fn runs in the caller and may send, block or call the registry. */
OT_API int ot_registry_dispatch(ot_reg r, const void *key, size_t klen,
                                void (*fn)(const ot_reg_entry *e, size_t n, void *arg),
                                void *arg);
/* The pid registered under a unique key (Registry.whereis_name/1), or
 * OT_NOPID: errno ENOENT (none), EBADF, EINVAL (duplicate registry, bad key). */
OT_API ot_pid ot_registry_whereis_name(ot_reg r, const void *key, size_t klen);

/* Registry.put_meta/3 and meta/2: registry-wide key-value data. meta copies
 * the value into buf (cap bytes) and stores its length in *vlen: -ENOENT if
 * absent, -ERANGE (with *vlen set) if cap is too small. */
OT_API int ot_registry_put_meta(ot_reg r, const void *key, size_t klen, const void *val,
                                size_t vlen);
OT_API int ot_registry_meta(ot_reg r, const void *key, size_t klen, void *buf, size_t cap,
                            size_t *vlen);

/* ---- via names: {:via, Registry, {registry, key}} ------------------------
 * A gen_server or Agent named through a unique registry:
 *     ot_start_opts o = {.name = OT_NAME_REGISTRY(reg, "room:1", 6)};
 * The server registers itself (no value) before init and its name goes when
 * it exits; calls, casts and ot_whereis_name find it by the same ot_name.
 * register_name gives -EINVAL for a duplicate registry or a pid other than
 * the caller's, -EEXIST when the key is held. */
OT_API extern const ot_via_ops ot_registry_via;
#define OT_REG_VIA(r) ((void *)(uintptr_t)(r).v)
#define OT_NAME_REGISTRY(r, key, klen) OT_NAME_VIA(&ot_registry_via, OT_REG_VIA(r), key, klen)

/* ---- PubSub: a duplicate registry of topics ------------------------------
 * The Registry documentation's PubSub: subscribers register under a topic,
 * a broadcast sends one message to each entry. Subscribing twice makes two
 * entries, so two copies of each broadcast, as with Registry.register. */
OT_API int ot_pubsub_start_link(const char *name, unsigned partitions, ot_pid *out);
OT_API int ot_pubsub_subscribe(ot_reg ps, const void *topic, size_t tlen);
OT_API int ot_pubsub_unsubscribe(ot_reg ps, const void *topic, size_t tlen);
/* Sends (tag, msg) to every live subscriber of topic; returns how many were
 * sent, or -errno. Any thread. */
OT_API int ot_pubsub_broadcast(ot_reg ps, const void *topic, size_t tlen, uint32_t tag,
                               const void *msg, size_t len);
/* The same, skipping the subscriber `except` (Phoenix.PubSub.broadcast_from). */
OT_API int ot_pubsub_broadcast_from(ot_reg ps, ot_pid except, const void *topic, size_t tlen,
                                    uint32_t tag, const void *msg, size_t len);

#ifdef __cplusplus
}
#endif
#endif
