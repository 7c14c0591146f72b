/* Schedulers' private header: stacks, the scheduler record (run queues, ring,
 * stack pools, timer wheel), the runtime record, and the calls of sched.c,
 * stack.c, foreign.c, crit.c and fault.c. Includes timer.h (the wheel is part
 * of the scheduler record); the process record is only pointed at here. */
#ifndef OT_SCHED_H
#define OT_SCHED_H

#include "runtime/core.h"
#include "runtime/timer/timer.h"

struct stack {
    struct stack *next; /* pool free list */
    char *lo, *hi;      /* usable range; the guard is just below lo */
    size_t size;
    void *tsan_fiber;
    size_t tsan_pile;     /* TSan: bound of the shadow frames dead bodies left on the fiber */
    unsigned tsan_reuses; /* TSan: bodies the fiber has run since it was made */
    unsigned vg_id;
};

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

/* crit.c: critical sections (ext.h). A section needs OT_CRIT_STACK bytes of
 * the process's stack; with less, entering one ends the process with a stack
 * overflow first, while nothing is held (ot__crit_overflow touches the guard). */
#define OT_CRIT_STACK 8192
OT_HIDDEN _Noreturn void ot__crit_overflow(struct ot_sched *s);

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
OT_HIDDEN void ot__fault_uninstall(void);
OT_HIDDEN int ot__fault_thread_init(struct ot_sched *s);
OT_HIDDEN void ot__fault_thread_fini(struct ot_sched *s);

/* runtime.c's lifecycle lock: a foreign thread's dump (runtime/debug) holds it. */
OT_HIDDEN void ot__life_lock(void);
OT_HIDDEN void ot__life_unlock(void);

/* hooks: called by sched, implemented by proc (runtime/proc). The scheduler
 * runs what a process is: it drains a process's signals before running it,
 * starts it on its entry (whose names crash reports print, so they keep
 * them) and completes its exit after switching away from it. Plain extern
 * functions, resolved at link time: no indirection on the scheduler's path. */
OT_HIDDEN void ot__sched_hook_mq_drain(struct ot_proc *p); /* MPSC -> private queue, runs signals */
OT_HIDDEN void ot__sched_hook_finish_exit(struct ot_sched *s, struct ot_proc *p);
OT_HIDDEN void ot__run_handler_body(void *arg); /* a handler's entry */
OT_HIDDEN void ot__stackful_entry(void *arg);   /* a stackful process's entry */

/* hooks: called by sched, implemented by debug (runtime/debug/symbols.c).
 * The fatal fault report names the faulting functions. True when pc's
 * function was named (name+off); obj and objoff (the object's name and pc's
 * offset in it) are set whenever obj is. */
struct ot__sym {
    const char *obj;
    uintptr_t off, objoff;
    char name[96];
};
OT_HIDDEN bool ot__sched_hook_symbolize(uintptr_t pc, struct ot__sym *out);

#endif
