/* Tasks (Elixir's Task): a function run in its own process whose one result
 * goes back to the process that started it. ot_task_async links the task to
 * the caller and monitors it; the result travels as a message carrying the
 * monitor's ref, so awaiting is a receive by ref. Task.Supervisor's calls are
 * in otter/supervisor.h. */
#ifndef OTTER_TASK_H
#define OTTER_TASK_H

#include <otter/common.h>
#include <otter/process.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A task's result: bytes the task function points at before it returns.
 * They must stay valid after it returns (static, or the task's ot_alloc heap:
 * the runtime copies them into the reply before the task's heap goes). */
typedef struct ot_buf {
    const void *data;
    size_t len;
} ot_buf;

/* The task body. Return 0 to reply with *result (len 0 is an empty reply);
 * any other value ends the task with reason {error, "task returned N"} and no
 * reply, as a raise in an Elixir task would. */
typedef int (*ot_task_fn)(void *arg, ot_buf *result);

typedef struct ot_task {
    ot_pid pid;
    ot_ref ref;       /* the monitor's ref; the reply carries it */
    ot_pid owner;     /* only the owner may await, yield or shut down */
    ot_reason reason; /* set when a call reports that the task exited */
    uint32_t state;   /* private */
    void *track;      /* private: the unawaited-task rule's token */
} ot_task;

/* Task.async/1: spawns fn(arg) linked to the caller and monitored by it.
 * arg is passed as a pointer (the caller keeps what it points at alive until
 * the task is done with it). -EPERM outside a process, -EINVAL for NULL,
 * -EAGAIN when the process table is full. */
OT_API int ot_task_async(ot_task_fn fn, void *arg, ot_task *t);
/* As ot_task_async, with spawn options (stack_size, scheduler; link and
 * monitor are the task's own and are ignored). */
OT_API int ot_task_async_opt(ot_task_fn fn, void *arg, const ot_spawn_opts *o, ot_task *t);

/* Task.await/2, returning instead of exiting (the C default: an error is a
 * value the caller handles; ot_task_await_exit gives Elixir's exits):
 *   0            *result is the reply (ot_msg_free it; ot_msg_data/size);
 *   -ETIMEDOUT   no reply within timeout_ms: the task keeps running and may
 *                still be awaited, yielded or shut down (Task.yield's nil);
 *   -ECONNRESET  the task exited without replying: t->reason says why;
 *   -EINVAL      timeout_ms negative but not OT_INFINITY, NULL arguments;
 *   -EPERM       the caller is not the task's owner;
 *   -EALREADY    the task's result was already taken (or it was shut down).
 * Waiting forever needs an explicit OT_INFINITY. */
OT_API int ot_task_await(ot_task *t, int64_t timeout_ms, ot_msg **result);
/* Elixir's Task.await exactly: the reply, or the caller exits with
 * {timeout, ...} (the task, being linked, goes with it unless the caller
 * traps exits; a trapping caller's task is killed) or with the task's reason. */
OT_API ot_msg *ot_task_await_exit(ot_task *t, int64_t timeout_ms);
/* Task.yield/2: like ot_task_await; on -ETIMEDOUT the task keeps running. */
OT_API int ot_task_yield(ot_task *t, int64_t timeout_ms, ot_msg **result);
/* Task.shutdown/2: unlinks and stops the task, with exit(shutdown) and
 * timeout_ms to go before a kill, or at once with OT_BRUTAL_KILL. Returns 0
 * with *result the reply if one had arrived, 0 with *result NULL when the
 * task stopped with the reason asked for (shutdown; killed for a brutal
 * kill), -ECONNRESET with t->reason otherwise, as Elixir's {:exit, reason}:
 * a task that exited on its own, or one killed because it outlived
 * timeout_ms (reason killed). */
#define OT_BRUTAL_KILL ((int64_t)-2)
OT_API int ot_task_shutdown(ot_task *t, int64_t timeout_ms, ot_msg **result);
/* Task.await_many/2 with one deadline for all: 0 with results[i] for each
 * task; -ETIMEDOUT or -ECONNRESET (the first task to fail, *failed its index)
 * leave the tasks that had not answered running and awaitable, and free the
 * replies already taken. */
OT_API int ot_task_await_many(ot_task *tasks, size_t n, int64_t timeout_ms, ot_msg **results,
                              size_t *failed);

/* ---- async_stream --------------------------------------------------------
 * Task.async_stream/3 over a lazily produced input: next(state, item) returns
 * 1 with an item (its bytes are copied into the task that runs it), 0 at the
 * end, or a negative errno that ends the stream with that error. */
typedef struct ot_stream {
    int (*next)(void *state, ot_buf *item);
    void *state;
} ot_stream;

enum { OT_ON_TIMEOUT_EXIT = 0, OT_ON_TIMEOUT_KILL_TASK = 1 };

typedef struct ot_stream_opts {
    unsigned max_concurrency; /* 0: one per scheduler */
    int64_t timeout_ms;       /* per task, from its start; 0: 5000; OT_INFINITY */
    bool unordered;           /* results as they come (Elixir ordered: false) */
    int on_timeout;           /* OT_ON_TIMEOUT_EXIT (default) or _KILL_TASK */
    size_t stack_size;        /* the tasks' stacks; 0: the default */
} ot_stream_opts;

typedef struct ot_stream_item {
    uint64_t index;   /* the input's position, from 0 */
    int status;       /* 0 ok; -ETIMEDOUT (kill_task); -ECONNRESET (the task exited) */
    ot_reason reason; /* the task's exit reason when status is -ECONNRESET */
    const void *data; /* the reply, valid during the callback */
    size_t len;
} ot_stream_item;

/* Runs fn over every item with at most max_concurrency tasks at a time, each
 * linked to the caller, and calls each(item, arg) once per input item, in
 * input order unless unordered. each returns 0 to go on, or a non-zero value
 * that stops the stream (running tasks are shut down) and is returned. A task
 * that takes longer than timeout_ms: with OT_ON_TIMEOUT_EXIT every task still
 * running is killed and the caller exits with reason timeout (text
 * "Task.async_stream"; as Elixir's does), with _KILL_TASK the task is killed
 * and its entry has status -ETIMEDOUT. Memory is bounded by max_concurrency:
 * at most that many tasks run and, ordered, at most that many results wait
 * for an earlier one. Returns 0 when every item was handled, a negative errno
 * from next or from spawning, or each's non-zero value. Needs a process. */
OT_API int ot_task_async_stream(const ot_stream *in, ot_task_fn fn, const ot_stream_opts *o,
                                int (*each)(const ot_stream_item *r, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
