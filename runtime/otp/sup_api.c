/* The calls of otter/supervisor.h, on the caller's side. Starting checks the
 * flags and specs, spawns the supervisor linked to the caller (trapping
 * exits), sends it its set-up and waits, under a monitor, for its answer (or
 * its death, or the start timeout: proc_lib's synchronous start). A call is a
 * request under a fresh monitor of the supervisor, answered under that ref,
 * so a dead supervisor is noticed instead of waited for, and a late answer
 * cannot exist (calls wait without a timeout, as OTP's supervisor calls). */
#include "runtime/otp/deadline.h"
#include "runtime/otp/rules.h"
#include "runtime/otp/sup_int.h"

#include <string.h>

static int check_name(const ot_name *n, size_t *len) {
    *len = 0;
    if (!n || n->kind == OT_NAME_NONE)
        return 0;
    if (n->kind == OT_NAME_LOCAL) {
        if (!n->local || !n->local[0])
            return -EINVAL;
        *len = strnlen(n->local, OT_NAME_MAX) + 1;
        return *len > OT_NAME_MAX - 1 ? -ENAMETOOLONG : 0;
    }
    if (n->kind == OT_NAME_VIA) {
        if (!n->via || !n->via->register_name || !n->via->whereis_name || !n->key)
            return -EINVAL;
        *len = n->key_len;
        return n->key_len > OT_VIA_KEY_MAX ? -ENAMETOOLONG : 0;
    }
    return -EINVAL;
}

static int check_flags(const ot_sup_flags *f) {
    if (f->strategy < OT_ONE_FOR_ONE || f->strategy > OT_REST_FOR_ONE)
        return -EINVAL;
    if (f->max_restarts < 0 || f->max_seconds < 0 || (f->max_restarts && !f->max_seconds))
        return -EINVAL;
    if (f->auto_shutdown < OT_AUTO_SHUTDOWN_NEVER ||
        f->auto_shutdown > OT_AUTO_SHUTDOWN_ALL_SIGNIFICANT)
        return -EINVAL;
    return 0;
}

static int check_specs(const ot_child_spec *c, size_t n, int auto_shutdown, struct sup_spec *w) {
    for (size_t i = 0; i < n; i++) {
        if (!c[i].id)
            return -EINVAL;
        if (strnlen(c[i].id, OT_CHILD_ID_MAX) >= OT_CHILD_ID_MAX)
            return -ENAMETOOLONG;
        ot__sup_spec_in(&w[i], &c[i]);
        int rc = ot__sup_check_spec(&w[i], false, auto_shutdown);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(w[j].id, w[i].id) == 0)
                return -EINVAL; /* OTP: {duplicate_child_name, Id} */
    }
    return 0;
}

struct ack_match {
    uint64_t ack, mon;
};

static bool is_ack(const ot_msg *m, void *arg) {
    const struct ack_match *k = arg;
    return (m->tag == OT__TAG_SUP_ACK && m->ref.v == k->ack) ||
           (m->tag == OT_TAG_DOWN && m->ref.v == k->mon);
}

