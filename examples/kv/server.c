/* The server's processes: an acceptor, one stackful process per connection
 * and an active-expiry process.
 *
 * A connection process reads into one input buffer, parses every complete
 * command in it (pipelining), appends each reply to one output buffer and
 * sends that once per batch (or whenever it passes 64 KiB). All its memory is
 * on its process heap, so a crash frees it. Socket ownership: the I/O layer
 * makes every accepted fd belong to the acceptor (otter/io.h has no hand-over),
 * so each connection has a small record, shared with the acceptor, that says
 * whether its fd is closed yet; both read and change it under the record's
 * lock, so the fd is closed exactly once and never touched after its number
 * could have been reused. A connection closes its own fd when it ends
 * normally; the acceptor, which monitors every connection it spawned, closes
 * the fd of one that crashed (or was killed), logs it and counts it. The
 * acceptor never blocks for long: it accepts with a 100 ms timeout and drains
 * its mailbox (DOWN and STOP messages) between accepts. At stop it shuts the
 * sockets down, so connections finish their batch and end on their normal
 * path (never killed while holding a stripe lock), and kills only those that
 * have not ended after 2 s.
 *
 * Limits, as Redis's: a protocol error is answered and the connection
 * closed; a command whose input passes 1 GiB (client-query-buffer-limit) closes
 * the connection; a command left half-sent for read_timeout_ms closes it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <otter.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "examples/kv/commands.h"
#include "examples/kv/kv.h"
#include "examples/kv/resp.h"
#include "examples/kv/store.h"

#define TAG_STOP (OT_TAG_USER + 1)
#define IN_INITIAL 4096
#define OUT_FLUSH (64 * 1024)
#define QUERY_LIMIT ((size_t)1 << 30)
#define BUF_SHRINK ((size_t)1 << 20)

static struct {
    kv_opts opts;
    char bind[64];
    sem_t ready, done;
    int listen_rc;
    uint16_t port;
    ot_pid acceptor, expirer;
    atomic_int running;
    atomic_long conns;
} srv;

long kv_server_connections(void) {
    return atomic_load_explicit(&srv.conns, memory_order_relaxed);
}

/* ---- one connection ------------------------------------------------------ */

/* Shared by a connection and the acceptor; freed by the acceptor after the
 * connection's DOWN. The lock is held only around shutdown/close calls, which
 * never switch, so its holder cannot be descheduled or killed inside. */
struct conn_rec {
    atomic_int lock;
    int fd;
    bool closed;
};

static void rec_lock(struct conn_rec *r) {
    /* Pairs with the release store in rec_unlock. */
    while (atomic_exchange_explicit(&r->lock, 1, memory_order_acquire))
        ot_yield();
}

static void rec_unlock(struct conn_rec *r) {
    /* Pairs with the acquire exchange in rec_lock. */
    atomic_store_explicit(&r->lock, 0, memory_order_release);
}

struct conn {
    int fd;
    kv_client c;
    kv_parser p;
    char *in;
    size_t len, cap;
    kv_arg *args;
    size_t args_cap;
};

/* Sends everything in the output buffer. 0, or -errno (the peer is gone). */
static int flush_out(struct conn *cn) {
    size_t off = 0;
    while (off < cn->c.out.len) {
        ssize_t n = ot_io_send(cn->fd, cn->c.out.buf + off, cn->c.out.len - off, OT_INFINITY);
        if (n <= 0)
            return n < 0 ? (int)n : -EPIPE;
        off += (size_t)n;
    }
    cn->c.out.len = 0;
    return 0;
}

static int run_command(struct conn *cn) {
    kv_parser *p = &cn->p;
    if (p->argc > cn->args_cap) {
        size_t ncap = cn->args_cap ? cn->args_cap : 16;
        while (ncap < p->argc)
            ncap *= 2;
        kv_arg *a = ot_realloc(cn->args, ncap * sizeof *a);
        if (!a)
            return -ENOMEM;
        cn->args = a;
        cn->args_cap = ncap;
    }
    const char *base = cn->in + p->start;
    for (size_t i = 0; i < p->argc; i++)
        cn->args[i] = (kv_arg){base + p->argv[i].off, p->argv[i].len};
    kv_execute(&cn->c, cn->args, p->argc);
    return cn->c.out.oom ? -ENOMEM : 0;
}

