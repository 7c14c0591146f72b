/* What runtime/otp's calls need from the core (ext.h): replies through a
 * caller's alias, aliases for foreign threads, the mark of a process that
 * answers calls, and the process_info hook for a gen_server's counters.
 * An alias is a ref in the caller's monitors table; only the caller touches
 * that table (signals.c keeps or drops an ENV_REPLY against it while the
 * caller drains), so an alias needs no lock. A foreign thread's aliases are
 * entries with no target, in its slot's table, which only it drains. */
#include "runtime/proc/proc.h"

#include <string.h>

extern ot_pid ot__foreign_pid(void);

static ot_handler_fn info_hfn;
static ot__info_hook_fn info_fn;

int ot__reply_send(ot_pid to, uint32_t tag, ot_ref alias, const void *d, size_t n) {
    if (!atomic_load_explicit(&ot__rt.running, memory_order_acquire))
        return -ENOTCONN;
    if (!ot__ptab_live(to))
        return -ESRCH;
    struct ot_proc *me = cur_proc();
    ot_pid from =
        me ? (ot_pid){atomic_load_explicit(&me->pid, memory_order_relaxed)} : ot__foreign_pid();
    struct env *e = ot__env_new(to, tag, from, alias, d, n);
    if (!e)
        return -ENOMEM;
    e->kind = ENV_REPLY;
    e->pad[0] = 0;
    /* the server replying itself ends the caller's monitor on its side now,
     * which spares the caller a DEMONITOR that would wake it for nothing */
    uint64_t mon;
    if (me && ot__map_get(&me->monitored, alias.v, &mon) && mon == to.v) {
        ot__pmap_del(me, &me->monitored, alias.v, NULL);
        e->pad[0] = ENV_REPLY_DEMONITORED;
    }
    ot__deliver(to, e);
    if (me)
        ot__spend(me, 1);
    return 0;
}

static struct ot_proc *foreign_slot_of_caller(void) {
    if (cur_proc())
        return NULL;
    ot_pid me = ot__foreign_pid();
    return me.v ? ot__ptab_slot(me) : NULL;
}

ot_ref ot__alias_foreign(void) {
    struct ot_proc *p = foreign_slot_of_caller();
    if (!p) {
        errno = EPERM;
        return OT_NOREF;
    }
    ot_ref r = ot_make_ref();
    if (ot__pmap_put(p, &p->monitors, r.v, 0) < 0) {
        errno = ENOMEM;
        return OT_NOREF;
    }
    return r;
}

void ot__unalias_foreign(ot_ref r) {
    struct ot_proc *p = foreign_slot_of_caller();
    if (p)
        ot__pmap_del(p, &p->monitors, r.v, NULL);
}

void ot__proc_accept_calls(void) {
    struct ot_proc *p = cur_proc();
    if (p)
        atomic_fetch_or_explicit(&p->aflags, PF_CALLS, memory_order_relaxed);
}

int ot__proc_calls_ok(ot_pid pid) {
    if (!atomic_load_explicit(&ot__rt.running, memory_order_acquire))
        return -ENOTCONN;
    struct ot_proc *p = ot__ptab_live(pid);
    if (!p)
        return -ESRCH;
    /* relaxed: the mark is set by the process in its init, before it answers
     * anyone; a caller that races with that sees 0 and is told -ENOTSUP only
     * if it called a pid it could not have learned from a finished start */
    return (atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_CALLS) != 0;
}

size_t ot__self_queue_len(void) {
    struct ot_proc *p = cur_proc();
    if (!p)
        return 0;
    if (ot__mq_maybe_nonempty(p))
        ot__sched_hook_mq_drain(p);
    return p->q_len;
}

void ot__proc_shrink(void) {
    struct ot_proc *p = cur_proc();
    if (!p)
        return;
    if (!p->links.len)
        ot__map_free(&p->links);
    if (!p->monitors.len)
        ot__map_free(&p->monitors);
    if (!p->monitored.len)
        ot__map_free(&p->monitored);
}

void ot__set_info_hook(ot_handler_fn hfn, ot__info_hook_fn fn) {
    info_hfn = hfn;
    info_fn = fn;
}

