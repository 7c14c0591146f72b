/* Tests of sends (runtime/io/sock_send.c): sendv from many processes on
 * several schedulers to one socket, each record (a header, a body of varying
 * size, a trailer, in three iovecs) arriving whole and each sender's records
 * in the order sent; more iovecs than one submission takes; -EPIPE and no
 * SIGPIPE; a send that times out waiting for its turn; senders killed while
 * holding the turn and while waiting for it (the turn passes on, the others'
 * records stay whole). */
#include <signal.h>
#include <stdlib.h>

#include "support/sock_util.h"

static void four_schedulers(void) {
    ot_test_config.schedulers = 4;
}

#define MAGIC 0x5eca11edu

struct rec_hdr {
    uint32_t magic, sender, seq, len;
};

static uint8_t body_byte(uint32_t sender, uint32_t seq, uint32_t i) {
    return (uint8_t)(sender * 31u + seq * 7u + i);
}

static uint32_t body_len(uint32_t sender, uint32_t seq) {
    return 1 + (sender * 7919u + seq * 104729u) % 40000u;
}

struct sender_arg {
    ot_sock s;
    uint32_t id, n;
    ot_pid parent;
};

static void sender(void *arg) {
    struct sender_arg a = *(struct sender_arg *)arg;
    free(arg);
    char *body = malloc(40001);
    for (uint32_t q = 0; q < a.n; q++) {
        struct rec_hdr h = {MAGIC, a.id, q, body_len(a.id, q)};
        for (uint32_t i = 0; i < h.len; i++)
            body[i] = (char)body_byte(a.id, q, i);
        uint32_t trailer = ~MAGIC ^ q;
        struct iovec v[3] = {{&h, sizeof h}, {body, h.len}, {&trailer, sizeof trailer}};
        ssize_t r = ot_sock_sendv(a.s, v, 3, 20000);
        ot_assert_eq(r, (ssize_t)(sizeof h + h.len + sizeof trailer));
    }
    free(body);
    ot_send(a.parent, T_DONE, NULL, 0);
}

/* Reads one record from fd and checks it; returns its sender. */
static uint32_t read_record(int fd, uint32_t *next_seq, char *body) {
    struct rec_hdr h;
    ot_assert_eq(read_exact(fd, (char *)&h, sizeof h, 10000), sizeof h);
    ot_assert_eq(h.magic, MAGIC);
    ot_assert_eq(h.seq, next_seq[h.sender]);
    ot_assert_eq(h.len, body_len(h.sender, h.seq));
    ot_assert_eq(read_exact(fd, body, h.len, 10000), h.len);
    for (uint32_t i = 0; i < h.len; i++)
        if ((uint8_t)body[i] != body_byte(h.sender, h.seq, i))
            ot_assert(false, "record %u/%u: byte %u differs", h.sender, h.seq, i);
    uint32_t trailer;
    ot_assert_eq(read_exact(fd, (char *)&trailer, sizeof trailer, 10000), sizeof trailer);
    ot_assert_eq(trailer, ~MAGIC ^ h.seq);
    next_seq[h.sender]++;
    return h.sender;
}

#define SENDERS 12
#define RECORDS 60

OT_TEST(sock_send, sendv_records_whole_and_ordered_from_many_senders, .timeout = 120,
        .init = four_schedulers) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    for (uint32_t i = 0; i < SENDERS; i++) {
        struct sender_arg *a = malloc(sizeof *a);
        *a = (struct sender_arg){s, i, RECORDS, ot_self()};
        ot_spawn_opts o = {.scheduler = (int)(i % 4), .scheduler_set = true};
        ot_spawn_opt(sender, a, &o);
    }
    uint32_t next_seq[SENDERS] = {0};
    char *body = malloc(40001);
    for (int i = 0; i < SENDERS * RECORDS; i++)
        read_record(peer, next_seq, body);
    free(body);
    for (int i = 0; i < SENDERS; i++) {
        ot_assert_eq(next_seq[i], RECORDS);
        ot_assert(ot_receive_tag(T_DONE, 10000) != NULL);
    }
    char b;
    ot_assert_eq(ot_io_recv(peer, &b, 1, 50), -ETIMEDOUT); /* nothing else */
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

/* 300 iovecs (more than one submission's 64) of 1..300 bytes each. */
OT_TEST(sock_send, many_iovecs_in_order, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    enum { N = 300 };
    static struct iovec v[N];
    static char data[N][N];
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        memset(data[i], (char)i, (size_t)i + 1);
        v[i] = (struct iovec){data[i], (size_t)i + 1};
        total += (size_t)i + 1;
    }
    v[7].iov_len = 0; /* an empty one in the middle */
    total -= 8;
    ot_pid me = ot_self();
    (void)me;
    ot_assert_eq(ot_sock_sendv(s, v, N, 5000), (ssize_t)total);
    char *got = malloc(total);
    ot_assert_eq(read_exact(peer, got, total, 5000), (ssize_t)total);
    size_t k = 0;
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < v[i].iov_len; j++)
            ot_assert_eq((uint8_t)got[k++], (uint8_t)i);
    free(got);
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

