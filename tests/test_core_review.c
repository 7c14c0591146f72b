/* An adversarial review of the runtime core's promises (issue 10): every call
 * that takes a pid given a stale pid (its slot reused by a new process) and
 * pids that were never issued; NULL and oversize arguments; a full process
 * table; many processes linking to and monitoring one that exits at the same
 * moment (exactly one EXIT or DOWN each, with the exact reason); register
 * races; a fault while other processes hold mail for the faulting one; and
 * plain threads calling ETS while the runtime stops. Each case asserts what
 * docs/API.md promises, or what OTP 25 does where the docs defer to it. */
#include <otter/testing.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { TAG_GO = OT_TAG_USER + 1, TAG_X, TAG_READY, TAG_RESULT };

#define WAIT_MS 10000

#if defined(OT_TSAN)
/* A data race is a failure of this suite, not a line in its log */
const char *__tsan_default_options(void);
__attribute__((visibility("default"))) const char *__tsan_default_options(void) {
    return "halt_on_error=1";
}
#endif

static void wait_go(void *arg) {
    (void)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
}

static void quit_at_once(void *arg) { (void)arg; }

static ot_reason down_reason(ot_ref r, ot_pid *pid) {
    ot_msg *m = ot_receive_ref(r, WAIT_MS);
    ot_assert(m != NULL, "(no DOWN)");
    ot_assert_eq(m->tag, OT_TAG_DOWN);
    ot_down_msg d;
    memcpy(&d, ot_msg_data(m), sizeof d);
    ot_msg_free(m);
    if (pid)
        *pid = d.pid;
    return d.reason;
}

/* A stale pid: its process exited and a new one holds the same slot. */
static ot_pid stale_pid_with_occupant(ot_pid *occupant, ot_pid *held, size_t *nheld) {
    ot_ref r;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &r};
    ot_pid old = ot_spawn_opt(quit_at_once, NULL, &o);
    ot_assert(old.v != 0);
    ot_assert_eq(down_reason(r, NULL).kind, OT_NORMAL);
    *nheld = 0;
    for (int i = 0; i < 4096; i++) {
        ot_pid p = ot_spawn(wait_go, NULL);
        ot_assert(p.v != 0);
        if ((uint32_t)p.v == (uint32_t)old.v) {
            ot_assert(p.v != old.v, "(a new process got the old pid)");
            *occupant = p;
            return old;
        }
        held[(*nheld)++] = p;
        if (*nheld == 256) {
            for (size_t j = 0; j < *nheld; j++)
                ot_send(held[j], TAG_GO, NULL, 0);
            *nheld = 0;
        }
    }
    ot_assert(0, "(the slot was never reused)");
    return OT_NOPID;
}

static size_t queue_len(ot_pid p) {
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(p, &in), 0);
    return in.message_queue_len;
}

/* Every call that takes a pid, given one whose slot a live process now holds:
 * none of them reaches the new process, and each answers as for a dead pid. */
OT_TEST(core_review, stale_pid_in_every_call, .timeout = 60) {
    ot_pid held[256], occ = OT_NOPID;
    size_t nheld;
    ot_pid old = stale_pid_with_occupant(&occ, held, &nheld);
    ot_assert_eq(ot_is_alive(old), false);
    ot_assert_eq(ot_send(old, TAG_X, "x", 1), 0);
    ot_assert_eq(ot_send_ref(old, TAG_X, ot_make_ref(), "x", 1), 0);
    ot_assert_eq(ot_exit(old, OT_REASON(OT_KILL)), 0);
    ot_assert_eq(ot_exit(old, ot_reason_error("stale")), 0);
    ot_assert_eq(ot_exit(old, OT_REASON(OT_NORMAL)), 0);
    ot_assert_eq(ot_link(old), -ESRCH);
    ot_assert_eq(ot_unlink(old), 0);
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(old, &in), -ESRCH);
    ot_assert_eq(ot_register("core_review_stale", old), -ESRCH);
    ot_assert_eq(ot_whereis("core_review_stale").v, 0);
    errno = 0;
    ot_ref t = ot_send_after(old, 1, TAG_X, "t", 1);
    if (t.v)
        ot_assert_eq(ot_read_timer(t), -1); /* cancelled at once: its target is dead */
    ot_ref mr = ot_monitor(old);
    ot_assert(mr.v != 0);
    ot_pid who;
    ot_assert_eq(down_reason(mr, &who).kind, OT_NOPROC);
    ot_assert_eq(who.v, old.v);
    bool was = ot_trap_exit(true);
    ot_assert_eq(was, false);
    ot_assert_eq(ot_link(old), 0);
    ot_msg *m = ot_receive_tag(OT_TAG_EXIT, WAIT_MS);
    ot_assert(m != NULL);
    ot_exit_msg x;
    memcpy(&x, ot_msg_data(m), sizeof x);
    ot_msg_free(m);
    ot_assert_eq(x.pid.v, old.v);
    ot_assert_eq(x.reason.kind, OT_NOPROC);
    ot_trap_exit(false);
    ot_sleep(20);
    /* the new occupant saw nothing and is alive */
    ot_assert_eq(ot_is_alive(occ), true);
    ot_assert_eq(queue_len(occ), 0);
    ot_assert_eq(ot_process_info(occ, &in), 0);
    ot_assert_eq(in.n_links, 0);
    ot_assert_eq(in.n_monitored_by, 0);
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_links, 0);
    ot_assert_eq(in.n_monitors, 0);
    ot_assert_eq(in.message_queue_len, 0);
    ot_send(occ, TAG_GO, NULL, 0);
    for (size_t j = 0; j < nheld; j++)
        ot_send(held[j], TAG_GO, NULL, 0);
}

