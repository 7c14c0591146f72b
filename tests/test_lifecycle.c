/* The runtime's lifecycle against the embedding program (issue 10, items 7,
 * 8 and 13):
 * - plain threads and ot_stop: a plain thread parked in a receive (with a
 *   timeout or OT_INFINITY) is woken by ot_stop with ENOTCONN, and every
 *   call it makes from then on returns -ENOTCONN (or the null handle with
 *   errno ENOTCONN); many plain threads sending and receiving while the
 *   runtime stops and starts again never crash (also run under ASan/TSan);
 * - pids kept across ot_stop/ot_start are dead pids: sends and exits to them
 *   return the dead-pid results and never reach a process of the new run;
 * - ot_stop returns -ETIMEDOUT within its bound when a process never makes a
 *   runtime call, names that process in the log, and the program can exit. */
#include <otter.h>

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { TAG_PING = OT_TAG_USER + 1, TAG_COUNT, TAG_HELLO };

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static ot_config cfg2(void) {
    return (ot_config){.schedulers = 2, .max_processes = 4096};
}

/* ---- item 7: plain threads and ot_stop ------------------------------------------- */

struct fw {
    int64_t ms;
    _Atomic int state; /* 1 waiting (about to), 2 returned */
    int err;
    bool got;
};

static void *receive_thread(void *arg) {
    struct fw *f = arg;
    atomic_store(&f->state, 1);
    errno = 0;
    ot_msg *m = ot_receive(f->ms);
    f->got = m != NULL;
    f->err = m ? 0 : errno;
    ot_msg_free(m);
    atomic_store(&f->state, 2);
    return NULL;
}

/* Joins t within 10 s, or fails the test (the old code blocked forever). */
static void join_within(pthread_t t, const char *what) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    cr_assert_eq(pthread_timedjoin_np(t, NULL, &ts), 0, "%s: the thread did not return", what);
}

static void stop_wakes(int64_t ms) {
    ot_config c = cfg2();
    cr_assert_eq(ot_start(&c), 0);
    struct fw f = {.ms = ms};
    pthread_t t;
    pthread_create(&t, NULL, receive_thread, &f);
    while (atomic_load(&f.state) == 0)
        usleep(1000);
    usleep(50000); /* parked in its futex wait */
    cr_assert_eq(ot_stop(), 0);
    join_within(t, "receive across ot_stop");
    cr_assert(!f.got);
    cr_assert_eq(f.err, ENOTCONN, "errno %d", f.err);
    /* the old code: with a timeout, the thread's later wake-up wrote into
     * the unmapped table; give it the time to have done so */
    usleep(ms > 0 ? 300000 : 0);
}

Test(lifecycle, stop_wakes_plain_receive_infinity, .timeout = 60) {
    stop_wakes(OT_INFINITY);
}

Test(lifecycle, stop_wakes_plain_receive_timeout, .timeout = 60) {
    stop_wakes(200);
}

static void idle_proc(void *arg) {
    (void)arg;
    ot_msg *m = ot_receive(OT_INFINITY);
    ot_msg_free(m);
}

struct after {
    ot_pid pid;
    int rc[8];
    int err[8];
};

static void *calls_after_stop(void *arg) {
    struct after *a = arg;
    a->rc[0] = ot_send(a->pid, TAG_PING, "x", 1);
    errno = 0;
    a->rc[1] = ot_receive(10) == NULL;
    a->err[1] = errno;
    a->rc[2] = ot_exit(a->pid, OT_REASON(OT_KILL));
    errno = 0;
    a->rc[3] = (int)ot_spawn(idle_proc, NULL).v;
    a->err[3] = errno;
    a->rc[4] = ot_register("x", a->pid);
    errno = 0;
    a->rc[5] = (int)ot_whereis("x").v;
    struct ot_process_info pi;
    a->rc[6] = ot_process_info(a->pid, &pi);
    a->rc[7] = ot_is_alive(a->pid);
    return NULL;
}

Test(lifecycle, plain_thread_calls_after_stop_are_enotconn, .timeout = 60) {
    ot_config c = cfg2();
    cr_assert_eq(ot_start(&c), 0);
    struct after a = {.pid = ot_spawn(idle_proc, NULL)};
    /* a thread with a mailbox from this run, then calling after the stop */
    cr_assert_eq(ot_send(a.pid, TAG_PING, "x", 1), 0);
    cr_assert_eq(ot_stop(), 0);
    pthread_t t;
    pthread_create(&t, NULL, calls_after_stop, &a);
    join_within(t, "calls after stop");
    /* and this (main) thread, whose mailbox belonged to the stopped run */
    cr_assert_eq(ot_send(a.pid, TAG_PING, "x", 1), -ENOTCONN);
    errno = 0;
    cr_assert_null(ot_receive(0));
    cr_assert_eq(errno, ENOTCONN);
    cr_assert_eq(a.rc[0], -ENOTCONN);
    cr_assert_eq(a.rc[1], 1);
    cr_assert_eq(a.err[1], ENOTCONN);
    cr_assert_eq(a.rc[2], -ENOTCONN);
    cr_assert_eq(a.rc[3], 0);
    cr_assert_eq(a.err[3], ENOTCONN);
    cr_assert_eq(a.rc[4], -ENOTCONN);
    cr_assert_eq(a.rc[5], 0);
    cr_assert_eq(a.rc[6], -ENOTCONN);
    cr_assert_eq(a.rc[7], 0);
}

