/* A chat server: the first server a user writes. One gen_server per
 * connection, started by the acceptor pool (otter/listener.h), reads its
 * socket in active mode (OT_TAG_SOCK_DATA messages in handle_info, re-armed
 * once per message: flow control, the client cannot flood the process's
 * mailbox) and speaks a line protocol:
 *
 *     NICK name    ->  OK NICK name        (names are up to 31 bytes)
 *     JOIN room    ->  OK JOIN room        (leaves the room it was in)
 *     MSG text     ->  OK MSG n            (n: members the line went to)
 *                      and each other member of the room gets
 *                      "[room] name: text"
 *     QUIT         ->  OK BYE, then the server closes
 *     anything else -> ERR unknown command; a line over 512 bytes -> ERR
 *                      line too long, then the server closes
 *
 * Rooms are topics of the Registry's PubSub ("chat_pubsub"): JOIN
 * subscribes the connection's process, MSG broadcasts from it to the
 * others, and a process that exits leaves its room by itself. Lines a
 * connection has to send (replies and broadcasts, in arrival order) are
 * queued and written with one ot_sock_sendv when the process sends itself a
 * flush message, which it does for the first line of a batch: every line
 * that arrived before the flush goes out in the same call. The PubSub and
 * the listener make the application tree (rest_for_one: the listener
 * depends on the PubSub).
 *
 * build/examples/chat [port] listens on 127.0.0.1 (port 0: the kernel
 * picks; it prints the port). tests/test_chat.c drives it with 1,000 clients. */
#include <otter.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define LINE_MAX_BYTES 512
#define NICK_MAX 32
#define ROOM_MAX 32
#define IOV_BATCH 64

enum { CHAT_LINE = OT_TAG_USER + 100, CHAT_FLUSH };

struct out_line {
    size_t len;
    char data[];
};

struct client {
    ot_sock s;
    ot_reg ps;
    char nick[NICK_MAX];
    char room[ROOM_MAX]; /* "" outside any room */
    char topic[ROOM_MAX + 8];
    size_t tlen;
    char in[LINE_MAX_BYTES + 1];
    size_t inlen;
    struct out_line **out; /* queued lines, oldest first */
    size_t nout, capout;
    bool flush_sent;
};

/* ---- the outgoing queue ----------------------------------------------------------- */

static void queue_line(struct client *c, const char *data, size_t len) {
    if (c->nout == c->capout) {
        size_t cap = c->capout ? c->capout * 2 : 16;
        struct out_line **n = ot_realloc(c->out, cap * sizeof *n);
        if (!n)
            return;
        c->out = n;
        c->capout = cap;
    }
    struct out_line *l = ot_alloc(sizeof *l + len);
    if (!l)
        return;
    l->len = len;
    memcpy(l->data, data, len);
    c->out[c->nout++] = l;
    if (!c->flush_sent) { /* behind everything already in the mailbox */
        c->flush_sent = true;
        ot_send(ot_self(), CHAT_FLUSH, NULL, 0);
    }
}

static void reply(struct client *c, const char *fmt, const char *arg) {
    char buf[LINE_MAX_BYTES + 64];
    int n = snprintf(buf, sizeof buf, fmt, arg);
    queue_line(c, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Writes the queue, up to IOV_BATCH lines per call. */
static int flush(struct client *c) {
    int rc = 0;
    size_t done = 0;
    while (done < c->nout && rc >= 0) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        for (; n < IOV_BATCH && done + (size_t)n < c->nout; n++)
            iov[n] = (struct iovec){c->out[done + (size_t)n]->data, c->out[done + (size_t)n]->len};
        rc = (int)ot_sock_sendv(c->s, iov, n, 10000);
        done += (size_t)n;
    }
    for (size_t i = 0; i < c->nout; i++)
        ot_free(c->out[i]);
    c->nout = 0;
    c->flush_sent = false;
    return rc < 0 ? rc : 0;
}

/* ---- commands ----------------------------------------------------------------------- */

static void join(struct client *c, const char *room) {
    if (c->room[0])
        ot_pubsub_unsubscribe(c->ps, c->topic, c->tlen);
    snprintf(c->room, sizeof c->room, "%s", room);
    c->tlen = (size_t)snprintf(c->topic, sizeof c->topic, "room:%s", c->room);
    ot_pubsub_subscribe(c->ps, c->topic, c->tlen);
    reply(c, "OK JOIN %s\n", c->room);
}

static void say(struct client *c, const char *text) {
    if (!c->room[0]) {
        reply(c, "ERR not in a room%s\n", "");
        return;
    }
    char line[LINE_MAX_BYTES + NICK_MAX + ROOM_MAX + 16];
    int n = snprintf(line, sizeof line, "[%s] %s: %s\n", c->room, c->nick, text);
    int sent =
        ot_pubsub_broadcast_from(c->ps, ot_self(), c->topic, c->tlen, CHAT_LINE, line, (size_t)n);
    char num[16];
    snprintf(num, sizeof num, "%d", sent < 0 ? 0 : sent);
    reply(c, "OK MSG %s\n", num);
}

/* One line without its newline; false when the connection is to end. */
static bool command(struct client *c, char *line) {
    if (!strncmp(line, "NICK ", 5) && line[5]) {
        snprintf(c->nick, sizeof c->nick, "%s", line + 5);
        reply(c, "OK NICK %s\n", c->nick);
    } else if (!strncmp(line, "JOIN ", 5) && line[5]) {
        join(c, line + 5);
    } else if (!strncmp(line, "MSG ", 4)) {
        say(c, line + 4);
    } else if (!strcmp(line, "QUIT")) {
        reply(c, "OK BYE%s\n", "");
        return false;
    } else {
        reply(c, "ERR unknown command%s\n", "");
    }
    return true;
}

/* Runs every complete line of the input; false when the connection is to end. */
static bool input(struct client *c, const char *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        if (ch == '\n') {
            c->in[c->inlen] = 0;
            if (c->inlen && c->in[c->inlen - 1] == '\r')
                c->in[c->inlen - 1] = 0;
            c->inlen = 0;
            if (!command(c, c->in))
                return false;
        } else if (c->inlen == LINE_MAX_BYTES) {
            reply(c, "ERR line too long%s\n", "");
            return false;
        } else {
            c->in[c->inlen++] = ch;
        }
    }
    return true;
}

