/* Supervisor and DynamicSupervisor against OTP 25's supervisor and Elixir
 * 1.14's: every test records start and stop events (a start is logged by the
 * child's start function, in the supervisor; a stop by the child when its
 * supervisor's shutdown reaches it) and asserts their exact order for each
 * strategy and restart type; shutdown timeouts, brutal kill and infinity;
 * restart intensity with Elixir's and OTP's defaults (the supervisor's parent
 * sees shutdown); start failures (children already started stopped in
 * reverse, OTP's reason, what a trapping and a non-trapping caller get) and
 * ignore; start/terminate/restart/delete_child on running, stopped and
 * restarting children; which_children's order and count_children;
 * auto_shutdown; EXITs from strangers; names; a DynamicSupervisor's limits,
 * extra arguments and restarts; bad input. */
#include <otter/testing.h>
#include <otter/supervisor.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/sup_events.h"

#define WAIT_MS 20000

/* which_children's entry for id; state -1 when there is none */
static ot_child_info child_of(ot_pid sup, const char *id) {
    ot_child_info in[16];
    size_t n = 0;
    ot_assert_eq(ot_supervisor_which_children(sup, in, 16, &n), 0);
    for (size_t i = 0; i < n && i < 16; i++)
        if (strcmp(in[i].id, id) == 0)
            return in[i];
    return (ot_child_info){.state = -1};
}

static ot_pid pid_of(ot_pid sup, const char *id) {
    return child_of(sup, id).pid;
}

static int state_of(ot_pid sup, const char *id) {
    return child_of(sup, id).state;
}

/* Waits until child id runs with a pid other than old. */
static ot_pid wait_restarted(ot_pid sup, const char *id, ot_pid old) {
    for (int i = 0; i < WAIT_MS / 5; i++) {
        ot_pid p = pid_of(sup, id);
        if (p.v && p.v != old.v)
            return p;
        ot_sleep(5);
    }
    ot_assert(false, "%s was not restarted", id);
    return OT_NOPID;
}

static void kill_and_wait(ot_pid p, uint32_t tag) {
    ot_ref mon = ot_monitor(p);
    ot_send(p, tag, NULL, 0);
    ot_msg *m = ot_receive_ref(mon, WAIT_MS);
    ot_assert(m != NULL);
    ot_msg_free(m);
}

static ot_reason wait_down(ot_pid p) {
    ot_ref mon = ot_monitor(p);
    ot_msg *m = ot_receive_ref(mon, WAIT_MS);
    ot_assert(m != NULL && m->tag == OT_TAG_DOWN);
    ot_reason r = ((ot_down_msg *)ot_msg_data(m))->reason;
    ot_msg_free(m);
    return r;
}

static struct wcfg A, B, C;

static void three(ot_child_spec *cs, int ra, int rb, int rc) {
    A = (struct wcfg){.id = "a"};
    B = (struct wcfg){.id = "b"};
    C = (struct wcfg){.id = "c"};
    cs[0] = worker_spec(&A, ra);
    cs[1] = worker_spec(&B, rb);
    cs[2] = worker_spec(&C, rc);
}

static ot_pid start3(int strategy) {
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_PERMANENT, OT_PERMANENT);
    ev_reset();
    ot_sup_flags f = {.strategy = strategy};
    ot_pid sup;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), 0);
    ev_expect("start:a start:b start:c ");
    return sup;
}

/* ---- order ---------------------------------------------------------------------- */

OT_TEST(supervisor, children_start_in_order_and_stop_in_reverse, .timeout = 60) {
    ot_pid sup = start3(OT_ONE_FOR_ONE);
    ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_NORMAL), WAIT_MS), 0);
    ev_expect("start:a start:b start:c stop:c stop:b stop:a ");
    ot_assert(!ot_is_alive(sup));
}

OT_TEST(supervisor, one_for_one_restarts_only_the_child, .timeout = 60) {
    ot_pid sup = start3(OT_ONE_FOR_ONE);
    ot_pid a = pid_of(sup, "a"), b = pid_of(sup, "b"), c = pid_of(sup, "c");
    ev_reset();
    kill_and_wait(b, TAG_CRASH);
    ot_pid b2 = wait_restarted(sup, "b", b);
    ev_expect("start:b ");
    ot_assert_eq(pid_of(sup, "a").v, a.v);
    ot_assert_eq(pid_of(sup, "c").v, c.v);
    ot_assert(ot_is_alive(b2));
}

