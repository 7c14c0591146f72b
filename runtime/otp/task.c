/* Elixir's Task on the public process API. A task is a stackful process
 * spawned linked to and monitored by its owner; it learns what to run from a
 * first message (so nothing is leaked if it dies before it runs: the message
 * goes with its mailbox) and replies once with OT_TAG_REPLY carrying the
 * monitor's ref. Awaiting is therefore one receive by ref, which matches both
 * the reply and the DOWN (O(1) in old mail through the receive mark). After a
 * reply the owner demonitors with flush, so no DOWN of a finished task stays
 * behind; after a DOWN the task is done and its reason kept in the ot_task.
 * Invariant: only the owner touches an ot_task's state. */
#include "runtime/otp/deadline.h"
#include "runtime/otp/rules.h"
#include "runtime/otp/task_int.h"

#include <stdio.h>
#include <string.h>

enum { T_RUNNING = 0, T_DONE = 1 };

/* The task's result is taken (or it is gone): the owner no longer holds it. */
static void done(ot_task *t) {
    t->state = T_DONE;
    ot__rule_task_done(t->track);
    t->track = NULL;
}

static bool go_or_down(const ot_msg *m, void *arg) {
    const uint64_t *k = arg; /* owner pid, its monitor's ref */
    return (m->tag == OT__TAG_TASK_GO && m->from.v == k[0]) ||
           (m->tag == OT_TAG_DOWN && m->ref.v == k[1]);
}

/* A supervised task waits for its owner's GO (the reply ref, the item). */
static ot_msg *wait_go(const struct ot__task_start *s) {
    if (s->link_owner && ot_link(s->owner) < 0)
        ot_exit_self(OT_REASON(OT_NORMAL)); /* the owner is gone already */
    uint64_t k[2] = {s->owner.v, ot_monitor(s->owner).v};
    ot_msg *go = ot_receive_match(go_or_down, k, OT_INFINITY);
    if (!go || go->tag != OT__TAG_TASK_GO)
        ot_exit_self(OT_REASON(OT_NORMAL));
    ot_demonitor((ot_ref){k[1]}, OT_DEMONITOR_FLUSH);
    return go;
}

void ot__task_main(void *unused) {
    (void)unused;
    ot_msg *m = ot_receive_tag(OT__TAG_TASK_START, OT_INFINITY);
    if (!m)
        ot_exit_self(ot_reason_error("task: no start message"));
    const struct ot__task_start *s = ot_msg_data(m);
    ot_pid owner = s->wait_go ? s->owner : m->from;
    ot_ref ref = s->ref;
    ot_buf item = {s->item, s->item_len};
    bool has_item = s->has_item;
    if (s->wait_go) {
        ot_msg *go = wait_go(s);
        const struct ot__task_go *g = ot_msg_data(go);
        ref = go->ref;
        has_item = g->has_item;
        item = (ot_buf){g->item, g->item_len};
    }
    ot_buf out = {NULL, 0};
    int rc = s->fn(has_item ? &item : s->arg, &out);
    if (rc != 0)
        ot_exit_self(ot_reason_error("task returned %d", rc));
    if (s->no_reply)
        return;
    int sent = ot_send_ref(owner, OT_TAG_REPLY, ref, out.data, out.len);
    if (sent < 0)
        ot_exit_self(ot_reason_error("task reply: %s", ot_strerror(sent)));
    if (s->unlink_first)
        ot_unlink(owner);
}

int ot__task_spawn(ot_task_fn fn, void *arg, const void *item, size_t item_len, bool unlink_first,
                   const ot_spawn_opts *opts, ot_task *t) {
    if (item_len > UINT32_MAX || item_len > OT_MSG_MAX - sizeof(struct ot__task_start))
        return -EMSGSIZE;
    ot_spawn_opts so = *opts;
    ot_ref mon = OT_NOREF;
    so.monitor = true;
    so.monitor_ref = &mon;
    if (!so.behaviour)
        so.behaviour = "task";
    ot_pid p = ot_spawn_opt(ot__task_main, NULL, &so);
    if (!p.v)
        return errno ? -errno : -EAGAIN;
    size_t n = sizeof(struct ot__task_start) + item_len;
    struct ot__task_start *s = ot_alloc(n);
    int rc = -ENOMEM;
    if (s) {
        *s = (struct ot__task_start){.fn = fn, .arg = arg, .ref = mon,
                                     .unlink_first = unlink_first,
                                     .has_item = item != NULL,
                                     .item_len = (uint32_t)item_len};
        if (item_len)
            memcpy(s->item, item, item_len);
        rc = ot_send(p, OT__TAG_TASK_START, s, n);
        ot_free(s);
    }
    if (rc < 0) { /* the task never learns what to run: take it back silently */
        if (so.link)
            ot_unlink(p);
        ot_exit(p, OT_REASON(OT_KILL));
        ot_demonitor(mon, OT_DEMONITOR_FLUSH);
        return rc;
    }
    *t = (ot_task){.pid = p, .ref = mon, .owner = ot_self(), .state = T_RUNNING};
    return 0;
}

