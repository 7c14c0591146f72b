/* An adversarial review of otter/socket.h (issue 14): every promise of
 * docs/API.md's Sockets section that the first suites do not try to break.
 * One fd adopted twice (two records closing one fd number); hand-over to
 * itself, to a dead pid, to a handler process, twice, from a non-owner;
 * set_active from a non-owner, after close, with a bad mode; active N's
 * range edges; a peer sending 10 MiB while the owner is in active once (the
 * pending queue stays small); many sockets in active true with a slow owner;
 * a half-close (CLOSED, then the owner still sends); a reset (ERROR
 * -ECONNRESET then CLOSED, and a passive read's -ECONNRESET); close racing
 * an armed multishot receive, an owner's exit, a hand-over, an in-flight
 * send and a passive read; stale handles after fd reuse across schedulers;
 * sendv's bad vectors; 50 senders, some killed mid-send (every survivor's
 * records whole and in order); the runtime stopping with receives armed and
 * sends in flight. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

#include "support/sock_util.h"

static void four_schedulers(void) {
    ot_test_config.schedulers = 4;
}

static ot_pid spawn_on(void (*fn)(void *), void *arg, int sched) {
    ot_spawn_opts o = {.scheduler = sched % (int)ot_schedulers(), .scheduler_set = true};
    ot_pid p = ot_spawn_opt(fn, arg, &o);
    ot_assert(p.v != 0);
    return p;
}

static void sleeper(void *arg) {
    (void)arg;
    ot_sleep(OT_INFINITY);
}

static void wait_dead(ot_pid p) {
    for (int i = 0; i < 2000 && ot_is_alive(p); i++)
        ot_sleep(5);
    ot_assert(!ot_is_alive(p));
}

static void kill_wait(ot_pid p) {
    ot_exit(p, OT_REASON(OT_KILL));
    wait_dead(p);
}

/* ---- adopt ------------------------------------------------------------------------ */

/* Two records for one fd would close it twice: the second close would hit
 * whatever socket the kernel gave that number in between, the very thing
 * generation-checked handles exist to prevent. */
OT_TEST(sock_review, adopt_same_fd_twice_is_refused, .timeout = 60) {
    int sv[2];
    ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ot_sock a, b;
    ot_assert_eq(ot_sock_adopt(sv[0], &a), 0);
    int rc = ot_sock_adopt(sv[0], &b);
    if (rc == 0) {
        /* show the harm: the stranger that reuses the number loses its fd */
        ot_assert_eq(ot_sock_close(a), 0);
        int st[2];
        ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st), 0);
        ot_sock_close(b);
        bool alive = fcntl(st[0], F_GETFD) >= 0 && fcntl(st[1], F_GETFD) >= 0;
        ot_assert(false, "one fd adopted twice (a stranger's fd %s)",
                  alive ? "survived" : "was closed through the second handle");
    }
    ot_assert_eq(rc, -EBUSY);
    /* the first handle is untouched, and once it is closed the number is free */
    ot_assert_eq(ot_sock_send(a, "x", 1, 1000), 1);
    char c;
    ot_assert_eq(read(sv[1], &c, 1), 1);
    ot_assert_eq(ot_sock_close(a), 0);
    ot_assert_eq(ot_sock_adopt(sv[1], &b), 0);
    ot_assert_eq(ot_sock_adopt(sv[1], &a), -EBUSY);
    ot_assert_eq(ot_sock_close(b), 0);
}

/* ---- hand-over --------------------------------------------------------------------- */

static void try_handover(void *arg) {
    ot_sock *s = arg;
    int64_t rc = ot_sock_controlling_process(*s, ot_self());
    int64_t rc2 = ot_sock_set_active(*s, OT_ACTIVE_TRUE, 0);
    ot_pid parent;
    ot_msg *m = ot_receive_tag(T_GO, 5000);
    memcpy(&parent, ot_msg_data(m), sizeof parent);
    ot_msg_free(m);
    send_i64(parent, T_RES, rc);
    send_i64(parent, T_RES, rc2);
}

struct hstate {
    ot_pid test;
    ot_sock s;
};

static int data_handler(void *st, const ot_msg *m) {
    struct hstate *h = st;
    if (m->tag == OT_TAG_SOCK_DATA) {
        const ot_sock_msg *sm = ot_msg_data(m);
        int64_t v = ot_sock_eq(sm->sock, h->s) ? (int64_t)sm->len : -1;
        send_i64(h->test, T_RES, v);
        send_i64(h->test, T_RES, ot_sock_owner(h->s).v == ot_self().v);
    }
    return 0;
}

