/* One child's life as its supervisor sees it: the spec checked and copied
 * in, the start (the child's own start function, which links it), the stop
 * (OTP's shutdown/2: monitor, unlink, consume an EXIT already queued, then
 * exit(shutdown) with the child's shutdown time before a kill, or a kill at
 * once), and the restart intensity (a ring of the restarts within the period,
 * at most max_restarts + 1 of them; see grow_ring). Runs in the supervisor
 * process only. */
#include "runtime/otp/deadline.h"
#include "runtime/otp/rules.h"
#include "runtime/otp/sup_int.h"

#include <stdio.h>
#include <string.h>

void ot__sup_spec_in(struct sup_spec *w, const ot_child_spec *c) {
    memset(w, 0, sizeof *w);
    if (c->id)
        snprintf(w->id, sizeof w->id, "%s", c->id);
    w->start = c->start;
    w->start_extra = c->start_extra;
    w->arg = c->arg;
    w->restart = c->restart;
    w->shutdown = c->shutdown;
    w->type = c->type;
    w->significant = c->significant;
}

int ot__sup_check_spec(const struct sup_spec *sp, bool dynamic, int auto_shutdown) {
    if (sp->restart < OT_PERMANENT || sp->restart > OT_TEMPORARY)
        return -EINVAL;
    if (sp->type != OT_WORKER && sp->type != OT_SUPERVISOR)
        return -EINVAL;
    if (sp->shutdown < 0 && sp->shutdown != OT_INFINITY && sp->shutdown != OT_BRUTAL_KILL)
        return -EINVAL;
    if (sp->significant &&
        (sp->restart == OT_PERMANENT || auto_shutdown == OT_AUTO_SHUTDOWN_NEVER || dynamic))
        return -EINVAL;
    if (dynamic)
        return sp->start || sp->start_extra || sp->task_fn ? 0 : -EINVAL;
    if (!sp->start || !sp->id[0])
        return -EINVAL;
    return 0;
}

int64_t ot__sup_shutdown_ms(const struct sup_spec *sp) {
    if (sp->shutdown != 0)
        return sp->shutdown;
    return sp->type == OT_SUPERVISOR ? OT_INFINITY : 5000;
}

static void report(struct sup *s, const char *what, const struct child *c, const char *detail) {
    ot_log(OT_LOG_ERROR, "supervisor %s: %s: child %s <0.%u.%u>: %s",
           s->name[0] ? s->name : "(unnamed)", what, c->spec.id[0] ? c->spec.id : "undefined",
           (unsigned)(c->pid.v & 0xffffffffu), (unsigned)(c->pid.v >> 32), detail);
}

int ot__sup_start_child(struct sup *s, struct child *c, ot_reason *why) {
    ot_pid pid = OT_NOPID;
    int rc;
    bool timed = ot__rule_on(OT_RULE_SLOW_INIT) && !c->spec.task_fn;
    int64_t t0 = timed ? ot_now_ms() : 0;
    if (c->spec.task_fn)
        rc = ot__task_sup_spawn(&c->spec, &pid);
    else if (s->dynamic && s->dyn.has_extra)
        rc = c->spec.start_extra ? c->spec.start_extra(s->dyn.extra, c->spec.arg, &pid) : -EINVAL;
    else
        rc = c->spec.start ? c->spec.start(c->spec.arg, &pid) : -EINVAL;
    if (rc == 0 && !pid.v)
        rc = -ECHILD; /* a start that reports success must name the child */
    if (timed && ot_now_ms() - t0 > ot__rule_slow_init_ms())
        ot__rule_slow_start(s->name[0] ? s->name : "(unnamed)", c->spec.id[0] ? c->spec.id : "undefined",
                            pid, ot_now_ms() - t0);
    if (rc == 0) {
        c->pid = pid;
        c->state = C_RUNNING;
        return 0;
    }
    c->pid = OT_NOPID;
    c->state = C_UNDEFINED;
    if (rc == OT_IGNORED)
        return rc;
    if (rc > 0)
        rc = -ECHILD;
    if (why) {
        *why = OT_REASON(OT_SHUTDOWN);
        why->detail = -rc; /* the start's errno */
        snprintf(why->text, sizeof why->text, "failed_to_start_child %.33s",
                 c->spec.id[0] ? c->spec.id : "undefined");
    }
    report(s, "start_error", c, ot_strerror(rc));
    return rc;
}

static bool exit_from(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_EXIT && m->size >= sizeof(ot_exit_msg) &&
           ((const ot_exit_msg *)ot_msg_data(m))->pid.v == *(const uint64_t *)arg;
}

/* Monitor and unlink; true if the child had already exited (its EXIT was
 * queued: consumed here, and then its DOWN is waited for by the caller). */
static ot_ref detach(struct child *c, bool *gone) {
    ot_ref mon = ot_monitor(c->pid);
    ot_unlink(c->pid);
    ot_msg *x = ot_receive_match(exit_from, &c->pid.v, 0);
    *gone = x != NULL;
    if (x)
        ot_msg_free(x);
    return mon;
}

static ot_reason wait_down(ot_ref mon, int64_t ms, bool *timed_out) {
    ot_msg *m = ot_receive_ref(mon, ms);
    *timed_out = m == NULL;
    ot_reason r = OT_REASON(OT_NOPROC);
    if (m) {
        if (m->tag == OT_TAG_DOWN && m->size >= sizeof(ot_down_msg))
            r = ((const ot_down_msg *)ot_msg_data(m))->reason;
        ot_msg_free(m);
    }
    return r;
}

