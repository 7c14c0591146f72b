/* Link and monitor requests are never lost (issue 10 item 6): exactly one
 * DOWN per monitor and one EXIT per link, also when the target exits while a
 * push ahead of the request is half done (a sender between its exchange and
 * its link store: made to happen here with the runtime's push-pause hook, a
 * foreign thread held there until the target is exiting), and when the maps
 * that hold links and monitors cannot grow (an injected allocation failure):
 * the requester's own map failing makes ot_link -ENOMEM, ot_monitor
 * OT_NOREF/ENOMEM and a linked or monitored spawn OT_NOPID/ENOMEM with
 * nothing left behind; the target's map failing answers the request at once
 * with an EXIT or DOWN {error,"enomem"}, and nothing more later. */
#include <otter/testing.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* white-box hooks (runtime/proc/mbox.c, map.c) */
extern void (*_Atomic ot__mq_push_pause)(void);
extern _Atomic int ot__map_fail_next;

enum { TAG_GO = OT_TAG_USER + 1, TAG_READY };
#define WAIT_MS 20000

static bool is_down_for(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_DOWN && m->ref.v == *(uint64_t *)arg;
}
static bool is_exit_from(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_EXIT && m->from.v == *(uint64_t *)arg;
}

static ot_down_msg expect_down(ot_ref r, int64_t ms) {
    ot_down_msg d = {0};
    ot_msg *m = ot_receive_match(is_down_for, &r.v, ms);
    ot_assert(m != NULL, "(no DOWN)");
    memcpy(&d, ot_msg_data(m), sizeof d);
    ot_msg_free(m);
    return d;
}

static ot_exit_msg expect_exit(ot_pid from, int64_t ms) {
    ot_exit_msg x = {0};
    ot_msg *m = ot_receive_match(is_exit_from, &from.v, ms);
    ot_assert(m != NULL, "(no EXIT)");
    memcpy(&x, ot_msg_data(m), sizeof x);
    ot_msg_free(m);
    return x;
}

/* ---- a half-finished push ahead of the request ------------------------------------------ */

static pthread_t paused_thread;
static _Atomic int pause_armed, paused;
static _Atomic uint64_t pause_target;

/* Holds the armed thread between its exchange and its link store until the
 * target is exiting, then a little longer. */
static void hold_push(void) {
    if (!atomic_load(&pause_armed) || !pthread_equal(pthread_self(), paused_thread))
        return;
    atomic_store(&pause_armed, 0);
    atomic_store(&paused, 1);
    while (ot_is_alive((ot_pid){atomic_load(&pause_target)}))
        usleep(1000);
    usleep(50000);
}

static _Atomic int pusher_go;

static void *half_pusher(void *arg) {
    ot_pid target = *(ot_pid *)arg;
    while (!atomic_load(&pusher_go)) /* until paused_thread names this thread */
        usleep(100);
    /* an exit signal with reason normal from a stranger: ignored by the
     * target, and always a push onto its MPSC queue */
    ot_exit(target, OT_REASON(OT_NORMAL));
    return NULL;
}

static void sleep_then_exit(void *arg) {
    (void)arg;
    ot_sleep(300); /* its mailbox is stuck behind the half push: it exits on its own */
}

OT_TEST(signals_lost, requests_behind_a_half_finished_push, .timeout = 60) {
    ot_trap_exit(true);
    ot_pid x = ot_spawn(sleep_then_exit, NULL);
    atomic_store(&pause_target, x.v);
    atomic_store(&ot__mq_push_pause, hold_push);
    pthread_t t;
    atomic_store(&paused, 0);
    atomic_store(&pusher_go, 0);
    ot_assert_eq(pthread_create(&t, NULL, half_pusher, &x), 0);
    paused_thread = t;
    atomic_store(&pause_armed, 1);
    atomic_store(&pusher_go, 1);
    for (int i = 0; i < 10000 && !atomic_load(&paused); i++)
        ot_sleep(1);
    ot_assert(atomic_load(&paused), "(the pusher was not held)");
    ot_ref r = ot_monitor(x); /* queued behind the half push */
    ot_assert(r.v != 0);
    ot_assert_eq(ot_link(x), 0);
    ot_down_msg d = expect_down(r, 5000);
    ot_assert_eq(d.pid.v, x.v);
    ot_assert_eq(d.reason.kind, OT_NORMAL); /* its own reason, not a late noproc */
    ot_exit_msg e = expect_exit(x, 5000);
    ot_assert_eq(e.reason.kind, OT_NORMAL);
    pthread_join(t, NULL);
    atomic_store(&ot__mq_push_pause, NULL);
    /* exactly one of each */
    ot_assert(ot_receive_match(is_down_for, &r.v, 200) == NULL, "(a second DOWN)");
    ot_assert(ot_receive_match(is_exit_from, &x.v, 0) == NULL, "(a second EXIT)");
}