/* Spawns the supervisor and waits for its answer. */
static int spawn_and_wait(struct sup_init *in, size_t len, const ot_start_opts *o, bool link,
                          ot_pid *out) {
    ot_ref mon = OT_NOREF;
    ot_spawn_opts so = {.link = link, .monitor = true, .monitor_ref = &mon, .trap_exit = true,
                        .behaviour = in->dynamic ? "dynamic_supervisor" : "supervisor"};
    if (o && o->scheduler_set) {
        so.scheduler = o->scheduler;
        so.scheduler_set = true;
    }
    ot_pid p = ot_spawn_opt(ot__sup_main, NULL, &so);
    if (!p.v)
        return errno ? -errno : -EAGAIN;
    int rc = ot_send(p, OT__TAG_SUP_INIT, in, len);
    int64_t tmo = o && o->timeout_ms > 0 ? o->timeout_ms : OT_INFINITY;
    struct ack_match k = {in->ack.v, mon.v};
    ot_msg *m = rc < 0 ? NULL : ot_receive_match(is_ack, &k, tmo);
    if (!m) { /* could not tell it what to do, or it took too long */
        if (link)
            ot_unlink(p);
        ot_exit(p, OT_REASON(OT_KILL));
        ot_demonitor(mon, OT_DEMONITOR_FLUSH);
        return rc < 0 ? rc : -ETIMEDOUT;
    }
    ot_reason why = OT_REASON(OT_NORMAL);
    ot_pid holder = OT_NOPID;
    if (m->tag == OT__TAG_SUP_ACK) {
        const struct sup_ack *a = ot_msg_data(m);
        rc = a->rc;
        why = a->why;
        holder = a->pid;
        ot_demonitor(mon, OT_DEMONITOR_FLUSH);
    } else { /* it died before it answered: killed, or a fault */
        why = ((const ot_down_msg *)ot_msg_data(m))->reason;
        rc = -ECHILD;
    }
    ot_msg_free(m);
    if (o && o->why)
        *o->why = why;
    *out = rc == 0 ? p : rc == -EEXIST ? holder : OT_NOPID;
    return rc;
}

int ot__sup_start(bool dynamic, bool link, const ot_sup_flags *f, const ot_dynsup_opts *d,
                  const ot_child_spec *c, size_t n, const ot_start_opts *o, ot_pid *out) {
    if (!out || (n && !c) || n > UINT32_MAX)
        return -EINVAL;
    if (o && o->timeout_ms < 0 && o->timeout_ms != OT_INFINITY)
        return -EINVAL; /* 0 and OT_INFINITY wait for the start forever */
    *out = OT_NOPID;
    if (!ot_self().v)
        return -EPERM;
    size_t name_len;
    int rc = check_name(o ? &o->name : NULL, &name_len);
    if (rc < 0)
        return rc;
    ot_sup_flags flags = f ? *f : (ot_sup_flags){0};
    if ((rc = check_flags(&flags)) < 0)
        return rc;
    if (dynamic && d &&
        (d->max_restarts < 0 || d->max_seconds < 0 || (d->max_restarts && !d->max_seconds)))
        return -EINVAL;
    size_t len = sizeof(struct sup_init) + n * sizeof(struct sup_spec) + name_len;
    if (len > OT_MSG_MAX)
        return -E2BIG;
    struct sup_init *in = ot_calloc(1, len);
    if (!in)
        return -ENOMEM;
    rc = check_specs(c, n, flags.auto_shutdown, in->specs);
    if (rc == 0) {
        in->flags = flags;
        in->dynamic = dynamic;
        if (d)
            in->dyn = *d;
        in->ack = ot_make_ref();
        in->parent = link ? ot_self() : OT_NOPID;
        in->n = (uint32_t)n;
        in->name_len = (uint32_t)name_len;
        if (o && o->name.kind != OT_NAME_NONE) {
            in->name_kind = o->name.kind;
            in->via = o->name.via;
            in->via_arg = o->name.via_arg;
            memcpy(&in->specs[n], o->name.kind == OT_NAME_LOCAL ? o->name.local : o->name.key,
                   name_len);
        }
        rc = spawn_and_wait(in, len, o, link, out);
        if (rc == 0 && link)
            ot__rule_supervised(*out, dynamic ? "dynamic_supervisor" : "supervisor");
    }
    ot_free(in);
    return rc;
}

int ot_supervisor_start_link(const ot_sup_flags *f, const ot_child_spec *c, size_t n,
                             const ot_start_opts *o, ot_pid *out) {
    if (!f)
        return -EINVAL;
    return ot__sup_start(false, true, f, NULL, c, n, o, out);
}

int ot_dynsup_start_link(const ot_dynsup_opts *d, const ot_start_opts *o, ot_pid *out) {
    return ot__sup_start(true, true, NULL, d, NULL, 0, o, out);
}

