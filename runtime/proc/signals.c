/* Links, monitors and exit signals, as erlang:exit/2, link/1, unlink/1,
 * monitor/2 and demonitor/2 define them. Signals are envelopes in the
 * target's mailbox, so they stay ordered with messages from the same sender;
 * the target acts on them while draining (mbox.c), on its own thread.
 *
 * Rules kept here (OTP documentation of erlang:exit/2 and link/1):
 * - exit/2 with kill: untrappable, the target dies with killed.
 * - exit/2 with normal: ignored unless the target is the sender itself,
 *   which then exits normal; a trapping target gets {'EXIT', From, normal}.
 * - Any other reason: a trapping target gets {'EXIT', From, Reason}, others
 *   die with Reason.
 * - A linked process's death is the same, except that kill is not special
 *   (it arrives as an ordinary reason), and a signal from a link that was
 *   removed (unlink) is ignored.
 * - A link or monitor request that finds the target dead is answered with
 *   noproc: an exit signal or a DOWN. Monitors deliver exactly one DOWN, and
 *   none after demonitor. */
#include "runtime/proc/proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline ot_pid self_pid(struct ot_proc *p) {
    return (ot_pid){atomic_load_explicit(&p->pid, memory_order_relaxed)};
}

/* ---- a process's own link and monitor maps ------------------------------------
 * Only the owner writes them, but ot_process_info reads them from any thread
 * under the slot lock, so every write is made under that lock; a growth builds
 * the new array outside it and swaps it in, so no allocation happens under a
 * spinlock. After the exit path set PF_DEAD (under the same lock) readers stay
 * away, and the exit path uses the maps without it. */
int ot__pmap_put(struct ot_proc *p, struct ot__u64map *m, uint64_t k, uint64_t v) {
    struct ot__u64map g;
    int grew = ot__map_reserve(m, &g);
    if (grew < 0)
        return grew;
    uint64_t *old = m->kv;
    slot_lock(p);
    *m = g;
    int rc = ot__map_put(m, k, v); /* room was made: cannot fail */
    slot_unlock(p);
    if (grew)
        free(old);
    return rc;
}

bool ot__pmap_del(struct ot_proc *p, struct ot__u64map *m, uint64_t k, uint64_t *v) {
    if (!ot__map_get(m, k, NULL)) /* a read: the owner needs no lock for it */
        return false;
    slot_lock(p);
    bool found = ot__map_del(m, k, v);
    slot_unlock(p);
    return found;
}

static void die(struct ot_proc *p, ot_reason r) {
    if (p->dying)
        return;
    p->dying = true;
    p->reason = r;
    p->exit_by_signal = 1;
}

/* Turns a signal envelope into an {'EXIT', from, reason} message in place. */
static bool as_exit_message(struct env *e) {
    e->kind = ENV_MSG;
    e->msg.tag = OT_TAG_EXIT;
    e->msg.size = sizeof(ot_exit_msg);
    return true;
}

/* A reply through an alias (OTP 24's monitor with {alias, reply_demonitor}):
 * kept only while its ref is one of p's monitors (a foreign thread's aliases
 * are entries there with no target); keeping it ends the alias and the
 * monitor, so a late or second reply, and a DOWN of the server, never land. */
static bool alias_reply(struct ot_proc *p, struct env *e) {
    uint64_t target;
    if (!ot__pmap_del(p, &p->monitors, e->msg.ref.v, &target)) {
        ot__env_free(e);
        return false;
    }
    ot_pid me = self_pid(p);
    if (target == me.v)
        ot__pmap_del(p, &p->monitored, e->msg.ref.v, NULL);
    else if (target && !(e->pad[0] & ENV_REPLY_DEMONITORED))
        ot__send_signal((ot_pid){target}, ENV_SIG_DEMONITOR, me, e->msg.ref, NULL, 0);
    e->kind = ENV_MSG;
    return true;
}

static void send_link_exit(ot_pid to, ot_pid dead, ot_reason r);

/* The reason a link or monitor request is answered with when the target could
 * not record it (its map could not grow): the requester gets its EXIT or DOWN
 * now, as if the target had ended, since it would never get one later. */
static ot_reason enomem_reason(void) {
    ot_reason r = OT_REASON(OT_ERROR);
    snprintf(r.text, sizeof r.text, "enomem");
    return r;
}

