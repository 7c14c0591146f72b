/* Crashes stay in their process (ARCHITECTURE 7). A process that writes
 * through NULL, divides by zero, or recurses past its stack's guard dies with
 * OT_FAULT (detail: the signal) or OT_STACK_OVERFLOW, its trapping linked
 * parent gets the {'EXIT', Pid, Reason} message, and 1,000 other processes
 * that are exchanging messages at that moment (500 ping-pong pairs) finish
 * with exactly the messages they were owed. The same for a handler process
 * faulting inside its callback. ot_exit_self from deep in a call chain ends
 * the process without running the rest of its frames. Crash reports: an
 * abnormal exit of the process's own making (ot_exit_self, a fault, a handler
 * returning an error) is reported exactly once through the logger hook,
 * naming the pid and the reason; normal and shutdown exits, and deaths by an
 * exit signal or a link, are not reported (OTP's proc_lib reports crashes of
 * the process itself, not kills). Fault tests are skipped in sanitizer
 * builds: ASan and TSan install their own SIGSEGV/SIGFPE handlers and the
 * runtime leaves them in place (runtime/sched/fault.c), so a fault there ends
 * the whole test binary by design. */
#include <otter/testing.h>

#include "support/down.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

enum { TAG_PARTNER = OT_TAG_USER + 1, TAG_BALL, TAG_HALF, TAG_GO, TAG_DONE, TAG_POKE };

#define WAIT_MS 30000
#define NWORKERS 1000
#define ROUNDS 500 /* per half: each worker receives 2 * ROUNDS balls */

/* ---- the logger hook -------------------------------------------------------------- */

#define MAX_LINES 64
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[MAX_LINES][512];
static int log_n;

static void capture(int level, const char *line, void *arg) {
    (void)level;
    (void)arg;
    /* the scheduler's long_schedule warnings come and go with the machine's
     * speed (sanitizer builds, load): they are not what these tests count */
    if (strstr(line, "long_schedule:"))
        return;
    pthread_mutex_lock(&log_mu);
    if (log_n < MAX_LINES)
        snprintf(log_lines[log_n], sizeof log_lines[0], "%s", line);
    log_n++;
    pthread_mutex_unlock(&log_mu);
}

static void capture_start(void) {
    pthread_mutex_lock(&log_mu);
    log_n = 0;
    pthread_mutex_unlock(&log_mu);
    ot_set_logger(capture, NULL);
}

/* Lines that mention the pid (as crash reports print it, <0.index.generation>). */
static int lines_naming(ot_pid p, const char *reason_part, int *total) {
    char tag[48];
    snprintf(tag, sizeof tag, "<0.%u.%u>", (unsigned)(p.v & 0xffffffffu), (unsigned)(p.v >> 32));
    int n = 0;
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < log_n && i < MAX_LINES; i++)
        if (strstr(log_lines[i], tag) && (!reason_part || strstr(log_lines[i], reason_part)))
            n++;
    if (total)
        *total = log_n;
    pthread_mutex_unlock(&log_mu);
    return n;
}

static int log_count(void) {
    pthread_mutex_lock(&log_mu);
    int n = log_n;
    pthread_mutex_unlock(&log_mu);
    return n;
}

/* ---- helpers ---------------------------------------------------------------------- */

static ot_reason expect_down(ot_ref r, ot_pid p) {
    ot_msg *m = ot_receive_match(is_down_ref, &r.v, WAIT_MS);
    ot_assert(m != NULL, "no DOWN");
    ot_down_msg d;
    ot_assert_eq(m->size, sizeof d);
    memcpy(&d, ot_msg_data(m), sizeof d);
    ot_msg_free(m);
    ot_assert_eq(d.pid.v, p.v);
    return d.reason;
}

struct exit_from {
    uint64_t pid;
};

static bool is_exit_from(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_EXIT && m->from.v == ((const struct exit_from *)arg)->pid;
}

static ot_reason expect_exit_msg(ot_pid from) {
    struct exit_from f = {from.v};
    ot_msg *m = ot_receive_match(is_exit_from, &f, WAIT_MS);
    ot_assert(m != NULL, "no EXIT message");
    ot_exit_msg x;
    ot_assert_eq(m->size, sizeof x);
    memcpy(&x, ot_msg_data(m), sizeof x);
    ot_msg_free(m);
    ot_assert_eq(x.pid.v, from.v);
    return x.reason;
}

