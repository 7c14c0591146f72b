/* The runtime core's internal interface for the layers above it (runtime/ets/,
 * runtime/otp/, io) and for white-box tests. Nothing here is installed.
 * Invariants: every function may be called from a scheduler thread; the ones
 * marked "any thread" also from foreign threads. */
#ifndef OT_CORE_EXT_H
#define OT_CORE_EXT_H

#include <otter.h>
#include <stddef.h>

struct io_uring_sqe;
struct io_uring_cqe;

/* ---- ownership hooks (ETS) ------------------------------------------------
 * A table owner is flagged so that its exit calls the ETS exit hook once.
 * ot__proc_mark_ets_owner returns -ESRCH when p is dead or already past the
 * point where its exit reads the flag (so a table can never be orphaned by a
 * race with the owner's exit). Any thread. */
int ot__proc_mark_ets_owner(ot_pid p);
/* Called on the scheduler thread, outside any process, once for each exiting
 * process that was flagged, after it stopped being alive and before its links
 * and monitors fire. Set once, before ot_start, or from a constructor. */
typedef void (*ot__exit_hook_fn)(ot_pid pid);
void ot__set_ets_exit_hook(ot__exit_hook_fn fn);
/* ETS reclamation's thread (runtime/ets/qsbr.c, installed by a constructor there):
 * start runs in ot_start before the schedulers (an error fails ot_start),
 * stop in ot_stop after them, and runs every deferred free. */
void ot__set_ets_lifecycle(int (*start)(void), void (*stop)(void));

/* ---- socket ownership (runtime/io/sock_own.c) ------------------------------
 * As for ETS: ot__proc_mark_sock_owner flags p, under its slot lock, so that
 * its exit calls the socket exit hook once (on the scheduler thread, outside
 * any process, after it stopped being alive and before its links and
 * monitors fire); -ESRCH when p is not a live process (dead, past the point
 * where its exit reads the flag, never issued, or a foreign thread's). Any
 * thread. The hook is set once, before ot_start, or from a constructor. */
int ot__proc_mark_sock_owner(ot_pid p);
void ot__set_sock_exit_hook(ot__exit_hook_fn fn);

/* ---- the stop hook (the OTP layer's application tree) ----------------------
 * Called by ot_stop on its own thread, before anything is killed and while
 * every process still runs, so that the application tree stops its children
 * in reverse order within their shutdown times. Set before ot_stop; NULL
 * removes it. */
typedef void (*ot__stop_hook_fn)(void);
void ot__set_stop_hook(ot__stop_hook_fn fn);

/* ---- per-process resources (I/O descriptors, ...) -------------------------
 * A resource registered by the calling process is released (release called
 * on the scheduler thread, outside any process, with the owner's pid) when
 * the process exits, in reverse order of registration, unless it was removed
 * first. The struct is the caller's and must outlive the registration. */
struct ot__res {
    struct ot__res *next, *prev;
    void (*release)(struct ot__res *r, ot_pid owner);
};
int ot__res_add(struct ot__res *r); /* -EPERM outside a process */
void ot__res_del(struct ot__res *r);

/* ---- I/O on the current scheduler's ring ----------------------------------
 * An op lives where the parked process can see it (its stack or heap). The
 * core sets sqe user_data to the op with ot__io_sqe_op. For each CQE whose
 * user_data is an op: if on_cqe is set it is called (on the scheduler thread,
 * outside the process) and returns true when the op is complete; otherwise the
 * CQE's res and flags are stored and the op is complete. A complete op wakes
 * the process waiting in ot__io_wait. user_data 0 is ignored (linked timeout
 * SQEs, cancellations). */
struct ot__io_op {
    bool (*on_cqe)(struct ot__io_op *op, const struct io_uring_cqe *cqe);
    void *waiter;     /* core-private: the parked process */
    void *ring_owner; /* core-private: the scheduler whose ring has the op */
    int32_t res;
    uint32_t cqe_flags;
    int done; /* core-private: set when complete (read it only after ot__io_wait) */
    uint8_t main_done;   /* core-private: the op's own final CQE came */
    uint8_t tmo_pending; /* core-private: its linked timeout's CQE has not come */
    uint8_t tmo_fired;   /* the linked timeout expired (its CQE said -ETIME) */
};
/* An SQE on the caller's scheduler ring (submitted with the scheduler's next
 * batch), or NULL: errno EPERM when the caller is not a process, EBUSY when
 * the kernel took none of a full submission queue (nothing was queued). It flushes
 * the SQ only when the SQ is full, so two calls with no park between them
 * land in one submission unless the first took the last free entry (linked
 * timeouts rely on this: io.c turns a link head that took the last entry
 * into a NOP and starts again). An op may be reused across waits (multishot)
 * if its owner resets done and waiter before each ot__io_wait, on the ring it
 * was armed on. */
struct io_uring_sqe *ot__io_get_sqe(void);
/* The same from an op's on_cqe callback (the scheduler thread, outside any
 * process): for ops that re-arm or cancel themselves on the ring their
 * completion came from. NULL with errno EPERM off a scheduler thread, EBUSY
 * as above. */
struct io_uring_sqe *ot__io_get_sqe_cb(void);
void ot__io_sqe_op(struct io_uring_sqe *sqe, struct ot__io_op *op);
/* Makes sqe (an IORING_OP_LINK_TIMEOUT the caller prepared right behind
 * op's SQE, which carries IOSQE_IO_LINK) report to op: op completes only
 * once both CQEs came (the kernel never touches op afterwards), and
 * op->tmo_fired says whether the timeout expired. After ot__io_sqe_op. */