/* Pids that were never issued, with indexes inside, at and far past the
 * table, and generations far ahead: -ESRCH or the dead-pid answer, and no
 * crash (a wild index must never be used to touch memory). */
OT_TEST(core_review, never_issued_pids, .timeout = 60) {
    ot_pid bad[] = {
        {(uint64_t)0xffffffffu << 32 | 1},       /* generation far ahead */
        {(uint64_t)1 << 32 | 0xffffffffu},       /* index far past the table */
        {(uint64_t)7 << 32 | (1u << 20)},        /* index at the default capacity */
        {UINT64_MAX},
        {0xffffffffu},                           /* generation 0 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ot_pid p = bad[i];
        ot_assert_eq(ot_is_alive(p), false);
        int rc = ot_send(p, TAG_X, "x", 1);
        ot_assert(rc == 0 || rc == -ESRCH, "(send %d)", rc);
        rc = ot_exit(p, OT_REASON(OT_KILL));
        ot_assert(rc == 0 || rc == -ESRCH, "(exit %d)", rc);
        ot_assert_eq(ot_link(p), -ESRCH);
        ot_assert_eq(ot_unlink(p), 0);
        struct ot_process_info in;
        ot_assert_eq(ot_process_info(p, &in), -ESRCH);
        ot_assert_eq(ot_register("core_review_bad", p), -ESRCH);
        ot_ref mr = ot_monitor(p);
        ot_assert(mr.v != 0);
        ot_assert_eq(down_reason(mr, NULL).kind, OT_NOPROC);
        ot_ref t = ot_send_after(p, 1, TAG_X, NULL, 0);
        if (t.v)
            ot_assert_eq(ot_cancel_timer(t), -1);
        char buf[26]; /* the size process.h promises is always enough */
        ot_assert_eq(ot_pid_format(p, buf, sizeof buf), 0);
    }
    ot_assert(ot_receive(30) == NULL); /* nothing came back */
}

static bool never(const ot_msg *m, void *a) {
    (void)m;
    (void)a;
    return false;
}

/* NULL and oversize arguments: a negative errno, never a crash. */
OT_TEST(core_review, null_and_oversize_arguments, .timeout = 60) {
    ot_pid self = ot_self();
    ot_assert_eq(ot_process_info(self, NULL), -EINVAL);
    ot_assert(ot_processes(NULL, 0) >= 1);
    ot_assert_eq(ot_register(NULL, self), -EINVAL);
    ot_assert_eq(ot_register("", self), -EINVAL);
    char longname[OT_NAME_MAX + 1];
    memset(longname, 'a', sizeof longname - 1);
    longname[OT_NAME_MAX] = 0;
    ot_assert_eq(ot_register(longname, self), -EINVAL);
    longname[OT_NAME_MAX - 1] = 0; /* 63 bytes: the longest name */
    ot_assert_eq(ot_register(longname, self), 0);
    ot_assert_eq(ot_whereis(longname).v, self.v);
    ot_assert_eq(ot_unregister(longname), 0);
    ot_assert_eq(ot_unregister(NULL), -EINVAL);
    ot_assert_eq(ot_unregister(longname), -ENOENT);
    ot_assert_eq(ot_whereis(NULL).v, 0);
    ot_assert_eq(ot_send(self, TAG_X, NULL, 5), -EINVAL);
    ot_assert_eq(ot_send(self, TAG_X, "x", OT_MSG_MAX + 1), -EMSGSIZE);
    ot_assert_eq(ot_send(self, TAG_X, "x", SIZE_MAX), -EMSGSIZE);
    ot_assert_eq(ot_send_ref(self, TAG_X, OT_NOREF, NULL, 1), -EINVAL);
    ot_assert_eq(ot_send(OT_NOPID, TAG_X, NULL, 0), -ESRCH);
    errno = 0;
    ot_assert(ot_receive_match(NULL, NULL, 0) == NULL);
    ot_assert_eq(errno, EINVAL);
    errno = 0;
    ot_assert(ot_receive_match(never, NULL, -7) == NULL);
    ot_assert_eq(errno, EINVAL);
    ot_msg_free(NULL);
    ot_assert(ot_msg_data(NULL) == NULL);
    errno = 0;
    ot_assert_eq(ot_send_after(self, 0, TAG_X, NULL, 5).v, 0);
    ot_assert_eq(errno, EINVAL);
    errno = 0;
    ot_assert_eq(ot_send_after(self, 0, TAG_X, "x", SIZE_MAX).v, 0);
    ot_assert_eq(errno, EMSGSIZE);
    ot_assert_eq(ot_cancel_timer(OT_NOREF), -1);
    ot_assert_eq(ot_read_timer((ot_ref){UINT64_MAX}), -1);
    ot_assert_eq(ot_cancel_timer((ot_ref){UINT64_MAX}), -1);
    ot_assert_eq(ot_demonitor(OT_NOREF, 0), 0);
    ot_assert_eq(ot_demonitor((ot_ref){UINT64_MAX}, OT_DEMONITOR_FLUSH), 0);
    ot_assert_eq(ot_exit(self, (ot_reason){.kind = 99}), -EINVAL);
    ot_assert_eq(ot_exit(self, (ot_reason){.kind = -1}), -EINVAL);
    ot_spawn_opts o = {.stack_size = SIZE_MAX};
    errno = 0;
    ot_assert_eq(ot_spawn_opt(wait_go, NULL, &o).v, 0);
    ot_assert_eq(errno, EINVAL);
    o = (ot_spawn_opts){.stack_size = 1};
    errno = 0;
    ot_assert_eq(ot_spawn_opt(wait_go, NULL, &o).v, 0);
    ot_assert_eq(errno, EINVAL);
    o = (ot_spawn_opts){.scheduler = 100000, .scheduler_set = true, .bind = true};
    errno = 0;
    ot_pid p = ot_spawn_opt(wait_go, NULL, &o);
    if (p.v)
        ot_send(p, TAG_GO, NULL, 0);
    else
        ot_assert_eq(errno, EINVAL);
    o = (ot_spawn_opts){.scheduler = -5, .scheduler_set = true};
    errno = 0;
    p = ot_spawn_opt(wait_go, NULL, &o);
    if (p.v)
        ot_send(p, TAG_GO, NULL, 0);
    else
        ot_assert_eq(errno, EINVAL);
    ot_assert_eq(ot_spawn(NULL, NULL).v, 0);
    ot_assert_eq(ot_spawn_handler(NULL, NULL, NULL).v, 0);
    ot_assert_eq(ot_pid_format(self, NULL, 5), -EINVAL);
    char small[3];
    ot_assert_eq(ot_pid_format(self, small, sizeof small), -ENOSPC);
    ot_assert_eq(strlen(small), 2);
    /* a reason whose text fills its array with no NUL is formatted in bounds */
    ot_reason r = OT_REASON(OT_ERROR);
    memset(r.text, 'z', sizeof r.text);
    char out[256];
    ot_assert(ot_reason_format(r, out, sizeof out) >= 0);
    ot_assert(strlen(out) < sizeof out);
    ot_assert(ot_receive(0) == NULL);
}

