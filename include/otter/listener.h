/* An acceptor pool (ranch's listener): a supervisor that owns a listening
 * socket, runs num_acceptors acceptor processes blocked in accept on it, and
 * starts one process per accepted connection under its connections
 * DynamicSupervisor, at most max_connections at a time. The listener is a
 * supervisor (rest_for_one) of, in order: its manager (the connection count,
 * the listening socket, the drain), the connections DynamicSupervisor, the
 * acceptors' supervisor (one_for_one, permanent acceptors) and the drainer.
 *
 * The handshake (ranch's): an acceptor accepts a socket (it owns it), starts
 * the connection's process under the connections supervisor, hands the
 * socket over with ot_sock_controlling_process, and only then sends the new
 * process an OT_TAG_SOCK_HANDSHAKE message (payload ot_listener_handshake_msg)
 * that names the socket. A connection process must not touch its socket
 * before that message: from it on, the process owns the socket (it is closed
 * when the process exits). A gen_server takes it in handle_info; a stackful
 * process waits for it with ot_listener_handshake. An acceptor that dies
 * before the hand-over takes the socket with it: its process then gets no
 * handshake, so it should wait with a timeout (ranch's handshake_timeout). Connection children are
 * temporary: one that ends, normally or not, frees its slot and is never
 * restarted (there would be no socket to give it).
 *
 * max_connections: while that many connections run, acceptors stop accepting
 * (new clients wait in the kernel's backlog) until one ends.
 *
 * Drain: whenever the listener is stopped in order (ot_listener_stop, or its
 * parent supervisor stopping it), it first closes the listening socket (new
 * connects are refused), stops the acceptors, waits up to drain_timeout_ms
 * for the running connections to end on their own, then shuts the rest down,
 * each within the connection child's shutdown time (ranch's drain guide). */
#ifndef OTTER_LISTENER_H
#define OTTER_LISTENER_H

#include <otter/common.h>
#include <otter/process.h>
#include <otter/socket.h>
#include <otter/supervisor.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The payload of OT_TAG_SOCK_HANDSHAKE: the connection's socket, now the
 * receiver's own; the listener (its pid, for ot_listener_* calls); the
 * listener's arg. The message's from is the acceptor that accepted it. */
typedef struct ot_listener_handshake_msg {
    ot_sock sock;
    ot_pid listener;
    void *arg;
} ot_listener_handshake_msg;

#define OT_LISTENER_HANDSHAKE_MS 5000

typedef struct ot_listener_opts {
    const char *host;        /* numeric address or "localhost"; NULL: "0.0.0.0" */
    uint16_t port;           /* 0: one the kernel picks (ot_listener_port says which) */
    int backlog;             /* listen(2)'s; 0: 1024 (ranch's) */
    int num_acceptors;       /* 0: 10 (ranch's); at most 1024 */
    int64_t max_connections; /* 0: 1024 (ranch's); OT_INFINITY: no limit */
    /* Exactly one of start and conn (-EINVAL otherwise).
     * start: a child start function, run in the connections supervisor, that
     *   must start_link the connection's process (a gen_server, a handler, a
     *   stackful process) and return 0 with its pid, OT_IGNORED or -errno (the
     *   socket is then closed); the process learns its socket from the
     *   handshake message.
     * conn: the connection's process body: the listener spawns a stackful
     *   process that takes the handshake and runs conn(sock, arg), owning
     *   sock; the process ends (and the socket closes) when conn returns.
     *   It waits OT_LISTENER_HANDSHAKE_MS for the handshake (ranch's
     *   handshake_timeout) and exits normally without one (its acceptor died
     *   before the hand-over). */
    int (*start)(void *arg, ot_pid *out);
    void (*conn)(ot_sock s, void *arg);
    void *arg; /* passed to start or conn and in the handshake; must outlive the listener */
    /* The connection children's shutdown (ms > 0, OT_BRUTAL_KILL, OT_INFINITY;
     * 0: 5000) and type (OT_WORKER, or OT_SUPERVISOR when start starts one). */
    int64_t conn_shutdown;
    int conn_type;
    /* How long a stop waits for the connections to end on their own before
     * shutting them down: 0 not at all, OT_INFINITY for ever. */
    int64_t drain_timeout_ms;
} ot_listener_opts;

/* Opens the listening socket (in the caller: -EADDRINUSE and the other
 * errors of ot_sock_listen_tcp come back from here, with nothing started)
 * and starts the listener linked to the caller; 0 and *out its pid. -EINVAL
 * for bad opts (out or o NULL, neither or both of start and conn, negative
 * counts or timeouts other than OT_INFINITY where allowed, num_acceptors
 * over 1024); -EPERM outside a process; otherwise
 * ot_supervisor_start_link's errors. o is copied; o->arg is not. */
OT_API int ot_listener_start_link(const ot_listener_opts *o, ot_pid *out);
/* A child spec that starts the listener under another supervisor (the
 * application tree): id "ot_listener" (change it when there are several),
 * permanent, a supervisor with shutdown infinity. o must outlive that
 * supervisor, as any child spec's arg. */
OT_API ot_child_spec ot_listener_child_spec(const ot_listener_opts *o);

/* The port the listener is bound to (the kernel's pick for port 0): > 0, or
 * -ESRCH (not alive), -EINVAL (not a listener), -EPERM (not a process). */
OT_API int ot_listener_port(ot_pid l);
/* Connections running now: >= 0, or as ot_listener_port. A connection counts
 * from its start until its process has exited and the manager has seen its
 * DOWN. */
OT_API int ot_listener_count_connections(ot_pid l);
/* ranch's suspend_listener: closes the listening socket (new connects are
 * refused) and, once every acceptor has parked (at most 5 s: an accept that
 * ends with a connection is served first), stops the acceptors; running
 * connections go on. resume
 * opens the socket again on the same port and restarts the acceptors. 0, as
 * ot_listener_port, or the error of opening the socket (resume); both are 0
 * when the listener is already in the state asked for; resume once a stop
 * has begun is -ESHUTDOWN. */
OT_API int ot_listener_suspend(ot_pid l);
OT_API int ot_listener_resume(ot_pid l);
/* Stops the listener with its drain (see above) and waits up to timeout_ms
 * (OT_INFINITY: for ever) for it to exit. Returns the number of connections
 * that were still running when the drain ended and were shut down (>= 0),
 * -ETIMEDOUT when the listener had not exited in time, or as
 * ot_listener_port. The listener exits with reason normal, so a linked
 * caller that does not trap exits lives on. */
OT_API int ot_listener_stop(ot_pid l, int64_t timeout_ms);

/* For a stackful connection process started by opts.start: waits up to
 * timeout_ms for its handshake, then *out is the socket (now its own) and
 * *hs, if not NULL, the whole payload. 0, -ETIMEDOUT, -EINVAL (out NULL, bad
 * timeout), -EPERM outside a process. Other messages stay queued. */
OT_API int ot_listener_handshake(int64_t timeout_ms, ot_sock *out, ot_listener_handshake_msg *hs);

#ifdef __cplusplus
}
#endif
#endif
