/* Tests of otter/listener.h, the acceptor pool: N acceptors accept at once
 * (while the connections supervisor is held in one start, the other
 * acceptors' accepted sockets queue behind it, one each); max_connections is
 * exact (the next client waits unserved and is served when one closes); a
 * crashing connection frees its slot and leaves the pool as it was; a killed
 * acceptor is restarted and the pool serves on; the drain (new connects
 * refused, in-flight connections finish, the leftover is shut down after
 * the timeout, exact counts) from ot_listener_stop and from the parent's
 * shutdown under the application tree; suspend and resume; a connection as a
 * gen_server taking its socket in handle_info; 8 clients churning 320
 * connections (a fifth of them crashing) against max_connections 4 while
 * the listener is suspended and resumed twice, on 4 schedulers and on 1:
 * never more than 4 connections alive, every request served, no client
 * left hanging, the count back to 0; bad
 * options, a port in use,
 * calls on things that are not listeners. Clients are ot_sock sockets of
 * the test's processes. */
#include <otter/testing.h>
#include <otter/listener.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT 10000 /* ms: bounds for things that must happen, never speed */

enum { TAG_HELLO = OT_TAG_USER + 1, TAG_FINISH, TAG_STOPPED };

static void many_schedulers(void) {
    ot_test_config.schedulers = 4;
}

/* ---- clients ---------------------------------------------------------------------- */

static ot_sock cl_connect(int port) {
    ot_sock s;
    int rc = ot_sock_connect_tcp("127.0.0.1", (uint16_t)port, &s, WAIT);
    ot_assert_eq(rc, 0);
    return s;
}

/* Sends line and expects exactly want back. */
static void cl_expect_at(int at, ot_sock s, const char *line, const char *want) {
    if (line)
        ot_assert_eq(ot_sock_send(s, line, strlen(line), WAIT), (long long)strlen(line));
    char buf[128];
    size_t n = 0, len = strlen(want);
    while (n < len) {
        ssize_t r = ot_sock_recv(s, buf + n, len - n, WAIT);
        ot_assert(r > 0, "recv %zd (line %d)", r, at);
        n += (size_t)r;
    }
    buf[n] = 0;
    ot_assert(!strcmp(buf, want), "got '%s' want '%s'", buf, want);
}

#define cl_expect(...) cl_expect_at(__LINE__, __VA_ARGS__)

/* Nothing arrives for ms (the connection is not served). */
static void cl_silent(ot_sock s, int64_t ms) {
    char c;
    ot_assert_eq(ot_sock_recv(s, &c, 1, ms), -ETIMEDOUT);
}

/* The server closed it (EOF, or a reset). */
static void cl_closed(ot_sock s) {
    char c;
    ssize_t r = ot_sock_recv(s, &c, 1, WAIT);
    ot_assert(r == 0 || r == -ECONNRESET, "recv %zd", r);
}

/* Connects until the port refuses (the listening socket is closed). */
static void wait_refused(int port) {
    for (int i = 0; i < WAIT / 10; i++) {
        ot_sock s;
        int rc = ot_sock_connect_tcp("127.0.0.1", (uint16_t)port, &s, WAIT);
        if (rc == -ECONNREFUSED)
            return;
        if (rc == 0)
            ot_sock_close(s);
        ot_sleep(10);
    }
    ot_assert(false, "port %d still accepts", port);
}

static void wait_count(ot_pid l, int n) {
    for (int i = 0; i < WAIT / 5 && ot_listener_count_connections(l) != n; i++)
        ot_sleep(5);
    ot_assert_eq(ot_listener_count_connections(l), n);
}

static ot_pid child(ot_pid sup, const char *id) {
    ot_child_info in[8];
    size_t n = 0;
    ot_assert_eq(ot_supervisor_which_children(sup, in, 8, &n), 0);
    for (size_t i = 0; i < n && i < 8; i++)
        if (!strcmp(in[i].id, id))
            return in[i].pid;
    return OT_NOPID;
}

/* ---- connections ------------------------------------------------------------------ */

