/* The runtime core's private types: process records, message envelopes,
 * schedulers, timers. One header because these few structs point at each
 * other everywhere in runtime/core; each .c file owns the functions on them.
 *
 * Invariants kept across the core:
 * - A process record lives in its process-table slot for the life of the
 *   runtime (type-stable memory): other threads may read a slot's atomics
 *   at any time; a pid whose generation differs from the slot's is dead.
 * - A slot's mailbox queue is never reinitialised: a late sender may push an
 *   envelope addressed to a dead pid into it; receivers drop envelopes whose
 *   `to` is not their own pid.
 * - Signals that need an answer when the target is dead (link, monitor) are
 *   pushed under the slot's lock while the target is alive; the exit path takes
 *   the same lock to mark the process dead, then drains them.
 * - A process is in at most one run queue, and only a successful CAS of its
 *   state to RUNNABLE puts it there. */
#ifndef OT_CORE_H
#define OT_CORE_H

#include <otter.h>
#include <pthread.h>
#include <stdatomic.h>
#include <liburing.h>
#include <setjmp.h>
#include <sys/mman.h>

/* madvise advice newer than some libc headers: populating (5.14) and guard
 * regions (6.13); each use has a fallback for kernels without them. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#include "runtime/alloc/heap.h"
#include "runtime/sched/ahead.h"
#include "runtime/ext.h"
#include "runtime/proc/map.h"

#define OT_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define OT_CACHELINE 64
#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

struct ot_sched;

/* ---- message envelopes -------------------------------------------------- */

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

/* ---- stacks --------------------------------------------------------------- */

struct stack {
    struct stack *next; /* pool free list */
    char *lo, *hi;      /* usable range; the guard is just below lo */
    size_t size;
    void *tsan_fiber;
    unsigned vg_id;
};

/* ---- processes ------------------------------------------------------------- */

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

/* ---- timers ---------------------------------------------------------------- */

enum { TMR_FREE = 0, TMR_ARMED, TMR_CANCELLED, TMR_FIRED };
enum { TK_SEND = 1, TK_WAKE };

#define TMR_INLINE 16 /* send_after payloads up to this size live in the timer */
#define TMR_ENV 0xff /* ot_timer.size: the payload is in env */
/* One cache line: migration, firing and cancelling touch a timer once each,
 * and a million of them are 64 MB. */
struct ot_timer {
    struct ot_timer *next;     /* wheel slot, due list or free list */
    _Atomic uint64_t genstate; /* gen << 8 | state: CAS'd by cancellers */
    _Atomic uint64_t expire; /* tick (OT_TICK_NS): cancellers read it (relaxed) before their CAS */
    ot_pid target;
    union {
        uint64_t seq; /* TK_WAKE: the wait it ends */
        ot_pid from;  /* TK_SEND: the arming process */
    };
    uint32_t tag; /* TK_SEND */
    uint8_t kind;
    uint8_t size; /* TK_SEND: payload bytes in inl, or TMR_ENV */
    union {
        struct env *env;               /* TK_SEND, size TMR_ENV: built at arm time */
        unsigned char inl[TMR_INLINE]; /* TK_SEND, small: the payload itself */
    };
} __attribute__((aligned(64)));

/* The wheel's tick: a quarter of a millisecond, so that rounding a deadline
 * up to a tick (never early) costs at most 0.25 ms of lateness; with 1 ms
 * ticks the timers workload's worst lateness was 2.5-2.9 ms. */
#define OT_TICK_NS 250000u
/* The deadline of a timeout past the clock's range: it never fires. Far
 * enough that no real deadline reaches it, low enough that ticks * OT_TICK_NS
 * still fits 64 bits. */
#define OT_TICK_NEVER ((uint64_t)INT64_MAX / OT_TICK_NS + 1)
#define WHEEL_LEVELS 6
#define WHEEL_BITS 6    /* level l's slots are 64^l ticks wide */
#define WHEEL_SLOTS 128 /* two level-(l+1) slots' worth: room to migrate early */
struct ot_wheel {
    uint64_t now; /* current tick: everything at or before it has fired */
    uint64_t count;
    uint64_t dead; /* cancelled by the owner, still linked (swept past a bound) */
    uint64_t bitmap[WHEEL_LEVELS][WHEEL_SLOTS / 64];
    struct ot_timer *slots[WHEEL_LEVELS][WHEEL_SLOTS];
    uint32_t nslot[WHEEL_LEVELS][WHEEL_SLOTS]; /* timers linked in each slot: paces migration */
    int16_t mig[WHEEL_LEVELS]; /* slot being moved down a level, -1 if none */
    struct ot_timer *due;      /* expired at insertion: fire at the next advance */
    struct ot_timer **chunks;  /* timer table: chunks of TMR_CHUNK */
    uint32_t nchunks, cap_chunks, used;
    struct ot_timer *free;
    struct ot__ahead ahead; /* the table, populated ahead of its chunks */
    /* send_after timers whose target has died are cancelled by a scan of
     * the table that a process exit anywhere starts (ot__wheel_reap_dead) */
    _Atomic uint64_t sends; /* TK_SEND timers in the table: owner writes, tests read */
    uint32_t scan_pos;      /* the scan's next index, 0 when none runs */
    uint64_t scan_exits;    /* the schedulers' exits summed when the last scan started */
};
#define TMR_CHUNK_BITS 12
#define TMR_CHUNK (1u << TMR_CHUNK_BITS)

