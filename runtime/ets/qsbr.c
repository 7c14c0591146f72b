/* ETS memory reclamation: liburcu's QSBR flavour for the grace periods, our
 * own list and thread for the frees. Scheduler threads are RCU readers that
 * the core keeps online and that report a quiescent state once per scheduler
 * loop; any other thread (a foreign thread) is registered here on its first
 * ETS call, unregistered by a pthread key destructor, and online only for
 * the length of each ETS call.
 *
 * Everything unlinked goes onto one lock-free list (ets__retire) with its
 * size in bytes. A reclamation cycle takes the whole list, waits for a grace
 * period (synchronize_rcu, offline) and runs the frees. The reclaimer thread,
 * started by ot_start (ets_reclaim_start: -ENOMEM when it cannot be made, so
 * no ETS call ever has to start a thread) and woken every ETS_RECLAIM_TICK_MS
 * or when ETS_RECLAIM_KICK bytes wait, runs cycles; ot_stop stops it and
 * runs cycles until nothing is left, so no deferred free outlives the
 * runtime. The bound: a writer whose call leaves more than
 * ETS_RECLAIM_BUDGET bytes waiting runs a cycle itself before it returns
 * (ets__throttle), so a reader that stalls (a process blocked in a plain C
 * call keeps its scheduler from reporting) holds up at most the budget plus
 * what each writer retires in one call; the writers wait for it instead.
 * Without the runtime (foreign threads only) there is no thread, and
 * writers run a cycle past ETS_RECLAIM_KICK instead.
 *
 * Invariant: a cycle only runs on a thread that is offline (or not a
 * reader), and a writer only throttles after its call is done with every
 * pointer it read (after ets__leave).
 *
 * TSan cannot see urcu's barriers, so under OT_TSAN every ETS call ends with a
 * release on one token that every reclamation callback acquires before it
 * frees: the grace period has already ordered those reads before the free. */
#include "ets_int.h" /* _LGPL_SOURCE there: urcu's reader state for thread_registered() */

#include <stdlib.h>
#include <time.h>

#ifdef OT_TSAN
#include <sanitizer/tsan_interface.h>
static char ets_tsan_token;
#endif

static pthread_key_t ets_thread_key;
static pthread_once_t ets_thread_once = PTHREAD_ONCE_INIT;
static __thread bool ets_registered_here;
__thread unsigned ets__ops __attribute__((tls_model("initial-exec")));

static void ets_thread_exit(void *unused)
{
    (void)unused;
    if (ets_registered_here) {
        ets_registered_here = false;
        rcu_unregister_thread();
    }
}

static void ets_thread_key_init(void)
{
    if (pthread_key_create(&ets_thread_key, ets_thread_exit) != 0)
        abort(); /* out of pthread keys at start-up: nothing sane to do */
}

static bool thread_registered(void)
{
#ifdef _LGPL_SOURCE
    return URCU_TLS(urcu_qsbr_reader).registered;
#else
    return ets_registered_here || ot_scheduler_id() >= 0; /* the core registers schedulers */
#endif
}

int ets__enter_slow(void)
{
    if (rcu_read_ongoing())
        return ETS_TOKEN_NONE; /* a scheduler thread, or a nested call */
    if (!thread_registered()) {
        /* A foreign thread's first call: registration puts it online. */
        pthread_once(&ets_thread_once, ets_thread_key_init);
        rcu_register_thread();
        ets_registered_here = true;
        pthread_setspecific(ets_thread_key, (void *)1);
        return ETS_TOKEN_OFFLINE;
    }
    rcu_thread_online();
    return ETS_TOKEN_OFFLINE;
}

void ets__leave_slow(int token)
{
#ifdef OT_TSAN
    __tsan_release(&ets_tsan_token);
#endif
    if (token == ETS_TOKEN_OFFLINE)
        rcu_thread_offline();
}

void ets__reclaim_acquire(void)
{
#ifdef OT_TSAN
    __tsan_acquire(&ets_tsan_token);
#endif
}

/* ---- the list and its cycles ------------------------------------------------ */

static ets_rhead *_Atomic retired;     /* a Treiber stack, taken whole */
_Atomic size_t ets__retired_bytes;     /* on the list or in a cycle */
#define retired_bytes ets__retired_bytes
static _Atomic bool kicked;            /* the thread was woken for this batch */
static _Atomic bool reclaimer_running; /* between ets_reclaim_start and stop */
static pthread_t reclaimer;
static pthread_mutex_t rc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rc_cv = PTHREAD_COND_INITIALIZER;
static bool rc_stop; /* rc_mu */

