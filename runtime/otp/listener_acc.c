/* The listener's working processes: the acceptors and their supervisor, the
 * body of a conn-mode connection, and the drainer.
 *
 * An acceptor is a stackful process that loops: take a slot from the manager
 * (only when max_connections is finite; the call waits while the listener is
 * full, so the acceptor stops accepting), accept, start the connection under
 * the connections supervisor (the start, run there, tells the manager, so a
 * count asked after the connection answered its client includes it), hand
 * the socket over, send the handshake. Invariant: the accepted socket is
 * owned by the acceptor until the hand-over, so an acceptor that dies first
 * takes it with it (the client sees it closed, never a hang), and a
 * connection never sees its socket before it owns it. A conn-mode
 * connection watches its acceptor until the handshake and ends if it dies;
 * a start-mode one waits with its own timeout (ranch's handshake_timeout).
 * The acceptor learns everything from the manager at its start and never
 * reads the shared record.
 *
 * The drainer is the last of the listener's children, so an orderly stop
 * reaches it first: it traps exits and, on its parent's shutdown, runs the
 * manager's drain (the listening socket closed, which ends every parked
 * accept, then the wait) before it exits; the acceptors are stopped after
 * it, parked with no socket in hand. */
#include "runtime/otp/listener_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Accepts are one-shot, never the listener's multishot accept (which an
 * infinite timeout arms): a multishot goes on accepting into a queue while
 * its acceptor waits for a slot, past max_connections, and a connection it
 * queued waits for that acceptor even while the others are free. One-shot
 * accepts leave the clients nobody takes in the kernel's backlog, for any
 * acceptor. The timeout only makes the accept one-shot. */
#define ACCEPT_MS ((int64_t)3600 * 1000)

static _Atomic unsigned spread; /* acceptors round-robin over the schedulers */

static _Noreturn void park(ot_pid mgr) {
    ot_pid me = ot_self();
    ot_cast(mgr, LST_PARKED, &me, sizeof me);
    for (;;) { /* the listening socket is gone: wait to be stopped or restarted */
        ot_msg *m = ot_receive(OT_INFINITY);
        if (m)
            ot_msg_free(m);
    }
}

static int call_int(ot_pid to, uint32_t tag) {
    ot_msg *r = NULL;
    int rc = ot_call(to, tag, NULL, 0, &r, OT_INFINITY);
    if (rc < 0)
        return rc;
    int v = -EPROTO;
    if (r->size == sizeof v)
        memcpy(&v, ot_msg_data(r), sizeof v);
    ot_msg_free(r);
    return v;
}

/* What an accept error means for the loop: go on, back off, or park. */
static void accept_failed(ot_pid mgr, int rc) {
    switch (rc) {
    case -EBADF:
    case -EINVAL:
    case -ENOTSOCK:
        park(mgr);
    case -EMFILE:
    case -ENFILE:
    case -ENOBUFS:
    case -ENOMEM: /* out of descriptors or memory: as ranch, wait a little */
        ot_log(OT_LOG_WARNING, "ot_listener acceptor: accept: %s", ot_strerror(rc));
        ot_sleep(100);
        return;
    default: /* the client gave up (ECONNABORTED, ...): the next one */
        return;
    }
}

static void serve(const struct lst_cfg *cfg, ot_sock s) {
    ot_child_spec c = {.start_extra = ot__lst_conn_start,
                       .arg = ot__lst_pid_arg(ot_self()),
                       .restart = OT_TEMPORARY,
                       .shutdown = cfg->conn_shutdown,
                       .type = cfg->conn_type};
    ot_pid p = OT_NOPID;
    int rc = ot_dynsup_start_child(cfg->conns, &c, &p);
    if (rc != 0 || !p.v) {
        if (rc < 0 && rc != -ESRCH && rc != -ECONNRESET)
            ot_log(OT_LOG_WARNING, "ot_listener: a connection's start failed: %s", ot_strerror(rc));
        ot_sock_close(s); /* our slot stays ours, for the next accept */
        return;
    }
    if (ot_sock_controlling_process(s, p) < 0) {
        ot_sock_close(s); /* it is gone already; its DOWN frees the slot */
        return;
    }
    ot_listener_handshake_msg hs = {.sock = s, .listener = cfg->listener, .arg = cfg->arg};
    ot_send(p, OT_TAG_SOCK_HANDSHAKE, &hs, sizeof hs);
}

static void acceptor_main(void *arg) {
    ot_pid mgr = ot__lst_arg_pid(arg);
    ot_msg *r = NULL;
    int rc = ot_call(mgr, LST_CFG, NULL, 0, &r, OT_INFINITY);
    if (rc < 0 || r->size != sizeof(struct lst_cfg))
        ot_exit_self(ot_reason_error("ot_listener acceptor: no config (%d)", rc));
    struct lst_cfg cfg;
    memcpy(&cfg, ot_msg_data(r), sizeof cfg);
    ot_msg_free(r);
    if (ot_sock_eq(cfg.lsock, OT_NOSOCK))
        park(mgr); /* suspended */
    for (;;) {
        if (cfg.limited && (rc = call_int(mgr, LST_ACQUIRE)) < 0)
            ot_exit_self(ot_reason_error("ot_listener acceptor: no slot (%d)", rc));
        ot_sock s;
        rc = ot_sock_accept(cfg.lsock, &s, NULL, NULL, ACCEPT_MS);
        if (rc == -ETIMEDOUT)
            continue; /* the slot stays ours */
        if (rc < 0)
            accept_failed(mgr, rc);
        else
            serve(&cfg, s);
    }
}