/* Many plain threads send to a process and receive (with and without
 * timeouts) while the runtime stops; every call returns 0, a message, a
 * timeout or ENOTCONN, and nothing crashes. Rounds of start/stop. */
enum { RACERS = 12, ROUNDS = 15 };
static _Atomic uint64_t target;
static _Atomic int go;
static _Atomic long bad;

static void echo_proc(void *arg) {
    (void)arg;
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        if (m && m->from.v)
            ot_send(m->from, TAG_PING, NULL, 0);
        ot_msg_free(m);
    }
}

static void *racer(void *arg) {
    long id = (long)arg;
    while (!atomic_load(&go))
        ;
    for (int i = 0; atomic_load(&go) == 1; i++) {
        ot_pid to = {atomic_load(&target)};
        int rc = ot_send(to, TAG_PING, &i, sizeof i);
        if (rc != 0 && rc != -ENOTCONN)
            atomic_fetch_add(&bad, 1);
        int64_t ms = (id % 3 == 0) ? OT_INFINITY : (id % 3 == 1) ? 0 : 2;
        errno = 0;
        ot_msg *m = ot_receive(ms);
        if (!m && errno != ETIMEDOUT && errno != ENOTCONN)
            atomic_fetch_add(&bad, 1);
        ot_msg_free(m);
        if (rc == -ENOTCONN && !m)
            usleep(100);
    }
    return NULL;
}

Test(lifecycle, plain_threads_race_stop, .timeout = 240) {
    pthread_t t[RACERS];
    atomic_store(&go, 0);
    for (long i = 0; i < RACERS; i++)
        pthread_create(&t[i], NULL, racer, (void *)i);
    for (int r = 0; r < ROUNDS; r++) {
        ot_config c = cfg2();
        cr_assert_eq(ot_start(&c), 0);
        atomic_store(&target, ot_spawn(echo_proc, NULL).v);
        atomic_store(&go, 1);
        usleep(20000 + (unsigned)(r % 5) * 7000);
        cr_assert_eq(ot_stop(), 0);
    }
    atomic_store(&go, 2);
    for (int i = 0; i < RACERS; i++)
        join_within(t[i], "racer");
    cr_assert_eq(atomic_load(&bad), 0);
}

/* ---- item 8: pids across ot_stop/ot_start ------------------------------------------- */

enum { NP = 64 };

static void counter_proc(void *arg) {
    (void)arg;
    long n = 0;
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        if (m->tag == TAG_COUNT)
            ot_send(m->from, TAG_COUNT, &n, sizeof n);
        else
            n++;
        ot_msg_free(m);
    }
}

static ot_pid old_pids[NP];
static _Atomic int checks_done;

static void old_pid_checks(void *arg) {
    (void)arg;
    /* from a process: link and monitor see the old pids as dead */
    int fails = 0;
    for (int i = 0; i < NP; i++) {
        if (ot_link(old_pids[i]) != -ESRCH)
            fails++;
        ot_ref r = ot_monitor(old_pids[i]);
        ot_msg *m = ot_receive_tag(OT_TAG_DOWN, 5000);
        if (!m || ((ot_down_msg *)ot_msg_data(m))->reason.kind != OT_NOPROC ||
            m->ref.v != r.v)
            fails++;
        ot_msg_free(m);
    }
    atomic_store(&checks_done, fails ? -fails : 1);
}

