/* Processes' private header: message envelopes, the process record, the
 * process table, and the calls of mbox.c, msg.c, signals.c, proc.c, names.c
 * and alias.c; also the critical-section inlines (crit.c's, but they read the
 * running process's stack bounds) and the slot lock. Includes sched.h. */
#ifndef OT_PROC_H
#define OT_PROC_H

#include "runtime/core.h"
#include "runtime/sched/sched.h"
#include "runtime/alloc/heap.h"
#include "runtime/proc/map.h"

enum env_kind {
    ENV_MSG = 0,
    ENV_SIG_EXIT,      /* exit/2 from another process: payload ot_reason */
    ENV_SIG_LINK_EXIT, /* a linked process died: payload ot_reason */
    ENV_SIG_LINK,      /* link request */
    ENV_SIG_UNLINK,
    ENV_SIG_MONITOR, /* ref = monitor ref */
    ENV_SIG_DEMONITOR,
    ENV_SIG_DOWN, /* monitor fired: ot_down_msg, filtered by the monitors set */
    ENV_REPLY,    /* a reply through an alias (ref): kept only while the alias is active */
    ENV_CALL,     /* a call request that is also a monitor request (ref = the caller's
                     monitor and alias): kept as a message once the monitor is set */
    ENV_MARK,     /* the exit path's own marker (ot__mq_drain_all): never delivered */
};
/* env.pad[0] of an ENV_REPLY: the sender was the monitored process and has
 * dropped the caller's monitor already (no DEMONITOR needed) */
#define ENV_REPLY_DEMONITORED 1
#define ENV_FOREIGN_OWNED 0x80 /* received by a foreign thread: not on a taken list */
/* Where an envelope is in its life. Only a TAKEN one (handed out by a receive)
 * may go to ot_msg_free; anything else is a second free, or a pointer that was
 * never a received message, and freeing it again would put it on a free list
 * twice (two later messages sharing it, a queue turned into a cycle). */
enum env_state {
    ENV_ST_QUEUED = 0x51, /* made by a send, in a mailbox */
    ENV_ST_TAKEN = 0xa7,  /* received, not yet freed */
    ENV_ST_FREE = 0xfe,   /* back in an envelope cache or the allocator */
};

struct env {
    _Atomic(struct env *) next; /* MPSC link, then the private queue's next */
    struct env *prev;           /* private queue / taken list */
    ot_pid to;
    uint8_t kind;
    uint8_t small; /* from a scheduler's envelope cache (ENV_SMALL bytes) */
    uint8_t state; /* enum env_state: ot_msg_free checks it with one compare */
    uint8_t pad[5];
    ot_msg msg;
    /* payload follows */
};
static inline void *env_data(struct env *e) {
    return (char *)(e + 1);
}
static inline struct env *env_of(const ot_msg *m) {
    return container_of((ot_msg *)(uintptr_t)m, struct env, msg);
}
OT_HIDDEN struct env *ot__env_new(ot_pid to, uint32_t tag, ot_pid from, ot_ref ref,
                                  const void *data, size_t size);
OT_HIDDEN void ot__env_free(struct env *e);
OT_HIDDEN void ot__env_cache_fini(struct ot_sched *s);

enum proc_state {
    PS_FREE = 0,
    PS_RUNNING,
    PS_RUNNABLE,
    PS_WAITING,
    PS_EXITING,
};

enum proc_flags {
    PF_HANDLER = 1u << 0,
    PF_TRAP = 1u << 1,
    PF_BOUND = 1u << 2,
    PF_ETS_OWNER = 1u << 3,
    PF_DEAD = 1u << 4,    /* set under the slot lock by the exit path */
    PF_FOREIGN = 1u << 6, /* the mailbox of a foreign thread: woken by futex */
    PF_HEAP_LIMIT = 1u << 9, /* has a max_heap_bytes (its value: ot__ptab_heap_limit) */
    PF_NAMED = 1u << 8,   /* aflags: has a registered name (set by register) */
    PF_CALLS = 1u << 9,   /* aflags: speaks the gen_server call protocol */
    PF_SOCK_OWNER = 1u << 10, /* aflags: owns sockets (runtime/io/sock_own.c) */
    PF_IOWAIT = 1u << 7,  /* aflags: an op is in flight on its scheduler's ring, so
                             wakes must bring it back to that scheduler */
};