/* ---- schedulers ------------------------------------------------------------ */

enum { SS_RUNNING = 0, SS_SPINNING, SS_SLEEPING };
#define RQ_SIZE 256

struct ot_sched {
    /* written by other threads */
    _Atomic uint32_t sleep_state __attribute__((aligned(OT_CACHELINE)));
    _Atomic(struct ot_proc *) inbox_tail; /* MPSC of woken processes */
    _Atomic uint32_t rq_head;             /* ring: thieves and owner CAS */
    _Atomic uint32_t rq_tail __attribute__((aligned(OT_CACHELINE))); /* owner stores */
    _Atomic(struct ot_proc *) rq[RQ_SIZE];
    /* owner only */
    struct ot_proc *inbox_head __attribute__((aligned(OT_CACHELINE)));
    struct ot_proc *inbox_stub; /* the MPSC stub: a whole (aligned) record, since the
                                   queue links records */
    struct ot_proc *runnext;
    unsigned runnext_streak;
    struct ot_proc *pending_park; /* switched out directly to another process:
                                   * parked by whoever lands next (sched.c) */
    bool pending_handler_done;    /* ... and it was a handler done with its stack */
    struct ot_proc *ovf_head, *ovf_tail; /* overflow of the ring, owner only */
    size_t ovf_len;
    int id;
    pthread_t thread;
    struct io_uring ring;
    bool ring_ok;
    int evfd;
    uint64_t evbuf;
    bool evfd_unarmed; /* its read could not be queued: queued again at submit */
    unsigned inflight; /* SQEs submitted whose CQEs are outstanding */
    unsigned pending_sqes;
    struct ot_proc *current;
    void *sp;                 /* the scheduler's own context while a process runs */
    struct stack *hstack[2];  /* spare stacks for handler runs: two, so that a
                               * handler finishing on one can switch straight
                               * to the next handler on the other */
    struct stack *stack_pool; /* warm free stacks of the default size */
    size_t stack_pool_len;
    struct stack *stack_cold; /* a carve batch's rest: only their tops populated */
    struct stack *stack_odd;  /* free stacks of other sizes */
    size_t stack_odd_len;
    struct bare_stack {
        char *lo;
        size_t size;
    } *stack_bare; /* free stacks with no page resident, record included */
    size_t bare_len, bare_cap;
    size_t stack_warm_hwm;
    uint64_t stack_trim_ns; /* last ot__stack_trim batch */
    void **res_chunks;      /* this scheduler's stack reservations */
    size_t res_nchunks, res_capchunks;
    char *res_next, *res_end;
    bool stack_batch_off; /* process_madvise refused a guard batch: one by one */
    struct ot__ahead stk_ahead; /* stack tops from res_next on, populated ahead */
    size_t stk_carved;          /* default-size stacks carved in batches, ever */
    struct ot_wheel wheel;
    uint64_t now_ns;       /* the loop's clock */
    uint64_t run_start_ns; /* coarse ms of the last switch back (long_schedule) */
    bool in_process;       /* a process runs on this thread right now */
    unsigned crit;         /* critical-section depth on this thread (crit.c) */
    volatile sig_atomic_t fault_sig;
    void *fault_addr;
    struct ot__fault_info *fault; /* what the handler saw, for the report (fault.c) */
    void *altstack;
    void *tsan_fiber; /* the thread's own fiber */
    void *asan_fake;
    void *tstack_lo; /* the thread's own stack, for ASan switches */
    size_t tstack_size;
    unsigned nloops;
    uint64_t share_ns; /* when share_work last looked for a sleeper */
    bool handler_yield;    /* the handler body stopped on budget, not empty */
    _Atomic int ready;     /* 1 once its ring is up, negative errno if it failed */
    int switch_reason;     /* why the current process switched out */
    _Atomic uint64_t exits; /* processes that exited here: owner stores, timer scans read */
    struct env *env_cache; /* free small envelopes, linked through prev */
    size_t env_cache_len;
};

