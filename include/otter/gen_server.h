/* gen_server (OTP 25's gen_server, Elixir 1.14's GenServer): a handler
 * process (no stack between messages) that runs a behaviour's callbacks, with
 * synchronous calls whose late replies never land, casts, names (local, or
 * through any registry that implements ot_via_ops: Erlang's {via, Module,
 * Name}), call deadlines the server honours, and optional overload
 * protection. See docs/API.md for the contract and where it differs from OTP. */
#ifndef OTTER_GEN_SERVER_H
#define OTTER_GEN_SERVER_H

#include <otter/common.h>
#include <otter/process.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- names: local, or {via, Module, Name} ----------------------------------
 * A via module is a registry that maps an opaque key to one pid. The runtime
 * calls register_name from the new process itself (pid == ot_self()), before
 * init, as OTP does; the registry must drop the entry when that process
 * exits. register_name returns 0, -EEXIST when the key is held (the starter
 * then learns the holder from whereis_name) or another negative errno.
 * unregister_name is called when init returns ignore or stop, before the
 * starter is answered. whereis_name returns OT_NOPID when the key is free.
 * All three may be called from any process or foreign thread. */
typedef struct ot_via_ops {
    const char *module; /* for logs and process_info */
    int (*register_name)(void *reg, const void *key, size_t klen, ot_pid pid);
    int (*unregister_name)(void *reg, const void *key, size_t klen);
    ot_pid (*whereis_name)(void *reg, const void *key, size_t klen);
} ot_via_ops;

/* The kinds of ot_name. OT_NAME_LOCAL and OT_NAME_VIA are also the
 * constructor macros below (a function-like macro is only expanded when a '('
 * follows, so `n.kind == OT_NAME_LOCAL` is the enum constant). */
enum ot_name_kind { OT_NAME_NONE = 0, OT_NAME_LOCAL = 1, OT_NAME_VIA = 2 };

/* Via keys longer than this are refused with -ENAMETOOLONG (local names:
 * OT_NAME_MAX - 1 bytes, as ot_register). */
#define OT_VIA_KEY_MAX 256

typedef struct ot_name {
    int kind;              /* enum ot_name_kind */
    const char *local;     /* OT_NAME_LOCAL: the registered name */
    const ot_via_ops *via; /* OT_NAME_VIA: the registry's operations ... */
    void *via_arg;         /* ... its instance (passed as reg) ... */
    const void *key;       /* ... and the key (copied at start) */
    size_t key_len;
} ot_name;

#define OT_NAME_LOCAL(name_) ((ot_name){.kind = OT_NAME_LOCAL, .local = (name_)})
#define OT_NAME_VIA(ops_, reg_, key_, klen_)                                                       \
    ((ot_name){                                                                                    \
        .kind = OT_NAME_VIA, .via = (ops_), .via_arg = (reg_), .key = (key_), .key_len = (klen_)})

/* whereis for either kind: OT_NOPID when nothing holds the name (or n is
 * NULL or malformed). */
OT_API ot_pid ot_whereis_name(const ot_name *n);

/* ---- callback results ------------------------------------------------------ */
enum ot_gs_kind {
    OT_GS_OK = 0,    /* {noreply, S}, or {reply, R, S} when has_reply */
    OT_GS_CONTINUE,  /* {noreply, S, {continue, tag}}: handle_continue runs next */
    OT_GS_TIMEOUT,   /* {noreply, S, ms}: handle_info(OT_TAG_TIMEOUT) unless a message comes */
    OT_GS_HIBERNATE, /* {noreply, S, hibernate} */
    OT_GS_STOP,      /* {stop, why, S}: terminate(why), then exit(why) */
    OT_GS_IGNORE,    /* init only: ignore */
};

/* What a callback returns. Build it with the functions below; the fields are
 * public so that a reply can ride on any kind (has_reply, from handle_call
 * only). The reply is sent once the callback has returned (after terminate
 * for OT_GS_STOP, as OTP's {stop, Reason, Reply, State}), so its bytes must
 * outlive the callback: the state, static data or the request's own payload,
 * never the callback's locals (reply from a local with ot_reply, then return
 * ot_gs_ok()). */
typedef struct ot_gs_ret {
    int kind;      /* enum ot_gs_kind */
    uint32_t tag;  /* OT_GS_CONTINUE */
    int64_t ms;    /* OT_GS_TIMEOUT: >= 0 or OT_INFINITY, else bad_return_value */
    ot_reason why; /* OT_GS_STOP */
    bool has_reply;
    const void *reply;
    size_t reply_len;
} ot_gs_ret;