struct ot_sched;
struct mq_stub {
    _Atomic(struct env *) next;
};

/* Laid out by heat, one 64-byte line per group, records aligned to lines:
 * a send touches line 0 of the receiver; a receive, a park and a switch touch
 * lines 0-2 of the receiver itself; everything after line 3 is cold (spawn,
 * exit, links, monitors). With thousands of processes in play (a ring of
 * 10,000) each line less per hop is a cache miss less. */
struct ot_proc {
    /* line 0: written by other threads */
    _Atomic uint64_t pid;              /* 0 when the slot is free */
    _Atomic uint32_t state;            /* enum proc_state */
    _Atomic uint32_t aflags;           /* PF_DEAD, PF_ETS_OWNER, PF_NAMED, PF_IOWAIT */
    _Atomic uint8_t lock;              /* slot spinlock: signals needing answers vs exit */
    bool dying;                        /* owner: a signal decided its death: reason is set */
    uint16_t flags;                    /* PF_HANDLER, PF_TRAP, PF_BOUND: owner only */
    _Atomic uint32_t mq_pending;       /* messages pushed on the MPSC queue, not yet drained:
                                          senders add, the drain subtracts (per slot) */
    _Atomic(struct env *) mq_tail;     /* MPSC producers XCHG here */
    _Atomic(struct ot_sched *) sched;  /* the scheduler it runs or is queued on */
    _Atomic uint64_t timeout_seq;      /* set by a firing receive-timeout timer */
    _Atomic(struct ot_proc *) rq_next; /* inbox / overflow list link */
    _Atomic uint64_t enq_ns;           /* when it was queued: thieves read it (relaxed) */

    /* line 1: the owner's queues (the process, or its scheduler while it is
     * not running) */
    struct env *mq_head; /* MPSC consumer end */
    struct mq_stub stub;
    struct env *q_first, *q_last; /* private queue, oldest first */
    struct mq_taken {
        _Atomic(struct env *) next;
        struct env *prev;
    } taken;
    /* received, not yet freed: circular, sentinel here */
    /* counts other threads read (ot_process_info): the owner stores them with
     * relaxed atomics, never read-modify-write */
    uint32_t q_len;       /* messages in the private queue */
    uint32_t taken_n;     /* messages on the taken list */
    uint64_t taken_bytes; /* their payloads plus envelope headers */

    /* line 2: running and parking */
    uint64_t wait_seq;           /* this wait's number, matched against timeout_seq */
    void *sp;                    /* saved context while switched out */
    struct stack *stack;         /* own stack, or a borrowed one while blocked */
    _Atomic uint64_t reductions; /* owner adds (relaxed); process_info reads */
    int32_t budget;
    uint32_t stack_req;      /* requested stack size (KiB), 0 = default */
    struct ot__io_op *io_op; /* the op it is parked on, if any */
    struct ot_timer *tmo;    /* the armed receive timeout, if any */
    union {
        ot_handler_fn hfn;  /* PF_HANDLER: the callback */
        void (*fn)(void *); /* stackful: the entry */
    };

