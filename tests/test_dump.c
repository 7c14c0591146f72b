/* ot_dump, ot_dump_on_signal and process_info's entry and current_function:
 * the dump lists every live process with its fields and, for a stackful
 * process switched out, its frames; the innermost frame outside the runtime
 * is the current function (names come from dladdr: this suite is linked
 * with -rdynamic). Bad input gets a negative errno; the signal's previous
 * action comes back when the dump is turned off. */
#include <otter/testing.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { TAG_GO = OT_TAG_USER + 1, TAG_OTHER };

#define WAIT_MS 20000

/* Exported (the suites build with -fvisibility=hidden) and not inlined: the
 * dump names them through the dynamic symbol table. */
#define VISIBLE __attribute__((visibility("default"), noinline))
VISIBLE void dump_target_waits(void) {
    ot_msg *m = ot_receive_tag(TAG_GO, OT_INFINITY);
    ot_msg_free(m);
    __asm__ volatile("" ::: "memory"); /* keep this frame: no tail call above */
}

VISIBLE void dump_target_main(void *arg) {
    (void)arg;
    ot_register("dump_target", ot_self());
    dump_target_waits();
    __asm__ volatile("" ::: "memory");
}

VISIBLE int dump_handler(void *state, const ot_msg *m) {
    (void)state;
    (void)m;
    return 0;
}

/* The two processes every test looks at: a stackful one parked in
 * dump_target_waits with two unmatched messages queued, and an idle handler. */
static ot_pid target, handler;

static void start_pair(void) {
    ot_spawn_opts o = {.behaviour = "tester"};
    target = ot_spawn_opt(dump_target_main, NULL, &o);
    ot_assert(target.v != 0);
    ot_spawn_opts h = {.behaviour = "idle_handler"};
    handler = ot_spawn_handler(dump_handler, NULL, &h);
    ot_assert(handler.v != 0);
    ot_send(target, TAG_OTHER, "a", 1);
    ot_send(target, TAG_OTHER, "b", 1);
    struct ot_process_info in;
    for (int i = 0; i < WAIT_MS; i++) {
        ot_assert_eq(ot_process_info(target, &in), 0);
        if (in.status == OT_STATUS_WAITING && in.message_queue_len == 2 && in.name[0])
            return;
        ot_sleep(1);
    }
    ot_assert(0, "the target never parked with two messages queued");
}

static void stop_pair(void) {
    ot_send(target, TAG_GO, NULL, 0);
    ot_exit(handler, OT_REASON(OT_KILL));
}

/* Everything written to fd so far. */
static char *slurp(int fd) {
    off_t n = lseek(fd, 0, SEEK_END);
    char *b = calloc(1, (size_t)n + 1);
    if (!b)
        abort();
    ot_assert_eq(pread(fd, b, (size_t)n, 0), n);
    return b;
}

/* For failure messages: the sanitizer build's -Wformat-overflow cannot see
 * that a dump read back is never NULL. */
__attribute__((returns_nonnull, noinline)) static const char *text(const char *s) {
    return s ? s : "(null)";
}

/* The dump's line for p (up to its newline), and the frame lines after it. */
static const char *line_of(const char *dump, ot_pid p, char *out, size_t len, char *frames,
                           size_t flen) {
    char key[48];
    snprintf(key, sizeof key, "\n<0.%u.%u> ", (unsigned)(p.v & 0xffffffffu), (unsigned)(p.v >> 32));
    const char *l = strstr(dump, key);
    if (!l)
        return NULL;
    l++;
    const char *e = strchr(l, '\n');
    snprintf(out, len, "%.*s", (int)(e - l), l);
    const char *f = e + 1, *fe = f;
    while (strncmp(fe, "    #", 5) == 0)
        fe = strchr(fe, '\n') + 1;
    snprintf(frames, flen, "%.*s", (int)(fe - f), f);
    return out;
}