/* ---- calls ------------------------------------------------------------------- */

static int is_supervisor(ot_pid sup, bool *dynamic) {
    struct ot_process_info pi;
    int rc = ot_process_info(sup, &pi);
    if (rc < 0)
        return rc == -ESRCH || rc == -EINVAL ? -ESRCH : rc;
    *dynamic = strcmp(pi.behaviour, "dynamic_supervisor") == 0;
    return *dynamic || strcmp(pi.behaviour, "supervisor") == 0 ? 0 : -ENOTSUP;
}

/* One request; *rep is the answer (ot_msg_free it). */
static int call(ot_pid sup, const struct sup_req *r, ot_msg **rep) {
    if (!ot_self().v)
        return -EPERM;
    if (!sup.v)
        return -ESRCH;
    if (sup.v == ot_self().v)
        return -EDEADLK;
    bool dyn;
    int rc = is_supervisor(sup, &dyn);
    if (rc < 0)
        return rc;
    ot_ref mon = ot_monitor(sup);
    if (!mon.v)
        return errno ? -errno : -ESRCH;
    if ((rc = ot_send_ref(sup, OT__TAG_SUP_REQ, mon, r, sizeof *r)) < 0) {
        ot_demonitor(mon, OT_DEMONITOR_FLUSH);
        return rc;
    }
    ot_msg *m = ot_receive_ref(mon, OT_INFINITY);
    if (!m)
        return errno ? -errno : -ENOTCONN;
    if (m->tag == OT_TAG_REPLY) {
        ot_demonitor(mon, OT_DEMONITOR_FLUSH);
        *rep = m;
        return 0;
    }
    rc = m->tag == OT_TAG_DOWN && ((const ot_down_msg *)ot_msg_data(m))->reason.kind == OT_NOPROC
             ? -ESRCH
             : -ECONNRESET;
    ot_msg_free(m);
    return rc;
}

static int simple(ot_pid sup, struct sup_req *r, ot_pid *out) {
    ot_msg *m;
    int rc = call(sup, r, &m);
    if (rc < 0)
        return rc;
    const struct sup_rep *a = ot_msg_data(m);
    rc = a->rc;
    if (out)
        *out = a->pid;
    ot_msg_free(m);
    return rc;
}

static int by_id(ot_pid sup, int op, const char *id, ot_pid *out) {
    if (!id)
        return -EINVAL;
    if (strnlen(id, OT_CHILD_ID_MAX) >= OT_CHILD_ID_MAX)
        return -ENAMETOOLONG;
    struct sup_req r = {.op = op};
    memcpy(r.spec.id, id, strlen(id) + 1);
    return simple(sup, &r, out);
}

int ot_supervisor_start_child(ot_pid sup, const ot_child_spec *c, ot_pid *out) {
    if (!c || !out)
        return -EINVAL;
    *out = OT_NOPID;
    if (!c->id)
        return -EINVAL;
    if (strnlen(c->id, OT_CHILD_ID_MAX) >= OT_CHILD_ID_MAX)
        return -ENAMETOOLONG;
    struct sup_req r = {.op = OP_START_CHILD};
    ot__sup_spec_in(&r.spec, c);
    return simple(sup, &r, out);
}

int ot_supervisor_terminate_child(ot_pid sup, const char *id) {
    return by_id(sup, OP_TERMINATE_CHILD, id, NULL);
}

int ot_supervisor_restart_child(ot_pid sup, const char *id, ot_pid *out) {
    ot_pid dummy;
    return by_id(sup, OP_RESTART_CHILD, id, out ? out : &dummy);
}

int ot_supervisor_delete_child(ot_pid sup, const char *id) {
    return by_id(sup, OP_DELETE_CHILD, id, NULL);
}