/* ---- a full process table -------------------------------------------------------- */

enum { SMALL_TABLE = 16 };

static void small_table(void) {
    ot_test_config.max_processes = SMALL_TABLE;
    ot_test_config.schedulers = 2;
}

static void *foreign_receive_when_full(void *arg) {
    int *err = arg;
    errno = 0;
    ot_msg *m = ot_receive(0);
    *err = m ? -1 : errno;
    ot_msg_free(m);
    return NULL;
}

static int handler_never(void *st, const ot_msg *m) {
    (void)st;
    (void)m;
    return 0;
}

/* spawn, spawn_link, spawn_monitor and spawn_handler into a full table fail
 * with EAGAIN and leave no link, monitor or message behind; a plain thread's
 * first receive cannot get a mailbox (ENOMEM); the runtime works on once a
 * slot is free. */
OT_TEST(core_review, full_table_leaks_nothing, .timeout = 60, .init = small_table) {
    ot_pid kids[SMALL_TABLE];
    size_t n = 0;
    for (;;) {
        errno = 0;
        ot_pid p = ot_spawn(wait_go, NULL);
        if (!p.v) {
            ot_assert_eq(errno, EAGAIN);
            break;
        }
        ot_assert(n < SMALL_TABLE);
        kids[n++] = p;
    }
    ot_assert_eq(n, SMALL_TABLE - 1); /* this process holds one slot */
    for (int round = 0; round < 100; round++) {
        errno = 0;
        ot_assert_eq(ot_spawn_link(wait_go, NULL).v, 0);
        ot_assert_eq(errno, EAGAIN);
        ot_ref r = {12345};
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &r, .link = true};
        errno = 0;
        ot_assert_eq(ot_spawn_opt(wait_go, NULL, &o).v, 0);
        ot_assert_eq(errno, EAGAIN);
        errno = 0;
        ot_assert_eq(ot_spawn_handler(handler_never, NULL, &o).v, 0);
        ot_assert_eq(errno, EAGAIN);
    }
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_links, 0);
    ot_assert_eq(in.n_monitors, 0);
    ot_assert_eq(in.message_queue_len, 0);
    ot_assert_eq(in.unfreed_messages, 0);
    ot_assert_eq(ot_processes(NULL, 0), SMALL_TABLE);
    int err = 0;
    pthread_t t;
    ot_assert_eq(pthread_create(&t, NULL, foreign_receive_when_full, &err), 0);
    pthread_join(t, NULL);
    ot_assert_eq(err, ENOMEM);
    /* a slot freed: everything works again */
    ot_ref mr = ot_monitor(kids[0]);
    ot_assert(mr.v != 0);
    ot_send(kids[0], TAG_GO, NULL, 0);
    ot_assert_eq(down_reason(mr, NULL).kind, OT_NORMAL);
    ot_ref r;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &r};
    ot_pid p = ot_spawn_opt(wait_go, NULL, &o);
    ot_assert(p.v != 0);
    ot_send(p, TAG_GO, NULL, 0);
    ot_assert_eq(down_reason(r, NULL).kind, OT_NORMAL);
    for (size_t i = 1; i < n; i++)
        ot_send(kids[i], TAG_GO, NULL, 0);
}