/* Echoes what it reads; "crash" ends it abnormally, "hold" makes it tell
 * the test its pid and wait for TAG_FINISH before it answers "done". */
static void echo(ot_sock s, void *arg) {
    ot_pid test = *(ot_pid *)arg;
    char buf[64];
    for (;;) {
        ssize_t n = ot_sock_recv(s, buf, sizeof buf, OT_INFINITY);
        if (n <= 0)
            return;
        if (n >= 5 && !memcmp(buf, "crash", 5))
            ot_exit_self(ot_reason_error("asked to crash"));
        if (n >= 4 && !memcmp(buf, "hold", 4)) {
            ot_pid me = ot_self();
            ot_send(test, TAG_HELLO, &me, sizeof me);
            ot_msg *m = ot_receive_tag(TAG_FINISH, OT_INFINITY);
            ot_msg_free(m);
            ot_sock_send(s, "done", 4, WAIT);
            return;
        }
        if (ot_sock_send(s, buf, (size_t)n, WAIT) < 0)
            return;
    }
}

static ot_pid test_pid;

static ot_listener_opts echo_opts(int acceptors, int64_t max) {
    test_pid = ot_self();
    return (ot_listener_opts){.host = "127.0.0.1",
                              .num_acceptors = acceptors,
                              .max_connections = max,
                              .conn = echo,
                              .arg = &test_pid};
}

static ot_pid start(const ot_listener_opts *o, int *port) {
    ot_pid l;
    ot_assert_eq(ot_listener_start_link(o, &l), 0);
    *port = ot_listener_port(l);
    ot_assert(*port > 0, "port %d", *port);
    return l;
}

/* ---- the tests -------------------------------------------------------------------- */

OT_TEST(listener, serves_many_clients_and_stops, .init = many_schedulers) {
    ot_listener_opts o = echo_opts(4, 0);
    int port;
    ot_pid l = start(&o, &port);
    ot_sock c[20];
    for (int i = 0; i < 20; i++)
        c[i] = cl_connect(port);
    for (int i = 0; i < 20; i++) {
        char line[16];
        snprintf(line, sizeof line, "ping %d", i);
        cl_expect(c[i], line, line);
    }
    ot_assert_eq(ot_listener_count_connections(l), 20);
    for (int i = 0; i < 10; i++)
        ot_sock_close(c[i]);
    wait_count(l, 10);
    ot_assert_eq(ot_listener_stop(l, WAIT), 10); /* no drain asked: 10 shut down */
    ot_assert(!ot_is_alive(l));
    for (int i = 10; i < 20; i++) {
        cl_closed(c[i]);
        ot_sock_close(c[i]);
    }
    ot_sock s;
    ot_assert_eq(ot_sock_connect_tcp("127.0.0.1", (uint16_t)port, &s, WAIT), -ECONNREFUSED);
}

/* The connections supervisor is held in the first start until gate opens. */
static atomic_bool gate;
static atomic_int held_starts;

static ot_gs_ret gconn_init(void *arg, void **state) {
    *state = arg;
    return ot_gs_ok();
}
static ot_gs_ret gconn_call(void *state, const ot_msg *req, ot_from from) {
    return ot_gs_reply(NULL, 0);
}
/* The socket comes in handle_info; report who accepted it and greet. */
static ot_gs_ret gconn_info(void *state, const ot_msg *m) {
    if (m->tag != OT_TAG_SOCK_HANDSHAKE)
        return ot_gs_ok();
    ot_listener_handshake_msg hs;
    memcpy(&hs, ot_msg_data(m), sizeof hs);
    ot_pid from[2] = {m->from, ot_self()};
    ot_assert(ot_pid_eq(ot_sock_owner(hs.sock), ot_self()));
    ot_send(*(ot_pid *)hs.arg, TAG_HELLO, from, sizeof from);
    ot_sock_send(hs.sock, "hello", 5, WAIT);
    return ot_gs_stop(OT_REASON(OT_NORMAL));
}
static const ot_gen_server gconn = {
    .name = "gconn", .init = gconn_init, .handle_call = gconn_call, .handle_info = gconn_info};

