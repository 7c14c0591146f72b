/* Local names (register/2, unregister/1, whereis/1): one table for the
 * runtime, a string-keyed open hash under a mutex; registration is rare and
 * look-ups are short. A name dies with its process. Registration races with
 * the target's exit through the PF_NAMED bit: register sets it with a CAS
 * that fails once PF_DEAD is set, and the exit path releases the name only if
 * the bit was set when it set PF_DEAD, taking the same mutex. The caller's
 * name is copied in before the mutex is taken (a critical section, crit.c):
 * a bad pointer then faults in the caller's process with nothing held. */
#include "runtime/proc/proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct name_ent {
    char *name;
    ot_pid pid;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct name_ent *tab;
static size_t cap, len, tomb;

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

#define TOMB ((char *)1)

static struct name_ent *find(const char *name) {
    if (!cap)
        return NULL;
    size_t i = hash(name) & (cap - 1);
    while (tab[i].name) {
        if (tab[i].name != TOMB && strcmp(tab[i].name, name) == 0)
            return &tab[i];
        i = (i + 1) & (cap - 1);
    }
    return NULL;
}

static int grow(void) {
    size_t ncap = cap ? cap * 2 : 64;
    struct name_ent *n = calloc(ncap, sizeof *n);
    if (!n)
        return -ENOMEM;
    for (size_t i = 0; i < cap; i++) {
        if (!tab[i].name || tab[i].name == TOMB)
            continue;
        size_t j = hash(tab[i].name) & (ncap - 1);
        while (n[j].name)
            j = (j + 1) & (ncap - 1);
        n[j] = tab[i];
    }
    free(tab);
    tab = n;
    cap = ncap;
    tomb = 0;
    return 0;
}

static void remove_ent(struct name_ent *e) {
    free(e->name);
    e->name = TOMB;
    e->pid = OT_NOPID;
    len--;
    tomb++;
}

/* Copies a valid name (1 to OT_NAME_MAX - 1 bytes) into buf. */
static bool copy_name(const char *name, char buf[OT_NAME_MAX]) {
    if (!name)
        return false;
    size_t n = strnlen(name, OT_NAME_MAX);
    if (n == 0 || n == OT_NAME_MAX)
        return false;
    memcpy(buf, name, n + 1);
    return true;
}

static int register_impl(const char *uname, ot_pid pid) {
    char name[OT_NAME_MAX];
    if (!copy_name(uname, name))
        return -EINVAL;
    struct ot_proc *p = ot__ptab_live(pid);
    /* aflags: flags belong to the process (ot_trap_exit writes them) */
    if (!p || (atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_FOREIGN))
        return -ESRCH;
    ot__lock(&mu);
    int rc = 0;
    if (find(name)) {
        rc = -EEXIST;
        goto out;
    }
    if ((len + tomb + 1) * 2 > cap && (rc = grow()) != 0)
        goto out;
    uint32_t af = atomic_load_explicit(&p->aflags, memory_order_relaxed);
    for (;;) {
        if (atomic_load_explicit(&p->pid, memory_order_relaxed) != pid.v || (af & PF_DEAD)) {
            rc = -ESRCH;
            goto out;
        }
        if (af & PF_NAMED) { /* register/2: a process has at most one name */
            rc = -EEXIST;
            goto out;
        }
        /* acq_rel pairs with the exit path's fetch_or of PF_DEAD */
        if (atomic_compare_exchange_weak_explicit(&p->aflags, &af, af | PF_NAMED,
                                                  memory_order_acq_rel, memory_order_relaxed))
            break;
    }
    char *dup = strdup(name);
    if (!dup) {
        atomic_fetch_and_explicit(&p->aflags, ~(uint32_t)PF_NAMED, memory_order_relaxed);
        rc = -ENOMEM;
        goto out;
    }
    size_t i = hash(name) & (cap - 1);
    while (tab[i].name && tab[i].name != TOMB)
        i = (i + 1) & (cap - 1);
    if (tab[i].name == TOMB)
        tomb--;
    tab[i].name = dup;
    tab[i].pid = pid;
    len++;
    p->name = dup;
out:
    ot__unlock(&mu);
    return rc;
}

/* the public call passes the gate when made on a plain thread (foreign.c) */
int ot_register(const char *uname, ot_pid pid) {
    bool gated;
    if (!ot__gate_in(&gated)) {
        return -ENOTCONN;
    }
    int r = register_impl(uname, pid);
    int e = errno;
    ot__gate_out(gated);
    errno = e;
    return r;
}

static int unregister_impl(const char *uname) {
    char name[OT_NAME_MAX];
    if (!copy_name(uname, name))
        return -EINVAL;
    ot__lock(&mu);
    struct name_ent *e = find(name);
    int rc = -ENOENT;
    if (e) {
        struct ot_proc *p = ot__ptab_slot(e->pid);
        if (p && atomic_load_explicit(&p->pid, memory_order_relaxed) == e->pid.v) {
            p->name = NULL;
            /* release: once PF_NAMED is clear the exit path skips the mutex,
             * so its acq_rel fetch_or of PF_DEAD, which reads this, is what
             * orders the store above before the slot's reuse (reset_record) */
            atomic_fetch_and_explicit(&p->aflags, ~(uint32_t)PF_NAMED, memory_order_release);
        }
        remove_ent(e);
        rc = 0;
    }
    ot__unlock(&mu);
    return rc;
}

/* the public call passes the gate when made on a plain thread (foreign.c) */
int ot_unregister(const char *uname) {
    bool gated;
    if (!ot__gate_in(&gated)) {
        return -ENOTCONN;
    }
    int r = unregister_impl(uname);
    int e = errno;
    ot__gate_out(gated);
    errno = e;
    return r;
}

static ot_pid whereis_impl(const char *uname) {
    char name[OT_NAME_MAX];
    if (!copy_name(uname, name))
        return OT_NOPID;
    ot__lock(&mu);
    struct name_ent *e = find(name);
    ot_pid pid = e ? e->pid : OT_NOPID;
    ot__unlock(&mu);
    return pid;
}

/* the public call passes the gate when made on a plain thread (foreign.c) */
ot_pid ot_whereis(const char *uname) {
    bool gated;
    if (!ot__gate_in(&gated)) {
        errno = ENOTCONN;
        return OT_NOPID;
    }
    ot_pid r = whereis_impl(uname);
    int e = errno;
    ot__gate_out(gated);
    errno = e;
    return r;
}

void ot__names_copy(struct ot_proc *p, uint64_t pid, char *buf, size_t size) {
    /* under the mutex: ot_unregister (any thread) and the exit path free the
     * string under it; the pid check makes sure the slot is still pid's */
    buf[0] = 0;
    if (!(atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_NAMED))
        return;
    ot__lock(&mu);
    if (p->name && atomic_load_explicit(&p->pid, memory_order_relaxed) == pid)
        snprintf(buf, size, "%s", p->name);
    ot__unlock(&mu);
}

void ot__names_release(struct ot_proc *p) {
    ot__lock(&mu);
    if (p->name) {
        struct name_ent *e = find(p->name);
        if (e && e->pid.v == atomic_load_explicit(&p->pid, memory_order_relaxed))
            remove_ent(e);
        p->name = NULL;
    }
    ot__unlock(&mu);
}

void ot__names_fini(void) {
    ot__lock(&mu);
    for (size_t i = 0; i < cap; i++)
        if (tab[i].name && tab[i].name != TOMB)
            free(tab[i].name);
    free(tab);
    tab = NULL;
    cap = len = tomb = 0;
    ot__unlock(&mu);
}
