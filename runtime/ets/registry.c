/* The table registry: handles, names, owners, heirs. A handle is a slot index
 * plus a generation (ot_tab.v = gen << 32 | index + 1); the slot points at the
 * live table or is NULL, and the table carries its own handle value, so a
 * stale handle finds NULL or a table with another id and gets -EBADF. Table
 * memory is retired through QSBR, so a caller that found a table can finish
 * its operation on it even if the table is deleted meanwhile.
 *
 * One mutex guards everything that changes here (slots, free list, the name
 * and owner indexes, owner and heir fields); look-ups by handle take no lock.
 * The core calls ets_owner_exit (installed by a constructor in this file)
 * once for each flagged owner that exits; it finds that owner's tables in the
 * per-owner index and hands each to its heir or deletes it. Marking a new
 * owner with ot__proc_mark_ets_owner happens under the mutex, before the
 * table enters the owner's index, so the owner's exit hook, which takes the
 * mutex too, can never miss a table. */
#include "ets_int.h"

#include "runtime/ext.h"

#include <stdlib.h>

#define ETS_BUCKETS 256

ets_regslot ets__reg[ETS_MAX_TABLES];
#define reg ets__reg
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static uint32_t free_head = UINT32_MAX, never_used;
static ets_table *names[ETS_BUCKETS];
static ets_table *owners[ETS_BUCKETS];

/* A critical section (ARCHITECTURE 7): no caller memory is touched while
 * the lock is held (names and data are copied in first). */
void ets__registry_lock(void)
{
    ot__crit_enter();
    pthread_mutex_lock(&reg_mu);
}

void ets__registry_unlock(void)
{
    pthread_mutex_unlock(&reg_mu);
    ot__crit_exit();
}

static unsigned name_bucket(const char *name)
{
    return (unsigned)(ets__hash(name, strlen(name)) % ETS_BUCKETS);
}

static unsigned owner_bucket(uint64_t pid)
{
    return (unsigned)(ets__hash(&pid, sizeof pid) % ETS_BUCKETS);
}