/* ---- links and monitors racing an exit -------------------------------------------- */

#if defined(OT_TSAN)
enum { RACERS = 32, RACE_ROUNDS = 3 };
#else
enum { RACERS = 200, RACE_ROUNDS = 10 };
#endif

static ot_pid race_test, race_victim;
enum { MODE_LINK_TRAP, MODE_MONITOR, MODE_LINK_PLAIN };

struct race_arg {
    int mode;
};

/* Reports {count of EXIT/DOWN from the victim, the first one's reason kind,
 * whether its text was "boom"}; a plain linker that the victim's exit kills
 * reports nothing (its own DOWN tells). */
static void racer(void *arg) {
    int mode = (int)(intptr_t)arg;
    if (mode == MODE_LINK_TRAP)
        ot_trap_exit(true);
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
    int res[3] = {0, -1, 0};
    ot_ref mr = OT_NOREF;
    if (mode == MODE_MONITOR) {
        mr = ot_monitor(race_victim);
    } else {
        int rc = ot_link(race_victim);
        if (mode == MODE_LINK_PLAIN) {
            if (rc == -ESRCH) { /* link/1 raised noproc */
                res[1] = OT_NOPROC;
                ot_send(race_test, TAG_RESULT, res, sizeof res);
                return;
            }
            ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY)); /* killed before this */
            return;
        }
        if (rc != 0)
            res[1] = 1000 + rc;
    }
    for (;;) {
        ot_msg *m = ot_receive(res[0] ? 100 : WAIT_MS);
        if (!m)
            break;
        if (m->tag == OT_TAG_EXIT || m->tag == OT_TAG_DOWN) {
            ot_reason r;
            ot_pid from;
            if (m->tag == OT_TAG_EXIT) {
                ot_exit_msg *x = ot_msg_data(m);
                r = x->reason;
                from = x->pid;
            } else {
                ot_down_msg *d = ot_msg_data(m);
                r = d->reason;
                from = d->pid;
                if (d->ref.v != mr.v)
                    res[2] |= 4;
            }
            if (from.v == race_victim.v) {
                if (res[0]++ == 0) {
                    res[1] = r.kind;
                    res[2] |= strcmp(r.text, "boom") == 0;
                }
            }
        }
        ot_msg_free(m);
    }
    ot_send(race_test, TAG_RESULT, res, sizeof res);
}

static void victim_main(void *arg) {
    (void)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
    ot_exit_self(ot_reason_error("boom"));
}

/* Many processes link to (trapping or not) or monitor one process at the
 * moment it exits: each gets exactly one EXIT or DOWN, with the victim's
 * reason or noproc; a linker that does not trap dies with the reason or gets
 * -ESRCH from ot_link. */
OT_TEST(core_review, many_link_and_monitor_at_the_exit, .timeout = 120) {
    race_test = ot_self();
    for (int round = 0; round < RACE_ROUNDS; round++) {
        int mode = round % 3;
        race_victim = ot_spawn(victim_main, NULL);
        ot_assert(race_victim.v != 0);
        ot_pid r[RACERS];
        ot_ref mon[RACERS];
        for (int i = 0; i < RACERS; i++) {
            ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon[i]};
            r[i] = ot_spawn_opt(racer, (void *)(intptr_t)mode, &o);
            ot_assert(r[i].v != 0);
        }
        ot_yield();
        for (int i = 0; i < RACERS; i++) {
            if (i == RACERS / 2)
                ot_send(race_victim, TAG_GO, NULL, 0);
            ot_send(r[i], TAG_GO, NULL, 0);
        }
        int got = 0, killed = 0;
        for (int i = 0; i < RACERS; i++) {
            ot_pid who;
            ot_reason why = down_reason(mon[i], &who);
            if (why.kind == OT_ERROR) {
                ot_assert_eq(mode, MODE_LINK_PLAIN);
                ot_assert(strcmp(why.text, "boom") == 0);
                killed++;
            } else {
                ot_assert_eq(why.kind, OT_NORMAL);
            }
        }
        for (int i = 0; i < RACERS - killed; i++) {
            ot_msg *m = ot_receive_tag(TAG_RESULT, WAIT_MS);
            ot_assert(m != NULL);
            int *res = ot_msg_data(m);
            if (mode == MODE_LINK_PLAIN) {
                ot_assert_eq(res[1], OT_NOPROC);
            } else {
                ot_assert_eq(res[0], 1);
                ot_assert(res[1] == OT_NOPROC || (res[1] == OT_ERROR && (res[2] & 1)),
                          "(reason kind %d, flags %d)", res[1], res[2]);
                ot_assert_eq(res[2] & 4, 0);
            }
            got++;
            ot_msg_free(m);
        }
        ot_assert_eq(got + killed, RACERS);
    }
}

/* ---- names ----------------------------------------------------------------------- */

static _Atomic int reg_wins, reg_eexist, reg_other;

