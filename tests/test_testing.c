/* The test helpers: ot_start_supervised puts children under the running
 * test's supervisor, and when the body is done they are stopped in reverse
 * start order (each within its shutdown time) before the runtime stops,
 * whether the body passed or failed; duplicate ids and calls outside a test
 * are refused with their errno. */
#include <otter/supervisor.h>
#include <otter/testing.h>

#include "support/sup_events.h"

#include <string.h>

static struct wcfg A = {.id = "a"}, B = {.id = "b"}, C = {.id = "c"};

static void three_supervised(void *arg) {
    (void)arg;
    ot_child_spec a = worker_spec(&A, OT_PERMANENT), b = worker_spec(&B, OT_PERMANENT),
                  c = worker_spec(&C, OT_TEMPORARY);
    ot_pid pa = ot_start_supervised(&a);
    ot_assert(pa.v != 0);
    ot_assert(ot_start_supervised(&b).v != 0);
    ot_assert(ot_start_supervised(&c).v != 0);
    ot_assert_eq(ot_start_supervised(&a).v, 0);
    ot_assert_eq(errno, EEXIST);
    ot_assert(ot_is_alive(ot_test_supervisor()));
    /* a supervised child that crashes comes back, as in any supervisor */
    ot_ref mon = ot_monitor(pa);
    ot_send(pa, TAG_CRASH, NULL, 0);
    ot_msg_free(ot_receive_ref(mon, 10000));
    for (int i = 0; i < 2000; i++) {
        ot_child_info in[4];
        size_t n;
        ot_assert_eq(ot_supervisor_which_children(ot_test_supervisor(), in, 4, &n), 0);
        if (n == 3 && in[2].pid.v && in[2].pid.v != pa.v)
            break;
        ot_sleep(1);
    }
}

Test(testing, supervised_children_stop_in_reverse_when_the_body_ends, .timeout = 60) {
    ev_reset();
    cr_assert_eq(ot__test_run(three_supervised, NULL), 0);
    cr_assert_null(ot__test_failure(), "%s", ot__test_failure());
    cr_assert_str_eq(ev_get(), "start:a start:b start:c start:a stop:c stop:b stop:a ");
}

static void fails_after_starting(void *arg) {
    (void)arg;
    ot_child_spec a = worker_spec(&A, OT_PERMANENT), b = worker_spec(&B, OT_PERMANENT);
    ot_start_supervised(&a);
    ot_start_supervised(&b);
    ot_exit_self(ot_reason_error("the body failed"));
}

Test(testing, a_failing_body_still_stops_its_children_in_order, .timeout = 60) {
    ev_reset();
    cr_assert_eq(ot__test_run(fails_after_starting, NULL), -ECHILD);
    cr_assert_str_eq(ev_get(), "start:a start:b stop:b stop:a ");
}

Test(testing, without_a_runtime_there_is_no_test_supervisor) {
    ot_child_spec a = worker_spec(&A, OT_PERMANENT);
    errno = 0;
    cr_assert_eq(ot_start_supervised(&a).v, 0);
    cr_assert_eq(errno, ESRCH);
    cr_assert_eq(ot_test_supervisor().v, 0);
}

OT_TEST(testing, the_test_supervisor_is_started_by_the_first_call, .timeout = 60) {
    ot_assert_eq(ot_test_supervisor().v, 0);
    ot_assert_eq(ot_processes(NULL, 0), 1); /* the body alone: nothing else runs */
    static struct wcfg d = {.id = "d"};
    ot_child_spec cd = worker_spec(&d, OT_TEMPORARY);
    ot_assert(ot_start_supervised(&cd).v != 0);
    ot_pid sup = ot_test_supervisor();
    ot_assert(sup.v != 0);
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(sup, &in), 0);
    ot_assert(strcmp(in.behaviour, "supervisor") == 0);
    ot_child_counts k;
    ot_assert_eq(ot_supervisor_count_children(sup, &k), 0);
    ot_assert_eq(k.specs, 1);
    struct ot_process_info me;
    ot_assert_eq(ot_process_info(ot_self(), &me), 0);
    ot_assert_eq(me.n_links, 0); /* the body is not tied to its supervisor */
    ot_assert_eq(me.n_monitored_by, 0);
}
