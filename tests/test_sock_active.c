/* Tests of active mode (otter/socket.h, runtime/io/sock_active.c): exact
 * message counts for once, N and true (nothing delivered beyond the
 * allowance, however much the peer wrote: the rest waits in the kernel or
 * the socket's pending queue until the next set_active or a passive read),
 * the byte stream reassembled from DATA messages and reads equal to what was
 * sent, CLOSED and ERROR (and their order after data), active N's count
 * arithmetic and limits, a handler process and a gen_server (handle_info,
 * active N re-armed on PASSIVE) serving a connection with messages alone, a
 * passive read while the receive is armed on another scheduler's ring, a
 * hand-over while active, an owner killed with a receive
 * armed (no leak: records freed, every provided buffer back in the ring),
 * and idle active sockets holding no receive buffer (256 malloc'd bytes
 * each, the record). */
#include <stdlib.h>

#include "support/rss.h"
#include "support/sock_util.h"

static uint8_t pat(size_t k, uint8_t seed) {
    return (uint8_t)(k * 7u + seed + (k >> 11));
}

struct wjob {
    int fd;
    size_t chunk;
    int n;
    uint8_t seed;
    bool close_after;
};

/* Writes n chunks of the pattern to a plain fd, then maybe closes it. */
static void writer(void *arg) {
    struct wjob j = *(struct wjob *)arg;
    free(arg);
    char *b = malloc(j.chunk);
    size_t k = 0;
    for (int i = 0; i < j.n; i++) {
        for (size_t x = 0; x < j.chunk; x++)
            b[x] = (char)pat(k + x, j.seed);
        ot_assert_eq(ot_io_send(j.fd, b, j.chunk, 20000), (ssize_t)j.chunk);
        k += j.chunk;
    }
    free(b);
    if (j.close_after)
        close(j.fd);
}

static void start_writer(int fd, size_t chunk, int n, uint8_t seed, bool close_after) {
    struct wjob *j = malloc(sizeof *j);
    *j = (struct wjob){fd, chunk, n, seed, close_after};
    ot_spawn(writer, j);
}

/* The stream as received: DATA payloads must continue the pattern. */
struct stream {
    size_t got;
    uint8_t seed;
    ot_sock s;
};

static void check_bytes(struct stream *st, const char *d, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)d[i] != pat(st->got + i, st->seed)) {
            ot_assert(false, "byte %zu differs", st->got + i);
        }
    st->got += n;
}

/* The next socket message; DATA is checked against the stream. Returns its tag. */
static uint32_t next_msg(struct stream *st, int64_t tmo) {
    ot_msg *m = sock_any(tmo);
    if (!m)
        return 0;
    uint32_t tag = m->tag;
    ot_sock_msg *sm = ot_msg_data(m);
    ot_assert(ot_sock_eq(sm->sock, st->s), "message for another socket");
    if (tag == OT_TAG_SOCK_DATA) {
        ot_assert_eq(m->size, sizeof *sm + sm->len);
        ot_assert(sm->len > 0);
        check_bytes(st, sm->data, sm->len);
    }
    ot_msg_free(m);
    return tag;
}

static void read_rest_passive(struct stream *st, size_t total) {
    char *b = malloc(65536);
    while (st->got < total) {
        ssize_t r = ot_sock_recv(st->s, b, 65536, 5000);
        ot_assert(r > 0, "%zd", r);
        check_bytes(st, b, (size_t)r);
    }
    free(b);
}

#define CHUNK 20000u /* more than one provided buffer (16 KiB less the headroom) */

OT_TEST(sock_active, once_delivers_one_message_per_arming, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    struct stream st = {.seed = 3, .s = s};
    start_writer(peer, CHUNK, 5, 3, false);
    size_t total = 5 * CHUNK;
    int rounds = 0;
    while (st.got < total) {
        ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_ONCE, 0), 0);
        ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_DATA);
        /* once: no PASSIVE message, and nothing more until re-armed */
        ot_assert_eq(next_msg(&st, 30), 0);
        ot_assert_eq(ot_sock_recv(s, NULL, 0, 0), 0); /* passive again */
        rounds++;
    }
    ot_assert_eq(st.got, total);
    ot_assert(rounds >= 7, "%d", rounds); /* 100,000 bytes in messages of at most 16 KiB */
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