/* Runs every complete command in the buffer. 1 to go on reading, 0 to close
 * (QUIT, protocol error), -errno on a failure. */
static int run_batch(struct conn *cn) {
    cn->c.clock.ms = 0; /* read when a command first needs it */
    for (;;) {
        int r = kv_parse(&cn->p, cn->in, cn->len);
        if (r == KV_PARSE_NEED)
            break;
        if (r == KV_PARSE_ERR) {
            kv_reply_error(&cn->c.out, cn->p.err);
            return 0;
        }
        if ((r = run_command(cn)) < 0)
            return r;
        if (cn->c.quit)
            return 0;
        if (cn->c.out.len >= OUT_FLUSH) {
            if ((r = flush_out(cn)) < 0)
                return r;
            cn->c.clock.ms = 0; /* the send may have waited */
        }
    }
    /* Drop what was consumed, so that the buffer only holds a partial command. */
    size_t used = cn->p.start;
    if (used) {
        memmove(cn->in, cn->in + used, cn->len - used);
        cn->len -= used;
        kv_parser_shift(&cn->p, used);
    }
    return 1;
}

static int grow_input(struct conn *cn) {
    if (cn->len < cn->cap)
        return 0;
    if (cn->cap >= QUERY_LIMIT)
        return -ENOBUFS;
    size_t ncap = cn->cap * 2;
    char *n = ot_realloc(cn->in, ncap);
    if (!n)
        return -ENOMEM;
    cn->in = n;
    cn->cap = ncap;
    return 0;
}

/* After a big command or reply, give the memory back once the buffers are
 * nearly empty again (Redis trims idle query buffers the same way). */
static void shrink_buffers(struct conn *cn) {
    if (cn->cap > BUF_SHRINK && cn->len <= IN_INITIAL) {
        char *n = ot_realloc(cn->in, IN_INITIAL);
        if (n) {
            cn->in = n;
            cn->cap = IN_INITIAL;
        }
    }
    if (cn->c.out.cap > BUF_SHRINK && cn->c.out.len == 0)
        kv_out_free(&cn->c.out);
}

static void close_rec(struct conn_rec *rec) {
    rec_lock(rec);
    /* A half-close first, so the peer sees the replies and then the end. */
    shutdown(rec->fd, SHUT_WR);
    ot_io_close(rec->fd);
    rec->closed = true;
    rec_unlock(rec);
}

static void conn_main(void *arg) {
    struct conn_rec *rec = arg;
    struct conn *cn = ot_calloc(1, sizeof *cn);
    int fd = rec->fd;
    if (!cn) {
        close_rec(rec);
        return;
    }
    cn->fd = fd;
    /* Statistics only. */
    uint64_t id = atomic_fetch_add_explicit(&kv_stats.next_client_id, 1, memory_order_relaxed);
    kv_client_init(&cn->c, id + 1);
    kv_parser_init(&cn->p);
    cn->p.realloc_fn = ot_realloc;
    cn->p.free_fn = ot_free;
    cn->cap = IN_INITIAL;
    cn->in = ot_alloc(cn->cap);
    int r = cn->in ? 1 : -ENOMEM;
    while (r > 0) {
        if ((r = grow_input(cn)) < 0)
            break;
        int64_t tmo = kv_parser_partial(&cn->p, cn->len) ? srv.opts.read_timeout_ms : OT_INFINITY;
        ssize_t n = ot_io_recv(fd, cn->in + cn->len, cn->cap - cn->len, tmo);
        if (n <= 0) {
            r = n == 0 ? 0 : (int)n;
            break;
        }
        cn->len += (size_t)n;
        r = run_batch(cn);
        kv_client_flush_stats(&cn->c);
        if (r >= 0 && cn->c.out.len) {
            int s = flush_out(cn);
            if (s < 0)
                r = s;
        }
        shrink_buffers(cn);
    }
    if (r == -ENOBUFS)
        ot_log(OT_LOG_WARNING, "kv: client %llu closed: query buffer over 1 GiB",
               (unsigned long long)cn->c.id);
    else if (r == -ETIMEDOUT)
        ot_log(OT_LOG_INFO, "kv: client %llu closed: half-sent command timed out",
               (unsigned long long)cn->c.id);
    close_rec(rec);
    kv_client_free(&cn->c);
    kv_parser_free(&cn->p);
    ot_free(cn->in);
    ot_free(cn->args);
    ot_free(cn);
}

