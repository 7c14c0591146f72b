/* Supervision and tasks checked against what OTP 25 and Elixir 1.14 really
 * do (each case was run on erl/elixir first; the comment above a test says
 * what they answered): the places where Otter's first version differed. */
#include <otter/testing.h>
#include <otter/supervisor.h>
#include <otter/task.h>

#include <string.h>

#include "support/sup_events.h"

#define WAIT_MS 20000

/* ---- restart intensity counts whole seconds, as OTP's add_restart ---------- */

static volatile int64_t last_start_ms;

static void crashy(void *arg) {
    (void)arg;
    ot_msg *m = ot_receive(OT_INFINITY);
    ot_msg_free(m);
    ot_exit_self(OT_REASON(OT_ERROR));
}

static int start_crashy(void *arg, ot_pid *out) {
    (void)arg;
    last_start_ms = ot_now_ms();
    ot_spawn_opts o = {.link = true};
    *out = ot_spawn_opt(crashy, NULL, &o);
    return out->v ? 0 : -errno;
}

static ot_pid only_child(ot_pid sup) {
    ot_child_info in[1];
    size_t n = 0;
    ot_assert_eq(ot_supervisor_which_children(sup, in, 1, &n), 0);
    ot_assert_eq(n, 1u);
    return in[0].pid;
}

/* erl: intensity 1, period 1; a crash at 0.1 s into a second and another
 * 1.5 s later (in the next second) takes the supervisor down (OTP keeps a
 * restart while Now - Then =< Period, in whole seconds); 2.05 s later it
 * does not. Otter counted milliseconds and dropped the first restart at
 * 1,000 ms, so the supervisor lived on. */
OT_TEST(sup_otp, intensity_window_is_whole_seconds_inclusive, .timeout = 60) {
    ot_trap_exit(true);
    ot_child_spec cs[1] = {{.id = "c", .start = start_crashy, .restart = OT_PERMANENT}};
    ot_sup_flags f = {.strategy = OT_ONE_FOR_ONE, .max_restarts = 1, .max_seconds = 1};
    for (int attempt = 0; attempt < 20; attempt++) {
        ot_pid sup;
        ot_assert_eq(ot_supervisor_start_link(&f, cs, 1, NULL, &sup), 0);
        while (ot_now_ms() % 1000 > 200) /* early in a second */
            ot_sleep(5);
        ot_pid c = only_child(sup);
        int64_t before = last_start_ms;
        ot_send(c, TAG_CRASH, NULL, 0);
        while (last_start_ms == before) /* the restart, counted at second k */
            ot_sleep(2);
        int64_t k = last_start_ms / 1000;
        while (ot_now_ms() < last_start_ms + 1050)
            ot_sleep(10);
        ot_ref mon = ot_monitor(sup);
        before = last_start_ms;
        ot_send(only_child(sup), TAG_CRASH, NULL, 0);
        ot_msg *d = ot_receive_ref(mon, 3000);
        if (!d) { /* still alive: only right if the restart fell in second k + 2 */
            ot_assert(last_start_ms != before);
            ot_assert(last_start_ms / 1000 > k + 1,
                      "a restart %lld ms after the first, in the next second, did not count",
                      (long long)(last_start_ms - before));
            ot_demonitor(mon, OT_DEMONITOR_FLUSH);
            ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_SHUTDOWN), WAIT_MS), 0);
            ot_msg_free(ot_receive_tag(OT_TAG_EXIT, WAIT_MS));
            continue; /* the machine was too slow for this second: again */
        }
        ot_assert_eq(((ot_down_msg *)ot_msg_data(d))->reason.kind, OT_SHUTDOWN);
        ot_msg_free(d);
        ot_msg_free(ot_receive_tag(OT_TAG_EXIT, WAIT_MS));
        return;
    }
    ot_assert(false, "no attempt landed its second crash in the next second");
}

/* ---- Task.shutdown's nil is only the stop it asked for -------------------- */

static int exits_with(void *arg, ot_buf *out) {
    (void)out;
    ot_exit_self(OT_REASON((int)(intptr_t)arg));
}

static ot_reason reason_of_dead(ot_task *t) {
    ot_ref mon = ot_monitor(t->pid); /* waits for it to be gone; t's own DOWN stays queued */
    ot_msg *d = ot_receive_ref(mon, WAIT_MS);
    ot_assert(d != NULL);
    ot_reason r = ((ot_down_msg *)ot_msg_data(d))->reason;
    ot_msg_free(d);
    return r;
}

/* elixir 1.14 (Process.flag(:trap_exit, true) in the caller):
 *   task exited :shutdown by itself, then Task.shutdown(t)              -> nil
 *   task exited :shutdown by itself, then Task.shutdown(t, :brutal_kill) -> {:exit, :shutdown}
 *   task exited :killed by itself,   then Task.shutdown(t)              -> {:exit, :killed}
 *   task exited :killed by itself,   then Task.shutdown(t, :brutal_kill) -> nil
 * Otter answered nil (0) for all four. */
