/* Task.Supervisor: a DynamicSupervisor whose children are tasks. The
 * supervisor spawns each task itself (linked to it, as its child) and tells
 * it what to run; a task whose result someone awaits (async, async_nolink,
 * the streams) then waits for a GO from that owner, which carries the ref of
 * the owner's monitor on it (so the reply and the DOWN share one ref, as
 * ot_task_async's) and, for a stream, the item. A task restarted after a
 * crash (start_child, transient or permanent) runs fn(arg) again. */
#include "runtime/otp/rules.h"
#include "runtime/otp/sup_int.h"
#include "runtime/otp/task_int.h"

#include <string.h>

int ot__task_sup_spawn(const struct sup_spec *sp, ot_pid *out) {
    ot_spawn_opts so = {.link = true, .behaviour = "task"};
    ot_pid p = ot_spawn_opt(ot__task_main, NULL, &so);
    if (!p.v)
        return errno ? -errno : -EAGAIN;
    struct ot__task_start st = {.fn = sp->task_fn, .arg = sp->arg, .owner = sp->owner,
                                .wait_go = sp->task_go, .link_owner = sp->task_link_owner,
                                .no_reply = sp->task_no_reply, .unlink_first = true};
    int rc = ot_send(p, OT__TAG_TASK_START, &st, sizeof st);
    if (rc < 0) {
        ot_unlink(p);
        ot_exit(p, OT_REASON(OT_KILL));
        return rc;
    }
    *out = p;
    return 0;
}

int ot_task_sup_start_link(const ot_dynsup_opts *f, const ot_start_opts *o, ot_pid *out) {
    if (f && f->has_extra)
        return -EINVAL;
    return ot_dynsup_start_link(f, o, out);
}

int ot_task_sup_start_child(ot_pid sup, ot_task_fn fn, void *arg, int restart,
                            int64_t shutdown_ms, ot_pid *out) {
    if (!fn || !out)
        return -EINVAL;
    struct sup_spec sp = {.task_fn = fn, .arg = arg, .restart = restart,
                          .shutdown = shutdown_ms, .task_no_reply = true};
    return ot__sup_start_spec(sup, &sp, out);
}

/* Starts a task under sup for the caller and hands it its GO. */
int ot__task_sup_go(ot_pid sup, ot_task_fn fn, bool link, const void *item, size_t item_len,
                    void *arg, ot_task *t) {
    ot_pid me = ot_self();
    if (!me.v)
        return -EPERM;
    if (item_len > OT_MSG_MAX - sizeof(struct ot__task_go))
        return -EMSGSIZE;
    struct sup_spec sp = {.task_fn = fn, .arg = arg, .restart = OT_TEMPORARY, .owner = me,
                          .task_go = true, .task_link_owner = link};
    ot_pid p;
    int rc = ot__sup_start_spec(sup, &sp, &p);
    if (rc != 0)
        return rc > 0 ? -ECHILD : rc;
    ot_ref mon = ot_monitor(p);
    size_t n = sizeof(struct ot__task_go) + item_len;
    struct ot__task_go *g = ot_alloc(n);
    rc = -ENOMEM;
    if (g) {
        g->has_item = item != NULL;
        g->item_len = (uint32_t)item_len;
        if (item_len)
            memcpy(g->item, item, item_len);
        rc = ot_send_ref(p, OT__TAG_TASK_GO, mon, g, n);
        ot_free(g);
    }
    if (rc < 0) {
        ot_exit(p, OT_REASON(OT_KILL));
        ot_demonitor(mon, OT_DEMONITOR_FLUSH);
        return rc;
    }
    *t = (ot_task){.pid = p, .ref = mon, .owner = me};
    return 0;
}

static int async(ot_pid sup, ot_task_fn fn, void *arg, bool link, ot_task *t) {
    if (!fn || !t)
        return -EINVAL;
    int rc = ot__task_sup_go(sup, fn, link, NULL, 0, arg, t);
    if (rc == 0)
        t->track = ot__rule_task_track(t->pid);
    return rc;
}

int ot_task_sup_async(ot_pid sup, ot_task_fn fn, void *arg, ot_task *t) {
    return async(sup, fn, arg, true, t);
}

int ot_task_sup_async_nolink(ot_pid sup, ot_task_fn fn, void *arg, ot_task *t) {
    return async(sup, fn, arg, false, t);
}

int ot_task_sup_children(ot_pid sup, ot_pid *out, size_t cap, size_t *n) {
    if ((cap && !out) || !n)
        return -EINVAL;
    size_t max = OT_MSG_MAX / sizeof(ot_child_info) - 1;
    size_t k = cap < max ? cap : max;
    ot_child_info *in = ot_alloc((k ? k : 1) * sizeof *in);
    if (!in)
        return -ENOMEM;
    int rc = ot_supervisor_which_children(sup, in, k, n);
    if (rc == 0)
        for (size_t i = 0; i < k && i < *n; i++)
            out[i] = in[i].pid;
    ot_free(in);
    return rc;
}
