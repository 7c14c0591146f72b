/* The client half of gen_server: start (proc_lib's synchronous start), call,
 * cast, reply, stop, and names. A process waits on an alias that is also its
 * monitor of the server (OTP 24's monitor with {alias, reply_demonitor}), so
 * a server's death ends the wait with its reason, and once the wait is over
 * by a timeout the core drops any reply still to come. A foreign thread
 * cannot monitor: it waits on a plain alias in slices of FOREIGN_SLICE_MS and
 * looks at whether the server is still alive between them. */
#include "runtime/otp/gs.h"
#include "runtime/otp/rules.h"

#include <stdlib.h>
#include <string.h>

#define FOREIGN_SLICE_MS 100

static bool timeout_ok(int64_t ms) {
    return ms == OT_INFINITY || (ms >= 0 && ms <= OT_CALL_TIMEOUT_MAX);
}

static bool same_reason(ot_reason a, ot_reason b) {
    return a.kind == b.kind && a.detail == b.detail && strncmp(a.text, b.text, sizeof a.text) == 0;
}

/* Waits for a message carrying ref (a reply through the alias, or the DOWN
 * of the monitor that is the alias). On a foreign thread, `watch` is polled:
 * when it is gone and nothing came, *gone is set. */
static ot_msg *wait_ref(ot_ref ref, int64_t timeout_ms, bool foreign, ot_pid watch, bool *gone) {
    *gone = false;
    if (!foreign)
        return ot_receive_ref(ref, timeout_ms);
    int64_t deadline = timeout_ms == OT_INFINITY ? OT_INFINITY : ot_now_ms() + timeout_ms;
    for (;;) {
        int64_t slice = FOREIGN_SLICE_MS;
        if (deadline != OT_INFINITY) {
            int64_t left = deadline - ot_now_ms();
            if (left < 0)
                left = 0;
            if (left < slice)
                slice = left;
        }
        ot_msg *m = ot_receive_ref(ref, slice);
        if (m)
            return m;
        if (errno == ENOTCONN)
            return NULL; /* ot_stop began: nothing will come */
        if (watch.v && !ot_is_alive(watch)) {
            m = ot_receive_ref(ref, 0); /* it may have answered before it went */
            if (!m)
                *gone = true;
            return m;
        }
        if (deadline != OT_INFINITY && ot_now_ms() >= deadline) {
            errno = ETIMEDOUT;
            return NULL;
        }
    }
}

static void end_wait(ot_ref ref, bool foreign) {
    if (foreign)
        ot__unalias_foreign(ref);
    else
        ot_demonitor(ref, OT_DEMONITOR_FLUSH);
}

/* ---- start ------------------------------------------------------------------------ */

static int check_name(const ot_name *n) {
    switch (n->kind) {
    case OT_NAME_NONE:
        return 0;
    case OT_NAME_LOCAL:
        if (!n->local || !n->local[0])
            return -EINVAL;
        return strlen(n->local) >= OT_NAME_MAX ? -ENAMETOOLONG : 0;
    case OT_NAME_VIA:
        if (!n->via || !n->via->register_name || !n->via->whereis_name || (n->key_len && !n->key))
            return -EINVAL;
        return n->key_len > OT_VIA_KEY_MAX ? -ENAMETOOLONG : 0;
    default:
        return -EINVAL;
    }
}

static int check_start(const ot_gen_server *b, const ot_start_opts *o) {
    if (!b || !b->init || !b->handle_call)
        return -EINVAL;
    if (!o)
        return 0;
    if (!timeout_ok(o->timeout_ms))
        return -EINVAL;
    if (o->overload & ~(OT_OVERLOAD_REJECT_CALLS | OT_OVERLOAD_DROP_CASTS))
        return -EINVAL;
    if ((o->overload && !o->max_queue) || o->max_queue > UINT32_MAX || o->warn_queue > UINT32_MAX)
        return -EINVAL;
    return check_name(&o->name);
}

static void fill_req(struct gs_init_req *q, const ot_gen_server *b, void *arg,
                     const ot_start_opts *o) {
    memset(q, 0, sizeof *q);
    q->b = b;
    q->arg = arg;
    if (!o)
        return;
    q->max_queue = (uint32_t)o->max_queue;
    q->warn_queue = (uint32_t)o->warn_queue;
    q->overload = o->overload;
    q->keep_expired = o->keep_expired;
    q->name_kind = o->name.kind;
    if (o->name.kind == OT_NAME_LOCAL) {
        strcpy(q->local, o->name.local); /* length checked */
    } else if (o->name.kind == OT_NAME_VIA) {
        q->via = o->name.via;
        q->via_arg = o->name.via_arg;
        q->key_len = o->name.key_len;
        if (q->key_len)
            memcpy(q + 1, o->name.key, q->key_len);
    }
}