OT_TEST(sock_review, handover_edges, .timeout = 60, .init = four_schedulers) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    ot_pid me = ot_self();
    /* to itself: 0, nothing changes */
    ot_assert_eq(ot_sock_controlling_process(s, me), 0);
    ot_assert_eq(ot_sock_owner(s).v, me.v);
    /* to nobody, to a dead pid: -ESRCH, nothing changes */
    ot_assert_eq(ot_sock_controlling_process(s, OT_NOPID), -ESRCH);
    ot_pid dead = ot_spawn(sleeper, NULL);
    kill_wait(dead);
    ot_assert_eq(ot_sock_controlling_process(s, dead), -ESRCH);
    ot_assert_eq(ot_sock_owner(s).v, me.v);
    ot_assert_eq(ot_sock_send(s, "a", 1, 1000), 1);
    /* from a non-owner: -EPERM, and set_active too */
    ot_pid p = ot_spawn(try_handover, &s);
    ot_send(p, T_GO, &me, sizeof me);
    ot_assert_eq(recv_i64(T_RES, 5000), -EPERM);
    ot_assert_eq(recv_i64(T_RES, 5000), -EPERM);
    ot_assert_eq(ot_sock_owner(s).v, me.v);
    /* a bad mode; active N out of range; all change nothing */
    ot_assert_eq(ot_sock_set_active(s, (ot_active)7, 0), -EINVAL);
    ot_assert_eq(ot_sock_set_active(s, (ot_active)-1, 0), -EINVAL);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 32768), -EINVAL);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, -32769), -EINVAL);
    ot_assert_eq(ot_sock_recv(s, NULL, 0, 0), 0); /* still passive */
    /* to a handler process, set active true first: the handler gets the data */
    struct hstate hs = {me, s};
    ot_pid h = ot_spawn_handler(data_handler, &hs, &(ot_spawn_opts){0});
    ot_assert(h.v != 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), 0);
    ot_assert_eq(ot_sock_controlling_process(s, h), 0);
    ot_assert_eq(ot_sock_owner(s).v, h.v);
    /* twice in a row: the second is no longer the owner's */
    ot_assert_eq(ot_sock_controlling_process(s, h), -EPERM);
    ot_assert_eq(ot_sock_controlling_process(s, me), -EPERM);
    ot_assert_eq(ot_sock_set_active(s, OT_PASSIVE, 0), -EPERM);
    ot_assert_eq(write(peer, "hello", 5), 5);
    ot_assert_eq(recv_i64(T_RES, 5000), 5);
    ot_assert_eq(recv_i64(T_RES, 5000), 1);
    ot_assert(sock_any(50) == NULL, "the old owner got a socket message");
    /* the old owner still sends (gen_tcp); the handler's exit closes it */
    ot_assert_eq(ot_sock_send(s, "b", 1, 1000), 1);
    kill_wait(h);
    for (int i = 0; i < 1000 && ot_sock_owner(s).v; i++)
        ot_sleep(5);
    ot_assert_eq(ot_sock_owner(s).v, 0);
    ot_assert_eq(ot_sock_send(s, "c", 1, 1000), -EBADF);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_ONCE, 0), -EBADF);
    char buf[8];
    ot_assert_eq(read(peer, buf, sizeof buf), 2);
    ot_assert(!memcmp(buf, "ab", 2));
    ot_assert_eq(read(peer, buf, sizeof buf), 0); /* closed */
    close(peer);
}

/* ---- active N's edges --------------------------------------------------------------- */

static void expect_data_then_passive(ot_sock s, int n) {
    for (int i = 0; i < n; i++) {
        struct sock_ev e = sock_event(OT_TAG_SOCK_DATA, 5000);
        ot_assert(ot_sock_eq(e.sock, s));
    }
    ot_msg *m = sock_any(5000);
    ot_assert(m != NULL);
    ot_assert_eq(m->tag, OT_TAG_SOCK_PASSIVE);
    ot_msg_free(m);
    ot_assert(sock_any(50) == NULL, "more than the allowance");
}