int ot_task_async_opt(ot_task_fn fn, void *arg, const ot_spawn_opts *o, ot_task *t) {
    if (!fn || !t)
        return -EINVAL;
    if (!ot_self().v)
        return -EPERM;
    ot_spawn_opts so = o ? *o : (ot_spawn_opts){0};
    so.link = true;
    int rc = ot__task_spawn(fn, arg, NULL, 0, false, &so, t);
    if (rc == 0)
        t->track = ot__rule_task_track(t->pid);
    return rc;
}

int ot_task_async(ot_task_fn fn, void *arg, ot_task *t) {
    return ot_task_async_opt(fn, arg, NULL, t);
}

static int check_owner(const ot_task *t, int64_t timeout_ms) {
    if (!t)
        return -EINVAL;
    if (timeout_ms < 0 && timeout_ms != OT_INFINITY)
        return -EINVAL;
    if (!ot_pid_eq(t->owner, ot_self()) || !t->owner.v)
        return -EPERM;
    if (t->state != T_RUNNING)
        return -EALREADY;
    return 0;
}

/* One message for t (its reply or its DOWN): 0 and *result, -ECONNRESET with
 * t->reason, or -ETIMEDOUT with the task untouched. */
/* The reply under t's ref: t is done and *result holds it. */
static int took_reply(ot_task *t, ot_msg *m, ot_msg **result) {
    ot_demonitor(t->ref, OT_DEMONITOR_FLUSH);
    done(t);
    *result = m;
    return 0;
}

/* t's DOWN without a reply: t is done with its reason. */
static int took_down(ot_task *t, ot_msg *m) {
    t->reason = ((const ot_down_msg *)ot_msg_data(m))->reason;
    done(t);
    ot_msg_free(m);
    return -ECONNRESET;
}

static bool is_down(const ot_msg *m) {
    return m->tag == OT_TAG_DOWN && m->size >= sizeof(ot_down_msg);
}

static int take(ot_task *t, int64_t timeout_ms, ot_msg **result) {
    for (;;) {
        ot_msg *m = ot_receive_ref(t->ref, timeout_ms);
        if (!m)
            return errno == ENOTCONN ? -ENOTCONN : -ETIMEDOUT;
        if (m->tag == OT_TAG_REPLY)
            return took_reply(t, m, result);
        if (is_down(m))
            return took_down(t, m);
        ot_msg_free(m); /* someone else's message that reuses the ref: not ours */
    }
}

int ot_task_await(ot_task *t, int64_t timeout_ms, ot_msg **result) {
    int rc = check_owner(t, timeout_ms);
    if (rc < 0)
        return rc;
    if (!result)
        return -EINVAL;
    *result = NULL;
    return take(t, timeout_ms, result);
}

int ot_task_yield(ot_task *t, int64_t timeout_ms, ot_msg **result) {
    return ot_task_await(t, timeout_ms, result);
}

ot_msg *ot_task_await_exit(ot_task *t, int64_t timeout_ms) {
    ot_msg *r = NULL;
    int rc = ot_task_await(t, timeout_ms, &r);
    if (rc == 0)
        return r;
    if (rc == -ECONNRESET)
        ot_exit_self(t->reason);
    if (rc == -ETIMEDOUT) {
        ot_demonitor(t->ref, OT_DEMONITOR_FLUSH);
        done(t);
        ot_reason why = OT_REASON(OT_TIMEOUT);
        snprintf(why.text, sizeof why.text, "Task.await");
        ot_exit_self(why);
    }
    ot_exit_self(ot_reason_error("Task.await: %s", ot_strerror(rc)));
}

