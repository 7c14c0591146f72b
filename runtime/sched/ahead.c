/* The populate-ahead thread (ahead.h). One thread per runtime, at SCHED_IDLE,
 * sleeping on a futex word until an owner asks for more than has been
 * claimed; it then claims and populates a stretch at a time (64 KiB, or 8
 * stack tops: a few dozen page faults), so an owner that catches up with it
 * finds at most one stretch in flight, and mmap_lock, which a populate holds
 * for reading, is held only that long against a writer (an mmap or munmap
 * elsewhere in the program). Unless the thread is preempted inside a
 * stretch: at SCHED_IDLE that lasts until a core goes idle, which a writer
 * blocked on the lock itself brings about.
 *
 * The list of regions changes only under `mu`; the thread populates outside
 * it with `busy` naming the region, and ot__ahead_fini waits until the
 * thread is not busy with the region it drops, so a region is never
 * populated after its owner unmaps it. Owners never take `mu` on their hot
 * path: they CAS `claimed` and `asked`, bump `seq` and wake the thread only
 * when it said it sleeps (a Dekker pair of seq_cst operations, below). */
#include "runtime/sched/ahead.h"
#include "runtime/sched/sched.h"
#include "runtime/proc/proc.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define AHEAD_STRETCH ((size_t)64 << 10)
#define AHEAD_STRETCH_SLOTS 8

static struct {
    pthread_mutex_t mu;
    pthread_cond_t idle_cv;    /* signalled when busy goes back to NULL */
    struct ot__ahead *regions; /* under mu */
    struct ot__ahead *busy;    /* the region being populated, under mu */
    pthread_t th;
    bool started;
    _Atomic bool stop;
    _Atomic uint32_t seq;    /* bumped by every ask: the futex word */
    _Atomic bool sleeping;   /* the thread is (about to be) in FUTEX_WAIT */
    _Atomic bool no_populate; /* MADV_POPULATE_WRITE is missing: do nothing */
} svc = {.mu = PTHREAD_MUTEX_INITIALIZER, .idle_cv = PTHREAD_COND_INITIALIZER};

static inline size_t page_up(size_t n) {
    size_t pg = ot__rt.page;
    return (n + pg - 1) & ~(pg - 1);
}

/* A position rounded up to the region's unit: a page, or a whole slot. */
static inline size_t unit_up(const struct ot__ahead *a, size_t n) {
    return a->slot ? (n + a->slot - 1) / a->slot * a->slot : page_up(n);
}

/* Moves claimed from where it is to upto; true, with the stretch now the
 * caller's to populate, unless somebody already claimed that far. */