static bool is_exit_of(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_EXIT && m->size == sizeof(ot_exit_msg) &&
           ((const ot_exit_msg *)ot_msg_data(m))->pid.v == *(const uint64_t *)arg;
}

/* proc_lib's kill_flush: the start timed out. */
static void kill_child(ot_pid child, ot_ref ref, bool link, bool foreign) {
    if (link)
        ot_unlink(child); /* so the caller sees no EXIT */
    ot_exit(child, OT_REASON(OT_KILL));
    end_wait(ref, foreign);
    if (link) { /* an EXIT that came before the unlink */
        ot_msg *m = ot_receive_match(is_exit_of, &child.v, 0);
        if (m)
            ot_msg_free(m);
    }
}

int ot__gs_start(const ot_gen_server *b, void *arg, const ot_start_opts *o, ot_pid *out,
                 bool link) {
    int rc = check_start(b, o);
    if (rc)
        return rc;
    if (!out)
        return -EINVAL;
    *out = OT_NOPID;
    bool foreign = ot_self().v == 0;
    if (link && foreign)
        return -EPERM;
    int64_t timeout = o && o->timeout_ms ? o->timeout_ms : OT_INFINITY;
    union {
        struct gs_init_req q;
        char bytes[sizeof(struct gs_init_req) + OT_VIA_KEY_MAX];
    } buf;
    fill_req(&buf.q, b, arg, o);
    ot_ref ref = OT_NOREF;
    ot_spawn_opts so = {.link = link,
                        .monitor = !foreign,
                        .monitor_ref = &ref,
                        .behaviour = b->name ? b->name : "gen_server"};
    if (o && o->scheduler_set) {
        so.scheduler = o->scheduler;
        so.scheduler_set = true;
    }
    ot_pid child = ot_spawn_handler(ot__gs_handle, NULL, &so);
    if (!child.v)
        return -errno;
    if (foreign && !(ref = ot__alias_foreign()).v) {
        ot_exit(child, OT_REASON(OT_KILL));
        return -errno;
    }
    buf.q.starter = foreign ? ot__foreign_pid() : ot_self(); /* where the ack goes */
    buf.q.ack = ref;
    buf.q.parent = link ? ot_self() : child; /* start/3: the process is its own parent */
    struct gs_trailer t = {0, GS_MAGIC | GS_INIT, OT_INFINITY};
    rc = ot__send2(child, OT_TAG_CAST, OT_NOREF, &buf, sizeof buf.q + buf.q.key_len, &t, sizeof t);
    if (rc < 0) {
        kill_child(child, ref, link, foreign);
        return rc;
    }
    bool gone;
    ot_msg *m = wait_ref(ref, timeout, foreign, child, &gone);
    if (!m) {
        if (errno == ENOTCONN) { /* ot_stop began: it ends the child too */
            end_wait(ref, foreign);
            return -ENOTCONN;
        }
        if (gone) {
            end_wait(ref, foreign);
            if (o && o->why)
                *o->why = ot_reason_error("gen_server died during init");
            return -ECHILD;
        }
        kill_child(child, ref, link, foreign);
        return -ETIMEDOUT;
    }
    if (m->tag == OT_TAG_DOWN) { /* died during init: a fault, ot_exit_self, a kill */
        const ot_down_msg *d = ot_msg_data(m);
        if (o && o->why)
            *o->why = d->reason;
        ot_msg_free(m);
        return -ECHILD;
    }
    struct gs_ack a;
    memcpy(&a, ot_msg_data(m), sizeof a);
    ot_msg_free(m);
    if (foreign)
        ot__unalias_foreign(ref);
    if (a.rc == -ECHILD && o && o->why)
        *o->why = a.why;
    if (a.rc == -EEXIST)
        *out = a.holder;
    if (a.rc == 0)
        *out = child;
    return a.rc;
}

int ot_gen_server_start_link(const ot_gen_server *b, void *arg, const ot_start_opts *o,
                             ot_pid *out) {
    int rc = ot__gs_start(b, arg, o, out, true);
    if (rc == 0)
        ot__rule_supervised(*out, b->name ? b->name : "gen_server");
    return rc;
}