OT_TEST(sock_active, n_delivers_exactly_n_then_passive, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    struct stream st = {.seed = 11, .s = s};
    size_t total = 10 * CHUNK;
    start_writer(peer, CHUNK, 10, 11, false);
    ot_sleep(50); /* let the writer fill the socket */
    for (int round = 0; round < 2; round++) {
        ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 3), 0);
        for (int i = 0; i < 3; i++)
            ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_DATA);
        ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_PASSIVE);
        ot_assert_eq(next_msg(&st, 100), 0); /* nothing until re-armed */
        ot_assert_eq(ot_sock_recv(s, NULL, 0, 0), 0);
    }
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 4), 0);
    for (int i = 0; i < 4; i++)
        ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_DATA);
    ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_PASSIVE);
    ot_assert_eq(next_msg(&st, 100), 0);
    /* the rest by passive reads, in order after the messages */
    read_rest_passive(&st, total);
    ot_assert_eq(st.got, total);
    ot_assert_eq(sock_stats().pending, 0);
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

OT_TEST(sock_active, n_count_arithmetic, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    struct stream st = {.s = s};
    /* {active, 0} and a negative N reaching 0: PASSIVE at once, no data */
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 0), 0);
    ot_assert_eq(next_msg(&st, 1000), OT_TAG_SOCK_PASSIVE);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 5), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, -10), 0);
    ot_assert_eq(next_msg(&st, 1000), OT_TAG_SOCK_PASSIVE);
    ot_assert_eq(next_msg(&st, 50), 0);
    ot_assert_eq(ot_sock_recv(s, NULL, 0, 0), 0); /* passive */
    /* the count is a 16-bit signed value: 32767 + 1 is refused, unchanged */
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 32767), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 1), -EINVAL);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, -32767), 0);
    ot_assert_eq(next_msg(&st, 1000), OT_TAG_SOCK_PASSIVE);
    /* true and once reset the count: N 1 after true delivers one */
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 100), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 1), 0);
    ot_assert_eq(ot_io_send(peer, "a", 1, 1000), 1);
    st.seed = (uint8_t)('a' - pat(0, 0));
    ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_DATA);
    ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_PASSIVE);
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
    /* the count adds up: 2 + 2 set before any data, then exactly 4 */
    sock_pair(&s, &peer);
    st = (struct stream){.seed = 1, .s = s};
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 2), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 2), 0);
    start_writer(peer, CHUNK, 6, 1, false);
    for (int i = 0; i < 4; i++)
        ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_DATA);
    ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_PASSIVE);
    ot_assert_eq(next_msg(&st, 100), 0);
    read_rest_passive(&st, 6 * CHUNK);
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

OT_TEST(sock_active, true_delivers_everything_then_closed, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    struct stream st = {.seed = 5, .s = s};
    size_t total = 64 * CHUNK;
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), 0);
    ot_assert_eq(ot_sock_recv(s, NULL, 0, 0), -EINVAL); /* no passive read while active */
    start_writer(peer, CHUNK, 64, 5, true);
    uint32_t tag;
    while ((tag = next_msg(&st, 5000)) == OT_TAG_SOCK_DATA) {
    }
    ot_assert_eq(tag, OT_TAG_SOCK_CLOSED);
    ot_assert_eq(st.got, total);
    ot_assert_eq(next_msg(&st, 100), 0); /* nothing after CLOSED */
    ot_assert_eq(ot_sock_set_active(s, OT_PASSIVE, 0), 0);
    char b[4];
    ot_assert_eq(ot_sock_recv(s, b, sizeof b, 1000), 0);
    ot_assert_eq(ot_sock_close(s), 0);
}

/* A peer's close is reported only while active: after once's message the
 * socket is passive, and CLOSED waits for the next arming. */