static void unrecorded(struct ot_proc *p, struct env *e) {
    if (e->kind == ENV_SIG_LINK)
        send_link_exit(e->msg.from, self_pid(p), enomem_reason());
    else
        ot__send_down(e->msg.from, e->msg.ref, self_pid(p), enomem_reason());
}

bool ot__handle_signal(struct ot_proc *p, struct env *e) {
    ot_pid from = e->msg.from;
    if (e->kind == ENV_REPLY)
        return alias_reply(p, e);
    if (e->kind == ENV_CALL && !(p->flags & PF_FOREIGN)) {
        if (ot__pmap_put(p, &p->monitored, e->msg.ref.v, from.v) < 0) {
            /* the caller's monitor cannot be held: it gets its DOWN now and
             * the call is dropped, as if the server had gone */
            unrecorded(p, e);
            ot__env_free(e);
            return false;
        }
        e->kind = ENV_MSG;
        return true;
    }
    if (unlikely(p->flags & PF_FOREIGN)) {
        /* a foreign thread's mailbox: it is linked to and monitored like a
         * process, and its links and monitors fire when the thread ends
         * (foreign.c), but no exit signal ends a thread: a linked process's
         * death only removes the link, and exit/2 is dropped */
        switch (e->kind) {
        case ENV_SIG_LINK:
        case ENV_SIG_MONITOR:
        case ENV_SIG_UNLINK:
        case ENV_SIG_DEMONITOR:
            break; /* recorded as for a process, below */
        case ENV_SIG_LINK_EXIT:
            ot__pmap_del(p, &p->links, from.v, NULL);
            /* fall through */
        default:
            ot__env_free(e);
            return false;
        }
    }
    switch (e->kind) {
    case ENV_SIG_EXIT: {
        ot_exit_msg *x = env_data(e);
        if (x->reason.kind == OT_KILL) {
            die(p, OT_REASON(OT_KILLED));
        } else if (p->flags & PF_TRAP) {
            return as_exit_message(e);
        } else if (x->reason.kind == OT_NORMAL) {
            if (from.v == self_pid(p).v) {
                die(p, x->reason);
                p->exit_by_signal = 0;
            }
        } else {
            die(p, x->reason);
        }
        break;
    }
    case ENV_SIG_LINK_EXIT: {
        ot_exit_msg *x = env_data(e);
        if (!ot__pmap_del(p, &p->links, from.v, NULL))
            break; /* unlinked meanwhile */
        if (p->flags & PF_TRAP)
            return as_exit_message(e);
        if (x->reason.kind != OT_NORMAL)
            die(p, x->reason);
        break;
    }
    case ENV_SIG_LINK:
        if (ot__pmap_put(p, &p->links, from.v, 1) < 0)
            unrecorded(p, e); /* the requester learns at once: never a silent drop */
        break;
    case ENV_SIG_UNLINK:
        ot__pmap_del(p, &p->links, from.v, NULL);
        break;
    case ENV_SIG_MONITOR:
        if (ot__pmap_put(p, &p->monitored, e->msg.ref.v, from.v) < 0)
            unrecorded(p, e);
        break;
    case ENV_SIG_DEMONITOR:
        ot__pmap_del(p, &p->monitored, e->msg.ref.v, NULL);
        break;
    case ENV_SIG_DOWN:
        if (!ot__pmap_del(p, &p->monitors, e->msg.ref.v, NULL))
            break; /* demonitored: no DOWN after demonitor returned */
        e->kind = ENV_MSG;
        e->msg.tag = OT_TAG_DOWN;
        return true;
    default:
        break;
    }
    ot__env_free(e);
    return false;
}

static struct env *sig_env(ot_pid to, int kind, ot_pid from, ot_ref ref, const void *d, size_t n) {
    struct env *e = ot__env_new(to, 0, from, ref, d, n);
    if (e)
        e->kind = (uint8_t)kind;
    return e;
}

void ot__send_down(ot_pid to, ot_ref ref, ot_pid dead, ot_reason r) {
    ot_down_msg d = {.ref = ref, .pid = dead, .reason = r};
    struct env *e = sig_env(to, ENV_SIG_DOWN, dead, ref, &d, sizeof d);
    if (e)
        ot__deliver(to, e);
}

