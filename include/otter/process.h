/* Processes, messages, links, monitors and local names: Erlang's process
 * model. A process is either stackful (ot_spawn: a C function on its own green
 * stack that may block anywhere) or a handler (ot_spawn_handler: a function
 * called once per message, with no stack between messages). */
#ifndef OTTER_PROCESS_H
#define OTTER_PROCESS_H

#include <otter/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* System message tags; OT_TAG_USER and up belong to the user. */
enum {
    OT_TAG_EXIT = 1,         /* trapped exit signal: payload ot_exit_msg */
    OT_TAG_DOWN = 2,         /* monitor fired: payload ot_down_msg */
    OT_TAG_TIMEOUT = 3,      /* a timeout (gen_server, ot_send_after by choice) */
    OT_TAG_ETS_TRANSFER = 4, /* a table given to this process: payload ot_ets_transfer_msg */
    OT_TAG_REPLY = 5,        /* a reply to ot_call */
    OT_TAG_CALL = 6,         /* a gen_server call request (gen_server.h; never seen by callbacks) */
    OT_TAG_CAST = 7,         /* a gen_server cast or system message (same) */
    OT_TAG_SOCK_DATA = 8,    /* gen_tcp's {tcp, S, Data}: payload ot_sock_msg (socket.h) */
    OT_TAG_SOCK_CLOSED = 9,  /* {tcp_closed, S}: the peer closed; ot_sock_msg, len 0 */
    OT_TAG_SOCK_ERROR = 10,  /* {tcp_error, S, Reason}: ot_sock_msg, err is -errno */
    OT_TAG_SOCK_PASSIVE = 11, /* {tcp_passive, S}: an active N count reached 0 */
    OT_TAG_SOCK_HANDSHAKE = 12, /* a listener hands over a socket: ot_listener_handshake_msg */
    OT_TAG_USER = 256,
};

/* The largest payload one message may carry (-EMSGSIZE above it). */
#define OT_MSG_MAX ((size_t)64 << 20)

typedef struct ot_msg {
    uint32_t tag;  /* OT_TAG_USER and up are the user's */
    uint32_t size; /* payload bytes, at ot_msg_data(m) */
    ot_pid from;
    ot_ref ref;
} ot_msg;

typedef struct ot_exit_msg {
    ot_pid pid;
    ot_reason reason;
} ot_exit_msg;

typedef struct ot_down_msg {
    ot_ref ref;
    ot_pid pid;
    ot_reason reason;
} ot_down_msg;

typedef struct ot_spawn_opts {
    size_t stack_size; /* stackful only; 0: the runtime's default */
    bool link;         /* spawn_link */
    bool monitor;      /* spawn_monitor: the ref goes to *monitor_ref */
    ot_ref *monitor_ref;
    int scheduler;         /* preferred scheduler, -1 (or 0 with bind false and
                              scheduler_set false) for the spawner's own */
    bool scheduler_set;    /* scheduler is meaningful */
    bool bind;             /* never migrate off `scheduler` */
    bool trap_exit;        /* start trapping exits */
    const char *behaviour; /* a name for process_info and crash reports */
    /* BEAM's max_heap_size, in bytes (0: no limit): a process whose heap
     * (heap_bytes of process_info) plus the messages it received and has not
     * freed (unfreed_bytes) pass it is killed with reason OT_HEAP_LIMIT */
    size_t max_heap_bytes;
} ot_spawn_opts;

/* Handler processes: fn is called once per message. Return 0 to wait for
 * the next message; a process ends by ot_exit_self (or any other exit). */
typedef int (*ot_handler_fn)(void *state, const struct ot_msg *m);

OT_API ot_pid ot_spawn(void (*fn)(void *), void *arg);      /* spawn/1 */
OT_API ot_pid ot_spawn_link(void (*fn)(void *), void *arg); /* spawn_link/1 */
OT_API ot_pid ot_spawn_opt(void (*fn)(void *), void *arg, const ot_spawn_opts *o);
OT_API ot_pid ot_spawn_handler(ot_handler_fn fn, void *state, const ot_spawn_opts *o);
OT_API ot_pid ot_self(void); /* self/0; OT_NOPID outside a process */
OT_API bool ot_is_alive(ot_pid p);
/* Writes p as crash reports print it, "<0.Index.Generation>" (OT_NOPID is
 * "<0.0.0>"): 0, -EINVAL for a NULL or empty buffer, -ENOSPC when it did not
 * fit (the buffer then holds as much as fits, NUL-terminated). 26 bytes are
 * always enough. */
