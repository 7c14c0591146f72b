/* examples/kv's memory for idle connections (issue 14): the server runs in
 * this process, the clients in a forked child (so each side's fd table holds
 * one end of every connection and 10,000 fit an open-file limit of 20,000).
 * Each test reads this process's resident set before the connections, with
 * them all open and idle, and after they all closed (once jemalloc gave back
 * the pages they freed), and bounds the bytes per idle connection and the
 * resident set left after the close. These are
 * memory bounds, not speed: every wait is for an event (the server's count
 * of connections), with a generous deadline. perf/run kv measures the same
 * figures against redis-server (idle_conn_bytes, idle_settle_ratio).
 *
 * The bounds are regression guards, not the targets. Issue 14's targets are
 * 1.5 KB per idle connection (redis-server 7.0 holds about 1.4 KB) and a
 * resident set back within 10% of the start after the close; perf/run's
 * idle_conn_bytes and idle_settle_ratio report how far we are. What an idle
 * connection holds now, from jemalloc's heap profile of this test (10,000
 * connections, perf/NOTES.md has the figures): kv's own record (48 B) and
 * its slot in the server's monitor map; the socket's record, its owner entry
 * and its links and monitors; the connection's slot in the DynamicSupervisor
 * (a 168-byte child record in an array that grows by doubling, and an id
 * map); the process's slot in the process table. After the close the
 * supervisor's array and the process table keep their size. The bounds:
 * BYTES_PER_CONN_MAX (measured 2,025 B, with one PING 2,289 B) and
 * SETTLE_MAX (measured 1.61, with one PING 1.82), each with a margin for
 * the test process's own noise. The design before active sockets held 10 KB and 26 KB
 * and settled at 8x and 15x. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <otter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jemalloc/jemalloc.h>

#include "examples/kv/kv.h"
#include "support/rss.h"

#define BYTES_PER_CONN_MAX 2560.0
#define SETTLE_MAX 2.0

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

static uint16_t port;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (up to 60 s: the connections are only counted, not timed) until the
 * server counts n connections. */
static bool await_connections(long n) {
    int64_t t0 = now_ms();
    while (kv_server_connections() != n && now_ms() - t0 < 60000)
        usleep(1000);
    return kv_server_connections() == n;
}

static ssize_t rd(int fd, void *b, size_t n) {
    ssize_t k;
    do
        k = read(fd, b, n);
    while (k < 0 && errno == EINTR);
    return k;
}

enum { BATCH = 512 };

/* The client side, in a child forked from this threaded process, so plain
 * system calls only, and no Criterion call (tests/support/child.c says why).
 * Opens n connections in batches of BATCH from source addresses 127.0.0.1..8
 * (one source address has about 28,000 ports to one server port), writing a
 * byte to `up` after each batch and waiting for the parent's byte on `down`
 * (the parent has seen the batch accepted: no accept queue overflows, which
 * would drop SYNs and retry them a second later). With ping, each connection
 * first does one PING. Then it waits for a last byte and closes them all.
 * Exit status 0 is success. */
static int client_child(int n, bool ping, int up, int down) {
    int *fds = calloc((size_t)n, sizeof *fds);
    if (!fds)
        return 10;
    static const char req[] = "*1\r\n$4\r\nPING\r\n";
    char b = 0;
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return 11;
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (unsigned)(i % 8));
        struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(port)};
        dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
            connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0)
            return 12;
        struct timeval tv = {.tv_sec = 30};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        fds[i] = fd;
        if (ping) {
            char r[8];
            size_t got = 0;
            if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1))
                return 13;
            while (got < 7) {
                ssize_t k = recv(fd, r + got, 7 - got, 0);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k <= 0)
                    return 14;
                got += (size_t)k;
            }
            if (memcmp(r, "+PONG\r\n", 7) != 0)
                return 15;
        }
        if ((i + 1) % BATCH == 0 || i + 1 == n) {
            if (write(up, &b, 1) != 1 || rd(down, &b, 1) != 1)
                return 16;
        }
    }
    if (rd(down, &b, 1) != 1)
        return 17;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

