/* The application tree: ot_application_start from a process and from a
 * foreign thread, one tree at a time, and its stop in reverse start order
 * (each child within its shutdown time) by ot_application_stop, by ot_stop
 * (before anything else is killed), by ot_run's end, and by a signal the
 * program asked for; what is left of the runtime after each. */
#include <otter/supervisor.h>
#include <otter/testing.h>

#include "support/sup_events.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static struct wcfg A = {.id = "a"}, B = {.id = "b"}, C = {.id = "c"};

static void specs(ot_child_spec *cs) {
    cs[0] = worker_spec(&A, OT_PERMANENT);
    cs[1] = worker_spec(&B, OT_PERMANENT);
    cs[2] = worker_spec(&C, OT_PERMANENT);
}

OT_TEST(application, start_once_and_stop_in_reverse, .timeout = 60) {
    ot_child_spec cs[3];
    specs(cs);
    ot_sup_flags f = {0};
    ot_pid top, again;
    ev_reset();
    ot_assert_eq(ot_application_start(&f, cs, 3, NULL, &top), 0);
    ot_assert_eq(ot_application_sup().v, top.v);
    ot_assert_eq(ot_application_start(&f, cs, 3, NULL, &again), -EALREADY);
    ot_assert_eq(again.v, top.v);
    ev_expect("start:a start:b start:c ");
    ot_assert_eq(ot_application_stop(), 0);
    ev_expect("start:a start:b start:c stop:c stop:b stop:a ");
    ot_assert(!ot_is_alive(top));
    ot_assert_eq(ot_application_sup().v, 0);
    ot_assert_eq(ot_application_stop(), -ESRCH);
    ot_assert_eq(ot_application_start(NULL, cs, 3, NULL, &top), -EINVAL);
}

static void exits_at_once(void *arg) {
    (void)arg; /* the tree has no parent: the starter's exit is nothing to it */
}

OT_TEST(application, the_tree_outlives_the_process_that_started_it, .timeout = 60) {
    ot_child_spec cs[3];
    specs(cs);
    ot_sup_flags f = {0};
    ot_pid top;
    ot_assert_eq(ot_application_start(&f, cs, 3, NULL, &top), 0);
    ot_ref m = ot_monitor(ot_spawn(exits_at_once, NULL));
    ot_msg_free(ot_receive_ref(m, 10000));
    ot_sleep(20);
    ot_assert(ot_is_alive(top));
    ot_assert_eq(ot_application_stop(), 0);
}

Test(application, ot_stop_stops_the_tree_first_from_a_foreign_thread, .timeout = 60) {
    cr_assert_eq(ot_start(NULL), 0);
    ot_child_spec cs[3];
    specs(cs);
    ot_sup_flags f = {0};
    ot_pid top;
    ev_reset();
    cr_assert_eq(ot_application_start(&f, cs, 3, NULL, &top), 0);
    cr_assert(top.v != 0);
    cr_assert_str_eq(ev_get(), "start:a start:b start:c ");
    cr_assert_eq(ot_stop(), 0);
    cr_assert_str_eq(ev_get(), "start:a start:b start:c stop:c stop:b stop:a ");
    /* and a new runtime starts a new tree */
    cr_assert_eq(ot_start(NULL), 0);
    ev_reset();
    cr_assert_eq(ot_application_start(&f, cs, 3, NULL, &top), 0);
    cr_assert_eq(ot_stop(), 0);
    cr_assert_str_eq(ev_get(), "start:a start:b start:c stop:c stop:b stop:a ");
    cr_assert_eq(ot_application_start(&f, cs, 3, NULL, &top), -ENOTCONN);
}

static void start_tree_and_return(void *arg) {
    (void)arg;
    ot_child_spec cs[3];
    specs(cs);
    ot_sup_flags f = {0};
    ot_pid top;
    ot_assert_eq(ot_application_start(&f, cs, 3, NULL, &top), 0);
}

Test(application, ot_run_s_end_stops_the_tree_in_order, .timeout = 60) {
    ev_reset();
    cr_assert_eq(ot_run(start_tree_and_return, NULL, NULL), 0);
    cr_assert_str_eq(ev_get(), "start:a start:b start:c stop:c stop:b stop:a ");
}

