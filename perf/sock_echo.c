/* sock_echo workload: one loopback TCP connection, a client process sends a
 * 64-byte message and waits for its echo, 100,000 times (10,000 with
 * --quick). The server end is served two ways: sock_echo_passive_rtt by a
 * stackful process looping ot_sock_recv / ot_sock_send, sock_echo_active_rtt
 * by a handler process in {active, once} that echoes each OT_TAG_SOCK_DATA
 * message and re-arms (no stack between messages). Figures are us per round
 * trip; BEAM's side (bench_sock_echo.erl) does the same with gen_tcp's
 * {active, false} recv loop and {active, once} messages. Then the answer to
 * "per-message send is slow": 32-byte lines to a peer that drains them, one
 * ot_sock_send per line (sock_send_line_rate) against one ot_sock_sendv per
 * 64 lines (sock_sendv_line_rate); BEAM sends one line per gen_tcp:send and
 * an iolist of 64. */
#include "bench.h"

#include <otter/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

enum { TAG_SOCK = OT_TAG_USER, TAG_DRAINED };
enum { MSG = 64, LINE = 32, BATCH = 64 };

static ot_pid g_drain_to;
static int g_drain_lines;

static void passive_server(void *arg) {
    ot_sock s = *(ot_sock *)arg;
    char b[MSG];
    for (;;) {
        ssize_t n = ot_sock_recv(s, b, sizeof b, OT_INFINITY);
        if (n <= 0 || ot_sock_send(s, b, (size_t)n, OT_INFINITY) != n)
            break;
    }
    ot_sock_close(s);
}

struct hstate {
    ot_sock s;
};

static int active_server(void *state, const ot_msg *m) {
    struct hstate *h = state;
    if (m->tag == TAG_SOCK) {
        memcpy(&h->s, ot_msg_data(m), sizeof h->s);
        return ot_sock_set_active(h->s, OT_ACTIVE_ONCE, 0);
    }
    const ot_sock_msg *sm = ot_msg_data(m);
    if (m->tag != OT_TAG_SOCK_DATA) {
        ot_sock_close(h->s);
        return 1;
    }
    if (ot_sock_send(h->s, sm->data, sm->len, OT_INFINITY) != (ssize_t)sm->len)
        return -1;
    return ot_sock_set_active(h->s, OT_ACTIVE_ONCE, 0);
}

/* Round trips of MSG bytes over c; ns per round trip. */
static double rtt(ot_sock c, int n) {
    char b[MSG];
    memset(b, 'x', sizeof b);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < n; i++) {
        if (ot_sock_send(c, b, MSG, OT_INFINITY) != MSG)
            return 0;
        size_t got = 0;
        while (got < MSG) {
            ssize_t r = ot_sock_recv(c, b + got, MSG - got, OT_INFINITY);
            if (r <= 0)
                return 0;
            got += (size_t)r;
        }
    }
    return (double)(bench_now_ns() - t0) / n;
}

static int g_n;

/* Reads until n bytes came, then says so. */
static void drain(void *arg) {
    ot_sock s = *(ot_sock *)arg;
    static char b[1 << 16];
    size_t want = (size_t)g_drain_lines * LINE, got = 0;
    while (got < want) {
        ssize_t r = ot_sock_recv(s, b, sizeof b, OT_INFINITY);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    ot_send(g_drain_to, TAG_DRAINED, NULL, 0);
}

/* g_n * 10 lines of LINE bytes to a draining peer: one ot_sock_send per line
 * (batch 1) or one ot_sock_sendv per BATCH lines; lines per second. */
static double lines(ot_sock c, ot_sock s, int batch) {
    static ot_sock arg_s;
    arg_s = s;
    g_drain_to = ot_self();
    g_drain_lines = g_n * 10 / batch * batch;
    ot_pid d = ot_spawn(drain, &arg_s);
    ot_sock_controlling_process(s, d);
    char line[LINE];
    memset(line, 'l', sizeof line);
    line[LINE - 1] = '\n';
    struct iovec v[BATCH];
    for (int i = 0; i < BATCH; i++)
        v[i] = (struct iovec){line, LINE};
    int total = g_drain_lines;
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < total; i += batch) {
        if (batch == 1 ? ot_sock_send(c, line, LINE, OT_INFINITY) != LINE
                       : ot_sock_sendv(c, v, BATCH, OT_INFINITY) != BATCH * LINE)
            return 0;
    }
    ot_msg *m = ot_receive_tag(TAG_DRAINED, OT_INFINITY);
    uint64_t t1 = bench_now_ns();
    ot_msg_free(m);
    return bench_rate((uint64_t)total, t0, t1);
}

static void bench_main(void *arg) {
    (void)arg;
    ot_sock l;
    if (ot_sock_listen_tcp("127.0.0.1", 0, 16, &l) != 0)
        return;
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    getsockname(ot_sock_fd(l), (struct sockaddr *)&a, &al);
    uint16_t port = ntohs(a.sin_port);
    for (int active = 0; active < 2; active++) {
        ot_sock c, s;
        if (ot_sock_connect_tcp("127.0.0.1", port, &c, 5000) != 0 ||
            ot_sock_accept(l, &s, NULL, NULL, 5000) != 0)
            return;
        static ot_sock arg_s;
        static struct hstate hs;
        arg_s = s;
        ot_pid srv =
            active ? ot_spawn_handler(active_server, &hs, NULL) : ot_spawn(passive_server, &arg_s);
        ot_sock_controlling_process(s, srv);
        if (active)
            ot_send(srv, TAG_SOCK, &s, sizeof s);
        rtt(c, g_n / 10); /* warm-up */
        double ns = rtt(c, g_n);
        bench_figure(active ? "sock_echo_active_rtt" : "sock_echo_passive_rtt", ns / 1000.0, "us",
                     false);
        ot_sock_close(c);
        ot_sleep(10);
    }
    for (int batch = 1; batch <= BATCH; batch += BATCH - 1) {
        ot_sock c, s;
        if (ot_sock_connect_tcp("127.0.0.1", port, &c, 5000) != 0 ||
            ot_sock_accept(l, &s, NULL, NULL, 5000) != 0)
            return;
        bench_figure(batch == 1 ? "sock_send_line_rate" : "sock_sendv_line_rate",
                     lines(c, s, batch), "lines/s", true);
        ot_sock_close(c);
    }
    ot_sock_close(l);
}

int main(int argc, char **argv) {
    g_n = bench_quick(argc, argv) ? 10000 : 100000;
    bench_quiet();
    int rc = ot_run(bench_main, NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "sock_echo: ot_run: %s\n", ot_strerror(rc));
    return rc == 0 ? 0 : 1;
}
