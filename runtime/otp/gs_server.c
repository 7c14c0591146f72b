/* The gen_server loop (OTP 25's gen_server:loop), as the callback of a
 * handler process: called once per message with no stack between messages.
 * Its first message is always the init request (the starter sends it before
 * anyone else can know the pid); the server's record is made then, handed to
 * the core as the handler's state, and freed by a resource hook at exit,
 * however the process ends.
 *
 * Invariants: handle_continue runs inside the same callback run as the
 * callback that asked for it, so no message is taken before it; a return
 * timeout is a timer message tagged with a sequence number, and any other
 * message first cancels it (a late one is recognised by its number and
 * dropped); a reply that rides on a stop is copied and sent after terminate,
 * as OTP does; calls whose caller has given up are dropped before
 * handle_call unless the server keeps them. */
#include "runtime/otp/gs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TMO_MAGIC 0x746d6f67u

struct tmo_msg {
    uint32_t magic;
    uint32_t seq;
};

static void gs_release(struct ot__res *r, ot_pid owner) {
    (void)owner;
    free(r);
}

static const char *gs_name(const struct gs *g) {
    return g->b->name ? g->b->name : "gen_server";
}

static void report_stop(struct gs *g, ot_reason why) {
    char rb[128], sb[256] = "";
    ot_reason_format(why, rb, sizeof rb);
    if (g->b->format_status)
        g->b->format_status(g->state, sb, sizeof sb);
    ot_pid me = ot_self();
    ot_log(OT_LOG_ERROR, "gen_server %s <0.%u.%u> terminating: reason %s; state: %s", gs_name(g),
           (unsigned)(me.v & 0xffffffffu), (unsigned)(me.v >> 32), rb, sb);
}

/* terminate, then the reply if the stop carried one, then exit. */
static _Noreturn void do_stop(struct gs *g, ot_reason why, const ot_from *from, const void *reply,
                              size_t len) {
    void *copy = NULL;
    if (from && len) {
        copy = malloc(len);
        if (copy)
            memcpy(copy, reply, len);
    }
    if (g->tmo.v)
        ot_cancel_timer(g->tmo);
    if (g->b->terminate)
        g->b->terminate(g->state, why);
    if (!ot_reason_is_normal(why))
        report_stop(g, why);
    if (from)
        ot_reply(*from, copy, copy ? len : 0);
    free(copy);
    ot_exit_self(why);
}

static void arm_timeout(struct gs *g, int64_t ms) {
    if (ms == OT_INFINITY)
        return; /* the same as no timeout */
    struct tmo_msg t = {TMO_MAGIC, ++g->tmo_seq};
    if (ms == 0) {
        /* after 0: behind whatever is queued now, as receive ... after 0 */
        ot_send(ot_self(), OT_TAG_TIMEOUT, &t, sizeof t);
        g->tmo = (ot_ref){1}; /* armed, no timer to cancel */
        return;
    }
    g->tmo = ot_send_after(ot_self(), ms, OT_TAG_TIMEOUT, &t, sizeof t);
    if (!g->tmo.v)
        ot_exit_self(ot_reason_error("gen_server timeout: %s", ot_strerror(-errno)));
}

static void disarm_timeout(struct gs *g) {
    if (g->tmo.v > 1)
        ot_cancel_timer(g->tmo);
    g->tmo = OT_NOREF;
    g->tmo_seq++; /* a timeout message already sent is stale now */
}

static void hibernate(struct gs *g) {
    (void)g;
    ot__proc_shrink();
}

static _Noreturn void bad_return(struct gs *g, const char *cb) {
    do_stop(g, ot_reason_error("bad_return_value from %s", cb), NULL, NULL, 0);
}

/* A result OTP would refuse as bad_return_value: a kind out of range, a
 * reply where there is no call, or a timeout no receive accepts (negative
 * other than OT_INFINITY: OTP's `after -5` raises timeout_value). */
static bool bad_ret(const ot_gs_ret *r, bool has_from) {
    if (r->has_reply && !has_from)
        return true;
    if (r->kind < OT_GS_OK || r->kind > OT_GS_STOP)
        return true;
    return r->kind == OT_GS_TIMEOUT && r->ms < 0 && r->ms != OT_INFINITY;
}

/* Acts on a callback's result; handle_continue results loop here, so they
 * run before any further message. from is set for handle_call only. A bad
 * result stops the server before any reply it carries is sent, as OTP. */
static void apply(struct gs *g, ot_gs_ret r, const ot_from *from, const char *cb) {
    for (;;) {
        if (bad_ret(&r, from != NULL))
            bad_return(g, cb);
        if (r.kind == OT_GS_STOP)
            do_stop(g, r.why, r.has_reply ? from : NULL, r.reply, r.reply_len);
        if (r.has_reply)
            ot_reply(*from, r.reply, r.reply_len);
        switch (r.kind) {
        case OT_GS_CONTINUE:
            if (!g->b->handle_continue)
                do_stop(g, ot_reason_error("undefined handle_continue"), NULL, NULL, 0);
            r = g->b->handle_continue(g->state, r.tag);
            from = NULL;
            cb = "handle_continue";
            continue;
        case OT_GS_TIMEOUT:
            arm_timeout(g, r.ms);
            return;
        case OT_GS_HIBERNATE:
            hibernate(g);
            return;
        default:
            return;
        }
    }
}