/* ---- faulting code the compiler cannot see through -------------------------------- */

static int *volatile null_ptr;
static volatile int zero, one = 1;
static volatile int sink;
static volatile int recursion_stop = -1; /* never reached: keeps the recursion finite to gcc */

static void write_null(void) { *null_ptr = 42; }

/* both operands volatile: gcc turns 1 / x into a compare, with no idiv to trap */
static void divide_by_zero(void) { sink = one / zero; }

/* Not a tail call (the result is used after it), and a volatile array per
 * frame, so every level takes real stack until the guard page is hit. */
static int recurse(int depth) {
    volatile char pad[256];
    pad[0] = (char)depth;
    pad[255] = (char)(depth >> 8);
    if (depth == recursion_stop)
        return pad[0];
    return recurse(depth + 1) + pad[depth & 255];
}

/* Recursion with frames of N KiB each, each filled from its lowest address
 * up, as a function fills a local buffer: with -fstack-clash-protection the
 * compiler probes each page of a frame, top down, before the body runs, so
 * even a 200 KiB frame, three times the 64 KiB guard, faults on the guard
 * instead of writing over the stack below. (Before, with a 4 KiB guard and
 * no probes, the first store of an 8 KiB frame could already land in the
 * neighbouring stack, a parked bystander's.) */
#define BIG_FRAME(kib)                                                                             \
    __attribute__((noinline)) static int frame_##kib(int depth) {                                  \
        volatile char pad[(kib) * 1024];                                                           \
        for (size_t i = 0; i < sizeof pad; i += 64)                                                \
            pad[i] = (char)depth;                                                                  \
        if (depth == recursion_stop)                                                               \
            return pad[0];                                                                         \
        return frame_##kib(depth + 1) + pad[sizeof pad - 64];                                      \
    }
BIG_FRAME(8)
BIG_FRAME(64)
BIG_FRAME(200)

/* Lock-free libc functions handed a bad pointer by the process's own code:
 * contained like a bad store (ARCHITECTURE 7). */
static char *volatile null_str;
static void (*volatile null_fn)(void);
__attribute__((noinline)) static void copy_from_null(void) {
    char buf[64];
    memcpy(buf, null_str, sizeof buf);
    sink = buf[3];
}
__attribute__((noinline)) static void strlen_of_null(void) { sink = (int)strlen(null_str); }
__attribute__((noinline)) static void call_null(void) {
    null_fn();
    sink = 1; /* not a tail call: the caller's frame stays for the walk */
}

enum { F_SEGV, F_FPE, F_OVERFLOW, F_FRAME8, F_FRAME64, F_FRAME200, F_MEMCPY, F_STRLEN, F_CALLNULL };

static void do_fault(int f) {
    switch (f) {
    case F_SEGV:
        write_null();
        break;
    case F_FPE:
        divide_by_zero();
        break;
    case F_OVERFLOW:
        sink = recurse(0);
        break;
    case F_FRAME8:
        sink = frame_8(0);
        break;
    case F_FRAME64:
        sink = frame_64(0);
        break;
    case F_FRAME200:
        sink = frame_200(0);
        break;
    case F_MEMCPY:
        copy_from_null();
        break;
    case F_STRLEN:
        strlen_of_null();
        break;
    case F_CALLNULL:
        call_null();
        break;
    }
}

static void faulter_main(void *arg) {
    ot_msg_free(ot_receive_tag(TAG_POKE, OT_INFINITY));
    do_fault((int)(intptr_t)arg);
}

static int faulter_handler(void *state, const ot_msg *m) {
    if (m->tag == TAG_POKE)
        do_fault((int)(intptr_t)state);
    return 0;
}

/* ---- 1,000 bystanders playing ping-pong ------------------------------------------- */

static ot_pid workers[NWORKERS];
static ot_pid test_pid;
static ot_pid faulter; /* poked by worker 0 in the middle of its first half */

struct worker_report {
    ot_pid pid;
    uint32_t received;
};

