/* Tests of process life (otter/process.h): spawn options (stack size,
 * scheduler and bind, bad options), ot_self and ot_is_alive, ot_yield
 * interleaving two processes on one scheduler, ot_exit_self from a deep call
 * ending the process without running the rest, handler processes ending by
 * their return value, local names (register, whereis, unregister, -EEXIST,
 * release at exit), a full process table (-EAGAIN, then room again after
 * exits), and the errors of process-only calls made from a foreign thread,
 * after which the runtime keeps working. */
#include <otter/testing.h>

#include <pthread.h>
#include <string.h>
#include <time.h>

enum { TAG_GO = OT_TAG_USER + 1, TAG_DONE, TAG_INFO, TAG_STEP };

static uint32_t u32_of(const ot_msg *m) {
    uint32_t v;
    memcpy(&v, ot_msg_data(m), sizeof v);
    return v;
}

static bool is_down_for(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_DOWN && m->ref.v == *(uint64_t *)arg;
}

/* The DOWN of monitor r, leaving other DOWNs where they are. */
static ot_down_msg wait_down(ot_ref r) {
    ot_down_msg d = {0};
    ot_msg *m = ot_receive_match(is_down_for, &r.v, 10000);
    ot_assert(m != NULL, "(no DOWN within 10 s)");
    ot_assert_eq(m->size, sizeof d);
    memcpy(&d, ot_msg_data(m), sizeof d);
    ot_msg_free(m);
    ot_assert_eq(d.ref.v, r.v);
    return d;
}

static ot_pid spawn_monitored(void (*fn)(void *), void *arg, ot_ref *r) {
    ot_spawn_opts o = {.monitor = true, .monitor_ref = r};
    ot_pid p = ot_spawn_opt(fn, arg, &o);
    ot_assert(p.v != 0);
    return p;
}

static void wait_go(void *arg) {
    (void)arg;
    ot_msg *m = ot_receive_tag(TAG_GO, OT_INFINITY);
    ot_msg_free(m);
}

/* ---- identity --------------------------------------------------------------------- */

static void report_self(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    ot_pid me = ot_self();
    ot_send(parent, TAG_INFO, &me, sizeof me);
    wait_go(NULL);
}

OT_TEST(process, self_and_is_alive, .timeout = 30) {
    ot_pid self = ot_self();
    ot_assert(self.v != 0);
    ot_assert(ot_is_alive(self));
    ot_assert(!ot_is_alive(OT_NOPID));
    ot_assert(!ot_is_alive((ot_pid){.v = 0xdead00000000beefull}));

    ot_ref r;
    ot_pid child = spawn_monitored(report_self, &self, &r);
    ot_msg *m = ot_receive_tag(TAG_INFO, 5000);
    ot_assert(m != NULL);
    ot_pid seen;
    memcpy(&seen, ot_msg_data(m), sizeof seen);
    ot_assert_eq(seen.v, child.v); /* ot_self in the child is the spawn's result */
    ot_assert_eq(m->from.v, child.v);
    ot_msg_free(m);
    ot_assert(ot_is_alive(child));
    ot_send(child, TAG_GO, NULL, 0);
    ot_down_msg d = wait_down(r);
    ot_assert_eq(d.pid.v, child.v);
    ot_assert_eq(d.reason.kind, OT_NORMAL);
    ot_assert(!ot_is_alive(child));
}

/* ---- ot_exit_self from depth ---------------------------------------------------------- */

static _Atomic int after_exit_ran;

static int descend(int depth, int kind) {
    volatile char pad[128];
    pad[0] = (char)depth;
    if (depth == 0) {
        if (kind == 0)
            ot_exit_self(OT_REASON(OT_NORMAL));
        ot_exit_self(ot_reason_error("deep %d", 200));
    }
    if (depth < 0) /* never: keeps the compiler's recursion check quiet */
        return 0;
    int r = descend(depth - 1, kind) + pad[0];
    atomic_store_explicit(&after_exit_ran, 1, memory_order_relaxed);
    return r;
}

static void deep_exit(void *arg) {
    int kind = (int)(intptr_t)arg;
    descend(200, kind);
    atomic_store_explicit(&after_exit_ran, 1, memory_order_relaxed);
}

