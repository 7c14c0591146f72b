/* Sending and receiving (ARCHITECTURE 5; Erlang's send/2 and receive). A
 * send copies the payload into an envelope and is fire-and-forget: 0 even
 * when the target is dead. A receive drains the MPSC queue into the private
 * queue (acting on signals), scans from its save position, and parks until
 * something new arrives or its timer fires. The receive mark: ot_make_ref in a
 * process records the end of the private queue, and a receive for that ref
 * starts after it, so a call's reply is found in O(1) however much unrelated
 * mail waits (BEAM's receive-mark optimisation). Foreign threads get a
 * mailbox of their own on first use (foreign.c). */
#include "runtime/proc/proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern ot_msg *ot__foreign_receive(bool (*match)(const ot_msg *, void *), void *arg,
                                   int64_t timeout_ms);
extern ot_pid ot__foreign_pid(void);

void *ot_msg_data(const ot_msg *m) {
    return m ? env_data(env_of(m)) : NULL;
}

/* A send from a plain thread: inside the gate (foreign.c), so that ot_stop
 * cannot free the table under it. */
static __attribute__((noinline)) int send_foreign(ot_pid to, uint32_t tag, ot_ref ref,
                                                  const void *data, size_t size) {
    if (!ot__gate_enter())
        return -ENOTCONN;
    int rc = -ENOMEM;
    struct env *e = ot__env_new(to, tag, ot__foreign_pid(), ref, data, size);
    if (e)
        rc = ot__deliver(to, e);
    ot__gate_leave();
    return rc;
}

static int send_common(ot_pid to, uint32_t tag, ot_ref ref, const void *data, size_t size) {
    if (unlikely(size > OT_MSG_MAX))
        return -EMSGSIZE;
    if (unlikely(size && !data))
        return -EINVAL;
    if (unlikely(!atomic_load_explicit(&ot__rt.running, memory_order_acquire)))
        return -ENOTCONN;
    if (unlikely(to.v == 0))
        return -ESRCH;
    struct ot_sched *s = ot__sched_get();
    if (unlikely(!s))
        return send_foreign(to, tag, ref, data, size);
    struct ot_proc *me = s->in_process ? s->current : NULL; /* cur_proc(), s in hand */
    ot_pid from = me ? (ot_pid){atomic_load_explicit(&me->pid, memory_order_relaxed)} : OT_NOPID;
    struct env *e = ot__env_new(to, tag, from, ref, data, size);
    if (unlikely(!e))
        return -ENOMEM;
    int rc = ot__deliver(to, e);
    if (me)
        ot__spend(me, 1);
    return rc;
}

int ot_send(ot_pid to, uint32_t tag, const void *data, size_t size) {
    return send_common(to, tag, OT_NOREF, data, size);
}

int ot_send_ref(ot_pid to, uint32_t tag, ot_ref ref, const void *data, size_t size) {
    return send_common(to, tag, ref, data, size);
}

static inline uint64_t env_bytes(const struct env *e) {
    return sizeof *e + e->msg.size;
}

void ot__taken_add(struct ot_proc *p, struct env *e) {
    struct env *sent = (struct env *)&p->taken;
    struct env *first = atomic_load_explicit(&p->taken.next, memory_order_relaxed);
    atomic_store_explicit(&e->next, first, memory_order_relaxed);
    e->prev = sent;
    first->prev = e;
    atomic_store_explicit(&p->taken.next, e, memory_order_relaxed);
    e->state = ENV_ST_TAKEN;
    /* relaxed stores: ot_process_info reads the counts from other threads */
    __atomic_store_n(&p->taken_n, p->taken_n + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&p->taken_bytes, p->taken_bytes + env_bytes(e), __ATOMIC_RELAXED);
}

/* What a misused ot_msg_free does: abort with a report in debug and sanitizer
 * builds, where the bug should stop the program at its source; in release
 * builds (NDEBUG) the call is refused, so that the envelope is never freed a
 * second time, and counted. Tests switch the abort off to check the refusal. */
#if defined(NDEBUG) && !defined(OT_SANITIZE)
int ot__msg_free_abort = 0;
#else
int ot__msg_free_abort = 1;
#endif
static _Atomic uint64_t bad_frees;

uint64_t ot__msg_bad_frees(void) {
    return atomic_load_explicit(&bad_frees, memory_order_relaxed);
}

