/* Process lifecycle: spawn (both kinds), the entry trampolines, and exit.
 * A process ends on its own stack (return, ot_exit_self, a fatal signal it
 * acted on) by switching to its scheduler for good, or, for an idle handler
 * that has no stack, directly on the scheduler; either way the scheduler
 * completes the exit in ot__sched_hook_finish_exit, outside the process: mark dead
 * under the slot lock (after which link and monitor requests are answered
 * with noproc by their senders), run the ETS and resource hooks, fire links
 * and monitors, report a crash once, give back heap, stack and messages, and
 * free the slot. A process with an I/O op in flight cancels it and waits for
 * its final completion before it switches out (ARCHITECTURE 10). */
#include "runtime/sched/ring.h"
#include "runtime/proc/proc.h"
#include "runtime/sched/ctx.h"
#include "runtime/sched/sanit.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ot__exit_hook_fn ets_exit_hook;
void ot__set_ets_exit_hook(ot__exit_hook_fn fn) {
    ets_exit_hook = fn;
}

static ot__exit_hook_fn sock_exit_hook;
void ot__set_sock_exit_hook(ot__exit_hook_fn fn) {
    sock_exit_hook = fn;
}

static _Atomic unsigned rr_next;

static struct ot_sched *pick_sched(const ot_spawn_opts *o) {
    unsigned n = ot__rt.nsched;
    if (o && o->scheduler_set && o->scheduler >= 0)
        return ot__rt.sched[(unsigned)o->scheduler % n];
    struct ot_sched *me = ot__sched_get();
    if (me)
        return me;
    return ot__rt.sched[atomic_fetch_add_explicit(&rr_next, 1, memory_order_relaxed) % n];
}

static void reset_record(struct ot_proc *p) {
    /* everything but the mailbox queue, the lock and the generation */
    atomic_store_explicit(&p->aflags, 0, memory_order_relaxed);
    /* timeout_seq and wait_seq are kept: wait numbers grow across a slot's
     * occupants, so a receive timer of an earlier occupant that fires late
     * never matches a wait of this one (timer.c, fire) */
    p->flags = 0;
    p->q_first = p->q_last = NULL;
    p->q_len = 0;
    p->taken_n = 0;
    p->taken_bytes = 0;
    atomic_store_explicit(&p->taken.next, (struct env *)&p->taken, memory_order_relaxed);
    p->taken.prev = (struct env *)&p->taken;
    p->dying = false;
    p->mark_ref = OT_NOREF;
    p->mark_env = NULL;
    p->mark_valid = false;
    p->exit_by_signal = 0;
    p->wait_seq++; /* past any timeout_seq an earlier occupant left */
    p->sp = NULL;
    p->stack = NULL;
    p->fn = NULL; /* and hfn, its union partner */
    p->arg = NULL;
    p->tmo = NULL;
    atomic_store_explicit(&p->reductions, 0, memory_order_relaxed);
    p->budget = 0;
    p->stack_req = 0;
    p->io_op = NULL;
    p->res = NULL;
    p->heap.state = NULL;
    memset(&p->links, 0, sizeof p->links);
    memset(&p->monitors, 0, sizeof p->monitors);
    memset(&p->monitored, 0, sizeof p->monitored);
    p->name = NULL;
    p->behaviour = NULL;
    p->scans = 0;
    p->reason = OT_REASON(OT_NORMAL);
}

/* spawn_link and spawn_monitor: both sides of the link or monitor are in
 * place before the pid is published. The new process's maps are its own and
 * unpublished; the spawner's are written under its slot lock (ot__pmap_put).
 * A map that cannot grow fails the spawn (-ENOMEM), with nothing left behind. */
static int spawn_link_monitor(struct ot_proc *me, struct ot_proc *p, ot_pid pid,
                              const ot_spawn_opts *o) {
    uint64_t mine = atomic_load_explicit(&me->pid, memory_order_relaxed);
    ot_ref r = OT_NOREF;
    bool linked = false;
    if (o->link) {
        if (ot__map_put(&p->links, mine, 1) < 0 || ot__pmap_put(me, &me->links, pid.v, 1) < 0)
            goto fail;
        linked = true;
    }
    if (o->monitor) {
        r = ot_make_ref();
        if (ot__map_put(&p->monitored, r.v, mine) < 0 ||
            ot__pmap_put(me, &me->monitors, r.v, pid.v) < 0)
            goto fail;
        *o->monitor_ref = r;
    }
    return 0;
fail:
    if (linked)
        ot__pmap_del(me, &me->links, pid.v, NULL);
    ot__map_free(&p->links);
    ot__map_free(&p->monitored);
    return -ENOMEM;
}