static inline ot_gs_ret ot_gs_ok(void) {
    return (ot_gs_ret){.kind = OT_GS_OK};
}
static inline ot_gs_ret ot_gs_continue(uint32_t tag) {
    return (ot_gs_ret){.kind = OT_GS_CONTINUE, .tag = tag};
}
static inline ot_gs_ret ot_gs_timeout(int64_t ms) {
    return (ot_gs_ret){.kind = OT_GS_TIMEOUT, .ms = ms};
}
static inline ot_gs_ret ot_gs_hibernate(void) {
    return (ot_gs_ret){.kind = OT_GS_HIBERNATE};
}
static inline ot_gs_ret ot_gs_stop(ot_reason why) {
    return (ot_gs_ret){.kind = OT_GS_STOP, .why = why};
}
static inline ot_gs_ret ot_gs_ignore(void) {
    return (ot_gs_ret){.kind = OT_GS_IGNORE};
}
/* {reply, Reply, S} */
static inline ot_gs_ret ot_gs_reply(const void *data, size_t len) {
    return (ot_gs_ret){.kind = OT_GS_OK, .has_reply = true, .reply = data, .reply_len = len};
}
/* {stop, Reason, Reply, S}: the reply is sent after terminate */
static inline ot_gs_ret ot_gs_stop_reply(ot_reason why, const void *data, size_t len) {
    return (ot_gs_ret){
        .kind = OT_GS_STOP, .why = why, .has_reply = true, .reply = data, .reply_len = len};
}

/* ---- the behaviour ---------------------------------------------------------- */

/* A call's origin: reply to it with ot_reply, now or later, from any process.
 * deadline is the caller's, in ot_now_ms() time (OT_INFINITY if none). */
typedef struct ot_from {
    ot_pid pid;
    ot_ref ref; /* the caller's alias for this call */
    int64_t deadline;
} ot_from;

/* Every callback but init and handle_call may be NULL (handle_cast and
 * handle_info then drop the message, handle_continue does nothing, terminate
 * is skipped; format_status NULL prints nothing). Messages passed to callbacks
 * belong to the runtime and are freed when the callback returns. */
typedef struct ot_gen_server {
    const char *name; /* for logs and process_info's behaviour; NULL: "gen_server" */
    ot_gs_ret (*init)(void *arg, void **state);
    ot_gs_ret (*handle_call)(void *state, const ot_msg *req, ot_from from);
    ot_gs_ret (*handle_cast)(void *state, const ot_msg *msg);
    ot_gs_ret (*handle_info)(void *state, const ot_msg *msg);
    ot_gs_ret (*handle_continue)(void *state, uint32_t tag);
    void (*terminate)(void *state, ot_reason why);
    /* format_status: writes the state for a crash report or a stop report */
    int (*format_status)(const void *state, char *buf, size_t len);
} ot_gen_server;

/* Overload policies (bits of ot_start_opts.overload). */
enum {
    OT_OVERLOAD_REJECT_CALLS = 1, /* a call taken while more than max_queue messages
                                     wait is answered -EAGAIN, handle_call not run */
    OT_OVERLOAD_DROP_CASTS = 2,   /* a cast taken then is dropped and counted */
};

typedef struct ot_start_opts {
    ot_name name;       /* OT_NAME_NONE (zero) for no name */
    int64_t timeout_ms; /* start timeout: 0 or OT_INFINITY waits for init forever */
    size_t max_queue;   /* overload: the queue length past which the policy applies */
    int overload;       /* OT_OVERLOAD_* bits; 0: none (the default) */
    size_t warn_queue;  /* log a warning when the queue passes this; 0: never */
    bool keep_expired;  /* run handle_call even when the caller gave up already */
    int scheduler;      /* preferred scheduler, with scheduler_set */
    bool scheduler_set;
    ot_reason *why; /* out, may be NULL: the reason when start fails with -ECHILD */
} ot_start_opts;

/* Starts a gen_server and returns once init has returned (proc_lib's
 * synchronous start). Returns
 *   0             started (init returned ok or continue); *out is the pid
 *   OT_IGNORED    init returned ignore; *out is OT_NOPID (a positive value:
 *                 not an error, as a supervisor treats ignore)
 *   -EEXIST       the name is taken; *out is the holder
 *   -ECHILD       init returned stop, or the process died during init; *o->why
 *                 says why. With start_link, the caller is linked to a process
 *                 that exits with that reason, exactly as in OTP 25: a
 *                 trapping caller gets {'EXIT', Pid, why}, a non-trapping one
 *                 dies with it unless it is normal
 *   -ETIMEDOUT    init did not return in time: the process was killed (and
 *                 unlinked first, so the caller sees no EXIT)
 *   -EINVAL       b, b->init or b->handle_call NULL, bad options
 *   -ENAMETOOLONG the local name or the via key is too long
 *   -EPERM        start_link outside a process
 * start (no link) may be called from a foreign thread. */