OT_TEST(supervisor, one_for_all_stops_the_others_in_reverse_and_starts_all, .timeout = 60) {
    ot_pid sup = start3(OT_ONE_FOR_ALL);
    ot_pid a = pid_of(sup, "a"), b = pid_of(sup, "b"), c = pid_of(sup, "c");
    ev_reset();
    kill_and_wait(b, TAG_CRASH);
    wait_restarted(sup, "c", c);
    ev_expect("stop:c stop:a start:a start:b start:c ");
    ot_assert(!ot_is_alive(a) && !ot_is_alive(c));
    ot_assert(pid_of(sup, "a").v != a.v && pid_of(sup, "b").v != b.v);
}

OT_TEST(supervisor, rest_for_one_restarts_the_child_and_those_after_it, .timeout = 60) {
    ot_pid sup = start3(OT_REST_FOR_ONE);
    ot_pid a = pid_of(sup, "a"), b = pid_of(sup, "b"), c = pid_of(sup, "c");
    ev_reset();
    kill_and_wait(b, TAG_CRASH);
    wait_restarted(sup, "c", c);
    ev_expect("stop:c start:b start:c ");
    ot_assert_eq(pid_of(sup, "a").v, a.v);
    ot_assert(pid_of(sup, "b").v != b.v);
}

OT_TEST(supervisor, restart_types, .timeout = 60) {
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_TRANSIENT, OT_TEMPORARY);
    ot_sup_flags f = {.strategy = OT_ONE_FOR_ONE, .max_restarts = 100, .max_seconds = 5};
    ot_pid sup;
    ev_reset();
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), 0);
    /* permanent: restarted even after a normal exit */
    ot_pid a = pid_of(sup, "a");
    kill_and_wait(a, TAG_NORMAL);
    wait_restarted(sup, "a", a);
    /* transient: a crash is restarted, a normal exit is not */
    ot_pid b = pid_of(sup, "b");
    kill_and_wait(b, TAG_CRASH);
    b = wait_restarted(sup, "b", b);
    kill_and_wait(b, TAG_NORMAL);
    ot_sleep(50);
    ot_assert_eq(state_of(sup, "b"), OT_CHILD_UNDEFINED);
    /* temporary: never restarted, its spec goes */
    kill_and_wait(pid_of(sup, "c"), TAG_CRASH);
    ot_sleep(50);
    ot_assert_eq(state_of(sup, "c"), -1);
    ev_expect("start:a start:b start:c start:a start:b ");
    ot_child_counts k;
    ot_assert_eq(ot_supervisor_count_children(sup, &k), 0);
    ot_assert_eq(k.specs, 2);
    ot_assert_eq(k.active, 1);
    ot_assert_eq(k.workers, 2);
    ot_assert_eq(k.supervisors, 0);
}

/* ---- intensity ------------------------------------------------------------------ */

static void intensity_case(bool otp, int allowed) {
    ot_trap_exit(true);
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_PERMANENT, OT_PERMANENT);
    ot_sup_flags f = {.strategy = OT_ONE_FOR_ONE, .otp_defaults = otp};
    ot_pid sup;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), 0);
    for (int i = 0; i < allowed; i++) {
        ot_pid b = pid_of(sup, "b");
        kill_and_wait(b, TAG_CRASH);
        wait_restarted(sup, "b", b);
    }
    ev_reset();
    ot_pid b = pid_of(sup, "b");
    ot_send(b, TAG_CRASH, NULL, 0);
    ot_msg *m = ot_receive_tag(OT_TAG_EXIT, WAIT_MS);
    ot_assert(m != NULL);
    ot_exit_msg *x = ot_msg_data(m);
    ot_assert_eq(x->pid.v, sup.v);
    ot_assert_eq(x->reason.kind, OT_SHUTDOWN);
    ot_assert_eq(x->reason.text[0], 0);
    ot_msg_free(m);
    ev_expect("stop:c stop:a ");
}

OT_TEST(supervisor, the_fourth_crash_in_five_seconds_takes_it_down, .timeout = 60) {
    intensity_case(false, 3);
}

OT_TEST(supervisor, otp_defaults_allow_one_restart, .timeout = 60) {
    intensity_case(true, 1);
}

