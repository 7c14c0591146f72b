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
 * Every request that finds kv's scheduler asleep makes the client's own
 * send(2) wake it (the socket's wake-up runs in the sender's syscall), and on
 * these VMs a wake of a halted vCPU is dear: per request, the client's CPU
 * grows by about 10 us per wake (the rows below). A spin of 50 us
 * outlasts the gap between two requests of a busy connection set, so the
 * scheduler is nearly never asleep when a request lands; the spin itself
 * polls the ring's TASKRUN flag, so it makes no syscalls. Measured on this
 * 2-core box (shared, so noisy) with kv --schedulers 1 against redis-server
 * 7.0 (--save "" --appendonly no), redis-benchmark -t get,set -n 300000
 * -c 50 -P 1, medians of 3 runs each, per request: the client's CPU and its
 * wakes of the server (sched_waking in the client), the server's sleeps:
 *
 *   spin      GET/SET rps    client us/req  client wakes/req  server sleeps/req
 *   1 us      122k / 127k    7.5 / 7.8      0.099 / 0.082     0.097 / 0.083
 *   5 us      132k / 134k    7.5 / 7.3      0.053 / 0.049     0.052 / 0.050
 *   20 us     142k / 141k    6.9 / 7.0      0.017 / 0.014     0.016 / 0.016
 *   50 us     142k / 146k    6.8 / 6.6      0.004 / 0.004     0.003 / 0.006
 *   200 us    145k / 145k    6.7 / 6.7      0.002 / 0.003     0.002 / 0.006
 *   redis     125k / 130k    7.8 / 7.4      0.095 / 0.082     0.093 / 0.081
 *
 * The client (redis-benchmark, one thread) is the limit in every row, so
 * what the server saves it is what shows: 50 us takes the wakes out, and
 * 200 us adds nothing but idle CPU. An idle kv spins 50 us after its last
 * work, then sleeps in the ring. The other side: when other jobs want both
 * cores, a scheduler that never sleeps is time-sliced with them and loses
 * the prompt wake-up a sleeper gets; with the box loaded (load average 4-6)
 * spin 5 came out ahead in 4 of 6 paired runs (rps and p99, both noisy).
 * There, --spin-us 5 is the better setting. */
#define KV_SPIN_US 50

/* jemalloc's options for this program: a background thread returns freed
 * pages to the kernel once they have been unused for a second, also while
 * the server is idle (without it purging happens only during allocations,
 * so the memory of a crowd of connections that all closed stays resident).
 * redis-server also runs jemalloc's background thread (jemalloc-bg-thread).
 * Default visibility: jemalloc looks the symbol up at load time, and the
 * build hides symbols by default. */
__attribute__((visibility("default"))) const char *malloc_conf =
    "background_thread:true,dirty_decay_ms:1000";

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
        } else if (strcmp(a, "--read-timeout") == 0 && num_arg(v, 0, 86400000, &n) == 0) {
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
