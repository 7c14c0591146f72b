/* Stress of sockets changing owners and active modes on several schedulers
 * (run under TSan and ASan): writers pump a known byte stream into each of
 * many sockets; a socket travels between worker processes as a token
 * carrying how many bytes its owners have seen so far. Each owner reads a
 * while in a random mode (once, N, true, or passive reads), goes passive,
 * takes the messages already delivered to it, and hands the socket to a
 * random worker. Every owner checks that the bytes it gets continue the
 * stream exactly: across hand-overs, mode switches, cancelled multishot
 * receives and the pending queue, no byte is lost, repeated or reordered,
 * and no socket message reaches a process that does not own the socket
 * (checked: it would hold a stranger's socket). At the end every record is
 * freed and no receive is armed. */
#include <stdlib.h>

#include "support/sock_util.h"

static void four_schedulers(void) {
    ot_test_config.schedulers = 4;
}

#define SOCKS 24
#define WORKERS 8
#define BYTES (384u << 10)

static uint8_t sbyte(uint32_t sock, size_t k) {
    return (uint8_t)(k * 13u + sock * 101u + (k >> 9));
}

struct token {
    ot_sock s;
    uint32_t id;
    uint64_t got;
    uint32_t hops;
};

static ot_pid workers[WORKERS];
static ot_pid test_pid;

struct wr {
    int fd;
    uint32_t id;
};

static void stream_writer(void *arg) {
    struct wr w = *(struct wr *)arg;
    free(arg);
    char b[7000];
    size_t k = 0;
    uint32_t rnd = w.id * 2654435761u + 1;
    while (k < BYTES) {
        rnd = rnd * 1103515245u + 12345u;
        size_t n = 1 + (rnd >> 8) % sizeof b;
        if (n > BYTES - k)
            n = BYTES - k;
        for (size_t i = 0; i < n; i++)
            b[i] = (char)sbyte(w.id, k + i);
        ot_assert_eq(ot_io_send(w.fd, b, n, 30000), (ssize_t)n);
        k += n;
        if (rnd & 0x10000)
            ot_yield();
    }
    ot_receive_tag(T_DONE, OT_INFINITY); /* keeps the fd open until the end */
    close(w.fd);
}

static void take(struct token *t, const char *d, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)d[i] != sbyte(t->id, t->got + i))
            ot_assert(false, "socket %u: byte %llu differs after %u hops", t->id,
                      (unsigned long long)(t->got + i), t->hops);
    t->got += n;
}

static bool for_sock(const ot_msg *m, void *arg) {
    if (m->tag < OT_TAG_SOCK_DATA || m->tag > OT_TAG_SOCK_PASSIVE)
        return false;
    const ot_sock_msg *sm = ot_msg_data(m);
    return ot_sock_eq(sm->sock, *(ot_sock *)arg);
}

/* One socket message for t (DATA taken); its tag, or 0 after tmo. */
static uint32_t take_msg(struct token *t, int64_t tmo) {
    ot_msg *m = ot_receive_match(for_sock, &t->s, tmo);
    if (!m)
        return 0;
    uint32_t tag = m->tag;
    ot_sock_msg *sm = ot_msg_data(m);
    if (tag == OT_TAG_SOCK_DATA)
        take(t, sm->data, sm->len);
    ot_assert(tag != OT_TAG_SOCK_ERROR && tag != OT_TAG_SOCK_CLOSED, "socket %u ended", t->id);
    ot_msg_free(m);
    return tag;
}

