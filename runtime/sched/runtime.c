/* Runtime lifecycle (ARCHITECTURE 11): ot_start probes the kernel, sets up the
 * process table, the heap arena pool, the fault handlers and the schedulers;
 * ot_stop kills every process that is left, waits for their exits (each
 * completes on its scheduler, so links, monitors, ETS hooks and heaps all
 * run), then stops the threads and frees every pool, leaving nothing
 * allocated. ot_run wraps the three around one main process.
 *
 * A stop is bounded (cfg.stop_timeout_ms): a process that never reaches a
 * runtime call cannot be killed, so past the bound ot_stop logs each process
 * that is left, leaves the scheduler threads that did not finish running
 * (detached, with every pool they may touch still allocated: nothing is
 * freed under them), returns -ETIMEDOUT, and later ot_start calls return
 * -EBUSY, since those threads still use the runtime's memory. */
#include "runtime/sched/ahead.h"
#include "runtime/sched/ring.h"
#include "runtime/sched/sched.h"
#include "runtime/proc/proc.h"
#include "runtime/sched/sanit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>


static pthread_mutex_t life_mu = PTHREAD_MUTEX_INITIALIZER;

/* ot_dump from a foreign thread holds the lifecycle lock: ot_stop cannot free
 * the tables it reads. */
void ot__life_lock(void) {
    pthread_mutex_lock(&life_mu);
}
void ot__life_unlock(void) {
    pthread_mutex_unlock(&life_mu);
}
static pthread_mutex_t main_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t main_cv = PTHREAD_COND_INITIALIZER;
static _Atomic uint64_t main_pid;
static bool main_done;
static ot_reason main_reason;
static bool abandoned; /* an ot_stop left scheduler threads running (under life_mu) */

static _Atomic(ot__stop_hook_fn) stop_hook;

void ot__set_stop_hook(ot__stop_hook_fn fn) {
    atomic_store_explicit(&stop_hook, fn, memory_order_release);
}

extern void ot__foreign_fini_all(void);
extern size_t ot__foreign_count(void);

static bool probe_guard_regions(size_t page) {
    void *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    bool ok = madvise(m, page, MADV_GUARD_INSTALL) == 0;
    munmap(m, 2 * page);
    return ok;
}

unsigned ot_schedulers(void) {
    return atomic_load_explicit(&ot__rt.running, memory_order_acquire) ? ot__rt.nsched : 0;
}

int ot_scheduler_id(void) {
    struct ot_sched *s = ot__sched_get();
    return s ? s->id : -1;
}

static int (*ets_start)(void);
static void (*ets_stop)(void);

void ot__set_ets_lifecycle(int (*start)(void), void (*stop)(void)) {
    ets_start = start;
    ets_stop = stop;
}

static void teardown(void) {
    ot__ahead_stop(); /* first: it may be populating the tables freed below */
    if (ot__rt.sched) {
        for (unsigned i = 0; i < ot__rt.nsched; i++) {
            struct ot_sched *s = ot__rt.sched[i];
            if (!s)
                continue;
            for (int h = 0; h < 2; h++) {
                if (s->hstack[h])
                    ot__stack_put(s, s->hstack[h]);
                s->hstack[h] = NULL;
            }
            ot__stack_forget_all(s);
        }
        for (unsigned i = 0; i < ot__rt.nsched; i++) {
            struct ot_sched *s = ot__rt.sched[i];
            if (!s)
                continue;
            ot__wheel_fini(&s->wheel);
            ot__env_cache_fini(s);
            free(s->inbox_stub);
            ot__stack_release_reserve(s);
            ot__ring_fini(s);
            free(s);
        }
        free(ot__rt.sched);
        ot__rt.sched = NULL;
    }
    ot__foreign_fini_all();
    ot__names_fini();
    ot__ptab_fini();
    ot__heap_pool_fini();
    ot__fault_uninstall();
    if (ot__rt.self_pidfd >= 0)
        close(ot__rt.self_pidfd);
    ot__rt.self_pidfd = -1;
}