OT_TEST(supervisor, zero_restarts_allowed, .timeout = 60) {
    ot_trap_exit(true);
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_PERMANENT, OT_PERMANENT);
    ot_sup_flags f = {.strategy = OT_ONE_FOR_ONE, .max_restarts = 0, .max_seconds = 1};
    ot_pid sup;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), 0);
    ot_send(pid_of(sup, "a"), TAG_CRASH, NULL, 0);
    ot_msg *m = ot_receive_tag(OT_TAG_EXIT, WAIT_MS);
    ot_assert(m && ((ot_exit_msg *)ot_msg_data(m))->reason.kind == OT_SHUTDOWN);
    ot_msg_free(m);
}

/* ---- shutdown ------------------------------------------------------------------- */

OT_TEST(supervisor, shutdown_timeout_brutal_kill_and_infinity, .timeout = 60) {
    static struct wcfg s1 = {.id = "stubborn", .stubborn = true}, s2 = {.id = "brutal"};
    ot_child_spec cs[2] = {worker_spec(&s1, OT_PERMANENT), worker_spec(&s2, OT_PERMANENT)};
    cs[0].shutdown = 100;
    cs[1].shutdown = OT_BRUTAL_KILL;
    ot_sup_flags f = {0};
    ot_pid sup;
    ev_reset();
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 2, NULL, &sup), 0);
    ot_pid stub = pid_of(sup, "stubborn"), br = pid_of(sup, "brutal");
    ot_ref m1 = ot_monitor(stub), m2 = ot_monitor(br);
    int64_t t0 = ot_now_ms();
    ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_NORMAL), WAIT_MS), 0);
    ot_assert(ot_now_ms() - t0 >= 100, "the stubborn child was killed before its 100 ms");
    ot_msg *d = ot_receive_ref(m2, 0);
    ot_assert(d != NULL);
    ot_assert_eq(((ot_down_msg *)ot_msg_data(d))->reason.kind, OT_KILLED);
    ot_msg_free(d);
    d = ot_receive_ref(m1, 0);
    ot_assert(d != NULL);
    ot_assert_eq(((ot_down_msg *)ot_msg_data(d))->reason.kind, OT_KILLED);
    ot_msg_free(d);
    ev_expect("start:stubborn start:brutal "); /* brutal: no stop event, killed */
}

static struct wcfg inner_w = {.id = "inner_w"};

static int start_inner_sup(void *arg, ot_pid *out) {
    (void)arg;
    ot_child_spec c = worker_spec(&inner_w, OT_PERMANENT);
    ot_sup_flags f = {0};
    event("start:%s ", "inner");
    return ot_supervisor_start_link(&f, &c, 1, NULL, out);
}

OT_TEST(supervisor, a_child_supervisor_stops_its_own_children_first, .timeout = 60) {
    static struct wcfg w = {.id = "w"};
    ot_child_spec cs[2] = {
        worker_spec(&w, OT_PERMANENT),
        {.id = "inner", .start = start_inner_sup, .type = OT_SUPERVISOR},
    };
    ot_sup_flags f = {0};
    ot_pid sup;
    ev_reset();
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 2, NULL, &sup), 0);
    ot_child_counts k;
    ot_assert_eq(ot_supervisor_count_children(sup, &k), 0);
    ot_assert_eq(k.supervisors, 1);
    ot_assert_eq(k.workers, 1);
    ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_NORMAL), WAIT_MS), 0);
    ev_expect("start:w start:inner start:inner_w stop:inner_w stop:w ");
    /* the stop's reason reaches a trapping caller: normal here */
}

/* ---- start failures and ignore -------------------------------------------------------- */

OT_TEST(supervisor, a_failed_child_start_fails_start_link, .timeout = 60) {
    ot_trap_exit(true);
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_PERMANENT, OT_PERMANENT);
    B.fail = -EIO;
    ot_reason why;
    ot_start_opts o = {.why = &why};
    ot_sup_flags f = {0};
    ot_pid sup;
    ev_reset();
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, &o, &sup), -ECHILD);
    ot_assert_eq(sup.v, 0);
    ev_expect("start:a stop:a ");
    ot_assert_eq(why.kind, OT_SHUTDOWN);
    ot_assert(strcmp(why.text, "failed_to_start_child b") == 0, "%s", why.text);
    ot_assert_eq(why.detail, EIO);
    ot_msg *m = ot_receive_tag(OT_TAG_EXIT, WAIT_MS); /* OTP 25: the link delivers it */
    ot_assert(m != NULL);
    ot_assert(strcmp(((ot_exit_msg *)ot_msg_data(m))->reason.text, "failed_to_start_child b") == 0);
    ot_msg_free(m);
}