OT_TEST(sock_review, active_n_range_edges, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    /* -32768 is in range: on a passive socket the count stays 0, PASSIVE */
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, -32768), 0);
    expect_data_then_passive(s, 0);
    /* 32767 reached by two adds is allowed; one more is not, and changes nothing */
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 32000), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 767), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 1), -EINVAL);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 32767), -EINVAL);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, -32765), 0); /* 2 left */
    char big[100000];
    memset(big, 'z', sizeof big);
    ot_assert_eq(ot_io_send(peer, big, sizeof big, 5000), (ssize_t)sizeof big);
    expect_data_then_passive(s, 2);
    /* once, then N: once's count is 0, so N -1 is passive at once */
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_ONCE, 0), 0);
    ot_assert_eq(sock_event(OT_TAG_SOCK_DATA, 5000).sock.v, s.v); /* pending data first */
    ot_assert(sock_any(50) == NULL, "once sent more than one, or a PASSIVE");
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_ONCE, 0), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, -1), 0);
    /* once's message may have come before the N: either way nothing past PASSIVE */
    ot_msg *m;
    int data = 0;
    while ((m = sock_any(500)) && m->tag == OT_TAG_SOCK_DATA) {
        data++;
        ot_msg_free(m);
    }
    ot_assert(m != NULL, "no PASSIVE");
    ot_assert_eq(m->tag, OT_TAG_SOCK_PASSIVE);
    ot_msg_free(m);
    ot_assert(data <= 1, "%d", data);
    ot_assert(sock_any(50) == NULL);
    ot_assert_eq(ot_sock_close(s), 0);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_N, 1), -EBADF);
    close(peer);
}

/* ---- volume ------------------------------------------------------------------------ */

static uint8_t pat(size_t k) {
    return (uint8_t)(k * 13u + (k >> 9));
}

struct bulk {
    int fd;
    size_t total;
    bool close_after;
};

static void *bulk_writer(void *arg) {
    struct bulk *b = arg;
    char buf[65536];
    size_t k = 0;
    while (k < b->total) {
        size_t n = b->total - k < sizeof buf ? b->total - k : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)pat(k + i);
        size_t off = 0;
        while (off < n) {
            ssize_t w = write(b->fd, buf + off, n - off);
            if (w <= 0)
                return NULL;
            off += (size_t)w;
        }
        k += n;
    }
    if (b->close_after)
        close(b->fd);
    return NULL;
}

/* 10 MiB while the owner asks for one message at a time (once, and N 1 on
 * the multishot path): every byte arrives in order, and what active mode
 * holds beyond the allowance stays small (the rest waits in the kernel). */
OT_TEST(sock_review, ten_mib_while_active_once, .timeout = 120) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    struct bulk b = {peer, 10u << 20, true};
    pthread_t t;
    pthread_create(&t, NULL, bulk_writer, &b);
    size_t got = 0;
    uint64_t max_pending = 0;
    int msgs = 0;
    bool closed = false;
    while (!closed) {
        ot_assert_eq(ot_sock_set_active(s, msgs % 2 ? OT_ACTIVE_ONCE : OT_ACTIVE_N, 1), 0);
        ot_msg *m = sock_any(10000);
        ot_assert(m != NULL, "stalled at %zu", got);
        const ot_sock_msg *sm = ot_msg_data(m);
        if (m->tag == OT_TAG_SOCK_DATA) {
            for (uint32_t i = 0; i < sm->len; i++)
                if ((uint8_t)sm->data[i] != pat(got + i))
                    ot_assert(false, "byte %zu differs", got + i);
            got += sm->len;
            msgs++;
            if (msgs % 2) { /* N 1: its PASSIVE follows */
                ot_msg_free(m);
                m = sock_any(5000);
                ot_assert(m && m->tag == OT_TAG_SOCK_PASSIVE);
            }
        } else {
            ot_assert_eq(m->tag, OT_TAG_SOCK_CLOSED);
            closed = true;
        }
        ot_msg_free(m);
        uint64_t p = sock_stats().pending;
        if (p > max_pending)
            max_pending = p;
    }
    pthread_join(t, NULL);
    ot_assert_eq(got, (size_t)10u << 20);
    /* once and N 1 read one buffer at a time: nothing is ever read ahead */
    ot_assert(max_pending == 0, "pending reached %llu bytes", (unsigned long long)max_pending);
    ot_assert_eq(ot_sock_close(s), 0);
}

#define SLOW_N 48
#define SLOW_BYTES (192u * 1024)

/* gen_tcp's active true has no flow control: a slow owner's mailbox grows.
 * The runtime must deliver all of it, in order per socket, and not fall over. */
