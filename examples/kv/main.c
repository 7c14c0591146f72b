/* build/kv: the RESP2 key-value server as a program.
 *   kv [--port N] [--bind ADDR] [--schedulers N] [--spin-us N] [--read-timeout MS]
 *      [--enable-debug]
 * SIGINT and SIGTERM are blocked in every thread and read from a signalfd by
 * main, which then stops the server and the runtime: no work is done in a
 * signal handler, and no scheduler thread is interrupted by the signal. */
#include <errno.h>
#include <otter.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "examples/kv/kv.h"

static void usage(FILE *f) {
    fprintf(f, "usage: kv [--port N] [--bind ADDR] [--schedulers N] [--spin-us N] "
               "[--read-timeout MS] [--enable-debug]\n");
}

/* How long an idle scheduler spins before it sleeps, unless --spin-us says.
 * The runtime's default, 50 us, suits message passing; for a server whose
 * work arrives from sockets, measured on this 2-core box (shared, so noisy)
 * with kv --schedulers 1 against redis-server 7.0 (--save "" --appendonly no)
 * under redis-benchmark -t set,get -n 300000 -c 50, medians of 14 runs each:
 *
 *   spin      -P 1 SET/GET rps  p99 us   -P 16 SET/GET rps  p99 us   CPU us/req (-P 1)
 *   0 (1 us)  153k / 155k     351/351    1.89M / 2.11M     531/347    2.6
 *   5 us      157k / 159k     351/327    2.08M / 2.00M     439/411    3.8
 *   20 us     155k / 151k     327/335    2.02M / 1.91M     395/395    4.8
 *   50 us     151k / 145k     347/375    1.75M / 1.87M     627/471    4.3
 *   redis     150k / 158k     375/371    1.37M / 1.50M     991/859    2.8
 *
 * The client (one core at ~92%) is the limit, so rps and p99 differ by about
 * the noise; 5 us served best overall (the highest rps unpipelined and for
 * SET at -P 16; p99 within 11% of the best, 18% for -P 16 GET) and
 * takes less CPU per request than 20 or 50 us (3.8 against 4.3 to 4.8 us).
 * No spin takes the least CPU (2.6 us, about redis's) but was the slowest
 * unpipelined and had the worst -P 16 SET p99. */
#define KV_SPIN_US 5

static int num_arg(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    kv_opts o = {.port = 6379};
    ot_config cfg = {.spin_us = KV_SPIN_US};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--enable-debug") == 0) {
            o.enable_debug = true;
            continue;
        } else if (!v) {
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--port") == 0 && num_arg(v, 0, 65535, &n) == 0) {
            o.port = (uint16_t)n;
        } else if (strcmp(a, "--schedulers") == 0 && num_arg(v, 0, 1024, &n) == 0) {
            cfg.schedulers = (unsigned)n;
        } else if (strcmp(a, "--spin-us") == 0 && num_arg(v, 0, 1000000, &n) == 0) {
            /* 0 asks for no spin; the runtime reads 0 as "its default", so it
             * gets the shortest spin there is, 1 us. */
            cfg.spin_us = n ? (unsigned)n : 1;
        } else if (strcmp(a, "--read-timeout") == 0 && num_arg(v, 1, 86400000, &n) == 0) {
            o.read_timeout_ms = n;
        } else if (strcmp(a, "--bind") == 0) {
            o.bind = v;
        } else {
            fprintf(stderr, "kv: bad argument %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
        i++;
    }
    /* Blocked before any thread exists, so every scheduler inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
        perror("kv: sigmask");
        return 1;
    }
    sigdelset(&set, SIGPIPE);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        perror("kv: signalfd");
        return 1;
    }
    int rc = ot_start(&cfg);
    if (rc < 0) {
        fprintf(stderr, "kv: cannot start the runtime: %s\n", ot_strerror(rc));
        return 1;
    }
    uint16_t port = 0;
    rc = kv_server_start(&o, &port);
    if (rc < 0) {
        fprintf(stderr, "kv: cannot listen on %s:%u: %s\n", o.bind ? o.bind : "127.0.0.1", o.port,
                ot_strerror(rc));
        ot_stop();
        return 1;
    }
    fprintf(stderr, "kv: ready on port %u with %u schedulers\n", port, ot_schedulers());
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(sfd, &si, sizeof si);
        if (n == (ssize_t)sizeof si)
            break;
        if (n < 0 && errno != EINTR) {
            perror("kv: signalfd read");
            break;
        }
    }
    fprintf(stderr, "kv: %s, shutting down\n", strsignal((int)si.ssi_signo));
    kv_server_stop();
    ot_stop();
    close(sfd);
    return 0;
}