/* ---- the acceptor ---------------------------------------------------------- */

/* pid -> record of each live connection, open addressing (pid 0 is empty). */
struct connmap {
    uint64_t *pid;
    struct conn_rec **rec;
    size_t cap, n;
};

static size_t slot_of(const struct connmap *m, uint64_t pid) {
    uint64_t h = pid * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 20) & (m->cap - 1);
}

static int map_put(struct connmap *m, uint64_t pid, struct conn_rec *r);

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

static int map_put(struct connmap *m, uint64_t pid, struct conn_rec *r) {
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
static struct conn_rec *map_take(struct connmap *m, uint64_t pid) {
    if (!m->cap)
        return NULL;
    size_t i = slot_of(m, pid);
    while (m->pid[i] && m->pid[i] != pid)
        i = (i + 1) & (m->cap - 1);
    if (!m->pid[i])
        return NULL;
    struct conn_rec *r = m->rec[i];
    m->pid[i] = 0;
    m->n--;
    for (size_t j = (i + 1) & (m->cap - 1); m->pid[j]; j = (j + 1) & (m->cap - 1)) {
        uint64_t p = m->pid[j];
        struct conn_rec *q = m->rec[j];
        m->pid[j] = 0;
        m->n--;
        map_put(m, p, q);
    }
    return r;
}

static void on_down(struct connmap *m, const ot_down_msg *d) {
    struct conn_rec *r = map_take(m, d->pid.v);
    if (!r)
        return;
    /* Statistics only. */
    atomic_fetch_sub_explicit(&srv.conns, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&kv_stats.connected_clients, 1, memory_order_relaxed);
    if (!ot_reason_is_normal(d->reason) && d->reason.kind != OT_KILL &&
        d->reason.kind != OT_KILLED) {
        char why[96];
        ot_reason_format(d->reason, why, sizeof why);
        ot_log(OT_LOG_ERROR, "kv: connection process on fd %d crashed (%s); closing it", r->fd,
               why);
        atomic_fetch_add_explicit(&kv_stats.crashed_connections, 1, memory_order_relaxed);
    }
    rec_lock(r);
    if (!r->closed)
        ot_io_close(r->fd);
    rec_unlock(r);
    free(r);
}

/* Handles queued messages; returns 1 once STOP has arrived. */
static int drain_mailbox(struct connmap *m, int64_t timeout) {
    int stop = 0;
    ot_msg *msg;
    while ((msg = ot_receive(timeout)) != NULL) {
        if (msg->tag == OT_TAG_DOWN && msg->size >= sizeof(ot_down_msg))
            on_down(m, ot_msg_data(msg));
        else if (msg->tag == TAG_STOP)
            stop = 1;
        ot_msg_free(msg);
        timeout = 0;
    }
    return stop;
}

static int spawn_conn(struct connmap *m, int fd, unsigned *rr) {
    /* Room in the map first, so that a spawned connection is always tracked. */
    if ((m->n + 1) * 2 > m->cap && map_grow(m) < 0)
        return -ENOMEM;
    struct conn_rec *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->fd = fd;
    ot_ref ref;
    unsigned ns = ot_schedulers();
    ot_spawn_opts o = {.monitor = true,
                       .monitor_ref = &ref,
                       .scheduler_set = true,
                       .scheduler = (int)((*rr)++ % (ns ? ns : 1)),
                       .behaviour = "kv_conn"};
    ot_pid pid = ot_spawn_opt(conn_main, r, &o);
    if (!pid.v) {
        int e = -errno;
        free(r);
        return e;
    }
    map_put(m, pid.v, r); /* cannot fail: room was made above */
    /* Statistics only. */
    atomic_fetch_add_explicit(&srv.conns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&kv_stats.connected_clients, 1, memory_order_relaxed);
    return 0;
}

/* Waits for DOWNs until no connection is left or `ms` pass; true if none is. */
static bool await_downs(struct connmap *m, int64_t ms) {
    int64_t end = ot_now_ms() + ms;
    while (m->n > 0) {
        int64_t left = end - ot_now_ms();
        ot_msg *msg = left > 0 ? ot_receive_tag(OT_TAG_DOWN, left) : NULL;
        if (!msg)
            return false;
        on_down(m, ot_msg_data(msg));
        ot_msg_free(msg);
    }
    return true;
}

/* Shuts every socket down so that connections end on their normal path; kills
 * what is left after 2 s. */
static void stop_connections(struct connmap *m) {
    for (size_t i = 0; i < m->cap; i++) {
        struct conn_rec *r = m->pid[i] ? m->rec[i] : NULL;
        if (!r)
            continue;
        rec_lock(r);
        if (!r->closed)
            shutdown(r->fd, SHUT_RDWR);
        rec_unlock(r);
    }
    if (await_downs(m, 2000))
        return;
    ot_log(OT_LOG_WARNING, "kv: %zu connections still running 2 s after stop; killing them", m->n);
    for (size_t i = 0; i < m->cap; i++)
        if (m->pid[i])
            ot_exit((ot_pid){m->pid[i]}, OT_REASON(OT_KILL));
    if (!await_downs(m, 5000))
        ot_log(OT_LOG_ERROR, "kv: %zu connections did not end at stop", m->n);
}

static void acceptor_main(void *arg) {
    int lfd = ot_io_listen_tcp(srv.bind, srv.opts.port, srv.opts.backlog);
    if (lfd >= 0) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        if (getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0)
            srv.port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                                      : ((struct sockaddr_in *)&sa)->sin_port);
    }
    srv.listen_rc = lfd < 0 ? lfd : 0;
    /* Set here, before the first accept, so every connection process (spawned
     * by this one) sees it: written by the starting thread after the
     * acceptor ran, INFO and CONFIG GET port raced with it (TSan). */
    kv_stats.port = srv.port;
    sem_post(&srv.ready);
    if (lfd < 0)
        return;
    struct connmap m = {0};
    unsigned rr = 0;
    int64_t last_err_log = 0;
    while (!drain_mailbox(&m, 0)) {
        int fd = ot_io_accept(lfd, NULL, NULL, 100);
        if (fd == -ETIMEDOUT)
            continue;
        if (fd < 0) {
            /* EMFILE and the like: say so at most once a second, back off. */
            if (ot_now_ms() - last_err_log >= 1000) {
                ot_log(OT_LOG_WARNING, "kv: accept failed: %s", ot_strerror(fd));
                last_err_log = ot_now_ms();
            }
            ot_sleep(10);
            continue;
        }
        atomic_fetch_add_explicit(&kv_stats.connections_received, 1, memory_order_relaxed);
        int rc = spawn_conn(&m, fd, &rr);
        if (rc < 0) {
            atomic_fetch_add_explicit(&kv_stats.rejected_connections, 1, memory_order_relaxed);
            ot_io_close(fd);
        }
    }
    ot_io_close(lfd);
    stop_connections(&m);
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
    if (srv.opts.read_timeout_ms <= 0)
        srv.opts.read_timeout_ms = 30000;
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
    srv.acceptor = ot_spawn_opt(acceptor_main, NULL, &(ot_spawn_opts){.behaviour = "kv_acceptor"});
    if (!srv.acceptor.v) {
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
        ot_send(srv.acceptor, TAG_STOP, NULL, 0);
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
    ot_send(srv.acceptor, TAG_STOP, NULL, 0);
    ot_send(srv.expirer, TAG_STOP, NULL, 0);
    for (int i = 0; i < 2; i++)
        while (sem_wait(&srv.done) < 0 && errno == EINTR)
            ;
    /* They posted just before returning: wait for the returns too, so that a
     * caller may ot_stop() the runtime with none of our processes running. */
    while (ot_is_alive(srv.acceptor) || ot_is_alive(srv.expirer))
        usleep(100);
    kv_store_close();
    sem_destroy(&srv.ready);
    sem_destroy(&srv.done);
    ot_log(OT_LOG_INFO, "kv: stopped");
    atomic_store_explicit(&srv.running, 0, memory_order_release);
}