OT_TEST(dump, process_info_has_entry_and_current_function, .timeout = 60) {
    start_pair();
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(target, &in), 0);
    ot_assert(in.entry == (void *)(uintptr_t)dump_target_main);
    ot_assert(strncmp(in.current_function, "dump_target_waits+0x", 20) == 0, "%s",
              in.current_function);
    ot_assert_eq(ot_process_info(handler, &in), 0);
    ot_assert(in.entry == (void *)(uintptr_t)dump_handler);
    ot_assert(strcmp(in.current_function, "dump_handler+0x0") == 0, "%s", in.current_function);
    /* the caller itself is running: its entry function */
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert(strncmp(in.current_function, "ot__", 4) != 0, "%s", in.current_function);
    stop_pair();
}

OT_TEST(dump, dump_lists_every_process_with_frames, .timeout = 60) {
    start_pair();
    int fd = memfd_create("dump", 0);
    ot_assert(fd >= 0);
    ot_assert_eq(ot_dump(fd), 0);
    char *d = slurp(fd);
    char head[96];
    snprintf(head, sizeof head, "otter dump: pid %d, 2 schedulers, 3 processes\n", (int)getpid());
    ot_assert(strncmp(d, head, strlen(head)) == 0, "%.200s", text(d));
    ot_assert(strcmp(d + strlen(d) - 16, "otter dump: end\n") == 0, "%s", d);

    char l[600], fr[4000];
    ot_assert(line_of(d, target, l, sizeof l, fr, sizeof fr) != NULL, "%s", d);
    char want[200];
    snprintf(want, sizeof want,
             "<0.%u.%u> name=dump_target behaviour=tester status=waiting scheduler=",
             (unsigned)(target.v & 0xffffffffu), (unsigned)(target.v >> 32));
    ot_assert(strncmp(l, want, strlen(want)) == 0, "%s", l);
    ot_assert(strstr(l, " kind=stackful queue=2 ") != NULL, "%s", l);
    ot_assert(
        strstr(l, " links=0 monitors=0 monitored_by=0 trap_exit=0 current=dump_target_waits+0x") !=
            NULL,
        "%s", l);
    ot_assert(strstr(l, " entry=dump_target_main+0x0") != NULL, "%s", l);
    /* the frames run from the switch, through the receive, to the program */
    ot_assert(strncmp(fr, "    #0 ", 7) == 0, "%s", fr);
    const char *recv = strstr(fr, "ot_receive_tag+0x");
    const char *mine = strstr(fr, "dump_target_waits+0x");
    const char *entry = strstr(fr, "dump_target_main+0x");
    ot_assert(recv && mine && entry && recv < mine && mine < entry, "%s", fr);

    ot_assert(line_of(d, handler, l, sizeof l, fr, sizeof fr) != NULL, "%s", d);
    snprintf(want, sizeof want, "<0.%u.%u> name=- behaviour=idle_handler status=waiting ",
             (unsigned)(handler.v & 0xffffffffu), (unsigned)(handler.v >> 32));
    ot_assert(strncmp(l, want, strlen(want)) == 0, "%s", l);
    ot_assert(strstr(l, " kind=handler queue=0 ") != NULL, "%s", l);
    ot_assert(strstr(l, " current=dump_handler+0x0 entry=dump_handler+0x0") != NULL, "%s", l);
    ot_assert_eq(fr[0], 0); /* an idle handler has no stack, so no frames */

    ot_assert(line_of(d, ot_self(), l, sizeof l, fr, sizeof fr) != NULL, "%s", d);
    ot_assert(strstr(l, " status=running ") != NULL, "%s", l);
    free(d);
    close(fd);
    stop_pair();
}

static char logged[65536];
static size_t logged_len;
static int logged_lines, logged_level_ok = 1;
static void capture(int level, const char *line, void *arg) {
    (void)arg;
    if (level != OT_LOG_INFO)
        logged_level_ok = 0;
    size_t n = strlen(line);
    if (logged_len + n + 2 < sizeof logged) {
        memcpy(logged + logged_len, line, n);
        logged_len += n;
        logged[logged_len++] = '\n';
        logged[logged_len] = 0;
    }
    logged_lines++;
}