void ot__io_sqe_link_timeout(struct io_uring_sqe *sqe, struct ot__io_op *op);
/* Parks the calling process until op is complete; returns op->res. If the
 * process is killed meanwhile, the core cancels the op and tears the process
 * down only after the op's final CQE has arrived, so the kernel never writes
 * into freed memory; ot__io_wait then does not return. */
int32_t ot__io_wait(struct ot__io_op *op);
/* Kernel features probed at ot_start. */
struct ot__io_features {
    bool msg_ring, defer_taskrun, single_issuer, multishot_accept, buf_ring, recv_multishot,
        guard_regions;
};
const struct ot__io_features *ot__features(void);
/* The calling scheduler's ring (NULL outside a scheduler thread): for probing
 * and registering buffer rings; never submit on it directly. */
struct io_uring *ot__io_ring(void);

/* ---- reductions -------------------------------------------------------------
 * Spends n reductions for the calling process; when its budget is gone it
 * goes to the back of its run queue right here (ARCHITECTURE 3). Only where
 * the caller holds no lock and nothing a quiescent state may free (outside
 * an ETS read section). Nothing outside a process. */
void ot__spend_here(int n);

/* ---- critical sections (ARCHITECTURE 7) ----------------------------------
 * Runtime code that holds a lock (or state a fault would leave broken)
 * brackets that section with ot__crit_enter/ot__crit_exit (per thread, nests,
 * any thread). A fault inside one is not contained: the runtime writes a crash
 * report saying so and aborts the program. Entering the outermost section from
 * a process with less than 8 KiB of stack left ends that process with
 * OT_STACK_OVERFLOW first, before anything is held. Never switch (receive,
 * yield, I/O wait) inside a section. */
void ot__crit_enter(void);
void ot__crit_exit(void);
/* Bytes of usable stack left below the caller's stack pointer on the calling
 * process's stack; SIZE_MAX when the caller is not a process (scheduler or
 * foreign thread). Lock-holding runtime sections that may recurse or use
 * large frames check it first (or run on the scheduler's stack). */
size_t ot__stack_headroom(void);

/* ---- calls: aliases, the protocol marker, process_info (runtime/otp) ------
 * A call's alias is a ref the caller holds: for a process, the ref of its
 * monitor on the server (OTP 24's monitor with {alias, reply_demonitor}); for
 * a foreign thread, one made by ot__alias_foreign. A reply sent with
 * ot__reply_send is kept only while its alias is active; the first one kept
 * deactivates the alias and drops the monitor, so a late or second reply and
 * a DOWN after it never land. ot_demonitor (or ot__unalias_foreign) ends an
 * alias too. ot__reply_send: any thread; 0 when sent, -ESRCH when `to` is not
 * alive, -ENOTCONN once ot_stop began. */
int ot__reply_send(ot_pid to, uint32_t tag, ot_ref alias, const void *d, size_t n);
ot_ref ot__alias_foreign(void); /* foreign thread only: OT_NOREF (errno) otherwise */
void ot__unalias_foreign(ot_ref r);
/* The caller's pid: a process's own, or a foreign thread's mailbox (made on
 * first use); OT_NOPID when the runtime is stopped. */
ot_pid ot__foreign_pid(void);
/* ot_send_ref with the payload in two parts (a request and its trailer). */
int ot__send2(ot_pid to, uint32_t tag, ot_ref ref, const void *a, size_t an, const void *b,
              size_t bn);
/* A call from a process: one envelope that is both the request (tag, the
 * two payload parts) and the caller's monitor of `to`, whose ref (returned)
 * is the call's alias. A dead `to` gets the caller a DOWN noproc at once, as
 * ot_monitor. OT_NOREF with errno EPERM outside a process, ENOMEM, EMSGSIZE. */
ot_ref ot__call_send(ot_pid to, uint32_t tag, const void *a, size_t an, const void *b, size_t bn);
/* A handler process replaces the state its callback is passed from now on. */
void ot__handler_set_state(void *state);
/* Marks the calling process as one that answers calls (PF_CALLS). */
void ot__proc_accept_calls(void);
/* 1 if p answers calls, 0 if it is alive and does not, -ESRCH if not alive,
 * -ENOTCONN once ot_stop began. */
int ot__proc_calls_ok(ot_pid p);
/* The caller's queue length after taking in what is in flight to it. */
size_t ot__self_queue_len(void);
/* Frees the caller's empty link and monitor tables (hibernation). */
void ot__proc_shrink(void);
/* ot_process_info calls fn(state, out) for a handler process whose callback
 * is hfn, after filling the rest (only for itself or while it is parked, as
 * the link and monitor counts). Set once, before use. */
typedef void (*ot__info_hook_fn)(void *state, struct ot_process_info *out);
void ot__set_info_hook(ot_handler_fn hfn, ot__info_hook_fn fn);

/* ---- test hooks ------------------------------------------------------------ */
/* Process exits that waited for an in-flight op's final CQE (any thread). */
uint64_t ot__io_deferred_teardowns(void);
uint64_t ot__mbox_scans(void); /* messages inspected by receives of the caller */
/* send_after timers not yet freed on every scheduler (armed, or cancelled and
 * still linked); any thread while the runtime runs. */
uint64_t ot__timers_pending(void);
/* Fault injection: after `skip` more SQE requests on any ring succeed, the
 * next `n` find the kernel taking none (as with a full SQ the kernel will not
 * drain). Tests only. */
void ot__io_test_refuse_sqes(unsigned skip, unsigned n);

#endif
