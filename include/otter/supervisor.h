/* Supervisors (OTP 25's supervisor, Elixir 1.14's Supervisor and
 * DynamicSupervisor) and Task.Supervisor. A supervisor is a process that
 * traps exits, starts its children in order through their start functions
 * (each must start_link the child), restarts them by their restart type and
 * the supervisor's strategy within a restart intensity, and stops them in
 * reverse start order, each within its shutdown time. Calls to a supervisor
 * wait for its answer without a timeout, as OTP's do, and need a process
 * (they monitor the supervisor: -ESRCH if it is not alive, -ECONNRESET if it
 * died during the call, -EPERM from a foreign thread). */
#ifndef OTTER_SUPERVISOR_H
#define OTTER_SUPERVISOR_H

#include <otter/common.h>
#include <otter/gen_server.h>
#include <otter/process.h>
#include <otter/task.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ot_restart { OT_PERMANENT = 0, OT_TRANSIENT = 1, OT_TEMPORARY = 2 };
enum ot_child_type { OT_WORKER = 0, OT_SUPERVISOR = 1 };
enum ot_strategy { OT_ONE_FOR_ONE = 0, OT_ONE_FOR_ALL = 1, OT_REST_FOR_ONE = 2 };
enum ot_auto_shutdown {
    OT_AUTO_SHUTDOWN_NEVER = 0,
    OT_AUTO_SHUTDOWN_ANY_SIGNIFICANT = 1,
    OT_AUTO_SHUTDOWN_ALL_SIGNIFICANT = 2,
};

/* Child ids are strings of at most OT_CHILD_ID_MAX - 1 bytes (-ENAMETOOLONG). */
#define OT_CHILD_ID_MAX 64

/* A child specification. shutdown is in ms (> 0), OT_BRUTAL_KILL or
 * OT_INFINITY; 0 means the default: 5000 for a worker, OT_INFINITY for a
 * supervisor (Elixir's). significant needs restart transient or temporary and
 * an auto_shutdown other than never (-EINVAL otherwise). start returns 0 with
 * the linked child's pid in *out, OT_IGNORED (the child is not started; its
 * spec is kept unless temporary), or a negative errno. Under a
 * DynamicSupervisor started with extra arguments, start_extra(extra, arg, out)
 * is called instead (Elixir's extra_arguments prepended to each start). */
typedef struct ot_child_spec {
    const char *id; /* copied; unique within a supervisor; NULL under a DynamicSupervisor */
    int (*start)(void *arg, ot_pid *out);
    void *arg;
    int restart;      /* enum ot_restart */
    int64_t shutdown; /* see above */
    int type;         /* enum ot_child_type */
    bool significant;
    int (*start_extra)(void *extra, void *arg, ot_pid *out);
} ot_child_spec;

/* Supervisor flags. max_restarts and max_seconds both 0 mean the default:
 * Elixir's 3 restarts in 5 s, or OTP's 1 in 5 s with otp_defaults. To allow no
 * restart at all, give max_restarts 0 and max_seconds > 0. */
typedef struct ot_sup_flags {
    int strategy; /* enum ot_strategy */
    int max_restarts;
    int max_seconds;
    int auto_shutdown; /* enum ot_auto_shutdown */
    bool otp_defaults;
} ot_sup_flags;

/* supervisor:start_link/3: returns once every child has started (in order).
 * 0 and *out; -EEXIST (name taken, *out is the holder); -ECHILD when a child
 * failed to start: the children started before it were stopped in reverse,
 * and the supervisor exits with {shutdown, "failed_to_start_child Id"} (detail:
 * the start's errno)
 * (in *o->why if given), which, as in OTP 25, reaches a linked caller that
 * does not trap exits; -ETIMEDOUT when start took longer than o->timeout_ms;
 * -EINVAL for bad flags or specs (duplicate ids, NULL start, ...) or a
 * negative timeout other than OT_INFINITY (0 waits forever too); -EPERM
 * outside a process. o may be NULL; its name, timeout_ms and why are used. */