#define OT_IGNORED 1
OT_API int ot_gen_server_start_link(const ot_gen_server *b, void *arg, const ot_start_opts *o,
                                    ot_pid *out);
OT_API int ot_gen_server_start(const ot_gen_server *b, void *arg, const ot_start_opts *o,
                               ot_pid *out);

/* gen_server:stop/3: terminate(why) runs in the server, which exits with why.
 * 0 when it exited with why; -ESRCH when s is not alive (noproc); -ETIMEDOUT
 * when it had not exited after timeout_ms; -ECONNRESET when it exited with
 * another reason (in *got if got is not NULL). */
OT_API int ot_gen_server_stop(ot_pid s, ot_reason why, int64_t timeout_ms);
OT_API int ot_gen_server_stop_ex(ot_pid s, ot_reason why, int64_t timeout_ms, ot_reason *got);

/* Calls: the longest timeout is OT_CALL_TIMEOUT_MAX ms (Erlang's), else -EINVAL. */
#define OT_CALL_TIMEOUT_MAX ((int64_t)4294967295)

/* GenServer.call: sends {tag, req} and waits for the reply (*reply, tag
 * OT_TAG_REPLY; ot_msg_free it). Returns 0, or
 *   -ETIMEDOUT   no reply in time; a reply sent later never lands in the
 *                caller's mailbox (the call's alias is deactivated)
 *   -ESRCH       the server is not alive (noproc)
 *   -ECONNRESET  the server exited during the call (ot_call_ex: the reason)
 *   -EAGAIN      refused by the server's overload policy
 *   -ENOTSUP     the process is not a gen_server (does not speak calls)
 *   -EDEADLK     a call to oneself
 *   -EINVAL      reply NULL, a timeout < 0 other than OT_INFINITY or too big
 *   -EMSGSIZE    req larger than OT_MSG_MAX - 16
 *   -ENOTCONN    ot_stop has begun (also for ot_cast, ot_reply and
 *                ot_gen_server_stop)
 * The caller's deadline travels with the request: the server sees it in
 * from.deadline and, by default, drops a request whose caller has given up
 * before running handle_call. Works from foreign threads too (there a server
 * that dies is noticed within 100 ms, as they cannot monitor, and gives
 * -ECONNRESET with reason noproc: its exit reason is not known there). */
OT_API int ot_call(ot_pid s, uint32_t tag, const void *req, size_t len, ot_msg **reply,
                   int64_t timeout_ms);
OT_API int ot_call_ex(ot_pid s, uint32_t tag, const void *req, size_t len, ot_msg **reply,
                      int64_t timeout_ms, ot_reason *exit_reason);
/* By name (OT_NAME_LOCAL or OT_NAME_VIA): -ESRCH when nothing holds it. */
OT_API int ot_call_name(const ot_name *n, uint32_t tag, const void *req, size_t len, ot_msg **reply,
                        int64_t timeout_ms);

/* GenServer.cast: 0 also when the server is dead, as in OTP; -ENOTSUP for a
 * live process that is not a gen_server, -EINVAL/-EMSGSIZE as ot_call. */
OT_API int ot_cast(ot_pid s, uint32_t tag, const void *msg, size_t len);
OT_API int ot_cast_name(const ot_name *n, uint32_t tag, const void *msg, size_t len);

/* GenServer.reply/2, from handle_call or later from any process or thread.
 * 0 when sent (a reply to a call that has ended, by timeout or an earlier
 * reply, is dropped by the caller's alias, never delivered); -ESRCH when the
 * caller is dead; -EINVAL for a from that is not one (no pid or ref). */
OT_API int ot_reply(ot_from from, const void *data, size_t len);

/* ms until the caller gives up, 0 if it has; OT_INFINITY if it never does. */
OT_API int64_t ot_from_time_left(ot_from from);

/* monitor(process, Name) for a local name: the DOWN carries the pid it
 * resolved to, or OT_NOPID with reason noproc at once when the name is not
 * registered. OT_NOREF with errno EPERM outside a process, EINVAL bad name. */
OT_API ot_ref ot_monitor_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