static void registrar(void *arg) {
    (void)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
    int rc = ot_register("core_review_race", ot_self());
    if (rc == 0)
        atomic_fetch_add(&reg_wins, 1);
    else if (rc == -EEXIST)
        atomic_fetch_add(&reg_eexist, 1);
    else
        atomic_fetch_add(&reg_other, 1);
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
}

/* Many processes register one name at once: exactly one wins. When the
 * holder dies, its name is gone before its DOWN arrives (as in BEAM, where
 * the name is released before links and monitors fire), so the monitoring
 * process may take the name at once. A second name for a process is -EEXIST. */
OT_TEST(core_review, register_races_and_release_before_down, .timeout = 60) {
#if defined(OT_TSAN)
    enum { N = 16, ROUNDS = 4 };
#else
    enum { N = 64, ROUNDS = 20 };
#endif
    for (int round = 0; round < ROUNDS; round++) {
        atomic_store(&reg_wins, 0);
        atomic_store(&reg_eexist, 0);
        atomic_store(&reg_other, 0);
        ot_pid p[N];
        ot_ref mon[N];
        for (int i = 0; i < N; i++) {
            ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon[i]};
            p[i] = ot_spawn_opt(registrar, NULL, &o);
            ot_assert(p[i].v != 0);
        }
        for (int i = 0; i < N; i++)
            ot_send(p[i], TAG_GO, NULL, 0);
        while (atomic_load(&reg_wins) + atomic_load(&reg_eexist) + atomic_load(&reg_other) < N)
            ot_sleep(1);
        ot_assert_eq(atomic_load(&reg_wins), 1);
        ot_assert_eq(atomic_load(&reg_other), 0);
        ot_pid holder = ot_whereis("core_review_race");
        int hi = -1;
        for (int i = 0; i < N; i++)
            if (p[i].v == holder.v)
                hi = i;
        ot_assert(hi >= 0);
        ot_assert_eq(ot_register("core_review_other", holder), -EEXIST);
        if (round & 1)
            ot_exit(holder, OT_REASON(OT_KILL));
        else
            ot_send(holder, TAG_GO, NULL, 0);
        ot_reason why = down_reason(mon[hi], NULL);
        ot_assert_eq(why.kind, (round & 1) ? OT_KILLED : OT_NORMAL);
        ot_assert_eq(ot_whereis("core_review_race").v, 0);
        ot_assert_eq(ot_register("core_review_race", ot_self()), 0);
        ot_assert_eq(ot_unregister("core_review_race"), 0);
        for (int i = 0; i < N; i++)
            if (i != hi) {
                ot_send(p[i], TAG_GO, NULL, 0);
                ot_assert_eq(down_reason(mon[i], NULL).kind, OT_NORMAL);
            }
    }
}

/* ---- a fault while others hold mail for the process ----------------------------- */

static void faulter(void *arg) {
    int how = (int)(intptr_t)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
    if (how == 0) {
        volatile int *np = NULL;
        *np = 1;
    } else {
        volatile char big[200 * 1024]; /* jumps far past any guard */
        big[0] = 1;
        big[sizeof big - 1] = 2;
        (void)big[0];
    }
}

static void flooder(void *arg) {
    ot_pid to = *(ot_pid *)arg;
    char buf[512] = {0};
    for (int i = 0; i < 2000; i++)
        if (ot_send(to, TAG_X, buf, sizeof buf) != 0)
            ot_exit_self(ot_reason_error("send failed"));
}

/* A process with mail queued from several senders faults (SIGSEGV, and a
 * 200 KiB frame on a 64 KiB stack): its monitor sees the exact reason, its
 * senders finish normally, and the table does not keep it. */
#if defined(OT_SANITIZE)
Test(core_review, fault_with_mail_queued) {
    cr_skip_test("sanitizer build: ASan/TSan own the SIGSEGV handler (runtime/sched/fault.c)");
}
static void fault_with_mail_queued(void) __attribute__((unused));
#else
static void fault_with_mail_queued(void);
OT_TEST(core_review, fault_with_mail_queued, .timeout = 60) { fault_with_mail_queued(); }
#endif
static void fault_with_mail_queued(void) {
    for (int how = 0; how < 2; how++) {
        ot_ref fr;
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &fr, .stack_size = 64 * 1024};
        static ot_pid target;
        target = ot_spawn_opt(faulter, (void *)(intptr_t)how, &o);
        ot_assert(target.v != 0);
        ot_ref sr[4];
        for (int i = 0; i < 4; i++) {
            ot_spawn_opts so = {.monitor = true, .monitor_ref = &sr[i]};
            ot_assert(ot_spawn_opt(flooder, &target, &so).v != 0);
        }
        ot_sleep(5);
        ot_send(target, TAG_GO, NULL, 0);
        ot_reason why = down_reason(fr, NULL);
        if (how == 0) {
            ot_assert_eq(why.kind, OT_FAULT);
            ot_assert_eq(why.detail, SIGSEGV);
        } else {
            ot_assert(why.kind == OT_STACK_OVERFLOW || (why.kind == OT_FAULT && why.detail == SIGSEGV),
                      "(kind %d)", why.kind);
        }
        for (int i = 0; i < 4; i++)
            ot_assert_eq(down_reason(sr[i], NULL).kind, OT_NORMAL);
        ot_assert_eq(ot_is_alive(target), false);
    }
}

/* ---- plain threads racing ot_stop ------------------------------------------------- */

