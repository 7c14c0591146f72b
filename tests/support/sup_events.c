/* The event log and worker of sup_events.h. */
#include <otter/supervisor.h>
#include <otter/testing.h>

#include "support/sup_events.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static char ev[8192], ev_copy[8192];

void event(const char *fmt, const char *id) {
    pthread_mutex_lock(&ev_mu);
    size_t n = strlen(ev);
    snprintf(ev + n, sizeof ev - n, fmt, id);
    pthread_mutex_unlock(&ev_mu);
}

void ev_reset(void) {
    pthread_mutex_lock(&ev_mu);
    ev[0] = 0;
    pthread_mutex_unlock(&ev_mu);
}

const char *ev_get(void) {
    pthread_mutex_lock(&ev_mu);
    memcpy(ev_copy, ev, sizeof ev_copy);
    pthread_mutex_unlock(&ev_mu);
    return ev_copy;
}

static void worker(void *arg) {
    struct wcfg *w = arg;
    ot_trap_exit(true);
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        if (m->tag == OT_TAG_EXIT) {
            ot_exit_msg x = *(ot_exit_msg *)ot_msg_data(m);
            if (w->stubborn)
                continue;
            event("stop:%s ", w->id);
            ot_exit_self(x.reason);
        }
        if (m->tag == TAG_CRASH)
            ot_exit_self(ot_reason_error("crash %s", w->id));
        if (m->tag == TAG_NORMAL)
            ot_exit_self(OT_REASON(OT_NORMAL));
        if (m->tag == TAG_PING)
            ot_send(m->from, TAG_PONG, NULL, 0);
        ot_msg_free(m);
    }
}

int start_worker(void *arg, ot_pid *out) {
    struct wcfg *w = arg;
    if (w->fail)
        return w->fail;
    if (w->fail_next)
        return -EIO;
    ot_spawn_opts o = {.link = true, .behaviour = "worker"};
    *out = ot_spawn_opt(worker, w, &o);
    if (!out->v)
        return -errno;
    event("start:%s ", w->id);
    return 0;
}

ot_child_spec worker_spec(struct wcfg *w, int restart) {
    return (ot_child_spec){.id = w->id, .start = start_worker, .arg = w, .restart = restart,
                           .shutdown = 5000};
}
