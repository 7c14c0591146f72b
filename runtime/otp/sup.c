/* The supervisor process (OTP 25's supervisor as a stackful process that
 * traps exits; a DynamicSupervisor is the same process in dynamic mode). It
 * learns its flags and children from a first message, registers its name,
 * starts the children in order and answers its starter; then it serves one
 * message at a time: an EXIT from its parent stops every child in reverse
 * start order and exits with the parent's reason; an EXIT from a child is
 * restarted by the child's restart type and the strategy, each restart
 * counted against the intensity, past which every child is stopped and the
 * supervisor exits with shutdown; an EXIT from anyone else is ignored. A
 * restart that fails leaves the child "restarting" and is retried through a
 * message to itself (OTP's try_again_restart), so calls are answered in
 * between. Requests carry the caller's monitor ref and are answered with
 * OT_TAG_REPLY under it. */
#include "runtime/otp/sup_int.h"

#include <stdio.h>
#include <string.h>

/* ---- the children table ------------------------------------------------------ */

static struct child *by_id(struct sup *s, const char *id) {
    for (size_t i = 0; i < s->n; i++)
        if (s->children[i].state != C_FREE && strcmp(s->children[i].spec.id, id) == 0)
            return &s->children[i];
    return NULL;
}

static struct child *by_pid(struct sup *s, ot_pid p) {
    if (!p.v)
        return NULL;
    if (s->dynamic) {
        uint32_t i = ot__idmap_get(&s->pids, p.v);
        return i == OT__IDMAP_NONE ? NULL : &s->children[i];
    }
    for (size_t i = 0; i < s->n; i++)
        if (s->children[i].state == C_RUNNING && s->children[i].pid.v == p.v)
            return &s->children[i];
    return NULL;
}

/* A new entry: appended (start order) or, dynamic, a free slot. */
static struct child *add_child(struct sup *s, const struct sup_spec *sp) {
    size_t i;
    if (s->dynamic && s->nfree) {
        i = s->free_slots[--s->nfree];
    } else {
        if (s->n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 8;
            struct child *c = ot_realloc(s->children, cap * sizeof *c);
            size_t *f = s->dynamic ? ot_realloc(s->free_slots, cap * sizeof *f) : NULL;
            if (!c || (s->dynamic && !f)) {
                if (c)
                    s->children = c;
                if (f)
                    s->free_slots = f;
                return NULL;
            }
            s->children = c;
            s->free_slots = f;
            s->cap = cap;
        }
        i = s->n++;
    }
    struct child *c = &s->children[i];
    memset(c, 0, sizeof *c);
    c->spec = *sp;
    c->state = C_UNDEFINED;
    s->live++;
    return c;
}

static void remove_child(struct sup *s, struct child *c) {
    size_t i = (size_t)(c - s->children);
    if (s->dynamic) {
        ot__idmap_del(&s->pids, c->pid.v);
        c->state = C_FREE;
        c->pid = OT_NOPID;
        s->free_slots[s->nfree++] = i;
    } else {
        memmove(c, c + 1, (s->n - i - 1) * sizeof *c);
        s->n--;
    }
    s->live--;
}

/* Starts c and keeps the dynamic pid index in step. */
static int start(struct sup *s, struct child *c, ot_reason *why) {
    if (s->dynamic)
        ot__idmap_del(&s->pids, c->pid.v);
    int rc = ot__sup_start_child(s, c, why);
    if (rc == 0 && s->dynamic &&
        ot__idmap_put(&s->pids, c->pid.v, (uint32_t)(c - s->children)) < 0) {
        ot__sup_shutdown_child(s, c); /* cannot track it: do not keep it */
        rc = -ENOMEM;
    }
    return rc;
}

static void stop(struct sup *s, struct child *c) {
    if (s->dynamic)
        ot__idmap_del(&s->pids, c->pid.v);
    ot__sup_shutdown_child(s, c);
}