static ot_pid spawn_impl(void (*fn)(void *), ot_handler_fn hfn, void *arg,
                           const ot_spawn_opts *o) {
    if (!atomic_load_explicit(&ot__rt.running, memory_order_acquire) ||
        atomic_load_explicit(&ot__rt.stopping, memory_order_acquire)) {
        errno = ENOTCONN;
        return OT_NOPID;
    }
    if (!fn && !hfn) {
        errno = EINVAL;
        return OT_NOPID;
    }
    struct ot_proc *me = cur_proc();
    if (o && (o->link || o->monitor) && !me) {
        errno = EPERM;
        return OT_NOPID;
    }
    if (o && o->monitor && !o->monitor_ref) {
        errno = EINVAL;
        return OT_NOPID;
    }
    size_t ssz = ot__rt.stack_size;
    if (o && o->stack_size) {
        if (o->stack_size < 16384 || o->stack_size > ((size_t)1 << 30)) {
            errno = EINVAL;
            return OT_NOPID;
        }
        ssz = (o->stack_size + ot__rt.page - 1) & ~(ot__rt.page - 1);
    }
    struct ot_proc *p = ot__ptab_alloc();
    if (!p) {
        errno = EAGAIN;
        return OT_NOPID;
    }
    reset_record(p);
    if (hfn)
        p->hfn = hfn;
    else
        p->fn = fn;
    p->arg = arg;
    p->stack_req = (uint32_t)(ssz >> 10);
    if (hfn)
        p->flags |= PF_HANDLER;
    if (o && o->bind)
        p->flags |= PF_BOUND;
    if (o && o->trap_exit)
        p->flags |= PF_TRAP;
    if (o && o->behaviour)
        p->behaviour = o->behaviour;
    if (o && o->max_heap_bytes) {
        p->flags |= PF_HEAP_LIMIT;
        *ot__ptab_heap_limit(p) = o->max_heap_bytes;
    }
    uint32_t idx = (uint32_t)(p - ot__ptab_at(0));
    ot_pid pid = {(uint64_t)atomic_load_explicit(&p->gen, memory_order_relaxed) << 32 | idx};
    if ((o && (o->link || o->monitor)) && spawn_link_monitor(me, p, pid, o) < 0) {
        ot__ptab_free(p); /* never published: nobody saw its pid */
        errno = ENOMEM;
        return OT_NOPID;
    }
    struct ot_sched *home = pick_sched(o);
    if (hfn) {
        /* A new handler has nothing to do until a message or signal arrives,
         * and its first run would only find the mailbox empty and park it:
         * it is born parked instead, and the first delivery wakes it as any
         * delivery wakes a parked process (the pid's release store below
         * orders the state before any sender can see the pid). */
        atomic_store_explicit(&p->sched, home, memory_order_relaxed);
        atomic_store_explicit(&p->state, PS_WAITING, memory_order_relaxed);
        atomic_store_explicit(&p->pid, pid.v, memory_order_release);
    } else {
        atomic_store_explicit(&p->state, PS_RUNNABLE, memory_order_relaxed);
        /* release pairs with the acquire loads of pid by senders (ot__deliver) */
        atomic_store_explicit(&p->pid, pid.v, memory_order_release);
        ot__enqueue_new(p, home);
    }
    if (me)
        ot__spend(me, 1);
    return pid;
}

/* the public call passes the gate when made on a plain thread (foreign.c) */
static ot_pid spawn_common(void (*fn)(void *), ot_handler_fn hfn, void *arg,
                           const ot_spawn_opts *o) {
    bool gated;
    if (!ot__gate_in(&gated)) {
        errno = ENOTCONN;
        return OT_NOPID;
    }
    ot_pid r = spawn_impl(fn, hfn, arg, o);
    int e = errno;
    ot__gate_out(gated);
    errno = e;
    return r;
}

ot_pid ot_spawn(void (*fn)(void *), void *arg) {
    if (!fn) {
        errno = EINVAL;
        return OT_NOPID;
    }
    return spawn_common(fn, NULL, arg, NULL);
}

