/* Mailboxes (ARCHITECTURE 5): each slot's intrusive MPSC queue (Vyukov's,
 * with the stub inside the slot) takes envelopes from any thread with one
 * exchange; only the owner drains it, into a private doubly-linked queue in
 * arrival order, where selective receive scans and removes from the middle.
 * Signals (exit, link, monitor...) travel in the same queue so that they stay
 * ordered with messages from the same sender, and are acted on while
 * draining. Received messages sit on a "taken" list until ot_msg_free or the
 * process's exit. Envelopes with small payloads come from a free list of the
 * scheduler thread that makes them (bounded, and refilled by the envelopes its
 * processes free), so a local send+receive touches no allocator; others come
 * from jemalloc's thread cache on the sending thread and are freed by the
 * receiver. The size class is kept in the envelope itself. A message to a
 * parked receiver skips the MPSC queue: the sender that wins the receiver's
 * wake owns its next run and appends to its private queue directly (see
 * ot__deliver for why per-sender order holds). */
#include "runtime/proc/proc.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define ENV_SMALL 128 /* bytes with the header: payloads up to 80 bytes */
#define ENV_CACHE_MAX 4096

static inline struct env *env_alloc(size_t size) {
    struct ot_sched *s = ot__sched_get();
    if (likely(s && sizeof(struct env) + size <= ENV_SMALL)) {
        struct env *e = s->env_cache;
        if (e) {
            s->env_cache = e->prev;
            s->env_cache_len--;
        } else if (!(e = malloc(ENV_SMALL))) {
            return NULL;
        }
        e->small = 1;
        return e;
    }
    struct env *e = malloc(sizeof(*e) + size);
    if (e)
        e->small = 0;
    return e;
}

void ot__env_free(struct env *e) {
    struct ot_sched *s;
    e->state = ENV_ST_FREE;
    if (e->small && (s = ot__sched_get()) && s->env_cache_len < ENV_CACHE_MAX) {
        e->prev = s->env_cache;
        s->env_cache = e;
        s->env_cache_len++;
        return;
    }
    free(e);
}

void ot__env_cache_fini(struct ot_sched *s) {
    while (s->env_cache) {
        struct env *e = s->env_cache;
        s->env_cache = e->prev;
        free(e);
    }
    s->env_cache_len = 0;
}

struct env *ot__env_new(ot_pid to, uint32_t tag, ot_pid from, ot_ref ref, const void *data,
                        size_t size) {
    struct env *e = env_alloc(size);
    if (unlikely(!e))
        return NULL;
    atomic_store_explicit(&e->next, NULL, memory_order_relaxed);
    e->prev = NULL;
    e->to = to;
    e->kind = ENV_MSG;
    e->state = ENV_ST_QUEUED;
    e->msg.tag = tag;
    e->msg.size = (uint32_t)size;
    e->msg.from = from;
    e->msg.ref = ref;
    if (size && data) /* data NULL: the caller fills the payload */
        memcpy(env_data(e), data, size);
    return e;
}

void (*_Atomic ot__mq_push_pause)(void); /* test hook, see proc.h */

void ot__mq_push(struct ot_proc *p, struct env *e) {
    atomic_store_explicit(&e->next, NULL, memory_order_relaxed);
    /* seq_cst: orders e's contents before the link store a consumer acquires,
     * and is the producer's half of the Dekker pair with a parking receiver
     * (its seq_cst store of PS_WAITING, then its seq_cst load of mq_tail in
     * ot__mq_maybe_nonempty): see ot__deliver */
    struct env *prev = atomic_exchange_explicit(&p->mq_tail, e, memory_order_seq_cst);
    void (*pause)(void) = atomic_load_explicit(&ot__mq_push_pause, memory_order_relaxed);
    if (unlikely(pause != NULL))
        pause(); /* a producer preempted between its two steps, on demand */
    /* release pairs with the acquire load of ->next in mq_pop */
    atomic_store_explicit(&prev->next, e, memory_order_release);
}

/* Pops the oldest envelope, or NULL when empty or when a push is half done
 * (the pusher will wake us: see ot__deliver). */
