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
 * freed and no receive is armed. A second test churns: owners in random
 * modes handing sockets around while peers write and close, and a chaos loop
 * closes sockets from outside, tries set_active as a non-owner (-EPERM or
 * -EBADF, nothing else) and kills owners; afterwards no record, fd, pending
 * byte or provided buffer is left. */
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

/* ---- churn: kills, foreign closes and hand-overs racing active receives ---- */

#define OWNERS 12
#define PAIRS 16
#define ROUNDS 30

static ot_pid owners[OWNERS];

/* Serves whatever sockets it is given, in random modes, handing them on at
 * random, until killed; sockets closed under it are dropped (-EBADF). */
static void churn_owner(void *arg) {
    uint32_t rnd = (uint32_t)(uintptr_t)arg * 2246822519u + 3;
    ot_sock mine[PAIRS * 2];
    int n = 0;
    for (;;) {
        ot_msg *m = ot_receive(n ? 2 : OT_INFINITY);
        if (m) {
            if (m->tag == T_SOCK && n < PAIRS * 2)
                memcpy(&mine[n++], ot_msg_data(m), sizeof(ot_sock));
            ot_msg_free(m);
        }
        for (int i = 0; i < n; i++) {
            rnd = rnd * 1103515245u + 12345u;
            int rc;
            switch ((rnd >> 8) % 6) {
            case 0:
                rc = ot_sock_set_active(mine[i], OT_ACTIVE_ONCE, 0);
                break;
            case 1:
                rc = ot_sock_set_active(mine[i], OT_ACTIVE_N, 1 + (int)((rnd >> 12) % 4));
                break;
            case 2:
                rc = ot_sock_set_active(mine[i], OT_ACTIVE_TRUE, 0);
                break;
            case 3:
                rc = ot_sock_set_active(mine[i], OT_PASSIVE, 0);
                if (rc == 0) {
                    char b[512];
                    ssize_t r = ot_sock_recv(mine[i], b, sizeof b, 0);
                    ot_assert(r >= 0 || r == -ETIMEDOUT || r == -EBADF || r == -ECONNRESET, "%zd",
                              r);
                }
                break;
            case 4: {
                ot_pid to = owners[(rnd >> 12) % OWNERS];
                rc = ot_sock_controlling_process(mine[i], to);
                ot_assert(rc == 0 || rc == -ESRCH || rc == -EBADF, "%d", rc);
                if (rc == 0 && to.v != ot_self().v) {
                    ot_send(to, T_SOCK, &mine[i], sizeof mine[i]);
                    rc = -EBADF; /* not ours any more: drop it below */
                } else if (rc == -ESRCH) {
                    rc = 0; /* the target was killed: still ours */
                }
                break;
            }
            default:
                ot_sock_send(mine[i], "pong", 4, 0); /* the peer may be gone */
                rc = 0;
                break;
            }
            ot_assert(rc == 0 || rc == -EBADF, "%d", rc);
            if (rc == -EBADF)
                mine[i--] = mine[--n];
        }
    }
}

struct churn_writer {
    int fd;
    uint32_t seed;
};

static void churn_write(void *arg) {
    struct churn_writer w = *(struct churn_writer *)arg;
    free(arg);
    char b[3000];
    memset(b, 'd', sizeof b);
    for (int i = 0; i < 40; i++) {
        w.seed = w.seed * 1103515245u + 12345u;
        if (ot_io_send(w.fd, b, 1 + (w.seed >> 8) % sizeof b, 2000) < 0)
            break;
        if (w.seed & 0x100)
            ot_yield();
    }
    close(w.fd);
}

static void bufring_check(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    int64_t ok = ot__io_bufring_avail() < 0 || ot__io_bufring_avail() == ot__io_bufring_entries();
    ot_send(parent, T_RES, &ok, sizeof ok);
}

OT_TEST(sock_stress, churn_with_kills_closes_and_handovers, .timeout = 300,
        .init = four_schedulers) {
    uint64_t live0 = sock_stats().live;
    int fds0 = fd_count();
    uint32_t rnd = 12345;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < OWNERS; i++) {
            ot_spawn_opts o = {.scheduler = i % 4, .scheduler_set = true};
            owners[i] = ot_spawn_opt(churn_owner, (void *)(uintptr_t)(round * OWNERS + i + 1), &o);
        }
        ot_sock socks[PAIRS];
        for (int i = 0; i < PAIRS; i++) {
            int peer;
            sock_pair(&socks[i], &peer);
            struct churn_writer *w = malloc(sizeof *w);
            *w = (struct churn_writer){peer, rnd + (uint32_t)i};
            ot_spawn(churn_write, w);
            ot_pid to = owners[i % OWNERS];
            ot_assert_eq(ot_sock_controlling_process(socks[i], to), 0);
            ot_send(to, T_SOCK, &socks[i], sizeof socks[i]);
        }
        /* chaos: foreign closes, foreign set_active, kills */
        for (int k = 0; k < 40; k++) {
            rnd = rnd * 1103515245u + 12345u;
            ot_sock s = socks[(rnd >> 8) % PAIRS];
            switch ((rnd >> 16) % 4) {
            case 0: {
                int rc = ot_sock_close(s);
                ot_assert(rc == 0 || rc == -EBADF, "%d", rc);
                break;
            }
            case 1: {
                int rc = ot_sock_set_active(s, OT_ACTIVE_TRUE, 0);
                ot_assert(rc == -EPERM || rc == -EBADF, "%d", rc);
                break;
            }
            case 2:
                ot_exit(owners[(rnd >> 4) % OWNERS], OT_REASON(OT_KILL));
                break;
            default:
                ot_sleep(1);
            }
        }
        for (int i = 0; i < OWNERS; i++)
            ot_exit(owners[i], OT_REASON(OT_KILL));
        for (int i = 0; i < PAIRS; i++) {
            int rc = ot_sock_close(socks[i]);
            ot_assert(rc == 0 || rc == -EBADF, "%d", rc);
        }
    }
    wait_sockets_gone(live0);
    ot_assert_eq(sock_stats().pending, 0);
    for (int i = 0; i < 200 && fd_count() != fds0; i++)
        ot_sleep(10); /* writers close their ends */
    ot_assert_eq(fd_count(), fds0);
    ot_pid me = ot_self();
    for (int i = 0; i < 4; i++) {
        ot_spawn_opts o = {.scheduler = i, .scheduler_set = true, .bind = true};
        ot_spawn_opt(bufring_check, &me, &o);
    }
    for (int i = 0; i < 4; i++)
        ot_assert_eq(recv_i64(T_RES, 5000), 1);
}