static int gconn_start(void *arg, ot_pid *out) {
    while (!atomic_load(&gate)) {
        atomic_store(&held_starts, 1);
        ot_sleep(1);
    }
    return ot_gen_server_start_link(&gconn, arg, NULL, out);
}

OT_TEST(listener, acceptors_accept_concurrently, .init = many_schedulers) {
    ot_otp_rules(OT_RULES_ALL & ~OT_RULE_SLOW_INIT, 0); /* the held start is slow on purpose */
    atomic_store(&gate, false);
    test_pid = ot_self();
    ot_listener_opts o = {.host = "127.0.0.1",
                          .num_acceptors = 4,
                          .max_connections = OT_INFINITY,
                          .start = gconn_start,
                          .arg = &test_pid};
    int port;
    ot_pid l = start(&o, &port);
    ot_pid conns = child(l, "ot_listener_connections");
    ot_sock c[10];
    for (int i = 0; i < 10; i++)
        c[i] = cl_connect(port);
    /* one acceptor is in the held start; each of the other three accepted
     * one socket meanwhile and waits in its start_child */
    struct ot_process_info pi = {0};
    for (int i = 0; i < WAIT / 5; i++) {
        ot_assert_eq(ot_process_info(conns, &pi), 0);
        if (atomic_load(&held_starts) && pi.message_queue_len >= 3)
            break;
        ot_sleep(5);
    }
    ot_sleep(50); /* nothing more may come: no acceptor is free */
    ot_assert_eq(ot_process_info(conns, &pi), 0);
    ot_assert_eq(pi.message_queue_len, 3);
    atomic_store(&gate, true);
    ot_pid accs[10];
    for (int i = 0; i < 10; i++) {
        ot_msg *m = ot_receive_tag(TAG_HELLO, WAIT);
        ot_assert(m != NULL);
        memcpy(&accs[i], ot_msg_data(m), sizeof accs[i]);
        ot_msg_free(m);
    }
    for (int i = 0; i < 10; i++)
        cl_expect(c[i], NULL, "hello");
    ot_child_info ai[8];
    size_t na = 0;
    ot_assert_eq(ot_supervisor_which_children(child(l, "ot_listener_acceptors"), ai, 8, &na), 0);
    ot_assert_eq(na, 4);
    for (size_t a = 0; a < na; a++) { /* every acceptor accepted at least one */
        bool seen = false;
        for (int i = 0; i < 10; i++)
            seen |= ot_pid_eq(accs[i], ai[a].pid);
        ot_assert(seen, "acceptor %zu accepted nothing", a);
    }
    for (int i = 0; i < 10; i++)
        ot_sock_close(c[i]);
    ot_assert_eq(ot_listener_stop(l, WAIT), 0);
}

OT_TEST(listener, max_connections_is_exact, .init = many_schedulers) {
    ot_listener_opts o = echo_opts(3, 2);
    int port;
    ot_pid l = start(&o, &port);
    ot_sock a = cl_connect(port), b = cl_connect(port);
    cl_expect(a, "a", "a");
    cl_expect(b, "b", "b");
    ot_sock c = cl_connect(port); /* the kernel's backlog takes it; nobody accepts it */
    ot_assert_eq(ot_sock_send(c, "c", 1, WAIT), 1);
    cl_silent(c, 300);
    ot_assert_eq(ot_listener_count_connections(l), 2);
    ot_sock_close(a);
    cl_expect(c, NULL, "c"); /* served once a slot is free */
    cl_expect(b, "b2", "b2");
    ot_assert_eq(ot_listener_count_connections(l), 2);
    ot_sock d = cl_connect(port);
    ot_assert_eq(ot_sock_send(d, "d", 1, WAIT), 1);
    cl_silent(d, 100);
    ot_sock_close(b);
    cl_expect(d, NULL, "d");
    ot_sock_close(c);
    ot_sock_close(d);
    wait_count(l, 0);
    ot_assert_eq(ot_listener_stop(l, WAIT), 0);
}