static void start(int n) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t)n + 256; /* the server's ends; the clients' are in the child */
    if (rl.rlim_cur < need) {
        if (rl.rlim_max < need)
            cr_skip_test("%d idle connections need an open-file limit of %lu; the hard limit is "
                         "%lu (raising it takes CAP_SYS_RESOURCE)",
                         n, (unsigned long)need, (unsigned long)rl.rlim_max);
        rl.rlim_cur = need;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
    }
    ot_config cfg = {.schedulers = 2};
    cr_assert_eq(ot_start(&cfg), 0);
    kv_opts o = {.backlog = 4096};
    cr_assert_eq(kv_server_start(&o, &port), 0);
}

static void stop(void) {
    kv_server_stop();
    ot_stop();
}

/* One round: n idle connections; returns the three resident sets. */
static void idle_round(int n, bool ping, size_t rss[3]) {
    int up[2], down[2];
    cr_assert_eq(pipe(up), 0);
    cr_assert_eq(pipe(down), 0);
    rss[0] = ot_test_rss_bytes();
    pid_t child = fork();
    if (child == 0)
        _exit(client_child(n, ping, up[1], down[0]));
    cr_assert_geq(child, 0, "fork: %s", strerror(errno));
    close(up[1]);
    close(down[0]);
    char b = 0;
    for (int done = 0; done < n;) {
        int m = n - done < BATCH ? n - done : BATCH;
        cr_assert_eq(rd(up[0], &b, 1), 1, "the client child failed after %d connections", done);
        done += m;
        cr_assert(await_connections(done), "the server counts %ld connections, not %d",
                  kv_server_connections(), done);
        cr_assert_eq(write(down[1], &b, 1), 1);
    }
    rss[1] = ot_test_rss_bytes();
    cr_assert_eq(write(down[1], &b, 1), 1);
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client child status %d", st);
    close(up[0]);
    close(down[1]);
    cr_assert(await_connections(0), "%ld connections left", kv_server_connections());
    /* What the closed connections freed and jemalloc has not yet given back
     * (it does so as pages decay, over 10 s by default) is given back first,
     * so the bound is on what is still held, whatever the decay's timing. */
    mallctl("arena." STRINGIFY(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0);
    rss[2] = ot_test_rss_bytes();
    cr_log_info("%d idle connections%s: RSS %zu KiB before, %zu with (%.0f B each), %zu after "
                "(%.3f of before)",
                n, ping ? " (one PING each)" : "", rss[0] >> 10, rss[1] >> 10,
                (double)(rss[1] - rss[0]) / n, rss[2] >> 10, (double)rss[2] / (double)rss[0]);
}

static void idle_case(int n, bool ping) {
#if defined(OT_SANITIZE)
    cr_skip_test("sanitizer build: its shadow memory and quarantine are resident too, so the "
                 "bytes per connection say nothing about kv");
#endif
    start(n);
    size_t rss[3];
    idle_round(n, ping, rss);
    double per = ((double)rss[1] - (double)rss[0]) / n;
    double settle = (double)rss[2] / (double)rss[0];
    stop();
    cr_assert_leq(per, BYTES_PER_CONN_MAX, "%.0f bytes per idle connection (%zu -> %zu KiB)", per,
                  rss[0] >> 10, rss[1] >> 10);
    cr_assert_leq(settle, SETTLE_MAX, "RSS after closing is %.3f of before (%zu -> %zu KiB)",
                  settle, rss[0] >> 10, rss[2] >> 10);
}

Test(kv_idle, ten_thousand_idle_connections, .timeout = 180) {
    idle_case(10000, false);
}

/* Each connection served once: what a served connection keeps while idle. */
Test(kv_idle, ten_thousand_after_one_command, .timeout = 180) {
    idle_case(10000, true);
}

Test(kv_idle, hundred_thousand_idle_connections, .timeout = 600) {
    idle_case(100000, false);
}