static void ets_rec_free_cb(ets_rhead *h)
{
    ets__reclaim_acquire();
    free(caa_container_of(h, ets_rec, rcu));
}

void ets__retire_rec(ets_rec *r)
{
    ets__retire(&r->rcu, ets_rec_free_cb, ets_rec_size(r->klen, r->vlen));
}

static void kick(void)
{
    pthread_mutex_lock(&rc_mu);
    pthread_cond_signal(&rc_cv);
    pthread_mutex_unlock(&rc_mu);
}

void ets__retire(ets_rhead *h, void (*fn)(ets_rhead *), size_t bytes)
{
    h->fn = fn;
    h->bytes = bytes;
    ets_rhead *head = atomic_load_explicit(&retired, memory_order_relaxed);
    do
        h->next = head;
    /* Release: the cycle that takes h sees it whole (pairs with its exchange). */
    while (!atomic_compare_exchange_weak_explicit(&retired, &head, h, memory_order_release,
                                                  memory_order_relaxed));
    /* Relaxed: a figure for the budget; the list carries the ordering. */
    size_t now = atomic_fetch_add_explicit(&retired_bytes, bytes, memory_order_relaxed) + bytes;
    if (now >= ETS_RECLAIM_KICK &&
        atomic_load_explicit(&reclaimer_running, memory_order_relaxed) &&
        !atomic_exchange_explicit(&kicked, true, memory_order_relaxed))
        kick();
}

/* One cycle: everything retired so far is freed after a grace period. The
 * caller is offline or not a reader. */
static void cycle(void)
{
    /* Acquire pairs with the release of each push. */
    ets_rhead *l = atomic_exchange_explicit(&retired, NULL, memory_order_acquire);
    atomic_store_explicit(&kicked, false, memory_order_relaxed);
    if (!l)
        return;
    synchronize_rcu(); /* every reader that could see l's items is done */
    size_t bytes = 0;
    while (l) {
        ets_rhead *n = l->next;
        bytes += l->bytes;
        l->fn(l);
        l = n;
    }
    atomic_fetch_sub_explicit(&retired_bytes, bytes, memory_order_relaxed); /* as in retire */
}

size_t ets__reclaim_pending(void)
{
    return atomic_load_explicit(&retired_bytes, memory_order_relaxed); /* a figure */
}

void ets__throttle_slow(void)
{
    size_t limit = atomic_load_explicit(&reclaimer_running, memory_order_relaxed)
                       ? ETS_RECLAIM_BUDGET
                       : ETS_RECLAIM_KICK;
    if (atomic_load_explicit(&retired_bytes, memory_order_relaxed) <= limit)
        return;
    bool online = thread_registered() && rcu_read_ongoing();
    if (online)
        rcu_thread_offline(); /* a scheduler thread: this call holds nothing now */
    cycle();
    if (online)
        rcu_thread_online();
}

static void *reclaimer_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&rc_mu);
    while (!rc_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += ETS_RECLAIM_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&rc_cv, &rc_mu, &ts);
        if (rc_stop)
            break;
        pthread_mutex_unlock(&rc_mu);
        cycle();
        pthread_mutex_lock(&rc_mu);
    }
    pthread_mutex_unlock(&rc_mu);
    return NULL;
}

/* ot_start: the reclaimer thread, or -ENOMEM (the runtime does not start). */
static int ets_reclaim_start(void)
{
    rc_stop = false; /* no thread yet */
    if (pthread_create(&reclaimer, NULL, reclaimer_main, NULL) != 0)
        return -ENOMEM;
    atomic_store_explicit(&reclaimer_running, true, memory_order_relaxed);
    return 0;
}

/* ot_stop, after the schedulers are gone: every deferred free runs. */
static void ets_reclaim_stop(void)
{
    if (atomic_load_explicit(&reclaimer_running, memory_order_relaxed)) {
        pthread_mutex_lock(&rc_mu);
        rc_stop = true;
        pthread_cond_signal(&rc_cv);
        pthread_mutex_unlock(&rc_mu);
        pthread_join(reclaimer, NULL);
        atomic_store_explicit(&reclaimer_running, false, memory_order_relaxed);
    }
    bool online = thread_registered() && rcu_read_ongoing();
    if (online)
        rcu_thread_offline();
    while (atomic_load_explicit(&retired, memory_order_relaxed))
        cycle();
    if (online)
        rcu_thread_online();
}

__attribute__((constructor)) static void ets_install_reclaim(void)
{
    ot__set_ets_lifecycle(ets_reclaim_start, ets_reclaim_stop);
}