ot_pid ot_spawn_link(void (*fn)(void *), void *arg) {
    ot_spawn_opts o = {.link = true};
    if (!fn) {
        errno = EINVAL;
        return OT_NOPID;
    }
    return spawn_common(fn, NULL, arg, &o);
}

ot_pid ot_spawn_opt(void (*fn)(void *), void *arg, const ot_spawn_opts *o) {
    if (!fn) {
        errno = EINVAL;
        return OT_NOPID;
    }
    return spawn_common(fn, NULL, arg, o);
}

ot_pid ot_spawn_handler(ot_handler_fn fn, void *state, const ot_spawn_opts *o) {
    if (!fn || (o && o->stack_size)) {
        errno = EINVAL;
        return OT_NOPID;
    }
    return spawn_common(NULL, fn, state, o);
}

/* ---- entry points on the process's stack ------------------------------------ */

void ot__stackful_entry(void *arg) {
    struct ot_proc *p = arg;
    /* a fiber's first run completes the switch the scheduler started; without
     * it ASan sees the next switch out as nested ("while in fiber switch") */
    SAN_FINISH_SWITCH(NULL);
    p->fn(p->arg);
    ot__exit_current(OT_REASON(OT_NORMAL), false);
}

void ot__run_handler_body(void *arg) {
    struct ot_proc *p = arg;
    SAN_FINISH_SWITCH(NULL); /* first run on this stack, as in ot__stackful_entry */
    ot__finish_direct();     /* it may have been switched to directly (sched.c) */
    bool budget_out = false;
    int n = 0;
    for (;;) {
        struct env *e = ot__q_take_first(p);
        if (!e) {
            ot__sched_hook_mq_drain(p);
            if (p->dying)
                ot__exit_current(p->reason, true);
            e = ot__q_take_first(p);
            if (!e)
                break;
        }
        /* on the taken list while the callback runs, so an exit inside it
         * frees the message */
        ot__taken_add(p, e);
        if (unlikely(p->flags & PF_HEAP_LIMIT))
            ot__heap_limit_check(p);
        atomic_store_explicit(&p->reductions,
                              atomic_load_explicit(&p->reductions, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        int rc = p->hfn(p->arg, &e->msg);
        ot_msg_free(&e->msg);
        if (rc < 0)
            ot__exit_current(ot_reason_error("handler returned %d", rc), false);
        if (rc > 0)
            ot__exit_current(OT_REASON(OT_NORMAL), false);
        if (++n >= 64 || --p->budget <= 0) {
            budget_out = p->q_first != NULL || ot__mq_maybe_nonempty(p);
            if (p->budget <= 0)
                p->budget = 4000;
            if (budget_out)
                break;
        }
    }
    struct ot_sched *s = ot__sched_get();
    s->handler_yield = budget_out;
    s->switch_reason = SW_HANDLER_DONE;
    /* this stack is handed back: nothing on it is used again */
    extern void ot__handler_done_switch(struct ot_sched * s, struct ot_proc * p);
    ot__handler_done_switch(s, p);
}

/* ---- exit ------------------------------------------------------------------------ */

_Noreturn void ot__exit_current(ot_reason r, bool by_signal) {
    struct ot_proc *p = cur_proc();
    p->reason = r;
    p->exit_by_signal = by_signal;
    p->dying = true;
    if (p->io_op && !p->io_op->done) {
        /* the kernel may still write into the op's buffers: cancel and wait
         * for the final completion before the stack and heap go away */
        bool sent = ot__io_cancel(p->io_op);
        while (!p->io_op->done) {
            if (sent) {
                ot__park();
            } else {
                /* no SQE to be had: the scheduler loop submits what its
                 * ring holds between runs, so try again after one */
                ot__yield_now();
                sent = ot__io_cancel(p->io_op);
            }
        }
        ot__io_count_deferred_teardown();
    }
    ot__switch_exit();
}

_Noreturn void ot_exit_self(ot_reason why) {
    struct ot_proc *p = cur_proc();
    if (!p) {
        fprintf(stderr, "otter: ot_exit_self called outside a process\n");
        abort();
    }
    ot__exit_current(why, false);
}

static void release_resources(struct ot_proc *p, ot_pid pid) {
    struct ot__res *r = p->res;
    p->res = NULL;
    while (r) {
        struct ot__res *n = r->next;
        r->next = r->prev = NULL;
        r->release(r, pid);
        r = n;
    }
}

void ot__sched_hook_finish_exit(struct ot_sched *s, struct ot_proc *p) {
    ot_pid pid = {atomic_load_explicit(&p->pid, memory_order_relaxed)};
    slot_lock(p);
    /* under the lock: link/monitor requests are either already queued (and
     * drained below) or will be answered noproc by their senders */
    uint32_t af = atomic_fetch_or_explicit(&p->aflags, PF_DEAD, memory_order_acq_rel);
    atomic_store_explicit(&p->state, PS_EXITING, memory_order_release);
    slot_unlock(p);
    atomic_fetch_and_explicit(&p->aflags, ~(uint32_t)PF_IOWAIT, memory_order_relaxed);
    if (!p->exit_by_signal && !ot_reason_is_normal(p->reason))
        ot__proc_hook_crash_report(p); /* once, while the name is still there */
    ot__timer_cancel_wake(p);
    if (af & PF_NAMED)
        ot__names_release(p);
    if ((af & PF_ETS_OWNER) && ets_exit_hook)
        ets_exit_hook(pid);
    if ((af & PF_SOCK_OWNER) && sock_exit_hook)
        sock_exit_hook(pid);
    release_resources(p, pid);
    ot__mq_drain_all(p); /* pending link/monitor requests become links to fire */
    ot__exit_links_monitors(p);
    ot__mq_free_all(p);
    ot__heap_release(&p->heap);
    if (p->stack) {
        struct stack *st = p->stack;
        bool faulted = p->reason.kind == OT_FAULT || p->reason.kind == OT_STACK_OVERFLOW;
        SAN_FORGET_FRAMES(faulted || !p->sp ? (void *)st->lo : p->sp, st);
        (void)faulted;
        ot__stack_put(s, st);
        p->stack = NULL;
    }
    ot__map_free(&p->links);
    ot__map_free(&p->monitors);
    ot__map_free(&p->monitored);
    extern void ot__run_main_exited(ot_pid pid, ot_reason r);
    ot__run_main_exited(pid, p->reason);
    atomic_store_explicit(&p->pid, 0, memory_order_release);
    atomic_store_explicit(&p->state, PS_FREE, memory_order_release);
    ot__ptab_free(p);
    /* owner-only counter: send timers aimed at p are cancelled by the scans
     * it starts (ot__wheel_reap_dead) */
    atomic_store_explicit(&s->exits, atomic_load_explicit(&s->exits, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void ot__heap_limit_check(struct ot_proc *p) {
    size_t held = ot__heap_bytes(&p->heap) + (size_t)p->taken_bytes;
    if (likely(held <= *ot__ptab_heap_limit(p)) || p->dying)
        return;
    /* BEAM kills at once, with an error report (its error_logger default):
     * so do we, unless the runtime itself is the caller inside a critical
     * section (an ETS copy-out into the caller's heap), where ending the
     * process would leave what the section holds; then at the next point
     * where it looks at its signals */
    ot_reason r = OT_REASON(OT_HEAP_LIMIT);
    struct ot_sched *s = ot__sched_get();
    if (!s || s->crit == 0)
        ot__exit_current(r, false);
    p->dying = true;
    p->reason = r;
    p->exit_by_signal = 0;
}

/* The slot lock's slow path. Its holders keep it for a few instructions, but
 * one of them may be a plain thread (ot_process_info) that the kernel
 * preempted while holding it: after a short spin, give the CPU away. */
void ot__slot_lock_wait(struct ot_proc *p) {
    for (unsigned spins = 0;; spins++) {
        if (spins < 128)
            __builtin_ia32_pause();
        else
            sched_yield();
        if (!atomic_load_explicit(&p->lock, memory_order_relaxed) &&
            !atomic_exchange_explicit(&p->lock, 1, memory_order_acquire))
            return;
    }
}

/* ---- small process calls --------------------------------------------------------- */

ot_pid ot_self(void) {
    struct ot_proc *p = cur_proc();
    return p ? (ot_pid){atomic_load_explicit(&p->pid, memory_order_relaxed)} : OT_NOPID;
}

static bool is_alive_impl(ot_pid pid) {
    return ot__ptab_live(pid) != NULL;
}

/* the public call passes the gate when made on a plain thread (foreign.c) */
bool ot_is_alive(ot_pid pid) {
    bool gated;
    if (!ot__gate_in(&gated)) {
        return false;
    }
    bool r = is_alive_impl(pid);
    int e = errno;
    ot__gate_out(gated);
    errno = e;
    return r;
}

void ot_yield(void) {
    struct ot_proc *p = cur_proc();
    if (!p)
        return;
    ot__check_signals(p);
    p->budget = 4000;
    ot__yield_now();
    ot__check_signals(p);
}

void ot__check_signals(struct ot_proc *p) {
    if (ot__mq_maybe_nonempty(p))
        ot__sched_hook_mq_drain(p);
    if (unlikely(p->dying))
        ot__exit_current(p->reason, p->exit_by_signal);
}

int ot__proc_mark_ets_owner(ot_pid pid) {
    struct ot_proc *p = ot__ptab_slot(pid);
    if (!p)
        return -ESRCH;
    slot_lock(p);
    int rc = -ESRCH;
    if (atomic_load_explicit(&p->pid, memory_order_relaxed) == pid.v &&
        !(atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_DEAD)) {
        atomic_fetch_or_explicit(&p->aflags, PF_ETS_OWNER, memory_order_relaxed);
        rc = 0;
    }
    slot_unlock(p);
    return rc;
}

int ot__proc_mark_sock_owner(ot_pid pid) {
    struct ot_proc *p = ot__ptab_slot(pid);
    if (!p)
        return -ESRCH;
    slot_lock(p);
    int rc = -ESRCH;
    /* a foreign thread's slot runs no exit hooks: it cannot own sockets */
    if (atomic_load_explicit(&p->pid, memory_order_relaxed) == pid.v &&
        !(atomic_load_explicit(&p->aflags, memory_order_relaxed) & (PF_DEAD | PF_FOREIGN))) {
        atomic_fetch_or_explicit(&p->aflags, PF_SOCK_OWNER, memory_order_relaxed);
        rc = 0;
    }
    slot_unlock(p);
    return rc;
}

int ot__res_add(struct ot__res *r) {
    struct ot_proc *p = cur_proc();
    if (!p)
        return -EPERM;
    r->prev = NULL;
    r->next = p->res;
    if (p->res)
        p->res->prev = r;
    p->res = r;
    return 0;
}

void ot__res_del(struct ot__res *r) {
    struct ot_proc *p = cur_proc();
    if (!p)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else if (p->res == r)
        p->res = r->next;
    else
        return; /* not registered */
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

int32_t ot__io_wait(struct ot__io_op *op) {
    struct ot_proc *p = cur_proc();
    if (!p)
        return -EPERM;
    op->waiter = p;
    p->io_op = op;
    atomic_fetch_or_explicit(&p->aflags, PF_IOWAIT, memory_order_relaxed);
    while (!op->done) {
        ot__park();
        ot__check_signals(p); /* a kill cancels the op in ot__exit_current */
    }
    atomic_fetch_and_explicit(&p->aflags, ~(uint32_t)PF_IOWAIT, memory_order_relaxed);
    p->io_op = NULL;
    ot__spend(p, 1);
    return op->res;
}

uint64_t ot__mbox_scans(void) {
    struct ot_proc *p = cur_proc();
    return p ? p->scans : 0;
}

/* Another process's record may change under us: its maps grow, its heap and
 * messages come and go, and it may exit and free all of them. Everything is
 * read under its slot lock, after checking that the slot is still pid's and
 * not dead: the exit path sets PF_DEAD under that lock before it frees
 * anything, and the owner writes its link and monitor maps under it
 * (ot__pmap_put). Counts the owner keeps without the lock are stored with
 * relaxed atomics and read so here; they are advisory snapshots, as in
 * erlang:process_info/2. The name is copied under the names mutex. */
static int process_info_impl(ot_pid pid, struct ot_process_info *out) {
    if (!out)
        return -EINVAL;
    struct ot_proc *p = ot__ptab_slot(pid);
    if (!p)
        return -ESRCH;
    if (cur_proc() == p && ot__mq_maybe_nonempty(p))
        ot__sched_hook_mq_drain(p); /* its own signals first (not under the lock: they take it) */
    memset(out, 0, sizeof *out);
    slot_lock(p);
    uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);
    /* acquire pairs with spawn's release store of pid: what spawn wrote
     * before it (behaviour, the stack request, the reset maps) is visible */
    if (atomic_load_explicit(&p->pid, memory_order_acquire) != pid.v ||
        (atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_DEAD) || st == PS_FREE ||
        st == PS_EXITING) {
        slot_unlock(p);
        return -ESRCH;
    }
    out->status = st == PS_RUNNING    ? OT_STATUS_RUNNING
                  : st == PS_RUNNABLE ? OT_STATUS_RUNNABLE
                                      : OT_STATUS_WAITING;
    uint16_t flags = __atomic_load_n(&p->flags, __ATOMIC_RELAXED);
    out->handler = (flags & PF_HANDLER) != 0;
    out->trap_exit = (flags & PF_TRAP) != 0;
    struct ot_sched *s = atomic_load_explicit(&p->sched, memory_order_relaxed);
    out->scheduler = s ? s->id : -1;
    /* sent and not yet received: the private queue and what is still on
     * the MPSC queue */
    out->message_queue_len =
        (size_t)__atomic_load_n(&p->q_len, __ATOMIC_RELAXED) +
        (size_t)atomic_load_explicit(&p->mq_pending, memory_order_relaxed);
    out->unfreed_messages = __atomic_load_n(&p->taken_n, __ATOMIC_RELAXED);
    out->unfreed_bytes = (size_t)__atomic_load_n(&p->taken_bytes, __ATOMIC_RELAXED);
    out->reductions = atomic_load_explicit(&p->reductions, memory_order_relaxed);
    out->heap_bytes = ot__heap_bytes(&p->heap);
    /* a stackful process has its stack from its first run on; a handler
     * borrows one (of the default size) only while in its body */
    if (__atomic_load_n(&p->stack, __ATOMIC_RELAXED))
        out->stack_bytes = (flags & PF_HANDLER) ? ot__rt.stack_size : (size_t)p->stack_req << 10;
    out->n_links = p->links.len;
    uint32_t i = 0;
    uint64_t k, v;
    size_t n = 0;
    while (n < OT_INFO_MAX_LIST && ot__map_next(&p->links, &i, &k, &v))
        out->links[n++] = (ot_pid){k};
    out->n_monitors = p->monitors.len;
    out->n_monitored_by = p->monitored.len;
    if (p->behaviour)
        snprintf(out->behaviour, sizeof out->behaviour, "%s", p->behaviour);
    out->entry = (flags & PF_HANDLER) ? (void *)(uintptr_t)p->hfn : (void *)(uintptr_t)p->fn;
    /* its stack stays while we hold the lock: the exit path needs it first */
    ot__proc_hook_where(p, out->current_function, sizeof out->current_function);
    slot_unlock(p);
    if (flags & PF_HANDLER)
        ot__info_hook_run(p, pid, out); /* a behaviour's counters: takes the lock itself */
    ot__names_copy(p, pid.v, out->name, sizeof out->name);
    return 0;
}

/* the public call passes the gate when made on a plain thread (foreign.c) */
int ot_process_info(ot_pid pid, struct ot_process_info *out) {
    bool gated;
    if (!ot__gate_in(&gated)) {
        return -ENOTCONN;
    }
    int r = process_info_impl(pid, out);
    int e = errno;
    ot__gate_out(gated);
    errno = e;
    return r;
}

static size_t processes_impl(ot_pid *out, size_t cap) {
    size_t n = 0, hwm = ot__ptab_hwm();
    for (size_t i = 0; i < hwm; i++) {
        struct ot_proc *p = ot__ptab_at(i);
        uint64_t v = atomic_load_explicit(&p->pid, memory_order_acquire);
        /* aflags, not flags: a spawn into this slot may be rewriting flags
         * (reset_record) while we look; the foreign bit is in both */
        if (!v || (atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_FOREIGN) ||
            !ot_is_alive((ot_pid){v}))
            continue;
        if (out && n < cap)
            out[n] = (ot_pid){v};
        n++;
    }
    return n;
}

/* the public call passes the gate when made on a plain thread (foreign.c) */
size_t ot_processes(ot_pid *out, size_t cap) {
    bool gated;
    if (!ot__gate_in(&gated)) {
        return 0;
    }
    size_t r = processes_impl(out, cap);
    int e = errno;
    ot__gate_out(gated);
    errno = e;
    return r;
}
