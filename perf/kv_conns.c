/* The connection figures of perf/run's kv workload, as a client of any
 * RESP server (examples/kv or redis-server), so both sides are driven alike:
 *
 *   kv_conns churn --port P [--seconds S] [--clients C] [--sources K]
 *   kv_conns idle --port P --pid PID --conns N [--sources K] [--wait-ms MS] [--ping]
 *
 * churn: C connections at a time, each connects, sends PING, reads +PONG and
 * closes, and is replaced by a new one at once, for S seconds; one thread
 * drives them all on epoll (as redis-benchmark drives its clients), so the
 * client takes one core and the server the other. Prints churn_rate
 * (completed connections per second) and churn_errors.
 *
 * idle: reads the server's VmRSS (/proc/PID/status), opens N connections
 * and waits until the server's INFO counts them all (with --ping each first
 * does one PING instead, so each has been served once), waits MS, reads
 * VmRSS again, closes them all, waits until INFO counts one client (the
 * asking one) and MS more, then until it stops falling (at most 30 s), and
 * reads VmRSS a third time. Prints
 * idle_conn_bytes ((with - before) / N), idle_settle_ratio (after / before)
 * and the three RSS readings. Connections are opened in batches of 256,
 * each accepted before the next: an overflowing accept queue drops SYNs.
 *
 * Both spread their connections over K source addresses 127.0.0.1..K (bound
 * with IP_BIND_ADDRESS_NO_PORT, so the port is picked per 4-tuple at
 * connect): one source address to one server port has about 28,000
 * ephemeral ports, fewer than 100,000 idle connections or a few seconds of
 * churn whose TIME_WAITs hold theirs. The open-file limit is raised to its
 * hard limit; the program says so and exits 3 when N does not fit it.
 * Plain sockets only: no runtime is started. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static const char PING[] = "*1\r\n$4\r\nPING\r\n";
static const char PONG[] = "+PONG\r\n";
#define PING_LEN (sizeof PING - 1)
#define PONG_LEN (sizeof PONG - 1)

static struct {
    uint16_t port;
    int sources;
} cfg = {.sources = 8};

static void die(const char *what) {
    fprintf(stderr, "kv_conns: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* A socket bound to source address 127.0.0.(1 + i % sources), connecting
 * to the server (non-blocking when asked). 0 or -errno; *out the fd. */
