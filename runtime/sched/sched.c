/* Schedulers (ARCHITECTURE 1): one thread per CPU, each with its own ring,
 * run queue, timer wheel and stack pool.
 *
 * Run queue: a "run next" slot (a process woken by the running one runs next
 * on the same core, Go's trick for message ping-pong, capped so a pair cannot
 * starve the rest), a 256-entry ring that only the owner pushes to and that
 * idle schedulers may steal from (head is CAS'd by owner and thieves alike),
 * an owner-only overflow list (also where bound processes wait, so they are
 * never stolen), and an intrusive MPSC inbox where other threads put processes
 * they woke for this scheduler.
 *
 * Sleep: an idle scheduler spins for spin_us, stealing only work that has
 * waited, then publishes SS_SLEEPING (seq_cst), re-checks its inbox, and waits
 * in its ring until the next timer deadline. A waker pushes to the inbox,
 * fences, and only if it sees SS_SLEEPING does it CAS it away and send the
 * wake (MSG_RING from a scheduler, the eventfd from a foreign thread): the
 * Dekker pair (state store / inbox load vs inbox push / state load) means a
 * wake is never lost and never sent to a scheduler that is awake.
 *
 * Direct switches: a process that parks (or a handler done with its
 * messages) switches straight to the run-next process when that one can be
 * resumed without the loop. Invariant: a process is published as parked (or
 * its borrowed stack returned) only once it is off its stack, by whoever
 * lands next on the thread (finish_direct); every landing of a process
 * context runs that first. */
#include "runtime/sched/ring.h"
#include "runtime/sched/sched.h"
#include "runtime/proc/proc.h"
#include "runtime/sched/ctx.h"
#include "runtime/sched/sanit.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <urcu-qsbr.h>

#define RUNNEXT_CAP 64     /* consecutive run-next picks before the queue gets a turn */
#define STEAL_AGE_NS 20000 /* steal only processes that have waited this long */
#define SHARE_AGE_NS 1000000 /* wake a sleeper for a backlog this old */
#define BUDGET 4000        /* reductions per time slice */

struct ot_runtime ot__rt;
__thread struct ot_sched *ot__cur_sched __attribute__((tls_model("initial-exec")));

#if !defined(__x86_64__)
struct ot_sched *ot__sched_get(void) {
    struct ot_sched *s = ot__cur_sched;
    __asm__ volatile("" ::: "memory");
    return s;
}
#endif

uint64_t ot__clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- inbox: intrusive MPSC of processes ------------------------------------ */

static inline struct ot_proc *inbox_stub(struct ot_sched *s) { return s->inbox_stub; }

static void inbox_push(struct ot_sched *s, struct ot_proc *p) {
    atomic_store_explicit(&p->rq_next, NULL, memory_order_relaxed);
    /* acq_rel / release pair with the acquire loads in inbox_pop */
    struct ot_proc *prev = atomic_exchange_explicit(&s->inbox_tail, p, memory_order_acq_rel);
    atomic_store_explicit(&prev->rq_next, p, memory_order_release);
}

static struct ot_proc *inbox_pop(struct ot_sched *s) {
    struct ot_proc *stub = inbox_stub(s);
    struct ot_proc *head = s->inbox_head;
    struct ot_proc *next = atomic_load_explicit(&head->rq_next, memory_order_acquire);
    if (head == stub) {
        if (!next)
            return NULL;
        s->inbox_head = next;
        head = next;
        next = atomic_load_explicit(&head->rq_next, memory_order_acquire);
    }
    if (next) {
        s->inbox_head = next;
        return head;
    }
    if (atomic_load_explicit(&s->inbox_tail, memory_order_acquire) != head)
        return NULL;
    inbox_push(s, stub);
    next = atomic_load_explicit(&head->rq_next, memory_order_acquire);
    if (next) {
        s->inbox_head = next;
        return head;
    }
    return NULL;
}

static bool inbox_nonempty(struct ot_sched *s) {
    /* seq_cst pairs with the waker's fence in ot__make_runnable */
    return atomic_load_explicit(&s->inbox_tail, memory_order_seq_cst) != s->inbox_head ||
           atomic_load_explicit(&s->inbox_head->rq_next, memory_order_seq_cst) != NULL;
}

/* ---- local queue ------------------------------------------------------------ */

static void ovf_push(struct ot_sched *s, struct ot_proc *p) {
    atomic_store_explicit(&p->rq_next, NULL, memory_order_relaxed);
    if (s->ovf_tail)
        atomic_store_explicit(&s->ovf_tail->rq_next, p, memory_order_relaxed);
    else
        s->ovf_head = p;
    s->ovf_tail = p;
    s->ovf_len++;
}