static void worker(void *arg) {
    ot_pid test = *(const ot_pid *)arg; /* read before the first receive */
    ot_msg *m = ot_receive_tag(TAG_PARTNER, OT_INFINITY);
    ot_pid partner;
    memcpy(&partner, ot_msg_data(m), sizeof partner);
    ot_msg_free(m);
    uint32_t got = 0;
    for (int half = 0; half < 2; half++) {
        for (int i = 0; i < ROUNDS; i++) {
            uint32_t seq = (uint32_t)(half * ROUNDS + i);
            ot_send(partner, TAG_BALL, &seq, sizeof seq);
            m = ot_receive_tag(TAG_BALL, OT_INFINITY);
            uint32_t theirs;
            memcpy(&theirs, ot_msg_data(m), sizeof theirs);
            ot_msg_free(m);
            if (theirs == seq) /* in order, none lost or duplicated */
                got++;
            if (seq == ROUNDS / 2 && ot_pid_eq(ot_self(), workers[0]))
                ot_send(faulter, TAG_POKE, NULL, 0);
        }
        if (half == 0) {
            ot_send(test, TAG_HALF, NULL, 0);
            ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
        }
    }
    struct worker_report r = {ot_self(), got};
    ot_send(test, TAG_DONE, &r, sizeof r);
}


static void spawn_workers(void) {
    test_pid = ot_self();
    for (int i = 0; i < NWORKERS; i++) {
        workers[i] = ot_spawn(worker, &test_pid);
        ot_assert(workers[i].v != 0);
    }
    /* every worker has run and parked on its own stack before the faulter
     * gets one: the faulter's stack then lies above bystanders' stacks, so
     * an overflow that jumped its guard would land in a parked bystander's */
    for (int i = 0; i < NWORKERS; i++) {
        struct ot_process_info in;
        for (int k = 0; k < 100000; k++) {
            ot_assert_eq(ot_process_info(workers[i], &in), 0);
            if (in.status == OT_STATUS_WAITING)
                break;
            ot_yield();
        }
        ot_assert_eq(in.status, OT_STATUS_WAITING);
    }
}

static void start_workers(void) {
    for (int i = 0; i < NWORKERS; i++) {
        ot_pid partner = workers[i ^ 1];
        ot_assert_eq(ot_send(workers[i], TAG_PARTNER, &partner, sizeof partner), 0);
    }
}

static void finish_workers(void) {
    for (int i = 0; i < NWORKERS; i++)
        ot_assert(ot_receive_tag(TAG_HALF, WAIT_MS) != NULL, "only %d workers got halfway", i);
    for (int i = 0; i < NWORKERS; i++)
        ot_send(workers[i], TAG_GO, NULL, 0);
    static bool done[NWORKERS];
    memset(done, 0, sizeof done);
    for (int k = 0; k < NWORKERS; k++) {
        ot_msg *m = ot_receive_tag(TAG_DONE, WAIT_MS);
        ot_assert(m != NULL, "only %d workers finished", k);
        struct worker_report r;
        memcpy(&r, ot_msg_data(m), sizeof r);
        ot_msg_free(m);
        int i = -1;
        for (int j = 0; j < NWORKERS; j++)
            if (workers[j].v == r.pid.v)
                i = j;
        ot_assert(i >= 0 && !done[i]);
        done[i] = true;
        ot_assert_eq(r.received, 2 * ROUNDS);
    }
}

/* The scenario: bystanders running, a linked process (or handler) faults,
 * the trapping test process gets the EXIT, the bystanders all finish, and
 * exactly one crash report names the faulting pid. */
static void fault_scenario(int fault, bool handler, int kind, int detail, const char *log_part) {
    capture_start();
    ot_trap_exit(true);
    spawn_workers();
    ot_spawn_opts o = {.link = true};
    ot_pid f = handler ? ot_spawn_handler(faulter_handler, (void *)(intptr_t)fault, &o)
                       : ot_spawn_opt(faulter_main, (void *)(intptr_t)fault, &o);
    ot_assert(f.v != 0);
    faulter = f;
    start_workers(); /* worker 0 pokes the faulter halfway through its first half */
    ot_reason r = expect_exit_msg(f);
    struct ot_process_info me;
    ot_assert_eq(ot_process_info(ot_self(), &me), 0);
    printf("faults: %zu of %d bystanders had reached halfway when the EXIT arrived\n",
           me.message_queue_len, NWORKERS);
    char b[96];
    ot_reason_format(r, b, sizeof b);
    ot_assert(r.kind == kind, "exit reason %s (%s)", b, r.text);
    ot_assert_eq(r.detail, detail);
    ot_assert(!ot_is_alive(f));
    finish_workers();
    int total = 0;
    ot_assert_eq(lines_naming(f, log_part, &total), 1);
    ot_assert_eq(total, 1);
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_links, 0);
    ot_set_logger(NULL, NULL);
}