int ot_start(const ot_config *cfg) {
    pthread_mutex_lock(&life_mu);
    if (atomic_load_explicit(&ot__rt.running, memory_order_acquire)) {
        pthread_mutex_unlock(&life_mu);
        return -EALREADY;
    }
    if (abandoned) {
        pthread_mutex_unlock(&life_mu);
        return -EBUSY;
    }
    ot_config c = cfg ? *cfg : (ot_config){0};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (!c.schedulers)
        c.schedulers = ncpu > 0 ? (unsigned)ncpu : 1;
    if (!c.max_processes)
        c.max_processes = (size_t)1 << 20;
    if (!c.stack_size)
        c.stack_size = 256 * 1024;
    if (!c.spin_us)
        c.spin_us = 50;
    if (!c.long_schedule_ms)
        c.long_schedule_ms = 100;
    if (!c.stop_timeout_ms)
        c.stop_timeout_ms = 5000;
    if (c.schedulers > 128 || c.max_processes > ((size_t)1 << 31) || c.stack_size < 16384 ||
        c.stack_size > ((size_t)1 << 30) || (c.ring_entries && c.ring_entries > 32768)) {
        pthread_mutex_unlock(&life_mu);
        return -EINVAL;
    }
    memset(&ot__rt, 0, sizeof ot__rt);
    ot__rt.cfg = c;
    ot__rt.nsched = c.schedulers;
    ot__rt.page = (size_t)sysconf(_SC_PAGESIZE);
    ot__rt.stack_size = (c.stack_size + ot__rt.page - 1) & ~(ot__rt.page - 1);
    static uint64_t epochs;
    ot__rt.epoch = ++epochs;
    ot__rt.valgrind = VG_RUNNING();
    ot__ring_probe(&ot__rt.feat);
    ot__rt.feat.guard_regions = probe_guard_regions(ot__rt.page);
    /* process_madvise on ourselves takes any advice since Linux 6.13: stack
     * carving batches its guards, the populate-ahead thread its stack tops */
    ot__rt.self_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    int rc = ot__ptab_init(c.max_processes);
    if (!rc)
        rc = ot__ahead_start();
    if (!rc)
        rc = ot__heap_pool_init(c.heap_arenas);
    bool ets_started = false;
    if (!rc && ets_start) {
        rc = ets_start();
        ets_started = !rc;
    }
    if (!rc)
        rc = ot__fault_install();
    if (!rc) {
        atomic_store_explicit(&ot__rt.running, 1, memory_order_release);
        rc = ot__sched_start_all();
        if (rc) {
            atomic_store_explicit(&ot__rt.running, 0, memory_order_release);
            ot__sched_stop_all(0);
        }
    }
    if (rc && ets_started)
        ets_stop();
    if (rc)
        teardown();
    else
        ot__gate_open(); /* plain threads may call in from now on */
    pthread_mutex_unlock(&life_mu);
    return rc;
}

static size_t live_processes(void) {
    return ot__ptab_live_count() - ot__foreign_count();
}

static void report_left(unsigned ms) {
    size_t hwm = ot__ptab_hwm();
    for (size_t i = 0; i < hwm; i++) {
        struct ot_proc *p = ot__ptab_at(i);
        uint64_t v = atomic_load_explicit(&p->pid, memory_order_acquire);
        uint32_t af = atomic_load_explicit(&p->aflags, memory_order_acquire);
        if (!v || (af & (PF_FOREIGN | PF_DEAD)))
            continue;
        uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);
        struct ot_sched *s = atomic_load_explicit(&p->sched, memory_order_relaxed);
        /* the name is the process's own: it may be changing; only the pid,
         * state and scheduler are read here */
        ot_log(OT_LOG_ERROR,
               "ot_stop: process <0.%u.%u> did not exit within %u ms of being killed (%s on "
               "scheduler %d): it makes no runtime call, so it cannot be stopped; its "
               "scheduler thread is left running",
               (unsigned)(v & 0xffffffffu), (unsigned)(v >> 32), ms,
               st == PS_RUNNING ? "running" : st == PS_RUNNABLE ? "runnable" : "waiting",
               s ? s->id : -1);
    }
}

