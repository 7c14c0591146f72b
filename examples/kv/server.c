/* The server's processes: the server process, which runs the acceptor
 * pool (otter/listener.h) and watches every connection; the connections, one
 * handler process each with an active socket (conn.c); and an active-expiry
 * process.
 *
 * A connection is started by the listener's connections supervisor, which
 * calls conn_start: it makes the connection's record (malloc), spawns the
 * handler linked to that supervisor and tells the server process, which
 * monitors it. The server process frees the record at the DOWN, whatever the
 * reason, and counts and logs a crash; the socket was closed by the runtime
 * when its owner exited. At stop the listener stops accepting and shuts its
 * connections down: each traps the exit and ends between two messages (never
 * inside a command, which may hold a stripe lock), and the connections
 * supervisor kills only one that has not ended after 2 s. */
#include <errno.h>
#include <otter.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "examples/kv/commands.h"
#include "examples/kv/conn.h"
#include "examples/kv/kv.h"
#include "examples/kv/store.h"

#define TAG_STOP (OT_TAG_USER + 1)
#define TAG_CONN (OT_TAG_USER + 2)
#define CONN_SHUTDOWN_MS 2000

static struct {
    kv_opts opts;
    char bind[64];
    sem_t ready, done;
    int listen_rc;
    uint16_t port;
    ot_pid server, expirer;
    atomic_int running;
    atomic_long conns;
    atomic_uint next_sched;
} srv;

long kv_server_connections(void) {
    return atomic_load_explicit(&srv.conns, memory_order_relaxed);
}

/* ---- starting a connection (in the listener's connections supervisor) ------- */

struct conn_note {
    ot_pid pid;
    struct kv_conn *cn;
};

static int conn_start(void *arg, ot_pid *out) {
    (void)arg;
    /* Statistics only. */
    atomic_fetch_add_explicit(&kv_stats.connections_received, 1, memory_order_relaxed);
    uint64_t id = atomic_fetch_add_explicit(&kv_stats.next_client_id, 1, memory_order_relaxed);
    struct kv_conn *cn = kv_conn_new(id + 1);
    if (!cn) {
        atomic_fetch_add_explicit(&kv_stats.rejected_connections, 1, memory_order_relaxed);
        return -ENOMEM;
    }
    /* Round-robin over the schedulers, as the connections come. */
    unsigned ns = ot_schedulers();
    unsigned k = atomic_fetch_add_explicit(&srv.next_sched, 1, memory_order_relaxed);
    ot_spawn_opts o = {.link = true,
                       .trap_exit = true,
                       .scheduler_set = true,
                       .scheduler = (int)(k % (ns ? ns : 1)),
                       .behaviour = "kv_conn"};
    ot_pid pid = ot_spawn_handler(kv_conn_handler, cn, &o);
    if (!pid.v) {
        int e = -errno;
        kv_conn_free(cn);
        atomic_fetch_add_explicit(&kv_stats.rejected_connections, 1, memory_order_relaxed);
        return e;
    }
    /* Statistics, and the count kv_server_connections reports. */
    atomic_fetch_add_explicit(&srv.conns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&kv_stats.connected_clients, 1, memory_order_relaxed);
    kv_conn_await_handshake(pid);
    struct conn_note note = {pid, cn};
    ot_send(srv.server, TAG_CONN, &note, sizeof note);
    *out = pid;
    return 0;
}

/* ---- the server process -------------------------------------------------------- */

/* pid -> record of each live connection, open addressing (pid 0 is empty). */
struct connmap {
    uint64_t *pid;
    struct kv_conn **rec;
    size_t cap, n;
};

static size_t slot_of(const struct connmap *m, uint64_t pid) {
    uint64_t h = pid * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 20) & (m->cap - 1);
}

static int map_put(struct connmap *m, uint64_t pid, struct kv_conn *r);

static int map_grow(struct connmap *m) {
    struct connmap o = *m;
    size_t cap = o.cap ? o.cap * 2 : 1024;
    m->pid = calloc(cap, sizeof *m->pid);
    m->rec = calloc(cap, sizeof *m->rec);
    if (!m->pid || !m->rec) {
        free(m->pid);
        free(m->rec);
        *m = o;
        return -ENOMEM;
    }
    m->cap = cap;
    m->n = 0;
    for (size_t i = 0; i < o.cap; i++)
        if (o.pid[i])
            map_put(m, o.pid[i], o.rec[i]);
    free(o.pid);
    free(o.rec);
    return 0;
}

static int map_put(struct connmap *m, uint64_t pid, struct kv_conn *r) {
    if ((m->n + 1) * 2 > m->cap && map_grow(m) < 0)
        return -ENOMEM;
    size_t i = slot_of(m, pid);
    while (m->pid[i])
        i = (i + 1) & (m->cap - 1);
    m->pid[i] = pid;
    m->rec[i] = r;
    m->n++;
    return 0;
}