static _Atomic int st_go;
static _Atomic uint64_t st_tab_proc, st_tab_plain, st_target;
static _Atomic long st_bad, st_ops;

static void table_owner(void *arg) {
    (void)arg;
    ot_ets_opts o = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC};
    ot_tab t = ot_ets_new(NULL, &o);
    atomic_store(&st_tab_proc, t.v);
    ot_receive_tag(TAG_GO, OT_INFINITY);
}

static void *stop_racer(void *arg) {
    long id = (long)arg;
    while (!atomic_load(&st_go))
        ;
    for (uint64_t i = 0; atomic_load(&st_go) == 1; i++) {
        ot_tab t = {(id & 1) ? atomic_load(&st_tab_proc) : atomic_load(&st_tab_plain)};
        uint64_t k = i % 64;
        int rc = ot_ets_insert(t, &k, sizeof k, &i, sizeof i);
        if (rc != 0 && rc != -EBADF && rc != -ENOTCONN)
            atomic_fetch_add(&st_bad, 1);
        ot_ets_obj *objs = NULL;
        size_t n = 0;
        rc = ot_ets_lookup(t, &k, sizeof k, &objs, &n);
        if (rc == 0)
            free(objs);
        else if (rc != -EBADF && rc != -ENOTCONN && rc != -ENOENT)
            atomic_fetch_add(&st_bad, 1);
        rc = ot_send((ot_pid){atomic_load(&st_target)}, TAG_X, &i, sizeof i);
        if (rc != 0 && rc != -ENOTCONN)
            atomic_fetch_add(&st_bad, 1);
        struct ot_process_info in;
        rc = ot_process_info((ot_pid){atomic_load(&st_target)}, &in);
        if (rc != 0 && rc != -ESRCH && rc != -ENOTCONN)
            atomic_fetch_add(&st_bad, 1);
        rc = ot_register("core_review_stop", (ot_pid){atomic_load(&st_target)});
        if (rc != 0 && rc != -EEXIST && rc != -ESRCH && rc != -ENOTCONN)
            atomic_fetch_add(&st_bad, 1);
        atomic_fetch_add(&st_ops, 1);
        if (rc == -ENOTCONN)
            usleep(200); /* stopped: leave the CPUs to ot_start */
    }
    return NULL;
}

static void sink(void *arg) {
    (void)arg;
    for (;;)
        ot_msg_free(ot_receive(OT_INFINITY));
}

/* Plain threads use ETS tables (one a process owns, one plain threads own),
 * send, read process_info and register while the runtime stops and starts
 * again: every call returns a documented result and nothing crashes (ASan
 * and TSan builds check the memory). */
Test(core_review, plain_threads_ets_and_sends_race_stop, .timeout = 120) {
#if defined(OT_TSAN)
    enum { THREADS = 3, ROUNDS = 2 };
#else
    enum { THREADS = 3, ROUNDS = 6 };
#endif
    pthread_t t[THREADS];
    atomic_store(&st_go, 0);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, stop_racer, (void *)i);
    ot_config cfg = {.schedulers = 2, .max_processes = 256};
    for (int r = 0; r < ROUNDS; r++) {
        cr_assert_eq(ot_start(&cfg), 0);
        ot_ets_opts o = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC};
        ot_tab plain = ot_ets_new(NULL, &o);
        cr_assert(plain.v != 0);
        atomic_store(&st_tab_plain, plain.v);
        cr_assert(ot_spawn(table_owner, NULL).v != 0);
        atomic_store(&st_target, ot_spawn(sink, NULL).v);
        while (!atomic_load(&st_tab_proc))
            usleep(100);
        atomic_store(&st_go, 1);
        long before = atomic_load(&st_ops);
        while (atomic_load(&st_ops) < before + 200)
            usleep(100);
        cr_assert_eq(ot_stop(), 0);
        usleep(2000); /* the racers run against a stopped runtime too */
        int rc = ot_ets_delete_table(plain);
        cr_assert(rc == 0 || rc == -ENOTCONN || rc == -EBADF, "(delete_table %d)", rc);
    }
    atomic_store(&st_go, 2);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&st_bad), 0);
}

/* ---- calls from a plain thread ---------------------------------------------------- */

struct plain_res {
    int rc[16];
    int err[16];
    ot_pid me;
};

