/* Mailboxes for foreign threads (threads that are not schedulers): a slot in
 * the process table flagged PF_FOREIGN, made on a thread's first ot_send or
 * receive, so a process can answer msg->from. The thread blocks on a futex on
 * the slot's state word (no spinning); a sender's wake CASes WAITING to
 * RUNNABLE as for any process and then, seeing PF_FOREIGN, wakes the futex.
 * A foreign pid can be linked to and monitored: the slot records links and
 * monitors as a process does (signals.c); it "exits", with reason normal,
 * when its thread ends (the key destructor) or at ot_stop, whichever is
 * first, and its links and monitors fire then, also those whose requests the
 * thread never drained. Exit signals to it are dropped (a thread is not
 * killed). The epoch tells a thread that its slot belongs to an earlier run.
 *
 * The gate: every public call made on a thread that is not a scheduler
 * passes ot__gate_enter/leave, a count of such calls in progress. ot_stop
 * closes the gate first, wakes every foreign thread parked in a receive
 * (which then returns ENOTCONN), and waits for the count to reach zero
 * before it frees anything, so a plain thread never touches the process
 * table, the schedulers or a mailbox after they are gone; calls that find
 * the gate closed return -ENOTCONN (or the null handle with errno ENOTCONN).
 * The gate's words are never reset by ot_start's clearing of ot__rt, and a
 * receiver publishes WAITING before it looks at the gate while the closer
 * closes it before it looks for WAITING (seq_cst both), so no waiter is
 * missed. */
#include "runtime/sched/sched.h"
#include "runtime/proc/proc.h"

#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static __thread struct ot_proc *tls_fp;
static __thread uint64_t tls_epoch;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static _Atomic size_t nforeign;
static _Atomic long gate_in;          /* foreign calls in progress */
static _Atomic int gate_closed = 1;   /* open only while the runtime runs */

bool ot__gate_enter(void) {
    /* seq_cst: the closer's store of gate_closed and its load of gate_in,
     * against this add and the load below: one of us sees the other */
    atomic_fetch_add_explicit(&gate_in, 1, memory_order_seq_cst);
    if (likely(!atomic_load_explicit(&gate_closed, memory_order_seq_cst)))
        return true;
    atomic_fetch_sub_explicit(&gate_in, 1, memory_order_release);
    return false;
}

void ot__gate_leave(void) {
    /* release: the call's accesses happen before the closer's teardown */
    atomic_fetch_sub_explicit(&gate_in, 1, memory_order_release);
}

void ot__gate_open(void) {
    atomic_store_explicit(&gate_closed, 0, memory_order_seq_cst);
}

static void wake_waiters(void) {
    size_t hwm = ot__ptab_hwm();
    for (size_t i = 0; i < hwm; i++) {
        struct ot_proc *p = ot__ptab_at(i);
        if (!(atomic_load_explicit(&p->aflags, memory_order_acquire) & PF_FOREIGN))
            continue;
        uint32_t st = PS_WAITING;
        if (atomic_compare_exchange_strong_explicit(&p->state, &st, PS_RUNNABLE,
                                                    memory_order_seq_cst, memory_order_relaxed))
            ot__foreign_wake(p);
    }
}

void ot__gate_close(void) {
    atomic_store_explicit(&gate_closed, 1, memory_order_seq_cst);
    wake_waiters();
    /* the calls inside are short (none blocks once the gate is closed):
     * wait for them, waking again in case one parked meanwhile */
    for (unsigned n = 0; atomic_load_explicit(&gate_in, memory_order_acquire) != 0; n++) {
        if ((n & 63) == 63)
            wake_waiters();
        usleep(100);
    }
}

/* notify: the thread ended while the runtime runs, so its links and monitors
 * fire; at ot_stop's teardown every process is gone and so are the
 * schedulers a delivery would wake, so they are only freed. */
static void release_slot(struct ot_proc *p, bool notify) {
    slot_lock(p);
    atomic_fetch_or_explicit(&p->aflags, PF_DEAD, memory_order_acq_rel);
    atomic_store_explicit(&p->state, PS_EXITING, memory_order_release);
    slot_unlock(p);
    if (notify) {
        ot__mq_drain_all(p); /* link and monitor requests it never drained */
        p->reason = OT_REASON(OT_NORMAL);
        ot__exit_links_monitors(p);
    } else {
        ot__sched_hook_mq_drain(p);
    }
    ot__mq_free_all(p);
    ot__map_free(&p->links);
    ot__map_free(&p->monitored);
    ot__map_free(&p->monitors); /* call aliases (alias.c) */
    atomic_store_explicit(&p->pid, 0, memory_order_release);
    atomic_store_explicit(&p->state, PS_FREE, memory_order_release);
    ot__ptab_free(p);
    atomic_fetch_sub_explicit(&nforeign, 1, memory_order_relaxed);
}

static void on_thread_exit(void *v) {
    struct ot_proc *p = v;
    /* through the gate: ot_stop's own release of every slot cannot race */
    if (p && ot__gate_enter()) {
        if (tls_epoch == ot__rt.epoch && tls_fp == p)
            release_slot(p, true);
        ot__gate_leave();
    }
    tls_fp = NULL;
}

