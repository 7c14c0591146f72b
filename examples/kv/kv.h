/* examples/kv: a RESP2 key-value server on Otter, as a library so that tests
 * can run it in-process. An acceptor pool (otter/listener.h) accepts; one
 * handler process per connection, with an active socket, parses, runs and
 * answers pipelined commands; the keyspace is a public ETS set; one process
 * expires keys actively. The runtime must be
 * running (ot_start) before kv_server_start; both calls may come from any
 * thread, including a foreign one. One server per runtime at a time. */
#ifndef KV_KV_H
#define KV_KV_H

#include <stdbool.h>
#include <stdint.h>

typedef struct kv_opts {
    const char *bind;        /* numeric address; NULL: "127.0.0.1" */
    uint16_t port;           /* 0: an ephemeral port */
    int backlog;             /* 0: 511, Redis's tcp-backlog */
    int64_t read_timeout_ms; /* a command left half-sent with no byte for
                                this long closes the connection; 0 (the
                                default): never, as Redis keeps such a
                                connection (its timeout 0). Idle connections
                                between commands never time out. */
    bool enable_debug;       /* allow DEBUG SEGFAULT (crashes the calling
                                connection's process only) */
} kv_opts;

/* Starts the server; *bound_port gets the port it listens on. 0 or -errno
 * (-EALREADY if one is running). */
int kv_server_start(const kv_opts *o, uint16_t *bound_port);
/* Stops accepting, ends every connection, stops the expiry process and frees
 * the keyspace; returns when all of it is done. */
void kv_server_stop(void);
/* Live connection processes (for tests and INFO). */
long kv_server_connections(void);

#endif
