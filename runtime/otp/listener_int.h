/* Private to the acceptor pool (listener.c: the API and the listener
 * supervisor's child starts; listener_mgr.c: the manager; listener_acc.c:
 * acceptors, connection bodies, the drainer).
 *
 * Lifetime of the shared record: struct lst holds the options and the
 * listening socket's handle. It is read by the listener supervisor's start
 * functions (run in that supervisor), by the manager, and by the
 * connections supervisor's start_extra; each of those three processes holds
 * a reference, released by a resource hook when it exits however it ends,
 * from before it first reads the record (ot_listener_start_link holds one
 * while it starts them). Everyone else (acceptors, the drainer,
 * connections, API callers) gets what it needs by value: from the manager by
 * a call, or in a message. */
#ifndef OT_OTP_LISTENER_INT_H
#define OT_OTP_LISTENER_INT_H

#include <otter.h>
#include <otter/listener.h>
#include <stdatomic.h>

#include "runtime/ext.h"

/* Message tags between the pool's processes (below OT_TAG_USER, unused by
 * the rest of the runtime: tasks use 95-96, supervisors 97-99). */
enum {
    LST_ACQUIRE = 88,   /* acceptor -> manager, call: a slot for the next accept */
    LST_STARTED = 89,   /* connections supervisor -> manager, cast: ot_pid[2], the new
                           connection and the acceptor whose slot it takes */
    LST_CFG = 90,       /* acceptor -> manager, call: reply struct lst_cfg */
    LST_COUNT = 91,     /* call: reply int */
    LST_PORT = 92,      /* call: reply int */
    LST_DRAIN = 93,     /* call: reply int, connections left when the drain ended */
    LST_SUSPEND = 94,   /* call: reply int */
    LST_RESUME = 87,    /* call: reply int */
    LST_CONNS = 86,     /* listener supervisor -> manager, call: the connections supervisor */
    LST_DRAIN_TMO = 85, /* manager -> itself: the drain's time is up */
    LST_CONN_CFG = 84,  /* connections supervisor -> a conn-mode connection: struct lst_conn */
    LST_PARKED = 83,    /* acceptor -> manager, cast: its ot_pid; no accept of its can end */
    LST_QUIET_TMO = 82, /* manager -> itself: stop waiting for acceptors to park */
};

/* Child ids in the listener supervisor. */
#define LST_ID_MANAGER "ot_listener_manager"
#define LST_ID_CONNS "ot_listener_connections"
#define LST_ID_DRAINER "ot_listener_drainer"
#define LST_ID_ACCEPTORS "ot_listener_acceptors"

struct lst {
    atomic_int refs;
    ot_listener_opts o; /* defaults filled in; host points at host[] */
    char host[64];
    uint16_t port;  /* bound */
    ot_sock lsock;  /* the listening socket made by ot_listener_start_link */
    ot_pid sup;     /* the listener supervisor, once its first start ran */
    ot_pid manager; /* the running manager, set by its start function */
};

/* What an acceptor needs, copied from the manager at its start. */
struct lst_cfg {
    ot_sock lsock;
    ot_pid listener, manager, conns;
    void *arg; /* opts.arg, for the handshake */
    int64_t conn_shutdown;
    int conn_type;
    bool limited; /* max_connections is finite: take a slot before each accept */
};

/* Takes a reference for the calling process, dropped when it exits. */
int ot__lst_hold(struct lst *l);
void ot__lst_put(struct lst *l);

/* Start functions of the listener supervisor's children, run in that
 * supervisor, each with arg the struct lst: the manager (listener_mgr.c),
 * the connections supervisor (listener.c), the drainer and the acceptors'
 * supervisor (listener_acc.c). */
int ot__lst_manager_start(void *arg, ot_pid *out);
int ot__lst_conns_start(void *arg, ot_pid *out);
int ot__lst_drainer_start(void *arg, ot_pid *out);
int ot__lst_acceptors_start(void *arg, ot_pid *out);
/* A connection's start (start_extra of the connections supervisor, whose
 * extra is the struct lst; arg: the acceptor's pid, which owns the socket
 * and hands it over once this returned; with no pid it only makes the
 * supervisor hold l). */
int ot__lst_conn_start(void *extra, void *arg, ot_pid *out);

/* Finds the manager of listener l: 0, -ESRCH, -EINVAL (not a listener),
 * -EAGAIN (it is being restarted). */
int ot__lst_manager_of(ot_pid l, ot_pid *out);

static inline void *ot__lst_pid_arg(ot_pid p) {
    return (void *)(uintptr_t)p.v;
}
static inline ot_pid ot__lst_arg_pid(void *a) {
    return (ot_pid){(uint64_t)(uintptr_t)a};
}

#endif