/* Removes pid; its record, or NULL. Backward-shift deletion keeps probes short. */
static struct kv_conn *map_take(struct connmap *m, uint64_t pid) {
    if (!m->cap)
        return NULL;
    size_t i = slot_of(m, pid);
    while (m->pid[i] && m->pid[i] != pid)
        i = (i + 1) & (m->cap - 1);
    if (!m->pid[i])
        return NULL;
    struct kv_conn *r = m->rec[i];
    m->pid[i] = 0;
    m->n--;
    for (size_t j = (i + 1) & (m->cap - 1); m->pid[j]; j = (j + 1) & (m->cap - 1)) {
        uint64_t p = m->pid[j];
        struct kv_conn *q = m->rec[j];
        m->pid[j] = 0;
        m->n--;
        map_put(m, p, q);
    }
    return r;
}

static void on_down(struct connmap *m, const ot_down_msg *d) {
    struct kv_conn *cn = map_take(m, d->pid.v);
    if (!cn)
        return;
    if (m->n == 0 && m->cap > 1024) {
        /* The last of many connections ended: the map's memory goes back
         * (it grows again with the next crowd). */
        free(m->pid);
        free(m->rec);
        *m = (struct connmap){0};
    }
    /* Statistics only. */
    atomic_fetch_sub_explicit(&srv.conns, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&kv_stats.connected_clients, 1, memory_order_relaxed);
    if (!ot_reason_is_normal(d->reason) && d->reason.kind != OT_KILL &&
        d->reason.kind != OT_KILLED && d->reason.kind != OT_SHUTDOWN) {
        char why[96];
        ot_reason_format(d->reason, why, sizeof why);
        ot_log(OT_LOG_ERROR, "kv: connection process crashed (%s); its socket is closed", why);
        atomic_fetch_add_explicit(&kv_stats.crashed_connections, 1, memory_order_relaxed);
    }
    kv_conn_free(cn);
}

/* One message to the server process; true for STOP. */
static bool handle(struct connmap *m, ot_msg *msg) {
    bool stop = false;
    if (msg->tag == TAG_CONN && msg->size == sizeof(struct conn_note)) {
        const struct conn_note *n = ot_msg_data(msg);
        if (map_put(m, n->pid.v, n->cn) == 0) {
            ot_monitor(n->pid); /* its DOWN (noproc if it is gone already) frees it */
        } else {
            /* Untracked, its record could never be freed safely: the
             * connection is ended and the record left (out of memory). */
            ot_log(OT_LOG_ERROR, "kv: out of memory tracking a connection; killing it");
            ot_exit(n->pid, OT_REASON(OT_KILL));
            atomic_fetch_sub_explicit(&srv.conns, 1, memory_order_relaxed);
            atomic_fetch_sub_explicit(&kv_stats.connected_clients, 1, memory_order_relaxed);
        }
    } else if (msg->tag == OT_TAG_DOWN && msg->size >= sizeof(ot_down_msg)) {
        on_down(m, ot_msg_data(msg));
    } else if (msg->tag == TAG_STOP) {
        stop = true;
    }
    ot_msg_free(msg);
    return stop;
}

static void server_main(void *arg) {
    (void)arg;
    /* Written here, before any connection can start (conn_start reads it);
     * the starting thread reads it after the ready semaphore. */
    srv.server = ot_self();
    ot_trap_exit(true);
    unsigned ns = ot_schedulers();
    ot_listener_opts lo = {.host = srv.bind,
                           .port = srv.opts.port,
                           .backlog = srv.opts.backlog,
                           .num_acceptors = (int)(ns < 2 ? 2 : ns),
                           .max_connections = OT_INFINITY,
                           .start = conn_start,
                           .conn_shutdown = CONN_SHUTDOWN_MS,
                           .drain_timeout_ms = 0};
    ot_pid l = OT_NOPID;
    int rc = ot_listener_start_link(&lo, &l);
    if (rc == 0) {
        int port = ot_listener_port(l);
        if (port > 0)
            srv.port = (uint16_t)port;
        else
            rc = port;
    }
    srv.listen_rc = rc < 0 ? rc : 0;
    /* Set here, before the first connection, so every connection process sees
     * it: written by the starting thread after the server process ran, INFO
     * and CONFIG GET port raced with it (TSan). */
    kv_stats.port = srv.port;
    sem_post(&srv.ready);
    if (rc < 0)
        return;
    struct connmap m = {0};
    while (!handle(&m, ot_receive(OT_INFINITY)))
        ;
    /* Stop accepting, shut the connections down (they end between two
     * messages), then take every note and DOWN still queued. */
    int left = ot_listener_stop(l, OT_INFINITY);
    if (left < 0)
        ot_log(OT_LOG_ERROR, "kv: stopping the listener: %s", ot_strerror(left));
    int64_t end = ot_now_ms() + CONN_SHUTDOWN_MS + 5000;
    while (atomic_load_explicit(&srv.conns, memory_order_relaxed) > 0 || m.n > 0) {
        int64_t wait = end - ot_now_ms();
        ot_msg *msg = wait > 0 ? ot_receive(wait) : NULL;
        if (!msg) {
            ot_log(OT_LOG_ERROR, "kv: %zu connections did not end at stop", m.n);
            break;
        }
        handle(&m, msg);
    }
    free(m.pid);
    free(m.rec);
    sem_post(&srv.done);
}