OT_TEST(sock_review, many_active_true_sockets_slow_owner, .timeout = 120, .init = four_schedulers) {
    uint64_t live0 = sock_stats().live;
    ot_sock s[SLOW_N];
    int peer[SLOW_N];
    struct bulk b[SLOW_N];
    pthread_t t[SLOW_N];
    for (int i = 0; i < SLOW_N; i++) {
        sock_pair(&s[i], &peer[i]);
        ot_assert_eq(ot_sock_set_active(s[i], OT_ACTIVE_TRUE, 0), 0);
    }
    for (int i = 0; i < SLOW_N; i++) {
        b[i] = (struct bulk){peer[i], SLOW_BYTES, true};
        pthread_create(&t[i], NULL, bulk_writer, &b[i]);
    }
    ot_sleep(300); /* the slow owner */
    size_t got[SLOW_N] = {0};
    int closed = 0;
    while (closed < SLOW_N) {
        ot_msg *m = sock_any(10000);
        ot_assert(m != NULL, "stalled with %d closed", closed);
        const ot_sock_msg *sm = ot_msg_data(m);
        int i = 0;
        while (i < SLOW_N && !ot_sock_eq(s[i], sm->sock))
            i++;
        ot_assert(i < SLOW_N);
        if (m->tag == OT_TAG_SOCK_DATA) {
            for (uint32_t k = 0; k < sm->len; k++)
                if ((uint8_t)sm->data[k] != pat(got[i] + k))
                    ot_assert(false, "socket %d byte %zu", i, got[i] + k);
            got[i] += sm->len;
        } else {
            ot_assert_eq(m->tag, OT_TAG_SOCK_CLOSED);
            ot_assert_eq(got[i], SLOW_BYTES);
            closed++;
        }
        ot_msg_free(m);
    }
    for (int i = 0; i < SLOW_N; i++) {
        pthread_join(t[i], NULL);
        ot_assert_eq(ot_sock_close(s[i]), 0);
    }
    wait_sockets_gone(live0);
}

/* ---- ends: half-close and reset ------------------------------------------------------ */

OT_TEST(sock_review, half_close_then_closed_and_the_owner_still_sends, .timeout = 60) {
    ot_sock c, a;
    tcp_pair(&c, &a);
    ot_assert_eq(ot_sock_set_active(a, OT_ACTIVE_TRUE, 0), 0);
    ot_assert_eq(ot_sock_send(c, "hello", 5, 1000), 5);
    ot_assert_eq(ot_sock_shutdown(c, SHUT_WR), 0);
    size_t got = 0;
    for (;;) {
        ot_msg *m = sock_any(5000);
        ot_assert(m != NULL);
        uint32_t tag = m->tag;
        if (tag == OT_TAG_SOCK_DATA)
            got += ((ot_sock_msg *)ot_msg_data(m))->len;
        ot_msg_free(m);
        if (tag != OT_TAG_SOCK_DATA) {
            ot_assert_eq(tag, OT_TAG_SOCK_CLOSED);
            break;
        }
    }
    ot_assert_eq(got, 5);
    ot_assert(sock_any(50) == NULL, "something after CLOSED");
    /* exit_on_close false: the handle lives, the owner answers */
    ot_assert_eq(ot_sock_send(a, "bye", 3, 1000), 3);
    char buf[8];
    ot_assert_eq(ot_sock_recv(c, buf, 3, 5000), 3);
    ot_assert(!memcmp(buf, "bye", 3));
    ot_assert_eq(ot_sock_set_active(a, OT_ACTIVE_ONCE, 0), 0); /* nothing more comes */
    ot_assert(sock_any(50) == NULL, "a second CLOSED");
    ot_assert_eq(ot_sock_close(a), 0);
    ot_assert_eq(ot_sock_recv(c, buf, 1, 5000), 0);
    ot_assert_eq(ot_sock_close(c), 0);
}