static struct env *mq_pop(struct ot_proc *p) {
    struct env *stub = (struct env *)&p->stub;
    struct env *head = p->mq_head;
    struct env *next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (head == stub) {
        if (!next)
            return NULL;
        p->mq_head = next;
        head = next;
        next = atomic_load_explicit(&head->next, memory_order_acquire);
    }
    if (next) {
        p->mq_head = next;
        return head;
    }
    if (atomic_load_explicit(&p->mq_tail, memory_order_acquire) != head)
        return NULL;
    ot__mq_push(p, stub);
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next) {
        p->mq_head = next;
        return head;
    }
    return NULL;
}

bool ot__mq_maybe_nonempty(struct ot_proc *p) {
    /* seq_cst pairs with the fence in ot__deliver (Dekker: state vs queue) */
    return atomic_load_explicit(&p->mq_tail, memory_order_seq_cst) != p->mq_head ||
           atomic_load_explicit(&p->mq_head->next, memory_order_seq_cst) != NULL;
}

static inline struct env *qnext(struct env *e) {
    return atomic_load_explicit(&e->next, memory_order_relaxed);
}

static void q_append(struct ot_proc *p, struct env *e) {
    atomic_store_explicit(&e->next, NULL, memory_order_relaxed);
    e->prev = p->q_last;
    if (p->q_last)
        atomic_store_explicit(&p->q_last->next, e, memory_order_relaxed);
    else
        p->q_first = e;
    p->q_last = e;
    __atomic_store_n(&p->q_len, p->q_len + 1, __ATOMIC_RELAXED); /* read by process_info */
}

void ot__q_remove(struct ot_proc *p, struct env *e) {
    struct env *n = qnext(e);
    if (e->prev)
        atomic_store_explicit(&e->prev->next, n, memory_order_relaxed);
    else
        p->q_first = n;
    if (n)
        n->prev = e->prev;
    else
        p->q_last = e->prev;
    if (p->mark_env == e)
        p->mark_env = e->prev;
    __atomic_store_n(&p->q_len, p->q_len - 1, __ATOMIC_RELAXED);
}

struct env *ot__q_take_first(struct ot_proc *p) {
    struct env *e = p->q_first;
    if (e)
        ot__q_remove(p, e);
    return e;
}

/* Drains the MPSC queue into the private queue; with a marker, stops once it
 * comes out (true), or when the queue is empty or a push is half done. */
static bool drain(struct ot_proc *p, const struct env *mark) {
    struct env *e;
    uint64_t me = atomic_load_explicit(&p->pid, memory_order_relaxed);
    uint32_t msgs = 0; /* messages taken off the MPSC queue: mq_pending counted them */
    bool seen = false;
    while ((e = mq_pop(p))) {
        if (unlikely(e == mark)) {
            seen = true;
            break;
        }
        msgs += e->kind == ENV_MSG;
        if (unlikely(e->to.v != me)) { /* addressed to an earlier occupant of the slot */
            if (e->kind != ENV_MSG)
                ot__answer_dead_signal(e->to, e);
            else
                ot__env_free(e);
            continue;
        }
        if (e->kind == ENV_MSG || ot__handle_signal(p, e))
            q_append(p, e);
    }
    /* once per drain, after the messages are on the private queue: a reader
     * may count one twice for a moment, never miss it */
    if (msgs)
        atomic_fetch_sub_explicit(&p->mq_pending, msgs, memory_order_relaxed);
    return seen;
}

void ot__sched_hook_mq_drain(struct ot_proc *p) {
    (void)drain(p, NULL);
}

void ot__mq_drain_all(struct ot_proc *p) {
    /* Everything that must be answered (link and monitor requests) was pushed
     * whole, under the slot lock, before the exit path set PF_DEAD under it,
     * so it lies ahead of a marker pushed now. A push still half done ahead
     * of it (a sender between its exchange and its link store) hides the rest
     * from mq_pop: drain until the marker itself comes out, waiting for that
     * sender's store, which is two instructions away unless its thread was
     * preempted between them. The marker lives on this stack, and is out of
     * the queue (mq_pop never leaves the node it returns as the tail) before
     * this returns. */
    struct env mark;
    memset(&mark, 0, sizeof mark);
    mark.kind = ENV_MARK;
    ot__mq_push(p, &mark);
    for (unsigned spins = 0; !drain(p, &mark); spins++) {
        if (spins < 64)
            __builtin_ia32_pause();
        else
            sched_yield();
    }
    ot__sched_hook_mq_drain(p); /* and whatever came after it */
}