OT_API int ot_supervisor_start_link(const ot_sup_flags *f, const ot_child_spec *c, size_t n,
                                    const ot_start_opts *o, ot_pid *out);

/* supervisor:start_child/2: 0 and *out (OT_NOPID when start returned ignore:
 * then OT_IGNORED is returned); -EEXIST when a running child has this id
 * (*out is its pid); -EALREADY when a stopped child has it (already_present);
 * a child's start error as its negative errno (the spec is not kept). */
OT_API int ot_supervisor_start_child(ot_pid sup, const ot_child_spec *c, ot_pid *out);
/* terminate_child/2 by id: 0, -ENOENT (not_found). A temporary child's spec
 * goes with it; others stay, to be restarted with restart_child. */
OT_API int ot_supervisor_terminate_child(ot_pid sup, const char *id);
/* restart_child/2: 0 and *out; -EBUSY when running, -EINPROGRESS when
 * restarting, -ENOENT, or the start's error. */
OT_API int ot_supervisor_restart_child(ot_pid sup, const char *id, ot_pid *out);
/* delete_child/2: 0, -EBUSY (running), -EINPROGRESS (restarting), -ENOENT. */
OT_API int ot_supervisor_delete_child(ot_pid sup, const char *id);

enum ot_child_state { OT_CHILD_RUNNING = 0, OT_CHILD_UNDEFINED = 1, OT_CHILD_RESTARTING = 2 };
typedef struct ot_child_info {
    char id[OT_CHILD_ID_MAX]; /* "" for a DynamicSupervisor's children (undefined) */
    ot_pid pid;               /* OT_NOPID unless running */
    int state;                /* enum ot_child_state */
    int type;                 /* enum ot_child_type */
} ot_child_info;
/* which_children/1 in OTP's order (the most recently started first): the
 * first min(cap, all) entries into out, and the number of children in *n. */
OT_API int ot_supervisor_which_children(ot_pid sup, ot_child_info *out, size_t cap, size_t *n);

typedef struct ot_child_counts {
    size_t specs, active, supervisors, workers;
} ot_child_counts;
OT_API int ot_supervisor_count_children(ot_pid sup, ot_child_counts *out);

/* ---- DynamicSupervisor ------------------------------------------------------ */
typedef struct ot_dynsup_opts {
    size_t max_children; /* 0: no limit; start_child past it is -EAGAIN */
    int max_restarts;    /* as ot_sup_flags: 0 and 0 mean 3 in 5 s */
    int max_seconds;
    bool has_extra; /* extra_arguments: start_extra(extra, arg, out) for each child */
    void *extra;
} ot_dynsup_opts;

OT_API int ot_dynsup_start_link(const ot_dynsup_opts *f, const ot_start_opts *o, ot_pid *out);
/* DynamicSupervisor.start_child/2: 0 and *out; OT_IGNORED; -EAGAIN past
 * max_children; the child's start error. id is ignored. */
OT_API int ot_dynsup_start_child(ot_pid sup, const ot_child_spec *c, ot_pid *out);
/* terminate_child/2 by pid: 0, -ENOENT when it is not a child. */
OT_API int ot_dynsup_terminate_child(ot_pid sup, ot_pid child);
OT_API int ot_dynsup_which_children(ot_pid sup, ot_child_info *out, size_t cap, size_t *n);
OT_API int ot_dynsup_count_children(ot_pid sup, ot_child_counts *out);

/* ---- Task.Supervisor ----------------------------------------------------------
 * A DynamicSupervisor of tasks (max_children, max_restarts and max_seconds as
 * there; no extra arguments). Its tasks run under it, linked to it. */
OT_API int ot_task_sup_start_link(const ot_dynsup_opts *f, const ot_start_opts *o, ot_pid *out);
/* Task.Supervisor.start_child/3: fn(arg) as a task whose result goes nowhere.
 * restart is OT_TEMPORARY for Elixir's default, OT_TRANSIENT to run it again
 * after a crash, OT_PERMANENT after any exit (arg must then stay valid for as
 * long as the task may be restarted). shutdown_ms as a child spec's (0: 5000). */