static void non_trapping_starter(void *arg) {
    (void)arg;
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_PERMANENT, OT_PERMANENT);
    C.fail = -ENOMEM;
    ot_sup_flags f = {0};
    ot_pid sup;
    ot_supervisor_start_link(&f, cs, 3, NULL, &sup);
    ot_sleep(WAIT_MS); /* the EXIT of the failed supervisor ends us first */
}

OT_TEST(supervisor, a_failed_start_takes_a_non_trapping_caller_down, .timeout = 60) {
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    ot_spawn_opt(non_trapping_starter, NULL, &o);
    ot_msg *m = ot_receive_ref(mon, WAIT_MS);
    ot_assert(m != NULL);
    ot_down_msg *d = ot_msg_data(m);
    ot_assert_eq(d->reason.kind, OT_SHUTDOWN);
    ot_assert(strcmp(d->reason.text, "failed_to_start_child c") == 0, "%s", d->reason.text);
    ot_msg_free(m);
}

OT_TEST(supervisor, a_child_start_that_returns_ignore, .timeout = 60) {
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_PERMANENT, OT_TEMPORARY);
    B.fail = OT_IGNORED;
    C.fail = OT_IGNORED;
    ot_sup_flags f = {0};
    ot_pid sup;
    ev_reset();
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), 0);
    ev_expect("start:a ");
    ot_assert_eq(state_of(sup, "b"), OT_CHILD_UNDEFINED); /* kept, not running */
    ot_assert_eq(state_of(sup, "c"), -1);                 /* temporary: dropped */
    ot_pid p;
    ot_assert_eq(ot_supervisor_start_child(sup, &cs[2], &p), OT_IGNORED);
    ot_assert_eq(p.v, 0);
    B.fail = 0;
    ot_assert_eq(ot_supervisor_restart_child(sup, "b", &p), 0);
    ot_assert(p.v != 0);
}

/* ---- child management ------------------------------------------------------------ */

OT_TEST(supervisor, start_terminate_restart_delete_child, .timeout = 60) {
    ot_pid sup = start3(OT_ONE_FOR_ONE);
    static struct wcfg d = {.id = "d"};
    ot_child_spec cd = worker_spec(&d, OT_PERMANENT);
    ot_pid p, q;
    ev_reset();
    ot_assert_eq(ot_supervisor_start_child(sup, &cd, &p), 0);
    ot_assert_eq(ot_supervisor_start_child(sup, &cd, &q), -EEXIST);
    ot_assert_eq(q.v, p.v);
    /* which_children: OTP's order, the newest first */
    ot_child_info in[8];
    size_t n;
    ot_assert_eq(ot_supervisor_which_children(sup, in, 8, &n), 0);
    ot_assert_eq(n, 4);
    ot_assert(strcmp(in[0].id, "d") == 0 && strcmp(in[3].id, "a") == 0);
    ot_assert_eq(ot_supervisor_which_children(sup, in, 2, &n), 0);
    ot_assert_eq(n, 4);
    /* running: restart and delete refused */
    ot_assert_eq(ot_supervisor_restart_child(sup, "d", &q), -EBUSY);
    ot_assert_eq(ot_supervisor_delete_child(sup, "d"), -EBUSY);
    ot_assert_eq(ot_supervisor_terminate_child(sup, "d"), 0);
    ot_assert(!ot_is_alive(p));
    ot_assert_eq(state_of(sup, "d"), OT_CHILD_UNDEFINED);
    ot_assert_eq(ot_supervisor_start_child(sup, &cd, &q), -EALREADY);
    /* stopped: restart works, then delete after a terminate */
    ot_assert_eq(ot_supervisor_restart_child(sup, "d", &q), 0);
    ot_assert(q.v != p.v && ot_is_alive(q));
    ot_assert_eq(ot_supervisor_terminate_child(sup, "d"), 0);
    ot_assert_eq(ot_supervisor_delete_child(sup, "d"), 0);
    ot_assert_eq(state_of(sup, "d"), -1);
    ot_assert_eq(ot_supervisor_terminate_child(sup, "d"), -ENOENT);
    ot_assert_eq(ot_supervisor_restart_child(sup, "d", &q), -ENOENT);
    ot_assert_eq(ot_supervisor_delete_child(sup, "nope"), -ENOENT);
    ev_expect("start:d stop:d start:d stop:d ");
}