static void serve(struct token *t, uint32_t *rnd) {
    *rnd = *rnd * 1103515245u + 12345u;
    int pick = (int)((*rnd >> 8) % 4);
    char buf[9000];
    switch (pick) {
    case 0:
        ot_assert_eq(ot_sock_set_active(t->s, OT_ACTIVE_ONCE, 0), 0);
        take_msg(t, 20);
        break;
    case 1: {
        int n = 1 + (int)((*rnd >> 12) % 5);
        ot_assert_eq(ot_sock_set_active(t->s, OT_ACTIVE_N, n), 0);
        for (int i = 0; i < n + 1 && take_msg(t, 20) == OT_TAG_SOCK_DATA; i++) {
        }
        break;
    }
    case 2:
        ot_assert_eq(ot_sock_set_active(t->s, OT_ACTIVE_TRUE, 0), 0);
        for (int i = 0; i < 4 && take_msg(t, 10); i++) {
        }
        break;
    default: {
        ssize_t r = ot_sock_recv(t->s, buf, 1 + (*rnd >> 4) % sizeof buf, 10);
        ot_assert(r > 0 || r == -ETIMEDOUT, "%zd", r);
        if (r > 0)
            take(t, buf, (size_t)r);
    }
    }
    /* passive, then what was delivered before that */
    ot_assert_eq(ot_sock_set_active(t->s, OT_PASSIVE, 0), 0);
    while (take_msg(t, 0)) {
    }
}

static void worker(void *arg) {
    uint32_t rnd = (uint32_t)(uintptr_t)arg * 747796405u + 7;
    for (;;) {
        ot_msg *m = ot_receive_tag(T_SOCK, OT_INFINITY);
        struct token t;
        memcpy(&t, ot_msg_data(m), sizeof t);
        ot_msg_free(m);
        ot_assert_eq(ot_sock_owner(t.s).v, ot_self().v);
        serve(&t, &rnd);
        t.hops++;
        if (t.got == BYTES) {
            ot_assert_eq(ot_sock_close(t.s), 0);
            ot_send(test_pid, T_DONE, &t, sizeof t);
            continue;
        }
        rnd = rnd * 1103515245u + 12345u;
        ot_pid to = workers[(rnd >> 8) % WORKERS];
        if (ot_sock_controlling_process(t.s, to) != 0)
            to = ot_self();
        ot_send(to, T_SOCK, &t, sizeof t);
    }
}

OT_TEST(sock_stress, owners_and_modes_change_under_load, .timeout = 300, .init = four_schedulers) {
    test_pid = ot_self();
    uint64_t live0 = sock_stats().live;
    for (int i = 0; i < WORKERS; i++) {
        ot_spawn_opts o = {.scheduler = i % 4, .scheduler_set = true};
        workers[i] = ot_spawn_opt(worker, (void *)(uintptr_t)(i + 1), &o);
    }
    ot_pid writers[SOCKS];
    for (uint32_t i = 0; i < SOCKS; i++) {
        struct token t = {.id = i};
        int peer;
        sock_pair(&t.s, &peer);
        struct wr *w = malloc(sizeof *w);
        *w = (struct wr){peer, i};
        writers[i] = ot_spawn(stream_writer, w);
        ot_pid to = workers[i % WORKERS];
        ot_assert_eq(ot_sock_controlling_process(t.s, to), 0);
        ot_send(to, T_SOCK, &t, sizeof t);
    }
    uint64_t hops = 0;
    for (int i = 0; i < SOCKS; i++) {
        ot_msg *m = ot_receive_tag(T_DONE, 240000);
        ot_assert(m != NULL, "%d sockets finished", i);
        struct token t;
        memcpy(&t, ot_msg_data(m), sizeof t);
        ot_msg_free(m);
        ot_assert_eq(t.got, BYTES);
        hops += t.hops;
    }
    ot_assert(hops >= SOCKS * 4, "%llu hand-overs", (unsigned long long)hops);
    fprintf(stderr, "sock_stress: %llu hand-overs\n", (unsigned long long)hops);
    for (int i = 0; i < SOCKS; i++)
        ot_send(writers[i], T_DONE, NULL, 0);
    for (int i = 0; i < WORKERS; i++)
        ot_exit(workers[i], OT_REASON(OT_KILL));
    wait_sockets_gone(live0);
    ot_assert_eq(sock_stats().pending, 0);
}