OT_TEST(sock_active, closed_waits_for_the_allowance, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    struct stream st = {.s = s};
    st.seed = (uint8_t)('x' - pat(0, 0));
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_ONCE, 0), 0);
    ot_assert_eq(ot_io_send(peer, "x", 1, 1000), 1);
    ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_DATA);
    close(peer);
    ot_assert_eq(next_msg(&st, 100), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_ONCE, 0), 0);
    ot_assert_eq(next_msg(&st, 5000), OT_TAG_SOCK_CLOSED);
    ot_assert_eq(next_msg(&st, 50), 0);
    ot_assert_eq(ot_sock_close(s), 0);
}

/* A reset: ERROR with -ECONNRESET, then CLOSED (inet's order for errors). */
OT_TEST(sock_active, error_then_closed, .timeout = 60) {
    ot_sock c, a;
    tcp_pair(&c, &a);
    ot_assert_eq(ot_sock_set_active(a, OT_ACTIVE_TRUE, 0), 0);
    ot_assert_eq(ot_sock_send(c, "hi", 2, 1000), 2);
    struct sock_ev m = sock_event(OT_TAG_SOCK_DATA, 5000);
    ot_assert_eq(m.len, 2);
    struct linger lg = {1, 0};
    ot_assert_eq(setsockopt(ot_sock_fd(c), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    /* nothing is parked on c: its close is a plain close, linger 0 an RST */
    ot_assert_eq(ot_sock_close(c), 0);
    ot_msg *e = sock_any(5000);
    ot_assert(e != NULL);
    ot_assert_eq(e->tag, OT_TAG_SOCK_ERROR);
    ot_sock_msg em;
    memcpy(&em, ot_msg_data(e), sizeof em);
    ot_assert_eq(em.err, -ECONNRESET);
    ot_assert(ot_sock_eq(em.sock, a));
    ot_msg_free(e);
    m = sock_event(OT_TAG_SOCK_CLOSED, 5000);
    ot_assert(ot_sock_eq(m.sock, a));
    ot_assert(sock_any(50) == NULL);
    ot_assert_eq(ot_sock_close(a), 0);
}

/* Switching to passive with a multishot armed on this ring cancels it: what
 * the peer writes next is read passively, none of it as a message. */
OT_TEST(sock_active, passive_again_stops_messages, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    struct stream st = {.seed = 9, .s = s};
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_PASSIVE, 0), 0);
    start_writer(peer, CHUNK, 3, 9, false);
    ot_assert_eq(next_msg(&st, 100), 0);
    read_rest_passive(&st, 3 * CHUNK);
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

/* ---- a handler process serving a connection with messages alone ---------- */

struct echo_state {
    ot_sock s;
    int handled;
};

static int echo_handler(void *state, const ot_msg *m) {
    struct echo_state *e = state;
    if (m->tag == T_SOCK) {
        memcpy(&e->s, ot_msg_data(m), sizeof e->s);
        return ot_sock_set_active(e->s, OT_ACTIVE_ONCE, 0);
    }
    const ot_sock_msg *sm = ot_msg_data(m);
    if (m->tag == OT_TAG_SOCK_DATA) {
        e->handled++;
        ssize_t r = ot_sock_send(e->s, sm->data, sm->len, 5000);
        if (r != (ssize_t)sm->len)
            return -1;
        return ot_sock_set_active(e->s, OT_ACTIVE_ONCE, 0);
    }
    if (m->tag == OT_TAG_SOCK_CLOSED) {
        ot_sock_close(e->s);
        return 1; /* stop, normal */
    }
    return -1;
}

OT_TEST(sock_active, handler_process_serves_a_connection, .timeout = 60) {
    ot_sock c, a;
    tcp_pair(&c, &a);
    static struct echo_state es;
    es = (struct echo_state){0};
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    ot_pid h = ot_spawn_handler(echo_handler, &es, &o);
    ot_assert_eq(ot_sock_controlling_process(a, h), 0);
    ot_send(h, T_SOCK, &a, sizeof a);
    char b[64];
    for (int i = 0; i < 20; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "line %d\n", i);
        ot_assert_eq(ot_sock_send(c, line, (size_t)n, 1000), n);
        size_t got = 0;
        while (got < (size_t)n) {
            ssize_t r = ot_sock_recv(c, b + got, sizeof b - got, 5000);
            ot_assert(r > 0);
            got += (size_t)r;
        }
        ot_assert_eq(memcmp(b, line, (size_t)n), 0);
    }
    ot_assert_eq(ot_sock_close(c), 0);
    ot_msg *d = ot_receive_tag(OT_TAG_DOWN, 5000);
    ot_assert(d != NULL);
    ot_down_msg dm;
    memcpy(&dm, ot_msg_data(d), sizeof dm);
    ot_msg_free(d);
    ot_assert(ot_reason_is_normal(dm.reason), "the handler ended abnormally");
    ot_assert_eq(es.handled, 20);
}

