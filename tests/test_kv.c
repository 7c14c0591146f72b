/* examples/kv end to end: the server runs in-process on an ephemeral loopback
 * port, clients are plain blocking sockets in this thread (and a few plain
 * threads). Every expected reply below is the byte string redis-server 7.0.15
 * sent for the same input (started with --databases 1 where a database
 * number matters, since this server has one database). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <otter.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "examples/kv/kv.h"

static uint16_t port;

/* How long a client waits for a reply before the test fails: a deadline, not
 * a speed. A sanitizer build (TSan above all: a connection's every message
 * runs on a stack that is a TSan fiber) moves 16 MB values slowly. */
#ifdef OT_SANITIZE
#define RECV_TIMEOUT_S 60
#else
#define RECV_TIMEOUT_S 5
#endif

static void start_opts(kv_opts o) {
    ot_config cfg = {.schedulers = 2};
    cr_assert_eq(ot_start(&cfg), 0);
    cr_assert_eq(kv_server_start(&o, &port), 0);
    cr_assert_neq(port, 0);
}

static void start(void) {
    start_opts((kv_opts){.read_timeout_ms = 300, .enable_debug = true});
}

static void stop(void) {
    kv_server_stop();
    ot_stop();
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* recv, retried on EINTR (signals reach this thread while the runtime runs). */
static ssize_t xrecv(int fd, void *b, size_t n, int flags) {
    ssize_t k;
    do
        k = recv(fd, b, n, flags);
    while (k < 0 && errno == EINTR);
    return k;
}

static int cconnect(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        cr_assert_gt(k, 0, "send: %s", strerror(errno));
        c += k;
        n -= (size_t)k;
    }
}

/* Reads exactly n bytes (or fails after the receive timeout). */
static char *recv_n(int fd, size_t n) {
    char *b = malloc(n + 1);
    size_t got = 0;
    while (got < n) {
        ssize_t k = xrecv(fd, b + got, n - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        cr_assert_gt(k, 0, "recv after %zu of %zu bytes: %s", got, n, k ? strerror(errno) : "EOF");
        got += (size_t)k;
    }
    b[n] = 0;
    return b;
}

/* Nothing more arrives within ms. */
static void quiet(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, ms);
    if (r > 0) {
        char b[256];
        ssize_t k = xrecv(fd, b, sizeof b - 1, MSG_DONTWAIT);
        cr_assert_leq(k, 0, "unexpected bytes: %.*s", (int)(k > 0 ? k : 0), b);
    }
}

static void expect_n(int fd, const char *want, size_t wn) {
    char *got = recv_n(fd, wn);
    cr_assert_eq(memcmp(got, want, wn), 0, "want [%.*s]\n got [%.*s]", (int)wn, want, (int)wn, got);
    free(got);
}

/* Sends `in` and expects exactly `want` back. */
static void rt(int fd, const char *in, const char *want) {
    send_all(fd, in, strlen(in));
    expect_n(fd, want, strlen(want));
}

/* Sends a literal that may hold NUL bytes. */
#define SEND_LIT(fd, lit) send_all(fd, lit, sizeof(lit) - 1)

/* The peer closes: EOF (or a reset) within the receive timeout. */
static void expect_closed(int fd) {
    char b[512];
    ssize_t k;
    do
        k = xrecv(fd, b, sizeof b, 0);
    while (k < 0 && errno == EINTR);
    cr_assert(k == 0 || (k < 0 && errno == ECONNRESET), "not closed: %zd (%s) %.*s", k,
              k < 0 ? strerror(errno) : "", (int)(k > 0 ? k : 0), b);
}

/* A multibulk request from NULL-terminated strings. */
static char *mb(const char *first, ...) {
    static __thread char buf[1 << 16]; /* per thread: client threads build requests too */
    size_t n = 0, argc = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argc++;
    va_end(ap);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "*%zu\r\n", argc);
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        n += (size_t)snprintf(buf + n, sizeof buf - n, "$%zu\r\n%s\r\n", strlen(a), a);
    va_end(ap);
    return buf;
}

#define CMD(...) mb(__VA_ARGS__, NULL)

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

static void wait_connections(long n) {
    int64_t t0 = now_ms();
    while (kv_server_connections() != n && now_ms() - t0 < 60000)
        usleep(1000);
    cr_assert_eq(kv_server_connections(), n, "%ld connections after 60 s, not %ld",
                 kv_server_connections(), n);
}

/* ---- replies, byte for byte ------------------------------------------------ */

Test(kv, ping_echo_quit) {
    start();
    int fd = cconnect();
    rt(fd, "PING\r\n", "+PONG\r\n");
    rt(fd, CMD("PING"), "+PONG\r\n");
    rt(fd, CMD("PING", "hi"), "$2\r\nhi\r\n");
    rt(fd, CMD("PING", "a", "b"), "-ERR wrong number of arguments for 'ping' command\r\n");
    rt(fd, CMD("ECHO", "hello"), "$5\r\nhello\r\n");
    rt(fd, CMD("ECHO"), "-ERR wrong number of arguments for 'echo' command\r\n");
    rt(fd, CMD("ECHO", "a", "b"), "-ERR wrong number of arguments for 'echo' command\r\n");
    rt(fd, CMD("ECHO", ""), "$0\r\n\r\n");
    rt(fd, "ECHO \"\\x41\\n\"\r\n", "$2\r\nA\n\r\n");
    SEND_LIT(fd, "*2\r\n$4\r\nECHO\r\n$3\r\na\0b\r\n");
    expect_n(fd, "$3\r\na\0b\r\n", 9);
    rt(fd, CMD("QUIT"), "+OK\r\n");
    expect_closed(fd);
    close(fd);
    stop();
}

