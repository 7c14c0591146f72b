/* Private to the supervisor code (sup.c: the process; sup_child.c: starting
 * and stopping one child, restart intensity; sup_api.c: the calls). The
 * supervisor's state lives in its own process heap, so whatever it holds is
 * gone when it exits. Invariants: children[] is in start order; for a
 * DynamicSupervisor order is free and pid_index finds a child by pid; only
 * the supervisor process touches its state. */
#ifndef OT_OTP_SUP_INT_H
#define OT_OTP_SUP_INT_H

#include <otter.h>
#include <otter/supervisor.h>

#include "runtime/otp/idmap.h"

enum {
    OT__TAG_SUP_INIT = 97, /* starter -> new supervisor: struct sup_init */
    OT__TAG_SUP_ACK = 98,  /* supervisor -> starter: struct sup_ack, ref = the start's */
    OT__TAG_SUP_REQ = 99,  /* caller -> supervisor: struct sup_req, ref = caller's monitor */
};

/* A child spec as it travels: the id inline. */
struct sup_spec {
    char id[OT_CHILD_ID_MAX];
    int (*start)(void *arg, ot_pid *out);
    int (*start_extra)(void *extra, void *arg, ot_pid *out);
    void *arg;
    int restart;
    int64_t shutdown;
    int type;
    bool significant;
    /* a Task.Supervisor child (task_sup.c): the task's body, run in a task
     * process the supervisor spawns, instead of start */
    ot_task_fn task_fn;
    ot_pid owner;
    bool task_go, task_link_owner, task_no_reply;
};

struct sup_init {
    ot_sup_flags flags;
    ot_dynsup_opts dyn;
    bool dynamic;
    ot_ref ack;
    ot_pid parent; /* OT_NOPID when started without a link */
    int name_kind;
    const ot_via_ops *via;
    void *via_arg;
    uint32_t name_len; /* bytes of the name (local: with its NUL) after the specs */
    uint32_t n;
    struct sup_spec specs[]; /* then the name's bytes */
};

struct sup_ack {
    int rc;
    ot_pid pid; /* the name's holder for -EEXIST */
    ot_reason why;
};

enum sup_op {
    OP_START_CHILD = 1,
    OP_TERMINATE_CHILD,
    OP_RESTART_CHILD,
    OP_DELETE_CHILD,
    OP_WHICH_CHILDREN,
    OP_COUNT_CHILDREN,
    OP_STOP,
    OP_RETRY, /* the supervisor to itself: try a failed restart again */
};

struct sup_req {
    int op;
    ot_pid pid;       /* terminate_child of a DynamicSupervisor */
    size_t cap;       /* which_children */
    ot_reason why;    /* stop */
    uint64_t retry;   /* OP_RETRY: the child's incarnation */
    struct sup_spec spec; /* start_child; spec.id for the by-id operations */
};

struct sup_rep {
    int rc;
    ot_pid pid;
    size_t n;
    ot_child_counts counts;
    ot_child_info info[]; /* which_children */
};

enum child_state { C_RUNNING = 0, C_UNDEFINED = 1, C_RESTARTING = 2, C_FREE = 3 };

struct child {
    struct sup_spec spec;
    ot_pid pid;
    int state;
    uint64_t incarnation;  /* bumped at each restart attempt: stale retries are dropped */
    bool restarting_group; /* stopped by a one_for_all/rest_for_one restart, to start again */
};

struct sup {
    bool dynamic;
    ot_sup_flags flags;
    ot_dynsup_opts dyn;
    ot_pid parent;
    ot_pid self;
    char name[OT_NAME_MAX]; /* for reports; "" if none */
    struct child *children;
    size_t n, cap;
    size_t live; /* a DynamicSupervisor's children (slots not C_FREE) */
    size_t *free_slots;
    size_t nfree;
    struct ot__idmap pids; /* DynamicSupervisor: a running child's pid -> its slot */
    int64_t *restarts; /* ring of restart times (whole monotonic seconds, as
                          OTP's) in the period: grows with them, up to
                          max_restarts + 1 */
    size_t r_cap;
    int max_r;
    int64_t period_s; /* max_seconds */
    size_t r_head, r_len;
};

/* sup_child.c */
int ot__sup_start_child(struct sup *s, struct child *c, ot_reason *why);
void ot__sup_shutdown_child(struct sup *s, struct child *c);
void ot__sup_shutdown_many(struct sup *s, struct child **cs, size_t n);
bool ot__sup_add_restart(struct sup *s); /* false: intensity exceeded */
int ot__sup_check_spec(const struct sup_spec *sp, bool dynamic, int auto_shutdown);
void ot__sup_spec_in(struct sup_spec *w, const ot_child_spec *c);
int64_t ot__sup_shutdown_ms(const struct sup_spec *sp);

/* sup_api.c: a supervisor's start (link false: no parent, the application's
 * top); start_child with an internal spec (Task.Supervisor's) */
int ot__sup_start(bool dynamic, bool link, const ot_sup_flags *f, const ot_dynsup_opts *d,
                  const ot_child_spec *c, size_t n, const ot_start_opts *o, ot_pid *out);
int ot__sup_start_spec(ot_pid sup, const struct sup_spec *sp, ot_pid *out);

/* task_sup.c: spawns a Task.Supervisor child linked to the calling supervisor */
int ot__task_sup_spawn(const struct sup_spec *sp, ot_pid *out);

/* sup.c: the supervisor process's entry (stackful, trapping exits) */
void ot__sup_main(void *unused);

#endif
