/* One client connection: a handler process that owns its socket in active
 * mode (OT_ACTIVE_N, re-armed on OT_TAG_SOCK_PASSIVE) and parses RESP from
 * the OT_TAG_SOCK_DATA messages as they come.
 *
 * Memory, and why: between commands a connection holds its record (48
 * bytes of malloc: socket handle, client id, name) and nothing else: no
 * input buffer (the socket has none either; the runtime receives into its
 * provided buffers), no output buffer, no parser arguments, and no process
 * heap, whose first lease would cost a 64 KiB chunk. Each data message is
 * parsed in place; the bytes of a command still partial at the end of a
 * message are copied to the process heap and kept only until it is whole.
 * The replies of one message go out in one send, from an output buffer (and
 * argument array) taken for the batch from the scheduler thread's spare and
 * given back after it, so a busy connection reuses warm memory and an idle
 * one holds none. A crash frees the heap part at the process's exit, and the
 * server frees the record and whatever the batch had taken at the DOWN.
 *
 * Limits, as Redis's: a protocol error is answered and the connection
 * closed; a command whose input passes 1 GiB (client-query-buffer-limit)
 * closes the connection; a command left half-sent closes it only when a read
 * timeout was asked for (kv_conn_set_read_timeout; Redis's timeout is 0 by
 * default, and so is ours). Closing: a half-close first, so the peer sees
 * the replies and then the end; the socket itself is closed by the runtime
 * when the process exits. */
#include "examples/kv/conn.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "examples/kv/commands.h"
#include "examples/kv/resp.h"

#define TAG_READ_TIMEOUT (OT_TAG_USER + 10)
#define TAG_HANDSHAKE_TIMEOUT (OT_TAG_USER + 11)
#define ACTIVE_N 16
#define OUT_FLUSH (64 * 1024)
#define QUERY_LIMIT ((size_t)1 << 30)
#define IN_MIN 512
#define SCRATCH_KEEP ((size_t)1 << 20)

static int64_t read_timeout_ms;

void kv_conn_await_handshake(ot_pid pid) {
    ot_send_after(pid, OT_LISTENER_HANDSHAKE_MS, TAG_HANDSHAKE_TIMEOUT, NULL, 0);
}

void kv_conn_set_read_timeout(int64_t ms) {
    read_timeout_ms = ms > 0 ? ms : 0;
}

/* What a batch works with: the client's state for the commands (its output
 * buffer among it), the parser and the argument array. */
struct scratch {
    kv_client c;
    kv_parser p; /* a fresh command's parser; its argv is kept for the next batch */
    kv_arg *args;
    size_t args_cap;
};

/* A command still partial at the end of a received chunk: its parser and its
 * bytes, on the process heap, from that chunk until the command is whole. */
struct partial {
    kv_parser p;
    ot_ref timer;      /* the read timeout's, while armed */
    uint64_t timer_id; /* in the timer's message: a late one is recognised */
    size_t len, cap;
    char buf[];
};

/* Between commands, all a connection holds besides its process and socket. */
struct kv_conn {
    ot_sock sock; /* OT_NOSOCK until the listener's handshake */
    uint64_t id;
    char *name; /* CLIENT SETNAME, on the process heap; NULL if none */
    size_t name_len;
    struct partial *part; /* NULL between commands */
    struct scratch *scr;  /* taken for the running batch; NULL otherwise */
};

static atomic_uint_fast64_t next_timer_id = 1;

/* ---- the scheduler thread's spare scratch ---------------------------------- */

/* One spare per scheduler thread, in a thread-specific slot whose destructor
 * frees it when the thread ends. A batch takes it and gives it back when
 * done; a batch that parks in a send may resume on another thread, and the
 * thread it parked on may start another batch meanwhile, which then makes a
 * scratch of its own: so the spare is taken (the slot emptied), never shared,
 * and a second one given back to a full slot is freed. (The slot is read
 * through pthread_getspecific, never a thread-local address the compiler
 * could keep across a park.) */
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void scratch_free(struct scratch *s);

static void spare_dtor(void *p) {
    scratch_free(p);
}

static void spare_init(void) {
    /* Without a key every batch makes and frees its own scratch. */
    if (pthread_key_create(&spare_key, spare_dtor) != 0)
        spare_key = (pthread_key_t)-1;
}

static struct scratch *scratch_take(void) {
    pthread_once(&spare_once, spare_init);
    struct scratch *s = NULL;
    if (spare_key != (pthread_key_t)-1 && (s = pthread_getspecific(spare_key)) != NULL) {
        pthread_setspecific(spare_key, NULL);
        return s;
    }
    s = calloc(1, sizeof *s);
    if (s) {
        kv_client_init(&s->c, 0);
        kv_out_init(&s->c.out); /* malloc's realloc and free, not the process heap's */
        kv_parser_init(&s->p);  /* the same for argv */
    }
    return s;
}

static void scratch_free(struct scratch *s) {
    kv_out_free(&s->c.out);
    kv_parser_free(&s->p);
    free(s->args);
    free(s);
}