int ot_gen_server_start(const ot_gen_server *b, void *arg, const ot_start_opts *o, ot_pid *out) {
    int rc = ot__gs_start(b, arg, o, out, false);
    if (rc == 0)
        ot__rule_supervised(*out, b->name ? b->name : "gen_server");
    return rc;
}

/* ---- call, cast, reply -------------------------------------------------------------- */

int ot_call_ex(ot_pid s, uint32_t tag, const void *req, size_t len, ot_msg **reply,
               int64_t timeout_ms, ot_reason *exit_reason) {
    if (!reply || !timeout_ok(timeout_ms) || (len && !req))
        return -EINVAL;
    *reply = NULL;
    if (len > OT_MSG_MAX - sizeof(struct gs_trailer))
        return -EMSGSIZE;
    ot_pid me = ot_self();
    if (me.v && me.v == s.v)
        return -EDEADLK;
    int ok = ot__proc_calls_ok(s);
    if (ok <= 0)
        return ok < 0 ? ok : -ENOTSUP; /* -ESRCH, or -ENOTCONN once ot_stop began */
    struct gs_trailer t = {tag, GS_MAGIC | GS_CALL,
                           timeout_ms == OT_INFINITY ? OT_INFINITY : ot_now_ms() + timeout_ms};
    bool foreign = me.v == 0;
    ot_ref ref;
    if (!foreign) {
        ref = ot__call_send(s, OT_TAG_CALL, req, len, &t, sizeof t);
        if (!ref.v)
            return -errno;
    } else {
        if (!(ref = ot__alias_foreign()).v)
            return -errno;
        int rc = ot__send2(s, OT_TAG_CALL, ref, req, len, &t, sizeof t);
        if (rc < 0) {
            end_wait(ref, foreign);
            return rc;
        }
    }
    bool gone;
    ot_msg *m = wait_ref(ref, timeout_ms, foreign, s, &gone);
    if (!m) {
        int e = errno;
        end_wait(ref, foreign);
        if (e == ENOTCONN)
            return -ENOTCONN;
        if (gone) {
            if (exit_reason)
                *exit_reason = OT_REASON(OT_NOPROC);
            return -ECONNRESET;
        }
        return -ETIMEDOUT;
    }
    switch (m->tag) {
    case OT_TAG_REPLY:
        *reply = m; /* the alias and the monitor ended with it (reply_demonitor) */
        return 0;
    case OT_TAG_DOWN: {
        const ot_down_msg *d = ot_msg_data(m);
        ot_reason why = d->reason;
        ot_msg_free(m);
        if (why.kind == OT_NOPROC)
            return -ESRCH;
        if (exit_reason)
            *exit_reason = why;
        return -ECONNRESET;
    }
    default: /* OT_TAG_CALL: refused by the overload policy */
        ot_msg_free(m);
        return -EAGAIN;
    }
}

int ot_call(ot_pid s, uint32_t tag, const void *req, size_t len, ot_msg **reply,
            int64_t timeout_ms) {
    return ot_call_ex(s, tag, req, len, reply, timeout_ms, NULL);
}

static int cast_kind(ot_pid s, uint32_t tag, const void *msg, size_t len, uint32_t kind) {
    if (len && !msg)
        return -EINVAL;
    if (len > OT_MSG_MAX - sizeof(struct gs_trailer))
        return -EMSGSIZE;
    int ok = ot__proc_calls_ok(s);
    if (ok < 0) /* a cast to a dead server is fine, as in OTP */
        return ok == -ENOTCONN ? ok : s.v ? 0 : -ESRCH;
    if (!ok)
        return -ENOTSUP;
    struct gs_trailer t = {tag, GS_MAGIC | kind, OT_INFINITY};
    int rc = ot__send2(s, OT_TAG_CAST, OT_NOREF, msg, len, &t, sizeof t);
    return rc == -ESRCH ? 0 : rc;
}

int ot_cast(ot_pid s, uint32_t tag, const void *msg, size_t len) {
    return cast_kind(s, tag, msg, len, GS_CAST);
}

int ot_reply(ot_from from, const void *data, size_t len) {
    if (!from.pid.v || !from.ref.v || (len && !data))
        return -EINVAL;
    if (len > OT_MSG_MAX)
        return -EMSGSIZE;
    return ot__reply_send(from.pid, OT_TAG_REPLY, from.ref, data, len);
}