OT_TEST(process, exit_self_from_depth, .timeout = 30) {
    for (int kind = 0; kind < 2; kind++) {
        ot_ref r;
        ot_pid p = spawn_monitored(deep_exit, (void *)(intptr_t)kind, &r);
        ot_down_msg d = wait_down(r);
        ot_assert_eq(d.pid.v, p.v);
        if (kind == 0) {
            ot_assert_eq(d.reason.kind, OT_NORMAL);
        } else {
            ot_assert_eq(d.reason.kind, OT_ERROR);
            ot_assert(strcmp(d.reason.text, "deep 200") == 0, "(text '%s')", d.reason.text);
        }
        ot_assert_eq(atomic_load_explicit(&after_exit_ran, memory_order_relaxed), 0);
    }
}

/* ---- spawn options --------------------------------------------------------------------- */

struct stack_probe {
    ot_pid parent;
    size_t touch; /* bytes of stack to use */
};

__attribute__((noinline)) static size_t use_stack(size_t left) {
    volatile char buf[4096];
    buf[0] = (char)left;
    buf[4095] = buf[0];
    if (left <= sizeof buf)
        return buf[4095] & 1;
    return use_stack(left - sizeof buf) + (buf[0] & 1);
}

static void stack_user(void *arg) {
    struct stack_probe *sp = arg;
    struct ot_process_info info;
    int rc = ot_process_info(ot_self(), &info);
    size_t bytes = rc == 0 ? info.stack_bytes : 0;
    use_stack(sp->touch);
    ot_send(sp->parent, TAG_INFO, &bytes, sizeof bytes);
}

OT_TEST(process, spawn_stack_size, .timeout = 30) {
    ot_pid self = ot_self();
    size_t sizes[] = {16384, 65536, 1u << 20, 8u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct stack_probe sp = {self, sizes[i] / 2};
        ot_spawn_opts o = {.stack_size = sizes[i]};
        ot_ref r;
        o.monitor = true;
        o.monitor_ref = &r;
        ot_pid p = ot_spawn_opt(stack_user, &sp, &o);
        ot_assert(p.v != 0);
        ot_msg *m = ot_receive_tag(TAG_INFO, 10000);
        ot_assert(m != NULL, "(stack %zu: no report)", sizes[i]);
        size_t got;
        memcpy(&got, ot_msg_data(m), sizeof got);
        ot_msg_free(m);
        ot_assert_eq(got, sizes[i]);
        ot_down_msg d = wait_down(r);
        ot_assert_eq(d.reason.kind,
                     OT_NORMAL); /* it used half: more than a default stack for the big ones */
    }
    /* bad sizes and options */
    ot_spawn_opts bad = {.stack_size = 1000};
    errno = 0;
    ot_assert(ot_spawn_opt(stack_user, NULL, &bad).v == 0);
    ot_assert_eq(errno, EINVAL);
    bad.stack_size = (size_t)2 << 30;
    errno = 0;
    ot_assert(ot_spawn_opt(stack_user, NULL, &bad).v == 0);
    ot_assert_eq(errno, EINVAL);
    errno = 0;
    ot_assert(ot_spawn(NULL, NULL).v == 0);
    ot_assert_eq(errno, EINVAL);
    errno = 0;
    ot_assert(ot_spawn_handler(NULL, NULL, NULL).v == 0);
    ot_assert_eq(errno, EINVAL);
    ot_spawn_opts mon = {.monitor = true};
    errno = 0;
    ot_assert(ot_spawn_opt(wait_go, NULL, &mon).v == 0);
    ot_assert_eq(errno, EINVAL);
}

struct sched_probe {
    ot_pid parent;
    int want;
};

static int sink_handler(void *state, const ot_msg *m) {
    (void)state;
    (void)m;
    return 0;
}

static void bound_worker(void *arg) {
    struct sched_probe *sp = arg;
    uint32_t wrong = 0;
    ot_pid self = ot_self();
    for (int i = 0; i < 200; i++) {
        wrong += ot_scheduler_id() != sp->want;
        switch (i % 4) {
        case 0:
            ot_yield();
            break;
        case 1:
            ot_sleep(1);
            break;
        case 2: { /* woken by a send from another scheduler's process */
            ot_send(sp->parent, TAG_STEP, &self, sizeof self);
            ot_msg *m = ot_receive_tag(TAG_GO, 10000);
            if (!m)
                wrong += 1000;
            ot_msg_free(m);
            break;
        }
        default:
            ot_receive(0);
            break;
        }
    }
    wrong += ot_scheduler_id() != sp->want;
    ot_send(sp->parent, TAG_DONE, &wrong, sizeof wrong);
}

