/* The registry's lifecycle: slots, the root process and the partition
 * processes. ot_registry_start_link reserves a slot and spawns the root (a
 * handler trapping exits, linked to the caller), which builds the tables it
 * owns and the partitions (handlers trapping exits, linked to it), publishes
 * the slot and then replies. The root exits with its parent's reason when the
 * parent exits, with a partition's reason when a partition dies, and with
 * normal on ot_registry_stop; partitions exit with the root's reason. Their
 * tables go with the root (ETS deletes an owner's tables at its exit). A
 * partition's only job is its registrants' EXITs: it removes their entries.
 *
 * The slot table's mutex guards slot allocation only, never held across a
 * call that may yield. Slots are allocated on first use and never freed
 * (stale handles keep pointing at valid memory, see registry_int.h). */
#include "registry_int.h"

#include <pthread.h>
#include <stdlib.h>

static struct reg_slot *_Atomic slots[OT_REGISTRY_MAX];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;

struct reg_slot *reg__slot_at(uint32_t idx)
{
    /* Pairs with the release store that installs a new slot (slot_reserve). */
    return atomic_load_explicit(&slots[idx], memory_order_acquire);
}

static bool slot_dead(struct reg_slot *s)
{
    ot_pid root = {atomic_load_explicit(&s->root, memory_order_relaxed)};
    if (!root.v || ot_is_alive(root))
        return false;
    unsigned n = atomic_load_explicit(&s->nparts, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        if (ot_is_alive((ot_pid){atomic_load_explicit(&s->part[i], memory_order_relaxed)}))
            return false;
    return true;
}

/* Clears a slot's readable state (seqlock writer, slots_lock held or the
 * slot not yet shared). */
static void slot_clear(struct reg_slot *s)
{
    atomic_store_explicit(&s->id, 0, memory_order_relaxed);
    /* Release stores from here on (they keep id = 0 before them): a reader
     * whose acquire load sees one of them sees id changed (reg_valid). */
    atomic_store_explicit(&s->nparts, 0, memory_order_release);
    atomic_store_explicit(&s->root, 0, memory_order_release);
    for (unsigned i = 0; i < OT_REGISTRY_PARTITIONS_MAX; i++) {
        atomic_store_explicit(&s->key_tab[i], 0, memory_order_release);
        atomic_store_explicit(&s->pid_tab[i], 0, memory_order_release);
        atomic_store_explicit(&s->part[i], 0, memory_order_release);
    }
}

/* A free slot, or one whose registry has fully exited; NULL (errno) if none. */
static struct reg_slot *slot_reserve(int kind, unsigned nparts, uint64_t *id_out)
{
    pthread_mutex_lock(&slots_lock);
    struct reg_slot *got = NULL;
    uint32_t idx = 0;
    for (uint32_t i = 0; i < OT_REGISTRY_MAX && !got; i++) {
        struct reg_slot *s = atomic_load_explicit(&slots[i], memory_order_relaxed);
        if (!s) {
            s = calloc(1, sizeof *s);
            if (!s) {
                errno = ENOMEM;
                break;
            }
            for (unsigned p = 0; p < OT_REGISTRY_PARTITIONS_MAX; p++)
                s->pinfo[p] = (struct reg_part){.slot = s, .idx = p};
            /* Pairs with the acquire load of reg__slot_at. */
            atomic_store_explicit(&slots[i], s, memory_order_release);
        } else if (s->used && !slot_dead(s)) {
            continue;
        }
        slot_clear(s);
        s->used = true;
        s->gen++;
        /* Seqlock field stores (see slot_clear). */
        atomic_store_explicit(&s->kind, kind, memory_order_release);
        atomic_store_explicit(&s->nparts, nparts, memory_order_release);
        got = s;
        idx = i;
    }
    if (!got && errno != ENOMEM)
        errno = EAGAIN;
    if (got)
        *id_out = (uint64_t)got->gen << 32 | (idx + 1);
    pthread_mutex_unlock(&slots_lock);
    return got;
}

/* A slot whose start failed before any process of it ran. */
static void slot_release(struct reg_slot *s)
{
    pthread_mutex_lock(&slots_lock);
    slot_clear(s);
    s->used = false;
    pthread_mutex_unlock(&slots_lock);
}

/* ---- partitions ------------------------------------------------------------ */

static int part_fn(void *state, const ot_msg *m)
{
    struct reg_part *pi = state;
    struct reg_slot *s = pi->slot;
    if (m->tag != OT_TAG_EXIT || m->size < sizeof(ot_exit_msg))
        return 0; /* nothing else is addressed to a partition */
    ot_exit_msg x;
    memcpy(&x, ot_msg_data(m), sizeof x);
    if (x.pid.v == atomic_load_explicit(&s->root, memory_order_relaxed))
        ot_exit_self(x.reason);
    reg__cleanup(s, pi->idx, x.pid);
    return 0;
}

/* ---- the root ---------------------------------------------------------------- */

struct reg_init {
    uint64_t id;
    char name[OT_NAME_MAX];
};

struct reg_init_reply {
    int rc;
    ot_pid holder;
};

static ot_tab new_table(int type)
{
    ot_ets_opts o = {.type = type, .access = OT_ETS_PUBLIC, .write_concurrency = true};
    return ot_ets_new(NULL, &o);
}

/* Builds tables and partitions; 0 or -errno. On error the root exits after
 * replying, which takes whatever was built with it. */
static int root_build(struct reg_slot *s)
{
    unsigned n = atomic_load_explicit(&s->nparts, memory_order_relaxed);
    int kind = atomic_load_explicit(&s->kind, memory_order_relaxed);
    ot_tab meta = new_table(OT_ETS_SET);
    if (!meta.v)
        return -errno;
    atomic_store_explicit(&s->meta, meta.v, memory_order_release);
    for (unsigned i = 0; i < n; i++) {
        ot_tab kt = new_table(kind == OT_UNIQUE ? OT_ETS_SET : OT_ETS_DUPLICATE_BAG);
        ot_tab pt = kt.v ? new_table(OT_ETS_ORDERED_SET) : OT_NOTAB;
        if (!pt.v)
            return -errno;
        atomic_store_explicit(&s->key_tab[i], kt.v, memory_order_release);
        atomic_store_explicit(&s->pid_tab[i], pt.v, memory_order_release);
        ot_spawn_opts o = {.link = true, .trap_exit = true, .behaviour = "registry_partition"};
        ot_pid p = ot_spawn_handler(part_fn, &s->pinfo[i], &o);
        if (!p.v)
            return -errno;
        atomic_store_explicit(&s->part[i], p.v, memory_order_release);
    }
    return 0;
}

static int root_init(struct reg_slot *s, const ot_msg *m)
{
    struct reg_init in;
    struct reg_init_reply rep = {0};
    memcpy(&in, ot_msg_data(m), sizeof in);
    rep.rc = root_build(s);
    if (!rep.rc) {
        /* Publish: pairs with reg_open's acquire load. */
        atomic_store_explicit(&s->id, in.id, memory_order_release);
        if (in.name[0]) {
            rep.rc = ot_register(in.name, ot_self());
            if (rep.rc == -EEXIST)
                rep.holder = ot_whereis(in.name);
            if (rep.rc) {
                /* Unpublished; nothing is written to the slot after. */
                atomic_store_explicit(&s->id, 0, memory_order_relaxed);
            }
        }
    }
    ot_send_ref(m->from, OT_TAG_REPLY, m->ref, &rep, sizeof rep);
    if (rep.rc)
        ot_exit_self(OT_REASON(OT_NORMAL));
    return 0;
}

/* The root's own exits: the handle goes stale first, so that nothing new
 * starts on a registry that is going (a killed root leaves the id, and its
 * deleted tables answer -EBADF instead). */
static _Noreturn void root_exit(struct reg_slot *s, ot_reason why)
{
    /* Nothing is written to the slot after this store: no ordering needed. */
    atomic_store_explicit(&s->id, 0, memory_order_relaxed);
    ot_exit_self(why);
}

static bool is_partition(struct reg_slot *s, ot_pid p)
{
    unsigned n = atomic_load_explicit(&s->nparts, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        if (atomic_load_explicit(&s->part[i], memory_order_relaxed) == p.v)
            return true;
    return false;
}

static int root_fn(void *state, const ot_msg *m)
{
    struct reg_slot *s = state;
    switch (m->tag) {
    case REG_TAG_INIT:
        if (m->size == sizeof(struct reg_init))
            return root_init(s, m);
        return 0;
    case REG_TAG_STOP:
        root_exit(s, OT_REASON(OT_NORMAL));
    case OT_TAG_EXIT: {
        if (m->size < sizeof(ot_exit_msg))
            return 0;
        ot_exit_msg x;
        memcpy(&x, ot_msg_data(m), sizeof x);
        /* The parent's exit, or a partition's: the registry cannot go on
         * without it (Elixir's registry supervisor would restart them all;
         * here a supervisor above restarts the registry). */
        if (x.pid.v == atomic_load_explicit(&s->parent, memory_order_relaxed) ||
            is_partition(s, x.pid))
            root_exit(s, x.reason);
        return 0;
    }
    default:
        return 0;
    }
}

/* ---- the public calls ----------------------------------------------------------- */

OT_API int ot_registry_start_link(const char *name, int keys, unsigned partitions, ot_pid *out)
{
    if (out)
        *out = OT_NOPID;
    if (keys != OT_UNIQUE && keys != OT_DUPLICATE)
        return -EINVAL;
    if (partitions > OT_REGISTRY_PARTITIONS_MAX)
        return -EINVAL;
    struct reg_init in = {0};
    if (name) {
        size_t nl = strnlen(name, OT_NAME_MAX);
        if (nl == 0 || nl >= OT_NAME_MAX)
            return -EINVAL;
        memcpy(in.name, name, nl);
    }
    ot_pid self = ot_self();
    if (!self.v)
        return -EPERM;
    if (!partitions) {
        partitions = ot_schedulers();
        if (partitions > OT_REGISTRY_PARTITIONS_MAX)
            partitions = OT_REGISTRY_PARTITIONS_MAX;
        if (!partitions)
            partitions = 1;
    }
    struct reg_slot *s = slot_reserve(keys, partitions, &in.id);
    if (!s)
        return -errno;
    atomic_store_explicit(&s->parent, self.v, memory_order_relaxed);
    ot_spawn_opts o = {.link = true, .trap_exit = true, .behaviour = "registry"};
    ot_pid root = ot_spawn_handler(root_fn, s, &o);
    if (!root.v) {
        int e = errno;
        slot_release(s);
        return -e;
    }
    atomic_store_explicit(&s->root, root.v, memory_order_release); /* a seqlock field */
    /* The monitor's ref is the reply's: one receive sees the reply or DOWN. */
    ot_ref mref = ot_monitor(root);
    ot_send_ref(root, REG_TAG_INIT, mref, &in, sizeof in);
    ot_msg *m = ot_receive_ref(mref, OT_INFINITY);
    int rc = -ECHILD; /* the root died before it replied */
    if (m && m->tag == OT_TAG_REPLY) {
        struct reg_init_reply rep;
        memcpy(&rep, ot_msg_data(m), sizeof rep);
        rc = rep.rc;
        if (rc == -EEXIST && out)
            *out = rep.holder;
        ot_demonitor(mref, OT_DEMONITOR_FLUSH);
    }
    ot_msg_free(m);
    if (!rc && out)
        *out = root;
    if (rc) {
        /* The root exits on its own after a failed start; its EXIT (normal)
         * must not reach a trapping caller as if the registry had run. */
        ot_unlink(root);
    }
    return rc;
}

OT_API int ot_registry_stop(ot_reg r)
{
    struct reg_view v;
    int rc = reg_open(r, &v);
    if (rc)
        return rc;
    ot_pid root = {atomic_load_explicit(&v.s->root, memory_order_acquire)};
    if (!reg_valid(&v) || !ot_is_alive(root))
        return -EBADF;
    if (!ot_self().v) {
        /* A foreign thread cannot monitor: stop and return at once. */
        ot_send(root, REG_TAG_STOP, NULL, 0);
        return 0;
    }
    ot_ref mref = ot_monitor(root);
    if (!mref.v)
        return -errno;
    ot_send(root, REG_TAG_STOP, NULL, 0);
    ot_msg *m = ot_receive_ref(mref, OT_INFINITY);
    ot_msg_free(m);
    return 0;
}

static ot_reg reg_of_pid(ot_pid p)
{
    if (!p.v) {
        errno = ENOENT;
        return OT_NOREG;
    }
    for (uint32_t i = 0; i < OT_REGISTRY_MAX; i++) {
        struct reg_slot *s = reg__slot_at(i);
        if (!s)
            break; /* slots are allocated in order */
        /* Pairs with the publishing release store (root_init). */
        uint64_t id = atomic_load_explicit(&s->id, memory_order_acquire);
        /* The root as a seqlock field: acquire, see reg_open. */
        if (id && atomic_load_explicit(&s->root, memory_order_acquire) == p.v) {
            if (atomic_load_explicit(&s->id, memory_order_relaxed) == id)
                return (ot_reg){id};
        }
    }
    errno = ENOENT;
    return OT_NOREG;
}

OT_API ot_reg ot_registry_of(ot_pid p) { return reg_of_pid(p); }

OT_API ot_reg ot_registry_whereis(const char *name)
{
    if (!name) {
        errno = EINVAL;
        return OT_NOREG;
    }
    return reg_of_pid(ot_whereis(name));
}

OT_API ot_pid ot_registry_pid(ot_reg r)
{
    struct reg_view v;
    if (reg_open(r, &v))
        return OT_NOPID;
    ot_pid root = {atomic_load_explicit(&v.s->root, memory_order_acquire)};
    return reg_valid(&v) ? root : OT_NOPID;
}