/* A message on its way to the MPSC queue: counted first, so that a drain
 * that takes it finds it counted (mq_pending never goes below zero). */
static inline void mq_push_msg(struct ot_proc *p, struct env *e) {
    atomic_fetch_add_explicit(&p->mq_pending, 1, memory_order_relaxed);
    ot__mq_push(p, e);
}

void ot__mq_free_all(struct ot_proc *p) {
    struct env *e;
    while ((e = ot__q_take_first(p)))
        ot__env_free(e);
    struct env *sent = (struct env *)&p->taken;
    for (e = atomic_load_explicit(&p->taken.next, memory_order_relaxed); e && e != sent;) {
        struct env *n = qnext(e);
        ot__env_free(e);
        e = n;
    }
    atomic_store_explicit(&p->taken.next, sent, memory_order_relaxed);
    p->taken.prev = sent;
    __atomic_store_n(&p->taken_n, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->taken_bytes, 0, __ATOMIC_RELAXED);
    p->mark_env = NULL;
    p->mark_valid = false;
}

int ot__deliver(ot_pid to, struct env *e) {
    struct ot_proc *p = ot__ptab_slot(to);
    if (unlikely(!p)) {
        ot__env_free(e);
        return ot__pid_never_issued(to) ? -ESRCH : 0; /* an earlier run's pid is dead */
    }
    /* acquire pairs with the release store of pid at spawn */
    if (atomic_load_explicit(&p->pid, memory_order_acquire) != to.v ||
        (atomic_load_explicit(&p->aflags, memory_order_acquire) & PF_DEAD)) {
        ot__env_free(e); /* send/2 to a dead process: dropped, and that is fine */
        return ot__pid_never_issued(to) ? -ESRCH : 0;
    }
    if (e->kind == ENV_MSG &&
        atomic_load_explicit(&p->state, memory_order_relaxed) == PS_WAITING) {
        /* A parked receiver: whoever wins its wake owns its next run, so the
         * message can go straight onto its private queue, skipping the MPSC
         * exchange and the consumer's re-push of the stub, but only while
         * the MPSC is empty. WAITING is published before the receiver looks
         * at its queue one last time (park_from_sched), so a receiver can be
         * WAITING with an earlier push of ours in the MPSC, seen and about
         * to take it back; if this message went to the private queue, the
         * drain would put that earlier one behind it (stress_messages caught a
         * sender's messages out of order). Owning the next run, we may read the
         * consumer's head: while anything is in the MPSC, this message goes
         * behind it. */
        uint32_t st = PS_WAITING;
        if (atomic_compare_exchange_strong_explicit(&p->state, &st, PS_RUNNABLE,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            if (likely(atomic_load_explicit(&p->pid, memory_order_acquire) == to.v &&
                       !(p->flags & PF_FOREIGN))) {
                if (likely(!ot__mq_maybe_nonempty(p)))
                    q_append(p, e);
                else
                    mq_push_msg(p, e);
                ot__make_runnable(p, true);
                return 0;
            }
            /* The slot changed hands since the check above (a spurious wake
             * is harmless), or a foreign thread waits on its futex: the wake
             * we won goes out, and the envelope takes the MPSC path below,
             * whose check after the push catches a foreign thread that this
             * wake found empty-handed and that parked again. */
            ot__wake_won(p);
        }
    }
    if (e->kind == ENV_MSG)
        mq_push_msg(p, e);
    else
        ot__mq_push(p, e);
    /* The push's seq_cst exchange of mq_tail and this seq_cst load pair with
     * the receiver's seq_cst store of PS_WAITING and its seq_cst load of
     * mq_tail (park_from_sched): in the single order of seq_cst operations one
     * of us sees the other, so no wakeup is lost, and no fence is needed. */
    if (atomic_load_explicit(&p->state, memory_order_seq_cst) == PS_WAITING)
        ot__wake(p);
    return 0;
}