OT_API int ot_task_sup_start_child(ot_pid sup, ot_task_fn fn, void *arg, int restart,
                                   int64_t shutdown_ms, ot_pid *out);
/* Task.Supervisor.async/3: a task under sup, linked to the caller and
 * monitored by it, awaited with ot_task_await like ot_task_async's. */
OT_API int ot_task_sup_async(ot_pid sup, ot_task_fn fn, void *arg, ot_task *t);
/* Task.Supervisor.async_nolink/3: as async, without the link: a crash reaches
 * the caller as a DOWN (ot_task_await's -ECONNRESET), never as an EXIT. */
OT_API int ot_task_sup_async_nolink(ot_pid sup, ot_task_fn fn, void *arg, ot_task *t);
/* Task.Supervisor.async_stream_nolink/4: ot_task_async_stream's contract with
 * the tasks under sup and not linked to the caller: a task that exits without
 * a result gives its item status -ECONNRESET and its reason. */
OT_API int ot_task_sup_async_stream_nolink(ot_pid sup, const ot_stream *in, ot_task_fn fn,
                                           const ot_stream_opts *o,
                                           int (*each)(const ot_stream_item *r, void *arg),
                                           void *arg);
/* Task.Supervisor.children/1: the first min(cap, all) task pids, all in *n. */
OT_API int ot_task_sup_children(ot_pid sup, ot_pid *out, size_t cap, size_t *n);

/* ---- the application tree --------------------------------------------------------
 * ot_application_start starts the runtime's top supervisor (one at a time:
 * -EALREADY and *out the running one), with no parent: nothing stops it but
 * ot_application_stop, ot_stop (which stops the tree, children in reverse
 * order within their shutdown times, before it kills anything else) or its
 * own restart intensity. From a process or a foreign thread; -ENOTCONN when
 * the runtime is stopped; otherwise ot_supervisor_start_link's results. */
OT_API int ot_application_start(const ot_sup_flags *f, const ot_child_spec *c, size_t n,
                                const ot_start_opts *o, ot_pid *out);
OT_API int ot_application_stop(void); /* 0, or -ESRCH when no tree runs */
OT_API ot_pid ot_application_sup(void); /* the top supervisor, OT_NOPID if none */
/* After this, signal sig (SIGTERM, say) makes the runtime stop as ot_stop
 * does, from a thread of Otter's: the tree first, then everything else. Off
 * until asked; -EINVAL for signals that cannot be or are already used (the
 * fault signals, SIGKILL, SIGSTOP). */
OT_API int ot_application_stop_on_signal(int sig);

/* ---- the seed's rules, checked at run time ------------------------------------
 * Warnings through the logger, each naming the process: a child whose start
 * (its init) takes longer than slow_init_ms blocks its supervisor; a process
 * exits holding a task it never awaited, yielded or shut down; a gen_server,
 * Agent or supervisor is started by a process that is not a supervisor (the
 * application's top supervisor excepted). All on by default, slow_init_ms 100.
 * ot_otp_rules sets the mask (and the threshold when slow_init_ms > 0) and
 * returns the previous mask; a rule that is off costs one load where it
 * would check. */
enum {
    OT_RULE_SLOW_INIT = 1u,
    OT_RULE_UNAWAITED_TASK = 2u,
    OT_RULE_UNSUPERVISED = 4u,
    OT_RULES_ALL = 7u,
};
OT_API unsigned ot_otp_rules(unsigned on, int64_t slow_init_ms);

/* Stops a supervisor (of either kind) as its parent would: its children are
 * stopped in reverse start order (a DynamicSupervisor's all at once), then it
 * exits with why. 0, -ESRCH, -ETIMEDOUT (still running after timeout_ms),
 * -EDEADLK from the supervisor itself (a child's start function runs there). */
OT_API int ot_supervisor_stop(ot_pid sup, ot_reason why, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