/* ---- active expiry ----------------------------------------------------------- */

/* Redis's active expiry, simplified: ten times a second sample 20 keys and go
 * on while more than a quarter of a sample had expired, for at most 25 ms. */
static void expirer_main(void *arg) {
    for (;;) {
        ot_msg *m = ot_receive_tag(TAG_STOP, 100);
        if (m) {
            ot_msg_free(m);
            break;
        }
        int64_t t0 = ot_now_ms();
        while (kv_store_expire_step(20, kv_now_ms()) > 5 && ot_now_ms() - t0 < 25)
            ot_yield();
    }
    sem_post(&srv.done);
}

/* ---- start and stop ----------------------------------------------------------- */

int kv_server_start(const kv_opts *o, uint16_t *bound_port) {
    int expect = 0;
    /* Pairs with the release store in kv_server_stop. */
    if (!atomic_compare_exchange_strong_explicit(&srv.running, &expect, 1, memory_order_acq_rel,
                                                 memory_order_acquire))
        return -EALREADY;
    srv.opts = o ? *o : (kv_opts){0};
    snprintf(srv.bind, sizeof srv.bind, "%s", srv.opts.bind ? srv.opts.bind : "127.0.0.1");
    srv.opts.bind = srv.bind;
    if (srv.opts.backlog <= 0)
        srv.opts.backlog = 511;
    kv_conn_set_read_timeout(srv.opts.read_timeout_ms);
    memset(&kv_stats, 0, sizeof kv_stats);
    kv_stats.start_ms = kv_now_ms();
    kv_stats.enable_debug = srv.opts.enable_debug;
    snprintf(kv_stats.bind, sizeof kv_stats.bind, "%s", srv.bind);
    atomic_store_explicit(&srv.conns, 0, memory_order_relaxed);
    int rc = kv_store_open();
    if (rc < 0)
        goto fail;
    sem_init(&srv.ready, 0, 0);
    sem_init(&srv.done, 0, 0);
    ot_pid sp = ot_spawn_opt(server_main, NULL, &(ot_spawn_opts){.behaviour = "kv_server"});
    if (!sp.v) {
        rc = -errno;
        goto fail_store;
    }
    while (sem_wait(&srv.ready) < 0 && errno == EINTR)
        ;
    if (srv.listen_rc < 0) {
        rc = srv.listen_rc;
        goto fail_store;
    }
    srv.expirer = ot_spawn_opt(expirer_main, NULL, &(ot_spawn_opts){.behaviour = "kv_expiry"});
    if (!srv.expirer.v) {
        rc = -errno;
        ot_send(srv.server, TAG_STOP, NULL, 0);
        while (sem_wait(&srv.done) < 0 && errno == EINTR)
            ;
        goto fail_store;
    }
    if (bound_port)
        *bound_port = srv.port;
    ot_log(OT_LOG_INFO, "kv: listening on %s:%u", srv.bind, srv.port);
    return 0;
fail_store:
    kv_store_close();
fail:
    atomic_store_explicit(&srv.running, 0, memory_order_release);
    return rc;
}

void kv_server_stop(void) {
    /* Pairs with the exchange in kv_server_start. */
    if (!atomic_load_explicit(&srv.running, memory_order_acquire))
        return;
    ot_send(srv.server, TAG_STOP, NULL, 0);
    ot_send(srv.expirer, TAG_STOP, NULL, 0);
    for (int i = 0; i < 2; i++)
        while (sem_wait(&srv.done) < 0 && errno == EINTR)
            ;
    /* They posted just before returning: wait for the returns too, so that a
     * caller may ot_stop() the runtime with none of our processes running. */
    while (ot_is_alive(srv.server) || ot_is_alive(srv.expirer))
        usleep(100);
    kv_store_close();
    sem_destroy(&srv.ready);
    sem_destroy(&srv.done);
    ot_log(OT_LOG_INFO, "kv: stopped");
    atomic_store_explicit(&srv.running, 0, memory_order_release);
}