static bool claim(struct ot__ahead *a, size_t upto, size_t *from) {
    /* relaxed: claimed orders nothing but itself; the pages are the
     * kernel's to keep coherent */
    size_t c = atomic_load_explicit(&a->claimed, memory_order_relaxed);
    while (c < upto) {
        if (atomic_compare_exchange_weak_explicit(&a->claimed, &c, upto, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *from = c;
            return true;
        }
    }
    return false;
}

/* The last page of each slot in [from, to), up to 64 of them per system
 * call (process_madvise, 6.13; page by page where it refuses). */
static int populate_tops(struct ot__ahead *a, size_t from, size_t to) {
    size_t pg = ot__rt.page;
    struct iovec v[64];
    while (from < to) {
        size_t n = 0;
        for (; n < 64 && from < to; n++, from += a->slot)
            v[n] = (struct iovec){.iov_base = a->base + from + a->slot - pg, .iov_len = pg};
        if (ot__rt.self_pidfd >= 0 &&
            syscall(SYS_process_madvise, ot__rt.self_pidfd, v, n, MADV_POPULATE_WRITE, 0) ==
                (long)(n * pg))
            continue;
        for (size_t i = 0; i < n; i++) {
            if (madvise(v[i].iov_base, pg, MADV_POPULATE_WRITE) != 0)
                return -errno;
        }
    }
    return 0;
}

static int populate(struct ot__ahead *a, size_t from, size_t to) {
    if (atomic_load_explicit(&svc.no_populate, memory_order_relaxed) || from >= to)
        return 0;
    int rc = a->slot ? populate_tops(a, from, to)
                     : (madvise(a->base + from, to - from, MADV_POPULATE_WRITE) ? -errno : 0);
    if (rc == 0)
        return 0;
    if (rc == -EINVAL) {
        atomic_store_explicit(&svc.no_populate, true, memory_order_relaxed);
        return 0;
    }
    return rc == -ENOMEM ? -ENOMEM : 0;
}

static struct ot__ahead *wanted(void) {
    for (struct ot__ahead *a = svc.regions; a; a = a->next) {
        if (atomic_load_explicit(&a->asked, memory_order_relaxed) >
            atomic_load_explicit(&a->claimed, memory_order_relaxed))
            return a;
    }
    return NULL;
}

static void *ahead_main(void *arg) {
    (void)arg;
    /* only cores nothing else wants: best effort, a normal thread otherwise */
    struct sched_param sp = {0};
    (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    ot__lock(&svc.mu);
    while (!atomic_load_explicit(&svc.stop, memory_order_acquire)) {
        /* seq_cst: the load of seq before the look for work, which an ask
         * that comes later bumps; see the sleep below */
        uint32_t s = atomic_load(&svc.seq);
        struct ot__ahead *a = wanted();
        if (a) {
            size_t c = atomic_load_explicit(&a->claimed, memory_order_relaxed);
            size_t asked = atomic_load_explicit(&a->asked, memory_order_relaxed);
            size_t stretch = a->slot ? AHEAD_STRETCH_SLOTS * a->slot : AHEAD_STRETCH;
            size_t upto = c + stretch < asked ? c + stretch : asked;
            size_t from;
            if (claim(a, upto, &from)) {
                svc.busy = a;
                ot__unlock(&svc.mu);
                (void)populate(a, from, upto);
                ot__lock(&svc.mu);
                svc.busy = NULL;
                pthread_cond_broadcast(&svc.idle_cv);
            }
            continue;
        }
        /* Dekker with ot__ahead_use: it stores asked, bumps seq, then reads
         * sleeping; here sleeping is stored, then seq read again (all
         * seq_cst). Either the asker sees sleeping and wakes us, or we see
         * its bump and look again; FUTEX_WAIT itself refuses a stale s. */
        atomic_store(&svc.sleeping, true);
        if (atomic_load(&svc.seq) == s && !atomic_load_explicit(&svc.stop, memory_order_acquire)) {
            ot__unlock(&svc.mu);
            syscall(SYS_futex, &svc.seq, FUTEX_WAIT_PRIVATE, s, NULL, NULL, 0);
            ot__lock(&svc.mu);
        }
        atomic_store(&svc.sleeping, false);
    }
    ot__unlock(&svc.mu);
    return NULL;
}

static void kick(void) {
    atomic_fetch_add(&svc.seq, 1); /* seq_cst: see ahead_main */
    if (atomic_load(&svc.sleeping))
        syscall(SYS_futex, &svc.seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int ot__ahead_start(void) {
    atomic_store_explicit(&svc.stop, false, memory_order_relaxed);
    atomic_store_explicit(&svc.no_populate, false, memory_order_relaxed);
    int rc = pthread_create(&svc.th, NULL, ahead_main, NULL);
    if (rc)
        return -rc;
    svc.started = true;
    return 0;
}

void ot__ahead_stop(void) {
    if (svc.started) {
        atomic_store_explicit(&svc.stop, true, memory_order_release);
        kick();
        pthread_join(svc.th, NULL);
        svc.started = false;
    }
    ot__lock(&svc.mu);
    svc.regions = NULL;
    ot__unlock(&svc.mu);
}

void ot__ahead_init(struct ot__ahead *a, void *base, size_t len, size_t slot) {
    a->base = base;
    a->slot = slot;
    a->len = slot ? len / slot * slot : page_up(len);
    atomic_store_explicit(&a->claimed, 0, memory_order_relaxed);
    atomic_store_explicit(&a->asked, 0, memory_order_relaxed);
    ot__lock(&svc.mu);
    a->next = svc.regions;
    svc.regions = a;
    ot__unlock(&svc.mu);
}

void ot__ahead_fini(struct ot__ahead *a) {
    if (!a->base)
        return;
    ot__lock(&svc.mu);
    for (struct ot__ahead **pp = &svc.regions; *pp; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    }
    while (svc.busy == a)
        pthread_cond_wait(&svc.idle_cv, &svc.mu);
    ot__unlock(&svc.mu);
    a->base = NULL;
}

int ot__ahead_use(struct ot__ahead *a, size_t upto, size_t ahead) {
    upto = unit_up(a, upto);
    if (upto > a->len)
        upto = a->len;
    size_t from;
    bool mine = claim(a, upto, &from);
    size_t want = upto + unit_up(a, ahead);
    if (want > a->len)
        want = a->len;
    size_t asked = atomic_load_explicit(&a->asked, memory_order_relaxed);
    if (svc.started && asked < want) {
        while (asked < want && !atomic_compare_exchange_weak_explicit(
                                   &a->asked, &asked, want, memory_order_relaxed,
                                   memory_order_relaxed)) {
        }
        kick();
    }
    return mine ? populate(a, from, upto) : 0;
}
