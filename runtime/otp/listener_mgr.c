/* The listener's manager: a gen_server, the listener supervisor's first
 * child, that keeps the connection count, hands out accept slots, holds the
 * listening socket's handle (the socket itself is owned by the listener
 * supervisor, so it lives as long as the listener) and runs the drain.
 *
 * Invariants: count is the number of connections started and not yet seen
 * DOWN (each is monitored from its LST_STARTED on, which the connections
 * supervisor sends from the start itself, naming the acceptor whose slot the
 * connection takes: a slot becomes a connection in one step); reserved is
 * the number of acceptors holding a slot for their next accept; with a
 * finite max, count + reserved <= max always, and a slot freed goes to the
 * acceptor that has waited longest. Every acceptor that asked for anything is monitored,
 * so one that dies gives back its slot and its place in the queue. Drain
 * waiters are answered once, when count reaches 0 or the drain's time is up,
 * with the count at that moment; after that a drain call is answered at once.
 * A suspend (also the first step of every stop) closes the listening socket
 * and is answered once each acceptor is parked or waiting for a slot (or
 * after 5 s), so that no acceptor is stopped while an accept of its may
 * still complete with a connection that would then have no owner. */
#include "runtime/otp/listener_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct acc {
    ot_pid pid;
    ot_ref mon;
    bool slot;
    bool waiting;
    bool parked;  /* the listening socket it had is closed: it accepts no more */
    uint64_t seq; /* when it started waiting */
    ot_from from;
};

enum { DRAIN_NONE = 0, DRAIN_RUNNING, DRAIN_OVER };

struct mgr {
    struct lst *l; /* held by this process */
    struct lst_cfg cfg;
    int64_t max; /* OT_INFINITY: no limit */
    int64_t count, reserved;
    uint64_t seq;
    struct acc *acc;
    size_t nacc, capacc;
    ot_from *drains;
    size_t ndrains, capdrains;
    ot_from *quiets; /* suspends waiting for the acceptors to park */
    size_t nquiets, capquiets;
    int drain;
    bool suspended;
};

static ot_gs_ret mgr_init(void *arg, void **state) {
    struct lst *l = arg;
    struct mgr *g = ot_calloc(1, sizeof *g);
    if (!g)
        return ot_gs_stop(ot_reason_error("listener manager: out of memory"));
    int rc = ot__lst_hold(l);
    if (rc < 0) {
        ot_free(g);
        return ot_gs_stop(ot_reason_error("listener manager: %s", ot_strerror(rc)));
    }
    g->l = l;
    g->max = l->o.max_connections;
    g->cfg = (struct lst_cfg){.lsock = l->lsock,
                              .listener = l->sup,
                              .manager = ot_self(),
                              .arg = l->o.arg,
                              .conn_shutdown = l->o.conn_shutdown,
                              .conn_type = l->o.conn_type,
                              .limited = g->max != OT_INFINITY};
    g->suspended = ot_sock_eq(l->lsock, OT_NOSOCK);
    *state = g;
    return ot_gs_ok();
}

static struct acc *acc_find(struct mgr *g, ot_pid p) {
    for (size_t i = 0; i < g->nacc; i++)
        if (ot_pid_eq(g->acc[i].pid, p))
            return &g->acc[i];
    return NULL;
}

/* The record of acceptor p, made (and p monitored) on its first request. */
static struct acc *acc_get(struct mgr *g, ot_pid p) {
    struct acc *a = acc_find(g, p);
    if (a)
        return a;
    if (g->nacc == g->capacc) {
        size_t cap = g->capacc ? g->capacc * 2 : 16;
        struct acc *n = ot_realloc(g->acc, cap * sizeof *n);
        if (!n)
            return NULL;
        g->acc = n;
        g->capacc = cap;
    }
    a = &g->acc[g->nacc++];
    *a = (struct acc){.pid = p, .mon = ot_monitor(p)};
    return a;
}

/* Hands freed slots to the acceptors that have waited longest. */
static void grant(struct mgr *g) {
    while (g->max == OT_INFINITY || g->count + g->reserved < g->max) {
        struct acc *first = NULL;
        for (size_t i = 0; i < g->nacc; i++)
            if (g->acc[i].waiting && (!first || g->acc[i].seq < first->seq))
                first = &g->acc[i];
        if (!first)
            return;
        first->waiting = false;
        first->slot = true;
        g->reserved++;
        int ok = 0;
        ot_reply(first->from, &ok, sizeof ok);
    }
}