enum { SW_YIELD = 1, SW_PARK, SW_EXIT, SW_HANDLER_DONE };

struct ot_runtime {
    _Atomic int running;
    _Atomic int stopping;
    unsigned nsched;
    unsigned nstarted;
    struct ot_sched **sched;
    uint64_t epoch; /* bumped by every ot_start: foreign mailboxes of an
                       earlier run are recognised as stale */
    ot_config cfg;
    size_t stack_size; /* default usable stack bytes */
    size_t page;
    int self_pidfd; /* for batched process_madvise on our own memory, or -1 */
    bool valgrind;  /* running under valgrind: schedulers sleep in ppoll (ring.c) */
    struct ot__io_features feat;
    _Atomic uint64_t ref_counter;
    _Atomic uint64_t sleeping; /* count of sleeping schedulers, for spreading work */
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
};
extern struct ot_runtime ot__rt OT_HIDDEN;
extern __thread struct ot_sched *ot__cur_sched OT_HIDDEN;

/* A process may resume on another thread than the one it switched out on,
 * and compilers treat the thread pointer as constant within a function, so
 * the core never caches a TLS address across a switch: on x86-64 it reads
 * the variable through %fs in a volatile asm with a memory clobber, which the
 * compiler can neither merge nor move across a call; elsewhere through an
 * out-of-line call. */
#if defined(__x86_64__)
static inline struct ot_sched *ot__sched_get(void) {
    struct ot_sched *s;
    __asm__ volatile("movq ot__cur_sched@gottpoff(%%rip), %0\n\t"
                     "movq %%fs:(%0), %0"
                     : "=r"(s)
                     :
                     : "memory");
    return s;
}
#else
OT_HIDDEN struct ot_sched *ot__sched_get(void) __attribute__((noinline));
#endif
static inline struct ot_proc *cur_proc(void) {
    struct ot_sched *s = ot__sched_get();
    return (s && s->in_process) ? s->current : NULL;
}

/* sched.c */
OT_HIDDEN void ot__make_runnable(struct ot_proc *p, bool from_local);
OT_HIDDEN void ot__wake_won(struct ot_proc *p);
OT_HIDDEN void ot__enqueue_new(struct ot_proc *p, struct ot_sched *target);
OT_HIDDEN bool ot__io_cancel(struct ot__io_op *op); /* false: no SQE could be had */
OT_HIDDEN void ot__wake(struct ot_proc *p);
OT_HIDDEN void ot__park(void); /* from a process: switch out WAITING */
OT_HIDDEN void ot__finish_direct(void); /* first thing on landing in a fresh context */
OT_HIDDEN void ot__yield_now(void);
OT_HIDDEN _Noreturn void ot__switch_exit(void);
OT_HIDDEN uint64_t ot__clock_ns(void);
OT_HIDDEN void ot__sched_kick(struct ot_sched *s);
OT_HIDDEN int ot__sched_start_all(void);
/* Stops and joins every scheduler thread; with a deadline (ns on ot__clock_ns,
 * 0: none), threads not done by then are detached and counted. */
OT_HIDDEN unsigned ot__sched_stop_all(uint64_t deadline_ns);

/* stack.c */
OT_HIDDEN int ot__stack_reserve(struct ot_sched *s);
OT_HIDDEN void ot__stack_release_reserve(struct ot_sched *s);
OT_HIDDEN void ot__stack_forget_all(struct ot_sched *s);
OT_HIDDEN struct stack *ot__stack_get(struct ot_sched *s, size_t size);
OT_HIDDEN void ot__stack_put(struct ot_sched *s, struct stack *st);
OT_HIDDEN bool ot__stack_guard_hit(const struct stack *st, const void *addr);
OT_HIDDEN bool ot__stack_trim(struct ot_sched *s, uint64_t now_ns); /* true: more to do */

/* mbox.c */
OT_HIDDEN void ot__mq_push(struct ot_proc *p, struct env *e);
OT_HIDDEN void ot__mq_drain(struct ot_proc *p); /* MPSC -> private queue, runs signals */
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
OT_HIDDEN void ot__proc_finish_exit(struct ot_sched *s, struct ot_proc *p);
OT_HIDDEN _Noreturn void ot__exit_current(ot_reason r, bool by_signal);
OT_HIDDEN void ot__run_handler_body(void *arg);
OT_HIDDEN void ot__stackful_entry(void *arg);
OT_HIDDEN void ot__spend(struct ot_proc *p, int n);
/* p (the caller) has PF_HEAP_LIMIT: ends it with OT_HEAP_LIMIT if its heap and
 * unfreed messages pass the limit (at once outside critical sections, else
 * at its next check for signals) */
OT_HIDDEN void ot__heap_limit_check(struct ot_proc *p);

