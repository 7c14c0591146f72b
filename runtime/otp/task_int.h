/* Private to runtime/otp's task and supervisor code: the message tags they
 * use between their own processes (below OT_TAG_USER, the system's range, and
 * above the core's and gen_server's tags) and the task process's entry. */
#ifndef OT_OTP_TASK_INT_H
#define OT_OTP_TASK_INT_H

#include <otter.h>
#include <otter/task.h>

enum {
    OT__TAG_TASK_GO = 95,    /* owner -> supervised task: struct ot__task_go */
    OT__TAG_TASK_START = 96, /* starter -> new task: struct ot__task_start */
};

/* What a task process is told to run; with has_item, a stream's item bytes
 * follow and fn gets a const ot_buf * to them as its arg. A task started by a
 * Task.Supervisor gets this from the supervisor, with wait_go: its owner (the
 * process that asked for it) monitors it once it has the pid and sends the
 * monitor's ref, and the item, in a GO; meanwhile the task watches the owner
 * and quietly ends if the owner dies first. */
struct ot__task_start {
    ot_task_fn fn;
    void *arg;
    ot_ref ref;        /* the owner's monitor ref: the reply carries it */
    ot_pid owner;      /* with wait_go: who gets the reply */
    bool unlink_first; /* drop the link to the owner before a normal exit */
    bool has_item;
    bool wait_go;
    bool link_owner; /* with wait_go: link to the owner first (Task.Supervisor.async) */
    bool no_reply;   /* Task.Supervisor.start_child: the result goes nowhere */
    uint32_t item_len;
    char item[];
};

struct ot__task_go {
    bool has_item;
    uint32_t item_len;
    char item[];
};

/* The task process's entry (task.c). */
void ot__task_main(void *unused);

/* Spawns a task process with opts (link and monitor as given by the caller)
 * and sends it its start message; on any failure nothing is left running. item
 * NULL: fn gets arg; otherwise fn gets a const ot_buf * to a copy of item. */
int ot__task_spawn(ot_task_fn fn, void *arg, const void *item, size_t item_len,
                   bool unlink_first, const ot_spawn_opts *opts, ot_task *t);

/* Starts fn under the Task.Supervisor sup for the caller (linked to it with
 * link) and sends the GO: item NULL runs fn(arg), else fn(const ot_buf *) to
 * a copy of item (task_sup.c). */
int ot__task_sup_go(ot_pid sup, ot_task_fn fn, bool link, const void *item, size_t item_len,
                    void *arg, ot_task *t);

#endif