static void make_key(void) {
    pthread_key_create(&key, on_thread_exit);
}

static struct ot_proc *foreign_slot(void) {
    if (tls_fp && tls_epoch == ot__rt.epoch)
        return tls_fp;
    if (!atomic_load_explicit(&ot__rt.running, memory_order_acquire))
        return NULL;
    struct ot_proc *p = ot__ptab_alloc();
    if (!p)
        return NULL;
    atomic_store_explicit(&p->aflags, PF_FOREIGN, memory_order_relaxed);
    p->flags = PF_FOREIGN; /* timeout_seq is kept: see reset_record in proc.c */
    p->q_first = p->q_last = NULL;
    p->q_len = 0;
    p->dying = false;
    p->mark_valid = false;
    p->mark_env = NULL;
    p->name = NULL;
    memset(&p->monitors, 0, sizeof p->monitors);
    memset(&p->links, 0, sizeof p->links);
    memset(&p->monitored, 0, sizeof p->monitored);
    atomic_store_explicit(&p->sched, NULL, memory_order_relaxed);
    uint32_t idx = (uint32_t)(p - ot__ptab_at(0));
    uint64_t pid = (uint64_t)atomic_load_explicit(&p->gen, memory_order_relaxed) << 32 | idx;
    atomic_store_explicit(&p->state, PS_RUNNING, memory_order_relaxed);
    /* release pairs with senders' acquire load of pid */
    atomic_store_explicit(&p->pid, pid, memory_order_release);
    atomic_fetch_add_explicit(&nforeign, 1, memory_order_relaxed);
    pthread_once(&key_once, make_key);
    pthread_setspecific(key, p);
    tls_fp = p;
    tls_epoch = ot__rt.epoch;
    return p;
}

ot_pid ot__foreign_pid(void) {
    struct ot_proc *p = foreign_slot();
    return p ? (ot_pid){atomic_load_explicit(&p->pid, memory_order_relaxed)} : OT_NOPID;
}

size_t ot__foreign_count(void) {
    return atomic_load_explicit(&nforeign, memory_order_relaxed);
}

void ot__foreign_wake(struct ot_proc *p) {
    syscall(SYS_futex, &p->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

ot_msg *ot__foreign_receive(bool (*match)(const ot_msg *, void *), void *arg, int64_t timeout_ms) {
    struct ot_proc *p = foreign_slot();
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    /* past the clock's range (INT64_MAX ns): never, as for processes */
    if (timeout_ms > 0 && (uint64_t)timeout_ms > ((uint64_t)INT64_MAX - ot__clock_ns()) / 1000000u)
        timeout_ms = OT_INFINITY;
    uint64_t deadline = timeout_ms > 0 ? ot__clock_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    struct env *cursor = NULL;
    for (;;) {
        ot__sched_hook_mq_drain(p);
        struct env *e =
            cursor ? atomic_load_explicit(&cursor->next, memory_order_relaxed) : p->q_first;
        for (; e; e = atomic_load_explicit(&e->next, memory_order_relaxed)) {
            if (!match || match(&e->msg, arg)) {
                ot__q_remove(p, e);
                e->kind |= ENV_FOREIGN_OWNED;
                e->state = ENV_ST_TAKEN;
                e->next = NULL;
                e->prev = NULL;
                return &e->msg;
            }
            cursor = e;
        }
        if (timeout_ms == 0) {
            errno = ETIMEDOUT;
            return NULL;
        }
        struct timespec ts, *tsp = NULL;
        if (timeout_ms > 0) {
            uint64_t now = ot__clock_ns();
            if (now >= deadline) {
                errno = ETIMEDOUT;
                return NULL;
            }
            uint64_t left = deadline - now;
            ts.tv_sec = (time_t)(left / 1000000000u);
            ts.tv_nsec = (long)(left % 1000000000u);
            tsp = &ts;
        }
        /* seq_cst store pairs with the sender's fence in ot__deliver, and
         * with ot__gate_close's store and CAS (see the header comment) */
        atomic_store_explicit(&p->state, PS_WAITING, memory_order_seq_cst);
        if (atomic_load_explicit(&gate_closed, memory_order_seq_cst)) {
            atomic_store_explicit(&p->state, PS_RUNNING, memory_order_relaxed);
            errno = ENOTCONN; /* ot_stop: woken, and nothing more will come */
            return NULL;
        }
        if (!ot__mq_maybe_nonempty(p))
            syscall(SYS_futex, &p->state, FUTEX_WAIT_PRIVATE, PS_WAITING, tsp, NULL, 0);
        atomic_store_explicit(&p->state, PS_RUNNING, memory_order_relaxed);
    }
}

void ot__foreign_fini_all(void) {
    size_t hwm = ot__ptab_hwm();
    for (size_t i = 0; i < hwm; i++) {
        struct ot_proc *p = ot__ptab_at(i);
        if (atomic_load_explicit(&p->pid, memory_order_relaxed) && (p->flags & PF_FOREIGN))
            release_slot(p, false);
    }
    tls_fp = NULL;
}