OT_TEST(listener, a_crashing_connection_frees_its_slot, .init = many_schedulers) {
    ot_listener_opts o = echo_opts(2, 1);
    int port;
    ot_pid l = start(&o, &port);
    ot_pid kids[4] = {child(l, "ot_listener_manager"), child(l, "ot_listener_connections"),
                      child(l, "ot_listener_drainer"), child(l, "ot_listener_acceptors")};
    for (int round = 0; round < 5; round++) {
        ot_sock a = cl_connect(port);
        cl_expect(a, "x", "x");
        ot_sock b = cl_connect(port);
        ot_assert_eq(ot_sock_send(b, "y", 1, WAIT), 1);
        cl_silent(b, 50); /* the only slot is a's */
        ot_assert_eq(ot_sock_send(a, "crash", 5, WAIT), 5);
        cl_closed(a);
        cl_expect(b, NULL, "y");
        ot_sock_close(a);
        ot_sock_close(b);
    }
    wait_count(l, 0);
    ot_assert(ot_pid_eq(kids[0], child(l, "ot_listener_manager")));
    ot_assert(ot_pid_eq(kids[1], child(l, "ot_listener_connections")));
    ot_assert(ot_pid_eq(kids[2], child(l, "ot_listener_drainer")));
    ot_assert(ot_pid_eq(kids[3], child(l, "ot_listener_acceptors")));
    ot_assert_eq(ot_listener_stop(l, WAIT), 0);
}

OT_TEST(listener, a_killed_acceptor_is_restarted, .init = many_schedulers) {
    ot_listener_opts o = echo_opts(2, 4);
    int port;
    ot_pid l = start(&o, &port);
    ot_pid accs = child(l, "ot_listener_acceptors");
    for (int k = 0; k < 3; k++) {
        ot_pid old = child(accs, "acceptor_0");
        ot_assert(old.v);
        ot_assert_eq(ot_exit(old, OT_REASON(OT_KILL)), 0);
        ot_pid now = OT_NOPID;
        for (int i = 0; i < WAIT / 5; i++) {
            now = child(accs, "acceptor_0");
            if (now.v && !ot_pid_eq(now, old))
                break;
            ot_sleep(5);
        }
        ot_assert(now.v && !ot_pid_eq(now, old), "acceptor_0 not restarted");
        ot_sock c[6];
        for (int i = 0; i < 6; i++) { /* more than max: slots come back */
            c[i] = cl_connect(port);
            cl_expect(c[i], "z", "z");
            ot_sock_close(c[i]);
        }
        wait_count(l, 0);
        ot_sleep(300); /* stay within the acceptors' restart intensity (3 in 5 s) */
    }
    ot_assert(ot_pid_eq(accs, child(l, "ot_listener_acceptors")));
    ot_assert_eq(ot_listener_stop(l, WAIT), 0);
}

/* ---- stress: many clients against a small max, suspended and resumed meanwhile ----- */

enum { STRESS_CLIENTS = 8, STRESS_ROUNDS = 40, STRESS_MAX = 4 };
static atomic_int live, peak, served;

/* Counts itself live while it serves one request; "crash" ends it abnormally. */
static void counted(ot_sock s, void *arg) {
    (void)arg;
    int n = atomic_fetch_add(&live, 1) + 1, p = atomic_load(&peak);
    while (n > p && !atomic_compare_exchange_weak(&peak, &p, n))
        ;
    char buf[16];
    ssize_t r = ot_sock_recv(s, buf, sizeof buf, WAIT);
    for (int i = 0; i < 3; i++)
        ot_yield(); /* let the others overlap */
    atomic_fetch_sub(&live, 1);
    if (r == 5 && !memcmp(buf, "crash", 5))
        ot_exit_self(ot_reason_error("asked to crash"));
    if (r > 0 && ot_sock_send(s, buf, (size_t)r, WAIT) == r)
        atomic_fetch_add(&served, 1);
}

/* Suspended meanwhile: a connect is refused (tried again), and a connection
 * whose acceptor is stopped before the hand-over is closed (the socket dies
 * with its owner): the client sees that, never a hang, and tries again. */
