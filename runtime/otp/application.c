/* The application tree: one top supervisor per runtime, with no parent, so
 * nothing but ot_application_stop, ot_stop (through the core's stop hook) or
 * its own restart intensity ends it. Stopping asks it to stop its children in
 * reverse start order, each within its shutdown time, and waits for its answer
 * before the core kills whatever is left; this works from a foreign thread
 * (ot_stop's) because the request is a plain send answered under a ref. An
 * embedding program may also ask for a signal (SIGTERM) to do what ot_stop
 * does: the handler only writes a byte to a pipe, and a thread of ours makes
 * the call. Invariants: app is the top supervisor's pid or 0; busy names
 * the one caller starting or stopping the tree (others wait their turn, and a
 * process that died holding it loses it); app_mu guards both and is never
 * held across a call that can block or switch, since a green process parked
 * holding a thread's mutex would stall every process of its scheduler thread
 * that asked for it, and a kill there would leave it held for good. The hook
 * is installed while an application runs. */
#include "runtime/ext.h"
#include "runtime/otp/sup_int.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t app_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t app;
static uint64_t busy; /* a process's pid, BUSY_THREAD for a plain thread, or 0 */
#define BUSY_THREAD UINT64_MAX /* no pid: a pid's index part is never all ones */

static void pause_ms(void) {
    if (ot_self().v) {
        ot_sleep(1);
    } else {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* The turn to start or stop the tree: waits while a live caller has it. */
static void claim(void) {
    uint64_t me = ot_self().v ? ot_self().v : BUSY_THREAD;
    for (;;) {
        pthread_mutex_lock(&app_mu);
        bool mine = busy == 0 || (busy != BUSY_THREAD && !ot_is_alive((ot_pid){busy}));
        if (mine)
            busy = me;
        pthread_mutex_unlock(&app_mu);
        if (mine)
            return;
        pause_ms();
    }
}

static void unclaim(void) {
    pthread_mutex_lock(&app_mu);
    busy = 0;
    pthread_mutex_unlock(&app_mu);
}

struct app_start {
    const ot_sup_flags *f;
    const ot_child_spec *c;
    size_t n;
    const ot_start_opts *o;
    ot_pid out;
    int rc;
};

/* The start proper, from a process. The top supervisor has no parent, so
 * its starter's exit is nothing to it, and a starter killed before it
 * returns leaves the tree it was starting running, not recorded as the
 * application (docs/API.md; ot_stop still ends it). */
static int start_top(const struct app_start *a, ot_pid *out) {
    return ot__sup_start(false, false, a->f, NULL, a->c, a->n, a->o, out);
}

/* From a foreign thread a process does the start (it takes a mailbox that can
 * monitor): the thread's first message gives it the thread's mailbox to
 * answer. */
static void starter(void *unused) {
    (void)unused;
    ot_msg *m = ot_receive_tag(OT__TAG_SUP_INIT, OT_INFINITY);
    struct app_start *a = *(struct app_start **)ot_msg_data(m);
    a->rc = start_top(a, &a->out);
    ot_send_ref(m->from, OT_TAG_REPLY, m->ref, NULL, 0);
}

static int start_from_thread(struct app_start *a) {
    ot_pid p = ot_spawn(starter, NULL);
    if (!p.v)
        return errno ? -errno : -EAGAIN;
    ot_ref ref = ot_make_ref();
    int rc = ot_send_ref(p, OT__TAG_SUP_INIT, ref, &a, sizeof a);
    if (rc < 0) {
        ot_exit(p, OT_REASON(OT_KILL));
        return rc;
    }
    for (;;) { /* the starter cannot die silently: it would be a fault */
        ot_msg *m = ot_receive_ref(ref, 100);
        if (m) {
            ot_msg_free(m);
            return a->rc;
        }
        if (!ot_is_alive(p))
            return a->rc ? a->rc : -ECHILD;
    }
}

static void stop_tree(void) {
    ot_pid top = {atomic_load_explicit(&app, memory_order_acquire)};
    if (!top.v || !ot_is_alive(top))
        return;
    ot_ref ref = ot_make_ref();
    struct sup_req r = {.op = OP_STOP, .why = OT_REASON(OT_SHUTDOWN)};
    if (ot_send_ref(top, OT__TAG_SUP_REQ, ref, &r, sizeof r) < 0)
        return;
    for (;;) { /* the answer comes once every child is stopped */
        ot_msg *m = ot_receive_ref(ref, 100);
        if (m) {
            ot_msg_free(m);
            break;
        }
        if (!ot_is_alive(top))
            break;
    }
    while (ot_is_alive(top))
        ot_sleep(1);
}

/* ot_stop's: takes no turn, since a start under way may never end; a tree
 * that start makes meanwhile is killed with everything else. */
static void stop_hook(void) {
    stop_tree();
    atomic_store_explicit(&app, 0, memory_order_release);
    ot__set_stop_hook(NULL);
}

int ot_application_start(const ot_sup_flags *f, const ot_child_spec *c, size_t n,
                         const ot_start_opts *o, ot_pid *out) {
    if (!f || !out)
        return -EINVAL;
    *out = OT_NOPID;
    if (!ot_schedulers())
        return -ENOTCONN;
    claim();
    ot_pid top = {atomic_load_explicit(&app, memory_order_acquire)};
    if (top.v && ot_is_alive(top)) {
        unclaim();
        *out = top;
        return -EALREADY;
    }
    struct app_start a = {.f = f, .c = c, .n = n, .o = o};
    int rc;
    if (ot_self().v) {
        rc = start_top(&a, out);
    } else {
        rc = start_from_thread(&a);
        *out = a.out;
    }
    if (rc == 0) {
        atomic_store_explicit(&app, out->v, memory_order_release);
        ot__set_stop_hook(stop_hook);
    }
    unclaim();
    return rc;
}

int ot_application_stop(void) {
    if (!ot_schedulers())
        return -ENOTCONN;
    claim();
    ot_pid top = {atomic_load_explicit(&app, memory_order_acquire)};
    int rc = top.v && ot_is_alive(top) ? 0 : -ESRCH;
    stop_tree();
    atomic_store_explicit(&app, 0, memory_order_release);
    ot__set_stop_hook(NULL);
    unclaim();
    return rc;
}

ot_pid ot_application_sup(void) {
    ot_pid top = {atomic_load_explicit(&app, memory_order_acquire)};
    return top.v && ot_is_alive(top) ? top : OT_NOPID;
}

/* ---- stop on a signal --------------------------------------------------------- */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    char c = (char)sig;
    ssize_t w = write(sig_pipe[1], &c, 1); /* async-signal-safe; a full pipe drops it */
    (void)w;
}

static void *sig_thread(void *unused) {
    (void)unused;
    char c;
    while (read(sig_pipe[0], &c, 1) == 1) {
        ot_log(OT_LOG_INFO, "application: signal %d: stopping", (int)c);
        ot_stop();
    }
    return NULL;
}

int ot_application_stop_on_signal(int sig) {
    if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV ||
        sig == SIGBUS || sig == SIGFPE || sig == SIGILL)
        return -EINVAL;
    pthread_mutex_lock(&app_mu);
    int rc = 0;
    if (sig_pipe[0] < 0) {
        pthread_t th;
        if (pipe2(sig_pipe, O_CLOEXEC) != 0) {
            rc = -errno;
        } else if ((rc = -pthread_create(&th, NULL, sig_thread, NULL)) == 0) {
            pthread_detach(th);
        } else {
            close(sig_pipe[0]);
            close(sig_pipe[1]);
            sig_pipe[0] = sig_pipe[1] = -1;
        }
    }
    if (rc == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        if (sigaction(sig, &sa, NULL) != 0)
            rc = -errno;
    }
    pthread_mutex_unlock(&app_mu);
    return rc;
}