static void reset_close(ot_sock c) {
    struct linger lg = {1, 0};
    ot_assert_eq(setsockopt(ot_sock_fd(c), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    ot_assert_eq(ot_sock_close(c), 0);
}

OT_TEST(sock_review, reset_is_error_then_closed, .timeout = 60) {
    ot_sock c, a;
    tcp_pair(&c, &a);
    ot_assert_eq(ot_sock_set_active(a, OT_ACTIVE_TRUE, 0), 0);
    reset_close(c);
    struct sock_ev e = sock_event(OT_TAG_SOCK_ERROR, 5000);
    ot_assert(ot_sock_eq(e.sock, a));
    ot_assert_eq(e.err, -ECONNRESET);
    ot_msg *m = sock_any(5000);
    ot_assert(m && m->tag == OT_TAG_SOCK_CLOSED);
    ot_msg_free(m);
    ot_assert(sock_any(50) == NULL);
    ot_assert_eq(ot_sock_send(a, "x", 1, 1000) < 0, 1);
    ot_assert_eq(ot_sock_close(a), 0);
    /* passive: the read answers -ECONNRESET */
    tcp_pair(&c, &a);
    reset_close(c);
    char b;
    ot_assert_eq(ot_sock_recv(a, &b, 1, 5000), -ECONNRESET);
    ot_assert_eq(ot_sock_close(a), 0);
}

/* ---- races with close ------------------------------------------------------------------ */

struct racer {
    ot_sock s;
    ot_pid test;
    int what;
};

enum { R_CLOSE, R_HANDOVER_BACK, R_EXIT_OWNER };

static void closer(void *arg) {
    struct racer *r = arg;
    ot_msg *m = ot_receive_tag(T_GO, 5000);
    ot_msg_free(m);
    send_i64(r->test, T_RES, ot_sock_close(r->s));
}

/* An owner with an active true socket that exits when told. */
static void active_owner(void *arg) {
    struct racer *r = arg;
    ot_msg *m = ot_receive_tag(T_SOCK, 5000);
    ot_msg_free(m);
    ot_assert_eq(ot_sock_set_active(r->s, OT_ACTIVE_TRUE, 0), 0);
    send_i64(r->test, T_READY, 0);
    m = ot_receive_tag(T_GO, 5000);
    ot_msg_free(m);
    for (;;) {
        m = sock_any(OT_INFINITY);
        ot_msg_free(m);
    }
}

/* Close from one scheduler while the armed multishot delivers on another,
 * while the owner exits, while a hand-over runs: each ends the socket once,
 * nothing is delivered for it afterwards, nothing leaks. */
OT_TEST(sock_review, close_races_armed_receive_exit_and_handover, .timeout = 240,
        .init = four_schedulers) {
    uint64_t live0 = sock_stats().live;
    char junk[4096];
    memset(junk, 'j', sizeof junk);
    for (int i = 0; i < 300; i++) {
        ot_sock s;
        int peer;
        sock_pair(&s, &peer);
        struct racer r = {s, ot_self(), i % 3};
        ot_pid o = spawn_on(active_owner, &r, i + 1);
        ot_assert_eq(ot_sock_controlling_process(s, o), 0);
        ot_send(o, T_SOCK, NULL, 0);
        ot_assert_eq(recv_i64(T_READY, 5000), 0);
        ot_pid c = spawn_on(closer, &r, i + 2);
        for (int k = 0; k < 4; k++)
            (void)!write(peer, junk, sizeof junk);
        ot_send(o, T_GO, NULL, 0);
        ot_send(c, T_GO, NULL, 0);
        if (r.what == R_EXIT_OWNER)
            ot_exit(o, OT_REASON(OT_KILL));
        int64_t rc = recv_i64(T_RES, 5000);
        if (r.what == R_EXIT_OWNER)
            ot_assert(rc == 0 || rc == -EBADF, "%lld", (long long)rc);
        else
            ot_assert_eq(rc, 0);
        ot_assert_eq(ot_sock_owner(s).v, 0);
        ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), -EBADF);
        /* the peer sees the close (EOF or a reset), never a hang */
        char b[4096];
        ssize_t n;
        while ((n = read(peer, b, sizeof b)) > 0) {
        }
        ot_assert(n == 0 || errno == ECONNRESET, "%zd %d", n, errno);
        close(peer);
        kill_wait(o);
        wait_dead(c);
    }
    wait_sockets_gone(live0);
    /* a hand-over racing a close: 0 or -EBADF, and no record left */
    for (int i = 0; i < 200; i++) {
        ot_sock s;
        int peer;
        sock_pair(&s, &peer);
        ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), 0);
        struct racer r = {s, ot_self(), R_CLOSE};
        ot_pid to = spawn_on(sleeper, NULL, i);
        ot_pid c = spawn_on(closer, &r, i + 1);
        ot_send(c, T_GO, NULL, 0);
        int rc = ot_sock_controlling_process(s, to);
        ot_assert(rc == 0 || rc == -EBADF, "%d", rc);
        ot_assert_eq(recv_i64(T_RES, 5000), 0);
        ot_assert_eq(ot_sock_owner(s).v, 0);
        kill_wait(to);
        wait_dead(c);
        close(peer);
    }
    wait_sockets_gone(live0);
    ot_msg *m;
    while ((m = sock_any(0)))
        ot_msg_free(m); /* the first loop's owners were other processes */
}