/* A bound process runs only on its scheduler, whatever wakes it; this test
 * process answers from wherever it runs. */
OT_TEST(process, scheduler_and_bind, .timeout = 60) {
    ot_pid self = ot_self();
    unsigned ns = ot_schedulers();
    ot_assert(ns >= 1);
    struct sched_probe sp[16];
    unsigned n = ns < 16 ? ns : 16;
    for (unsigned i = 0; i < n; i++) {
        sp[i] = (struct sched_probe){self, (int)i};
        ot_spawn_opts o = {.scheduler = (int)i, .scheduler_set = true, .bind = true};
        ot_assert(ot_spawn_opt(bound_worker, &sp[i], &o).v != 0);
    }
    unsigned done = 0;
    while (done < n) {
        ot_msg *m = ot_receive(10000);
        ot_assert(m != NULL);
        if (m->tag == TAG_STEP) {
            ot_send(m->from, TAG_GO, NULL, 0);
        } else {
            ot_assert_eq(m->tag, TAG_DONE);
            ot_assert_eq(u32_of(m), 0);
            done++;
        }
        ot_msg_free(m);
    }
    /* a handler process with a scheduler is fine too; with a stack size it is not */
    ot_spawn_opts ho = {.scheduler = (int)(ns - 1), .scheduler_set = true, .bind = true};
    ot_pid h = ot_spawn_handler(sink_handler, NULL, &ho);
    ot_assert(h.v != 0);
    struct ot_process_info info;
    ot_assert_eq(ot_process_info(h, &info), 0);
    ot_assert(info.handler);
    ot_assert_eq(info.stack_bytes, 0);
    ot_assert_eq(ot_exit(h, OT_REASON(OT_KILL)), 0);
    ot_spawn_opts hs = {.stack_size = 65536};
    errno = 0;
    ot_assert(ot_spawn_handler(sink_handler, NULL, &hs).v == 0);
    ot_assert_eq(errno, EINVAL);
}

/* ---- work sharing --------------------------------------------------------------------------- */

static ot_pid share_parent;

static void busy_worker(void *arg) {
    (void)arg;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do /* 20 us of work without a runtime call */
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 20000);
    uint32_t id = (uint32_t)ot_scheduler_id();
    ot_send(share_parent, TAG_DONE, &id, sizeof id);
}

/* A burst of runnable processes on one scheduler, more than its ring holds,
 * while the other scheduler sleeps (its spin long over): the sleeper is
 * woken and steals, also from what had spilled to the overflow list, so a
 * good share of the burst runs there. Before, the sleeper slept through it
 * and every worker ran on the spawner's scheduler. */
OT_TEST(process, burst_wakes_a_sleeping_scheduler, .timeout = 60) {
    if (ot_schedulers() < 2)
        return;
    enum { N = 2000 };
    share_parent = ot_self();
    int me = ot_scheduler_id();
    ot_sleep(20); /* the others are asleep now */
    for (int i = 0; i < N; i++)
        ot_assert(ot_spawn(busy_worker, NULL).v != 0);
    unsigned here = 0, there = 0;
    for (int i = 0; i < N; i++) {
        ot_msg *m = ot_receive_tag(TAG_DONE, 10000);
        ot_assert(m != NULL);
        if ((int)u32_of(m) == me)
            here++;
        else
            there++;
        ot_msg_free(m);
    }
    ot_assert(there >= N / 5, "(%u of %d workers ran on another scheduler)", there, N);
    ot_assert_eq(here + there, N);
}

/* ---- ot_yield ----------------------------------------------------------------------------- */

static char ylog[512];
static _Atomic int ylen;

static _Atomic int ystarted;