static void __attribute__((noinline, cold)) bad_free(const ot_msg *m, const struct env *e) {
    atomic_fetch_add_explicit(&bad_frees, 1, memory_order_relaxed);
    if (!ot__msg_free_abort)
        return;
    const char *why = e->state == ENV_ST_FREE     ? "it was already freed (double ot_msg_free)"
                      : e->state == ENV_ST_QUEUED ? "it was never received"
                      : e->state == ENV_ST_TAKEN  ? "another process received it"
                                                  : "it is not a message";
    char line[200];
    int n = snprintf(line, sizeof line,
                     "otter: ot_msg_free(%p): refused, %s; aborting (issue 10 item 16)\n",
                     (const void *)m, why);
    if (n > 0)
        (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    abort();
}

void ot_msg_free(ot_msg *m) {
    if (!m)
        return;
    struct env *e = env_of(m);
    /* one compare guards the free lists: only a message a receive handed out,
     * and not yet freed, goes back (in release builds a second free of an
     * envelope already reused by another process's mail is not caught: its
     * state is TAKEN again, and the owner check below is all that stands) */
    if (unlikely(e->state != ENV_ST_TAKEN)) {
        bad_free(m, e);
        return;
    }
    if (!(e->kind & ENV_FOREIGN_OWNED)) {
        struct ot_proc *p = cur_proc();
        if (unlikely(!p || e->to.v != atomic_load_explicit(&p->pid, memory_order_relaxed))) {
            bad_free(m, e);
            return;
        }
        struct env *n = atomic_load_explicit(&e->next, memory_order_relaxed);
        struct env *pv = e->prev;
        atomic_store_explicit(&pv->next, n, memory_order_relaxed);
        n->prev = pv;
        __atomic_store_n(&p->taken_n, p->taken_n - 1, __ATOMIC_RELAXED);
        __atomic_store_n(&p->taken_bytes, p->taken_bytes - env_bytes(e), __ATOMIC_RELAXED);
    }
    ot__env_free(e);
}

typedef bool (*match_fn)(const struct env *e, const void *arg);

static ot_msg *receive(struct ot_proc *p, bool (*umatch)(const ot_msg *, void *), void *uarg,
                       uint32_t tag, bool by_tag, ot_ref ref, bool by_ref, int64_t timeout_ms) {
    struct env *cursor = NULL; /* scan after this one; NULL: from the first */
    bool started = false;
    if (by_ref && p->mark_valid && p->mark_ref.v == ref.v) {
        cursor = p->mark_env;
        started = cursor != NULL;
    }
    uint64_t seq = ++p->wait_seq;
    bool armed = false;
    ot__spend(p, 1);
    for (;;) {
        if (ot__mq_maybe_nonempty(p))
            ot__sched_hook_mq_drain(p);
        if (unlikely(p->dying))
            ot__exit_current(p->reason, p->exit_by_signal);
        struct env *e =
            started ? atomic_load_explicit(&cursor->next, memory_order_relaxed) : p->q_first;
        for (; e; e = atomic_load_explicit(&e->next, memory_order_relaxed)) {
            p->scans++;
            bool ok = by_ref   ? e->msg.ref.v == ref.v
                      : by_tag ? e->msg.tag == tag
                      : umatch ? umatch(&e->msg, uarg)
                               : true;
            if (ok) {
                ot__q_remove(p, e);
                if (by_ref && p->mark_valid && p->mark_ref.v == ref.v)
                    p->mark_valid = false;
                if (armed)
                    ot__timer_cancel_wake(p);
                ot__taken_add(p, e);
                if (unlikely(p->flags & PF_HEAP_LIMIT))
                    ot__heap_limit_check(p); /* received and unfreed counts too */
                return &e->msg;
            }
            cursor = e;
            started = true;
        }
        if (timeout_ms == 0 ||
            (armed && atomic_load_explicit(&p->timeout_seq, memory_order_acquire) == seq)) {
            if (armed) {
                p->tmo = NULL;  /* fired: the owner freed it */
                p->wait_seq++; /* a later park must not see this wait's timeout */
            }
            errno = ETIMEDOUT;
            return NULL;
        }
        if (!armed && timeout_ms > 0) {
            uint64_t at = ot__tick_deadline(timeout_ms);
            if (at == OT_TICK_NEVER) {
                timeout_ms = OT_INFINITY; /* past the clock's range: never */
            } else {
                struct ot_sched *s = ot__sched_get();
                uint64_t gen;
                p->tmo = ot__timer_arm_wake(s, p, at, seq, &gen);
                if (!p->tmo) {
                    errno = ENOMEM;
                    return NULL;
                }
                p->tmo_gen = (uint32_t)gen;
                p->tmo_owner = (uint16_t)s->id;
                armed = true;
            }
        }
        ot__park();
    }
}

/* A receive on a foreign thread: its own mailbox, if the runtime runs. */
static ot_msg *foreign(bool (*match)(const ot_msg *, void *), void *arg, int64_t timeout_ms) {
    if (!ot__sched_get()) {
        if (!ot__gate_enter()) {
            errno = ENOTCONN;
            return NULL;
        }
        ot_msg *m = ot__foreign_receive(match, arg, timeout_ms);
        int e = errno;
        ot__gate_leave();
        errno = e;
        return m;
    }
    /* a scheduler thread outside any process (a hook): no mailbox */
    errno = EPERM;
    return NULL;
}

/* A negative timeout other than OT_INFINITY is refused, as Erlang's receive
 * refuses one (timeout_value); ms past the clock's range means never. */
static inline bool bad_timeout(int64_t ms) {
    if (unlikely(ms < 0 && ms != OT_INFINITY)) {
        errno = EINVAL;
        return true;
    }
    return false;
}

ot_msg *ot_receive(int64_t timeout_ms) {
    if (bad_timeout(timeout_ms))
        return NULL;
    struct ot_proc *p = cur_proc();
    if (!p)
        return foreign(NULL, NULL, timeout_ms);
    return receive(p, NULL, NULL, 0, false, OT_NOREF, false, timeout_ms);
}

ot_msg *ot_receive_match(bool (*match)(const ot_msg *, void *), void *arg, int64_t timeout_ms) {
    if (!match || bad_timeout(timeout_ms)) {
        errno = EINVAL;
        return NULL;
    }
    struct ot_proc *p = cur_proc();
    if (!p)
        return foreign(match, arg, timeout_ms);
    return receive(p, match, arg, 0, false, OT_NOREF, false, timeout_ms);
}

static bool tag_match(const ot_msg *m, void *arg) {
    return m->tag == *(uint32_t *)arg;
}
static bool ref_match(const ot_msg *m, void *arg) {
    return m->ref.v == *(uint64_t *)arg;
}

ot_msg *ot_receive_tag(uint32_t tag, int64_t timeout_ms) {
    if (bad_timeout(timeout_ms))
        return NULL;
    struct ot_proc *p = cur_proc();
    if (!p)
        return foreign(tag_match, &tag, timeout_ms);
    return receive(p, NULL, NULL, tag, true, OT_NOREF, false, timeout_ms);
}

ot_msg *ot_receive_ref(ot_ref ref, int64_t timeout_ms) {
    if (bad_timeout(timeout_ms))
        return NULL;
    struct ot_proc *p = cur_proc();
    if (!p)
        return foreign(ref_match, &ref.v, timeout_ms);
    return receive(p, NULL, NULL, 0, false, ref, true, timeout_ms);
}

ot_ref ot_make_ref(void) {
    /* refs never carry the timer tag bit (timer.c) */
    uint64_t v = atomic_fetch_add_explicit(&ot__rt.ref_counter, 1, memory_order_relaxed) + 1;
    ot_ref r = {v & ~(1ull << 63)};
    struct ot_proc *p = cur_proc();
    if (p) {
        if (ot__mq_maybe_nonempty(p))
            ot__sched_hook_mq_drain(p);
        p->mark_ref = r;
        p->mark_env = p->q_last;
        p->mark_valid = true;
    }
    return r;
}

int ot_sleep(int64_t ms) {
    if (ms < 0 && ms != OT_INFINITY)
        return -EINVAL; /* Process.sleep/1 refuses it too */
    struct ot_proc *p = cur_proc();
    if (!p) {
        /* a plain thread: nanosleep, in steps that a time_t always holds */
        if (ms == OT_INFINITY || ms > 0) {
            int64_t left = ms;
            for (;;) {
                int64_t step = (ms == OT_INFINITY || left > 1000000000) ? 1000000000 : left;
                struct timespec ts = {(time_t)(step / 1000), (long)(step % 1000) * 1000000};
                while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
                }
                if (ms != OT_INFINITY && (left -= step) == 0)
                    break;
            }
        }
        return 0;
    }
    if (ms == 0) {
        ot_yield();
        return 0;
    }
    uint64_t seq = ++p->wait_seq;
    uint64_t at = ms > 0 ? ot__tick_deadline(ms) : OT_TICK_NEVER;
    if (at != OT_TICK_NEVER) {
        struct ot_sched *s = ot__sched_get();
        uint64_t gen;
        p->tmo = ot__timer_arm_wake(s, p, at, seq, &gen);
        if (!p->tmo)
            return -ENOMEM;
        p->tmo_gen = (uint32_t)gen;
        p->tmo_owner = (uint16_t)s->id;
    }
    for (;;) {
        ot__park();
        ot__check_signals(p);
        if (at != OT_TICK_NEVER &&
            atomic_load_explicit(&p->timeout_seq, memory_order_acquire) == seq) {
            p->tmo = NULL;
            p->wait_seq++; /* a later park must not see this wait's timeout */
            return 0;
        }
    }
}