static int sigpipes;
static void on_sigpipe(int sig) {
    (void)sig;
    sigpipes++;
}

OT_TEST(sock_send, epipe_never_sigpipe, .timeout = 60) {
    struct sigaction sa = {.sa_handler = on_sigpipe}, old;
    sigaction(SIGPIPE, &sa, &old);
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    close(peer);
    ot_assert_eq(ot_sock_send(s, "x", 1, 1000), -EPIPE);
    struct iovec v = {"abc", 3};
    ot_assert_eq(ot_sock_sendv(s, &v, 1, 1000), -EPIPE);
    ot_assert_eq(sigpipes, 0);
    sigaction(SIGPIPE, &old, NULL);
    ot_assert_eq(ot_sock_close(s), 0);
}

/* ---- the send turn under timeouts and kills --------------------------------- */

struct filler_arg {
    ot_sock s;
    char byte;
    size_t n;
    int64_t tmo;
    ot_pid parent;
};

/* Sends n bytes of `byte`, in a record of its own; reports the result. */
static void filler(void *arg) {
    struct filler_arg a = *(struct filler_arg *)arg;
    char *b = ot_alloc(a.n); /* the process heap: freed by a kill too */
    memset(b, a.byte, a.n);
    ot_send(a.parent, T_READY, &a.byte, 1);
    ssize_t r = ot_sock_send(a.s, b, a.n, a.tmo);
    ot_free(b);
    int64_t v = r;
    ot_send(a.parent, T_RES, &v, sizeof v);
    ot_receive_tag(T_DONE, OT_INFINITY);
}

static ot_pid start_filler(struct filler_arg *a, ot_sock s, char byte, size_t n, int64_t tmo) {
    *a = (struct filler_arg){s, byte, n, tmo, ot_self()};
    ot_pid p = ot_spawn(filler, a);
    ot_assert(ot_receive_tag(T_READY, 5000) != NULL);
    ot_sleep(30); /* parked: in its send, or waiting for the turn */
    return p;
}

OT_TEST(sock_send, turn_wait_times_out, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    struct filler_arg big, small;
    start_filler(&big, s, 'A', 4 << 20, 20000); /* blocks: nobody reads yet */
    start_filler(&small, s, 'B', 10, 100);
    ot_assert_eq(recv_i64(T_RES, 5000), -ETIMEDOUT); /* B never got the turn */
    char *b = malloc(4 << 20);
    ot_assert_eq(read_exact(peer, b, 4 << 20, 10000), 4 << 20);
    for (size_t i = 0; i < 4 << 20; i++)
        if (b[i] != 'A')
            ot_assert(false, "byte %zu is %c", i, b[i]);
    free(b);
    ot_assert_eq(recv_i64(T_RES, 5000), 4 << 20);
    char c;
    ot_assert_eq(ot_io_recv(peer, &c, 1, 50), -ETIMEDOUT); /* none of B's bytes */
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

OT_TEST(sock_send, killed_senders_pass_the_turn_on, .timeout = 60) {
    uint64_t live0 = sock_stats().live;
    int fds0 = fd_count();
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    struct filler_arg fa, fb, fc, fd;
    ot_pid a = start_filler(&fa, s, 'A', 4 << 20, OT_INFINITY); /* holds the turn */
    ot_pid b = start_filler(&fb, s, 'B', 1000, OT_INFINITY);    /* waits */
    ot_pid c = start_filler(&fc, s, 'C', 1000, OT_INFINITY);    /* waits, killed */
    ot_pid d = start_filler(&fd, s, 'D', 1000, OT_INFINITY);    /* waits */
    ot_exit(c, OT_REASON(OT_KILL));
    ot_exit(a, OT_REASON(OT_KILL));
    /* the stream: a prefix of A's bytes, then B's 1000 whole, then D's */
    char buf[4096];
    size_t as = 0;
    char first = 0;
    for (;;) {
        ssize_t r = ot_io_recv(peer, buf, 1, 10000);
        ot_assert_eq(r, 1);
        if (buf[0] != 'A') {
            first = buf[0];
            break;
        }
        as++;
    }
    ot_assert(as < (size_t)4 << 20, "A was killed before it finished");
    ot_assert_eq(first, 'B');
    ot_assert_eq(read_exact(peer, buf, 999, 5000), 999);
    for (int i = 0; i < 999; i++)
        ot_assert_eq(buf[i], 'B');
    ot_assert_eq(read_exact(peer, buf, 1000, 5000), 1000);
    for (int i = 0; i < 1000; i++)
        ot_assert_eq(buf[i], 'D');
    ot_assert_eq(ot_io_recv(peer, buf, 1, 50), -ETIMEDOUT);
    ot_assert_eq(recv_i64(T_RES, 5000), 1000);
    ot_assert_eq(recv_i64(T_RES, 5000), 1000);
    ot_send(b, T_DONE, NULL, 0);
    ot_send(d, T_DONE, NULL, 0);
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
    /* the killed calls' references went with them: the record and fd too */
    wait_sockets_gone(live0);
    ot_assert_eq(fd_count(), fds0);
}