OT_TEST(supervisor, a_failing_restart_is_retried_and_shows_restarting, .timeout = 60) {
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_PERMANENT, OT_PERMANENT);
    ot_sup_flags f = {.strategy = OT_ONE_FOR_ONE, .max_restarts = 1000000, .max_seconds = 1};
    ot_pid sup;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), 0);
    B.fail_next = 1;
    ot_pid b = pid_of(sup, "b");
    kill_and_wait(b, TAG_CRASH);
    int st = -1;
    for (int i = 0; i < 1000 && st != OT_CHILD_RESTARTING; i++)
        st = state_of(sup, "b");
    ot_assert_eq(st, OT_CHILD_RESTARTING);
    ot_pid q;
    ot_assert_eq(ot_supervisor_restart_child(sup, "b", &q), -EINPROGRESS);
    ot_assert_eq(ot_supervisor_delete_child(sup, "b"), -EINPROGRESS);
    B.fail_next = 0;
    wait_restarted(sup, "b", b);
    ot_assert_eq(state_of(sup, "b"), OT_CHILD_RUNNING);
}

/* ---- auto_shutdown, strangers, parents, names ------------------------------------------ */

OT_TEST(supervisor, auto_shutdown_any_and_all_significant, .timeout = 60) {
    ot_trap_exit(true);
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_TRANSIENT, OT_TEMPORARY);
    cs[1].significant = cs[2].significant = true;
    ot_sup_flags f = {.auto_shutdown = OT_AUTO_SHUTDOWN_ALL_SIGNIFICANT};
    ot_pid sup;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), 0);
    kill_and_wait(pid_of(sup, "b"), TAG_NORMAL);
    ot_sleep(50);
    ot_assert(ot_is_alive(sup)); /* c is still there */
    ev_reset();
    ot_send(pid_of(sup, "c"), TAG_NORMAL, NULL, 0);
    ot_msg *m = ot_receive_tag(OT_TAG_EXIT, WAIT_MS);
    ot_assert(m && ((ot_exit_msg *)ot_msg_data(m))->reason.kind == OT_SHUTDOWN);
    ot_msg_free(m);
    ev_expect("stop:a ");
    three(cs, OT_PERMANENT, OT_TRANSIENT, OT_TEMPORARY);
    cs[1].significant = cs[2].significant = true;
    f.auto_shutdown = OT_AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), 0);
    ev_reset();
    ot_send(pid_of(sup, "c"), TAG_NORMAL, NULL, 0);
    m = ot_receive_tag(OT_TAG_EXIT, WAIT_MS);
    ot_assert(m && ((ot_exit_msg *)ot_msg_data(m))->pid.v == sup.v);
    ot_msg_free(m);
    ev_expect("stop:b stop:a ");
    /* significant needs auto_shutdown and a non-permanent restart */
    f.auto_shutdown = OT_AUTO_SHUTDOWN_NEVER;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), -EINVAL);
    cs[1].significant = false;
    cs[2].significant = false;
    cs[0].significant = true;
    f.auto_shutdown = OT_AUTO_SHUTDOWN_ANY_SIGNIFICANT;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), -EINVAL);
}

static void stranger(void *arg) {
    ot_assert_eq(ot_exit(*(ot_pid *)arg, OT_REASON(OT_SHUTDOWN)), 0);
}

OT_TEST(supervisor, ignores_a_shutdown_exit_from_a_stranger, .timeout = 60) {
    static ot_pid sup;
    sup = start3(OT_ONE_FOR_ONE);
    wait_down(ot_spawn(stranger, &sup));
    ot_sleep(50);
    ot_assert(ot_is_alive(sup));
    ev_expect("start:a start:b start:c ");
}

static void parent_proc(void *arg) {
    ot_pid *out = arg;
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_PERMANENT, OT_PERMANENT);
    ot_sup_flags f = {0};
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, out), 0);
    ot_receive_tag(TAG_CRASH, OT_INFINITY);
    ot_exit_self(OT_REASON(OT_SHUTDOWN));
}