/* ---- maps that cannot grow ------------------------------------------------------------- */

static void wait_go(void *arg) {
    (void)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
}

static void wait_parked(ot_pid p) {
    struct ot_process_info in;
    for (int i = 0; i < 10000; i++) {
        ot_assert_eq(ot_process_info(p, &in), 0);
        if (in.status == OT_STATUS_WAITING)
            return;
        ot_sleep(1);
    }
    ot_assert(false, "(never parked)");
}

OT_TEST(signals_lost, target_map_cannot_grow, .timeout = 60) {
    ot_trap_exit(true);
    /* this process's own maps get their first arrays now */
    ot_pid d = ot_spawn(wait_go, NULL);
    ot_ref rd = ot_monitor(d);
    ot_assert_eq(ot_link(d), 0);

    ot_pid x = ot_spawn(wait_go, NULL);
    wait_parked(x);
    atomic_store(&ot__map_fail_next, 1); /* x's monitored map: its first array */
    ot_ref r = ot_monitor(x);
    ot_assert(r.v != 0);
    ot_down_msg dm = expect_down(r, 5000);
    ot_assert_eq(atomic_load(&ot__map_fail_next), 0);
    ot_assert_eq(dm.pid.v, x.v);
    ot_assert_eq(dm.reason.kind, OT_ERROR);
    ot_assert(strcmp(dm.reason.text, "enomem") == 0, "(reason text %s)", dm.reason.text);
    ot_assert(ot_is_alive(x));

    ot_pid y = ot_spawn(wait_go, NULL);
    wait_parked(y);
    atomic_store(&ot__map_fail_next, 1); /* y's links map */
    ot_assert_eq(ot_link(y), 0);
    ot_exit_msg ex = expect_exit(y, 5000);
    ot_assert_eq(ex.reason.kind, OT_ERROR);
    ot_assert(strcmp(ex.reason.text, "enomem") == 0);
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_links, 1); /* d only: the link to y is gone on both sides */

    /* when they end, nothing more comes for the failed requests */
    ot_send(x, TAG_GO, NULL, 0);
    ot_send(y, TAG_GO, NULL, 0);
    while (ot_is_alive(x) || ot_is_alive(y))
        ot_sleep(1);
    ot_assert(ot_receive_match(is_down_for, &r.v, 200) == NULL, "(a second DOWN)");
    ot_assert(ot_receive_match(is_exit_from, &y.v, 0) == NULL, "(a second EXIT)");
    ot_send(d, TAG_GO, NULL, 0);
    ot_assert_eq(expect_down(rd, WAIT_MS).reason.kind, OT_NORMAL);
    ot_assert_eq(expect_exit(d, WAIT_MS).reason.kind, OT_NORMAL);
}

static void requester(void *arg) {
    (void)arg;
    ot_pid x = ot_spawn(wait_go, NULL);
    /* this fresh process's own maps have no array yet: each first put grows */
    atomic_store(&ot__map_fail_next, 1);
    ot_assert_eq(ot_link(x), -ENOMEM);
    atomic_store(&ot__map_fail_next, 1);
    errno = 0;
    ot_assert_eq(ot_monitor(x).v, 0);
    ot_assert_eq(errno, ENOMEM);
    atomic_store(&ot__map_fail_next, 1);
    ot_assert_eq(ot_monitor(ot_self()).v, 0);
    size_t before = ot_processes(NULL, 0);
    ot_spawn_opts lo = {.link = true};
    atomic_store(&ot__map_fail_next, 1);
    errno = 0;
    ot_assert_eq(ot_spawn_opt(wait_go, NULL, &lo).v, 0);
    ot_assert_eq(errno, ENOMEM);
    ot_ref mr;
    ot_spawn_opts mo = {.monitor = true, .monitor_ref = &mr};
    atomic_store(&ot__map_fail_next, 1); /* the child's monitored map */
    errno = 0;
    ot_assert_eq(ot_spawn_opt(wait_go, NULL, &mo).v, 0);
    ot_assert_eq(errno, ENOMEM);
    atomic_store(&ot__map_fail_next, 0);
    ot_assert_eq(ot_processes(NULL, 0), before);
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_links, 0);
    ot_assert_eq(in.n_monitors, 0);
    /* and with memory back, all of it works */
    ot_assert_eq(ot_link(x), 0);
    ot_ref r = ot_monitor(x);
    ot_assert(r.v != 0);
    ot_send(x, TAG_GO, NULL, 0);
    ot_assert_eq(expect_down(r, WAIT_MS).reason.kind, OT_NORMAL);
}

OT_TEST(signals_lost, requester_map_cannot_grow, .timeout = 60) {
    ot_ref r;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &r};
    ot_pid p = ot_spawn_opt(requester, NULL, &o);
    ot_assert(p.v != 0);
    ot_assert_eq(expect_down(r, WAIT_MS).reason.kind, OT_NORMAL);
}