/* A DOWN while shutting down is Task.shutdown's nil only when its reason is
 * the one the stop asked for (the reply, had there been one, came before the
 * DOWN): killed after a brutal kill, plain shutdown otherwise. Anything else
 * is {:exit, reason}, as Elixir 1.14's shutdown_receive has it: a task killed
 * because it outlived its shutdown time included ({:exit, :killed}), and a
 * task that had exited with shutdown by itself before a brutal kill. */
static int after_down(ot_task *t, ot_msg *down, bool brutal) {
    ot_reason why = ((const ot_down_msg *)ot_msg_data(down))->reason;
    ot_msg_free(down);
    done(t);
    if (brutal ? why.kind == OT_KILLED : why.kind == OT_SHUTDOWN && !why.text[0])
        return 0;
    t->reason = why;
    return -ECONNRESET;
}

int ot_task_shutdown(ot_task *t, int64_t timeout_ms, ot_msg **result) {
    int rc = check_owner(t, timeout_ms == OT_BRUTAL_KILL ? 0 : timeout_ms);
    if (rc < 0)
        return rc;
    if (!result)
        return -EINVAL;
    *result = NULL;
    ot_unlink(t->pid);
    bool brutal = timeout_ms == OT_BRUTAL_KILL;
    ot_exit(t->pid, OT_REASON(brutal ? OT_KILL : OT_SHUTDOWN));
    int64_t wait = brutal ? OT_INFINITY : timeout_ms;
    for (;;) {
        ot_msg *m = ot_receive_ref(t->ref, wait);
        if (!m) {
            if (errno == ENOTCONN)
                return -ENOTCONN;
            ot_exit(t->pid, OT_REASON(OT_KILL)); /* shutdown timed out */
            wait = OT_INFINITY;
            continue;
        }
        if (m->tag == OT_TAG_REPLY)
            return took_reply(t, m, result);
        if (is_down(m))
            return after_down(t, m, brutal);
        ot_msg_free(m);
    }
}

struct many {
    ot_task *tasks;
    size_t n;
};

static bool match_many(const ot_msg *m, void *arg) {
    const struct many *k = arg;
    if (m->tag != OT_TAG_REPLY && m->tag != OT_TAG_DOWN)
        return false;
    for (size_t i = 0; i < k->n; i++)
        if (k->tasks[i].state == T_RUNNING && ot_ref_eq(k->tasks[i].ref, m->ref))
            return true;
    return false;
}

int ot_task_await_many(ot_task *tasks, size_t n, int64_t timeout_ms, ot_msg **results,
                       size_t *failed) {
    if ((n && (!tasks || !results)) || (timeout_ms < 0 && timeout_ms != OT_INFINITY))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = check_owner(&tasks[i], timeout_ms);
        if (rc < 0) {
            if (failed)
                *failed = i;
            return rc;
        }
        results[i] = NULL;
    }
    int64_t deadline = ot__deadline_ms(timeout_ms);
    struct many k = {tasks, n};
    size_t left = n;
    int rc = 0;
    size_t bad = 0;
    while (left && rc == 0) {
        int64_t wait = OT_INFINITY;
        if (timeout_ms != OT_INFINITY) {
            wait = deadline - ot_now_ms();
            if (wait < 0)
                wait = 0;
        }
        ot_msg *m = ot_receive_match(match_many, &k, wait);
        if (!m) {
            rc = errno == ENOTCONN ? -ENOTCONN : -ETIMEDOUT;
            break;
        }
        size_t i = 0;
        while (!ot_ref_eq(tasks[i].ref, m->ref) || tasks[i].state != T_RUNNING)
            i++;
        if (m->tag == OT_TAG_REPLY) {
            took_reply(&tasks[i], m, &results[i]);
            left--;
        } else {
            rc = took_down(&tasks[i], m);
            bad = i;
        }
    }
    if (rc == 0)
        return 0;
    if (rc == -ETIMEDOUT)
        for (bad = 0; bad < n && results[bad]; bad++) {
        }
    for (size_t i = 0; i < n; i++)
        if (results[i]) {
            ot_msg_free(results[i]);
            results[i] = NULL;
        }
    if (failed)
        *failed = bad;
    return rc;
}