/* ---- init -------------------------------------------------------------------- */

static void ack(const struct gs_init_req *q, int32_t rc, ot_pid holder, ot_reason why) {
    struct gs_ack a = {.rc = rc, .holder = holder, .why = why};
    ot__reply_send(q->starter, OT_TAG_REPLY, q->ack, &a, sizeof a);
}

static int register_name(const struct gs_init_req *q, ot_pid *holder) {
    ot_pid me = ot_self();
    int rc = 0;
    if (q->name_kind == OT_NAME_LOCAL) {
        rc = ot_register(q->local, me);
        if (rc == -EEXIST)
            *holder = ot_whereis(q->local);
    } else if (q->name_kind == OT_NAME_VIA) {
        rc = q->via->register_name(q->via_arg, q + 1, q->key_len, me);
        if (rc == -EEXIST)
            *holder = q->via->whereis_name(q->via_arg, q + 1, q->key_len);
    }
    return rc;
}

static void unregister_name(const struct gs_init_req *q) {
    if (q->name_kind == OT_NAME_LOCAL)
        ot_unregister(q->local);
    else if (q->name_kind == OT_NAME_VIA && q->via->unregister_name)
        q->via->unregister_name(q->via_arg, q + 1, q->key_len);
}

static int gs_init(const ot_msg *m) {
    struct gs_trailer t;
    if (m->tag != OT_TAG_CAST || !gs_trailer_get(m, &t) || (t.kind & GS_KIND_MASK) != GS_INIT ||
        m->size < sizeof t + sizeof(struct gs_init_req))
        ot_exit_self(ot_reason_error("gen_server: no init request"));
    const struct gs_init_req *q = ot_msg_data(m);
    struct gs *g = calloc(1, sizeof *g);
    if (!g) {
        ack(q, -ENOMEM, OT_NOPID, OT_REASON(OT_NORMAL));
        ot_exit_self(OT_REASON(OT_NORMAL));
    }
    g->res.release = gs_release;
    g->b = q->b;
    g->parent = q->parent;
    g->max_queue = q->max_queue;
    g->warn_queue = q->warn_queue;
    g->overload = (uint16_t)q->overload;
    g->flags = q->keep_expired ? GSF_KEEP_EXPIRED : 0;
    ot__res_add(&g->res);
    ot__handler_set_state(g);
    ot__proc_accept_calls();
    ot_pid holder = OT_NOPID;
    int rc = register_name(q, &holder);
    if (rc < 0) {
        /* {error, {already_started, Pid}}, and the process ends normally */
        ack(q, rc == -EEXIST ? -EEXIST : rc, holder, OT_REASON(OT_NORMAL));
        ot_exit_self(OT_REASON(OT_NORMAL));
    }
    ot_gs_ret r = g->b->init(q->arg, &g->state);
    if (r.kind == OT_GS_IGNORE ? r.has_reply : bad_ret(&r, false))
        r.kind = -1;
    switch (r.kind) {
    case OT_GS_OK:
    case OT_GS_CONTINUE:
    case OT_GS_TIMEOUT:
    case OT_GS_HIBERNATE:
        ack(q, 0, OT_NOPID, OT_REASON(OT_NORMAL));
        ot__proc_shrink(); /* the starter's monitor ended with the ack: its table goes */
        apply(g, r, NULL, "init");
        return 0;
    case OT_GS_IGNORE:
        unregister_name(q);
        ack(q, OT_IGNORED, OT_NOPID, OT_REASON(OT_NORMAL));
        ot_exit_self(OT_REASON(OT_NORMAL));
    case OT_GS_STOP:
        unregister_name(q);
        ack(q, -ECHILD, OT_NOPID, r.why);
        ot_exit_self(r.why);
    default: {
        ot_reason why = ot_reason_error("bad_return_value from init");
        unregister_name(q);
        ack(q, -ECHILD, OT_NOPID, why);
        ot_exit_self(why);
    }
    }
}

/* ---- the loop ------------------------------------------------------------------- */

/* Gives the callback the user's view of a protocol message. */
static void strip(ot_msg *m, const struct gs_trailer *t) {
    m->tag = t->tag;
    m->size -= (uint32_t)sizeof *t;
}

static void check_queue(struct gs *g, size_t *qlen) {
    *qlen = ot__self_queue_len();
    if (!g->warn_queue)
        return;
    if (*qlen > g->warn_queue && !(g->flags & GSF_WARNED)) {
        g->flags |= GSF_WARNED;
        ot_pid me = ot_self();
        ot_log(OT_LOG_WARNING, "gen_server %s <0.%u.%u>: %zu messages queued (threshold %u)",
               gs_name(g), (unsigned)(me.v & 0xffffffffu), (unsigned)(me.v >> 32), *qlen,
               g->warn_queue);
    } else if (*qlen <= g->warn_queue / 2) {
        g->flags &= (uint16_t)~GSF_WARNED;
    }
}