static void yielder(void *arg) {
    char c = (char)(intptr_t)arg;
    wait_go(NULL);
    /* a rendezvous first: the other one's wake-up may still be on its way */
    atomic_fetch_add_explicit(&ystarted, 1, memory_order_relaxed);
    while (atomic_load_explicit(&ystarted, memory_order_relaxed) < 2)
        ot_yield();
    for (int i = 0; i < 100; i++) {
        int at = atomic_fetch_add_explicit(&ylen, 1, memory_order_relaxed);
        ylog[at] = c;
        ot_yield();
    }
}

/* Two processes bound to one scheduler, each yielding after every step,
 * alternate strictly: ot_yield puts the caller behind the other. */
OT_TEST(process, yield_alternates, .timeout = 30) {
    unsigned ns = ot_schedulers();
    int on = (int)(ns - 1);
    ot_ref ra, rb;
    ot_spawn_opts oa = {
        .scheduler = on, .scheduler_set = true, .bind = true, .monitor = true, .monitor_ref = &ra};
    ot_spawn_opts ob = oa;
    ob.monitor_ref = &rb;
    ot_pid a = ot_spawn_opt(yielder, (void *)(intptr_t)'a', &oa);
    ot_pid b = ot_spawn_opt(yielder, (void *)(intptr_t)'b', &ob);
    ot_assert(a.v && b.v);
    /* both are parked in receive when the starting messages go out */
    struct ot_process_info ia, ib;
    for (int i = 0; i < 1000; i++) {
        ot_assert_eq(ot_process_info(a, &ia), 0);
        ot_assert_eq(ot_process_info(b, &ib), 0);
        if (ia.status == OT_STATUS_WAITING && ib.status == OT_STATUS_WAITING)
            break;
        ot_sleep(1);
    }
    ot_send(a, TAG_GO, NULL, 0);
    ot_send(b, TAG_GO, NULL, 0);
    wait_down(ra);
    wait_down(rb);
    ot_assert_eq(atomic_load(&ylen), 200);
    int switches = 0;
    for (int i = 1; i < 200; i++)
        switches += ylog[i] != ylog[i - 1];
    ot_assert(switches == 199, "(%d switches, log %.200s)", switches, ylog);
    ot_yield(); /* from the test process itself: returns */
}

/* ---- handler processes ----------------------------------------------------------------- */

struct counter {
    uint32_t n;
    uint32_t stop_at;
    int rc_at_stop;
};

static int counting_handler(void *state, const ot_msg *m) {
    struct counter *c = state;
    if (m->tag != TAG_STEP)
        return 0;
    if (++c->n == c->stop_at)
        return c->rc_at_stop;
    return 0;
}

OT_TEST(process, handler_lifecycle, .timeout = 30) {
    struct counter cs[2] = {{0, 1000, 1}, {0, 10, -5}};
    for (int k = 0; k < 2; k++) {
        ot_ref r;
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &r};
        ot_pid h = ot_spawn_handler(counting_handler, &cs[k], &o);
        ot_assert(h.v != 0);
        for (uint32_t i = 0; i < cs[k].stop_at; i++)
            ot_assert_eq(ot_send(h, TAG_STEP, NULL, 0), 0);
        ot_down_msg d = wait_down(r);
        ot_assert_eq(cs[k].n, cs[k].stop_at);
        if (k == 0) {
            ot_assert_eq(d.reason.kind, OT_NORMAL);
        } else {
            ot_assert_eq(d.reason.kind, OT_ERROR);
            ot_assert(strstr(d.reason.text, "-5") != NULL, "(text '%s')", d.reason.text);
        }
        ot_assert(!ot_is_alive(h));
        /* messages to it now go nowhere, without error */
        ot_assert_eq(ot_send(h, TAG_STEP, NULL, 0), 0);
        ot_assert_eq(cs[k].n, cs[k].stop_at);
    }
}

/* ---- names --------------------------------------------------------------------------------- */

static void register_then_wait(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    int rc = ot_register("beta", ot_self());
    ot_send(parent, TAG_INFO, &rc, sizeof rc);
    wait_go(NULL);
}