/* ---- hand-over while active -------------------------------------------------- */

static void taker(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    struct sock_ev m = sock_event(OT_TAG_SOCK_DATA, 5000);
    ot_send(parent, T_RES, &m, sizeof m);
    ot_msg *x = ot_receive_tag(OT_TAG_SOCK_DATA, 5000);
    ot_assert(x != NULL);
    char d[8] = {0};
    memcpy(d, ((ot_sock_msg *)ot_msg_data(x))->data, 3);
    ot_msg_free(x);
    ot_send(parent, T_RES, d, 3);
    ot_receive_tag(T_DONE, OT_INFINITY);
}

OT_TEST(sock_active, handover_while_active, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    ot_pid me = ot_self();
    ot_pid t = ot_spawn(taker, &me);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), 0);
    ot_assert_eq(ot_io_send(peer, "one", 3, 1000), 3);
    /* delivered to us: wait until it is in our mailbox */
    struct ot_process_info pi;
    for (int i = 0; i < 500; i++) {
        ot_process_info(me, &pi);
        if (pi.message_queue_len > 0)
            break;
        ot_sleep(2);
    }
    ot_assert_eq(ot_sock_controlling_process(s, t), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_ONCE, 0), -EPERM);
    ot_assert_eq(ot_io_send(peer, "two", 3, 1000), 3);
    ot_assert_eq(ot_io_send(peer, "thr", 3, 1000), 3);
    /* the message delivered before the hand-over stayed with us */
    ot_msg *m = ot_receive_tag(OT_TAG_SOCK_DATA, 1000);
    ot_assert(m != NULL);
    ot_assert_eq(memcmp(((ot_sock_msg *)ot_msg_data(m))->data, "one", 3), 0);
    ot_msg_free(m);
    /* the new owner got the rest: "two" (maybe with "thr"), then more */
    ot_msg *r = ot_receive_tag(T_RES, 5000);
    ot_assert(r != NULL);
    struct sock_ev tm;
    memcpy(&tm, ot_msg_data(r), sizeof tm);
    ot_msg_free(r);
    ot_assert(ot_sock_eq(tm.sock, s));
    ot_assert(sock_any(100) == NULL); /* nothing more reached us */
    ot_send(t, T_DONE, NULL, 0);
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

/* ---- leaks and buffers ---------------------------------------------------------- */

static void armed_forever(void *arg) {
    int fd = (int)(intptr_t)arg;
    ot_sock s;
    ot_assert_eq(ot_sock_adopt(fd, &s), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), 0);
    ot_pid parent;
    ot_msg *m = ot_receive_tag(T_GO, 5000);
    memcpy(&parent, ot_msg_data(m), sizeof parent);
    ot_msg_free(m);
    ot_send(parent, T_READY, NULL, 0);
    ot_receive_tag(T_DONE, OT_INFINITY);
}

static const ot_spawn_opts on_sched0 = {.scheduler = 0, .scheduler_set = true, .bind = true};