/* timer.c */
OT_HIDDEN void ot__wheel_init(struct ot_wheel *w, uint64_t now_tick);
OT_HIDDEN void ot__wheel_fini(struct ot_wheel *w);
OT_HIDDEN void ot__wheel_advance(struct ot_sched *s, uint64_t now_tick);
OT_HIDDEN int64_t ot__wheel_next(struct ot_wheel *w); /* ticks until next event, -1 none */
OT_HIDDEN struct ot_timer *ot__timer_arm_wake(struct ot_sched *s, struct ot_proc *p,
                                              uint64_t expire_tick, uint64_t seq,
                                              uint64_t *gen_out);
OT_HIDDEN void ot__timer_cancel_wake(struct ot_proc *p);
OT_HIDDEN uint64_t ot__tick_deadline(int64_t ms); /* now + ms, rounded up to a tick,
                                                    or OT_TICK_NEVER */
OT_HIDDEN bool ot__wheel_reap_dead(struct ot_sched *s); /* true: a scan is under way */

/* foreign.c: plain threads' mailboxes, and the gate every public call from a
 * plain thread passes (ot_stop closes it, wakes waiters and drains it before
 * it frees anything) */
OT_HIDDEN void ot__foreign_wake(struct ot_proc *p);
OT_HIDDEN bool ot__gate_enter(void); /* false: the runtime is stopped or stopping */
OT_HIDDEN void ot__gate_leave(void);
OT_HIDDEN void ot__gate_open(void);
OT_HIDDEN void ot__gate_close(void);
/* Scheduler threads need no gate: ot_stop joins them before teardown. */
static inline bool ot__gate_in(bool *gated) {
    *gated = ot__sched_get() == NULL;
    return !*gated || ot__gate_enter();
}
static inline void ot__gate_out(bool gated) {
    if (gated)
        ot__gate_leave();
}

/* names.c */
OT_HIDDEN void ot__names_release(struct ot_proc *p);
/* p's registered name into buf ("" if none, or if the slot is no longer pid's) */
OT_HIDDEN void ot__names_copy(struct ot_proc *p, uint64_t pid, char *buf, size_t len);
OT_HIDDEN void ot__names_fini(void);

/* alias.c */
OT_HIDDEN void ot__info_hook_run(struct ot_proc *p, ot_pid pid, struct ot_process_info *out);

/* log.c */
OT_HIDDEN void ot__crash_report(struct ot_proc *p);

/* ring.c */
OT_HIDDEN int ot__ring_init(struct ot_sched *s);
OT_HIDDEN void ot__ring_fini(struct ot_sched *s);
OT_HIDDEN void ot__ring_probe(struct ot__io_features *f);
OT_HIDDEN int ot__ring_reap(struct ot_sched *s); /* handles CQEs; returns how many */
OT_HIDDEN void ot__ring_submit(struct ot_sched *s);
OT_HIDDEN void ot__ring_sleep(struct ot_sched *s, int64_t timeout_ns);
OT_HIDDEN void ot__ring_wake_remote(struct ot_sched *from, struct ot_sched *to);
OT_HIDDEN void ot__ring_drain(struct ot_sched *s);
OT_HIDDEN void ot__io_count_deferred_teardown(void);

/* crit.c: critical sections (ext.h). A section needs OT_CRIT_STACK bytes of
 * the process's stack; with less, entering one ends the process with a stack
 * overflow first, while nothing is held (ot__crit_overflow touches the guard). */
#define OT_CRIT_STACK 8192
OT_HIDDEN _Noreturn void ot__crit_overflow(struct ot_sched *s);
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

/* fault.c */
struct ot__fault_info {
    uintptr_t pc, sp;     /* where the fault hit */
    unsigned nbt;         /* frames of the process's stack, the faulting one first */
    uintptr_t bt[24];     /* their instruction addresses (return addresses above bt[0]) */
    struct ot_proc *proc; /* whose fault handle_fault is finishing: the report adds the above */
    volatile bool walking; /* the handler is walking the stack: a fault there jumps to jb */
    sigjmp_buf jb;
};
OT_HIDDEN int ot__fault_install(void);
/* symbols.c: true when pc's function was named (name+off); obj and objoff
 * (the object's name and pc's offset in it) are set whenever obj is. */
struct ot__sym {
    const char *obj;
    uintptr_t off, objoff;
    char name[96];
};
OT_HIDDEN bool ot__symbolize(uintptr_t pc, struct ot__sym *out);
OT_HIDDEN void ot__fault_uninstall(void);
OT_HIDDEN int ot__fault_thread_init(struct ot_sched *s);
OT_HIDDEN void ot__fault_thread_fini(struct ot_sched *s);

/* sanitizer annotations (sanit.h) */
#endif