/* Every child, in reverse start order (a DynamicSupervisor's at once). */
static void stop_all(struct sup *s) {
    if (!s->dynamic) {
        for (size_t i = s->n; i-- > 0;)
            ot__sup_shutdown_child(s, &s->children[i]);
        return;
    }
    struct child **cs = ot_calloc(s->n ? s->n : 1, sizeof *cs);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->children[i].state == C_RUNNING) {
            if (cs)
                cs[k++] = &s->children[i];
            else
                stop(s, &s->children[i]);
        }
    ot__sup_shutdown_many(s, cs, k);
    ot_free(cs);
}

static _Noreturn void shut_down(struct sup *s, ot_reason why) {
    stop_all(s);
    ot_exit_self(why);
}

/* ---- restarts ------------------------------------------------------------------ */

static void retry_later(struct sup *s, struct child *c) {
    c->state = C_RESTARTING;
    c->pid = OT_NOPID;
    struct sup_req r = {.op = OP_RETRY, .retry = c->incarnation};
    r.spec = c->spec; /* the id finds it again; for a dynamic child, the slot: */
    r.cap = (size_t)(c - s->children);
    ot_send(s->self, OT__TAG_SUP_REQ, &r, sizeof r);
}

/* Starts, in order, the children a group restart stopped. A failure leaves
 * that child restarting (its retry restarts the group again, as OTP's
 * try_again_restart does) and the rest undefined until then. */
static void start_group(struct sup *s) {
    for (size_t i = 0; i < s->n; i++) {
        struct child *c = &s->children[i];
        if (!c->restarting_group)
            continue;
        c->restarting_group = false;
        c->incarnation++;
        int rc = start(s, c, NULL);
        if (rc < 0 && rc != OT_IGNORED) {
            for (size_t j = i + 1; j < s->n; j++)
                s->children[j].restarting_group = false;
            retry_later(s, c);
            return;
        }
    }
}

/* Stops children[from..] in reverse start order and marks them to start
 * again, except the temporary ones, which are dropped (OTP's
 * terminate_children: never restarted, even by a sibling's restart). */
static void stop_group(struct sup *s, size_t from) {
    for (size_t i = s->n; i-- > from;) {
        struct child *c = &s->children[i];
        ot__sup_shutdown_child(s, c);
        c->state = C_UNDEFINED;
        c->pid = OT_NOPID;
        if (c->spec.restart == OT_TEMPORARY)
            remove_child(s, c);
        else
            c->restarting_group = true;
    }
}

static void restart(struct sup *s, struct child *c) {
    if (!ot__sup_add_restart(s)) {
        ot_log(OT_LOG_ERROR, "supervisor %s: reached_max_restart_intensity, shutting down",
               s->name[0] ? s->name : "(unnamed)");
        shut_down(s, OT_REASON(OT_SHUTDOWN));
    }
    size_t i = (size_t)(c - s->children);
    if (s->dynamic || s->flags.strategy == OT_ONE_FOR_ONE) {
        c->incarnation++;
        int rc = start(s, c, NULL);
        if (rc == OT_IGNORED && s->dynamic)
            remove_child(s, c);
        else if (rc < 0)
            retry_later(s, c);
        return;
    }
    stop_group(s, s->flags.strategy == OT_ONE_FOR_ALL ? 0 : i);
    start_group(s);
}

static bool significant_left(const struct sup *s) {
    for (size_t i = 0; i < s->n; i++)
        if (s->children[i].spec.significant &&
            (s->children[i].state == C_RUNNING || s->children[i].state == C_RESTARTING))
            return true;
    return false;
}