static void killed_with_receive_armed(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    uint64_t live0 = sock_stats().live;
    int fds0 = fd_count();
    for (int i = 0; i < 20; i++) {
        int sv[2];
        ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ot_ref mon;
        ot_spawn_opts o = on_sched0;
        o.monitor = true;
        o.monitor_ref = &mon;
        ot_pid c = ot_spawn_opt(armed_forever, (void *)(intptr_t)sv[0], &o);
        ot_pid me = ot_self();
        ot_send(c, T_GO, &me, sizeof me);
        ot_assert(ot_receive_tag(T_READY, 5000) != NULL);
        if (i % 2) /* some data in flight too */
            ot_io_send(sv[1], "data", 4, 1000);
        ot_exit(c, OT_REASON(OT_KILL));
        ot_receive_tag(OT_TAG_DOWN, 5000);
        char b[8];
        ssize_t r;
        while ((r = ot_io_recv(sv[1], b, sizeof b, 2000)) > 0) {
        }
        ot_assert_eq(r, 0);
        close(sv[1]);
    }
    wait_sockets_gone(live0);
    ot_assert_eq(fd_count(), fds0);
    ot_assert_eq(ot__io_bufring_avail(), ot__io_bufring_entries());
    ot_send(parent, T_DONE, NULL, 0);
}

OT_TEST(sock_active, owner_killed_with_a_receive_armed, .timeout = 60) {
    ot_pid me = ot_self();
    ot_spawn_opt(killed_with_receive_armed, &me, &on_sched0);
    ot_assert(ot_receive_tag(T_DONE, 30000) != NULL);
}

#define IDLE 300

static void idle_sockets(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    static ot_sock s[IDLE];
    static int peer[IDLE];
    struct ot__sock_stats st0 = sock_stats();
    for (int i = 0; i < IDLE; i++) {
        sock_pair(&s[i], &peer[i]);
        ot_assert_eq(ot_sock_set_active(s[i], OT_ACTIVE_TRUE, 0), 0);
    }
    /* each served once, then idle */
    for (int i = 0; i < IDLE; i++)
        ot_assert_eq(ot_io_send(peer[i], "ping", 4, 1000), 4);
    for (int i = 0; i < IDLE; i++) {
        struct sock_ev m = sock_event(OT_TAG_SOCK_DATA, 5000);
        ot_assert_eq(m.len, 4);
    }
    struct ot__sock_stats st = sock_stats();
    ot_assert_eq(st.armed - st0.armed, IDLE);
    ot_assert_eq(st.pending, 0);
    /* every provided buffer is back in the ring: the armed receives hold none */
    ot_assert_eq(ot__io_bufring_avail(), ot__io_bufring_entries());
    for (int i = 0; i < IDLE; i++) {
        ot_assert_eq(ot_sock_close(s[i]), 0);
        close(peer[i]);
    }
    wait_sockets_gone(st0.live);
    ot_send(parent, T_DONE, NULL, 0);
}

OT_TEST(sock_active, idle_active_sockets_hold_no_receive_buffer, .timeout = 60) {
    ot_pid me = ot_self();
    ot_spawn_opt(idle_sockets, &me, &on_sched0);
    ot_assert(ot_receive_tag(T_DONE, 30000) != NULL);
}

/* The receive stays armed on the ring of the scheduler that set the socket
 * active; its new owner, bound to another scheduler, goes passive and reads:
 * the read waits for that receive to end (at its next completion, the data
 * kept pending) and gets the bytes in order, none as a message. */
static void reader_on_sched1(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    ot_msg *m = ot_receive_tag(T_SOCK, 5000);
    ot_sock s;
    memcpy(&s, ot_msg_data(m), sizeof s);
    ot_msg_free(m);
    ot_assert_eq(ot_sock_set_active(s, OT_PASSIVE, 0), 0);
    char b[64];
    ot_assert_eq(ot_sock_recv(s, b, sizeof b, 50), -ETIMEDOUT);
    ot_send(parent, T_READY, NULL, 0);
    ssize_t n = ot_sock_recv(s, b, sizeof b, 5000);
    ot_assert_eq(n, 5);
    ot_assert_eq(memcmp(b, "hello", 5), 0);
    ot_send(parent, T_READY, NULL, 0);
    n = ot_sock_recv(s, b, sizeof b, 5000);
    ot_assert_eq(n, 5);
    ot_assert_eq(memcmp(b, "world", 5), 0);
    ot_assert(sock_any(50) == NULL);
    ot_assert_eq(ot_sock_close(s), 0);
    ot_send(parent, T_DONE, NULL, 0);
}