static atomic_int retries;

static bool stress_round(int port, bool crash) {
    ot_sock c;
    int rc = ot_sock_connect_tcp("127.0.0.1", (uint16_t)port, &c, WAIT);
    if (rc == -ECONNREFUSED) {
        ot_sleep(1);
        return false;
    }
    ot_assert_eq(rc, 0);
    const char *req = crash ? "crash" : "ping";
    ssize_t r = ot_sock_send(c, req, strlen(req), WAIT);
    char buf[8];
    if (r > 0)
        r = ot_sock_recv(c, buf, 4, WAIT);
    ot_sock_close(c);
    ot_assert(r != -ETIMEDOUT, "a connection hangs");
    if (crash && (r == 0 || r == -ECONNRESET))
        return true; /* crashed: closed (or never served: the same to a client) */
    if (r == 4 && !memcmp(buf, "ping", 4))
        return true;
    ot_assert(r == 0 || r == -ECONNRESET || r == -EPIPE, "recv %zd", r);
    atomic_fetch_add(&retries, 1);
    return false;
}

static void stress_client(void *arg) {
    int port = (int)(intptr_t)arg;
    for (int i = 0; i < STRESS_ROUNDS; i++)
        while (!stress_round(port, i % 5 == 4))
            ;
    ot_send(test_pid, TAG_STOPPED, NULL, 0);
}

static void stress(void) {
    atomic_store(&live, 0);
    atomic_store(&peak, 0);
    atomic_store(&served, 0);
    atomic_store(&retries, 0);
    test_pid = ot_self();
    ot_listener_opts o = {
        .host = "127.0.0.1", .num_acceptors = 3, .max_connections = STRESS_MAX, .conn = counted};
    int port;
    ot_pid l = start(&o, &port);
    for (int i = 0; i < STRESS_CLIENTS; i++)
        ot_spawn(stress_client, (void *)(intptr_t)port);
    for (int k = 0; k < 2; k++) { /* suspended and resumed while clients come and go */
        ot_sleep(20);
        ot_assert_eq(ot_listener_suspend(l), 0);
        ot_sleep(5);
        ot_assert_eq(ot_listener_resume(l), 0);
    }
    for (int i = 0; i < STRESS_CLIENTS; i++) {
        ot_msg *m = ot_receive_tag(TAG_STOPPED, 60000);
        ot_assert(m != NULL, "a client did not finish");
        ot_msg_free(m);
    }
    wait_count(l, 0);
    ot_assert(atomic_load(&peak) <= STRESS_MAX, "peak %d", atomic_load(&peak));
    ot_assert(atomic_load(&peak) >= 1);
    ot_assert_eq(atomic_load(&served), STRESS_CLIENTS * STRESS_ROUNDS * 4 / 5);
    /* each suspend closes at most each client's one connection in flight */
    ot_assert(atomic_load(&retries) <= 2 * STRESS_CLIENTS, "%d retries", atomic_load(&retries));
    ot_assert_eq(ot_listener_stop(l, WAIT), 0);
}

static void one_scheduler(void) {
    ot_test_config.schedulers = 1;
}

OT_TEST(listener, stress_max_holds_with_churn_and_suspends, .init = many_schedulers) {
    stress();
}

OT_TEST(listener, stress_on_one_scheduler, .init = one_scheduler) {
    stress();
}

struct stopper {
    ot_pid l, test;
};

static void stopper(void *arg) {
    struct stopper *s = arg;
    int rc = ot_listener_stop(s->l, OT_INFINITY);
    ot_send(s->test, TAG_STOPPED, &rc, sizeof rc);
}

