/* The seed's rules, checked at run time: an init slow enough to block its
 * supervisor (timed around each child start), a process that exits holding a
 * task it never awaited, yielded or shut down (each task an owner starts is a
 * resource of the owner's, released when the task is done; a release at the
 * owner's exit means it was forgotten), and a long-running process (a
 * gen_server, Agent or supervisor) started by a process that is not a
 * supervisor. Each rule is a bit of one word read with a relaxed load at the
 * place it checks, and nothing else runs while it is off. */
#include "runtime/ext.h"
#include "runtime/otp/rules.h"

#include <otter/supervisor.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic unsigned rules = OT_RULES_ALL;
static _Atomic int64_t slow_ms = 100;

unsigned ot_otp_rules(unsigned on, int64_t slow_init_ms) {
    if (slow_init_ms > 0)
        atomic_store_explicit(&slow_ms, slow_init_ms, memory_order_relaxed);
    return atomic_exchange_explicit(&rules, on & OT_RULES_ALL, memory_order_relaxed);
}

bool ot__rule_on(unsigned rule) {
    return atomic_load_explicit(&rules, memory_order_relaxed) & rule;
}

int64_t ot__rule_slow_init_ms(void) {
    return atomic_load_explicit(&slow_ms, memory_order_relaxed);
}

static bool is_supervisor(ot_pid p) {
    struct ot_process_info in;
    if (!p.v || ot_process_info(p, &in) < 0)
        return false;
    return strcmp(in.behaviour, "supervisor") == 0 ||
           strcmp(in.behaviour, "dynamic_supervisor") == 0;
}

void ot__rule_supervised(ot_pid started, const char *what) {
    if (!ot__rule_on(OT_RULE_UNSUPERVISED))
        return;
    ot_pid me = ot_self();
    if (is_supervisor(me))
        return;
    char p[32], by[32] = "a foreign thread";
    ot_pid_format(started, p, sizeof p);
    if (me.v)
        ot_pid_format(me, by, sizeof by);
    ot_log(OT_LOG_WARNING,
           "otp rule: %s %s started by %s, outside any supervisor: start long-running "
           "processes under a supervisor",
           what, p, by);
}

void ot__rule_slow_start(const char *sup, const char *id, ot_pid child, int64_t ms) {
    char p[32], beh[32] = "";
    struct ot_process_info in;
    ot_pid_format(child, p, sizeof p);
    if (child.v && ot_process_info(child, &in) == 0)
        memcpy(beh, in.behaviour, sizeof beh);
    ot_log(OT_LOG_WARNING,
           "otp rule: supervisor %s: child %s %s (%s) took %lld ms in init, blocking its "
           "supervisor: move slow set-up to handle_continue",
           sup, id, p, beh[0] ? beh : "no behaviour", (long long)ms);
}

struct track {
    struct ot__res res;
    ot_pid task;
};

static void forgotten(struct ot__res *r, ot_pid owner) {
    struct track *t = (struct track *)r;
    char o[32], k[32];
    ot_pid_format(owner, o, sizeof o);
    ot_pid_format(t->task, k, sizeof k);
    ot_log(OT_LOG_WARNING,
           "otp rule: process %s exited holding task %s, which it never awaited, yielded or "
           "shut down",
           o, k);
    free(t);
}

void *ot__rule_task_track(ot_pid task) {
    if (!ot__rule_on(OT_RULE_UNAWAITED_TASK))
        return NULL;
    struct track *t = calloc(1, sizeof *t);
    if (!t)
        return NULL; /* the check is best effort; the task is not */
    t->task = task;
    t->res.release = forgotten;
    if (ot__res_add(&t->res) < 0) {
        free(t);
        return NULL;
    }
    return t;
}

void ot__rule_task_done(void *track) {
    if (!track)
        return;
    struct track *t = track;
    ot__res_del(&t->res);
    free(t);
}