int64_t ot_from_time_left(ot_from from) {
    if (from.deadline == OT_INFINITY)
        return OT_INFINITY;
    int64_t left = from.deadline - ot_now_ms();
    return left > 0 ? left : 0;
}

/* ---- stop ----------------------------------------------------------------------------- */

int ot_gen_server_stop_ex(ot_pid s, ot_reason why, int64_t timeout_ms, ot_reason *got) {
    if (!timeout_ok(timeout_ms) || why.kind < OT_NORMAL || why.kind > OT_HEAP_LIMIT)
        return -EINVAL;
    ot_pid me = ot_self();
    if (me.v && me.v == s.v)
        return -EDEADLK;
    int ok = ot__proc_calls_ok(s);
    if (ok <= 0)
        return ok < 0 ? ok : -ENOTSUP;
    bool foreign = me.v == 0;
    ot_ref ref = OT_NOREF;
    if (!foreign && !(ref = ot_monitor(s)).v)
        return -errno;
    int rc = cast_kind(s, 0, &why, sizeof why, GS_STOP);
    if (rc < 0) {
        if (!foreign)
            ot_demonitor(ref, OT_DEMONITOR_FLUSH);
        return rc;
    }
    if (foreign) { /* no monitor: watch it go */
        int64_t deadline = timeout_ms == OT_INFINITY ? OT_INFINITY : ot_now_ms() + timeout_ms;
        while (ot_is_alive(s)) {
            if (deadline != OT_INFINITY && ot_now_ms() >= deadline)
                return -ETIMEDOUT;
            ot_sleep(1);
        }
        return 0; /* the reason is not known here */
    }
    ot_msg *m = ot_receive_ref(ref, timeout_ms);
    if (!m) {
        ot_demonitor(ref, OT_DEMONITOR_FLUSH);
        return -ETIMEDOUT;
    }
    ot_reason r = ((const ot_down_msg *)ot_msg_data(m))->reason;
    ot_msg_free(m);
    if (same_reason(r, why)) /* before noproc: a server stopped with noproc exits with it */
        return 0;
    if (r.kind == OT_NOPROC)
        return -ESRCH;
    if (got)
        *got = r;
    return -ECONNRESET;
}

int ot_gen_server_stop(ot_pid s, ot_reason why, int64_t timeout_ms) {
    return ot_gen_server_stop_ex(s, why, timeout_ms, NULL);
}

/* ---- names ------------------------------------------------------------------------------ */

ot_pid ot_whereis_name(const ot_name *n) {
    if (!n || n->kind == OT_NAME_NONE || check_name(n))
        return OT_NOPID;
    if (n->kind == OT_NAME_LOCAL)
        return ot_whereis(n->local);
    return n->via->whereis_name(n->via_arg, n->key, n->key_len);
}

int ot_call_name(const ot_name *n, uint32_t tag, const void *req, size_t len, ot_msg **reply,
                 int64_t timeout_ms) {
    if (!n || check_name(n) || n->kind == OT_NAME_NONE || !reply || !timeout_ok(timeout_ms))
        return -EINVAL; /* bad input first, as ot_call: not -ESRCH for a free name */
    ot_pid p = ot_whereis_name(n);
    if (!p.v) {
        *reply = NULL;
        return -ESRCH;
    }
    return ot_call(p, tag, req, len, reply, timeout_ms);
}

int ot_cast_name(const ot_name *n, uint32_t tag, const void *msg, size_t len) {
    if (!n || check_name(n) || n->kind == OT_NAME_NONE)
        return -EINVAL;
    ot_pid p = ot_whereis_name(n);
    return p.v ? ot_cast(p, tag, msg, len) : 0;
}

ot_ref ot_monitor_name(const char *name) {
    if (!name || !name[0] || strlen(name) >= OT_NAME_MAX) {
        errno = EINVAL;
        return OT_NOREF;
    }
    ot_pid me = ot_self();
    if (!me.v) {
        errno = EPERM;
        return OT_NOREF;
    }
    ot_pid p = ot_whereis(name);
    if (p.v)
        return ot_monitor(p);
    /* monitor(process, Name) of an unregistered name: DOWN noproc at once */
    ot_ref r = ot_make_ref();
    ot_down_msg d = {.ref = r, .pid = OT_NOPID, .reason = OT_REASON(OT_NOPROC)};
    ot_send_ref(me, OT_TAG_DOWN, r, &d, sizeof d);
    return r;
}