    /* line 3 and on: cooler */
    void *arg;       /* fn's arg, or the handler's state */
    ot_ref mark_ref; /* receive-mark: messages before mark_env are older */
    struct env *mark_env;
    uint32_t tmo_gen;   /* the armed receive timeout's generation */
    uint16_t tmo_owner; /* ... and the id of the scheduler whose wheel holds it */
    bool mark_valid;      /* owner: mark_ref/mark_env are set */
    uint8_t exit_by_signal; /* owner: the exit came from outside: no crash report */
    uint64_t scans;       /* messages inspected by receives (a test statistic) */
    uint32_t next_free;   /* free-list link (slot index + 1) */
    _Atomic uint32_t gen; /* generation of the current or last pid */
    struct ot__res *res;  /* resources to release at exit */
    ot__heap heap;
    struct ot__u64map links;     /* pid -> 1 */
    struct ot__u64map monitors;  /* ref -> pid: monitors this process holds */
    struct ot__u64map monitored; /* ref -> pid: monitors held on this process */
    char *name;                  /* registered name */
    const char *behaviour;
    ot_reason reason; /* exit reason, valid in PS_EXITING */
} __attribute__((aligned(OT_CACHELINE)));
/* six lines: the idle handler's whole footprint (spawn_bytes_per_proc), and
 * what a spawn burst through fresh slots populates per process */
_Static_assert(sizeof(struct ot_proc) == 6 * OT_CACHELINE, "process record grew past 384 B");

static inline uint32_t pid_index(ot_pid p) {
    return (uint32_t)(p.v & 0xffffffffu);
}
static inline uint32_t pid_gen(ot_pid p) {
    return (uint32_t)(p.v >> 32);
}

/* Process table (ptab.c) */
OT_HIDDEN int ot__ptab_init(size_t cap);
OT_HIDDEN void ot__ptab_fini(void);
OT_HIDDEN struct ot_proc *ot__ptab_alloc(void); /* NULL when full */
OT_HIDDEN void ot__ptab_free(struct ot_proc *p);
OT_HIDDEN struct ot_proc *ot__ptab_slot(ot_pid pid); /* NULL if the index is invalid */
OT_HIDDEN struct ot_proc *ot__ptab_live(ot_pid pid); /* NULL unless alive now */
OT_HIDDEN bool ot__pid_never_issued(ot_pid pid);
OT_HIDDEN size_t ot__ptab_cap(void);
OT_HIDDEN struct ot_proc *ot__ptab_at(size_t i);
OT_HIDDEN size_t ot__ptab_hwm(void);
OT_HIDDEN size_t ot__ptab_live_count(void);
/* The slot's heap limit (bytes), beside the table: read only under PF_HEAP_LIMIT */
OT_HIDDEN size_t *ot__ptab_heap_limit(struct ot_proc *p);

/* mbox.c */
OT_HIDDEN void ot__mq_push(struct ot_proc *p, struct env *e);
/* The exit path's drain (after PF_DEAD): everything pushed before it, also
 * behind a push still half done, is drained before it returns */
OT_HIDDEN void ot__mq_drain_all(struct ot_proc *p);
/* Test hook: called by every MPSC push between its exchange and its link
 * store, i.e. with the push half done (NULL: none) */
extern void (*_Atomic ot__mq_push_pause)(void) OT_HIDDEN;
OT_HIDDEN void ot__mq_free_all(struct ot_proc *p);
OT_HIDDEN void ot__q_remove(struct ot_proc *p, struct env *e);
OT_HIDDEN struct env *ot__q_take_first(struct ot_proc *p);
OT_HIDDEN void ot__taken_add(struct ot_proc *p, struct env *e); /* received, not yet freed */
OT_HIDDEN bool ot__mq_maybe_nonempty(struct ot_proc *p);
OT_HIDDEN int ot__deliver(ot_pid to, struct env *e); /* push + wake; frees e if dead */

/* signals.c */
OT_HIDDEN bool ot__handle_signal(struct ot_proc *p, struct env *e); /* true: keep as message */
OT_HIDDEN bool ot__send_signal(ot_pid to, int kind, ot_pid from, ot_ref ref, const void *d,
                               size_t n); /* false: the target was dead (and was answered) */