int ot_stop(void) {
    if (ot__sched_get())
        return -EDEADLK; /* a scheduler thread cannot join itself */
    pthread_mutex_lock(&life_mu);
    if (!atomic_load_explicit(&ot__rt.running, memory_order_acquire)) {
        pthread_mutex_unlock(&life_mu);
        return -ENOTCONN;
    }
    ot__stop_hook_fn hook = atomic_load_explicit(&stop_hook, memory_order_acquire);
    if (hook)
        hook(); /* the application tree first, in order, while all still runs */
    atomic_store_explicit(&ot__rt.stopping, 1, memory_order_release);
    /* plain threads first: their waits end with ENOTCONN, their calls drain */
    ot__gate_close();
    unsigned bound = ot__rt.cfg.stop_timeout_ms;
    uint64_t deadline = ot__clock_ns() + (uint64_t)bound * 1000000u;
    size_t last = live_processes();
    /* kill what is left; repeat for processes spawned meanwhile by exits. The
     * bound is on a lack of progress: millions of processes may take longer
     * than it to exit, but each round must see fewer of them left. */
    while (live_processes() > 0 && ot__clock_ns() < deadline) {
        size_t now_live = live_processes();
        if (now_live < last) {
            last = now_live;
            deadline = ot__clock_ns() + (uint64_t)bound * 1000000u;
        }
        size_t hwm = ot__ptab_hwm();
        for (size_t i = 0; i < hwm; i++) {
            struct ot_proc *p = ot__ptab_at(i);
            uint64_t v = atomic_load_explicit(&p->pid, memory_order_acquire);
            if (v && !(atomic_load_explicit(&p->aflags, memory_order_acquire) &
                       (PF_DEAD | PF_FOREIGN)))
                ot__exit_kill((ot_pid){v});
        }
        for (int w = 0; w < 200 && live_processes() > 0 && ot__clock_ns() < deadline; w++)
            usleep(500);
    }
    bool stuck = live_processes() > 0;
    if (stuck)
        report_left(bound);
    /* a thread still running a process is left behind after a short grace */
    unsigned left = ot__sched_stop_all(stuck ? ot__clock_ns() + 100000000u : 0);
    if (!left && ets_stop)
        ets_stop(); /* no scheduler left online: every deferred free runs */
    atomic_store_explicit(&ot__rt.running, 0, memory_order_release);
    if (left) {
        ot_log(OT_LOG_ERROR,
               "ot_stop: %u scheduler thread(s) left running; the runtime's memory stays "
               "allocated and ot_start will return -EBUSY",
               left);
        abandoned = true;
    } else {
        teardown();
    }
    atomic_store_explicit(&ot__rt.stopping, 0, memory_order_release);
    pthread_mutex_unlock(&life_mu);
    return stuck || left ? -ETIMEDOUT : 0;
}

static _Atomic int run_active;

void ot__run_main_exited(ot_pid pid, ot_reason r) {
    if (!atomic_load_explicit(&run_active, memory_order_acquire))
        return;
    /* under the mutex: ot_run stores main_pid while holding it */
    ot__lock(&main_mu);
    if (atomic_load_explicit(&main_pid, memory_order_relaxed) == pid.v) {
        main_done = true;
        main_reason = r;
        pthread_cond_broadcast(&main_cv);
    }
    ot__unlock(&main_mu);
}

int ot_run(void (*fn)(void *), void *arg, const ot_config *cfg) {
    if (!fn)
        return -EINVAL;
    int rc = ot_start(cfg);
    if (rc)
        return rc;
    /* the main pid is published under main_mu, which the exit path takes
     * before it compares, so an instant exit is not missed */
    pthread_mutex_lock(&main_mu);
    main_done = false;
    atomic_store_explicit(&run_active, 1, memory_order_release);
    ot_pid pid = ot_spawn(fn, arg);
    atomic_store_explicit(&main_pid, pid.v, memory_order_release);
    pthread_mutex_unlock(&main_mu);
    if (!pid.v) {
        ot_stop();
        return -errno;
    }
    pthread_mutex_lock(&main_mu);
    while (!main_done)
        pthread_cond_wait(&main_cv, &main_mu);
    ot_reason r = main_reason;
    atomic_store_explicit(&main_pid, 0, memory_order_release);
    atomic_store_explicit(&run_active, 0, memory_order_release);
    pthread_mutex_unlock(&main_mu);
    ot_stop();
    return r.kind == OT_NORMAL ? 0 : -ECHILD;
}