static void blocked_sender(void *arg) {
    struct racer *r = arg;
    size_t n = 8u << 20;
    char *b = calloc(1, n);
    send_i64(r->test, T_READY, 0);
    ssize_t rc = ot_sock_send(r->s, b, n, OT_INFINITY);
    free(b);
    send_i64(r->test, T_RES, rc);
}

static void blocked_reader(void *arg) {
    struct racer *r = arg;
    char b[16];
    send_i64(r->test, T_READY, 0);
    send_i64(r->test, T_RES, ot_sock_recv(r->s, b, sizeof b, OT_INFINITY));
}

/* A close by another process ends a send parked on a full socket, a send
 * waiting for the turn, and a passive read parked in the kernel. */
OT_TEST(sock_review, close_ends_parked_sends_and_reads, .timeout = 60, .init = four_schedulers) {
    uint64_t live0 = sock_stats().live;
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    struct racer r = {s, ot_self(), 0};
    ot_pid p1 = spawn_on(blocked_sender, &r, 1);
    ot_assert_eq(recv_i64(T_READY, 5000), 0);
    ot_sleep(100); /* it fills the socket and parks */
    ot_pid p2 = spawn_on(blocked_sender, &r, 2);
    ot_assert_eq(recv_i64(T_READY, 5000), 0);
    ot_pid p3 = spawn_on(blocked_reader, &r, 3);
    ot_assert_eq(recv_i64(T_READY, 5000), 0);
    ot_sleep(100);
    ot_assert_eq(ot_sock_close(s), 0);
    for (int i = 0; i < 3; i++) {
        int64_t rc = recv_i64(T_RES, 5000);
        ot_assert(rc < 0 || rc == 0, "%lld", (long long)rc); /* an error, or the reader's EOF */
    }
    wait_dead(p1);
    wait_dead(p2);
    wait_dead(p3);
    close(peer);
    wait_sockets_gone(live0);
}

/* ---- stale handles across schedulers ---------------------------------------------------- */

static void make_and_close(void *arg) {
    struct racer *r = arg;
    int peer;
    sock_pair(&r->s, &peer);
    ot_assert_eq(ot_sock_set_active(r->s, OT_ACTIVE_TRUE, 0), 0);
    ot_assert_eq(ot_sock_close(r->s), 0);
    close(peer);
    send_i64(r->test, T_DONE, ot_sock_fd(r->s));
}

struct reuse {
    ot_sock old;
    ot_pid test;
};

static void reuse_numbers(void *arg) {
    struct reuse *u = arg;
    ot_sock fresh[8];
    int peers[8];
    for (int i = 0; i < 8; i++)
        sock_pair(&fresh[i], &peers[i]);
    char b[4] = "abc";
    struct iovec v = {b, 3};
    ot_sock out;
    ot_assert_eq(ot_sock_send(u->old, b, 3, 100), -EBADF);
    ot_assert_eq(ot_sock_sendv(u->old, &v, 1, 100), -EBADF);
    ot_assert_eq(ot_sock_recv(u->old, b, 3, 100), -EBADF);
    ot_assert_eq(ot_sock_set_active(u->old, OT_ACTIVE_TRUE, 0), -EBADF);
    ot_assert_eq(ot_sock_controlling_process(u->old, ot_self()), -EBADF);
    ot_assert_eq(ot_sock_shutdown(u->old, SHUT_RDWR), -EBADF);
    ot_assert_eq(ot_sock_accept(u->old, &out, NULL, NULL, 0), -EBADF);
    ot_assert_eq(ot_sock_close(u->old), -EBADF);
    ot_assert_eq(ot_sock_fd(u->old), -EBADF);
    for (int i = 0; i < 8; i++) {
        ot_assert_eq(ot_sock_send(fresh[i], "ok", 2, 1000), 2);
        char got[2];
        ot_assert_eq(read(peers[i], got, 2), 2);
        ot_assert_eq(ot_sock_close(fresh[i]), 0);
        close(peers[i]);
    }
    send_i64(u->test, T_DONE, 0);
}

OT_TEST(sock_review, stale_handles_after_reuse_across_schedulers, .timeout = 60,
        .init = four_schedulers) {
    for (int i = 0; i < 50; i++) {
        struct racer r = {.test = ot_self()};
        spawn_on(make_and_close, &r, i);
        ot_assert_eq(recv_i64(T_DONE, 5000), -EBADF);
        struct reuse u = {r.s, ot_self()};
        spawn_on(reuse_numbers, &u, i + 1 + i % 3);
        ot_assert_eq(recv_i64(T_DONE, 5000), 0);
    }
}