#if defined(OT_SANITIZE)
#define FAULT_TEST(name)                                                                  \
    static void ot__fbody_##name(void) __attribute__((unused));                           \
    Test(faults, name) {                                                                  \
        cr_skip_test("sanitizer build: ASan/TSan own the SIGSEGV/SIGFPE handlers, so "    \
                     "the runtime does not catch faults here (runtime/sched/fault.c)");    \
    }                                                                                     \
    static void ot__fbody_##name(void)
#else
#define FAULT_TEST(name)                                                                  \
    static void ot__fbody_##name(void);                                                   \
    OT_TEST(faults, name, .timeout = 120) { ot__fbody_##name(); }                         \
    static void ot__fbody_##name(void)
#endif

FAULT_TEST(null_write_is_fault_sigsegv) {
    fault_scenario(F_SEGV, false, OT_FAULT, SIGSEGV, "{fault,SIGSEGV}");
}

FAULT_TEST(unbounded_recursion_is_stack_overflow) {
    fault_scenario(F_OVERFLOW, false, OT_STACK_OVERFLOW, 0, "stack_overflow");
}

FAULT_TEST(division_by_zero_is_fault_sigfpe) {
    fault_scenario(F_FPE, false, OT_FAULT, SIGFPE, "{fault,SIGFPE}");
}

FAULT_TEST(handler_fault_in_callback) {
    fault_scenario(F_SEGV, true, OT_FAULT, SIGSEGV, "{fault,SIGSEGV}");
}

FAULT_TEST(handler_stack_overflow_in_callback) {
    fault_scenario(F_OVERFLOW, true, OT_STACK_OVERFLOW, 0, "stack_overflow");
}

/* Frames of 8, 64 and 200 KiB overflow into the guard: OT_STACK_OVERFLOW,
 * with no bystander hurt (before the guard grew and the build probed large
 * frames, a 64 KiB frame jumped a 4 KiB guard into the stack below). */
FAULT_TEST(overflow_with_8k_frames) {
    fault_scenario(F_FRAME8, false, OT_STACK_OVERFLOW, 0, "stack_overflow");
}

FAULT_TEST(overflow_with_64k_frames) {
    fault_scenario(F_FRAME64, false, OT_STACK_OVERFLOW, 0, "stack_overflow");
}

FAULT_TEST(overflow_with_200k_frames) {
    fault_scenario(F_FRAME200, false, OT_STACK_OVERFLOW, 0, "stack_overflow");
}

FAULT_TEST(handler_overflow_with_200k_frames) {
    fault_scenario(F_FRAME200, true, OT_STACK_OVERFLOW, 0, "stack_overflow");
}

FAULT_TEST(memcpy_from_null_is_contained) {
    fault_scenario(F_MEMCPY, false, OT_FAULT, SIGSEGV, "{fault,SIGSEGV}");
}

FAULT_TEST(strlen_of_null_is_contained) {
    fault_scenario(F_STRLEN, false, OT_FAULT, SIGSEGV, "{fault,SIGSEGV}");
}

FAULT_TEST(call_through_null_is_contained) {
    fault_scenario(F_CALLNULL, true, OT_FAULT, SIGSEGV, "{fault,SIGSEGV}");
}

FAULT_TEST(repeated_faults_reuse_stacks) {
    /* stacks (and the handlers' borrowed stack) go back to the pool after a
     * fault and must work again, guard included */
    static const int kinds[3] = {OT_FAULT, OT_FAULT, OT_STACK_OVERFLOW};
    static const int details[3] = {SIGSEGV, SIGFPE, 0};
    for (int i = 0; i < 150; i++) {
        int f = i % 3;
        bool handler = (i / 3) & 1;
        ot_ref mr;
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &mr};
        ot_pid p = handler ? ot_spawn_handler(faulter_handler, (void *)(intptr_t)f, &o)
                           : ot_spawn_opt(faulter_main, (void *)(intptr_t)f, &o);
        ot_assert(p.v != 0);
        ot_send(p, TAG_POKE, NULL, 0);
        ot_reason r = expect_down(mr, p);
        ot_assert_eq(r.kind, kinds[f]);
        ot_assert_eq(r.detail, details[f]);
    }
}