Test(kv, get_set_options) {
    start();
    int fd = cconnect();
    rt(fd, CMD("GET", "k"), "$-1\r\n");
    rt(fd, CMD("SET", "k", "v"), "+OK\r\n");
    rt(fd, CMD("GET", "k"), "$1\r\nv\r\n");
    rt(fd, CMD("GET"), "-ERR wrong number of arguments for 'get' command\r\n");
    rt(fd, CMD("SET", "k"), "-ERR wrong number of arguments for 'set' command\r\n");
    rt(fd, CMD("GET", "a", "b"), "-ERR wrong number of arguments for 'get' command\r\n");
    rt(fd, CMD("SET", "k", "v", "EX", "10"), "+OK\r\n");
    rt(fd, CMD("TTL", "k"), ":10\r\n");
    rt(fd, CMD("SET", "k", "v", "PX", "100000"), "+OK\r\n");
    rt(fd, CMD("TTL", "k"), ":100\r\n");
    rt(fd, CMD("SET", "k", "v", "EX", "0"), "-ERR invalid expire time in 'set' command\r\n");
    rt(fd, CMD("SET", "k", "v", "EX", "-1"), "-ERR invalid expire time in 'set' command\r\n");
    rt(fd, CMD("SET", "k", "v", "EX", "abc"), "-ERR value is not an integer or out of range\r\n");
    rt(fd, CMD("SET", "k", "v", "PX", "0"), "-ERR invalid expire time in 'set' command\r\n");
    rt(fd, CMD("SET", "k", "v", "EX"), "-ERR syntax error\r\n");
    rt(fd, CMD("SET", "k", "v", "FOO"), "-ERR syntax error\r\n");
    rt(fd, CMD("SET", "k", "v", "EX", "9999999999999999"),
       "-ERR invalid expire time in 'set' command\r\n");
    rt(fd, CMD("SET", "k", "v", "PX", "9223372036854775807"),
       "-ERR invalid expire time in 'set' command\r\n");
    rt(fd, CMD("SET", "k", "v", "EX", "10", "KEEPTTL"), "-ERR syntax error\r\n");
    rt(fd, CMD("SET", "k", "v", "EX", "1", "PX", "1000"), "-ERR syntax error\r\n");
    rt(fd, CMD("SET", "k", "v", "NX", "XX"), "-ERR syntax error\r\n");
    rt(fd, CMD("DEL", "k"), ":1\r\n");
    rt(fd, CMD("SET", "k", "v", "NX"), "+OK\r\n");
    rt(fd, CMD("SET", "k", "w", "NX"), "$-1\r\n");
    rt(fd, CMD("SET", "k", "v", "NX", "NX"), "$-1\r\n");
    rt(fd, CMD("GET", "k"), "$1\r\nv\r\n");
    rt(fd, CMD("SET", "k", "x", "XX"), "+OK\r\n");
    rt(fd, CMD("SET", "z", "x", "XX"), "$-1\r\n");
    rt(fd, CMD("SET", "k", "v", "ex", "5"), "+OK\r\n");
    rt(fd, CMD("TTL", "k"), ":5\r\n");
    rt(fd, CMD("SET", "k", "v", "EX", "1", "EX", "2"), "+OK\r\n");
    rt(fd, CMD("TTL", "k"), ":2\r\n");
    rt(fd, CMD("SET", "k", "w", "GET"), "$1\r\nv\r\n");
    rt(fd, CMD("SET", "nokey", "w", "GET"), "$-1\r\n");
    rt(fd, CMD("SET", "c", "1", "GET", "NX"), "$-1\r\n");
    rt(fd, CMD("SET", "c", "2", "GET", "NX"), "$1\r\n1\r\n");
    rt(fd, CMD("SET", "c", "3", "GET", "XX"), "$1\r\n1\r\n");
    rt(fd, CMD("GET", "c"), "$1\r\n3\r\n");
    rt(fd, CMD("SET", "b", "2", "EXAT", "1"), "+OK\r\n");
    rt(fd, CMD("GET", "b"), "$-1\r\n");
    rt(fd, CMD("SET", "b", "2", "EXAT", "0"), "-ERR invalid expire time in 'set' command\r\n");
    rt(fd, CMD("SET", "a", "v", "PX", "100000"), "+OK\r\n");
    rt(fd, CMD("SET", "a", "w", "KEEPTTL"), "+OK\r\n");
    rt(fd, CMD("TTL", "a"), ":100\r\n");
    rt(fd, CMD("SET", "a", "w"), "+OK\r\n");
    rt(fd, CMD("TTL", "a"), ":-1\r\n");
    /* Empty and binary keys and values. */
    rt(fd, CMD("SET", "", "empty"), "+OK\r\n");
    rt(fd, CMD("GET", ""), "$5\r\nempty\r\n");
    SEND_LIT(fd, "*3\r\n$3\r\nSET\r\n$2\r\n\0k\r\n$3\r\nv\0w\r\n");
    expect_n(fd, "+OK\r\n", 5);
    SEND_LIT(fd, "*2\r\n$3\r\nGET\r\n$2\r\n\0k\r\n");
    expect_n(fd, "$3\r\nv\0w\r\n", 9);
    rt(fd, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "$1\r\nw\r\n");
    close(fd);
    stop();
}