/* ---- sendv's vectors --------------------------------------------------------------------- */

OT_TEST(sock_review, sendv_bad_vectors, .timeout = 60) {
    ot_sock s;
    int peer;
    sock_pair(&s, &peer);
    char b[8] = "abcdefg";
    struct iovec v[2] = {{b, 3}, {NULL, 0}};
    ot_assert_eq(ot_sock_sendv(s, NULL, 0, 1000), 0);
    ot_assert_eq(ot_sock_sendv(s, v, 0, 1000), 0);
    ot_assert_eq(ot_sock_sendv(s, v, -1, 1000), -EINVAL);
    ot_assert_eq(ot_sock_sendv(s, v, INT_MIN, 1000), -EINVAL);
    ot_assert_eq(ot_sock_sendv(s, NULL, 1, 1000), -EINVAL);
    ot_assert_eq(ot_sock_sendv(s, v, 1, -2), -EINVAL);
    struct iovec *many = calloc(IOV_MAX + 1, sizeof *many);
    char *bytes = malloc(IOV_MAX + 1);
    for (int i = 0; i <= IOV_MAX; i++) {
        bytes[i] = (char)('A' + i % 26);
        many[i] = (struct iovec){bytes + i, 1};
    }
    ot_assert_eq(ot_sock_sendv(s, many, IOV_MAX + 1, 1000), -EINVAL);
    struct iovec nb[2] = {{b, 1}, {NULL, 4}};
    ot_assert_eq(ot_sock_sendv(s, nb, 2, 1000), -EINVAL);
    struct iovec huge[2] = {{b, (size_t)SSIZE_MAX}, {b, 1}};
    ot_assert_eq(ot_sock_sendv(s, huge, 2, 1000), -EINVAL);
    struct iovec huge2[2] = {{b, SIZE_MAX / 2 + 1}, {b, SIZE_MAX / 2 + 1}};
    ot_assert_eq(ot_sock_sendv(s, huge2, 2, 1000), -EINVAL);
    ot_assert_eq(ot_sock_send(s, NULL, 1, 1000), -EINVAL);
    ot_assert_eq(ot_sock_send(s, b, (size_t)SSIZE_MAX + 1, 1000), -EINVAL);
    ot_assert_eq(ot_sock_send(s, NULL, 0, 1000), 0);
    /* none of that sent a byte; an empty NULL-based iovec is skipped */
    ot_assert_eq(ot_sock_sendv(s, v, 2, 1000), 3);
    /* exactly IOV_MAX one-byte iovecs, in order (the runtime sends 64 a time) */
    ot_assert_eq(ot_sock_sendv(s, many, IOV_MAX, 5000), IOV_MAX);
    char *in = malloc(IOV_MAX + 3);
    ot_assert_eq(read_exact(peer, in, IOV_MAX + 3, 5000), IOV_MAX + 3);
    ot_assert(!memcmp(in, "abc", 3));
    ot_assert(!memcmp(in + 3, bytes, IOV_MAX));
    ot_assert_eq(recv(peer, in, 1, MSG_DONTWAIT), -1);
    free(in);
    free(many);
    free(bytes);
    ot_assert_eq(ot_sock_close(s), 0);
    close(peer);
}

/* ---- 50 senders, some killed mid-send ---------------------------------------------------- */

#define NSEND 50
#define NREC 12
#define RECLEN 3000

/* Every byte of record q of sender k is k + 1 + NSEND * (q % 5): a run of
 * one value is one record, and consecutive records of one sender differ. */
static uint8_t rec_byte(int k, int q) {
    return (uint8_t)(k + 1 + NSEND * (q % 5));
}

struct msender {
    ot_sock s;
    int k;
    ot_pid test;
};

static void msender(void *arg) {
    struct msender *a = arg;
    static char bufs[NSEND][RECLEN]; /* not malloc'd: a killed sender frees nothing */
    char *buf = bufs[a->k];
    for (int q = 0; q < NREC; q++) {
        memset(buf, rec_byte(a->k, q), RECLEN);
        struct iovec v[3] = {{buf, 1000}, {buf + 1000, 1000}, {buf + 2000, 1000}};
        ssize_t r = ot_sock_sendv(a->s, v, 3, 30000);
        ot_assert_eq(r, RECLEN);
    }
    send_i64(a->test, T_DONE, a->k);
}

struct mreader {
    int fd;
    uint8_t *all;
    size_t n, cap;
};