/* ---- ot_exit_self from deep down ---------------------------------------------------- */

struct deep {
    int entered, resumed, target;
};

static int dive(struct deep *d, int n) {
    d->entered++;
    if (n == 0) {
        if (d->target >= 0) /* always: keeps gcc from calling the recursion endless */
            ot_exit_self(ot_reason_error("deep %d", d->entered));
        return 0;
    }
    int r = dive(d, n - 1);
    d->resumed++; /* must never run */
    return r + 1;
}

static void deep_main(void *arg) {
    struct deep *d = arg;
    sink = dive(d, d->target);
    d->resumed += 1000000; /* nor this */
}

static int deep_handler(void *state, const ot_msg *m) {
    struct deep *d = state;
    if (m->tag == TAG_POKE)
        sink = dive(d, d->target);
    d->resumed += 1000000;
    return 0;
}

OT_TEST(faults, exit_self_from_deep_call_depth, .timeout = 60) {
    for (int kind = 0; kind < 2; kind++) {
        struct deep d = {.target = 1000};
        ot_ref mr;
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &mr};
        ot_pid p = kind ? ot_spawn_handler(deep_handler, &d, &o) : ot_spawn_opt(deep_main, &d, &o);
        ot_assert(p.v != 0);
        if (kind) {
            ot_send(p, TAG_POKE, NULL, 0);
            ot_send(p, TAG_POKE, NULL, 0); /* never handled: the process is gone */
        }
        ot_reason r = expect_down(mr, p);
        ot_assert_eq(r.kind, OT_ERROR);
        ot_assert(strcmp(r.text, "deep 1001") == 0, "reason text %s", r.text);
        ot_assert_eq(d.entered, 1001);
        ot_assert_eq(d.resumed, 0);
    }
}

/* ---- crash reports ------------------------------------------------------------------ */

static void exit_with(void *arg) { ot_exit_self(*(const ot_reason *)arg); }
static void just_return(void *arg) { (void)arg; }
static void wait_forever(void *arg) {
    (void)arg;
    ot_sleep(OT_INFINITY);
}
static void exit_signal_self(void *arg) {
    ot_exit(ot_self(), *(const ot_reason *)arg);
    ot_sleep(OT_INFINITY);
}
static int handler_fails(void *state, const ot_msg *m) {
    (void)state;
    (void)m;
    return -5;
}

static ot_pid spawn_mon(void (*fn)(void *), void *arg, ot_ref *mr) {
    ot_spawn_opts o = {.monitor = true, .monitor_ref = mr};
    ot_pid p = ot_spawn_opt(fn, arg, &o);
    ot_assert(p.v != 0);
    return p;
}

OT_TEST(faults, crash_report_once_for_a_crash, .timeout = 60) {
    capture_start();
    ot_ref mr;
    ot_reason why = ot_reason_error("disk on fire");
    ot_pid p = spawn_mon(exit_with, &why, &mr);
    ot_assert_eq(expect_down(mr, p).kind, OT_ERROR);
    int total = 0;
    ot_assert_eq(lines_naming(p, "disk on fire", &total), 1);
    ot_assert_eq(total, 1);
    /* a handler whose callback returns an error */
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mr, .behaviour = "worker_pool"};
    ot_pid h = ot_spawn_handler(handler_fails, NULL, &o);
    ot_send(h, TAG_POKE, NULL, 0);
    ot_assert_eq(expect_down(mr, h).kind, OT_ERROR);
    ot_assert_eq(lines_naming(h, "handler returned -5", &total), 1);
    ot_assert_eq(lines_naming(h, "behaviour=worker_pool", NULL), 1);
    ot_assert_eq(total, 2);
    ot_set_logger(NULL, NULL);
}