Test(kv, keys_and_counters) {
    start();
    int fd = cconnect();
    rt(fd, CMD("SET", "a", "1"), "+OK\r\n");
    rt(fd, CMD("SET", "b", "2"), "+OK\r\n");
    rt(fd, CMD("DEL", "a", "b", "c"), ":2\r\n");
    rt(fd, CMD("DEL"), "-ERR wrong number of arguments for 'del' command\r\n");
    rt(fd, CMD("EXISTS", "a"), ":0\r\n");
    rt(fd, CMD("SET", "a", "1"), "+OK\r\n");
    rt(fd, CMD("EXISTS", "a", "a", "b"), ":2\r\n");
    rt(fd, CMD("EXISTS"), "-ERR wrong number of arguments for 'exists' command\r\n");
    rt(fd, CMD("INCR", "n"), ":1\r\n");
    rt(fd, CMD("INCR", "n"), ":2\r\n");
    rt(fd, CMD("INCRBY", "n", "10"), ":12\r\n");
    rt(fd, CMD("DECR", "n"), ":11\r\n");
    rt(fd, CMD("DECR", "m"), ":-1\r\n");
    rt(fd, CMD("DECRBY", "m", "5"), ":-6\r\n");
    rt(fd, CMD("DECRBY", "m", "-9223372036854775808"), "-ERR decrement would overflow\r\n");
    rt(fd, CMD("SET", "s", "abc"), "+OK\r\n");
    rt(fd, CMD("INCR", "s"), "-ERR value is not an integer or out of range\r\n");
    rt(fd, CMD("INCRBY", "n", "x"), "-ERR value is not an integer or out of range\r\n");
    rt(fd, CMD("SET", "big", "9223372036854775807"), "+OK\r\n");
    rt(fd, CMD("INCR", "big"), "-ERR increment or decrement would overflow\r\n");
    rt(fd, CMD("SET", "sp", " 1"), "+OK\r\n");
    rt(fd, CMD("INCR", "sp"), "-ERR value is not an integer or out of range\r\n");
    rt(fd, CMD("SET", "neg", "-5"), "+OK\r\n");
    rt(fd, CMD("INCR", "neg"), ":-4\r\n");
    rt(fd, CMD("INCRBY", "n", "-9223372036854775808"), ":-9223372036854775797\r\n");
    rt(fd, CMD("INCR"), "-ERR wrong number of arguments for 'incr' command\r\n");
    rt(fd, CMD("INCRBY", "n"), "-ERR wrong number of arguments for 'incrby' command\r\n");
    rt(fd, CMD("SET", "z", "01"), "+OK\r\n");
    rt(fd, CMD("INCR", "z"), "-ERR value is not an integer or out of range\r\n");
    rt(fd, CMD("SET", "e", ""), "+OK\r\n");
    rt(fd, CMD("INCR", "e"), "-ERR value is not an integer or out of range\r\n");
    rt(fd, CMD("SET", "p", "+1"), "+OK\r\n");
    rt(fd, CMD("INCR", "p"), "-ERR value is not an integer or out of range\r\n");
    rt(fd, CMD("SET", "l", "123456789012345678901"), "+OK\r\n");
    rt(fd, CMD("INCR", "l"), "-ERR value is not an integer or out of range\r\n");
    rt(fd, CMD("SET", "t", "1"), "+OK\r\n");
    rt(fd, CMD("EXPIRE", "t", "100"), ":1\r\n");
    rt(fd, CMD("INCR", "t"), ":2\r\n");
    rt(fd, CMD("TTL", "t"), ":100\r\n");
    rt(fd, CMD("MGET", "a", "nokey", "a"), "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n1\r\n");
    rt(fd, CMD("MGET"), "-ERR wrong number of arguments for 'mget' command\r\n");
    rt(fd, CMD("MSET", "x", "1", "y", "2"), "+OK\r\n");
    rt(fd, CMD("MGET", "x", "y"), "*2\r\n$1\r\n1\r\n$1\r\n2\r\n");
    rt(fd, CMD("MSET", "x"), "-ERR wrong number of arguments for 'mset' command\r\n");
    rt(fd, CMD("MSET", "x", "1", "y"), "-ERR wrong number of arguments for 'mset' command\r\n");
    rt(fd, CMD("MSET"), "-ERR wrong number of arguments for 'mset' command\r\n");
    close(fd);
    stop();
}