OT_TEST(process, names, .timeout = 30) {
    ot_pid self = ot_self();
    ot_assert(ot_whereis("alpha").v == 0);
    ot_assert_eq(ot_register("alpha", self), 0);
    ot_assert_eq(ot_whereis("alpha").v, self.v);
    ot_assert_eq(ot_register("alpha2", self), -EEXIST); /* one name per process */

    ot_ref r;
    ot_pid child = spawn_monitored(register_then_wait, &self, &r);
    ot_msg *m = ot_receive_tag(TAG_INFO, 5000);
    ot_assert(m != NULL);
    ot_assert_eq(u32_of(m), 0);
    ot_msg_free(m);
    ot_assert_eq(ot_whereis("beta").v, child.v);
    ot_assert_eq(ot_register("alpha", child), -EEXIST); /* a taken name */
    ot_assert_eq(ot_register("gamma", child), -EEXIST); /* it has one already */

    struct ot_process_info info;
    ot_assert_eq(ot_process_info(child, &info), 0);
    ot_assert(strcmp(info.name, "beta") == 0);

    /* bad names */
    char longname[OT_NAME_MAX + 1];
    memset(longname, 'n', OT_NAME_MAX);
    longname[OT_NAME_MAX] = 0;
    ot_assert_eq(ot_unregister("alpha"), 0);
    ot_assert_eq(ot_register(longname, self), -EINVAL);
    longname[OT_NAME_MAX - 1] = 0; /* 63 characters: the longest allowed */
    ot_assert_eq(ot_register(longname, self), 0);
    ot_assert_eq(ot_whereis(longname).v, self.v);
    ot_assert_eq(ot_unregister(longname), 0);
    ot_assert_eq(ot_register("", self), -EINVAL);
    ot_assert_eq(ot_register(NULL, self), -EINVAL);
    ot_assert(ot_whereis(NULL).v == 0);
    ot_assert_eq(ot_unregister(NULL), -EINVAL);

    ot_assert_eq(ot_unregister("alpha"), -ENOENT);
    ot_assert(ot_whereis("alpha").v == 0);
    ot_assert_eq(ot_register("alpha", self), 0); /* free again, and self has no name */

    /* a name dies with its process */
    ot_send(child, TAG_GO, NULL, 0);
    wait_down(r);
    ot_assert(ot_whereis("beta").v == 0);
    ot_assert_eq(ot_register("beta", child), -ESRCH); /* dead */
    ot_assert_eq(ot_unregister("alpha"), 0);
    ot_assert_eq(ot_register("beta", self), 0);
    ot_assert_eq(ot_whereis("beta").v, self.v);
    ot_assert_eq(ot_register("delta", (ot_pid){.v = 0xdead00000000beefull}), -ESRCH);
}

/* ---- a full process table ------------------------------------------------------------------- */

static void small_table(void) {
    ot_test_config.max_processes = 100;
}

OT_TEST(process, table_full, .init = small_table, .timeout = 60) {
    ot_pid kids[100];
    int n = 0;
    for (;;) {
        errno = 0;
        ot_pid p = ot_spawn(wait_go, NULL);
        if (!p.v) {
            ot_assert_eq(errno, EAGAIN);
            break;
        }
        ot_assert(n < 100, "(more than the table holds)");
        kids[n++] = p;
    }
    ot_assert_eq(n, 99); /* the test process holds the hundredth slot */
    errno = 0;
    ot_assert(ot_spawn_handler(sink_handler, NULL, NULL).v == 0);
    ot_assert_eq(errno, EAGAIN);
    /* the runtime still works when full */
    ot_assert_eq(ot_send(ot_self(), TAG_STEP, NULL, 0), 0);
    ot_msg *m = ot_receive(1000);
    ot_assert(m != NULL);
    ot_msg_free(m);

    for (int i = 0; i < 10; i++)
        ot_send(kids[i], TAG_GO, NULL, 0);
    for (int i = 0; i < 10; i++)
        while (ot_is_alive(kids[i]))
            ot_sleep(1);
    /* the slots come back (the exit path frees a slot just after the pid dies) */
    int again = 0;
    for (int tries = 0; again < 10 && tries < 1000; tries++) {
        ot_pid p = ot_spawn(wait_go, NULL);
        if (p.v) {
            kids[again++] = p;
        } else {
            ot_assert_eq(errno, EAGAIN);
            ot_sleep(1);
        }
    }
    ot_assert_eq(again, 10);
    errno = 0;
    ot_assert(ot_spawn(wait_go, NULL).v == 0);
    ot_assert_eq(errno, EAGAIN);
    for (int i = 0; i < 99; i++)
        ot_send(kids[i], TAG_GO, NULL, 0);
}