OT_TEST(listener, drain_finishes_in_flight_and_shuts_down_the_rest, .init = many_schedulers) {
    ot_listener_opts o = echo_opts(2, 0);
    o.drain_timeout_ms = 3000;
    int port;
    ot_pid l = start(&o, &port);
    ot_sock c[3];
    ot_pid conn[3];
    for (int i = 0; i < 3; i++) {
        c[i] = cl_connect(port);
        ot_assert_eq(ot_sock_send(c[i], "hold", 4, WAIT), 4);
        ot_msg *m = ot_receive_tag(TAG_HELLO, WAIT);
        ot_assert(m != NULL);
        memcpy(&conn[i], ot_msg_data(m), sizeof conn[i]);
        ot_msg_free(m);
    }
    ot_assert_eq(ot_listener_count_connections(l), 3);
    struct stopper st = {l, ot_self()};
    ot_spawn(stopper, &st);
    wait_refused(port); /* the drain began: no new connection */
    ot_assert(ot_is_alive(l));
    ot_send(conn[0], TAG_FINISH, NULL, 0); /* two finish within the drain */
    ot_send(conn[1], TAG_FINISH, NULL, 0);
    cl_expect(c[0], NULL, "done");
    cl_expect(c[1], NULL, "done");
    cl_closed(c[0]);
    cl_closed(c[1]);
    ot_msg *m = ot_receive_tag(TAG_STOPPED, WAIT);
    ot_assert(m != NULL);
    int left;
    memcpy(&left, ot_msg_data(m), sizeof left);
    ot_msg_free(m);
    ot_assert_eq(left, 1); /* the third was shut down */
    ot_assert(!ot_is_alive(l));
    ot_assert(!ot_is_alive(conn[2]));
    cl_closed(c[2]);
    for (int i = 0; i < 3; i++)
        ot_sock_close(c[i]);
}

static void terminator(void *arg) {
    struct stopper *s = arg;
    int rc = ot_supervisor_terminate_child(s->l, "ot_listener");
    ot_send(s->test, TAG_STOPPED, &rc, sizeof rc);
}

OT_TEST(listener, drained_by_its_parent_under_the_application_tree, .init = many_schedulers) {
    ot_listener_opts o = echo_opts(2, 0);
    o.drain_timeout_ms = OT_INFINITY;
    ot_child_spec cs = ot_listener_child_spec(&o);
    ot_pid l = ot_start_supervised(&cs);
    ot_assert(l.v);
    int port = ot_listener_port(l);
    ot_sock a = cl_connect(port);
    cl_expect(a, "q", "q");
    ot_assert_eq(ot_sock_send(a, "hold", 4, WAIT), 4);
    ot_msg *m = ot_receive_tag(TAG_HELLO, WAIT);
    ot_assert(m != NULL);
    ot_pid conn;
    memcpy(&conn, ot_msg_data(m), sizeof conn);
    ot_msg_free(m);
    /* its parent stops it: terminate_child returns once the drain is over */
    struct stopper st = {ot_test_supervisor(), ot_self()};
    ot_spawn(terminator, &st);
    wait_refused(port); /* the drainer closed the listening socket */
    ot_assert(ot_is_alive(l));
    ot_assert(ot_is_alive(conn));
    ot_assert(ot_receive_tag(TAG_STOPPED, 200) == NULL); /* drain_timeout infinity: it waits */
    ot_send(conn, TAG_FINISH, NULL, 0);
    cl_expect(a, NULL, "done");
    cl_closed(a);
    m = ot_receive_tag(TAG_STOPPED, WAIT);
    ot_assert(m != NULL);
    int rc;
    memcpy(&rc, ot_msg_data(m), sizeof rc);
    ot_msg_free(m);
    ot_assert_eq(rc, 0);
    ot_assert(!ot_is_alive(l));
    ot_sock_close(a);
}

OT_TEST(listener, suspend_and_resume, .init = many_schedulers) {
    ot_listener_opts o = echo_opts(2, 0);
    int port;
    ot_pid l = start(&o, &port);
    ot_sock a = cl_connect(port);
    cl_expect(a, "1", "1");
    ot_assert_eq(ot_listener_suspend(l), 0);
    ot_assert_eq(ot_listener_suspend(l), 0);
    ot_sock s;
    ot_assert_eq(ot_sock_connect_tcp("127.0.0.1", (uint16_t)port, &s, WAIT), -ECONNREFUSED);
    cl_expect(a, "2", "2"); /* running connections go on */
    ot_assert_eq(ot_listener_count_connections(l), 1);
    ot_assert_eq(ot_listener_resume(l), 0);
    ot_assert_eq(ot_listener_resume(l), 0);
    ot_assert_eq(ot_listener_port(l), port);
    ot_sock b = cl_connect(port);
    cl_expect(b, "3", "3");
    ot_sock_close(a);
    ot_sock_close(b);
    wait_count(l, 0);
    ot_assert_eq(ot_listener_stop(l, WAIT), 0);
}

