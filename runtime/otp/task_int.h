/* Private to runtime/otp's task and supervisor code: the message tags they
 * use between their own processes (below OT_TAG_USER, the system's range, and
 * above the core's and gen_server's tags) and the task process's entry. */
#ifndef OT_OTP_TASK_INT_H
#define OT_OTP_TASK_INT_H

#include <otter.h>
#include <otter/task.h>

enum {
    OT__TAG_TASK_START = 96, /* owner -> new task: struct ot__task_start */
};

/* What a task process is told to run; with has_item, a stream's item bytes
 * follow and fn gets a const ot_buf * to them as its arg. */
struct ot__task_start {
    ot_task_fn fn;
    void *arg;
    ot_ref ref;        /* the owner's monitor ref: the reply carries it */
    bool unlink_first; /* drop the link to the owner before a normal exit */
    bool has_item;
    uint32_t item_len;
    char item[];
};

/* Spawns a task process with opts (link and monitor as given by the caller)
 * and sends it its start message; on any failure nothing is left running. item
 * NULL: fn gets arg; otherwise fn gets a const ot_buf * to a copy of item. */
int ot__task_spawn(ot_task_fn fn, void *arg, const void *item, size_t item_len,
                   bool unlink_first, const ot_spawn_opts *opts, ot_task *t);

#endif
