/* The acceptor pool's public calls and the listener supervisor itself: the
 * options checked and copied into the shared record, the listening socket
 * opened in the caller (so a port in use is the caller's -EADDRINUSE with
 * nothing started), the supervisor started with its four children, and the
 * socket then handed to the supervisor, whose exit closes it. The record's
 * references are counted here (see listener_int.h for who holds one). */
#include "runtime/otp/listener_int.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define NUM_ACCEPTORS_MAX 1024

struct hold {
    struct ot__res res;
    struct lst *l;
};

void ot__lst_put(struct lst *l) {
    /* acq_rel: the last put sees every write the other holders made */
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
        free(l);
}

static void hold_release(struct ot__res *r, ot_pid owner) {
    (void)owner;
    struct hold *h = (struct hold *)r;
    ot__lst_put(h->l);
    free(h);
}

int ot__lst_hold(struct lst *l) {
    struct hold *h = malloc(sizeof *h);
    if (!h)
        return -ENOMEM;
    h->res.release = hold_release;
    h->l = l;
    /* relaxed: the caller already holds l through a live holder */
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    int rc = ot__res_add(&h->res);
    if (rc < 0) {
        atomic_fetch_sub_explicit(&l->refs, 1, memory_order_relaxed);
        free(h);
    }
    return rc;
}

static bool bad_timeout(int64_t t) {
    return t < 0 && t != OT_INFINITY;
}

/* Checks o and fills l->o with it and the defaults. */
static int take_opts(const ot_listener_opts *o, struct lst *l) {
    if (!!o->start == !!o->conn || o->backlog < 0 || o->num_acceptors < 0 ||
        o->num_acceptors > NUM_ACCEPTORS_MAX || bad_timeout(o->max_connections) ||
        bad_timeout(o->drain_timeout_ms) ||
        (o->conn_shutdown < 0 && o->conn_shutdown != OT_INFINITY &&
         o->conn_shutdown != OT_BRUTAL_KILL) ||
        (o->conn_type != OT_WORKER && o->conn_type != OT_SUPERVISOR))
        return -EINVAL;
    const char *host = o->host ? o->host : "0.0.0.0";
    if (strlen(host) >= sizeof l->host)
        return -EINVAL;
    l->o = *o;
    strcpy(l->host, host);
    l->o.host = l->host;
    if (!l->o.backlog)
        l->o.backlog = 1024;
    if (!l->o.num_acceptors)
        l->o.num_acceptors = 10;
    if (!l->o.max_connections)
        l->o.max_connections = 1024;
    return 0;
}

