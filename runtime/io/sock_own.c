/* Who owns each socket: a sharded map from pid to the list of sockets that
 * process controls, the hand-over (ot_sock_controlling_process) and the
 * closing of a process's sockets at its exit.
 *
 * The core calls the exit hook, on the scheduler thread after the process
 * stopped running, for each process it flagged with ot__proc_mark_sock_owner.
 * Invariants: a socket is on the list of exactly the pid in its owner field
 * (0 once killed or taken by the exit hook); both change together under the
 * owner's shard lock and the socket's mu. A socket joins a list only while
 * its shard lock is held and right after ot__proc_mark_sock_owner succeeded
 * under it: that check is made under the process's slot lock, where its exit
 * sets PF_DEAD before it calls the hook, and the hook takes the same shard
 * lock, so it runs after the insertion and finds the socket. A hand-over to
 * a process already dead or past that point is -ESRCH and changes nothing.
 * Owner records are freed when their list empties. */
#include <stdlib.h>

#include "runtime/io/sock_priv.h"

#define SHARDS 64u

struct owner {
    uint64_t pid;
    struct owner *hnext;
    struct sock *head;
};

static struct {
    pthread_mutex_t mu;
    struct owner *h;
} omap[SHARDS] = {[0 ... SHARDS - 1] = {PTHREAD_MUTEX_INITIALIZER, NULL}};

static unsigned shard_of(uint64_t pid) {
    return (unsigned)((pid * 0x9e3779b97f4a7c15ull) >> 58) & (SHARDS - 1);
}

static struct owner **find(unsigned sh, uint64_t pid) {
    struct owner **pp = &omap[sh].h;
    while (*pp && (*pp)->pid != pid)
        pp = &(*pp)->hnext;
    return pp;
}

/* Under the shard lock and s->mu: s joins pid's list. */
static int link_to(unsigned sh, struct sock *s, uint64_t pid) {
    struct owner **pp = find(sh, pid);
    if (!*pp) {
        struct owner *o = calloc(1, sizeof *o);
        if (!o)
            return -ENOMEM;
        o->pid = pid;
        *pp = o;
    }
    struct owner *o = *pp;
    s->oprev = NULL;
    s->onext = o->head;
    if (o->head)
        o->head->oprev = s;
    o->head = s;
    /* release pairs with the acquire load in ot_sock_owner */
    atomic_store_explicit(&s->owner, pid, memory_order_release);
    return 0;
}

/* Under the shard lock and s->mu: s leaves its owner's list. */
static void unlink_from(unsigned sh, struct sock *s) {
    uint64_t pid = atomic_load_explicit(&s->owner, memory_order_relaxed);
    struct owner **pp = find(sh, pid);
    struct owner *o = *pp;
    if (s->oprev)
        s->oprev->onext = s->onext;
    else if (o)
        o->head = s->onext;
    if (s->onext)
        s->onext->oprev = s->oprev;
    s->onext = s->oprev = NULL;
    atomic_store_explicit(&s->owner, 0, memory_order_release);
    if (o && !o->head) {
        *pp = o->hnext;
        free(o);
    }
}

int ot__sock_own_add(struct sock *s, uint64_t pid) {
    unsigned sh = shard_of(pid);
    io_lock(&omap[sh].mu);
    int rc = ot__proc_mark_sock_owner((ot_pid){pid});
    if (rc == 0) {
        io_lock(&s->mu);
        rc = link_to(sh, s, pid);
        io_unlock(&s->mu);
    }
    io_unlock(&omap[sh].mu);
    return rc;
}

void ot__sock_own_del(struct sock *s) {
    for (;;) {
        /* relaxed: rechecked under the shard lock that guards it */
        uint64_t pid = atomic_load_explicit(&s->owner, memory_order_relaxed);
        if (!pid)
            return;
        unsigned sh = shard_of(pid);
        io_lock(&omap[sh].mu);
        io_lock(&s->mu);
        bool same = atomic_load_explicit(&s->owner, memory_order_relaxed) == pid;
        if (same)
            unlink_from(sh, s);
        io_unlock(&s->mu);
        io_unlock(&omap[sh].mu);
        if (same)
            return;
    }
}

int ot_sock_controlling_process(ot_sock h, ot_pid to) {
    uint64_t self = ot_self().v;
    struct sock *s;
    int rc = ot__sock_enter(h, &s);
    if (rc)
        return rc;
    unsigned a = shard_of(self), b = shard_of(to.v);
    unsigned lo = a < b ? a : b, hi = a < b ? b : a;
    io_lock(&omap[lo].mu);
    if (hi != lo)
        io_lock(&omap[hi].mu);
    io_lock(&s->mu);
    if (s->closed)
        rc = -EBADF;
    else if (atomic_load_explicit(&s->owner, memory_order_relaxed) != self)
        rc = -EPERM;
    io_unlock(&s->mu);
    if (rc == 0 && to.v != self) {
        /* under the target's shard lock: see the invariants above */
        rc = to.v ? ot__proc_mark_sock_owner(to) : -ESRCH;
        if (rc == 0) {
            io_lock(&s->mu);
            unlink_from(a, s);
            rc = link_to(b, s, to.v);
            if (rc < 0)
                link_to(a, s, self); /* its record was just freed: memory, retried */
            io_unlock(&s->mu);
        }
    }
    if (hi != lo)
        io_unlock(&omap[hi].mu);
    io_unlock(&omap[lo].mu);
    ot__sock_put(s);
    return rc;
}

/* The core's exit hook: on the scheduler thread, outside any process. */
static void owner_exited(ot_pid pid) {
    unsigned sh = shard_of(pid.v);
    io_lock(&omap[sh].mu);
    struct owner **pp = find(sh, pid.v);
    struct owner *o = *pp;
    struct sock *list = NULL;
    if (o) {
        *pp = o->hnext;
        /* each socket leaves the map with a reference for the walk below;
         * owner 0 keeps ot__sock_own_del off the private chain */
        for (struct sock *s = o->head, *next; s; s = next) {
            io_lock(&s->mu);
            next = s->onext;
            ot__sock_ref(s);
            atomic_store_explicit(&s->owner, 0, memory_order_release);
            s->oprev = NULL;
            s->onext = list;
            list = s;
            io_unlock(&s->mu);
        }
        free(o);
    }
    io_unlock(&omap[sh].mu);
    for (struct sock *s = list, *next; s; s = next) {
        next = s->onext;
        s->onext = NULL;
        if (ot__sock_kill(s))
            ot__sock_stat_add(SK_EXIT, 1);
        ot__sock_put(s);
    }
}

void ot__sock_own_init(void) {
    ot__set_sock_exit_hook(owner_exited);
}

__attribute__((constructor)) static void own_ctor(void) {
    ot__sock_own_init();
}