OT_API int ot_pid_format(ot_pid p, char *buf, size_t len);
OT_API void ot_yield(void);
/* Process.sleep/1: 0, or -EINVAL for a negative ms other than OT_INFINITY
 * (which, like any ms past the clock's range, sleeps forever). */
OT_API int ot_sleep(int64_t ms);
OT_API _Noreturn void ot_exit_self(ot_reason why); /* exit/1 */
OT_API int ot_exit(ot_pid p, ot_reason why);       /* exit/2 */

OT_API void *ot_msg_data(const ot_msg *m);
/* send/2: copies; 0 also when `to` is dead, as in Erlang. */
OT_API int ot_send(ot_pid to, uint32_t tag, const void *data, size_t size);
/* Like ot_send, with a ref carried in the message (for replies). */
OT_API int ot_send_ref(ot_pid to, uint32_t tag, ot_ref ref, const void *data, size_t size);
OT_API ot_msg *ot_receive(int64_t timeout_ms); /* NULL on timeout (errno ETIMEDOUT) */
OT_API ot_msg *ot_receive_match(bool (*match)(const ot_msg *, void *), void *arg,
                                int64_t timeout_ms);
OT_API ot_msg *ot_receive_tag(uint32_t tag, int64_t timeout_ms);
OT_API ot_msg *ot_receive_ref(ot_ref ref, int64_t timeout_ms); /* O(1) in old mail */
OT_API void ot_msg_free(ot_msg *m);                            /* else freed at exit */
OT_API ot_ref ot_make_ref(void);                               /* make_ref/0 */

OT_API int ot_link(ot_pid p);       /* link/1 */
OT_API int ot_unlink(ot_pid p);     /* unlink/1 */
OT_API ot_ref ot_monitor(ot_pid p); /* monitor(process, P): DOWN noproc at once if dead */
#define OT_DEMONITOR_FLUSH 1u
OT_API int ot_demonitor(ot_ref r, unsigned flags);
OT_API bool ot_trap_exit(bool on); /* process_flag(trap_exit, on): the old value */

#define OT_NAME_MAX 64
OT_API int ot_register(const char *name, ot_pid p); /* register/2: -EEXIST, -EINVAL */
OT_API int ot_unregister(const char *name);         /* -ENOENT if not registered */
OT_API ot_pid ot_whereis(const char *name);         /* OT_NOPID if none */

enum ot_proc_status {
    OT_STATUS_RUNNING = 1,
    OT_STATUS_RUNNABLE,
    OT_STATUS_WAITING,
    OT_STATUS_EXITING,
};

#define OT_INFO_MAX_LIST 16
/* A struct tag, not a typedef: the C namespace cannot hold both a type and
 * the function ot_process_info of API.md under one name. */
struct ot_process_info {
    int status;
    bool handler; /* a handler process */
    bool trap_exit;
    int scheduler;
    size_t message_queue_len; /* sent to it and not yet received */
    size_t unfreed_messages;  /* received and not yet given to ot_msg_free */
    size_t unfreed_bytes;     /* their bytes: payloads plus a 56-byte envelope each */
    uint64_t reductions;
    size_t heap_bytes;  /* bytes held by the process heap */
    size_t stack_bytes; /* stack reservation (0 for an idle handler) */
    size_t n_links;     /* all of them; the first OT_INFO_MAX_LIST are in links */
    ot_pid links[OT_INFO_MAX_LIST];
    size_t n_monitors; /* monitors this process holds on others */
    size_t n_monitored_by;
    char name[OT_NAME_MAX]; /* registered name, "" if none */
    char behaviour[32];     /* "" if none */
    void *entry;            /* the function it was spawned with (stackful or handler) */
    /* Where it is: for a stackful process switched out (or a handler
     * blocked in its callback), the innermost frame of its stack outside
     * the runtime; else, or where no name is found, its entry function.
     * "name+0xoff", or "0x..." when dladdr knows no name (see ot_dump). */
    char current_function[64];
    /* gen_server's (gen_server.h), 0 for other processes */
    uint64_t calls_expired;  /* calls dropped before handle_call: their caller had given up */
    uint64_t calls_rejected; /* calls refused by the overload policy (-EAGAIN) */
    uint64_t casts_dropped;  /* casts dropped by the overload policy */
};
OT_API int ot_process_info(ot_pid p, struct ot_process_info *out); /* -ESRCH if dead */
/* Fills out with up to cap live pids; returns how many are alive in all. */
OT_API size_t ot_processes(ot_pid *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