static int open_conn(unsigned i, bool nonblock, int *out) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + i % (unsigned)cfg.sources);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(cfg.port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r;
    do
        r = connect(fd, (struct sockaddr *)&dst, sizeof dst);
    while (r < 0 && errno == EINTR);
    if (r < 0 && !(nonblock && errno == EINPROGRESS)) {
        int e = -errno;
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int recv_exact(int fd, char *b, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = recv(fd, b + got, n - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

static long raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
}

/* ---- churn ----------------------------------------------------------------- */

enum { C_CONNECTING, C_READING };

struct churn_conn {
    int fd;
    int state;
    unsigned got;
};

/* (Re)starts connection slot i: false when it could not even start (no free
 * address or fd), and the slot is retried on the next pass. */
static bool start_slot(int ep, struct churn_conn *cs, int i, unsigned *seq) {
    int fd = -1;
    if (open_conn((*seq)++, true, &fd) < 0) {
        cs[i].fd = -1;
        return false;
    }
    cs[i] = (struct churn_conn){.fd = fd, .state = C_CONNECTING};
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl add");
    return true;
}

static int churn(double seconds, int clients) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct churn_conn *cs = calloc((size_t)clients, sizeof *cs);
    struct epoll_event *evs = calloc((size_t)clients, sizeof *evs);
    if (!cs || !evs)
        die("calloc");
    unsigned seq = 0;
    uint64_t done = 0, errors = 0;

    uint64_t t0 = bench_now_ns();
    uint64_t end = t0 + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < clients; i++)
        errors += !start_slot(ep, cs, i, &seq);
    uint64_t now = t0;
    while ((now = bench_now_ns()) < end) {
        int n = epoll_wait(ep, evs, clients, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            struct churn_conn *c = &cs[i];
            bool fail = (evs[k].events & (EPOLLERR | EPOLLHUP)) && c->state == C_CONNECTING;
            if (!fail && c->state == C_CONNECTING) {
                /* Connected: PING fits any socket buffer, so one send does. */
                if (send(c->fd, PING, PING_LEN, MSG_NOSIGNAL) != (ssize_t)PING_LEN) {
                    fail = true;
                } else {
                    c->state = C_READING;
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
                    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
                        die("epoll_ctl mod");
                    continue;
                }
            }
            if (!fail) {
                char b[16];
                ssize_t r = recv(c->fd, b, sizeof b, 0);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (r <= 0 || c->got + (size_t)r > PONG_LEN ||
                    memcmp(b, PONG + c->got, (size_t)r) != 0) {
                    fail = true;
                } else {
                    c->got += (unsigned)r;
                    if (c->got < PONG_LEN)
                        continue;
                    done++;
                }
            }
            if (fail)
                errors++;
            close(c->fd); /* also leaves the epoll set */
            errors += !start_slot(ep, cs, i, &seq);
        }
        /* Slots that could not start (no address, no fd) try again. */
        for (int i = 0; i < clients; i++)
            if (cs[i].fd < 0)
                errors += !start_slot(ep, cs, i, &seq);
        if (errors > 1000 && errors > done) {
            fprintf(stderr, "kv_conns: churn: %llu failed connections (%s), %llu done\n",
                    (unsigned long long)errors, strerror(errno), (unsigned long long)done);
            return 1;
        }
    }
    for (int i = 0; i < clients; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    bench_figure("churn_rate", bench_rate(done, t0, now), "conn/s", true);
    bench_figure("churn_errors", (double)errors, "conns", false);
    free(cs);
    free(evs);
    close(ep);
    return 0;
}

/* ---- idle ------------------------------------------------------------------ */

static long vmrss_kib(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* The server's connected_clients from INFO clients over a new connection
 * (which counts itself), or -1. */
static long connected_clients(void) {
    int fd = -1;
    if (open_conn(0, false, &fd) < 0)
        return -1;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    static const char q[] = "*2\r\n$4\r\nINFO\r\n$7\r\nclients\r\n";
    char b[4096];
    long n = -1;
    if (send_all(fd, q, sizeof q - 1) == 0) {
        size_t got = 0;
        /* "$<len>\r\n<text>\r\n": read until the text is whole */
        for (;;) {
            ssize_t k = recv(fd, b + got, sizeof b - 1 - got, 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            got += (size_t)k;
            b[got] = 0;
            char *nl = strstr(b, "\r\n");
            if (b[0] == '$' && nl && got >= (size_t)(nl + 2 - b) + (size_t)atol(b + 1) + 2)
                break;
            if (got == sizeof b - 1)
                break;
        }
        b[got] = 0;
        const char *p = strstr(b, "connected_clients:");
        if (p)
            n = atol(p + strlen("connected_clients:"));
    }
    close(fd);
    return n;
}

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Waits until the server counts `want` clients (INFO's own included), up to
 * 60 s; false if it never did. */
static bool await_clients(long want) {
    long cc = -1;
    for (int tries = 0; tries < 6000; tries++) {
        if ((cc = connected_clients()) == want)
            return true;
        sleep_ms(10);
    }
    fprintf(stderr, "kv_conns: idle: the server counts %ld clients after 60 s, not %ld\n", cc,
            want);
    return false;
}

static int idle(int pid, int n, long wait_ms, bool ping) {
    long lim = raise_nofile();
    if (lim < (long)n + 64) {
        fprintf(stderr,
                "kv_conns: idle: %d connections need an open-file limit of %d, the hard "
                "limit is %ld\n",
                n, n + 64, lim);
        return 3;
    }
    int *fds = calloc((size_t)n, sizeof *fds);
    if (!fds)
        die("calloc");
    long before = vmrss_kib(pid);
    if (before < 0)
        die("reading the server's VmRSS");
    /* In batches, each accepted (INFO says so) or answered before the next:
     * no more than a batch waits in the server's accept queue (an
     * overflowing queue drops SYNs, and the retry comes a second later). */
    enum { BATCH = 256 };
    for (int i = 0; i < n; i += BATCH) {
        int m = n - i < BATCH ? n - i : BATCH;
        for (int j = i; j < i + m; j++) {
            int r = open_conn((unsigned)j, false, &fds[j]);
            if (r < 0) {
                fprintf(stderr, "kv_conns: idle: connection %d: %s\n", j, strerror(-r));
                return 1;
            }
            struct timeval tv = {.tv_sec = 30};
            setsockopt(fds[j], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            if (ping && send_all(fds[j], PING, PING_LEN) < 0)
                die("send PING");
        }
        if (!ping) {
            if (!await_clients(i + m + 1))
                return 1;
            continue;
        }
        for (int j = i; j < i + m; j++) {
            char b[PONG_LEN];
            if (recv_exact(fds[j], b, PONG_LEN) < 0 || memcmp(b, PONG, PONG_LEN) != 0) {
                fprintf(stderr, "kv_conns: idle: connection %d got no +PONG\n", j);
                return 1;
            }
        }
    }
    sleep_ms(wait_ms);
    long with = vmrss_kib(pid);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    /* Until the server has seen every close (INFO counts the asking client). */
    if (!await_clients(1))
        return 1;
    /* Then until the RSS stops falling (allocators give freed pages back as
     * they decay, jemalloc's over 10 s by default): at least MS, at most
     * 30 s, read every second. */
    sleep_ms(wait_ms);
    long after = vmrss_kib(pid);
    for (int i = 0; i < 30; i++) {
        sleep_ms(1000);
        long now = vmrss_kib(pid);
        bool falling = now < after - after / 100;
        after = now < after ? now : after;
        if (!falling)
            break;
    }
    fprintf(stderr, "kv_conns: idle: %d connections%s: VmRSS %ld kB before, %ld with, %ld after\n",
            n, ping ? " (one PING each)" : "", before, with, after);
    bench_figure("idle_conn_bytes", (double)(with - before) * 1024.0 / n, "B/conn", false);
    bench_figure("idle_settle_ratio", (double)after / (double)before, "after/before", false);
    bench_figure("idle_rss_before", (double)before / 1024.0, "MiB", false);
    bench_figure("idle_rss_with", (double)with / 1024.0, "MiB", false);
    bench_figure("idle_rss_after", (double)after / 1024.0, "MiB", false);
    free(fds);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: kv_conns churn --port P [--seconds S] [--clients C] [--sources K]\n"
                    "       kv_conns idle --port P --pid PID --conns N [--sources K] "
                    "[--wait-ms MS] [--ping]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    double seconds = 3.0;
    int clients = 50, pid = 0, conns = 10000;
    bool ping = false;
    long wait_ms = 2000;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            seconds /= 10;
            continue;
        }
        if (strcmp(a, "--ping") == 0) {
            ping = true;
            continue;
        }
        if (!v)
            usage();
        if (strcmp(a, "--port") == 0)
            cfg.port = (uint16_t)atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            seconds = atof(v);
        else if (strcmp(a, "--clients") == 0)
            clients = atoi(v);
        else if (strcmp(a, "--sources") == 0)
            cfg.sources = atoi(v);
        else if (strcmp(a, "--pid") == 0)
            pid = atoi(v);
        else if (strcmp(a, "--conns") == 0)
            conns = atoi(v);
        else if (strcmp(a, "--wait-ms") == 0)
            wait_ms = atol(v);
        else
            usage();
        i++;
    }
    if (!cfg.port || cfg.sources < 1 || cfg.sources > 254 || clients < 1 || conns < 1 ||
        seconds <= 0)
        usage();
    if (strcmp(mode, "churn") == 0) {
        raise_nofile();
        return churn(seconds, clients);
    }
    if (strcmp(mode, "idle") == 0 && pid > 0)
        return idle(pid, conns, wait_ms, ping);
    usage();
}