static void scratch_give(struct scratch *s) {
    s->c.out.len = 0;
    s->c.out.oom = 0;
    /* After a big reply or a long command, the memory goes back. */
    if (s->c.out.cap > SCRATCH_KEEP)
        kv_out_free(&s->c.out);
    if (s->args_cap > 4096) {
        free(s->args);
        s->args = NULL;
        s->args_cap = 0;
    }
    if (s->p.cap > 4096)
        kv_parser_free(&s->p);
    if (spare_key == (pthread_key_t)-1 || pthread_getspecific(spare_key) ||
        pthread_setspecific(spare_key, s) != 0)
        scratch_free(s);
}

/* ---- records ------------------------------------------------------------------ */

struct kv_conn *kv_conn_new(uint64_t id) {
    struct kv_conn *cn = calloc(1, sizeof *cn);
    if (cn)
        cn->id = id;
    return cn;
}

void kv_conn_free(struct kv_conn *cn) {
    if (!cn)
        return;
    /* The process has exited: its heap (name, part) is gone with it, but
     * not the parser's argv (malloc) of a partial command. */
    if (cn->part)
        kv_parser_free(&cn->part->p);
    if (cn->scr)
        scratch_free(cn->scr);
    free(cn);
}

/* ---- a batch ------------------------------------------------------------------ */

/* Sends the batch's replies. 0, or -errno (the peer is gone). */
static int flush_out(struct kv_conn *cn) {
    kv_out *o = &cn->scr->c.out;
    if (!o->len)
        return 0;
    ssize_t n = ot_sock_send(cn->sock, o->buf, o->len, OT_INFINITY);
    o->len = 0;
    return n < 0 ? (int)n : 0;
}

static int run_command(struct kv_conn *cn, kv_parser *p, const char *buf) {
    struct scratch *s = cn->scr;
    if (p->argc > s->args_cap) {
        size_t ncap = s->args_cap ? s->args_cap : 16;
        while (ncap < p->argc)
            ncap *= 2;
        kv_arg *a = realloc(s->args, ncap * sizeof *a);
        if (!a)
            return -ENOMEM;
        s->args = a;
        s->args_cap = ncap;
    }
    const char *base = buf + p->start;
    for (size_t i = 0; i < p->argc; i++)
        s->args[i] = (kv_arg){base + p->argv[i].off, p->argv[i].len};
    kv_execute(&s->c, s->args, p->argc);
    return s->c.out.oom ? -ENOMEM : 0;
}

/* Runs every complete command in buf[0..len). 1 to go on, 0 to close after
 * the replies (QUIT, protocol error), -errno on a failure. */
static int run_commands(struct kv_conn *cn, kv_parser *p, char *buf, size_t len) {
    kv_client *c = &cn->scr->c;
    for (;;) {
        int r = kv_parse(p, buf, len);
        if (r == KV_PARSE_NEED)
            return 1;
        if (r == KV_PARSE_ERR) {
            kv_reply_error(&c->out, p->err);
            return 0;
        }
        if ((r = run_command(cn, p, buf)) < 0)
            return r;
        if (c->quit)
            return 0;
        if (c->out.len >= OUT_FLUSH) {
            if ((r = flush_out(cn)) < 0)
                return r;
            c->clock.ms = 0; /* the send may have waited */
        }
    }
}

/* A fresh parser in the scratch, keeping the argv it had. */
static void parser_reset(kv_parser *p) {
    kv_slice *argv = p->argv;
    size_t cap = p->cap;
    kv_parser_init(p);
    p->argv = argv;
    p->cap = cap;
}

/* The chunk data[0..n) ended inside a command: its bytes from the parser's
 * start and the parser itself move to a new partial record. 0 or -ENOMEM. */
static int start_partial(struct kv_conn *cn, const char *data, size_t n) {
    kv_parser *p = &cn->scr->p;
    size_t left = n - p->start;
    size_t cap = left < IN_MIN ? IN_MIN : left;
    struct partial *pt = ot_alloc(sizeof *pt + cap);
    if (!pt)
        return -ENOMEM;
    memset(pt, 0, sizeof *pt);
    memcpy(pt->buf, data + p->start, left);
    pt->p = *p;
    kv_parser_shift(&pt->p, p->start);
    pt->len = left;
    pt->cap = cap;
    /* The argv went with the parser. */
    kv_parser_init(p);
    cn->part = pt;
    return 0;
}

/* Appends n bytes to the partial command. 0, -ENOBUFS past the query limit,
 * -ENOMEM. */
static int append_partial(struct kv_conn *cn, const char *data, size_t n) {
    struct partial *pt = cn->part;
    if (pt->len + n > QUERY_LIMIT)
        return -ENOBUFS;
    if (pt->cap - pt->len < n) {
        size_t ncap = pt->cap;
        while (ncap - pt->len < n)
            ncap *= 2;
        pt = ot_realloc(pt, sizeof *pt + ncap);
        if (!pt)
            return -ENOMEM;
        pt->cap = ncap;
        cn->part = pt;
    }
    memcpy(pt->buf + pt->len, data, n);
    pt->len += n;
    return 0;
}