static void drain_answer(struct mgr *g) {
    int left = (int)g->count;
    for (size_t i = 0; i < g->ndrains; i++)
        ot_reply(g->drains[i], &left, sizeof left);
    g->ndrains = 0;
}

static void close_listening(struct mgr *g) {
    if (!ot_sock_eq(g->cfg.lsock, OT_NOSOCK))
        ot_sock_close(g->cfg.lsock);
    g->cfg.lsock = OT_NOSOCK;
    g->l->lsock = OT_NOSOCK;
    g->suspended = true;
}

static int reopen(struct mgr *g) {
    struct lst *l = g->l;
    ot_sock s;
    int rc = ot_sock_listen_tcp(l->host, l->port, l->o.backlog, &s);
    if (rc < 0)
        return rc;
    rc = ot_sock_controlling_process(s, l->sup); /* it lives as long as the listener */
    if (rc < 0) {
        ot_sock_close(s);
        return rc;
    }
    g->cfg.lsock = l->lsock = s;
    g->suspended = false;
    return 0;
}

static ot_gs_ret reply_int(struct mgr *g, ot_from from, int v) {
    (void)g;
    ot_reply(from, &v, sizeof v);
    return ot_gs_ok();
}

static bool push_from(ot_from **v, size_t *n, size_t *cap, ot_from f) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        ot_from *nv = ot_realloc(*v, c * sizeof *nv);
        if (!nv)
            return false;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = f;
    return true;
}

/* No acceptor can still be holding an accept of the closed socket: each is
 * parked or waiting for a slot. */
static bool quiet(const struct mgr *g) {
    for (size_t i = 0; i < g->nacc; i++)
        if (!g->acc[i].parked && !g->acc[i].waiting)
            return false;
    return true;
}

static void quiet_answer(struct mgr *g, bool force) {
    if (!g->nquiets || (!force && !quiet(g)))
        return;
    int ok = 0;
    for (size_t i = 0; i < g->nquiets; i++)
        ot_reply(g->quiets[i], &ok, sizeof ok);
    g->nquiets = 0;
}

/* Closes the listening socket and answers once every acceptor has parked
 * (or after 5 s): stopping an acceptor while an accept of its may still hand
 * it a connection could leave that connection with no owner. */
static ot_gs_ret suspend_call(struct mgr *g, ot_from from) {
    close_listening(g);
    if (quiet(g) || !push_from(&g->quiets, &g->nquiets, &g->capquiets, from))
        return reply_int(g, from, 0);
    if (g->nquiets == 1)
        ot_send_after(ot_self(), 5000, LST_QUIET_TMO, NULL, 0);
    return ot_gs_ok();
}

static bool drain_call(struct mgr *g, ot_from from) {
    close_listening(g);
    if (g->count == 0 || g->drain == DRAIN_OVER || g->l->o.drain_timeout_ms == 0) {
        g->drain = DRAIN_OVER;
        return true; /* answer now */
    }
    if (!push_from(&g->drains, &g->ndrains, &g->capdrains, from))
        return true;
    if (g->drain == DRAIN_NONE) {
        g->drain = DRAIN_RUNNING;
        if (g->l->o.drain_timeout_ms != OT_INFINITY)
            ot_send_after(ot_self(), g->l->o.drain_timeout_ms, LST_DRAIN_TMO, NULL, 0);
    }
    return false;
}

static ot_gs_ret mgr_call(void *state, const ot_msg *req, ot_from from) {
    struct mgr *g = state;
    switch (req->tag) {
    case LST_CFG:
        if (!acc_get(g, from.pid))
            return reply_int(g, from, -ENOMEM);
        return ot_gs_reply(&g->cfg, sizeof g->cfg);
    case LST_ACQUIRE: {
        struct acc *a = acc_get(g, from.pid);
        if (!a)
            return reply_int(g, from, -ENOMEM);
        if (a->slot || a->waiting)
            return a->slot ? reply_int(g, from, 0) : ot_gs_ok();
        a->waiting = true;
        a->seq = ++g->seq;
        a->from = from;
        grant(g);
        quiet_answer(g, false);
        return ot_gs_ok();
    }
    case LST_COUNT:
        return reply_int(g, from, (int)g->count);
    case LST_PORT:
        return reply_int(g, from, g->l->port);
    case LST_DRAIN:
        if (drain_call(g, from))
            return reply_int(g, from, (int)g->count);
        return ot_gs_ok();
    case LST_SUSPEND:
        return suspend_call(g, from);
    case LST_RESUME:
        if (g->drain != DRAIN_NONE)
            return reply_int(g, from, -ESHUTDOWN);
        return reply_int(g, from, g->suspended ? reopen(g) : 0);
    case LST_CONNS:
        if (req->size == sizeof(ot_pid))
            memcpy(&g->cfg.conns, ot_msg_data(req), sizeof(ot_pid));
        return reply_int(g, from, 0);
    default:
        return reply_int(g, from, -EINVAL);
    }
}