static void child_exited(struct sup *s, struct child *c, ot_reason why) {
    if (!ot_reason_is_normal(why)) {
        char r[96];
        ot_reason_format(why, r, sizeof r);
        ot_log(OT_LOG_ERROR, "supervisor %s: child_terminated: child %s <0.%u.%u>: %s",
               s->name[0] ? s->name : "(unnamed)", c->spec.id[0] ? c->spec.id : "undefined",
               (unsigned)(c->pid.v & 0xffffffffu), (unsigned)(c->pid.v >> 32), r);
    }
    if (s->dynamic)
        ot__idmap_del(&s->pids, c->pid.v);
    c->pid = OT_NOPID;
    c->state = C_UNDEFINED;
    bool again = c->spec.restart == OT_PERMANENT ||
                 (c->spec.restart == OT_TRANSIENT && !ot_reason_is_normal(why));
    if (again) {
        restart(s, c);
        return;
    }
    bool significant = c->spec.significant;
    if (c->spec.restart == OT_TEMPORARY || s->dynamic)
        remove_child(s, c);
    if (significant && (s->flags.auto_shutdown == OT_AUTO_SHUTDOWN_ANY_SIGNIFICANT ||
                        (s->flags.auto_shutdown == OT_AUTO_SHUTDOWN_ALL_SIGNIFICANT &&
                         !significant_left(s))))
        shut_down(s, OT_REASON(OT_SHUTDOWN));
}

/* ---- requests ------------------------------------------------------------------ */

static int req_start_child(struct sup *s, const struct sup_spec *sp, ot_pid *out) {
    int rc = ot__sup_check_spec(sp, s->dynamic, s->flags.auto_shutdown);
    if (rc < 0)
        return rc;
    if (!s->dynamic) {
        struct child *old = by_id(s, sp->id);
        if (old) {
            *out = old->pid;
            return old->state == C_RUNNING ? -EEXIST : -EALREADY;
        }
    } else if (s->dyn.max_children && s->live >= s->dyn.max_children) {
        return -EAGAIN;
    }
    struct child *c = add_child(s, sp);
    if (!c)
        return -ENOMEM;
    rc = start(s, c, NULL);
    if (rc < 0 || (rc == OT_IGNORED && (s->dynamic || sp->restart == OT_TEMPORARY)))
        remove_child(s, c);
    else
        *out = c->pid;
    return rc;
}

static int req_terminate(struct sup *s, const struct sup_req *r) {
    struct child *c = s->dynamic ? by_pid(s, r->pid) : by_id(s, r->spec.id);
    if (!c)
        return -ENOENT;
    c->incarnation++; /* a pending retry is void */
    stop(s, c);
    c->state = C_UNDEFINED;
    if (s->dynamic || c->spec.restart == OT_TEMPORARY)
        remove_child(s, c);
    return 0;
}

/* A static child by id that is not running: restart_child's and
 * delete_child's target, or their error. */
static int stopped_child(struct sup *s, const struct sup_req *r, struct child **out) {
    struct child *c = s->dynamic ? NULL : by_id(s, r->spec.id);
    if (!c)
        return -ENOENT;
    if (c->state == C_RUNNING)
        return -EBUSY;
    if (c->state == C_RESTARTING)
        return -EINPROGRESS;
    *out = c;
    return 0;
}

static int req_restart(struct sup *s, const struct sup_req *r, ot_pid *out) {
    struct child *c;
    int rc = stopped_child(s, r, &c);
    if (rc < 0)
        return rc;
    c->incarnation++;
    rc = start(s, c, NULL);
    *out = c->pid;
    return rc;
}

static int req_delete(struct sup *s, const struct sup_req *r) {
    struct child *c;
    int rc = stopped_child(s, r, &c);
    if (rc == 0)
        remove_child(s, c);
    return rc;
}

static void req_retry(struct sup *s, const struct sup_req *r) {
    struct child *c = s->dynamic ? (r->cap < s->n ? &s->children[r->cap] : NULL)
                                 : by_id(s, r->spec.id);
    if (!c || c->state != C_RESTARTING || c->incarnation != r->retry)
        return; /* terminated, deleted or restarted meanwhile */
    c->state = C_UNDEFINED;
    restart(s, c);
}