Test(kv, expire_ttl) {
    start();
    int fd = cconnect();
    rt(fd, CMD("SET", "a", "1"), "+OK\r\n");
    rt(fd, CMD("EXPIRE", "a", "100"), ":1\r\n");
    rt(fd, CMD("TTL", "a"), ":100\r\n");
    rt(fd, CMD("EXPIRE", "b", "100"), ":0\r\n");
    rt(fd, CMD("TTL", "b"), ":-2\r\n");
    rt(fd, CMD("PTTL", "b"), ":-2\r\n");
    rt(fd, CMD("TTL", "a", "b"), "-ERR wrong number of arguments for 'ttl' command\r\n");
    rt(fd, CMD("EXPIRE", "a"), "-ERR wrong number of arguments for 'expire' command\r\n");
    rt(fd, CMD("EXPIRE", "a", "x"), "-ERR value is not an integer or out of range\r\n");
    rt(fd, CMD("PEXPIRE", "a", "5000"), ":1\r\n");
    rt(fd, CMD("TTL", "a"), ":5\r\n");
    rt(fd, CMD("SET", "c", "1"), "+OK\r\n");
    rt(fd, CMD("TTL", "c"), ":-1\r\n");
    rt(fd, CMD("PTTL", "c"), ":-1\r\n");
    rt(fd, CMD("EXPIRE", "c", "0"), ":1\r\n");
    rt(fd, CMD("EXISTS", "c"), ":0\r\n");
    rt(fd, CMD("SET", "c", "1"), "+OK\r\n");
    rt(fd, CMD("EXPIRE", "c", "-5"), ":1\r\n");
    rt(fd, CMD("EXISTS", "c"), ":0\r\n");
    rt(fd, CMD("SET", "c", "1"), "+OK\r\n");
    rt(fd, CMD("EXPIRE", "c", "10", "XX"), ":0\r\n");
    rt(fd, CMD("EXPIRE", "c", "10", "nx"), ":1\r\n");
    rt(fd, CMD("EXPIRE", "c", "10", "NX"), ":0\r\n");
    rt(fd, CMD("EXPIRE", "c", "5", "GT"), ":0\r\n");
    rt(fd, CMD("EXPIRE", "c", "20", "GT"), ":1\r\n");
    rt(fd, CMD("TTL", "c"), ":20\r\n");
    rt(fd, CMD("EXPIRE", "c", "5", "LT"), ":1\r\n");
    rt(fd, CMD("TTL", "c"), ":5\r\n");
    rt(fd, CMD("EXPIRE", "c", "10", "FOO"), "-ERR Unsupported option FOO\r\n");
    rt(fd, CMD("EXPIRE", "c", "10", "NX", "XX"),
       "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
    rt(fd, CMD("EXPIRE", "c", "10", "GT", "LT"),
       "-ERR GT and LT options at the same time are not compatible\r\n");
    rt(fd, CMD("EXPIRE", "a", "9223372036854775807"),
       "-ERR invalid expire time in 'expire' command\r\n");
    rt(fd, CMD("PEXPIRE", "a", "9223372036854775807"),
       "-ERR invalid expire time in 'pexpire' command\r\n");
    rt(fd, CMD("EXPIRE", "zz", "abc"), "-ERR value is not an integer or out of range\r\n");
    /* Lazy expiry: the key is gone when its time has passed. */
    rt(fd, CMD("SET", "short", "v", "PX", "50"), "+OK\r\n");
    usleep(120 * 1000);
    rt(fd, CMD("GET", "short"), "$-1\r\n");
    rt(fd, CMD("TTL", "short"), ":-2\r\n");
    /* Active expiry: keys nobody touches disappear by themselves. */
    rt(fd, CMD("FLUSHALL"), "+OK\r\n");
    for (int i = 0; i < 200; i++) {
        char k[16];
        snprintf(k, sizeof k, "vol%d", i);
        rt(fd, CMD("SET", k, "v", "PX", "30"), "+OK\r\n");
    }
    rt(fd, CMD("SET", "keep", "v"), "+OK\r\n");
    int64_t t0 = now_ms();
    char *got = NULL;
    for (;;) {
        send_all(fd, CMD("DBSIZE"), strlen(CMD("DBSIZE")));
        got = recv_n(fd, 4);
        if (strcmp(got, ":1\r\n") == 0 || now_ms() - t0 > 3000)
            break;
        /* drain the rest of a longer integer reply */
        if (got[2] != '\r') {
            char *rest = recv_n(fd, got[3] == '\r' ? 1 : 2);
            free(rest);
        }
        free(got);
        usleep(50 * 1000);
    }
    cr_assert_str_eq(got, ":1\r\n", "active expiry left keys after 3 s");
    free(got);
    close(fd);
    stop();
}

Test(kv, db_commands) {
    start();
    int fd = cconnect();
    rt(fd, CMD("SET", "a", "1"), "+OK\r\n");
    rt(fd, CMD("DBSIZE"), ":1\r\n");
    rt(fd, CMD("DBSIZE", "x"), "-ERR wrong number of arguments for 'dbsize' command\r\n");
    rt(fd, CMD("FLUSHDB"), "+OK\r\n");
    rt(fd, CMD("DBSIZE"), ":0\r\n");
    rt(fd, CMD("FLUSHALL", "ASYNC"), "+OK\r\n");
    rt(fd, CMD("FLUSHALL", "SYNC"), "+OK\r\n");
    rt(fd, CMD("FLUSHALL", "x"), "-ERR syntax error\r\n");
    rt(fd, CMD("FLUSHDB", "ASYNC"), "+OK\r\n");
    rt(fd, CMD("FLUSHDB", "a", "b"), "-ERR syntax error\r\n");
    rt(fd, CMD("SELECT", "0"), "+OK\r\n");
    rt(fd, CMD("SELECT", "1"), "-ERR DB index is out of range\r\n");
    rt(fd, CMD("SELECT", "16"), "-ERR DB index is out of range\r\n");
    rt(fd, CMD("SELECT", "x"), "-ERR value is not an integer or out of range\r\n");
    rt(fd, CMD("SELECT", "-1"), "-ERR DB index is out of range\r\n");
    rt(fd, CMD("SELECT"), "-ERR wrong number of arguments for 'select' command\r\n");
    close(fd);
    stop();
}

Test(kv, unknown_commands) {
    start();
    int fd = cconnect();
    rt(fd, CMD("FOO"), "-ERR unknown command 'FOO', with args beginning with: \r\n");
    rt(fd, CMD("FOO", "a", "b"),
       "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n");
    rt(fd, CMD("F\r\nO", "x\ny"),
       "-ERR unknown command 'F  O', with args beginning with: 'x y' \r\n");
    char a100[101], b100[101], long300[301];
    memset(a100, 'a', 100);
    a100[100] = 0;
    memset(b100, 'b', 100);
    b100[100] = 0;
    memset(long300, 'X', 300);
    long300[300] = 0;
    char want[512];
    snprintf(want, sizeof want,
             "-ERR unknown command 'FOO', with args beginning with: '%s' '%.25s' \r\n", a100, b100);
    rt(fd, CMD("FOO", a100, b100), want);
    snprintf(want, sizeof want, "-ERR unknown command '%.128s', with args beginning with: \r\n",
             long300);
    rt(fd, CMD(long300), want);
    rt(fd, CMD(" "), "-ERR unknown command ' ', with args beginning with: \r\n");
    rt(fd, "$3\r\n", "-ERR unknown command '$3', with args beginning with: \r\n");
    rt(fd, CMD("DEBUG", "NOPE"), "-ERR unknown subcommand 'NOPE'. Try DEBUG HELP.\r\n");
    close(fd);
    stop();
}

Test(kv, tooling_commands) {
    start();
    int fd = cconnect();
    rt(fd, CMD("CONFIG", "GET", "save"), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    rt(fd, CMD("CONFIG", "GET", "appendonly"), "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    rt(fd, CMD("CONFIG", "GET", "nosuch"), "*0\r\n");
    rt(fd, CMD("CONFIG", "GET"), "-ERR wrong number of arguments for 'config|get' command\r\n");
    rt(fd, CMD("CONFIG", "FOO"), "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n");
    rt(fd, CMD("CONFIG"), "-ERR wrong number of arguments for 'config' command\r\n");
    rt(fd, CMD("CONFIG", "GET", "databases"), "*2\r\n$9\r\ndatabases\r\n$1\r\n1\r\n");
    rt(fd, CMD("CONFIG", "GET", "save", "appendonly"),
       "*4\r\n$10\r\nappendonly\r\n$2\r\nno\r\n$4\r\nsave\r\n$0\r\n\r\n");
    rt(fd, CMD("CLIENT", "SETNAME", "x"), "+OK\r\n");
    rt(fd, CMD("CLIENT", "GETNAME"), "$1\r\nx\r\n");
    rt(fd, CMD("CLIENT", "SETNAME", "a b"),
       "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
    rt(fd, CMD("CLIENT", "FOO"), "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n");
    rt(fd, CMD("CLIENT"), "-ERR wrong number of arguments for 'client' command\r\n");
    rt(fd, CMD("CLIENT", "SETNAME"),
       "-ERR wrong number of arguments for 'client|setname' command\r\n");
    rt(fd, CMD("CLIENT", "ID", "x"), "-ERR wrong number of arguments for 'client|id' command\r\n");
    rt(fd, CMD("HELLO", "4"), "-NOPROTO unsupported protocol version\r\n");
    rt(fd, CMD("HELLO", "x"), "-ERR Protocol version is not an integer or out of range\r\n");
    rt(fd, CMD("HELLO", "2", "AUTH", "a", "b"),
       "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    /* The client id varies; ask for it, then check HELLO's bytes around it. */
    send_all(fd, CMD("CLIENT", "ID"), strlen(CMD("CLIENT", "ID")));
    char idl[32];
    size_t il = 0;
    do {
        cr_assert_eq(xrecv(fd, idl + il, 1, 0), 1);
    } while (idl[il++] != '\n' && il < sizeof idl - 1);
    idl[il] = 0;
    cr_assert_eq(idl[0], ':');
    char hello[512];
    snprintf(
        hello, sizeof hello,
        "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n"
        ":2\r\n$2\r\nid\r\n%s$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
        "$7\r\nmodules\r\n*0\r\n$1\r\nn\r\n",
        idl);
    rt(fd,
       "*4\r\n$5\r\nHELLO\r\n$1\r\n2\r\n$7\r\nSETNAME\r\n$1\r\nn\r\n*2\r\n$6\r\nCLIENT\r\n$"
       "7\r\nGETNAME\r\n",
       hello);
    rt(fd, CMD("FUNCTION", "FLUSH"), "+OK\r\n");
    rt(fd, CMD("FUNCTION", "FLUSH", "SYNC"), "+OK\r\n");
    rt(fd, CMD("FUNCTION", "FLUSH", "x"),
       "-ERR FUNCTION FLUSH only supports SYNC|ASYNC option\r\n");
    rt(fd, CMD("FUNCTION"), "-ERR wrong number of arguments for 'function' command\r\n");
    rt(fd, CMD("FUNCTION", "FOO"), "-ERR unknown subcommand 'FOO'. Try FUNCTION HELP.\r\n");
    rt(fd, CMD("COMMAND", "FOO"), "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n");
    rt(fd, CMD("COMMAND", "INFO", "nosuch"), "*1\r\n$-1\r\n");
    rt(fd, CMD("COMMAND", "INFO", "get"),
       "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n"
       "*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n");
    rt(fd, CMD("INFO", "nosuch"), "$0\r\n\r\n");
    close(fd);
    stop();
}

/* INFO's text, read whole. */
static char *info(int fd, const char *section) {
    const char *req = section ? CMD("INFO", section) : CMD("INFO");
    send_all(fd, req, strlen(req));
    char hdr[32];
    size_t n = 0;
    do {
        cr_assert_eq(xrecv(fd, hdr + n, 1, 0), 1);
    } while (hdr[n++] != '\n' && n < sizeof hdr - 1);
    hdr[n] = 0;
    cr_assert_eq(hdr[0], '$');
    size_t len = (size_t)atol(hdr + 1);
    char *body = recv_n(fd, len + 2);
    body[len] = 0;
    return body;
}

Test(kv, info_sections) {
    start();
    int fd = cconnect();
    rt(fd, CMD("SET", "a", "1", "EX", "100"), "+OK\r\n");
    rt(fd, CMD("SET", "b", "1"), "+OK\r\n");
    rt(fd, CMD("GET", "a"), "$1\r\n1\r\n");
    rt(fd, CMD("GET", "zz"), "$-1\r\n");
    char *all = info(fd, NULL);
    cr_assert(strstr(all, "# Server\r\nredis_version:7.0.15\r\n"), "%s", all);
    cr_assert(strstr(all, "# Clients\r\nconnected_clients:1\r\n"), "%s", all);
    cr_assert(strstr(all, "# Memory\r\nused_memory:"), "%s", all);
    cr_assert(strstr(all, "# Stats\r\ntotal_connections_received:1\r\n"
                          "total_commands_processed:4\r\n"),
              "%s", all);
    cr_assert(strstr(all, "keyspace_hits:1\r\nkeyspace_misses:1\r\n"), "%s", all);
    cr_assert(strstr(all, "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0"), "%s", all);
    size_t al = strlen(all);
    cr_assert(al > 4 && strcmp(all + al - 2, "\r\n") == 0 && all[al - 3] != '\n');
    free(all);
    char *ks = info(fd, "keyspace");
    cr_assert_str_eq(ks, "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n");
    free(ks);
    char *cl = info(fd, "CLIENTS");
    cr_assert_str_eq(cl, "# Clients\r\nconnected_clients:1\r\nblocked_clients:0\r\n");
    free(cl);
    close(fd);
    stop();
}

/* ---- pipelining and concurrency ------------------------------------------- */

Test(kv, pipelining) {
    start();
    int fd = cconnect();
    /* 10,000 commands in one write; the replies come back in order. */
    size_t cap = 10000 * 64, n = 0;
    char *req = malloc(cap);
    size_t wcap = 10000 * 32, wn = 0;
    char *want = malloc(wcap);
    for (int i = 0; i < 5000; i++) {
        char k[16], v[16];
        int kl = snprintf(k, sizeof k, "k%d", i), vl = snprintf(v, sizeof v, "%d", i * 7);
        n += (size_t)snprintf(req + n, cap - n, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", kl,
                              k, vl, v);
        n += (size_t)snprintf(req + n, cap - n, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl, k);
        wn += (size_t)snprintf(want + wn, wcap - wn, "+OK\r\n$%d\r\n%s\r\n", vl, v);
    }
    send_all(fd, req, n);
    expect_n(fd, want, wn);
    /* Inline and multibulk mixed in one write. */
    rt(fd, "PING\r\n*1\r\n$4\r\nPING\r\nECHO x\r\n*2\r\n$4\r\nECHO\r\n$1\r\ny\r\n",
       "+PONG\r\n+PONG\r\n$1\r\nx\r\n$1\r\ny\r\n");
    rt(fd, CMD("DBSIZE"), ":5000\r\n");
    quiet(fd, 50);
    free(req);
    free(want);
    close(fd);
    stop();
}

struct incr_arg {
    int n;
};

static void *incr_thread(void *p) {
    struct incr_arg *a = p;
    int fd = cconnect();
    const char *cmd = "*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n";
    size_t cl = strlen(cmd);
    char *req = malloc(cl * 100);
    for (int i = 0; i < 100; i++)
        memcpy(req + cl * (size_t)i, cmd, cl);
    char buf[4096];
    for (int b = 0; b < a->n / 100; b++) {
        send_all(fd, req, cl * 100);
        int lines = 0;
        while (lines < 100) {
            ssize_t k = xrecv(fd, buf, sizeof buf, 0);
            if (k <= 0)
                return (void *)1;
            for (ssize_t i = 0; i < k; i++)
                lines += buf[i] == '\n';
        }
    }
    free(req);
    close(fd);
    return NULL;
}

Test(kv, incr_is_atomic_across_connections) {
    start();
    pthread_t t[4];
    struct incr_arg a = {.n = 5000};
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, incr_thread, &a);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        cr_assert_null(r);
    }
    int fd = cconnect();
    rt(fd, CMD("GET", "ctr"), "$5\r\n20000\r\n");
    close(fd);
    stop();
}

/* A 16 MiB value: the bulk arrives in many reads, and the GET reply is larger
 * than the output buffer's first size (the zero-copy read asks for room and
 * retries). */
Test(kv, large_values) {
    start();
    int fd = cconnect();
    size_t n = (size_t)16 << 20;
    char *v = malloc(n);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)('a' + i % 26);
    char hdr[64];
    int hl = snprintf(hdr, sizeof hdr, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%zu\r\n", n);
    send_all(fd, hdr, (size_t)hl);
    send_all(fd, v, n);
    send_all(fd, "\r\n", 2);
    expect_n(fd, "+OK\r\n", 5);
    rt(fd, CMD("GET", "big"), "");
    hl = snprintf(hdr, sizeof hdr, "$%zu\r\n", n);
    expect_n(fd, hdr, (size_t)hl);
    char *got = recv_n(fd, n + 2);
    cr_assert_eq(memcmp(got, v, n), 0);
    cr_assert_eq(memcmp(got + n, "\r\n", 2), 0);
    free(got);
    rt(fd, CMD("MGET", "big", "nope"), "");
    hl = snprintf(hdr, sizeof hdr, "*2\r\n$%zu\r\n", n);
    expect_n(fd, hdr, (size_t)hl);
    got = recv_n(fd, n + 2 + 5);
    cr_assert_eq(memcmp(got, v, n), 0);
    cr_assert_eq(memcmp(got + n, "\r\n$-1\r\n", 7), 0);
    free(got);
    rt(fd, CMD("DEL", "big"), ":1\r\n");
    free(v);
    close(fd);
    stop();
}

/* Set by the test when it is done, read by the writer thread each round. */
static atomic_int mset_stop;

static void *mset_thread(void *arg) {
    int fd = cconnect();
    char buf[256];
    /* Pairs with the release store in mset_mget_atomic. */
    for (int i = 0; !atomic_load_explicit(&mset_stop, memory_order_acquire); i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const char *req = CMD("MSET", "ma", v, "mb", v, "mc", v);
        char copy[256];
        snprintf(copy, sizeof copy, "%s", req);
        send_all(fd, copy, strlen(copy));
        ssize_t k = xrecv(fd, buf, 5, MSG_WAITALL);
        if (k != 5)
            return (void *)1;
    }
    close(fd);
    return NULL;
}

/* MSET and MGET hold every stripe of their keys: an MGET never sees half an
 * MSET, with the writer on another connection (and scheduler). */
Test(kv, mset_mget_atomic) {
    start();
    int fd = cconnect();
    rt(fd, CMD("MSET", "ma", "0", "mb", "0", "mc", "0"), "+OK\r\n");
    /* Relaxed: pthread_create below orders it before the thread's loads. */
    atomic_store_explicit(&mset_stop, 0, memory_order_relaxed);
    pthread_t t;
    pthread_create(&t, NULL, mset_thread, NULL);
    char req[128];
    snprintf(req, sizeof req, "%s", CMD("MGET", "ma", "mb", "mc"));
    for (int i = 0; i < 3000; i++) {
        send_all(fd, req, strlen(req));
        char b[128];
        size_t got = 0;
        int lines = 0;
        while (lines < 7) {
            ssize_t k = xrecv(fd, b + got, 1, 0);
            cr_assert_eq(k, 1, "recv: %zd %s after %.*s", k, k < 0 ? strerror(errno) : "EOF",
                         (int)got, b);
            lines += b[got++] == '\n';
        }
        b[got] = 0;
        /* *3, then three equal bulks */
        char *l1 = strchr(b, '\n') + 1;
        char *v1 = strchr(l1, '\n') + 1;
        char *e1 = strchr(v1, '\r');
        char *l2 = strchr(v1, '\n') + 1;
        char *v2 = strchr(l2, '\n') + 1;
        char *l3 = strchr(v2, '\n') + 1;
        char *v3 = strchr(l3, '\n') + 1;
        size_t vl = (size_t)(e1 - v1);
        cr_assert(strncmp(v1, v2, vl + 2) == 0 && strncmp(v1, v3, vl + 2) == 0, "torn MGET: %s", b);
    }
    /* Pairs with the acquire load in mset_thread. */
    atomic_store_explicit(&mset_stop, 1, memory_order_release);
    void *r;
    pthread_join(t, &r);
    cr_assert_null(r);
    close(fd);
    stop();
}

/* ---- bad input: every case answered or closed, the server goes on ----------- */

static void bad_case(const char *in, size_t n, const char *reply) {
    int other = cconnect();
    rt(other, CMD("SET", "alive", "1"), "+OK\r\n");
    int fd = cconnect();
    send_all(fd, in, n);
    if (reply)
        expect_n(fd, reply, strlen(reply));
    expect_closed(fd);
    close(fd);
    rt(other, CMD("GET", "alive"), "$1\r\n1\r\n");
    close(other);
}

Test(kv, protocol_errors_close) {
    start();
    bad_case("*a\r\n", 4, "-ERR Protocol error: invalid multibulk length\r\n");
    bad_case("*1\r\nx4\r\n", 8, "-ERR Protocol error: expected '$', got 'x'\r\n");
    bad_case("*1\r\n$a\r\n", 8, "-ERR Protocol error: invalid bulk length\r\n");
    bad_case("*1\r\n$-1\r\n", 9, "-ERR Protocol error: invalid bulk length\r\n");
    bad_case("SET a \"b\r\n", 10, "-ERR Protocol error: unbalanced quotes in request\r\n");
    bad_case("*1\r\n$3\r\nfoo\r\n*a\r\n", 17,
             "-ERR unknown command 'foo', with args beginning with: \r\n"
             "-ERR Protocol error: invalid multibulk length\r\n");
    /* Over proto-max-bulk-len: refused at the header, before any allocation. */
    bad_case("*2\r\n$3\r\nSET\r\n$536870913\r\n", 26,
             "-ERR Protocol error: invalid bulk length\r\n");
    wait_connections(0);
    stop();
}

struct flood {
    int fd;
    size_t total;
    size_t sent;
};

static void *flood_thread(void *p) {
    struct flood *f = p;
    size_t chunk = 1 << 20;
    char *b = malloc(chunk);
    memset(b, 'A', chunk);
    while (f->sent < f->total) {
        ssize_t k = send(f->fd, b, chunk, MSG_NOSIGNAL);
        if (k <= 0)
            break; /* the server closed on us, as it should */
        f->sent += (size_t)k;
    }
    free(b);
    return NULL;
}

/* A 100 MB line with no newline: refused after 64 KiB, connection closed,
 * the rest never buffered. */
static void flood_case(const char *prefix, const char *reply) {
    int other = cconnect();
    int fd = cconnect();
    send_all(fd, prefix, strlen(prefix));
    struct flood f = {.fd = fd, .total = (size_t)100 << 20};
    pthread_t t;
    pthread_create(&t, NULL, flood_thread, &f);
    char *got = recv_n(fd, strlen(reply));
    cr_assert_str_eq(got, reply);
    free(got);
    expect_closed(fd);
    pthread_join(t, NULL);
    cr_assert_lt(f.sent, (size_t)100 << 20, "the server read all 100 MB");
    close(fd);
    rt(other, CMD("PING"), "+PONG\r\n");
    close(other);
}

Test(kv, huge_lines_refused) {
    start();
    flood_case("", "-ERR Protocol error: too big inline request\r\n");
    flood_case("*", "-ERR Protocol error: too big mbulk count string\r\n");
    flood_case("*1\r\n$", "-ERR Protocol error: too big bulk count string\r\n");
    wait_connections(0);
    stop();
}

Test(kv, client_gone_mid_command) {
    start();
    int other = cconnect();
    rt(other, CMD("PING"), "+PONG\r\n");
    for (int i = 0; i < 50; i++) {
        int fd = cconnect();
        const char *half = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc";
        send_all(fd, half, strlen(half));
        close(fd);
    }
    wait_connections(1);
    rt(other, CMD("EXISTS", "k"), ":0\r\n");
    close(other);
    wait_connections(0);
    stop();
}

Test(kv, idle_mid_command_times_out) {
    start(); /* read timeout 300 ms */
    int other = cconnect();
    int fd = cconnect();
    send_all(fd, "*2\r\n$4\r\nECHO\r\n", 14);
    int64_t t0 = now_ms();
    expect_closed(fd);
    int64_t waited = now_ms() - t0;
    cr_assert(waited >= 250 && waited < 3000, "closed after %lld ms", (long long)waited);
    close(fd);
    /* An idle connection between commands is not timed out. */
    usleep(500 * 1000);
    rt(other, CMD("PING"), "+PONG\r\n");
    close(other);
    stop();
}

/* Without a read timeout (the default, as Redis's timeout 0) a half-sent
 * command is kept: here for 1.5 s, then it completes and is answered. */
Test(kv, half_sent_command_kept_by_default) {
    start_opts((kv_opts){0});
    int fd = cconnect();
    send_all(fd, "*2\r\n$4\r\nECHO\r\n$5\r\nhel", 21);
    quiet(fd, 1500);
    rt(fd, "lo\r\n", "$5\r\nhello\r\n");
    /* A command split at every byte is answered too. */
    const char *c = CMD("SET", "k", "v");
    for (size_t i = 0, n = strlen(c); i < n; i++) {
        send_all(fd, c + i, 1);
        usleep(1000);
    }
    expect_n(fd, "+OK\r\n", 5);
    close(fd);
    stop();
}

Test(kv, crash_closes_only_that_connection) {
    /* Sanitizer builds leave SIGSEGV to the sanitizer (runtime/sched/fault.c),
     * so a real fault ends the whole program. Under ASan, DEBUG SEGFAULT exits
     * the process with the fault's reason instead (commands.c), so what this
     * test checks (the acceptor's DOWN, close and count) still runs there;
     * under TSan the fault is real and cannot be caught. */
#if defined(OT_SANITIZE) && !defined(OT_ASAN)
    cr_skip_test("sanitizer build: TSan owns the SIGSEGV handler, so the runtime does not turn "
                 "DEBUG SEGFAULT's fault into the connection process's exit here "
                 "(runtime/sched/fault.c)");
#endif
    start();
    int other = cconnect();
    rt(other, CMD("SET", "a", "1"), "+OK\r\n");
    int fd = cconnect();
    rt(fd, CMD("PING"), "+PONG\r\n");
    send_all(fd, CMD("DEBUG", "SEGFAULT"), strlen(CMD("DEBUG", "SEGFAULT")));
    expect_closed(fd);
    close(fd);
    rt(other, CMD("GET", "a"), "$1\r\n1\r\n");
    /* The socket closes as its owner exits; the server counts the crash at
     * the DOWN, which may come a moment after the client saw the close. */
    char *st = NULL;
    for (int64_t t0 = now_ms(); now_ms() - t0 < 5000; usleep(1000)) {
        free(st);
        st = info(other, "stats");
        if (strstr(st, "crashed_connections:1\r\n"))
            break;
    }
    cr_assert(strstr(st, "crashed_connections:1\r\n"), "%s", st);
    free(st);
    close(other);
    wait_connections(0);
    stop();
}

/* ---- 10,000 connections, and nothing leaks -------------------------------- */

static size_t allocated(void) {
    uint64_t epoch = 1;
    size_t sz = sizeof epoch, a = 0, asz = sizeof a;
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    mallctl("stats.allocated", &a, &asz, NULL, 0);
    return a;
}

/* The client half of a round of n connections, in a child process of its
 * own: the test process then holds only the server's n sockets, so the round
 * fits an open-file limit of 2n (20,000 here, and not raisable without
 * CAP_SYS_RESOURCE) instead of needing both ends in one fd table. The child
 * uses plain system calls only (it is forked from a threaded process) and
 * reports through a pipe: one byte when all n answered PING, then it waits
 * for the parent's byte before it closes them all. Exit status 0 is success. */
static int client_child(int n, int ready_w, int go_r) {
    int *fds = calloc((size_t)n, sizeof *fds);
    if (!fds)
        return 10;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a) != 0)
            return 11;
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    for (int i = 0; i < n; i++)
        if (send(fds[i], ping, sizeof ping - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof ping - 1))
            return 12;
    for (int i = 0; i < n; i++) {
        char buf[8];
        size_t got = 0;
        while (got < 7) {
            ssize_t k = recv(fds[i], buf + got, 7 - got, 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return 13;
            got += (size_t)k;
        }
        if (memcmp(buf, "+PONG\r\n", 7) != 0)
            return 14;
    }
    char b = 1;
    if (write(ready_w, &b, 1) != 1 || read(go_r, &b, 1) != 1)
        return 15;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

static void connect_round(int n) {
    int ready[2], go[2];
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(go), 0);
    pid_t child = fork();
    /* the child's branch first: no Criterion call may run in the child (with
     * --full-stats even a passing assertion is a message to the runner, which
     * rejects one from a process it did not fork) */
    if (child == 0)
        _exit(client_child(n, ready[1], go[0]));
    cr_assert_geq(child, 0, "fork: %s", strerror(errno));
    close(ready[1]);
    close(go[0]);
    char b;
    cr_assert_eq(read(ready[0], &b, 1), 1, "the client child failed before all %d answered", n);
    wait_connections(n);
    cr_assert_eq(write(go[1], &b, 1), 1);
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client child status %d", st);
    close(ready[0]);
    close(go[1]);
    wait_connections(0);
}

Test(kv, ten_thousand_connections_no_leak, .timeout = 120) {
#if defined(OT_TSAN)
    /* a connection's every message runs on a stack that is a TSan fiber, and
     * a round of 1,000 took 40 s there (10,000 take 2 s without TSan): 500
     * there, 10,000 everywhere else */
    enum { N = 500 };
#else
    enum { N = 10000 };
#endif
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = N + 256; /* the server's ends; the clients' are in a child */
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need;
        if (rl.rlim_max < need)
            rl.rlim_max = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            cr_skip_test("cannot raise RLIMIT_NOFILE to %lu: %s", (unsigned long)need,
                         strerror(errno));
    }
    start_opts((kv_opts){.backlog = 4096, .read_timeout_ms = 5000});
    int fd0 = count_fds();
    connect_round(N); /* warms pools: stacks, heaps, fd tables */
    /* Closed sockets are closed on the server side too. */
    int64_t t0 = now_ms();
    while (count_fds() != fd0 && now_ms() - t0 < 5000)
        usleep(10000);
    cr_assert_eq(count_fds(), fd0, "fds before %d, after %d", fd0, count_fds());
    size_t mem0 = allocated();
    connect_round(N);
    t0 = now_ms();
    while (count_fds() != fd0 && now_ms() - t0 < 5000)
        usleep(10000);
    cr_assert_eq(count_fds(), fd0, "fds before %d, after %d", fd0, count_fds());
    size_t mem1 = allocated();
    /* 10,000 connections again: a leak of even 100 bytes each would show. */
    cr_assert_lt(mem1, mem0 + (1 << 20), "allocated %zu -> %zu", mem0, mem1);
    int fd = cconnect();
    char *st = info(fd, "stats");
    char want[64];
    snprintf(want, sizeof want, "total_connections_received:%d\r\n", 2 * N + 1);
    cr_assert(strstr(st, want), "%s", st);
    free(st);
    close(fd);
    stop();
}

/* Stop with clients connected (idle and mid-command): their sockets are shut
 * down, they end on their normal path (no kill needed, so well under the 2 s
 * grace), and the clients see the end. Then a second server starts in the
 * same runtime. */
Test(kv, stop_with_open_connections_and_restart) {
    start();
    uint16_t p2;
    kv_opts o = {0};
    cr_assert_eq(kv_server_start(&o, &p2), -EALREADY);
    int fds[100];
    for (int i = 0; i < 100; i++) {
        fds[i] = cconnect();
        rt(fds[i], CMD("PING"), "+PONG\r\n");
    }
    send_all(fds[0], "*2\r\n$4\r\nECHO\r\n", 14);
    int64_t t0 = now_ms();
    kv_server_stop();
    int64_t took = now_ms() - t0;
#ifndef OT_SANITIZE
    /* well under the 2 s after which a connection still running is killed
     * (sanitizer builds are too slow for this bound to mean that) */
    cr_assert_lt(took, 1500, "stop took %lld ms", (long long)took);
#else
    (void)took;
#endif
    cr_assert_eq(kv_server_connections(), 0);
    for (int i = 0; i < 100; i++) {
        expect_closed(fds[i]);
        close(fds[i]);
    }
    kv_server_stop(); /* a second stop does nothing */
    cr_assert_eq(kv_server_start(&o, &port), 0);
    int fd = cconnect();
    rt(fd, CMD("DBSIZE"), ":0\r\n");
    rt(fd, CMD("SET", "a", "1"), "+OK\r\n");
    close(fd);
    stop();
}

/* ---- a real client ----------------------------------------------------------- */

static char *run(const char *cmd) {
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    static char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    pclose(p);
    return out;
}

Test(kv, redis_cli_round_trip) {
    if (access("/usr/bin/redis-cli", X_OK) != 0)
        cr_skip_test("redis-cli is not installed");
    start();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/redis-cli -p %u PING 2>&1", port);
    cr_assert_str_eq(run(cmd), "PONG\n");
    snprintf(cmd, sizeof cmd, "/usr/bin/redis-cli -p %u SET greeting 'hello world' 2>&1", port);
    cr_assert_str_eq(run(cmd), "OK\n");
    snprintf(cmd, sizeof cmd, "/usr/bin/redis-cli -p %u GET greeting 2>&1", port);
    cr_assert_str_eq(run(cmd), "hello world\n");
    snprintf(cmd, sizeof cmd, "/usr/bin/redis-cli -p %u INCRBY n 5 2>&1", port);
    cr_assert_str_eq(run(cmd), "5\n");
    snprintf(cmd, sizeof cmd, "/usr/bin/redis-cli -p %u MGET greeting nope 2>&1", port);
    cr_assert_str_eq(run(cmd), "hello world\n\n");
    snprintf(cmd, sizeof cmd, "/usr/bin/redis-cli -p %u NOSUCH x 2>&1", port);
    cr_assert_str_eq(run(cmd), "ERR unknown command 'NOSUCH', with args beginning with: 'x' \n\n");
    /* Commands from stdin, one per line (the output is what redis-cli prints
     * for the same lines against redis-server 7.0). */
    snprintf(cmd, sizeof cmd,
             "printf 'SET a 1\\nGET a\\nDBSIZE\\n' | /usr/bin/redis-cli -p %u 2>&1", port);
    cr_assert_str_eq(run(cmd), "OK\n1\n3\n");
    stop();
}