static void on_call(struct gs *g, ot_msg *m, const struct gs_trailer *t, size_t qlen) {
    ot_from from = {m->from, m->ref, t->deadline};
    if (!(g->flags & GSF_KEEP_EXPIRED) && t->deadline != OT_INFINITY &&
        ot_now_ms() >= t->deadline) {
        atomic_fetch_add_explicit(&g->calls_expired, 1, memory_order_relaxed);
        return;
    }
    if ((g->overload & OT_OVERLOAD_REJECT_CALLS) && qlen > g->max_queue) {
        atomic_fetch_add_explicit(&g->calls_rejected, 1, memory_order_relaxed);
        ot__reply_send(from.pid, OT_TAG_CALL, from.ref, NULL, 0);
        return;
    }
    strip(m, t);
    apply(g, g->b->handle_call(g->state, m, from), &from, "handle_call");
}

static void on_cast(struct gs *g, ot_msg *m, const struct gs_trailer *t, size_t qlen) {
    switch (t->kind & GS_KIND_MASK) {
    case GS_CAST:
        if ((g->overload & OT_OVERLOAD_DROP_CASTS) && qlen > g->max_queue) {
            atomic_fetch_add_explicit(&g->casts_dropped, 1, memory_order_relaxed);
            return;
        }
        if (!g->b->handle_cast)
            return;
        strip(m, t);
        apply(g, g->b->handle_cast(g->state, m), NULL, "handle_cast");
        return;
    case GS_STOP: {
        ot_reason why = OT_REASON(OT_NORMAL);
        if (m->size >= sizeof t + sizeof why)
            memcpy(&why, ot_msg_data(m), sizeof why);
        do_stop(g, why, NULL, NULL, 0);
    }
    default:
        return; /* a second init request: not ours to act on */
    }
}

static void on_info(struct gs *g, ot_msg *m) {
    if (m->tag == OT_TAG_EXIT && m->size == sizeof(ot_exit_msg)) {
        const ot_exit_msg *x = ot_msg_data(m);
        if (ot_pid_eq(x->pid, g->parent) && !ot_pid_eq(x->pid, ot_self()))
            do_stop(g, x->reason, NULL, NULL, 0); /* the parent's exit, when trapping */
    }
    if (!g->b->handle_info) {
        ot_log(OT_LOG_WARNING, "gen_server %s: undefined handle_info for a message tagged %u",
               gs_name(g), m->tag);
        return;
    }
    apply(g, g->b->handle_info(g->state, m), NULL, "handle_info");
}

/* A timeout message of ours: true when it is the armed one (for
 * handle_info), false with *stale set when it is an old one. */
static bool our_timeout(const struct gs *g, const ot_msg *m, bool *stale) {
    *stale = false;
    if (m->tag != OT_TAG_TIMEOUT || m->size != sizeof(struct tmo_msg) ||
        !ot_pid_eq(m->from, ot_self()))
        return false;
    struct tmo_msg t;
    memcpy(&t, ot_msg_data(m), sizeof t);
    if (t.magic != TMO_MAGIC)
        return false;
    if (g->tmo.v && t.seq == g->tmo_seq)
        return true;
    *stale = true;
    return false;
}

int ot__gs_handle(void *st, const ot_msg *cm) {
    struct gs *g = st;
    if (__builtin_expect(!g, 0))
        return gs_init(cm);
    ot_msg *m = (ot_msg *)(uintptr_t)cm; /* ours until we return: tag and size are fixed up */
    if (m->tag == OT_TAG_TIMEOUT) {
        bool stale;
        if (our_timeout(g, m, &stale)) {
            g->tmo = OT_NOREF;
            on_info(g, m);
            return 0;
        }
        if (stale)
            return 0;
    }
    if (g->tmo.v)
        disarm_timeout(g);
    size_t qlen = 0;
    if (g->max_queue | g->warn_queue)
        check_queue(g, &qlen);
    struct gs_trailer t;
    if (m->tag == OT_TAG_CALL && gs_trailer_get(m, &t) && (t.kind & GS_KIND_MASK) == GS_CALL)
        on_call(g, m, &t, qlen);
    else if (m->tag == OT_TAG_CAST && gs_trailer_get(m, &t))
        on_cast(g, m, &t, qlen);
    else
        on_info(g, m);
    return 0;
}

static void info_hook(void *st, struct ot_process_info *out) {
    struct gs *g = st;
    if (!g)
        return;
    out->calls_expired = atomic_load_explicit(&g->calls_expired, memory_order_relaxed);
    out->calls_rejected = atomic_load_explicit(&g->calls_rejected, memory_order_relaxed);
    out->casts_dropped = atomic_load_explicit(&g->casts_dropped, memory_order_relaxed);
}

__attribute__((constructor)) static void gs_hook_init(void) {
    ot__set_info_hook(ot__gs_handle, info_hook);
}