static void *foreign_start(void *arg) {
    ot_pid l;
    *(int *)arg = ot_listener_start_link(&(ot_listener_opts){.conn = echo}, &l);
    return NULL;
}

OT_TEST(listener, bad_input, .init = many_schedulers) {
    ot_pid l;
    ot_listener_opts ok = echo_opts(1, 0);
    ot_assert_eq(ot_listener_start_link(NULL, &l), -EINVAL);
    ot_assert_eq(ot_listener_start_link(&ok, NULL), -EINVAL);
    ot_listener_opts o = ok;
    o.conn = NULL;
    ot_assert_eq(ot_listener_start_link(&o, &l), -EINVAL); /* neither */
    o.start = gconn_start;
    o.conn = echo;
    ot_assert_eq(ot_listener_start_link(&o, &l), -EINVAL); /* both */
    const struct {
        int acceptors, backlog;
        int64_t max, drain, shutdown;
        int type;
    } bad[] = {{-1, 0, 0, 0, 0, 0}, {1025, 0, 0, 0, 0, 0}, {1, -1, 0, 0, 0, 0}, {1, 0, -2, 0, 0, 0},
               {1, 0, 0, -7, 0, 0}, {1, 0, 0, 0, -5, 0},   {1, 0, 0, 0, 0, 7}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = ok;
        o.num_acceptors = bad[i].acceptors;
        o.backlog = bad[i].backlog;
        o.max_connections = bad[i].max;
        o.drain_timeout_ms = bad[i].drain;
        o.conn_shutdown = bad[i].shutdown;
        o.conn_type = bad[i].type;
        ot_assert_eq(ot_listener_start_link(&o, &l), -EINVAL);
    }
    o = ok;
    o.host = "0123456789012345678901234567890123456789012345678901234567890123456789";
    ot_assert_eq(ot_listener_start_link(&o, &l), -EINVAL);
    int rc = 0;
    pthread_t t;
    pthread_create(&t, NULL, foreign_start, &rc);
    pthread_join(t, NULL);
    ot_assert_eq(rc, -EPERM);

    /* a port in use: the caller's error, nothing started, the caller alive */
    int port;
    ot_pid first = start(&ok, &port);
    size_t before = ot_processes(NULL, 0);
    o = ok;
    o.port = (uint16_t)port;
    ot_assert_eq(ot_listener_start_link(&o, &l), -EADDRINUSE);
    ot_assert_eq(ot_processes(NULL, 0), before);

    /* things that are not listeners */
    ot_assert_eq(ot_listener_port(ot_self()), -EINVAL);
    ot_pid dyn;
    ot_assert_eq(ot_dynsup_start_link(&(ot_dynsup_opts){0}, NULL, &dyn), 0);
    ot_assert_eq(ot_listener_count_connections(dyn), -EINVAL);
    ot_assert_eq(ot_listener_stop(first, -5), -EINVAL);
    ot_assert_eq(ot_listener_stop(first, WAIT), 0);
    ot_assert_eq(ot_listener_port(first), -ESRCH);
    ot_assert_eq(ot_listener_suspend(first), -ESRCH);
    ot_assert_eq(ot_listener_stop(first, WAIT), -ESRCH);
    ot_sock s;
    ot_assert_eq(ot_listener_handshake(10, NULL, NULL), -EINVAL);
    ot_assert_eq(ot_listener_handshake(-3, &s, NULL), -EINVAL);
    ot_assert_eq(ot_listener_handshake(10, &s, NULL), -ETIMEDOUT);
}