OT_TEST(supervisor, its_parent_s_exit_stops_it_with_the_same_reason, .timeout = 60) {
    static ot_pid sup;
    ev_reset();
    ot_pid parent = ot_spawn(parent_proc, &sup);
    while (!sup.v)
        ot_sleep(1);
    ot_ref mon = ot_monitor(sup);
    ot_send(parent, TAG_CRASH, NULL, 0);
    ot_msg *m = ot_receive_ref(mon, WAIT_MS);
    ot_assert(m != NULL);
    ot_assert_eq(((ot_down_msg *)ot_msg_data(m))->reason.kind, OT_SHUTDOWN);
    ot_msg_free(m);
    ev_expect("start:a start:b start:c stop:c stop:b stop:a ");
}

OT_TEST(supervisor, a_local_name_is_taken_and_released, .timeout = 60) {
    ot_trap_exit(true);
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_PERMANENT, OT_PERMANENT);
    ot_sup_flags f = {0};
    ot_start_opts o = {.name = OT_NAME_LOCAL("top_sup")};
    ot_pid sup, other;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, &o, &sup), 0);
    ot_assert_eq(ot_whereis("top_sup").v, sup.v);
    ot_assert_eq(ot_supervisor_start_link(&f, NULL, 0, &o, &other), -EEXIST);
    ot_assert_eq(other.v, sup.v);
    ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_NORMAL), WAIT_MS), 0);
    ot_assert_eq(ot_whereis("top_sup").v, 0);
}

/* ---- DynamicSupervisor --------------------------------------------------------------- */

static int start_extra(void *extra, void *arg, ot_pid *out) {
    struct wcfg *w = arg;
    event("extra:%s ", (const char *)extra);
    return start_worker(w, out);
}

OT_TEST(dynsup, start_limit_terminate_restart_and_extra_arguments, .timeout = 60) {
    static struct wcfg w1 = {.id = "x"};
    ot_dynsup_opts d = {.max_children = 3, .has_extra = true, .extra = "room"};
    ot_pid sup;
    ot_assert_eq(ot_dynsup_start_link(&d, NULL, &sup), 0);
    ot_child_spec c = {.start_extra = start_extra, .arg = &w1, .restart = OT_PERMANENT};
    ot_pid p[4];
    ev_reset();
    for (int i = 0; i < 3; i++)
        ot_assert_eq(ot_dynsup_start_child(sup, &c, &p[i]), 0);
    ot_assert_eq(ot_dynsup_start_child(sup, &c, &p[3]), -EAGAIN);
    ev_expect("extra:room start:x extra:room start:x extra:room start:x ");
    ot_child_counts k;
    ot_assert_eq(ot_dynsup_count_children(sup, &k), 0);
    ot_assert_eq(k.specs, 3);
    ot_assert_eq(k.active, 3);
    ot_assert_eq(ot_dynsup_terminate_child(sup, p[1]), 0);
    ot_assert(!ot_is_alive(p[1]));
    ot_assert_eq(ot_dynsup_terminate_child(sup, p[1]), -ENOENT);
    ot_assert_eq(ot_dynsup_terminate_child(sup, ot_self()), -ENOENT);
    /* a crashed permanent child comes back with a new pid */
    kill_and_wait(p[0], TAG_CRASH);
    ot_child_info in[4];
    size_t n = 0;
    for (int i = 0; i < 400; i++) {
        ot_assert_eq(ot_dynsup_which_children(sup, in, 4, &n), 0);
        if (n == 2 && in[0].pid.v != p[0].v && in[1].pid.v != p[0].v && in[0].pid.v &&
            in[1].pid.v)
            break;
        ot_sleep(5);
    }
    ot_assert_eq(n, 2);
    ot_assert_eq(in[0].id[0], 0);
    ot_assert(in[0].pid.v != p[0].v && in[1].pid.v != p[0].v);
    /* a temporary child that exits is gone */
    c.restart = OT_TEMPORARY;
    ot_assert_eq(ot_dynsup_start_child(sup, &c, &p[3]), 0);
    kill_and_wait(p[3], TAG_CRASH);
    ot_sleep(20);
    ot_assert_eq(ot_dynsup_count_children(sup, &k), 0);
    ot_assert_eq(k.specs, 2);
    /* an extra-arguments supervisor needs start_extra */
    ot_child_spec plain = {.start = start_worker, .arg = &w1};
    ot_assert_eq(ot_dynsup_start_child(sup, &plain, &p[3]), -EINVAL);
}