int ot_supervisor_which_children(ot_pid sup, ot_child_info *out, size_t cap, size_t *n) {
    if ((cap && !out) || !n)
        return -EINVAL;
    size_t max = (OT_MSG_MAX - sizeof(struct sup_rep)) / sizeof(ot_child_info);
    struct sup_req r = {.op = OP_WHICH_CHILDREN, .cap = cap < max ? cap : max};
    ot_msg *m;
    int rc = call(sup, &r, &m);
    if (rc < 0)
        return rc;
    const struct sup_rep *a = ot_msg_data(m);
    rc = a->rc;
    if (rc == 0) {
        *n = a->n;
        size_t k = (m->size - sizeof *a) / sizeof(ot_child_info);
        memcpy(out, a->info, k * sizeof(ot_child_info));
    }
    ot_msg_free(m);
    return rc;
}

int ot_supervisor_count_children(ot_pid sup, ot_child_counts *out) {
    if (!out)
        return -EINVAL;
    struct sup_req r = {.op = OP_COUNT_CHILDREN};
    ot_msg *m;
    int rc = call(sup, &r, &m);
    if (rc < 0)
        return rc;
    const struct sup_rep *a = ot_msg_data(m);
    *out = a->counts;
    rc = a->rc;
    ot_msg_free(m);
    return rc;
}

int ot_dynsup_start_child(ot_pid sup, const ot_child_spec *c, ot_pid *out) {
    if (!c || !out)
        return -EINVAL;
    *out = OT_NOPID;
    struct sup_req r = {.op = OP_START_CHILD};
    ot__sup_spec_in(&r.spec, c);
    r.spec.id[0] = 0;
    return simple(sup, &r, out);
}

int ot__sup_start_spec(ot_pid sup, const struct sup_spec *sp, ot_pid *out) {
    struct sup_req r = {.op = OP_START_CHILD, .spec = *sp};
    *out = OT_NOPID;
    return simple(sup, &r, out);
}

int ot_dynsup_terminate_child(ot_pid sup, ot_pid child) {
    struct sup_req r = {.op = OP_TERMINATE_CHILD, .pid = child};
    return child.v ? simple(sup, &r, NULL) : -ENOENT;
}

int ot_dynsup_which_children(ot_pid sup, ot_child_info *out, size_t cap, size_t *n) {
    return ot_supervisor_which_children(sup, out, cap, n);
}

int ot_dynsup_count_children(ot_pid sup, ot_child_counts *out) {
    return ot_supervisor_count_children(sup, out);
}

int ot_supervisor_stop(ot_pid sup, ot_reason why, int64_t timeout_ms) {
    if (timeout_ms < 0 && timeout_ms != OT_INFINITY)
        return -EINVAL;
    if (!ot_self().v)
        return -EPERM;
    if (sup.v == ot_self().v)
        return -EDEADLK; /* a supervisor cannot wait for its own exit */
    bool dyn;
    int rc = is_supervisor(sup, &dyn);
    if (rc < 0)
        return rc;
    ot_ref mon = ot_monitor(sup);
    struct sup_req r = {.op = OP_STOP, .why = why};
    ot_send_ref(sup, OT__TAG_SUP_REQ, mon, &r, sizeof r);
    int64_t deadline = ot__deadline_ms(timeout_ms);
    for (;;) { /* its answer (children stopped), then its DOWN */
        int64_t now = ot_now_ms();
        ot_msg *m = ot_receive_ref(mon, deadline == INT64_MAX ? OT_INFINITY
                                        : deadline > now      ? deadline - now
                                                              : 0);
        if (!m) {
            ot_demonitor(mon, OT_DEMONITOR_FLUSH);
            return -ETIMEDOUT;
        }
        if (m->tag != OT_TAG_DOWN) {
            ot_msg_free(m);
            continue;
        }
        ot_reason got = ((const ot_down_msg *)ot_msg_data(m))->reason;
        ot_msg_free(m);
        return got.kind == OT_NOPROC ? -ESRCH : 0;
    }
}