Test(lifecycle, pids_never_survive_a_restart, .timeout = 120) {
    for (int run = 0; run < 3; run++) {
        ot_config c = cfg2();
        cr_assert_eq(ot_start(&c), 0);
        ot_pid now[NP];
        for (int i = 0; i < NP; i++)
            now[i] = ot_spawn(counter_proc, NULL);
        if (run > 0) {
            for (int i = 0; i < NP; i++)
                for (int j = 0; j < NP; j++)
                    cr_assert_neq(now[i].v, old_pids[j].v, "run %d: pid %d is an old one", run,
                                  i);
            for (int i = 0; i < NP; i++) {
                cr_assert(!ot_is_alive(old_pids[i]));
                struct ot_process_info pi;
                cr_assert_eq(ot_process_info(old_pids[i], &pi), -ESRCH);
                cr_assert_eq(ot_send(old_pids[i], TAG_PING, NULL, 0), 0); /* dead: dropped */
                cr_assert_eq(ot_exit(old_pids[i], OT_REASON(OT_KILL)), 0);
            }
            atomic_store(&checks_done, 0);
            ot_spawn(old_pid_checks, NULL);
            while (!atomic_load(&checks_done))
                usleep(1000);
            cr_assert_eq(atomic_load(&checks_done), 1, "%d link/monitor checks failed",
                         -atomic_load(&checks_done));
            /* nothing reached the new processes, and the kills did not */
            for (int i = 0; i < NP; i++) {
                cr_assert(ot_is_alive(now[i]), "run %d: new process %d was killed", run, i);
                cr_assert_eq(ot_send(now[i], TAG_COUNT, NULL, 0), 0);
                ot_msg *m = ot_receive_tag(TAG_COUNT, 5000);
                cr_assert_not_null(m);
                cr_assert_eq(*(long *)ot_msg_data(m), 0, "run %d: process %d got old mail", run,
                             i);
                ot_msg_free(m);
            }
        }
        memcpy(old_pids, now, sizeof now);
        cr_assert_eq(ot_stop(), 0);
    }
}

/* ---- item 13: a process that never makes a runtime call ---------------------------- */

static _Atomic int spinning;
static void spinner(void *arg) {
    (void)arg;
    atomic_store(&spinning, 1);
    for (volatile unsigned long i = 0;; i++) {
    }
}

static char logged[4096];
static void capture(int level, const char *line, void *arg) {
    (void)level;
    (void)arg;
    if (strstr(line, "ot_stop"))
        snprintf(logged + strlen(logged), sizeof logged - strlen(logged), "%s\n", line);
}

/* In a child: the stuck scheduler thread is left running on purpose. Exit
 * codes: 0 all good, 10+ a check failed. */
static int stuck_child(void) {
    ot_config c = {.schedulers = 2, .stop_timeout_ms = 300, .long_schedule_ms = 60000};
    if (ot_start(&c) != 0)
        return 10;
    ot_set_logger(capture, NULL);
    ot_pid p = ot_spawn(spinner, NULL);
    while (!atomic_load(&spinning))
        usleep(1000);
    uint64_t t0 = now_ns();
    int rc = ot_stop();
    uint64_t el = now_ns() - t0;
    if (rc != -ETIMEDOUT)
        return 11;
    /* the bound is 300 ms plus a 100 ms grace for the threads: allow much
     * more, on a loaded machine, but not "forever" */
    if (el > 20000000000u)
        return 12;
    char want[64];
    snprintf(want, sizeof want, "process <0.%u.%u>", (unsigned)(p.v & 0xffffffffu),
             (unsigned)(p.v >> 32));
    if (!strstr(logged, want))
        return 13;
    if (ot_start(&c) != -EBUSY)
        return 14;
    if (ot_send(p, TAG_PING, NULL, 0) != -ENOTCONN)
        return 15;
    return 0;
}

#if defined(OT_TSAN)
/* The child of the fork below starts the runtime's threads: allowed, since
 * the parent only waits for it */
const char *__tsan_default_options(void);
__attribute__((visibility("default"))) const char *__tsan_default_options(void) {
    return "die_after_fork=0";
}
#endif

/* LeakSanitizer would count what the stuck thread keeps as leaked (on
 * purpose): under it the child leaves with _exit */
extern void __lsan_do_leak_check(void) __attribute__((weak));

Test(lifecycle, stop_is_bounded_with_a_stuck_process, .timeout = 120) {
    fflush(NULL);
    pid_t c = fork();
    if (c == 0) {
        int code = stuck_child();
        if (__lsan_do_leak_check)
            _exit(code);
        exit(code); /* exit() with the stuck thread still running */
    }
    cr_assert_gt(c, 0);
    int st = 0;
    uint64_t t0 = now_ns();
    pid_t w;
    while ((w = waitpid(c, &st, WNOHANG)) == 0 && now_ns() - t0 < 60000000000u)
        usleep(10000);
    if (w == 0) {
        kill(c, SIGKILL);
        waitpid(c, &st, 0);
        cr_assert_fail("ot_stop did not return (or the program could not exit) in 60 s");
    }
    cr_assert(WIFEXITED(st), "the child died of signal %d", WTERMSIG(st));
    cr_assert_eq(WEXITSTATUS(st), 0, "check %d failed in the child", WEXITSTATUS(st));
}