static int acceptor_start(void *arg, ot_pid *out) {
    unsigned n = ot_schedulers();
    ot_spawn_opts so = {.link = true, .behaviour = "ot_listener_acceptor"};
    if (n > 1) {
        so.scheduler = (int)(atomic_fetch_add_explicit(&spread, 1, memory_order_relaxed) % n);
        so.scheduler_set = true;
    }
    ot_pid p = ot_spawn_opt(acceptor_main, arg, &so);
    if (!p.v)
        return errno ? -errno : -EAGAIN;
    *out = p;
    return 0;
}

int ot__lst_acceptors_start(void *arg, ot_pid *out) {
    struct lst *l = arg;
    int n = l->o.num_acceptors;
    ot_child_spec *c = ot_calloc((size_t)n, sizeof *c);
    char(*ids)[24] = ot_calloc((size_t)n, sizeof *ids);
    if (!c || !ids) {
        ot_free(c);
        ot_free(ids);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "acceptor_%d", i);
        c[i] = (ot_child_spec){.id = ids[i],
                               .start = acceptor_start,
                               .arg = ot__lst_pid_arg(l->manager),
                               .restart = OT_PERMANENT,
                               .shutdown = OT_BRUTAL_KILL};
    }
    ot_sup_flags f = {.strategy = OT_ONE_FOR_ONE};
    int rc = ot_supervisor_start_link(&f, c, (size_t)n, NULL, out);
    ot_free(c);
    ot_free(ids);
    return rc;
}

/* ---- a connection's start, in the connections supervisor ------------------------- */

typedef void (*conn_fn)(ot_sock s, void *arg);

struct lst_conn {
    conn_fn conn;
    ot_pid acceptor;
};

static bool hs_or_down(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_SOCK_HANDSHAKE ||
           (m->tag == OT_TAG_DOWN && ot_ref_eq(m->ref, *(ot_ref *)arg));
}

/* A conn-mode connection: its handshake, or its acceptor's death before it
 * (the socket died with the acceptor), and then conn. */
static void conn_main(void *arg) {
    (void)arg;
    ot_msg *m = ot_receive_tag(LST_CONN_CFG, OT_INFINITY);
    struct lst_conn c;
    memcpy(&c, ot_msg_data(m), sizeof c);
    ot_msg_free(m);
    ot_ref mon = ot_monitor(c.acceptor);
    m = ot_receive_match(hs_or_down, &mon, OT_LISTENER_HANDSHAKE_MS);
    if (!m || m->tag != OT_TAG_SOCK_HANDSHAKE || m->size != sizeof(ot_listener_handshake_msg))
        return;
    ot_listener_handshake_msg hs;
    memcpy(&hs, ot_msg_data(m), sizeof hs);
    ot_msg_free(m);
    ot_demonitor(mon, OT_DEMONITOR_FLUSH);
    c.conn(hs.sock, hs.arg);
}

static int spawn_conn(conn_fn conn, ot_pid acceptor, ot_pid *out) {
    ot_spawn_opts so = {.link = true, .behaviour = "ot_listener_conn"};
    ot_pid p = ot_spawn_opt(conn_main, NULL, &so);
    if (!p.v)
        return errno ? -errno : -EAGAIN;
    struct lst_conn c = {conn, acceptor};
    ot_send(p, LST_CONN_CFG, &c, sizeof c);
    *out = p;
    return 0;
}

int ot__lst_conn_start(void *extra, void *arg, ot_pid *out) {
    struct lst *l = extra;
    ot_pid acceptor = ot__lst_arg_pid(arg);
    if (!acceptor.v) /* the listener supervisor's call at this supervisor's birth */
        return ot__lst_hold(l) < 0 ? -ENOMEM : OT_IGNORED;
    int rc = l->o.start ? l->o.start(l->o.arg, out) : spawn_conn(l->o.conn, acceptor, out);
    if (rc == 0 && out->v) { /* counted before it can answer its client */
        ot_pid st[2] = {*out, acceptor};
        ot_cast(l->manager, LST_STARTED, st, sizeof st);
    }
    return rc;
}

/* ---- the drainer ---------------------------------------------------------------- */

static int drainer(void *state, const ot_msg *m) {
    if (m->tag != OT_TAG_EXIT || m->size != sizeof(ot_exit_msg))
        return 0;
    ot_exit_msg x;
    memcpy(&x, ot_msg_data(m), sizeof x);
    /* killed: no drain, the listener is going down hard */
    if (x.reason.kind != OT_KILLED && x.reason.kind != OT_KILL) {
        call_int(ot__lst_arg_pid(state), LST_SUSPEND); /* the acceptors park */
        call_int(ot__lst_arg_pid(state), LST_DRAIN);
    }
    ot_exit_self(x.reason);
}

int ot__lst_drainer_start(void *arg, ot_pid *out) {
    struct lst *l = arg;
    ot_spawn_opts so = {.link = true, .trap_exit = true, .behaviour = "ot_listener_drainer"};
    ot_pid p = ot_spawn_handler(drainer, ot__lst_pid_arg(l->manager), &so);
    if (!p.v)
        return errno ? -errno : -EAGAIN;
    *out = p;
    return 0;
}