static int bound_port(ot_sock s) {
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int fd = ot_sock_fd(s);
    if (fd < 0)
        return fd;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -errno;
    if (sa.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    return ntohs(((struct sockaddr_in *)&sa)->sin_port);
}

int ot__lst_conns_start(void *arg, ot_pid *out) {
    struct lst *l = arg;
    ot_dynsup_opts d = {.has_extra = true, .extra = l};
    int rc = ot_dynsup_start_link(&d, NULL, out);
    if (rc != 0)
        return rc;
    /* a start with no socket: the supervisor holds l before it can read it */
    ot_child_spec hold = {.start_extra = ot__lst_conn_start, .restart = OT_TEMPORARY};
    ot_pid none;
    rc = ot_dynsup_start_child(*out, &hold, &none);
    ot_msg *r = NULL; /* the manager learns it before any acceptor asks */
    if (rc == OT_IGNORED)
        rc = ot_call(l->manager, LST_CONNS, out, sizeof *out, &r, OT_INFINITY);
    else if (rc >= 0)
        rc = -EPROTO;
    if (rc == 0) {
        ot_msg_free(r);
    } else { /* a start that fails leaves nothing running */
        ot_unlink(*out);
        ot_exit(*out, OT_REASON(OT_KILL));
    }
    return rc;
}

static int start_sup(struct lst *l, ot_pid *out) {
    int64_t drain = l->o.drain_timeout_ms;
    /* Stopped in reverse: the drainer first (it closes the listening socket,
     * so every acceptor's accept ends, and waits), then the acceptors, parked
     * by then with no socket in hand, then what connections are left. */
    ot_child_spec c[4] = {
        {.id = LST_ID_MANAGER, .start = ot__lst_manager_start, .arg = l},
        {.id = LST_ID_CONNS, .start = ot__lst_conns_start, .arg = l, .type = OT_SUPERVISOR},
        {.id = LST_ID_ACCEPTORS, .start = ot__lst_acceptors_start, .arg = l, .type = OT_SUPERVISOR},
        {.id = LST_ID_DRAINER,
         .start = ot__lst_drainer_start,
         .arg = l,
         /* time for the whole drain, and then some for the call itself */
         .shutdown = drain == OT_INFINITY || drain > INT64_MAX / 2 ? OT_INFINITY : drain + 5000},
    };
    ot_sup_flags f = {.strategy = OT_REST_FOR_ONE};
    return ot_supervisor_start_link(&f, c, 4, NULL, out);
}

int ot_listener_start_link(const ot_listener_opts *o, ot_pid *out) {
    if (!o || !out)
        return -EINVAL;
    if (!ot_self().v)
        return -EPERM;
    struct lst *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    atomic_init(&l->refs, 1); /* ours, until the supervisor and manager hold it */
    int rc = take_opts(o, l);
    if (rc == 0)
        rc = ot_sock_listen_tcp(l->host, o->port, l->o.backlog, &l->lsock);
    if (rc < 0) {
        free(l);
        return rc;
    }
    rc = bound_port(l->lsock);
    if (rc > 0) {
        l->port = (uint16_t)rc;
        rc = start_sup(l, out);
    }
    if (rc == 0) {
        rc = ot_sock_controlling_process(l->lsock, *out);
        if (rc < 0) /* it died already; say so, and leave nothing running */
            ot_supervisor_stop(*out, OT_REASON(OT_NORMAL), OT_INFINITY);
    } else {
        ot_sock_close(l->lsock);
    }
    ot__lst_put(l);
    return rc == 0 ? 0 : rc > 0 ? -ECHILD : rc;
}

static int child_start(void *arg, ot_pid *out) {
    return ot_listener_start_link(arg, out);
}

ot_child_spec ot_listener_child_spec(const ot_listener_opts *o) {
    return (ot_child_spec){.id = "ot_listener",
                           .start = child_start,
                           .arg = (void *)(uintptr_t)o,
                           .restart = OT_PERMANENT,
                           .shutdown = OT_INFINITY,
                           .type = OT_SUPERVISOR};
}

/* A call to l's manager whose reply is an int: the int, or -errno. */
static int mgr_call_int(ot_pid l, uint32_t tag, int64_t timeout_ms) {
    if (!ot_self().v)
        return -EPERM;
    ot_pid m;
    int rc = ot__lst_manager_of(l, &m);
    if (rc < 0)
        return rc;
    ot_msg *r = NULL;
    rc = ot_call(m, tag, NULL, 0, &r, timeout_ms);
    if (rc < 0)
        return rc == -ECONNRESET ? -ESRCH : rc;
    int v = -EPROTO;
    if (r->size == sizeof v)
        memcpy(&v, ot_msg_data(r), sizeof v);
    ot_msg_free(r);
    return v;
}

int ot_listener_port(ot_pid l) {
    return mgr_call_int(l, LST_PORT, OT_INFINITY);
}

int ot_listener_count_connections(ot_pid l) {
    return mgr_call_int(l, LST_COUNT, OT_INFINITY);
}

int ot_listener_suspend(ot_pid l) {
    ot_pid m;
    int rc = ot_self().v ? ot__lst_manager_of(l, &m) : -EPERM;
    if (rc < 0)
        return rc;
    rc = mgr_call_int(l, LST_SUSPEND, OT_INFINITY); /* first: the accepts end */
    if (rc < 0)
        return rc;
    return ot_supervisor_terminate_child(l, LST_ID_ACCEPTORS);
}

int ot_listener_resume(ot_pid l) {
    int rc = mgr_call_int(l, LST_RESUME, OT_INFINITY);
    if (rc < 0)
        return rc;
    ot_pid p;
    rc = ot_supervisor_restart_child(l, LST_ID_ACCEPTORS, &p);
    return rc == -EBUSY ? 0 : rc;
}

static int64_t left_ms(int64_t deadline) {
    if (deadline == INT64_MAX)
        return OT_INFINITY;
    int64_t now = ot_now_ms();
    return deadline > now ? deadline - now : 0;
}

int ot_listener_stop(ot_pid l, int64_t timeout_ms) {
    if (bad_timeout(timeout_ms))
        return -EINVAL;
    int64_t deadline = INT64_MAX;
    if (timeout_ms != OT_INFINITY)
        deadline = ot_now_ms() + (timeout_ms > INT64_MAX / 4 ? INT64_MAX / 4 : timeout_ms);
    ot_pid m;
    int rc = ot_self().v ? ot__lst_manager_of(l, &m) : -EPERM;
    if (rc < 0)
        return rc;
    /* the drain's order, as the supervisor's own stop does it: the socket
     * closed (the accepts end), no acceptor, the drain, then the rest */
    rc = mgr_call_int(l, LST_SUSPEND, OT_INFINITY);
    if (rc == 0)
        rc = ot_supervisor_terminate_child(l, LST_ID_ACCEPTORS);
    if (rc < 0)
        return rc;
    int64_t t = left_ms(deadline);
    int left = mgr_call_int(l, LST_DRAIN, t > OT_CALL_TIMEOUT_MAX ? OT_INFINITY : t);
    if (left < 0)
        return left;
    rc = ot_supervisor_stop(l, OT_REASON(OT_NORMAL), left_ms(deadline));
    return rc < 0 ? rc : left;
}

int ot_listener_handshake(int64_t timeout_ms, ot_sock *out, ot_listener_handshake_msg *hs) {
    if (!out || bad_timeout(timeout_ms))
        return -EINVAL;
    if (!ot_self().v)
        return -EPERM;
    for (;;) {
        ot_msg *m = ot_receive_tag(OT_TAG_SOCK_HANDSHAKE, timeout_ms);
        if (!m)
            return -ETIMEDOUT;
        if (m->size != sizeof(ot_listener_handshake_msg)) {
            ot_msg_free(m); /* not one of ours */
            continue;
        }
        ot_listener_handshake_msg h;
        memcpy(&h, ot_msg_data(m), sizeof h);
        ot_msg_free(m);
        *out = h.sock;
        if (hs)
            *hs = h;
        return 0;
    }
}