OT_TEST(sup_otp, task_shutdown_nil_only_for_the_reason_asked, .timeout = 60) {
    ot_trap_exit(true);
    struct {
        int kind;
        int64_t how;
        int rc;
    } cases[] = {{OT_SHUTDOWN, 1000, 0},
                 {OT_SHUTDOWN, OT_BRUTAL_KILL, -ECONNRESET},
                 {OT_KILLED, 1000, -ECONNRESET},
                 {OT_KILLED, OT_BRUTAL_KILL, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ot_task t;
        ot_assert_eq(ot_task_async(exits_with, (void *)(intptr_t)cases[i].kind, &t), 0);
        ot_assert_eq(reason_of_dead(&t).kind, cases[i].kind);
        ot_msg *r = (ot_msg *)1;
        int rc = ot_task_shutdown(&t, cases[i].how, &r);
        ot_assert(rc == cases[i].rc, "case %zu: %d, want %d", i, rc, cases[i].rc);
        ot_assert(r == NULL);
        if (cases[i].rc)
            ot_assert_eq(t.reason.kind, cases[i].kind);
        ot_msg_free(ot_receive_tag(OT_TAG_EXIT, WAIT_MS));
    }
}

/* ---- a stream that exits on a timeout takes its tasks with it -------------- */

static int start_task_sup(void *arg, ot_pid *out) {
    (void)arg;
    return ot_task_sup_start_link(NULL, NULL, out);
}

static int item_or_hang(void *arg, ot_buf *out) {
    const ot_buf *item = arg;
    if (((const char *)item->data)[0] == 'h')
        ot_msg_free(ot_receive(OT_INFINITY)); /* never answers */
    *out = (ot_buf){item->data, item->len};
    return 0;
}

static int two_items(void *state, ot_buf *item) {
    int *i = state;
    if (*i >= 2)
        return 0;
    *item = (ot_buf){*i == 0 ? "ok" : "hang", *i == 0 ? 2 : 4};
    ++*i;
    return 1;
}

static int ignore_item(const ot_stream_item *r, void *arg) {
    (void)r;
    (void)arg;
    return 0;
}

static void stream_caller(void *arg) {
    int i = 0;
    ot_stream in = {two_items, &i};
    ot_stream_opts o = {.timeout_ms = 100};
    ot_task_sup_async_stream_nolink(*(ot_pid *)arg, &in, item_or_hang, &o, ignore_item, NULL);
    ot_exit_self(OT_REASON(OT_NORMAL)); /* not reached: the timeout exits */
}

/* elixir 1.14: Task.Supervisor.async_stream_nolink(sup, [1, 2], f, timeout: 100)
 * with f hanging on 2 exits the caller with {:timeout, {Task.Supervised,
 * :stream, [100]}} and Task.Supervisor.children(sup) is [] afterwards. Otter
 * left the hanging task running under the supervisor for ever. */
OT_TEST(sup_otp, stream_timeout_exit_kills_its_nolink_tasks, .timeout = 60) {
    ot_child_spec c = {.id = "task_sup", .start = start_task_sup, .type = OT_SUPERVISOR};
    ot_pid sup = ot_start_supervised(&c);
    ot_assert(sup.v != 0);
    ot_ref mon;
    ot_spawn_opts so = {.monitor = true, .monitor_ref = &mon};
    ot_pid p = ot_spawn_opt(stream_caller, &sup, &so);
    ot_assert(p.v != 0);
    ot_msg *d = ot_receive_ref(mon, WAIT_MS);
    ot_assert(d != NULL);
    ot_reason why = ((ot_down_msg *)ot_msg_data(d))->reason;
    ot_msg_free(d);
    ot_assert_eq(why.kind, OT_TIMEOUT);
    ot_assert(strcmp(why.text, "Task.async_stream") == 0);
    size_t n = 1;
    ot_pid kids[4];
    for (int i = 0; i < WAIT_MS / 10; i++) { /* the kill is asynchronous */
        ot_assert_eq(ot_task_sup_children(sup, kids, 4, &n), 0);
        if (n == 0)
            break;
        ot_sleep(10);
    }
    ot_assert(n == 0, "%zu task(s) of the timed-out stream still running", n);
}

/* ---- a huge shutdown time waits, under a DynamicSupervisor too ------------- */

static _Atomic int slow_stops;

static void slow_to_stop(void *arg) {
    (void)arg;
    ot_trap_exit(true);
    ot_msg_free(ot_receive_tag(OT_TAG_EXIT, OT_INFINITY));
    ot_sleep(50); /* its clean-up */
    atomic_fetch_add(&slow_stops, 1);
    ot_exit_self(OT_REASON(OT_SHUTDOWN));
}

static int start_slow_to_stop(void *arg, ot_pid *out) {
    (void)arg;
    ot_spawn_opts o = {.link = true};
    *out = ot_spawn_opt(slow_to_stop, NULL, &o);
    return out->v ? 0 : -errno;
}

/* A DynamicSupervisor stops its children together, each against its own
 * deadline, now + shutdown: with shutdown INT64_MAX that sum overflowed into
 * the past and the child was killed at once, before its clean-up. */
OT_TEST(sup_otp, dynsup_child_with_a_huge_shutdown_is_waited_for, .timeout = 60) {
    ot_trap_exit(true);
    ot_pid sup, kid;
    ot_assert_eq(ot_dynsup_start_link(NULL, NULL, &sup), 0);
    ot_child_spec c = {.start = start_slow_to_stop, .shutdown = INT64_MAX};
    ot_assert_eq(ot_dynsup_start_child(sup, &c, &kid), 0);
    ot_ref mon = ot_monitor(kid);
    ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_SHUTDOWN), WAIT_MS), 0);
    ot_msg *d = ot_receive_ref(mon, WAIT_MS);
    ot_assert(d != NULL);
    ot_assert_eq(((ot_down_msg *)ot_msg_data(d))->reason.kind, OT_SHUTDOWN);
    ot_msg_free(d);
    ot_assert_eq(slow_stops, 1);
}