OT_HIDDEN void ot__exit_links_monitors(struct ot_proc *p);
OT_HIDDEN void ot__answer_dead_signal(ot_pid dead, struct env *e);
OT_HIDDEN void ot__send_down(ot_pid to, ot_ref ref, ot_pid dead, ot_reason r);
OT_HIDDEN void ot__exit_kill(ot_pid p); /* exit(P, kill) past the gate: ot_stop's */
OT_HIDDEN void ot__check_signals(struct ot_proc *p); /* may not return (death) */
/* Writes to p's own link/monitor maps, under p's slot lock (readers: process_info) */
OT_HIDDEN int ot__pmap_put(struct ot_proc *p, struct ot__u64map *m, uint64_t k, uint64_t v);
OT_HIDDEN bool ot__pmap_del(struct ot_proc *p, struct ot__u64map *m, uint64_t k, uint64_t *v);

/* proc.c */
OT_HIDDEN void ot__proc_kill_pending(struct ot_proc *p, ot_reason r, bool by_signal);
OT_HIDDEN _Noreturn void ot__exit_current(ot_reason r, bool by_signal);
OT_HIDDEN void ot__spend(struct ot_proc *p, int n);
/* p (the caller) has PF_HEAP_LIMIT: ends it with OT_HEAP_LIMIT if its heap and
 * unfreed messages pass the limit (at once outside critical sections, else
 * at its next check for signals) */
OT_HIDDEN void ot__heap_limit_check(struct ot_proc *p);

/* names.c */
OT_HIDDEN void ot__names_release(struct ot_proc *p);
/* p's registered name into buf ("" if none, or if the slot is no longer pid's) */
OT_HIDDEN void ot__names_copy(struct ot_proc *p, uint64_t pid, char *buf, size_t len);
OT_HIDDEN void ot__names_fini(void);

/* alias.c */
OT_HIDDEN void ot__info_hook_run(struct ot_proc *p, ot_pid pid, struct ot_process_info *out);

/* hooks: called by proc, implemented by debug (runtime/debug/log.c, dump.c).
 * The exit path reports a crash, and ot_process_info names where a process
 * is; both read the records above, so debug sits above proc. */
OT_HIDDEN void ot__proc_hook_crash_report(struct ot_proc *p);
/* Fills buf with where p is (ot_process_info's current_function). */
OT_HIDDEN void ot__proc_hook_where(struct ot_proc *p, char *buf, size_t len);

static inline void ot__crit_enter_s(struct ot_sched *s) {
    if (!s)
        return; /* a foreign thread: none of its faults is contained anyway */
    if (s->in_process && !s->crit && s->current && s->current->stack &&
        unlikely((uintptr_t)__builtin_frame_address(0) - (uintptr_t)s->current->stack->lo <
                 OT_CRIT_STACK))
        ot__crit_overflow(s);
    s->crit++;
    __asm__ volatile("" ::: "memory"); /* the section's stores come after the count */
}
static inline void ot__crit_exit_s(struct ot_sched *s) {
    if (!s)
        return;
    __asm__ volatile("" ::: "memory");
    s->crit--;
}

/* A critical section (crit.c): a fault while it is held is not contained. */
OT_HIDDEN void ot__slot_lock_wait(struct ot_proc *p);
static inline void slot_lock(struct ot_proc *p) {
    ot__crit_enter_s(ot__sched_get());
    /* pairs with the release in slot_unlock */
    if (unlikely(atomic_exchange_explicit(&p->lock, 1, memory_order_acquire)))
        ot__slot_lock_wait(p);
}
static inline void slot_unlock(struct ot_proc *p) {
    atomic_store_explicit(&p->lock, 0, memory_order_release);
    ot__crit_exit_s(ot__sched_get());
}

/* The runtime's own mutexes, as critical sections: a fault while one is held
 * is not contained. Never held across a context switch. */
static inline void ot__lock(pthread_mutex_t *m) {
    ot__crit_enter_s(ot__sched_get());
    pthread_mutex_lock(m);
}
static inline void ot__unlock(pthread_mutex_t *m) {
    pthread_mutex_unlock(m);
    ot__crit_exit_s(ot__sched_get());
}

#endif