static ets_table *find_name(const char *name)
{
    for (ets_table *t = names[name_bucket(name)]; t; t = t->name_next)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static void owner_link(ets_table *t, uint64_t pid)
{
    /* Writers of owner hold the registry lock; readers (access checks) load
     * it relaxed: a racing give_away linearises either way. */
    atomic_store_explicit(&t->owner, pid, memory_order_relaxed);
    t->owner_prev = NULL;
    t->owner_next = NULL;
    if (!pid)
        return;
    ets_table **b = &owners[owner_bucket(pid)];
    t->owner_next = *b;
    if (*b)
        (*b)->owner_prev = t;
    *b = t;
}

static void owner_unlink(ets_table *t)
{
    uint64_t pid = atomic_load_explicit(&t->owner, memory_order_relaxed); /* registry lock */
    if (!pid)
        return;
    if (t->owner_prev)
        t->owner_prev->owner_next = t->owner_next;
    else
        owners[owner_bucket(pid)] = t->owner_next;
    if (t->owner_next)
        t->owner_next->owner_prev = t->owner_prev;
}

static void table_free(ets_table *t)
{
    if (t->impl)
        t->m->destroy(t);
    if (t->stripes) {
        free(t->stripes);
    }
    free(t->heir_data);
    free(t);
}

static void table_free_cb(ets_rhead *h)
{
    ets__reclaim_acquire();
    table_free(caa_container_of(h, ets_table, rcu));
}

static int opts_check(const char *name, const ot_ets_opts *o)
{
    if (o->type < OT_ETS_SET || o->type > OT_ETS_DUPLICATE_BAG)
        return -EINVAL;
    if (o->access < OT_ETS_PROTECTED || o->access > OT_ETS_PRIVATE)
        return -EINVAL;
    if (name && strlen(name) >= OT_ETS_NAME_MAX)
        return -EINVAL;
    if (o->named && (!name || !*name))
        return -EINVAL;
    if (o->heir_data_len && !o->heir_data)
        return -EINVAL;
    return 0;
}

static ets_table *table_alloc(const char *name, const ot_ets_opts *o)
{
    ets_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->type = o->type;
    t->access = o->access;
    t->named = o->named;
    t->write_concurrency = o->write_concurrency;
    t->m = o->type == OT_ETS_ORDERED_SET ? &ets__skiplist_methods : &ets__hash_methods;
    if (name)
        strcpy(t->name, name);
    /* An heir already dead reads as none, as in OTP: it could never inherit
     * (the exit hook checks again at the owner's exit). */
    atomic_init(&t->heir, o->heir.v && ot_is_alive(o->heir) ? o->heir.v : 0);
    unsigned nstripes = o->write_concurrency ? ETS_STRIPES_MAX : 4;
    t->stripe_mask = nstripes - 1;
    t->stripes = aligned_alloc(ETS_CACHELINE, nstripes * sizeof(ets_stripe));
    if (t->stripes) {
        for (unsigned i = 0; i < nstripes; i++) {
            atomic_init(&t->stripes[i].lock, 0);
            atomic_init(&t->stripes[i].size, 0);
            atomic_init(&t->stripes[i].bytes, 0);
            atomic_init(&t->stripes[i].claimed, 0);
        }
    }
    if (o->heir_data_len && (t->heir_data = malloc(o->heir_data_len)))
        memcpy(t->heir_data, o->heir_data, o->heir_data_len);
    t->heir_data_len = o->heir_data_len;
    if (!t->stripes || (o->heir_data_len && !t->heir_data) || t->m->init(t)) {
        table_free(t);
        return NULL;
    }
    return t;
}

/* Registry lock held: takes a slot, indexes the table, publishes it. */
static int publish(ets_table *t, uint64_t owner)
{
    if (t->named && find_name(t->name))
        return -EEXIST;
    uint32_t idx;
    if (free_head != UINT32_MAX)
        idx = free_head;
    else if (never_used < ETS_MAX_TABLES)
        idx = never_used;
    else
        return -EAGAIN;
    if (owner && ot__proc_mark_ets_owner((ot_pid){owner}) != 0)
        return -ESRCH; /* the creator is exiting: cannot happen from inside it */
    if (idx == free_head)
        free_head = reg[idx].next_free;
    else
        never_used++;
    if (!reg[idx].gen)
        reg[idx].gen = 1;
    t->id = (uint64_t)reg[idx].gen << 32 | (idx + 1);
    if (t->named) {
        unsigned b = name_bucket(t->name);
        t->name_next = names[b];
        names[b] = t;
    }
    owner_link(t, owner);
    /* Pairs with the acquire load in ets__lookup: the table is complete. */
    atomic_store_explicit(&reg[idx].tab, t, memory_order_release);
    return 0;
}

/* Registry lock held: makes the handle stale and retires the table. */
static void unpublish(ets_table *t)
{
    uint32_t idx = (uint32_t)t->id - 1;
    atomic_store_explicit(&reg[idx].tab, NULL, memory_order_release); /* pairs with ets__lookup */
    reg[idx].gen++;
    reg[idx].next_free = free_head;
    free_head = idx;
    if (t->named) {
        ets_table **p = &names[name_bucket(t->name)];
        while (*p != t)
            p = &(*p)->name_next;
        *p = t->name_next;
    }
    owner_unlink(t);
    ets__retire(&t->rcu, table_free_cb, sizeof *t + ets__bytes(t));
}

OT_API ot_tab ot_ets_new(const char *name, const ot_ets_opts *o)
{
    static const ot_ets_opts defaults = {.type = OT_ETS_SET, .access = OT_ETS_PROTECTED};
    if (!o)
        o = &defaults;
    int rc = opts_check(name, o);
    if (rc) {
        errno = -rc;
        return OT_NOTAB;
    }
    ets_table *t = table_alloc(name, o);
    if (!t) {
        errno = ENOMEM;
        return OT_NOTAB;
    }
    ets__registry_lock();
    rc = publish(t, ot_self().v);
    ets__registry_unlock();
    if (rc) {
        table_free(t);
        errno = -rc;
        return OT_NOTAB;
    }
    return (ot_tab){t->id};
}

OT_API ot_tab ot_ets_whereis(const char *name)
{
    if (!name) {
        errno = EINVAL;
        return OT_NOTAB;
    }
    char copy[OT_ETS_NAME_MAX];
    size_t len = strnlen(name, sizeof copy);
    if (len == sizeof copy) {
        errno = ENOENT; /* too long to be a table's name */
        return OT_NOTAB;
    }
    memcpy(copy, name, len + 1); /* before the lock: see ets__registry_lock */
    ets__registry_lock();
    ets_table *t = find_name(copy);
    ot_tab h = {t ? t->id : 0};
    ets__registry_unlock();
    if (!t)
        errno = ENOENT;
    return h;
}

/* The caller may write (or delete): the owner, or anyone for public. */
static int may_write(ets_table *t)
{
    if (t->access == OT_ETS_PUBLIC)
        return 0;
    uint64_t owner = atomic_load_explicit(&t->owner, memory_order_relaxed); /* see owner_link */
    return ot_self().v == owner ? 0 : -EACCES;
}

OT_API int ot_ets_delete_table(ot_tab h)
{
    int tok = ets__enter();
    int rc = -EBADF;
    ets__registry_lock();
    ets_table *t = ets__lookup(h);
    if (t && !(rc = may_write(t)))
        unpublish(t);
    ets__registry_unlock();
    ets__leave(tok);
    return rc;
}

/* in_proc: the caller is a process (give_away), whose send may be where a
 * kill takes effect (a preemption point): the buffer then comes from its
 * heap, which its exit releases, not from malloc, which would leak. The exit
 * hook runs on the scheduler, outside any process. */
static void send_transfer(ot_pid to, ot_tab tab, ot_pid from, const void *data, size_t len,
                          bool in_proc)
{
    size_t size = sizeof(ot_ets_transfer_msg) + len;
    ot_ets_transfer_msg *m = in_proc ? ot_alloc(size) : malloc(size);
    if (!m)
        return; /* the table moved all the same; only the notice is lost */
    m->tab = tab;
    m->from = from;
    m->len = len;
    if (len)
        memcpy(m->data, data, len);
    ot_send(to, OT_TAG_ETS_TRANSFER, m, size);
    if (in_proc)
        ot_free(m);
    else
        free(m);
}

OT_API int ot_ets_give_away(ot_tab h, ot_pid to, const void *gift, size_t len)
{
    if (len && !gift)
        return -EINVAL;
    int tok = ets__enter();
    int rc = -EBADF;
    ot_pid me = ot_self();
    ets__registry_lock();
    ets_table *t = ets__lookup(h);
    if (t) {
        uint64_t owner = atomic_load_explicit(&t->owner, memory_order_relaxed); /* lock held */
        if (me.v != owner)
            rc = -EPERM;
        else if (to.v == owner)
            rc = -EINVAL;
        else if (!to.v || !ot_is_alive(to) || ot__proc_mark_ets_owner(to) != 0)
            rc = -ESRCH;
        else {
            owner_unlink(t);
            owner_link(t, to.v);
            rc = 0;
        }
    }
    ets__registry_unlock();
    ets__leave(tok);
    /* outside the section: the send may switch, or end the caller (a kill) */
    if (rc == 0)
        send_transfer(to, h, me, gift, len, me.v != 0);
    return rc;
}

OT_API int ot_ets_setopts_heir(ot_tab h, ot_pid heir, const void *data, size_t len)
{
    if (len && !data)
        return -EINVAL;
    void *copy = NULL; /* made before the lock, freed (the old data) after it */
    if (len && !(copy = malloc(len)))
        return -ENOMEM;
    if (len)
        memcpy(copy, data, len);
    /* As at ot_ets_new: a dead heir is none. */
    uint64_t hv = heir.v && ot_is_alive(heir) ? heir.v : 0;
    int tok = ets__enter();
    int rc = -EBADF;
    ets__registry_lock();
    ets_table *t = ets__lookup(h);
    if (t) {
        if (ot_self().v != atomic_load_explicit(&t->owner, memory_order_relaxed)) { /* lock held */
            rc = -EPERM;
        } else {
            atomic_store_explicit(&t->heir, hv, memory_order_relaxed); /* lock held */
            void *old = t->heir_data;
            t->heir_data = copy;
            t->heir_data_len = len;
            copy = old;
            rc = 0;
        }
    }
    ets__registry_unlock();
    ets__leave(tok);
    free(copy);
    return rc;
}

/* The core's hook: `pid` has exited and owned at least one table. */
static void ets_owner_exit(ot_pid pid)
{
    int tok = ets__enter();
    ets__registry_lock();
    ets_table *t = owners[owner_bucket(pid.v)];
    while (t) {
        ets_table *next = t->owner_next;
        if (atomic_load_explicit(&t->owner, memory_order_relaxed) != pid.v) { /* lock held */
            t = next;
            continue;
        }
        uint64_t heir = atomic_load_explicit(&t->heir, memory_order_relaxed); /* lock held */
        if (heir && heir != pid.v && ot__proc_mark_ets_owner((ot_pid){heir}) == 0) {
            owner_unlink(t);
            owner_link(t, heir);
            /* OTP clears the heir once it has inherited. */
            atomic_store_explicit(&t->heir, 0, memory_order_relaxed);
            send_transfer((ot_pid){heir}, (ot_tab){t->id}, pid, t->heir_data, t->heir_data_len,
                          false);
        } else {
            unpublish(t);
        }
        t = next;
    }
    ets__registry_unlock();
    ets__leave(tok);
}

__attribute__((constructor)) static void ets_install_exit_hook(void)
{
    ot__set_ets_exit_hook(ets_owner_exit);
}

OT_API int ot_ets_info(ot_tab h, struct ot_ets_info *out)
{
    if (!out)
        return -EINVAL;
    struct ot_ets_info r; /* filled under the lock, copied to the caller after it */
    memset(&r, 0, sizeof r);
    int tok = ets__enter();
    int rc = -EBADF;
    ets__registry_lock();
    ets_table *t = ets__lookup(h);
    if (t) {
        /* Anyone may ask, of private tables too: OTP refuses only reads and
         * writes of objects. */
        r.type = t->type;
        r.access = t->access;
        r.size = ets__size(t);
        r.memory = sizeof *t + (t->stripe_mask + 1) * sizeof(ets_stripe) + t->m->overhead(t) +
                   ets__bytes(t);
        r.owner = (ot_pid){atomic_load_explicit(&t->owner, memory_order_relaxed)}; /* lock held */
        r.heir = (ot_pid){atomic_load_explicit(&t->heir, memory_order_relaxed)};
        r.named = t->named;
        r.write_concurrency = t->write_concurrency;
        memcpy(r.name, t->name, sizeof r.name);
        rc = 0;
    }
    ets__registry_unlock();
    ets__leave(tok);
    if (rc == 0)
        *out = r;
    return rc;
}
