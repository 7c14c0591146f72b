/* ETS memory reclamation on liburcu's QSBR flavour. Scheduler threads are
 * RCU readers that the core keeps online and that report a quiescent state
 * once per scheduler loop; any other thread (a foreign thread) is registered
 * here on its first ETS call, unregistered by a pthread key destructor, and
 * online only for the length of each ETS call. Nothing here ever waits for a
 * grace period (synchronize_rcu from an online thread deadlocks): everything
 * unlinked is handed to call_rcu, whose worker thread frees it.
 *
 * TSan cannot see urcu's barriers, so under OT_TSAN every ETS call ends with a
 * release on one token that every reclamation callback acquires before it
 * frees: the grace period has already ordered those reads before the free. */
#include "ets_int.h" /* _LGPL_SOURCE there: urcu's reader state for thread_registered() */

#include <stdlib.h>

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

static void ets_rec_free_cb(struct rcu_head *h)
{
    ets__reclaim_acquire();
    free(caa_container_of(h, ets_rec, rcu));
}

void ets__retire_rec(ets_rec *r) { call_rcu(&r->rcu, ets_rec_free_cb); }

void ets__retire(struct rcu_head *h, void (*fn)(struct rcu_head *)) { call_rcu(h, fn); }