static void register_then_crash(void *arg) {
    (void)arg;
    ot_register("doomed_server", ot_self());
    ot_msg_free(ot_receive_tag(TAG_POKE, OT_INFINITY));
    ot_exit_self(ot_reason_error("late crash"));
}

OT_TEST(faults, crash_report_names_registered_process, .timeout = 60) {
    capture_start();
    ot_ref mr;
    ot_pid p = spawn_mon(register_then_crash, NULL, &mr);
    for (int i = 0; i < 10000 && ot_whereis("doomed_server").v != p.v; i++)
        ot_sleep(1);
    ot_assert_eq(ot_whereis("doomed_server").v, p.v);
    ot_send(p, TAG_POKE, NULL, 0);
    ot_assert_eq(expect_down(mr, p).kind, OT_ERROR);
    int total = 0;
    ot_assert_eq(lines_naming(p, "name=doomed_server", &total), 1);
    ot_assert_eq(lines_naming(p, "late crash", NULL), 1);
    ot_assert_eq(total, 1);
    ot_assert_eq(ot_whereis("doomed_server").v, 0);
    ot_set_logger(NULL, NULL);
}

/* ---- where a fault hit: the report's content (ARCHITECTURE 7) ------------------------ */

__attribute__((noinline)) static void crash_here(void) {
    *null_ptr = 7;
    sink = 2;
}
__attribute__((noinline)) static void crash_caller(void) {
    crash_here();
    sink = 3;
}
static void register_then_fault(void *arg) {
    (void)arg;
    ot_register("faulty_server", ot_self());
    ot_msg_free(ot_receive_tag(TAG_POKE, OT_INFINITY));
    crash_caller();
    sink = 4; /* not a tail call */
}

static bool line_has_all(const char *const *parts, char *out, size_t n) {
    bool ok = false;
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < log_n && i < MAX_LINES && !ok; i++) {
        ok = true;
        for (int k = 0; parts[k]; k++)
            ok = ok && strstr(log_lines[i], parts[k]) != NULL;
    }
    snprintf(out, n, "%s", log_n > 0 ? log_lines[0] : "(no line)");
    pthread_mutex_unlock(&log_mu);
    return ok;
}

FAULT_TEST(fault_report_says_where) {
    capture_start();
    ot_ref mr;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mr, .behaviour = "demo_server"};
    ot_pid p = ot_spawn_opt(register_then_fault, NULL, &o);
    ot_assert(p.v != 0);
    for (int i = 0; i < 10000 && ot_whereis("faulty_server").v != p.v; i++)
        ot_sleep(1);
    ot_send(p, TAG_POKE, NULL, 0);
    ot_assert_eq(expect_down(mr, p).kind, OT_FAULT);
    char pid[32], line[512];
    ot_assert_eq(ot_pid_format(p, pid, sizeof pid), 0);
    const char *parts[] = {"crash: process ",
                           pid,
                           " name=faulty_server behaviour=demo_server exited with reason "
                           "{fault,SIGSEGV}: SIGSEGV at address 0x0, pc crash_here+0x",
                           "; backtrace: crash_here+0x",
                           " < crash_caller+0x",
                           " < register_then_fault+0x",
                           " < ot__stackful_entry+0x",
                           NULL};
    ot_assert(line_has_all(parts, line, sizeof line), "report: %s", line);
    ot_assert_eq(log_count(), 1);
    ot_set_logger(NULL, NULL);
}

FAULT_TEST(overflow_report_names_the_guard) {
    capture_start();
    ot_ref mr;
    ot_pid p = spawn_mon(faulter_main, (void *)(intptr_t)F_FRAME64, &mr);
    ot_send(p, TAG_POKE, NULL, 0);
    ot_assert_eq(expect_down(mr, p).kind, OT_STACK_OVERFLOW);
    char pid[32], line[512];
    ot_assert_eq(ot_pid_format(p, pid, sizeof pid), 0);
    const char *parts[] = {pid, "exited with reason {stack_overflow,", ": stack overflow at address 0x",
                           " (the stack's guard), pc frame_64+0x", " < frame_64+0x",
                           " < do_fault+0x", NULL};
    ot_assert(line_has_all(parts, line, sizeof line), "report: %s", line);
    ot_set_logger(NULL, NULL);
}