static ot_gs_ret mgr_cast(void *state, const ot_msg *m) {
    struct mgr *g = state;
    if (m->tag == LST_PARKED && m->size == sizeof(ot_pid)) {
        ot_pid p;
        memcpy(&p, ot_msg_data(m), sizeof p);
        struct acc *a = acc_find(g, p);
        if (a)
            a->parked = true;
        quiet_answer(g, false);
        return ot_gs_ok();
    }
    if (m->tag != LST_STARTED || m->size != 2 * sizeof(ot_pid))
        return ot_gs_ok();
    ot_pid p[2]; /* the connection, its acceptor */
    memcpy(p, ot_msg_data(m), sizeof p);
    struct acc *a = acc_find(g, p[1]);
    if (a && a->slot) {
        a->slot = false;
        g->reserved--;
    }
    g->count++;
    ot_monitor(p[0]); /* a DOWN noproc at once if it is already gone */
    return ot_gs_ok();
}

static void acceptor_down(struct mgr *g, struct acc *a) {
    if (a->slot)
        g->reserved--;
    *a = g->acc[--g->nacc];
    grant(g);
    quiet_answer(g, false);
}

static ot_gs_ret mgr_info(void *state, const ot_msg *m) {
    struct mgr *g = state;
    if (m->tag == LST_QUIET_TMO && ot_pid_eq(m->from, ot_self())) {
        quiet_answer(g, true);
        return ot_gs_ok();
    }
    if (m->tag == LST_DRAIN_TMO && ot_pid_eq(m->from, ot_self())) {
        g->drain = DRAIN_OVER;
        drain_answer(g);
        return ot_gs_ok();
    }
    if (m->tag != OT_TAG_DOWN || m->size != sizeof(ot_down_msg))
        return ot_gs_ok();
    const ot_down_msg *d = ot_msg_data(m);
    for (size_t i = 0; i < g->nacc; i++)
        if (ot_ref_eq(g->acc[i].mon, d->ref)) {
            acceptor_down(g, &g->acc[i]);
            return ot_gs_ok();
        }
    if (g->count > 0)
        g->count--;
    grant(g);
    if (g->count == 0 && g->ndrains) {
        g->drain = DRAIN_OVER;
        drain_answer(g);
    }
    return ot_gs_ok();
}

static int mgr_status(const void *state, char *buf, size_t len) {
    const struct mgr *g = state;
    return snprintf(buf, len, "port %u, %lld connections, %lld slots reserved",
                    (unsigned)g->l->port, (long long)g->count, (long long)g->reserved);
}

static const ot_gen_server mgr_behaviour = {.name = "ot_listener_manager",
                                            .init = mgr_init,
                                            .handle_call = mgr_call,
                                            .handle_cast = mgr_cast,
                                            .handle_info = mgr_info,
                                            .format_status = mgr_status};

int ot__lst_manager_start(void *arg, ot_pid *out) {
    struct lst *l = arg;
    if (!l->sup.v) { /* the listener supervisor's first start: it holds l from now on */
        int rc = ot__lst_hold(l);
        if (rc < 0)
            return rc;
        l->sup = ot_self();
    }
    int rc = ot_gen_server_start_link(&mgr_behaviour, l, NULL, out);
    if (rc == 0)
        l->manager = *out;
    return rc;
}

int ot__lst_manager_of(ot_pid l, ot_pid *out) {
    if (ot_pid_eq(l, ot_self()))
        return -EINVAL; /* a listener never asks itself: not one */
    ot_child_info ci[4];
    size_t n = 0;
    int rc = ot_supervisor_which_children(l, ci, 4, &n);
    if (rc == -ENOTSUP)
        return -EINVAL;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && i < 4; i++)
        if (!strcmp(ci[i].id, LST_ID_MANAGER)) {
            if (ci[i].state != OT_CHILD_RUNNING)
                return -EAGAIN;
            *out = ci[i].pid;
            return 0;
        }
    return -EINVAL;
}