static void end_partial(struct kv_conn *cn) {
    struct partial *pt = cn->part;
    if (!pt)
        return;
    if (pt->timer.v)
        ot_cancel_timer(pt->timer);
    kv_parser_free(&pt->p);
    ot_free(pt);
    cn->part = NULL;
}

/* A partial command got bytes (or began): its read timeout starts again. */
static void arm_timer(struct kv_conn *cn) {
    struct partial *pt = cn->part;
    if (pt->timer.v)
        ot_cancel_timer(pt->timer);
    /* Unique across the program, so a message of a timer cancelled too late
     * never matches a later partial command. */
    pt->timer_id = atomic_fetch_add_explicit(&next_timer_id, 1, memory_order_relaxed);
    pt->timer = ot_send_after(ot_self(), read_timeout_ms, TAG_READ_TIMEOUT, &pt->timer_id,
                              sizeof pt->timer_id);
}

/* One data message. 1 to go on, 0 to close, -errno on a failure. */
static int on_data(struct kv_conn *cn, char *data, size_t n) {
    struct scratch *s = cn->scr = scratch_take();
    if (!s)
        return -ENOMEM;
    kv_client *c = &s->c;
    c->id = cn->id;
    c->name = cn->name;
    c->name_len = cn->name_len;
    c->quit = 0;
    c->clock.ms = 0; /* read when a command first needs it */
    int r;
    if (!cn->part) {
        parser_reset(&s->p);
        r = run_commands(cn, &s->p, data, n);
        if (r > 0 && kv_parser_partial(&s->p, n))
            r = start_partial(cn, data, n) < 0 ? -ENOMEM : 1;
    } else if ((r = append_partial(cn, data, n)) == 0) {
        struct partial *pt = cn->part;
        r = run_commands(cn, &pt->p, pt->buf, pt->len);
        if (r > 0 && kv_parser_partial(&pt->p, pt->len)) {
            size_t used = pt->p.start;
            if (used) {
                memmove(pt->buf, pt->buf + used, pt->len - used);
                pt->len -= used;
                kv_parser_shift(&pt->p, used);
            }
        } else {
            end_partial(cn);
        }
    }
    cn->name = c->name; /* CLIENT SETNAME may have changed it */
    cn->name_len = c->name_len;
    kv_client_flush_stats(c);
    if (r >= 0) {
        int e = flush_out(cn);
        if (e < 0)
            r = e;
    }
    cn->scr = NULL;
    scratch_give(s);
    if (r > 0 && read_timeout_ms && cn->part)
        arm_timer(cn);
    return r;
}

/* Ends the connection: replies were sent; the peer sees the end after them. */
static int finish(struct kv_conn *cn, int r) {
    if (r == -ENOBUFS)
        ot_log(OT_LOG_WARNING, "kv: client %llu closed: query buffer over 1 GiB",
               (unsigned long long)cn->id);
    if (!ot_sock_eq(cn->sock, OT_NOSOCK))
        ot_sock_shutdown(cn->sock, SHUT_WR);
    end_partial(cn);
    return 1; /* exit normal; the socket closes with its owner */
}

int kv_conn_handler(void *state, const ot_msg *m) {
    struct kv_conn *cn = state;
    switch (m->tag) {
    case OT_TAG_SOCK_HANDSHAKE: {
        const ot_listener_handshake_msg *hs = ot_msg_data(m);
        cn->sock = hs->sock;
        int r = ot_sock_set_active(cn->sock, OT_ACTIVE_N, ACTIVE_N);
        return r < 0 ? finish(cn, r) : 0;
    }
    case OT_TAG_SOCK_DATA: {
        ot_sock_msg *d = ot_msg_data(m);
        if (!ot_sock_eq(d->sock, cn->sock))
            return 0;
        int r = on_data(cn, d->data, d->len);
        return r > 0 ? 0 : finish(cn, r);
    }
    case OT_TAG_SOCK_PASSIVE: {
        int r = ot_sock_set_active(cn->sock, OT_ACTIVE_N, ACTIVE_N);
        return r < 0 ? finish(cn, r) : 0;
    }
    case OT_TAG_SOCK_CLOSED:
    case OT_TAG_SOCK_ERROR:
        return finish(cn, 0);
    case OT_TAG_EXIT:
        /* Only the connections supervisor is linked: its shutdown. */
        return finish(cn, 0);
    case TAG_HANDSHAKE_TIMEOUT:
        /* No socket came (its acceptor died before the hand-over): there is
         * nothing to serve (ranch's handshake_timeout). */
        return ot_sock_eq(cn->sock, OT_NOSOCK) ? 1 : 0;
    case TAG_READ_TIMEOUT:
        if (cn->part && m->size == sizeof(uint64_t) &&
            *(const uint64_t *)ot_msg_data(m) == cn->part->timer_id) {
            cn->part->timer = OT_NOREF; /* it fired */
            ot_log(OT_LOG_INFO, "kv: client %llu closed: half-sent command timed out",
                   (unsigned long long)cn->id);
            return finish(cn, 0);
        }
        return 0;
    default:
        return 0;
    }
}