OT_TEST(dynsup, its_own_intensity, .timeout = 60) {
    ot_trap_exit(true);
    static struct wcfg w = {.id = "y"};
    ot_dynsup_opts d = {.max_restarts = 2, .max_seconds = 5};
    ot_pid sup;
    ot_assert_eq(ot_dynsup_start_link(&d, NULL, &sup), 0);
    ot_child_spec c = {.start = start_worker, .arg = &w};
    ot_pid p, other;
    ot_assert_eq(ot_dynsup_start_child(sup, &c, &p), 0);
    ot_assert_eq(ot_dynsup_start_child(sup, &c, &other), 0);
    for (int i = 0; i < 3; i++) {
        ot_child_info in[2];
        size_t n = 0;
        for (int j = 0; j < 400; j++) {
            ot_assert_eq(ot_dynsup_which_children(sup, in, 2, &n), 0);
            if (n == 2 && in[0].pid.v && in[1].pid.v)
                break;
            ot_sleep(5);
        }
        p = in[0].pid.v == other.v ? in[1].pid : in[0].pid;
        ot_send(p, TAG_CRASH, NULL, 0);
        if (i < 2)
            wait_down(p);
    }
    ot_msg *m = ot_receive_tag(OT_TAG_EXIT, WAIT_MS);
    ot_assert(m != NULL);
    ot_assert_eq(((ot_exit_msg *)ot_msg_data(m))->pid.v, sup.v);
    ot_assert_eq(((ot_exit_msg *)ot_msg_data(m))->reason.kind, OT_SHUTDOWN);
    ot_msg_free(m);
    ot_assert(!ot_is_alive(other));
}

/* ---- bad input -------------------------------------------------------------------------- */

static void call_from_foreign(void *arg) {
    (void)arg;
}

OT_TEST(supervisor, bad_input, .timeout = 60) {
    (void)call_from_foreign;
    ot_child_spec cs[3];
    three(cs, OT_PERMANENT, OT_PERMANENT, OT_PERMANENT);
    ot_sup_flags f = {0};
    ot_pid sup;
    ot_assert_eq(ot_supervisor_start_link(NULL, cs, 3, NULL, &sup), -EINVAL);
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, NULL), -EINVAL);
    ot_sup_flags bad = {.strategy = 7};
    ot_assert_eq(ot_supervisor_start_link(&bad, cs, 3, NULL, &sup), -EINVAL);
    bad = (ot_sup_flags){.max_restarts = -1, .max_seconds = 5};
    ot_assert_eq(ot_supervisor_start_link(&bad, cs, 3, NULL, &sup), -EINVAL);
    cs[2].id = "a";
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), -EINVAL); /* duplicate */
    char longid[OT_CHILD_ID_MAX + 8];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    cs[2].id = longid;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), -ENAMETOOLONG);
    cs[2].id = "c";
    cs[2].start = NULL;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), -EINVAL);
    cs[2].start = start_worker;
    cs[2].shutdown = -7;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), -EINVAL);
    cs[2].shutdown = 0;
    ot_assert_eq(ot_supervisor_start_link(&f, cs, 3, NULL, &sup), 0);
    /* calls to what is not a supervisor, or is dead */
    ot_pid w = pid_of(sup, "a");
    ot_child_counts k;
    ot_assert_eq(ot_supervisor_count_children(w, &k), -ENOTSUP);
    ot_assert_eq(ot_supervisor_terminate_child(sup, NULL), -EINVAL);
    ot_assert_eq(ot_supervisor_terminate_child(sup, longid), -ENAMETOOLONG);
    ot_assert_eq(ot_supervisor_count_children(ot_self(), &k), -EDEADLK);
    ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_NORMAL), WAIT_MS), 0);
    ot_assert_eq(ot_supervisor_count_children(sup, &k), -ESRCH);
    ot_assert_eq(ot_supervisor_count_children(OT_NOPID, &k), -ESRCH);
    ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_NORMAL), WAIT_MS), -ESRCH);
}