static struct ot_proc *ovf_pop(struct ot_sched *s) {
    struct ot_proc *p = s->ovf_head;
    if (p) {
        s->ovf_head = atomic_load_explicit(&p->rq_next, memory_order_relaxed);
        if (!s->ovf_head)
            s->ovf_tail = NULL;
        s->ovf_len--;
    }
    return p;
}

/* Work piles up here while another scheduler sleeps: when the oldest of a
 * quarter ring has waited SHARE_AGE_NS, wake a sleeper (at most every
 * STEAL_AGE_NS), which then steals what has waited. Idle schedulers steal
 * only while they spin; without this a backlog that outlasts their spin
 * stays on one core. Not sooner: a burst of processes that each run for
 * well under a microsecond (a million spawns that park at once) goes
 * faster on the core whose caches hold it than spread over two, where each
 * record and stack moves between cores (perf/NOTES.md, 2026-12-04 sharing
 * work). */
static __attribute__((noinline)) void share_work(struct ot_sched *s, uint32_t h) {
    s->share_ns = s->now_ns;
    struct ot_proc *oldest = atomic_load_explicit(&s->rq[h % RQ_SIZE], memory_order_relaxed);
    /* relaxed: a stale stamp only delays or hastens one wake */
    if (s->now_ns - atomic_load_explicit(&oldest->enq_ns, memory_order_relaxed) < SHARE_AGE_NS)
        return;
    unsigned n = ot__rt.nsched;
    for (unsigned i = 1; i < n; i++) {
        struct ot_sched *t = ot__rt.sched[((unsigned)s->id + i) % n];
        /* relaxed: a peek; ot__sched_kick makes the fenced check and the CAS */
        if (atomic_load_explicit(&t->sleep_state, memory_order_relaxed) == SS_SLEEPING) {
            ot__sched_kick(t);
            return;
        }
    }
}

/* Into the ring, or the overflow list when it is full or p may not be
 * stolen; p's enq_ns is already stamped. */
static void rq_put(struct ot_sched *s, struct ot_proc *p) {
    if (unlikely((p->flags & PF_BOUND) ||
                 (atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_IOWAIT))) {
        ovf_push(s, p);
        return;
    }
    uint32_t t = atomic_load_explicit(&s->rq_tail, memory_order_relaxed);
    /* acquire pairs with the thieves' release CAS of head */
    uint32_t h = atomic_load_explicit(&s->rq_head, memory_order_acquire);
    if (unlikely(t - h >= RQ_SIZE / 4) && s->now_ns - s->share_ns >= STEAL_AGE_NS)
        share_work(s, h);
    if (t - h < RQ_SIZE) {
        atomic_store_explicit(&s->rq[t % RQ_SIZE], p, memory_order_relaxed);
        /* release: the entry is visible before the new tail (thieves acquire tail) */
        atomic_store_explicit(&s->rq_tail, t + 1, memory_order_release);
        return;
    }
    ovf_push(s, p);
}

static void rq_push(struct ot_sched *s, struct ot_proc *p) {
    atomic_store_explicit(&p->enq_ns, s->now_ns, memory_order_relaxed);
    rq_put(s, p);
}

/* The ring ran dry with processes left on the overflow list: move up to
 * half a ring of them back, with their waiting times, so that thieves can
 * see them again. It stops at the first that may not be stolen (bound, or
 * with I/O in flight), which then runs next from the list: going round
 * past them would cost every pick a walk when the list holds only such
 * processes (a server's connections waiting on I/O). */
static void ovf_refill(struct ot_sched *s) {
    for (int i = 0; i < RQ_SIZE / 2 && s->ovf_head; i++) {
        struct ot_proc *p = s->ovf_head;
        if ((p->flags & PF_BOUND) ||
            (atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_IOWAIT))
            return;
        rq_put(s, ovf_pop(s));
    }
}