static void check_stopped(struct sup *s, struct child *c, ot_reason got, bool brutal) {
    bool ok = brutal ? got.kind == OT_KILLED : got.kind == OT_SHUTDOWN && !got.text[0];
    if (!ok && got.kind != OT_NOPROC && !(brutal && got.kind == OT_SHUTDOWN)) {
        char r[96];
        ot_reason_format(got, r, sizeof r);
        report(s, "shutdown_error", c, r);
    }
}

void ot__sup_shutdown_child(struct sup *s, struct child *c) {
    if (c->state != C_RUNNING || !c->pid.v)
        return;
    bool gone, late;
    ot_ref mon = detach(c, &gone);
    int64_t ms = ot__sup_shutdown_ms(&c->spec);
    if (gone) {
        wait_down(mon, OT_INFINITY, &late);
    } else if (ms == OT_BRUTAL_KILL) {
        ot_exit(c->pid, OT_REASON(OT_KILL));
        check_stopped(s, c, wait_down(mon, OT_INFINITY, &late), true);
    } else {
        ot_exit(c->pid, OT_REASON(OT_SHUTDOWN));
        ot_reason got = wait_down(mon, ms, &late);
        if (late) {
            ot_exit(c->pid, OT_REASON(OT_KILL));
            got = wait_down(mon, OT_INFINITY, &late);
            report(s, "shutdown_error", c, "killed after its shutdown time");
        } else {
            check_stopped(s, c, got, false);
        }
    }
    c->pid = OT_NOPID;
    c->state = C_UNDEFINED;
}

/* A DynamicSupervisor stops its children all at once (as OTP's
 * simple_one_for_one): every exit is sent, then the DOWNs are collected, and
 * each child still alive at its own deadline is killed. */
void ot__sup_shutdown_many(struct sup *s, struct child **cs, size_t n) {
    if (n == 0)
        return;
    ot_ref *mons = ot_calloc(n, sizeof *mons);
    int64_t *deadline = ot_calloc(n, sizeof *deadline);
    if (!mons || !deadline) { /* no room to do it in parallel: one by one */
        for (size_t i = n; i-- > 0;)
            ot__sup_shutdown_child(s, cs[i]);
        ot_free(mons);
        ot_free(deadline);
        return;
    }
    int64_t now = ot_now_ms();
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        bool gone;
        mons[i] = detach(cs[i], &gone);
        int64_t ms = ot__sup_shutdown_ms(&cs[i]->spec);
        ot_exit(cs[i]->pid, OT_REASON(gone || ms == OT_BRUTAL_KILL ? OT_KILL : OT_SHUTDOWN));
        deadline[i] = ms == OT_BRUTAL_KILL || gone ? INT64_MAX : ot__deadline_ms(ms);
        left++;
    }
    while (left) {
        int64_t next = INT64_MAX;
        for (size_t i = 0; i < n; i++)
            if (mons[i].v && deadline[i] < next)
                next = deadline[i];
        int64_t wait = OT_INFINITY;
        if (next != INT64_MAX) {
            now = ot_now_ms();
            wait = next > now ? next - now : 0;
        }
        ot_msg *m = ot_receive(wait);
        if (!m) {
            now = ot_now_ms();
            for (size_t i = 0; i < n; i++)
                if (mons[i].v && deadline[i] <= now) {
                    ot_exit(cs[i]->pid, OT_REASON(OT_KILL));
                    report(s, "shutdown_error", cs[i], "killed after its shutdown time");
                    deadline[i] = INT64_MAX;
                }
            continue;
        }
        /* the supervisor is going away: other mail than these DOWNs is moot */
        if (m->tag == OT_TAG_DOWN)
            for (size_t i = 0; i < n; i++)
                if (mons[i].v && mons[i].v == m->ref.v) {
                    mons[i] = OT_NOREF;
                    cs[i]->pid = OT_NOPID;
                    cs[i]->state = C_UNDEFINED;
                    left--;
                    break;
                }
        ot_msg_free(m);
    }
    ot_free(mons);
    ot_free(deadline);
}

/* A full ring (every entry still in the period) doubles, unwrapped into
 * the new one, up to max_restarts + 1 entries: a huge max_restarts costs
 * only the restarts that really happen within a period. */
static bool grow_ring(struct sup *s) {
    size_t cap = s->r_cap * 2, most = (size_t)s->max_r + 1;
    if (cap > most)
        cap = most;
    int64_t *g = ot_calloc(cap, sizeof *g);
    if (!g)
        return false;
    for (size_t i = 0; i < s->r_len; i++)
        g[i] = s->restarts[(s->r_head + i) % s->r_cap];
    ot_free(s->restarts);
    s->restarts = g;
    s->r_cap = cap;
    s->r_head = 0;
    return true;
}

/* OTP 25's add_restart (and Elixir 1.14's): restart times are whole seconds
 * of the monotonic clock, and a restart counts while now - then <= period, so
 * one 1.5 s ago (0.1 s -> 1.6 s) is still inside a 1 s period. */
bool ot__sup_add_restart(struct sup *s) {
    int64_t now = ot_now_ms() / 1000;
    /* drop the restarts that left the period */
    while (s->r_len && now - s->restarts[s->r_head] > s->period_s) {
        s->r_head = (s->r_head + 1) % s->r_cap;
        s->r_len--;
    }
    if (s->r_len == s->r_cap && (s->r_cap == (size_t)s->max_r + 1 || !grow_ring(s))) {
        /* the oldest goes: at the full size the previous call refused
         * already; without memory to grow, the count is kept exact only
         * up to the ring */
        s->r_head = (s->r_head + 1) % s->r_cap;
        s->r_len--;
    }
    s->restarts[(s->r_head + s->r_len) % s->r_cap] = now;
    s->r_len++;
    return s->r_len <= (size_t)s->max_r;
}
