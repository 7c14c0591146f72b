/* One client connection of examples/kv: a handler process that owns an
 * active socket (conn.c). The server (server.c) makes the record, spawns the
 * process under the listener's connections supervisor, and frees the record
 * once it has the process's DOWN, whatever the reason: the record is plain
 * malloc memory, not on the process heap, so that an idle connection leases
 * no heap chunk. */
#ifndef KV_CONN_H
#define KV_CONN_H

#include <otter.h>
#include <otter/listener.h>
#include <otter/socket.h>
#include <stdint.h>

struct kv_conn;

/* A record for a new connection with client id `id`; NULL when out of
 * memory. */
struct kv_conn *kv_conn_new(uint64_t id);
/* Frees a record whose process has exited (and everything it held outside
 * its process heap). */
void kv_conn_free(struct kv_conn *cn);
/* The connection process: ot_spawn_handler(kv_conn_handler, cn, ...), with
 * trap_exit so that a shutdown from its supervisor ends it between two
 * messages, never inside a command (which may hold a stripe lock). */
int kv_conn_handler(void *state, const ot_msg *m);
/* Ends the connection process pid if no handshake (no socket) reaches it
 * within OT_LISTENER_HANDSHAKE_MS, as listener.h asks of a process started
 * by opts.start: an acceptor that dies before the hand-over sends none. */
void kv_conn_await_handshake(ot_pid pid);
/* A command left half-sent with no byte for ms closes the connection; 0 (the
 * default, as Redis's timeout 0): never. Set before the first connection. */
void kv_conn_set_read_timeout(int64_t ms);

#endif
