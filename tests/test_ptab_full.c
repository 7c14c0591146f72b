/* The process table at capacity (issue 10 item 14): while spawns fail with
 * -EAGAIN from several threads at once, the table's high-water mark (the
 * bound of ot_processes, of the slot look-up and of ot_stop's walk) never
 * passes the capacity, a pid whose index lies just past the table is refused
 * without touching memory beyond it, ot_processes lists exactly the live
 * processes, and ot_stop ends a full table. White-box: ot__ptab_hwm is read
 * directly (the static library exposes the hidden symbol). */
#include <otter/testing.h>

#include <pthread.h>
#include <string.h>

size_t ot__ptab_hwm(void);
size_t ot__ptab_cap(void);

enum { TAG_GO = OT_TAG_USER + 1 };
enum { CAP = 64, SPAWNERS = 2, ROUNDS = 1000000 };

static void wait_go(void *arg) {
    (void)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
}

struct shared {
    _Atomic int stop;
    _Atomic size_t max_hwm;
    _Atomic long failures, bad_errno, spurious;
};

/* A foreign thread that keeps trying to spawn into the full table. */
static void *spawner(void *v) {
    struct shared *sh = v;
    for (int i = 0; i < ROUNDS && !atomic_load(&sh->stop); i++) {
        errno = 0;
        ot_pid p = ot_spawn(wait_go, NULL);
        if (p.v) {
            atomic_fetch_add(&sh->spurious, 1);
            ot_send(p, TAG_GO, NULL, 0);
            continue;
        }
        atomic_fetch_add(&sh->failures, 1);
        if (errno != EAGAIN)
            atomic_fetch_add(&sh->bad_errno, 1);
    }
    return NULL;
}

/* Watches the mark and probes the index just past the table. */
static void *watcher(void *v) {
    struct shared *sh = v;
    ot_pid past = {(uint64_t)1 << 32 | CAP};
    while (!atomic_load(&sh->stop)) {
        size_t h = ot__ptab_hwm();
        size_t m = atomic_load(&sh->max_hwm);
        if (h > m)
            atomic_store(&sh->max_hwm, h);
        if (ot_is_alive(past))
            atomic_fetch_add(&sh->spurious, 1);
    }
    return NULL;
}

Test(ptab_full, hwm_never_passes_capacity, .timeout = 120) {
    ot_config cfg = {.schedulers = 2, .max_processes = CAP};
    cr_assert_eq(ot_start(&cfg), 0);
    cr_assert_eq(ot__ptab_cap(), CAP);
    ot_pid kids[CAP];
    size_t n = 0;
    for (;;) {
        ot_pid p = ot_spawn(wait_go, NULL);
        if (!p.v) {
            cr_assert_eq(errno, EAGAIN);
            break;
        }
        cr_assert(n < CAP);
        kids[n++] = p;
    }
    /* this thread's first spawn gave it no mailbox: every slot is a process */
    cr_assert_eq(n, CAP);
    cr_assert_eq(ot__ptab_hwm(), CAP);

    struct shared sh = {0};
    pthread_t sp[SPAWNERS], w;
    cr_assert_eq(pthread_create(&w, NULL, watcher, &sh), 0);
    for (int i = 0; i < SPAWNERS; i++)
        cr_assert_eq(pthread_create(&sp[i], NULL, spawner, &sh), 0);
    for (int i = 0; i < SPAWNERS; i++)
        pthread_join(sp[i], NULL);
    atomic_store(&sh.stop, 1);
    pthread_join(w, NULL);

    cr_assert_eq(atomic_load(&sh.failures), (long)SPAWNERS * ROUNDS);
    cr_assert_eq(atomic_load(&sh.bad_errno), 0);
    cr_assert_eq(atomic_load(&sh.spurious), 0);
    cr_assert(atomic_load(&sh.max_hwm) <= CAP, "high-water mark reached %zu of %d",
              atomic_load(&sh.max_hwm), CAP);
    cr_assert_eq(ot__ptab_hwm(), CAP);

    /* ot_processes sees exactly the live ones, with room to spare or not */
    ot_pid all[CAP + 8];
    cr_assert_eq(ot_processes(all, CAP + 8), CAP);
    cr_assert_eq(ot_processes(all, 3), CAP);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < CAP; j++)
            found |= all[j].v == kids[i].v;
        cr_assert(found);
    }
    /* ot_stop kills a full table and returns */
    cr_assert_eq(ot_stop(), 0);
}