Test(application, a_signal_the_program_chose_stops_tree_and_runtime, .timeout = 60) {
    cr_assert_eq(ot_start(NULL), 0);
    ot_child_spec cs[3];
    specs(cs);
    ot_sup_flags f = {0};
    ot_pid top;
    ev_reset();
    cr_assert_eq(ot_application_start(&f, cs, 3, NULL, &top), 0);
    cr_assert_eq(ot_application_stop_on_signal(SIGKILL), -EINVAL);
    cr_assert_eq(ot_application_stop_on_signal(SIGSEGV), -EINVAL);
    cr_assert_eq(ot_application_stop_on_signal(SIGTERM), 0);
    kill(getpid(), SIGTERM);
    for (int i = 0; i < 10000 && ot_schedulers() != 0; i++)
        usleep(1000);
    cr_assert_eq(ot_schedulers(), 0, "the runtime still runs after SIGTERM");
    cr_assert_str_eq(ev_get(), "start:a start:b start:c stop:c stop:b stop:a ");
}

/* ---- callers that wait or die while another start runs ----------------------------- */

/* A child whose start takes a while (in the supervisor), so that the caller of
 * ot_application_start waits in receive meanwhile; it records the worker. */
static _Atomic uint64_t slow_worker;
static int slow_ms;

static int start_slow(void *arg, ot_pid *out) {
    ot_sleep(slow_ms);
    int rc = start_worker(arg, out);
    if (rc == 0)
        atomic_store(&slow_worker, out->v);
    return rc;
}

static struct wcfg S = {.id = "s"};

static ot_child_spec slow_spec(void) {
    ot_child_spec c = worker_spec(&S, OT_PERMANENT);
    c.start = start_slow;
    return c;
}

enum { TAG_RIVAL = OT_TAG_USER + 50 };
struct rival_out {
    int rc;
    ot_pid out;
};

static void rival(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    ot_sleep(50); /* the test's own start is under way by now */
    ot_child_spec c = slow_spec();
    ot_sup_flags f = {0};
    struct rival_out r;
    r.rc = ot_application_start(&f, &c, 1, NULL, &r.out);
    ot_send(parent, TAG_RIVAL, &r, sizeof r);
}

static void one_scheduler(void) { ot_test_config.schedulers = 1; }
static void default_schedulers(void) { ot_test_config.schedulers = 0; }

/* On one scheduler thread, a second caller arrives while the first waits for
 * its supervisor: it must wait its turn (and then find the tree), not block
 * the thread the first caller and the supervisor need. */
OT_TEST(application, a_second_start_waits_on_one_scheduler, .timeout = 60, .init = one_scheduler,
        .fini = default_schedulers) {
    ot_assert_eq(ot_schedulers(), 1);
    slow_ms = 200;
    ot_pid me = ot_self();
    ot_assert(ot_spawn(rival, &me).v != 0);
    ot_child_spec c = slow_spec();
    ot_sup_flags f = {0};
    ot_pid top;
    ot_assert_eq(ot_application_start(&f, &c, 1, NULL, &top), 0);
    ot_msg *m = ot_receive_tag(TAG_RIVAL, 10000);
    ot_assert(m != NULL, "the second caller never returned");
    struct rival_out r = *(struct rival_out *)ot_msg_data(m);
    ot_msg_free(m);
    ot_assert_eq(r.rc, -EALREADY);
    ot_assert_eq(r.out.v, top.v);
    ot_assert_eq(ot_application_stop(), 0);
    ot_assert(!ot_is_alive(top));
}

static void doomed_starter(void *arg) {
    (void)arg;
    ot_child_spec c = slow_spec();
    ot_sup_flags f = {0};
    ot_pid top;
    ot_application_start(&f, &c, 1, NULL, &top);
    ot_sleep(OT_INFINITY);
}

/* A caller killed while its start runs leaves no turn held: the next start
 * goes ahead (the killed caller's tree, which it never recorded, runs on
 * until ot_stop, as docs/API.md says). */
OT_TEST(application, a_starter_killed_mid_start_leaves_no_lock, .timeout = 60) {
    slow_ms = 300;
    atomic_store(&slow_worker, 0);
    ot_pid k = ot_spawn(doomed_starter, NULL);
    ot_assert(k.v != 0);
    ot_sleep(50);
    ot_assert_eq(ot_exit(k, OT_REASON(OT_KILL)), 0);
    ot_child_spec cs[3];
    specs(cs);
    ot_sup_flags f = {0};
    ot_pid top;
    ot_assert_eq(ot_application_start(&f, cs, 3, NULL, &top), 0);
    ot_assert_eq(ot_application_sup().v, top.v);
    ot_assert_eq(ot_application_stop(), 0);
    ot_assert(!ot_is_alive(top));
    ot_assert_eq(ot_application_sup().v, 0);
}