/* ---- process-only calls from a foreign thread -------------------------------------------------
 */

struct foreign_result {
    ot_pid target;
    int link, unlink, demonitor;
    int monitor_errno;
    uint64_t monitor_ref;
    bool trap_old, trap_old2;
    int send_after_errno;
    uint64_t send_after_ref;
    int spawn_link_errno;
    uint64_t self;
    int spawned_reply; /* a process it spawned answered it */
    int done;
};

static void answer_parent(void *arg) {
    ot_pid to = *(ot_pid *)arg;
    uint32_t v = 99;
    ot_send(to, TAG_INFO, &v, sizeof v);
}

static void *foreign_calls(void *v) {
    struct foreign_result *f = v;
    f->link = ot_link(f->target);
    f->unlink = ot_unlink(f->target);
    errno = 0;
    f->monitor_ref = ot_monitor(f->target).v;
    f->monitor_errno = errno;
    f->demonitor = ot_demonitor((ot_ref){1}, 0);
    f->trap_old = ot_trap_exit(true);
    f->trap_old2 = ot_trap_exit(false);
    errno = 0;
    f->send_after_ref = ot_send_after(f->target, 10, TAG_GO, NULL, 0).v;
    f->send_after_errno = errno;
    ot_spawn_opts lo = {.link = true};
    errno = 0;
    ot_pid sl = ot_spawn_opt(wait_go, NULL, &lo);
    f->spawn_link_errno = sl.v ? 0 : errno;
    f->self = ot_self().v;
    /* the runtime still works: spawn a process that answers this thread */
    ot_pid me_mail = OT_NOPID;
    ot_ref r = ot_make_ref();
    (void)r;
    ot_send(f->target, TAG_STEP, NULL, 0);      /* gives this thread a mailbox */
    ot_msg *m = ot_receive_tag(TAG_INFO, 5000); /* the target answers with our pid */
    if (m) {
        memcpy(&me_mail, ot_msg_data(m), sizeof me_mail);
        ot_msg_free(m);
        ot_pid child = ot_spawn(answer_parent, &me_mail);
        if (child.v) {
            m = ot_receive_tag(TAG_INFO, 5000);
            if (m && m->from.v == child.v && m->size == 4 && u32_of(m) == 99)
                f->spawned_reply = 1;
            ot_msg_free(m);
        }
    }
    __atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

OT_TEST(process, process_calls_from_foreign_thread, .timeout = 30) {
    struct foreign_result f = {.target = ot_self()};
    pthread_t th;
    ot_assert_eq(pthread_create(&th, NULL, foreign_calls, &f), 0);
    ot_msg *m = ot_receive_tag(TAG_STEP, 5000);
    ot_assert(m != NULL);
    ot_pid thread_pid = m->from;
    ot_assert(thread_pid.v != 0);
    ot_msg_free(m);
    ot_send(thread_pid, TAG_INFO, &thread_pid, sizeof thread_pid);
    while (!__atomic_load_n(&f.done, __ATOMIC_ACQUIRE))
        ot_sleep(2);
    pthread_join(th, NULL);
    ot_assert_eq(f.link, -EPERM);
    ot_assert_eq(f.unlink, -EPERM);
    ot_assert_eq(f.monitor_ref, 0);
    ot_assert_eq(f.monitor_errno, EPERM);
    ot_assert_eq(f.demonitor, -EPERM);
    ot_assert(!f.trap_old && !f.trap_old2);
    ot_assert_eq(f.send_after_ref, 0);
    ot_assert_eq(f.send_after_errno, EPERM);
    ot_assert_eq(f.spawn_link_errno, EPERM);
    ot_assert_eq(f.self, 0);
    ot_assert_eq(f.spawned_reply, 1);
    /* nothing reached this process from those calls: no link exit, no timer */
    ot_assert(ot_receive(30) == NULL);
    struct ot_process_info info;
    ot_assert_eq(ot_process_info(ot_self(), &info), 0);
    ot_assert_eq(info.n_links, 0);
    ot_assert_eq(info.n_monitored_by, 0);
}