static void fill_info(const struct child *c, ot_child_info *o) {
    memset(o, 0, sizeof *o);
    memcpy(o->id, c->spec.id, sizeof o->id);
    o->pid = c->state == C_RUNNING ? c->pid : OT_NOPID;
    o->state = c->state == C_RUNNING     ? OT_CHILD_RUNNING
               : c->state == C_RESTARTING ? OT_CHILD_RESTARTING
                                          : OT_CHILD_UNDEFINED;
    o->type = c->spec.type;
}

static void answer(ot_msg *m, const struct sup_rep *rep, size_t len) {
    ot_send_ref(m->from, OT_TAG_REPLY, m->ref, rep, len);
}

static void req_which(struct sup *s, ot_msg *m, size_t cap) {
    size_t total = s->live, k = cap < total ? cap : total;
    size_t len = sizeof(struct sup_rep) + k * sizeof(ot_child_info);
    struct sup_rep *rep = ot_calloc(1, len);
    if (!rep) {
        struct sup_rep e = {.rc = -ENOMEM};
        answer(m, &e, sizeof e);
        return;
    }
    rep->n = total;
    size_t j = 0;
    for (size_t i = s->n; i-- > 0 && j < k;) /* OTP's order: the newest first */
        if (s->children[i].state != C_FREE)
            fill_info(&s->children[i], &rep->info[j++]);
    answer(m, rep, len);
    ot_free(rep);
}

static void req_count(struct sup *s, ot_msg *m) {
    struct sup_rep rep = {0};
    for (size_t i = 0; i < s->n; i++) {
        const struct child *c = &s->children[i];
        if (c->state == C_FREE)
            continue;
        rep.counts.specs++;
        if (c->state == C_RUNNING && ot_is_alive(c->pid))
            rep.counts.active++;
        if (c->spec.type == OT_SUPERVISOR)
            rep.counts.supervisors++;
        else
            rep.counts.workers++;
    }
    answer(m, &rep, sizeof rep);
}

static void request(struct sup *s, ot_msg *m) {
    if (m->size < sizeof(struct sup_req))
        return;
    struct sup_req r;
    memcpy(&r, ot_msg_data(m), sizeof r);
    struct sup_rep rep = {0};
    switch (r.op) {
    case OP_START_CHILD:
        rep.rc = req_start_child(s, &r.spec, &rep.pid);
        break;
    case OP_TERMINATE_CHILD:
        rep.rc = req_terminate(s, &r);
        break;
    case OP_RESTART_CHILD:
        rep.rc = req_restart(s, &r, &rep.pid);
        break;
    case OP_DELETE_CHILD:
        rep.rc = req_delete(s, &r);
        break;
    case OP_WHICH_CHILDREN:
        req_which(s, m, r.cap);
        return;
    case OP_COUNT_CHILDREN:
        req_count(s, m);
        return;
    case OP_STOP: /* answered once the children are stopped, just before the exit */
        stop_all(s);
        answer(m, &rep, sizeof rep);
        ot_exit_self(r.why);
    case OP_RETRY:
        if (m->from.v == s->self.v)
            req_retry(s, &r);
        return;
    default:
        rep.rc = -EINVAL;
        break;
    }
    answer(m, &rep, sizeof rep);
}

/* ---- start-up ------------------------------------------------------------------ */

static void ack(ot_pid to, ot_ref ref, int rc, ot_pid holder, ot_reason why) {
    struct sup_ack a = {.rc = rc, .pid = holder, .why = why};
    ot_send_ref(to, OT__TAG_SUP_ACK, ref, &a, sizeof a);
}

static int take_name(struct sup *s, const struct sup_init *in, ot_pid *holder) {
    const char *name = (const char *)&in->specs[in->n];
    if (in->name_kind == OT_NAME_LOCAL) {
        int rc = ot_register(name, s->self);
        if (rc == -EEXIST)
            *holder = ot_whereis(name);
        snprintf(s->name, sizeof s->name, "%s", name);
        return rc;
    }
    if (in->name_kind == OT_NAME_VIA) {
        int rc = in->via->register_name(in->via_arg, name, in->name_len, s->self);
        if (rc == -EEXIST)
            *holder = in->via->whereis_name(in->via_arg, name, in->name_len);
        snprintf(s->name, sizeof s->name, "{via,%s}", in->via->module ? in->via->module : "?");
        return rc;
    }
    return 0;
}