/* ---- the connection's gen_server ---------------------------------------------------- */

static ot_gs_ret client_init(void *arg, void **state) {
    (void)arg;
    struct client *c = ot_calloc(1, sizeof *c);
    if (!c)
        return ot_gs_stop(ot_reason_error("out of memory"));
    c->ps = ot_registry_whereis("chat_pubsub");
    snprintf(c->nick, sizeof c->nick, "anon");
    *state = c;
    /* the socket comes with the handshake; without one in time (its acceptor
     * died first, taking the socket), the process ends: ranch's
     * handshake_timeout */
    return ot_gs_timeout(OT_LISTENER_HANDSHAKE_MS);
}

static ot_gs_ret client_call(void *state, const ot_msg *req, ot_from from) {
    (void)state, (void)req, (void)from;
    return ot_gs_reply(NULL, 0);
}

static ot_gs_ret client_info(void *state, const ot_msg *m) {
    struct client *c = state;
    const ot_sock_msg *sm = ot_msg_data(m);
    switch (m->tag) {
    case OT_TAG_SOCK_HANDSHAKE: {
        ot_listener_handshake_msg hs;
        memcpy(&hs, ot_msg_data(m), sizeof hs);
        c->s = hs.sock; /* ours from now on */
        ot_sock_set_active(c->s, OT_ACTIVE_ONCE, 0);
        return ot_gs_ok();
    }
    case OT_TAG_SOCK_DATA:
        if (!input(c, sm->data, sm->len)) {
            flush(c);
            return ot_gs_stop(OT_REASON(OT_NORMAL));
        }
        ot_sock_set_active(c->s, OT_ACTIVE_ONCE, 0);
        return ot_gs_ok();
    case OT_TAG_SOCK_CLOSED:
    case OT_TAG_SOCK_ERROR:
        return ot_gs_stop(OT_REASON(OT_NORMAL));
    case OT_TAG_TIMEOUT: /* no handshake came */
        return ot_sock_eq(c->s, OT_NOSOCK) ? ot_gs_stop(OT_REASON(OT_NORMAL)) : ot_gs_ok();
    case CHAT_LINE:
        queue_line(c, ot_msg_data(m), m->size);
        return ot_gs_ok();
    case CHAT_FLUSH:
        if (flush(c) < 0)
            return ot_gs_stop(OT_REASON(OT_NORMAL)); /* the peer is gone */
        return ot_gs_ok();
    default:
        return ot_gs_ok();
    }
}

static const ot_gen_server client_behaviour = {.name = "chat_client",
                                               .init = client_init,
                                               .handle_call = client_call,
                                               .handle_info = client_info};

static int client_start(void *arg, ot_pid *out) {
    return ot_gen_server_start_link(&client_behaviour, arg, NULL, out);
}

/* ---- the application ---------------------------------------------------------------- */

static ot_listener_opts chat_opts = {.host = "127.0.0.1",
                                     .start = client_start,
                                     .max_connections = OT_INFINITY,
                                     .drain_timeout_ms = 1000};

static int pubsub_start(void *arg, ot_pid *out) {
    (void)arg;
    return ot_pubsub_start_link("chat_pubsub", 0, out);
}

/* Starts the tree on port (0: the kernel's pick); *listener is the pool. */
int chat_start(uint16_t port, ot_pid *listener) {
    chat_opts.port = port;
    ot_child_spec cs[2] = {
        {.id = "pubsub", .start = pubsub_start, .type = OT_SUPERVISOR},
        ot_listener_child_spec(&chat_opts),
    };
    ot_sup_flags f = {.strategy = OT_REST_FOR_ONE};
    ot_pid top;
    int rc = ot_application_start(&f, cs, 2, NULL, &top);
    if (rc != 0)
        return rc;
    ot_child_info ci[2];
    size_t n = 0;
    rc = ot_supervisor_which_children(top, ci, 2, &n);
    for (size_t i = 0; rc == 0 && i < n && i < 2; i++)
        if (!strcmp(ci[i].id, "ot_listener"))
            *listener = ci[i].pid;
    return rc;
}

#ifndef CHAT_NO_MAIN
static void main_proc(void *arg) {
    ot_pid l;
    int rc = chat_start((uint16_t)atoi(arg), &l);
    if (rc != 0) {
        fprintf(stderr, "chat: %s\n", ot_strerror(rc));
        return;
    }
    printf("chat: listening on 127.0.0.1:%d\n", ot_listener_port(l));
    fflush(stdout);
    /* SIGTERM stops the tree in order: the listener drains first */
    ot_application_stop_on_signal(SIGTERM);
    ot_ref r = ot_monitor(ot_application_sup());
    ot_msg_free(ot_receive_ref(r, OT_INFINITY));
}

int main(int argc, char **argv) {
    return ot_run(main_proc, argc > 1 ? argv[1] : "7000", NULL) == 0 ? 0 : 1;
}
#endif