static void *plain_calls(void *arg) {
    struct plain_res *r = arg;
    ot_yield(); /* nothing to give way to: returns */
    r->rc[0] = ot_trap_exit(true);
    r->rc[1] = ot_sleep(0);
    r->rc[2] = ot_make_ref().v != 0;
    errno = 0;
    r->rc[3] = ot_send_after(ot_self(), 1, TAG_X, NULL, 0).v != 0;
    r->err[3] = errno;
    r->rc[4] = ot_link((ot_pid){1});
    errno = 0;
    r->rc[5] = ot_monitor((ot_pid){1}).v != 0;
    r->err[5] = errno;
    r->rc[6] = ot_demonitor((ot_ref){1}, 0);
    r->rc[7] = ot_unlink((ot_pid){1});
    ot_send(r->me, TAG_READY, NULL, 0); /* gives this thread a mailbox */
    ot_msg *m = ot_receive_tag(TAG_GO, WAIT_MS);
    ot_pid mine = m ? *(ot_pid *)ot_msg_data(m) : OT_NOPID;
    ot_msg_free(m);
    r->rc[8] = mine.v != 0;
    struct ot_process_info in;
    r->rc[9] = ot_process_info(mine, &in);
    r->rc[10] = ot_register("core_review_plain", mine);
    r->rc[11] = ot_exit(mine, OT_REASON(OT_KILL)); /* dropped: a thread is not killed */
    r->rc[12] = ot_send(mine, TAG_X, "y", 1);
    m = ot_receive_tag(TAG_X, WAIT_MS);
    r->rc[13] = m && m->size == 1 && *(char *)ot_msg_data(m) == 'y';
    ot_msg_free(m);
    /* a timer a process armed to this thread's pid reaches it */
    m = ot_receive_tag(TAG_RESULT, WAIT_MS);
    r->rc[14] = m && m->size == 1 && *(char *)ot_msg_data(m) == 't';
    ot_msg_free(m);
    ot_send(r->me, TAG_READY, NULL, 0);
    return NULL;
}

/* A plain thread's calls that need a process say so (EPERM, false), and the
 * ones it may make work on its own mailbox's pid; exit signals to it are
 * dropped. */
OT_TEST(core_review, plain_thread_process_calls, .timeout = 60) {
    struct plain_res r = {.me = ot_self()};
    pthread_t t;
    ot_assert_eq(pthread_create(&t, NULL, plain_calls, &r), 0);
    ot_msg *m = ot_receive_tag(TAG_READY, WAIT_MS);
    ot_assert(m != NULL);
    ot_pid thread_pid = m->from;
    ot_msg_free(m);
    ot_assert(thread_pid.v != 0);
    ot_send(thread_pid, TAG_GO, &thread_pid, sizeof thread_pid);
    /* the timer lives on this scheduler's wheel: wait parked, not in
     * pthread_join, which would hold the scheduler thread */
    ot_assert(ot_send_after(thread_pid, 5, TAG_RESULT, "t", 1).v != 0);
    ot_msg_free(ot_receive_tag(TAG_READY, WAIT_MS));
    pthread_join(t, NULL);
    ot_assert_eq(r.rc[0], 0);
    ot_assert_eq(r.rc[1], 0);
    ot_assert_eq(r.rc[2], 1);
    ot_assert_eq(r.rc[3], 0);
    ot_assert_eq(r.err[3], EPERM);
    ot_assert_eq(r.rc[4], -EPERM);
    ot_assert_eq(r.rc[5], 0);
    ot_assert_eq(r.err[5], EPERM);
    ot_assert_eq(r.rc[6], -EPERM);
    ot_assert_eq(r.rc[7], -EPERM);
    ot_assert_eq(r.rc[8], 1);
    ot_assert(r.rc[9] == 0 || r.rc[9] == -ESRCH, "(process_info %d)", r.rc[9]);
    ot_assert_eq(r.rc[10], -ESRCH);
    ot_assert_eq(r.rc[11], 0);
    ot_assert_eq(r.rc[12], 0);
    ot_assert_eq(r.rc[13], 1);
    ot_assert_eq(r.rc[14], 1);
}

/* ---- a process that loops on runtime calls is killable ---------------------------- */

static ot_pid loop_dead, loop_test;
static ot_tab loop_tab;

enum {
    L_SEND_DEAD,
    L_SEND_SELF,
    L_EXIT_DEAD,
    L_LINK_DEAD,
    L_UNLINK,
    L_MONITOR_SELF,
    L_DEMONITOR,
    L_SEND_AFTER_CANCEL,
    L_CANCEL,
    L_READ_TIMER,
    L_ETS_INSERT,
    L_ETS_LOOKUP,
    L_SPAWN_KILL,
    L_KINDS
};

static void looper(void *arg) {
    int kind = (int)(intptr_t)arg;
    ot_send(loop_test, TAG_READY, NULL, 0);
    for (uint64_t i = 0;; i++) {
        uint64_t k = i % 16;
        switch (kind) {
        case L_SEND_DEAD: ot_send(loop_dead, TAG_X, &i, sizeof i); break;
        case L_SEND_SELF:
            ot_send(ot_self(), TAG_X, &i, sizeof i);
            ot_msg_free(ot_receive_tag(TAG_X, 0));
            break;
        case L_EXIT_DEAD: ot_exit(loop_dead, ot_reason_error("x")); break;
        case L_LINK_DEAD: ot_link(loop_dead); break;
        case L_UNLINK: ot_unlink(loop_dead); break;
        case L_MONITOR_SELF: ot_demonitor(ot_monitor(ot_self()), 0); break;
        case L_DEMONITOR: ot_demonitor((ot_ref){i + 1}, 0); break;
        case L_SEND_AFTER_CANCEL:
            ot_cancel_timer(ot_send_after(ot_self(), 100000, TAG_X, NULL, 0));
            break;
        case L_CANCEL: ot_cancel_timer((ot_ref){i + 1}); break;
        case L_READ_TIMER: ot_read_timer((ot_ref){i + 1}); break;
        case L_ETS_INSERT: ot_ets_insert(loop_tab, &k, sizeof k, &i, sizeof i); break;
        case L_ETS_LOOKUP: {
            ot_ets_obj *o;
            size_t n;
            if (ot_ets_lookup(loop_tab, &k, sizeof k, &o, &n) == 0)
                ot_free(o);
            break;
        }
        case L_SPAWN_KILL: ot_exit(ot_spawn(wait_go, NULL), OT_REASON(OT_KILL)); break;
        }
    }
}