static void send_link_exit(ot_pid to, ot_pid dead, ot_reason r) {
    ot_exit_msg x = {.pid = dead, .reason = r};
    struct env *e = sig_env(to, ENV_SIG_LINK_EXIT, dead, OT_NOREF, &x, sizeof x);
    if (e)
        ot__deliver(to, e);
}

void ot__answer_dead_signal(ot_pid dead, struct env *e) {
    if (e->kind == ENV_SIG_LINK)
        send_link_exit(e->msg.from, dead, OT_REASON(OT_NOPROC));
    else if (e->kind == ENV_SIG_MONITOR || e->kind == ENV_CALL)
        ot__send_down(e->msg.from, e->msg.ref, dead, OT_REASON(OT_NOPROC));
    ot__env_free(e);
}

bool ot__send_signal(ot_pid to, int kind, ot_pid from, ot_ref ref, const void *d, size_t n) {
    struct env *e = sig_env(to, kind, from, ref, d, n);
    if (!e)
        return false;
    if (kind != ENV_SIG_LINK && kind != ENV_SIG_MONITOR) {
        ot__deliver(to, e);
        return true;
    }
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
        return false;
    }
    /* seq_cst fence: the Dekker pair with park_from_sched, as in ot__deliver */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&p->state, memory_order_relaxed) == PS_WAITING)
        ot__wake(p);
    return true;
}

void ot__exit_links_monitors(struct ot_proc *p) {
    ot_pid me = self_pid(p);
    uint32_t i = 0;
    uint64_t k, v;
    while (ot__map_next(&p->links, &i, &k, &v))
        send_link_exit((ot_pid){k}, me, p->reason);
    i = 0;
    while (ot__map_next(&p->monitored, &i, &k, &v))
        ot__send_down((ot_pid){v}, (ot_ref){k}, me, p->reason);
    i = 0;
    while (ot__map_next(&p->monitors, &i, &k, &v)) {
        if (!v)
            continue; /* a foreign thread's call alias (alias.c): no target */
        struct env *e = sig_env((ot_pid){v}, ENV_SIG_DEMONITOR, me, (ot_ref){k}, NULL, 0);
        if (e)
            ot__deliver((ot_pid){v}, e);
    }
}

/* ---- the public calls ---------------------------------------------------------- */

static int exit_impl(ot_pid to, ot_reason why) {
    if (!atomic_load_explicit(&ot__rt.running, memory_order_acquire))
        return -ENOTCONN;
    if (to.v == 0 || ot__pid_never_issued(to))
        return -ESRCH;
    if (why.kind < OT_NORMAL || why.kind > OT_HEAP_LIMIT)
        return -EINVAL;
    struct ot_proc *me = cur_proc();
    ot_pid from = me ? self_pid(me) : OT_NOPID;
    ot_exit_msg x = {.pid = from, .reason = why};
    struct env *e = sig_env(to, ENV_SIG_EXIT, from, OT_NOREF, &x, sizeof x);
    if (!e)
        return -ENOMEM;
    ot__deliver(to, e);
    if (me && from.v == to.v)
        ot__check_signals(me); /* exit(self(), R) takes effect at once */
    if (me)
        ot__spend(me, 1); /* an exit signal is a send: a loop of them is preemptible */
    return 0;
}

void ot__exit_kill(ot_pid p) {
    (void)exit_impl(p, OT_REASON(OT_KILL));
}

/* the public call passes the gate when made on a plain thread (foreign.c) */
int ot_exit(ot_pid to, ot_reason why) {
    bool gated;
    if (!ot__gate_in(&gated)) {
        return -ENOTCONN;
    }
    int r = exit_impl(to, why);
    int e = errno;
    ot__gate_out(gated);
    errno = e;
    return r;
}

static int link_impl(struct ot_proc *me, ot_pid to);

/* link/1 spends a reduction whatever its outcome, as the docs promise of
 * link and monitor calls: a loop of them (even failing ones) is preemptible
 * and killable */
int ot_link(ot_pid to) {
    struct ot_proc *me = cur_proc();
    if (!me)
        return -EPERM;
    int rc = link_impl(me, to);
    ot__spend(me, 1);
    return rc;
}