static ot_pid armer_parent;

static void armer_on_sched0(void *arg) {
    (void)arg;
    ot_pid parent = armer_parent;
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    ot_spawn_opts o1 = {.scheduler = 1, .scheduler_set = true, .bind = true};
    ot_pid r = ot_spawn_opt(reader_on_sched1, &armer_parent, &o1);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), 0);
    ot_assert_eq(ot_sock_controlling_process(s, r), 0);
    ot_send(r, T_SOCK, &s, sizeof s);
    ot_send(parent, T_SOCK, &peer, sizeof peer);
}

OT_TEST(sock_active, passive_read_with_a_receive_armed_on_another_ring, .timeout = 60) {
    if (ot_schedulers() < 2)
        cr_skip("needs two schedulers");
    armer_parent = ot_self();
    ot_spawn_opt(armer_on_sched0, NULL, &on_sched0);
    ot_msg *m = ot_receive_tag(T_SOCK, 5000);
    ot_assert(m != NULL);
    int peer;
    memcpy(&peer, ot_msg_data(m), sizeof peer);
    ot_msg_free(m);
    ot_assert(ot_receive_tag(T_READY, 5000) != NULL);
    ot_sleep(20);
    ot_assert_eq(ot_io_send(peer, "hello", 5, 1000), 5);
    ot_assert(ot_receive_tag(T_READY, 5000) != NULL);
    ot_assert_eq(ot_io_send(peer, "world", 5, 1000), 5);
    ot_assert(ot_receive_tag(T_DONE, 5000) != NULL);
    close(peer);
}

/* ---- a gen_server serving a connection from handle_info --------------------- */

struct gs_echo {
    ot_sock s;
    uint64_t bytes, passives;
};

static ot_gs_ret gse_init(void *arg, void **state) {
    (void)arg;
    *state = calloc(1, sizeof(struct gs_echo));
    return ot_gs_ok();
}

static ot_gs_ret gse_call(void *state, const ot_msg *req, ot_from from) {
    (void)req;
    (void)from;
    struct gs_echo *e = state;
    return ot_gs_reply(&e->bytes, sizeof e->bytes);
}

static ot_gs_ret gse_cast(void *state, const ot_msg *m) {
    struct gs_echo *e = state;
    memcpy(&e->s, ot_msg_data(m), sizeof e->s);
    ot_assert_eq(ot_sock_set_active(e->s, OT_ACTIVE_N, 2), 0);
    return ot_gs_ok();
}

static ot_gs_ret gse_info(void *state, const ot_msg *m) {
    struct gs_echo *e = state;
    const ot_sock_msg *sm = ot_msg_data(m);
    switch (m->tag) {
    case OT_TAG_SOCK_DATA:
        e->bytes += sm->len;
        ot_assert_eq(ot_sock_send(e->s, sm->data, sm->len, 5000), sm->len);
        return ot_gs_ok();
    case OT_TAG_SOCK_PASSIVE: /* {tcp_passive, S}: two more */
        e->passives++;
        ot_assert_eq(ot_sock_set_active(e->s, OT_ACTIVE_N, 2), 0);
        return ot_gs_ok();
    case OT_TAG_SOCK_CLOSED:
        ot_sock_close(e->s);
        return ot_gs_stop(OT_REASON(OT_NORMAL));
    default:
        return ot_gs_stop(ot_reason_error("unexpected message %u", m->tag));
    }
}

static void gse_terminate(void *state, ot_reason why) {
    (void)why;
    free(state);
}