static int setup(struct sup *s, const struct sup_init *in) {
    memset(s, 0, sizeof *s);
    s->dynamic = in->dynamic;
    s->flags = in->flags;
    s->dyn = in->dyn;
    s->parent = in->parent;
    s->self = ot_self();
    int mr = s->dynamic ? in->dyn.max_restarts : in->flags.max_restarts;
    int ms = s->dynamic ? in->dyn.max_seconds : in->flags.max_seconds;
    if (mr == 0 && ms == 0) {
        mr = !s->dynamic && in->flags.otp_defaults ? 1 : 3;
        ms = 5;
    }
    s->max_r = mr;
    s->period_s = ms;
    s->r_cap = (size_t)mr + 1 < 16 ? (size_t)mr + 1 : 16;
    s->restarts = ot_calloc(s->r_cap, sizeof *s->restarts);
    if (!s->restarts)
        return -ENOMEM;
    return s->dynamic ? ot__idmap_init(&s->pids, 64) : 0;
}

/* Starts the initial children; on a failure stops the ones started, in
 * reverse, and says why. */
static int start_initial(struct sup *s, const struct sup_init *in, ot_reason *why) {
    for (uint32_t i = 0; i < in->n; i++) {
        struct child *c = add_child(s, &in->specs[i]);
        int rc = c ? start(s, c, why) : -ENOMEM;
        if (rc == OT_IGNORED) {
            if (c->spec.restart == OT_TEMPORARY)
                remove_child(s, c);
            continue;
        }
        if (rc < 0) {
            if (c)
                remove_child(s, c);
            else {
                *why = OT_REASON(OT_SHUTDOWN);
                snprintf(why->text, sizeof why->text, "failed_to_start_child: no memory");
            }
            stop_all(s);
            return rc;
        }
    }
    return 0;
}

void ot__sup_main(void *unused) {
    (void)unused;
    ot_msg *m = ot_receive_tag(OT__TAG_SUP_INIT, OT_INFINITY);
    const struct sup_init *in = ot_msg_data(m);
    struct sup *s = ot_alloc(sizeof *s);
    ot_pid holder = OT_NOPID;
    ot_reason why = OT_REASON(OT_NORMAL);
    int rc = s ? setup(s, in) : -ENOMEM;
    if (rc == 0)
        rc = take_name(s, in, &holder);
    if (rc < 0) { /* OTP: {error, {already_started, Pid}}, then exit normal */
        ack(m->from, in->ack, rc, holder, why);
        ot_exit_self(OT_REASON(OT_NORMAL));
    }
    rc = start_initial(s, in, &why);
    ack(m->from, in->ack, rc < 0 ? -ECHILD : 0, OT_NOPID, why);
    if (rc < 0)
        ot_exit_self(why);
    ot_msg_free(m);
    for (;;) {
        m = ot_receive(OT_INFINITY);
        if (!m)
            continue;
        if (m->tag == OT_TAG_EXIT && m->size >= sizeof(ot_exit_msg)) {
            const ot_exit_msg *x = ot_msg_data(m);
            if (s->parent.v && x->pid.v == s->parent.v)
                shut_down(s, x->reason);
            struct child *c = by_pid(s, x->pid);
            if (c)
                child_exited(s, c, x->reason);
        } else if (m->tag == OT__TAG_SUP_REQ) {
            request(s, m);
        } else {
            ot_log(OT_LOG_ERROR, "supervisor %s: unexpected message, tag %u",
                   s->name[0] ? s->name : "(unnamed)", m->tag);
        }
        ot_msg_free(m);
    }
}