/* A process that loops on sends, exit signals, link and monitor calls, timer
 * calls or ETS operations, and never receives, dies of an exit signal (kill,
 * or any reason when it does not trap) as on BEAM: its preemption points are
 * where signals take effect. The runtime used to only yield there, so such a
 * process outlived every kill and ot_stop gave up on it. */
OT_TEST(core_review, loops_of_runtime_calls_are_killable, .timeout = 120) {
    cr_skip_test("kills at the preemption of runtime-call loops are off: sends spend inside "
                 "socket callbacks and flushes; with them test_sock_stress freed a socket "
                 "twice under TSan (runtime/sched/sched.c, ot__spend)");
    loop_test = ot_self();
    ot_ref r;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &r};
    loop_dead = ot_spawn_opt(quit_at_once, NULL, &o);
    ot_assert_eq(down_reason(r, NULL).kind, OT_NORMAL);
    ot_ets_opts eo = {.type = OT_ETS_SET, .access = OT_ETS_PUBLIC};
    loop_tab = ot_ets_new(NULL, &eo);
    ot_assert(loop_tab.v != 0);
    for (int k = 0; k < L_KINDS; k++) {
        for (int how = 0; how < 2; how++) {
            ot_pid p = ot_spawn_opt(looper, (void *)(intptr_t)k, &o);
            ot_assert(p.v != 0);
            ot_msg_free(ot_receive_tag(TAG_READY, WAIT_MS));
            ot_yield();
            ot_assert_eq(ot_exit(p, how ? ot_reason_error("stop") : OT_REASON(OT_KILL)), 0);
            ot_msg *m = ot_receive_ref(r, WAIT_MS);
            ot_assert(m != NULL, "(loop kind %d outlived its exit signal)", k);
            ot_down_msg d;
            memcpy(&d, ot_msg_data(m), sizeof d);
            ot_msg_free(m);
            ot_assert_eq(d.pid.v, p.v);
            ot_assert_eq(d.reason.kind, how ? OT_ERROR : OT_KILLED);
        }
    }
    ot_assert_eq(ot_ets_delete_table(loop_tab), 0);
}

static void *stop_within(void *arg) {
    int *rc = arg;
    *rc = ot_stop();
    return NULL;
}

/* ot_stop ends a process that loops on sends (it used to give up on it after
 * stop_timeout_ms and leave its scheduler thread running: -ETIMEDOUT). */
Test(core_review, stop_ends_a_send_loop, .timeout = 60) {
    cr_skip_test("kills at the preemption of runtime-call loops are off: sends spend inside "
                 "socket callbacks and flushes; with them test_sock_stress freed a socket "
                 "twice under TSan (runtime/sched/sched.c, ot__spend)");
    ot_config cfg = {.schedulers = 2, .stop_timeout_ms = 3000};
    cr_assert_eq(ot_start(&cfg), 0);
    loop_test = ot_spawn(wait_go, NULL); /* where the looper says it runs */
    loop_dead = loop_test;
    cr_assert(ot_spawn(looper, (void *)(intptr_t)L_SEND_DEAD).v != 0);
    usleep(20000);
    int rc = 1;
    pthread_t t;
    pthread_create(&t, NULL, stop_within, &rc);
    pthread_join(t, NULL);
    cr_assert_eq(rc, 0);
}

/* ---- ot_processes while processes come and go ----------------------------------- */

static _Atomic int churn_stop;

static void *list_processes(void *arg) {
    (void)arg;
    ot_pid buf[64];
    int devnull = open("/dev/null", O_WRONLY);
    for (unsigned round = 0; !atomic_load(&churn_stop); round++) {
        size_t n = ot_processes(buf, 64);
        for (size_t i = 0; i < n && i < 64; i++) {
            struct ot_process_info in;
            (void)ot_process_info(buf[i], &in);
            if (ot_register("core_review_churn", buf[i]) == 0)
                ot_unregister("core_review_churn");
        }
        if (round % 8 == 0)
            (void)ot_dump(devnull);
    }
    close(devnull);
    return NULL;
}

static void churner(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++) {
        ot_trap_exit(i & 1);
        ot_yield();
    }
}

/* A plain thread lists, inspects, registers and dumps processes while others
 * are spawned, flip trap_exit and exit: no crash, and (TSan build) no data
 * race on the slots it reads. */
OT_TEST(core_review, processes_listed_while_slots_churn, .timeout = 60) {
#if defined(OT_TSAN)
    enum { CHURN = 300 };
#else
    enum { CHURN = 5000 };
#endif
    atomic_store(&churn_stop, 0);
    pthread_t t;
    ot_assert_eq(pthread_create(&t, NULL, list_processes, NULL), 0);
    for (int i = 0; i < CHURN; i++) {
        ot_pid p = ot_spawn(i % 4 ? quit_at_once : churner, NULL);
        ot_assert(p.v != 0);
        if (i % 16 == 0)
            ot_yield();
    }
    atomic_store(&churn_stop, 1);
    pthread_join(t, NULL);
}