static void *mread(void *arg) {
    struct mreader *m = arg;
    for (;;) {
        if (m->n < 64 * 1024)
            usleep(2000); /* slow at first: the senders park in the ring */
        ssize_t r = read(m->fd, m->all + m->n, m->cap - m->n);
        if (r <= 0)
            return NULL;
        m->n += (size_t)r;
    }
}

OT_TEST(sock_review, fifty_senders_some_killed_mid_send, .timeout = 180, .init = four_schedulers) {
    uint64_t live0 = sock_stats().live;
    int sv[2];
    ot_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ot_sock s;
    ot_assert_eq(ot_sock_adopt(sv[0], &s), 0);
    struct mreader rd = {sv[1], malloc((size_t)NSEND * NREC * RECLEN), 0,
                         (size_t)NSEND * NREC * RECLEN};
    pthread_t t;
    pthread_create(&t, NULL, mread, &rd);
    struct msender a[NSEND];
    ot_pid p[NSEND];
    for (int k = 0; k < NSEND; k++) {
        a[k] = (struct msender){s, k, ot_self()};
        p[k] = spawn_on(msender, &a[k], k);
    }
    bool killed[NSEND] = {0};
    ot_sleep(20);
    for (int k = 3; k < NSEND; k += 5) {
        killed[k] = true;
        ot_exit(p[k], OT_REASON(OT_KILL));
        ot_sleep(3);
    }
    /* a sender killed after its last send finished first: it counts as whole */
    bool done[NSEND] = {0};
    int left = 0;
    for (int k = 0; k < NSEND; k++)
        left += !killed[k];
    while (left > 0) {
        int64_t k = recv_i64(T_DONE, 60000);
        done[k] = true;
        left -= !killed[k];
    }
    for (int k = 0; k < NSEND; k++)
        wait_dead(p[k]);
    ot_msg *dm;
    while ((dm = ot_receive_tag(T_DONE, 0))) {
        int64_t k;
        memcpy(&k, ot_msg_data(dm), sizeof k);
        done[k] = true;
        ot_msg_free(dm);
    }
    for (int k = 0; k < NSEND; k++)
        killed[k] = killed[k] && !done[k];
    ot_assert_eq(ot_sock_close(s), 0);
    pthread_join(t, NULL);
    close(sv[1]);
    /* runs of one value: every survivor's are whole and in order; a killed
     * sender's are whole but for its last */
    int next[NSEND] = {0};
    bool cut[NSEND] = {0};
    for (size_t i = 0; i < rd.n;) {
        uint8_t v = rd.all[i];
        size_t j = i;
        while (j < rd.n && rd.all[j] == v)
            j++;
        size_t len = j - i;
        ot_assert(v >= 1 && v <= NSEND * 5, "byte %u at %zu", v, i);
        int k = (v - 1) % NSEND;
        ot_assert(!cut[k], "sender %d sent after a cut record", k);
        ot_assert_eq(v, rec_byte(k, next[k]));
        if (len != RECLEN) {
            ot_assert(killed[k], "survivor %d: a record of %zu bytes at %zu", k, len, i);
            ot_assert(len < RECLEN, "sender %d: %zu bytes in one run", k, len);
            cut[k] = true;
        }
        next[k]++;
        i = j;
    }
    for (int k = 0; k < NSEND; k++)
        if (!killed[k])
            ot_assert_eq(next[k], NREC);
    free(rd.all);
    wait_sockets_gone(live0);
}

/* ---- the runtime stops with receives armed and sends in flight ------------------------------ */

static void owner_forever(void *arg) {
    int *peer = arg;
    ot_sock s;
    sock_pair(&s, peer);
    ot_assert_eq(ot_sock_set_active(s, OT_ACTIVE_TRUE, 0), 0);
    static char zeros[4u << 20]; /* shared, read only: a killed owner frees nothing */
    ot_sock_send(s, zeros, sizeof zeros, OT_INFINITY); /* parks: nobody reads the peer */
    ot_sleep(OT_INFINITY);
}

OT_TEST(sock_review, runtime_stops_with_receives_armed_and_sends_parked, .timeout = 60,
        .init = four_schedulers) {
    static int peers[8];
    for (int i = 0; i < 8; i++)
        spawn_on(owner_forever, &peers[i], i);
    ot_sleep(200);
    for (int i = 0; i < 8; i++)
        (void)!write(peers[i], "data", 4);
    ot_sleep(50);
    /* the body returns: the runtime stops with all of that in the kernel */
}
