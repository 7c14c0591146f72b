/* examples/chat with 1,000 clients: all connect, name themselves and join
 * one room; one line from one client reaches each of the 999 others exactly
 * once, byte for byte, and the sender is told 999; a burst of ten lines sent
 * in one write by another client reaches everyone else in order; then every
 * client's next reply is its own answer (nothing extra was queued for it:
 * no duplicate, no echo of its own lines). Protocol errors, QUIT, and the
 * count of connections falling back to 0 once the clients close. The
 * clients are plain blocking sockets on a thread of the test's, which
 * reports to the test's process by ot_send. */
#define CHAT_NO_MAIN
#include "../examples/chat.c"

#include <otter/testing.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENTS 1000
#define NEED_FDS (2 * CLIENTS + 512)

enum { TAG_RESULT = OT_TAG_USER + 1 };

struct run {
    int port;
    ot_pid test;
    int fds[CLIENTS];
    char err[256];
};

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool put(struct run *r, int i, const char *s) {
    size_t len = strlen(s);
    if (send(r->fds[i], s, len, MSG_NOSIGNAL) == (ssize_t)len)
        return true;
    snprintf(r->err, sizeof r->err, "client %d: send failed", i);
    return false;
}

/* The next bytes from client i are exactly want. */
static bool expect(struct run *r, int i, const char *want) {
    char got[2048];
    size_t len = strlen(want), n = 0;
    while (n < len) {
        ssize_t k = recv(r->fds[i], got + n, len - n, 0);
        if (k <= 0) {
            got[n] = 0;
            snprintf(r->err, sizeof r->err, "client %d: recv %zd after '%.80s', want '%.80s'", i, k,
                     got, want);
            return false;
        }
        n += (size_t)k;
    }
    got[n] = 0;
    if (memcmp(got, want, len) != 0) {
        snprintf(r->err, sizeof r->err, "client %d: got '%.100s' want '%.100s'", i, got, want);
        return false;
    }
    return true;
}

static bool scenario(struct run *r) {
    char buf[2048], want[2048];
    for (int i = 0; i < CLIENTS; i++)
        if ((r->fds[i] = dial(r->port)) < 0) {
            snprintf(r->err, sizeof r->err, "client %d: connect: %s", i, strerror(errno));
            return false;
        }
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(buf, sizeof buf, "NICK u%d\nJOIN lobby\n", i);
        snprintf(want, sizeof want, "OK NICK u%d\nOK JOIN lobby\n", i);
        if (!put(r, i, buf) || !expect(r, i, want))
            return false;
    }
    /* one line from u0 to the 999 others */
    if (!put(r, 0, "MSG hello, world\n") || !expect(r, 0, "OK MSG 999\n"))
        return false;
    for (int i = 1; i < CLIENTS; i++)
        if (!expect(r, i, "[lobby] u0: hello, world\n"))
            return false;
    /* a burst of ten in one write from u1: in order, to everyone else */
    buf[0] = want[0] = 0;
    char acks[256] = "";
    for (int k = 0; k < 10; k++) {
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "MSG burst %d\n", k);
        snprintf(want + strlen(want), sizeof want - strlen(want), "[lobby] u1: burst %d\n", k);
        strcat(acks, "OK MSG 999\n");
    }
    if (!put(r, 1, buf) || !expect(r, 1, acks))
        return false;
    for (int i = 0; i < CLIENTS; i++)
        if (i != 1 && !expect(r, i, want))
            return false;
    /* every broadcast was queued before its sender's OK: each client's next
     * bytes are its own answer, so nothing else was sent to it */
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(buf, sizeof buf, "NICK v%d\n", i);
        snprintf(want, sizeof want, "OK NICK v%d\n", i);
        if (!put(r, i, buf) || !expect(r, i, want))
            return false;
    }
    /* protocol errors, QUIT */
    if (!put(r, 2, "HELLO\n") || !expect(r, 2, "ERR unknown command\n"))
        return false;
    if (!put(r, 3, "QUIT\n") || !expect(r, 3, "OK BYE\n"))
        return false;
    if (recv(r->fds[3], buf, 1, 0) != 0) {
        snprintf(r->err, sizeof r->err, "client 3: not closed after QUIT");
        return false;
    }
    memset(buf, 'x', 600);
    buf[600] = '\n';
    buf[601] = 0;
    if (!put(r, 4, buf) || !expect(r, 4, "ERR line too long\n"))
        return false;
    return true;
}

static void *clients(void *arg) {
    struct run *r = arg;
    for (int i = 0; i < CLIENTS; i++)
        r->fds[i] = -1;
    bool ok = scenario(r);
    for (int i = 0; i < CLIENTS; i++)
        if (r->fds[i] >= 0)
            close(r->fds[i]);
    ot_send(r->test, TAG_RESULT, &ok, sizeof ok);
    return NULL;
}

static struct run run;

static void body(void *arg) {
    (void)arg;
    ot_pid l;
    ot_assert_eq(chat_start(0, &l), 0);
    run.port = ot_listener_port(l);
    ot_assert(run.port > 0);
    run.test = ot_self();
    pthread_t t;
    ot_assert_eq(pthread_create(&t, NULL, clients, &run), 0);
    ot_msg *m = ot_receive_tag(TAG_RESULT, 400000); /* TSan takes over a minute */
    ot_assert(m != NULL, "the clients did not finish");
    bool ok = *(bool *)ot_msg_data(m);
    ot_msg_free(m);
    pthread_join(t, NULL);
    ot_assert(ok, "%s", run.err);
    for (int i = 0; i < 2000 && ot_listener_count_connections(l) != 0; i++)
        ot_sleep(5);
    ot_assert_eq(ot_listener_count_connections(l), 0);
    ot_assert_eq(ot_application_stop(), 0);
}

static void four_schedulers(void) {
    ot_test_config.schedulers = 4;
}

Test(chat, a_thousand_clients, .init = four_schedulers, .timeout = 450) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < NEED_FDS)
        cr_skip_test("the hard limit of open files (%lu) is below the %d this test needs",
                     (unsigned long)rl.rlim_max, NEED_FDS);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < NEED_FDS) {
        rl.rlim_cur = NEED_FDS;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    int rc = ot__test_run(body, &ot_test_config);
    const char *f = ot__test_failure();
    if (f)
        cr_assert_fail("%s", f);
    cr_assert_eq(rc, 0);
}