static int link_impl(struct ot_proc *me, ot_pid to) {
    if (to.v == 0 || ot__pid_never_issued(to))
        return -ESRCH;
    ot_pid self = self_pid(me);
    if (to.v == self.v || ot__map_get(&me->links, to.v, NULL))
        return 0;
    if (ot__pmap_put(me, &me->links, to.v, 1) < 0)
        return -ENOMEM;
    if (ot__send_signal(to, ENV_SIG_LINK, self, OT_NOREF, NULL, 0))
        return 0;
    /* link/1 to a process that does not exist: a trapping caller gets
     * {'EXIT', Pid, noproc}; otherwise link/1 fails with noproc */
    ot__pmap_del(me, &me->links, to.v, NULL);
    if (me->flags & PF_TRAP) {
        ot_exit_msg x = {.pid = to, .reason = OT_REASON(OT_NOPROC)};
        struct env *e = sig_env(self, ENV_MSG, to, OT_NOREF, &x, sizeof x);
        if (e) {
            e->msg.tag = OT_TAG_EXIT;
            ot__deliver(self, e);
        }
        return 0;
    }
    return -ESRCH;
}

int ot_unlink(ot_pid to) {
    struct ot_proc *me = cur_proc();
    if (!me)
        return -EPERM;
    if (to.v == 0)
        return -ESRCH;
    if (ot__pmap_del(me, &me->links, to.v, NULL))
        ot__send_signal(to, ENV_SIG_UNLINK, self_pid(me), OT_NOREF, NULL, 0);
    ot__spend(me, 1);
    return 0;
}

ot_ref ot_monitor(ot_pid to) {
    struct ot_proc *me = cur_proc();
    if (!me) {
        errno = EPERM;
        return OT_NOREF;
    }
    ot_ref r = ot_make_ref();
    ot_pid self = self_pid(me);
    if (to.v == self.v) {
        /* monitoring oneself is allowed and never fires while alive */
        if (ot__pmap_put(me, &me->monitors, r.v, to.v) < 0) {
            errno = ENOMEM;
            return OT_NOREF;
        }
        if (ot__pmap_put(me, &me->monitored, r.v, self.v) < 0) {
            ot__pmap_del(me, &me->monitors, r.v, NULL);
            errno = ENOMEM;
            return OT_NOREF;
        }
        ot__spend(me, 1);
        return r;
    }
    if (ot__pmap_put(me, &me->monitors, r.v, to.v) < 0) {
        errno = ENOMEM;
        return OT_NOREF;
    }
    if (to.v == 0 || ot__pid_never_issued(to) ||
        !ot__send_signal(to, ENV_SIG_MONITOR, self, r, NULL, 0))
        ot__send_down(self, r, to, OT_REASON(OT_NOPROC)); /* DOWN noproc at once */
    ot__spend(me, 1);
    return r;
}

static bool is_down_for(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_DOWN && m->ref.v == *(uint64_t *)arg;
}

int ot_demonitor(ot_ref r, unsigned flags) {
    struct ot_proc *me = cur_proc();
    if (!me)
        return -EPERM;
    if (flags & ~OT_DEMONITOR_FLUSH)
        return -EINVAL;
    uint64_t target;
    if (ot__pmap_del(me, &me->monitors, r.v, &target)) {
        if (target == atomic_load_explicit(&me->pid, memory_order_relaxed))
            ot__pmap_del(me, &me->monitored, r.v, NULL);
        else
            ot__send_signal((ot_pid){target}, ENV_SIG_DEMONITOR, self_pid(me), r, NULL, 0);
    }
    if (flags & OT_DEMONITOR_FLUSH) {
        ot_msg *m = ot_receive_match(is_down_for, &r.v, 0);
        if (m)
            ot_msg_free(m);
    }
    ot__spend(me, 1);
    return 0;
}

bool ot_trap_exit(bool on) {
    struct ot_proc *me = cur_proc();
    if (!me)
        return false;
    bool old = (me->flags & PF_TRAP) != 0;
    /* a relaxed atomic store: ot_process_info reads the flags from other threads */
    uint16_t f = on ? (uint16_t)(me->flags | PF_TRAP) : (uint16_t)(me->flags & ~PF_TRAP);
    __atomic_store_n(&me->flags, f, __ATOMIC_RELAXED);
    return old;
}