static struct ot_proc *rq_pop(struct ot_sched *s) {
    uint32_t h = atomic_load_explicit(&s->rq_head, memory_order_acquire);
    for (;;) {
        uint32_t t = atomic_load_explicit(&s->rq_tail, memory_order_relaxed);
        if (h == t)
            return NULL;
        struct ot_proc *p = atomic_load_explicit(&s->rq[h % RQ_SIZE], memory_order_relaxed);
        /* acq_rel: pairs with thieves' CAS on the same head */
        if (atomic_compare_exchange_weak_explicit(&s->rq_head, &h, h + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return p;
    }
}

/* Takes up to half of victim's ring, if its oldest entry has waited. */
static struct ot_proc *steal_from(struct ot_sched *s, struct ot_sched *v) {
    for (int tries = 0; tries < 4; tries++) {
        uint32_t h = atomic_load_explicit(&v->rq_head, memory_order_acquire);
        /* acquire pairs with the owner's release store of tail */
        uint32_t t = atomic_load_explicit(&v->rq_tail, memory_order_acquire);
        uint32_t n = t - h;
        if ((int32_t)n <= 0 || n > RQ_SIZE)
            return NULL;
        struct ot_proc *first = atomic_load_explicit(&v->rq[h % RQ_SIZE], memory_order_relaxed);
        /* relaxed: a stale stamp only delays or hastens one steal */
        uint64_t enq = atomic_load_explicit(&first->enq_ns, memory_order_relaxed);
        if (s->now_ns - enq < STEAL_AGE_NS && enq <= s->now_ns)
            return NULL;
        uint32_t k = n - n / 2;
        struct ot_proc *got[RQ_SIZE];
        for (uint32_t i = 0; i < k; i++)
            got[i] = atomic_load_explicit(&v->rq[(h + i) % RQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_strong_explicit(&v->rq_head, &h, h + k, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            for (uint32_t i = 1; i < k; i++) {
                atomic_store_explicit(&got[i]->sched, s, memory_order_relaxed);
                rq_push(s, got[i]);
            }
            atomic_store_explicit(&got[0]->sched, s, memory_order_relaxed);
            return got[0];
        }
    }
    return NULL;
}

static struct ot_proc *try_steal(struct ot_sched *s) {
    unsigned n = ot__rt.nsched;
    for (unsigned i = 1; i < n; i++) {
        struct ot_sched *v = ot__rt.sched[((unsigned)s->id + i) % n];
        struct ot_proc *p = steal_from(s, v);
        if (p)
            return p;
    }
    return NULL;
}

static struct ot_proc *next_proc(struct ot_sched *s) {
    struct ot_proc *p;
    if (s->runnext && s->runnext_streak < RUNNEXT_CAP) {
        p = s->runnext;
        s->runnext = NULL;
        s->runnext_streak++;
        return p;
    }
    s->runnext_streak = 0;
    if (unlikely((s->nloops & 63) == 0) && (p = ovf_pop(s)))
        return p;
    if ((p = rq_pop(s)))
        return p;
    if (s->ovf_len > 1) {
        ovf_refill(s);
        if ((p = rq_pop(s)))
            return p;
    }
    if ((p = ovf_pop(s)))
        return p;
    if ((p = s->runnext)) {
        s->runnext = NULL;
        return p;
    }
    return NULL;
}

static void drain_inbox(struct ot_sched *s) {
    struct ot_proc *p;
    while ((p = inbox_pop(s)))
        rq_push(s, p);
}

/* ---- waking ------------------------------------------------------------------ */

void ot__sched_kick(struct ot_sched *t) {
    /* seq_cst fence pairs with the sleeper's seq_cst store of SS_SLEEPING and
     * its inbox re-check */
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t st = atomic_load_explicit(&t->sleep_state, memory_order_relaxed);
    if (st != SS_SLEEPING)
        return;
    if (!atomic_compare_exchange_strong_explicit(&t->sleep_state, &st, SS_RUNNING,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return;
    ot__ring_wake_remote(ot__sched_get(), t);
}

void ot__make_runnable(struct ot_proc *p, bool from_local) {
    struct ot_sched *me = ot__sched_get();
    struct ot_sched *home = atomic_load_explicit(&p->sched, memory_order_relaxed);
    bool bound = (p->flags & PF_BOUND) ||
                 (atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_IOWAIT);
    if (me && from_local && !bound) {
        /* a process woken by a send runs on the sender's scheduler */
        atomic_store_explicit(&p->sched, me, memory_order_relaxed);
        atomic_store_explicit(&p->enq_ns, me->now_ns, memory_order_relaxed);
        if (me->in_process) {
            if (me->runnext)
                rq_push(me, me->runnext);
            me->runnext = p;
        } else {
            rq_push(me, p);
        }
        return;
    }
    if (!home)
        home = ot__rt.sched[0];
    if (home == me) {
        rq_push(me, p);
        return;
    }
    inbox_push(home, p);
    ot__sched_kick(home);
}

void ot__enqueue_new(struct ot_proc *p, struct ot_sched *t) {
    struct ot_sched *me = ot__sched_get();
    atomic_store_explicit(&p->sched, t, memory_order_relaxed);
    if (t == me) {
        rq_push(me, p);
        return;
    }
    inbox_push(t, p);
    ot__sched_kick(t);
}

void ot__wake(struct ot_proc *p) {
    uint32_t st = PS_WAITING;
    /* acq_rel: whoever wins this CAS owns putting p on a run queue */
    if (!atomic_compare_exchange_strong_explicit(&p->state, &st, PS_RUNNABLE, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return;
    ot__wake_won(p);
}

/* After winning p's WAITING -> RUNNABLE exchange: put it where it will run. */
void ot__wake_won(struct ot_proc *p) {
    if (unlikely(p->flags & PF_FOREIGN)) {
        extern void ot__foreign_wake(struct ot_proc * fp);
        ot__foreign_wake(p);
        return;
    }
    ot__make_runnable(p, true);
}

/* ---- switching ---------------------------------------------------------------- */

static void park_from_sched(struct ot_sched *s, struct ot_proc *p);
static void check_long_schedule(struct ot_sched *s, struct ot_proc *p);
static void handler_done(struct ot_sched *s, struct ot_proc *p);
static inline void tsan_fresh_fiber(struct stack *st);

/* Every landing of a process context (after its ot__ctx_switch returns) runs
 * this first: a process that switched here directly (direct_leave) is off its
 * stack only now, so only now may it be published as parked. The thread may
 * differ from the one the process left on, hence the fresh lookup. */
static inline void finish_direct(void) {
    struct ot_sched *s = ot__sched_get();
    struct ot_proc *q = s->pending_park;
    if (q) {
        s->pending_park = NULL;
        if (s->pending_handler_done)
            handler_done(s, q);
        else
            park_from_sched(s, q);
    }
}

void ot__finish_direct(void) {
    finish_direct();
}

/* From a process: back to its scheduler with a reason. Returns when resumed,
 * possibly on another scheduler thread. */
static inline void to_sched(struct ot_sched *s, struct ot_proc *p, int why) {
    s->switch_reason = why;
#if defined(OT_ASAN)
    void *fake = NULL;
    bool last = why == SW_EXIT || why == SW_HANDLER_DONE; /* this stack's frames are done */
    SAN_START_SWITCH(last ? NULL : &fake, s->tstack_lo, s->tstack_size);
#endif
    TSAN_SWITCH(s->tsan_fiber);
    ot__ctx_switch(&p->sp, s->sp);
#if defined(OT_ASAN)
    SAN_FINISH_SWITCH(fake);
#endif
    finish_direct();
}

/* A stack for a handler's run: a spare, else one from the pool. */
static inline struct stack *handler_stack(struct ot_sched *s) {
    for (int i = 0; i < 2; i++) {
        struct stack *st = s->hstack[i];
        if (st) {
            s->hstack[i] = NULL;
            return st;
        }
    }
    return ot__stack_get(s, ot__rt.stack_size);
}

/* A fresh context running entry(p) on st. */
static inline void fresh_context(struct ot_proc *p, struct stack *st, void (*entry)(void *)) {
    __atomic_store_n(&p->stack, st, __ATOMIC_RELAXED); /* process_info reads it */
    tsan_fresh_fiber(st);
    p->sp = ot__ctx_make(st->hi, entry, p);
}

/* p is about to run on s. */
static inline void take_cpu(struct ot_sched *s, struct ot_proc *p) {
    atomic_store_explicit(&p->state, PS_RUNNING, memory_order_relaxed);
    atomic_store_explicit(&p->sched, s, memory_order_relaxed);
    s->current = p;
}

/* The run-next process, ready to be switched to directly from p, or NULL. An
 * idle handler gets the scheduler's spare handler stack and a fresh context
 * on it (its body acts on whatever it then finds, an empty mailbox or a
 * death sentence included); a fresh stackful process goes through the loop,
 * which gives it a stack of its own. */
/* Out of line on purpose: inlined into ot__park it made the 10,000-process
 * stackful ring slower (perf/NOTES.md, 2026-11-25 direct_target). */
static __attribute__((noinline)) struct ot_proc *direct_target(struct ot_sched *s) {
    struct ot_proc *n = s->runnext;
    if (!n || s->runnext_streak >= RUNNEXT_CAP || s->pending_park)
        return NULL;
    if (!n->stack) {
        struct stack *st;
        if (!(n->flags & PF_HANDLER) || !(st = handler_stack(s)))
            return NULL;
        fresh_context(n, st, ot__run_handler_body);
    }
    s->runnext = NULL;
    s->runnext_streak++;
    take_cpu(s, n);
    if (n->budget <= 0)
        n->budget = BUDGET;
    return n;
}

/* A process done with its stack for now (parked, or a handler between
 * messages: done) hands its thread straight to the run-next process when
 * that one can be resumed without the loop: one switch instead of two, and
 * no pass through the scheduler loop. This is the common case of request and
 * reply between two processes (a send made the receiver run-next). The
 * run-next cap bounds how long such a chain keeps the loop (timers, I/O,
 * inbox, queue) waiting, as it does when the loop picks run-next itself.
 * Returns false, having done nothing, when there is no such process; else
 * returns when p is resumed (never, when done). */
static bool direct_leave(struct ot_sched *s, struct ot_proc *p, bool done) {
    struct ot_proc *n = direct_target(s);
    if (!n)
        return false;
    check_long_schedule(s, p);
    s->pending_park = p;
    s->pending_handler_done = done;
#if defined(OT_ASAN)
    void *fake = NULL;
    SAN_START_SWITCH(done ? NULL : &fake, n->stack->lo, n->stack->size);
#endif
    TSAN_SWITCH(n->stack->tsan_fiber);
    ot__ctx_switch(&p->sp, n->sp);
#if defined(OT_ASAN)
    SAN_FINISH_SWITCH(fake);
#endif
    finish_direct();
    return true;
}

void ot__handler_done_switch(struct ot_sched *s, struct ot_proc *p) {
    if (!direct_leave(s, p, true))
        to_sched(s, p, SW_HANDLER_DONE);
    abort(); /* a finished handler body is never resumed */
}

void ot__yield_now(void) {
    struct ot_sched *s = ot__sched_get();
    struct ot_proc *p = s->current;
    to_sched(s, p, SW_YIELD);
}

void ot__park(void) {
    struct ot_sched *s = ot__sched_get();
    struct ot_proc *p = s->current;
    if (!direct_leave(s, p, false))
        to_sched(s, p, SW_PARK);
}

_Noreturn void ot__switch_exit(void) {
    struct ot_sched *s = ot__sched_get();
    struct ot_proc *p = s->current;
    to_sched(s, p, SW_EXIT);
    abort(); /* an exited process is never resumed */
}

void ot__spend(struct ot_proc *p, int n) {
    /* single writer: a relaxed load and store, not an RMW (process_info reads it) */
    atomic_store_explicit(&p->reductions,
                          atomic_load_explicit(&p->reductions, memory_order_relaxed) + (uint64_t)n,
                          memory_order_relaxed);
    if (unlikely((p->budget -= n) <= 0)) {
        p->budget = BUDGET;
        /* Only a yield, not a point where exit signals take effect: sends
         * spend from places that hold runtime state (a socket's completion
         * callback under its lock, an active socket's flush), which were
         * not written to end there: with kills taken here test_sock_stress
         * freed a socket twice under TSan (docs/API.md, "a bounded stop"). */
        ot__yield_now();
    }
}

void ot__spend_here(int n) {
    struct ot_proc *p = cur_proc();
    if (p)
        ot__spend(p, n);
}

/* After a process switched out with SW_PARK: make it WAITING unless something
 * arrived meanwhile. Runs on the scheduler's stack, so a waker that puts the
 * process on a run queue can never resume it while it is still on its stack. */
static void park_from_sched(struct ot_sched *s, struct ot_proc *p) {
    /* Owner-only fields are read before WAITING is published: from then on a
     * waker may run p on another scheduler, which drains the mailbox (and may
     * free the envelope mq_head pointed at) and bumps wait_seq. After the
     * store only slot atomics are read: a push since the last drain has moved
     * mq_tail off the head we saw (the exchange comes first in ot__mq_push).
     * An op in flight pins p to this scheduler, so io->done is safe. */
    struct env *head = p->mq_head;
    uint64_t seq = p->wait_seq;
    struct ot__io_op *io = p->io_op;
    /* seq_cst store pairs with the fence in ot__deliver / the timer's fence */
    atomic_store_explicit(&p->state, PS_WAITING, memory_order_seq_cst);
    bool again = atomic_load_explicit(&p->mq_tail, memory_order_seq_cst) != head ||
                 atomic_load_explicit(&p->timeout_seq, memory_order_seq_cst) == seq ||
                 (io && io->done);
    if (again) {
        uint32_t st = PS_WAITING;
        if (atomic_compare_exchange_strong_explicit(&p->state, &st, PS_RUNNABLE,
                                                    memory_order_acq_rel, memory_order_relaxed))
            rq_push(s, p);
    }
}

/* After a handler's body switched off its borrowed stack for good: the stack
 * goes back (as the spare if there is none), and the handler waits for its
 * next message, or queues again when it stopped on its budget. */
static void handler_done(struct ot_sched *s, struct ot_proc *p) {
    struct stack *st = p->stack;
    __atomic_store_n(&p->stack, NULL, __ATOMIC_RELAXED); /* process_info reads it */
    SAN_FORGET_FRAMES(p->sp, st);
    if (!s->hstack[0])
        s->hstack[0] = st;
    else if (!s->hstack[1])
        s->hstack[1] = st;
    else
        ot__stack_put(s, st);
    if (s->handler_yield) {
        atomic_store_explicit(&p->state, PS_RUNNABLE, memory_order_relaxed);
        rq_push(s, p);
    } else {
        park_from_sched(s, p);
    }
}

/* A contained fault (fault.c decided): the process ends with OT_FAULT, or
 * OT_STACK_OVERFLOW when the fault hit the stack's guard or the stack
 * pointer was already below the stack (a frame that jumped the guard). The
 * crash report adds where it hit and the backtrace (fault->proc). */
static void handle_fault(struct ot_sched *s, struct ot_proc *p) {
    int sig = s->fault_sig;
    s->fault_sig = 0;
    ot_reason r = OT_REASON(OT_FAULT);
    r.detail = sig;
    bool overflow = ot__stack_guard_hit(p->stack, s->fault_addr) ||
                    (p->stack && s->fault && s->fault->sp < (uintptr_t)p->stack->lo);
    if (overflow) {
        r = OT_REASON(OT_STACK_OVERFLOW);
        snprintf(r.text, sizeof r.text, "stack overflow at %p", s->fault_addr);
    } else {
        snprintf(r.text, sizeof r.text, "%s at %p",
                 sigabbrev_np(sig) ? sigabbrev_np(sig) : "signal", s->fault_addr);
    }
    p->reason = r;
    p->exit_by_signal = 0;
    if (s->fault)
        s->fault->proc = p;
    ot__sched_hook_finish_exit(s, p);
    if (s->fault)
        s->fault->proc = NULL;
}

static uint64_t coarse_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* BEAM's long_schedule monitor: a process that held its scheduler longer
 * than long_schedule_ms between two switches is reported (after the fact,
 * through the logger). The coarse clock (a few ns, jiffy resolution) is
 * read once per switch back: the run is measured from the previous switch,
 * which only adds the scheduler's own few-ns bookkeeping. */
static void check_long_schedule(struct ot_sched *s, struct ot_proc *p) {
    uint64_t now = coarse_ms();
    uint64_t ran = now - s->run_start_ns;
    s->run_start_ns = now;
    if (unlikely(ran > ot__rt.cfg.long_schedule_ms)) {
        uint64_t pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
        ot_log(OT_LOG_WARNING,
               "long_schedule: process <0.%u.%u> ran %llu ms on scheduler %d without "
               "reaching a runtime call that yields",
               (unsigned)(pid & 0xffffffffu), (unsigned)(pid >> 32), (unsigned long long)ran,
               s->id);
    }
}

/* A fresh context on a reused stack under TSan. A fresh fiber for every
 * body costs milliseconds (libtsan clears a whole thread record, and every
 * fiber ever live widens every vector clock: suites spent most of their time
 * there), so a stack keeps its fiber for a few bodies. Not for ever: a body
 * that ends by switching away leaves its frames on the fiber's shadow call
 * stack (64K entries in libtsan), and every stack TSan records (its depot
 * keeps each distinct one) then carries them, so memory grows with the square
 * of the reuses: 8 keeps a suite's footprint within a few percent of a fiber
 * per body. A stack also gets a fresh fiber once the frames left on it
 * (counted by SAN_FORGET_FRAMES from the stack bytes each dead body used: a
 * call level takes at least 16 bytes) plus all a new body could push might
 * pass three quarters of the shadow stack. Bodies in sequence on one stack
 * are ordered by the scheduler's switches either way, so keeping the fiber
 * hides no race; a report may show a dead body's frames below the live ones. */
enum { TSAN_FIBER_REUSES = 8 };

static inline void tsan_fresh_fiber(struct stack *st) {
#if defined(OT_TSAN)
    if (++st->tsan_reuses <= TSAN_FIBER_REUSES && st->tsan_pile + st->size / 16 <= 48 * 1024)
        return;
    st->tsan_reuses = 0;
    __tsan_destroy_fiber(st->tsan_fiber);
    st->tsan_fiber = __tsan_create_fiber(0);
    st->tsan_pile = 0;
#else
    (void)st;
#endif
}

/* Sets up a fresh context running entry(p) on st; without a stack the process
 * ends (the error is its exit reason) and false is returned. */
static bool give_stack(struct ot_sched *s, struct ot_proc *p, struct stack *st,
                       void (*entry)(void *)) {
    if (!st) {
        p->reason = ot_reason_error("no stack: %s", strerror(errno));
        ot__sched_hook_finish_exit(s, p);
        s->current = NULL;
        return false;
    }
    fresh_context(p, st, entry);
    return true;
}

static void run_proc(struct ot_sched *s, struct ot_proc *p) {
    take_cpu(s, p);
    if ((p->flags & PF_HANDLER) && !p->stack) {
        /* an idle handler: act on signals and look for a message without a stack */
        ot__sched_hook_mq_drain(p);
        if (p->dying) {
            ot__sched_hook_finish_exit(s, p);
            s->current = NULL;
            return;
        }
        if (!p->q_first) {
            park_from_sched(s, p);
            s->current = NULL;
            return;
        }
        if (!give_stack(s, p, handler_stack(s), ot__run_handler_body))
            return;
    } else if (unlikely(!p->stack)) {
        /* a stackful process's first run: its stack comes from this scheduler */
        size_t sz = (size_t)p->stack_req << 10;
        if (!give_stack(s, p, ot__stack_get(s, sz ? sz : ot__rt.stack_size), ot__stackful_entry))
            return;
    }
    if (p->budget <= 0)
        p->budget = BUDGET;
    s->in_process = true;
    SAN_START_SWITCH(&s->asan_fake, p->stack->lo, p->stack->size);
    TSAN_SWITCH(p->stack->tsan_fiber);
    ot__ctx_switch(&s->sp, p->sp);
    SAN_FINISH_SWITCH(s->asan_fake);
    s->in_process = false;
    p = s->current; /* not the one we switched to if it parked directly */
    check_long_schedule(s, p);
    if (unlikely(s->fault_sig)) {
        handle_fault(s, p);
        s->current = NULL;
        return;
    }
    switch (s->switch_reason) {
    case SW_YIELD:
        atomic_store_explicit(&p->state, PS_RUNNABLE, memory_order_relaxed);
        rq_push(s, p);
        break;
    case SW_PARK:
        park_from_sched(s, p);
        break;
    case SW_EXIT:
        ot__sched_hook_finish_exit(s, p);
        s->run_start_ns = coarse_ms(); /* nor is an exit's clean-up */
        break;
    case SW_HANDLER_DONE:
        handler_done(s, p);
        break;
    }
    s->current = NULL;
}

/* ---- the loop ------------------------------------------------------------------- */

static void advance_time(struct ot_sched *s) {
    s->now_ns = ot__clock_ns();
    uint64_t tick = s->now_ns / OT_TICK_NS;
    if (tick > s->wheel.now || s->wheel.due)
        ot__wheel_advance(s, tick);
}

static bool have_local_work(struct ot_sched *s) {
    return s->runnext || s->ovf_head ||
           atomic_load_explicit(&s->rq_tail, memory_order_relaxed) !=
               atomic_load_explicit(&s->rq_head, memory_order_relaxed) ||
           inbox_nonempty(s);
}

static bool should_exit(struct ot_sched *s) {
    return atomic_load_explicit(&ot__rt.stopping, memory_order_acquire) == 2;
}

/* How long an idle scheduler sleeps at most while its wheel holds send
 * timers: the scan for timers whose target died (ot__wheel_reap_dead) is
 * started by exits on any scheduler, which do not wake this one. */
#define REAP_SLEEP_NS 250000000

#define TRIM_SLEEP_NS 10000000 /* stack.c's TRIM_NS: the next batch's time */

static void idle(struct ot_sched *s) {
    bool trimming = ot__stack_trim(s, s->now_ns);
    bool scanning = ot__wheel_reap_dead(s);
    uint64_t spin_until = s->now_ns + (uint64_t)ot__rt.cfg.spin_us * 1000u;
    atomic_store_explicit(&s->sleep_state, SS_SPINNING, memory_order_relaxed);
    for (;;) {
        if (s->inflight || s->pending_sqes) {
            ot__ring_submit(s);
            ot__ring_reap(s);
        }
        if (have_local_work(s) || should_exit(s))
            break;
        s->now_ns = ot__clock_ns();
        if (s->wheel.due || s->now_ns / OT_TICK_NS > s->wheel.now)
            break;
        struct ot_proc *p = try_steal(s);
        if (p) {
            rq_push(s, p);
            break;
        }
        if (s->now_ns < spin_until || scanning) {
            if (scanning)
                break; /* the loop comes back here with the scan's next batch */
            __builtin_ia32_pause();
            continue;
        }
        /* publish SLEEPING, then look again: pairs with ot__sched_kick */
        atomic_store_explicit(&s->sleep_state, SS_SLEEPING, memory_order_seq_cst);
        if (have_local_work(s) || should_exit(s))
            break;
        int64_t next = ot__wheel_next(&s->wheel);
        int64_t tmo_ns = -1;
        if (next >= 0) {
            uint64_t at = (s->wheel.now + (uint64_t)next) * OT_TICK_NS;
            tmo_ns = at > s->now_ns ? (int64_t)(at - s->now_ns) : 0;
        }
        if (atomic_load_explicit(&s->wheel.sends, memory_order_relaxed) &&
            (tmo_ns < 0 || tmo_ns > REAP_SLEEP_NS))
            tmo_ns = REAP_SLEEP_NS;
        if (trimming && (tmo_ns < 0 || tmo_ns > TRIM_SLEEP_NS))
            tmo_ns = TRIM_SLEEP_NS;
        rcu_thread_offline();
        ot__ring_sleep(s, tmo_ns);
        rcu_thread_online();
        break;
    }
    atomic_store_explicit(&s->sleep_state, SS_RUNNING, memory_order_relaxed);
}

static void *sched_main(void *arg) {
    struct ot_sched *s = arg;
    ot__cur_sched = s;
    rcu_register_thread();
#if defined(OT_TSAN)
    s->tsan_fiber = __tsan_get_current_fiber();
#endif
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &s->tstack_lo, &s->tstack_size);
        pthread_attr_destroy(&a);
    }
    int rc = ot__ring_init(s);
    /* release pairs with the acquire load in ot__sched_start_all */
    atomic_store_explicit(&s->ready, rc ? rc : 1, memory_order_release);
    if (rc) {
        rcu_unregister_thread();
        return NULL;
    }
    ot__fault_thread_init(s);
    s->now_ns = ot__clock_ns();
    s->run_start_ns = coarse_ms();
    for (;;) {
        s->nloops++;
        rcu_quiescent_state();
        advance_time(s);
        if ((s->nloops & 63) == 0)
            ot__wheel_reap_dead(s); /* a busy scheduler never idles */
        drain_inbox(s);
        s->run_start_ns = coarse_ms(); /* timers and the inbox are not a process's time */
        /* run a batch, then give the ring one submit/reap */
        for (int i = 0; i < 64; i++) {
            struct ot_proc *p = next_proc(s);
            if (!p)
                break;
            run_proc(s, p);
            if ((i & 15) == 15)
                s->now_ns = ot__clock_ns();
        }
        if (s->pending_sqes || s->inflight) {
            ot__ring_submit(s);
            ot__ring_reap(s);
        }
        if (!have_local_work(s)) {
            if (should_exit(s))
                break;
            idle(s);
            s->run_start_ns = coarse_ms(); /* idle time is not a process's */
        }
    }
    ot__ring_drain(s);
    ot__fault_thread_fini(s);
    rcu_unregister_thread();
    ot__cur_sched = NULL;
    return NULL;
}

int ot__sched_start_all(void) {
    unsigned n = ot__rt.nsched;
    ot__rt.sched = calloc(n, sizeof(*ot__rt.sched));
    if (!ot__rt.sched)
        return -ENOMEM;
    uint64_t tick = ot__clock_ns() / OT_TICK_NS;
    for (unsigned i = 0; i < n; i++) {
        struct ot_sched *s =
            aligned_alloc(OT_CACHELINE, (sizeof(*s) + OT_CACHELINE - 1) & ~(size_t)63);
        if (!s)
            return -ENOMEM;
        memset(s, 0, sizeof(*s));
        s->id = (int)i;
        s->evfd = -1;
        s->inbox_stub = aligned_alloc(OT_CACHELINE, sizeof(struct ot_proc));
        if (!s->inbox_stub)
            return -ENOMEM;
        memset(s->inbox_stub, 0, sizeof(struct ot_proc));
        atomic_store_explicit(&s->inbox_tail, inbox_stub(s), memory_order_relaxed);
        s->inbox_head = inbox_stub(s);
        ot__wheel_init(&s->wheel, tick);
        ot__rt.sched[i] = s;
        int rc = ot__stack_reserve(s);
        if (rc)
            return rc;
    }
    int err = 0;
    for (unsigned i = 0; i < n; i++) {
        int rc = pthread_create(&ot__rt.sched[i]->thread, NULL, sched_main, ot__rt.sched[i]);
        if (rc)
            return -rc;
        ot__rt.nstarted = i + 1;
    }
    for (unsigned i = 0; i < n; i++) {
        int r;
        while ((r = atomic_load_explicit(&ot__rt.sched[i]->ready, memory_order_acquire)) == 0)
            sched_yield();
        if (r < 0 && !err)
            err = r;
    }
    return err;
}

unsigned ot__sched_stop_all(uint64_t deadline_ns) {
    atomic_store_explicit(&ot__rt.stopping, 2, memory_order_release);
    for (unsigned i = 0; i < ot__rt.nstarted; i++) {
        struct ot_sched *s = ot__rt.sched[i];
        /* force a wake even if it is only about to sleep */
        atomic_store_explicit(&s->sleep_state, SS_SLEEPING, memory_order_seq_cst);
        ot__sched_kick(s);
    }
    unsigned left = 0;
    for (unsigned i = 0; i < ot__rt.nstarted; i++) {
        if (!deadline_ns) {
            pthread_join(ot__rt.sched[i]->thread, NULL);
            continue;
        }
        /* the join's clock is CLOCK_REALTIME: the deadline is moved onto it */
        uint64_t now = ot__clock_ns();
        uint64_t wait = deadline_ns > now ? deadline_ns - now : 0;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t at = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + wait;
        ts.tv_sec = (time_t)(at / 1000000000u);
        ts.tv_nsec = (long)(at % 1000000000u);
        if (pthread_timedjoin_np(ot__rt.sched[i]->thread, NULL, &ts) != 0) {
            pthread_detach(ot__rt.sched[i]->thread); /* still running a process */
            left++;
        }
    }
    ot__rt.nstarted = 0;
    return left;
}