OT_TEST(sock_active, gen_server_serves_a_connection_from_handle_info, .timeout = 60) {
    static const ot_gen_server b = {.name = "sock_echo",
                                    .init = gse_init,
                                    .handle_call = gse_call,
                                    .handle_cast = gse_cast,
                                    .handle_info = gse_info,
                                    .terminate = gse_terminate};
    ot_sock c, a;
    tcp_pair(&c, &a);
    ot_pid g;
    ot_assert_eq(ot_gen_server_start(&b, NULL, NULL, &g), 0);
    ot_ref mon = ot_monitor(g);
    ot_assert_eq(ot_sock_controlling_process(a, g), 0);
    ot_assert_eq(ot_cast(g, T_SOCK, &a, sizeof a), 0);
    uint64_t sent = 0;
    char b2[256];
    for (int i = 0; i < 30; i++) {
        int n = snprintf(b2, sizeof b2, "request %d of the client\n", i);
        ot_assert_eq(ot_sock_send(c, b2, (size_t)n, 1000), n);
        ot_assert_eq(read_exact(ot_sock_fd(c), b2, (size_t)n, 5000), n);
        sent += (uint64_t)n;
    }
    ot_msg *r;
    ot_assert_eq(ot_call(g, T_GO, NULL, 0, &r, 5000), 0);
    uint64_t got;
    memcpy(&got, ot_msg_data(r), sizeof got);
    ot_msg_free(r);
    ot_assert_eq(got, sent);
    ot_assert_eq(ot_sock_close(c), 0);
    ot_msg *d = ot_receive_ref(mon, 5000);
    ot_assert(d != NULL && d->tag == OT_TAG_DOWN);
    ot_down_msg dm;
    memcpy(&dm, ot_msg_data(d), sizeof dm);
    ot_msg_free(d);
    ot_assert(ot_reason_is_normal(dm.reason), "the server stopped abnormally");
}

/* What an idle active socket costs the runtime in malloc'd memory: its
 * record, with no receive buffer and no pending data (the kernel's socket
 * buffers are not malloc's). Bounded at 512 bytes; the record is ~240. */

#define IDLE_MEM 2000

static void idle_memory(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    static ot_sock s[IDLE_MEM];
    static int peer[IDLE_MEM];
    ot_sock warm;
    int wpeer;
    sock_pair(&warm, &wpeer); /* the handle table's first chunk, the owner record */
    ot_assert_eq(ot_sock_set_active(warm, OT_ACTIVE_TRUE, 0), 0);
    for (int i = 0; i < IDLE_MEM; i++) {
        int sv[2];
        ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        peer[i] = sv[1];
        s[i].v = (uint64_t)sv[0]; /* the fd, adopted below */
    }
    size_t before = ot_test_heap_bytes();
    for (int i = 0; i < IDLE_MEM; i++) {
        ot_assert_eq(ot_sock_adopt((int)s[i].v, &s[i]), 0);
        ot_assert_eq(ot_sock_set_active(s[i], OT_ACTIVE_TRUE, 0), 0);
    }
    ot_sleep(20); /* the receives are in the kernel */
    size_t after = ot_test_heap_bytes();
    size_t per = (after - before) / IDLE_MEM;
    ot_assert(per <= 512, "%zu bytes per idle active socket", per);
    ot_assert_eq(sock_stats().pending, 0);
    ot_assert_eq(ot__io_bufring_avail(), ot__io_bufring_entries());
    for (int i = 0; i < IDLE_MEM; i++) {
        ot_assert_eq(ot_sock_close(s[i]), 0);
        close(peer[i]);
    }
    ot_assert_eq(ot_sock_close(warm), 0);
    close(wpeer);
    int64_t v = (int64_t)per;
    ot_send(parent, T_DONE, &v, sizeof v);
}

OT_TEST(sock_active, idle_active_socket_costs_a_record_only, .timeout = 60) {
    ot_pid me = ot_self();
    ot_spawn_opt(idle_memory, &me, &on_sched0);
    int64_t per = recv_i64(T_DONE, 30000);
    cr_log_info("%lld malloc'd bytes per idle active socket", (long long)per);
}
