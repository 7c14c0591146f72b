/* The command table and the per-connection client state that commands see.
 * kv_execute runs one parsed command and appends its reply (RESP2, Redis 7.0's
 * exact texts) to the client's output buffer; it never does I/O, so the
 * connection decides when to send. The server-wide counters INFO reports
 * live here too. */
#ifndef KV_COMMANDS_H
#define KV_COMMANDS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "examples/kv/reply.h"
#include "examples/kv/store.h"

typedef struct kv_arg {
    const char *p;
    size_t n;
} kv_arg;

typedef struct kv_client {
    kv_out out;
    uint64_t id;
    char *name; /* CLIENT SETNAME, on the process heap; NULL if none */
    size_t name_len;
    int quit;       /* QUIT: close once the replies are sent */
    kv_clock clock; /* reset by the connection once per batch (store.h) */
    /* Counted locally and added to kv_stats once per batch, so that two
     * schedulers do not share a counter's cache line per command. */
    uint64_t cmds, hits, misses;
} kv_client;

/* The per-command counters, one cache line per scheduler (summed by INFO), so
 * that connections on different schedulers never write a shared line. */
#define KV_STAT_STRIPES 64
struct kv_hot_stats {
    atomic_ullong commands_processed;
    atomic_ullong keyspace_hits;
    atomic_ullong keyspace_misses;
    char pad[64 - 3 * sizeof(atomic_ullong)];
};

struct kv_stats {
    struct kv_hot_stats hot[KV_STAT_STRIPES] __attribute__((aligned(64)));
    atomic_ullong connections_received;
    atomic_ullong rejected_connections;
    atomic_llong connected_clients;
    atomic_ullong crashed_connections;
    atomic_ullong next_client_id;
    int64_t start_ms; /* Unix ms at start */
    uint16_t port;
    char bind[64];
    bool enable_debug; /* DEBUG SEGFAULT allowed */
};
extern struct kv_stats kv_stats;

void kv_client_init(kv_client *c, uint64_t id);
void kv_client_free(kv_client *c);
/* Adds the client's local counters to kv_stats and zeroes them. */
void kv_client_flush_stats(kv_client *c);
/* Runs one command (argc >= 1). */
void kv_execute(kv_client *c, const kv_arg *argv, size_t argc);

#endif