/* Under the slot lock, with the process not yet marked dead: its exit sets
 * PF_DEAD under that lock before it releases resources (where a gen_server's
 * record is freed), so the state stays valid while fn reads it. */
void ot__info_hook_run(struct ot_proc *p, ot_pid pid, struct ot_process_info *out) {
    if (!info_fn)
        return;
    slot_lock(p);
    if (atomic_load_explicit(&p->pid, memory_order_relaxed) == pid.v &&
        !(atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_DEAD) && p->hfn == info_hfn) {
        /* relaxed pairs with the owner's store in ot__handler_set_state */
        void *st = __atomic_load_n(&p->arg, __ATOMIC_RELAXED);
        info_fn(st, out);
    }
    slot_unlock(p);
}

int ot__send2(ot_pid to, uint32_t tag, ot_ref ref, const void *a, size_t an, const void *b,
              size_t bn) {
    if (an + bn > OT_MSG_MAX)
        return -EMSGSIZE;
    if ((an && !a) || (bn && !b))
        return -EINVAL;
    if (!atomic_load_explicit(&ot__rt.running, memory_order_acquire))
        return -ENOTCONN;
    if (to.v == 0)
        return -ESRCH;
    struct ot_proc *me = cur_proc();
    ot_pid from =
        me ? (ot_pid){atomic_load_explicit(&me->pid, memory_order_relaxed)} : ot__foreign_pid();
    struct env *e = ot__env_new(to, tag, from, ref, NULL, an + bn);
    if (!e)
        return -ENOMEM;
    if (an)
        memcpy(env_data(e), a, an);
    if (bn)
        memcpy((char *)env_data(e) + an, b, bn);
    int rc = ot__deliver(to, e);
    if (me)
        ot__spend(me, 1);
    return rc;
}

void ot__handler_set_state(void *state) {
    struct ot_proc *p = cur_proc();
    if (p && (p->flags & PF_HANDLER))
        __atomic_store_n(&p->arg, state, __ATOMIC_RELAXED); /* ot__info_hook_run reads it */
}

ot_ref ot__call_send(ot_pid to, uint32_t tag, const void *a, size_t an, const void *b, size_t bn) {
    struct ot_proc *me = cur_proc();
    if (!me) {
        errno = EPERM;
        return OT_NOREF;
    }
    if (an + bn > OT_MSG_MAX || to.v == 0) {
        errno = an + bn > OT_MSG_MAX ? EMSGSIZE : ESRCH;
        return OT_NOREF;
    }
    ot_ref r = ot_make_ref(); /* also the receive mark: the wait is O(1) */
    ot_pid self = {atomic_load_explicit(&me->pid, memory_order_relaxed)};
    if (ot__pmap_put(me, &me->monitors, r.v, to.v) < 0) {
        errno = ENOMEM;
        return OT_NOREF;
    }
    struct env *e = ot__env_new(to, tag, self, r, NULL, an + bn);
    if (!e) {
        ot__pmap_del(me, &me->monitors, r.v, NULL);
        errno = ENOMEM;
        return OT_NOREF;
    }
    if (an)
        memcpy(env_data(e), a, an);
    if (bn)
        memcpy((char *)env_data(e) + an, b, bn);
    e->kind = ENV_CALL;
    /* as a monitor request: pushed under the slot lock while the target is
     * alive, or answered with DOWN noproc (signals.c, ot__send_signal) */
    struct ot_proc *p = ot__ptab_slot(to);
    bool alive = false;
    if (p) {
        slot_lock(p);
        alive = atomic_load_explicit(&p->pid, memory_order_relaxed) == to.v &&
                !(atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_DEAD);
        if (alive)
            ot__mq_push(p, e);
        slot_unlock(p);
    }
    if (!alive) {
        ot__env_free(e);
        ot__send_down(self, r, to, OT_REASON(OT_NOPROC));
    } else {
        /* seq_cst fence: the Dekker pair with park_from_sched, as in ot__deliver */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&p->state, memory_order_relaxed) == PS_WAITING)
            ot__wake(p);
    }
    ot__spend(me, 1);
    return r;
}