OT_TEST(faults, pid_format, .timeout = 60) {
    char b[32];
    ot_pid me = ot_self();
    ot_assert_eq(ot_pid_format(me, b, sizeof b), 0);
    char want[32];
    snprintf(want, sizeof want, "<0.%u.%u>", (unsigned)(me.v & 0xffffffffu), (unsigned)(me.v >> 32));
    ot_assert(strcmp(b, want) == 0, "%s", b);
    ot_pid big = {((uint64_t)4294967295u << 32) | 4294967295u};
    ot_assert_eq(ot_pid_format(big, b, sizeof b), 0);
    ot_assert(strcmp(b, "<0.4294967295.4294967295>") == 0, "%s", b);
    ot_assert_eq(ot_pid_format(big, b, 24), -ENOSPC); /* 26 bytes with the NUL */
    ot_assert(strcmp(b, "<0.4294967295.429496729") == 0, "%s", b);
    ot_assert_eq(ot_pid_format(OT_NOPID, b, sizeof b), 0);
    ot_assert(strcmp(b, "<0.0.0>") == 0, "%s", b);
    ot_assert_eq(ot_pid_format(me, NULL, 10), -EINVAL);
    ot_assert_eq(ot_pid_format(me, b, 0), -EINVAL);
}

OT_TEST(faults, no_crash_report_for_normal_shutdown_or_kills, .timeout = 60) {
    capture_start();
    ot_ref mr;
    ot_pid p = spawn_mon(just_return, NULL, &mr);
    ot_assert_eq(expect_down(mr, p).kind, OT_NORMAL);
    ot_reason normal = OT_REASON(OT_NORMAL), shutdown = OT_REASON(OT_SHUTDOWN);
    p = spawn_mon(exit_with, &normal, &mr);
    ot_assert_eq(expect_down(mr, p).kind, OT_NORMAL);
    p = spawn_mon(exit_with, &shutdown, &mr);
    ot_assert_eq(expect_down(mr, p).kind, OT_SHUTDOWN);
    strcpy(shutdown.text, "maintenance");
    p = spawn_mon(exit_with, &shutdown, &mr);
    ot_assert_eq(expect_down(mr, p).kind, OT_SHUTDOWN);
    /* killed by exit signals: kill, and an error reason */
    p = spawn_mon(wait_forever, NULL, &mr);
    ot_exit(p, OT_REASON(OT_KILL));
    ot_assert_eq(expect_down(mr, p).kind, OT_KILLED);
    p = spawn_mon(wait_forever, NULL, &mr);
    ot_exit(p, ot_reason_error("from outside"));
    ot_assert_eq(expect_down(mr, p).kind, OT_ERROR);
    /* exit(self(), Reason): a signal, not a crash of the process's code */
    ot_reason err = ot_reason_error("own signal");
    p = spawn_mon(exit_signal_self, &err, &mr);
    ot_assert_eq(expect_down(mr, p).kind, OT_ERROR);
    ot_assert_eq(log_count(), 0);
    ot_set_logger(NULL, NULL);
}

static void linked_bystander(void *arg) {
    (void)arg;
    ot_sleep(OT_INFINITY);
}

static void crash_after_link(void *arg) {
    ot_pid by = *(const ot_pid *)arg;
    ot_link(by);
    ot_exit_self(ot_reason_error("root cause"));
}

OT_TEST(faults, link_death_reported_only_for_the_crasher, .timeout = 60) {
    capture_start();
    ot_ref mb, mc;
    ot_pid b = spawn_mon(linked_bystander, NULL, &mb);
    ot_pid c = spawn_mon(crash_after_link, &b, &mc);
    ot_reason rc = expect_down(mc, c), rb = expect_down(mb, b);
    ot_assert_eq(rc.kind, OT_ERROR);
    ot_assert_eq(rb.kind, OT_ERROR);
    ot_assert(strcmp(rb.text, "root cause") == 0);
    int total = 0;
    ot_assert_eq(lines_naming(c, "root cause", &total), 1);
    ot_assert_eq(lines_naming(b, NULL, NULL), 0);
    ot_assert_eq(total, 1);
    ot_set_logger(NULL, NULL);
}