OT_TEST(dump, dump_to_the_logger, .timeout = 60) {
    start_pair();
    ot_set_logger(capture, NULL);
    int rc = ot_dump(OT_DUMP_LOG);
    ot_set_logger(NULL, NULL);
    ot_assert_eq(rc, 0);
    ot_assert_eq(logged_level_ok, 1);
    ot_assert(strncmp(logged, "otter dump: pid ", 16) == 0, "%s", logged);
    ot_assert(strstr(logged, "name=dump_target behaviour=tester status=waiting") != NULL, "%s",
              logged);
    ot_assert(strcmp(logged + logged_len - 16, "otter dump: end\n") == 0, "%s", logged);
    int nl = 0;
    for (size_t i = 0; i < logged_len; i++)
        nl += logged[i] == '\n';
    ot_assert_eq(nl, logged_lines);
    stop_pair();
}

OT_TEST(dump, dump_on_a_signal_and_off_again, .timeout = 60) {
    struct sigaction ign = {.sa_handler = SIG_IGN}, now;
    sigemptyset(&ign.sa_mask);
    ot_assert_eq(sigaction(SIGUSR2, &ign, NULL), 0);
    start_pair();
    int fd = memfd_create("dump", 0);
    ot_assert(fd >= 0);
    ot_assert_eq(ot_dump_on_signal(SIGUSR2, fd), 0);
    ot_assert_eq(lseek(fd, 0, SEEK_END), 0); /* nothing until the signal */
    ot_assert_eq(kill(getpid(), SIGUSR2), 0);
    char *d = slurp(fd);
    for (int i = 0; i < WAIT_MS && !strstr(d, "otter dump: end\n"); i++) {
        ot_sleep(1);
        free(d);
        d = slurp(fd);
    }
    ot_assert(strstr(d, "name=dump_target behaviour=tester status=waiting") != NULL, "%s", text(d));
    ot_assert(strstr(d, "current=dump_target_waits+0x") != NULL, "%s", text(d));
    free(d);
    ot_assert_eq(ot_dump_on_signal(0, 0), 0);
    ot_assert_eq(sigaction(SIGUSR2, NULL, &now), 0);
    ot_assert(now.sa_handler == SIG_IGN);
    /* on again with another signal, then off: the thread comes and goes */
    ot_assert_eq(ot_dump_on_signal(SIGUSR1, OT_DUMP_LOG), 0);
    ot_assert_eq(ot_dump_on_signal(0, 0), 0);
    close(fd);
    stop_pair();
}

OT_TEST(dump, bad_input, .timeout = 60) {
    ot_assert_eq(ot_dump(-5), -EBADF);
    int fds[2];
    ot_assert_eq(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    ot_assert_eq(ot_dump(fds[1]), -EBADF); /* a closed descriptor: the write fails */
    ot_assert_eq(ot_dump_on_signal(SIGKILL, 1), -EINVAL);
    ot_assert_eq(ot_dump_on_signal(SIGSTOP, 1), -EINVAL);
    ot_assert_eq(ot_dump_on_signal(SIGSEGV, 1), -EINVAL);
    ot_assert_eq(ot_dump_on_signal(-1, 1), -EINVAL);
    ot_assert_eq(ot_dump_on_signal(NSIG, 1), -EINVAL);
    ot_assert_eq(ot_dump_on_signal(SIGUSR2, -7), -EBADF);
    ot_assert_eq(ot_dump_on_signal(0, -7), 0); /* off when off */
}

Test(dump, stopped_runtime_says_so, .timeout = 60) {
    int fd = memfd_create("dump", 0);
    cr_assert(fd >= 0);
    cr_assert_eq(ot_dump(fd), -ENOTCONN);
    char b[128] = {0};
    cr_assert_gt(pread(fd, b, sizeof b - 1, 0), 0);
    cr_assert_str_eq(b, "otter dump: the runtime is not running\n");
    close(fd);
}
