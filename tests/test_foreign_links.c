/* Links and monitors on a foreign thread's pid (issue 10 item 9): a plain
 * thread that called ot_send or a receive has a pid, and a process may link
 * to it and monitor it. The pid "exits", with reason normal, when its thread
 * ends: a trapping linked process gets exactly one {'EXIT', Pid, normal}, a
 * monitor exactly one DOWN normal, also when the thread never received (so
 * never looked at the requests). Unlink and demonitor before the end leave
 * nothing; a monitor set after the end gets DOWN noproc at once, and a link
 * -ESRCH (or {'EXIT', Pid, noproc} when trapping); an exit signal does not
 * end a thread; ot_process_info sees the links and monitors it holds. */
#include <otter/testing.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

enum { TAG_PID = OT_TAG_USER + 1, TAG_GO };
#define WAIT_MS 20000

static bool is_down_for(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_DOWN && m->ref.v == *(uint64_t *)arg;
}
static bool is_exit_from(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_EXIT && m->from.v == *(uint64_t *)arg;
}

struct thr {
    ot_pid parent;
    bool receive; /* waits for TAG_GO (draining its mailbox) before it ends */
    pthread_t t;
};

static void *plain_thread(void *arg) {
    struct thr *th = arg;
    ot_send(th->parent, TAG_PID, NULL, 0); /* its pid is the message's from */
    if (th->receive) {
        ot_msg *m = ot_receive_tag(TAG_GO, WAIT_MS);
        ot_msg_free(m);
    } else {
        struct timespec ts = {0, 200 * 1000 * 1000}; /* ends without receiving */
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static ot_pid start_thread(struct thr *th, bool receive) {
    th->parent = ot_self();
    th->receive = receive;
    ot_assert_eq(pthread_create(&th->t, NULL, plain_thread, th), 0);
    ot_msg *m = ot_receive_tag(TAG_PID, WAIT_MS);
    ot_assert(m != NULL);
    ot_pid p = m->from;
    ot_msg_free(m);
    ot_assert(p.v != 0);
    return p;
}

static void one_down_one_exit(ot_pid p, ot_ref r) {
    ot_msg *m = ot_receive_match(is_down_for, &r.v, WAIT_MS);
    ot_assert(m != NULL, "(no DOWN for the foreign pid)");
    ot_down_msg d;
    memcpy(&d, ot_msg_data(m), sizeof d);
    ot_msg_free(m);
    ot_assert_eq(d.pid.v, p.v);
    ot_assert_eq(d.reason.kind, OT_NORMAL);
    m = ot_receive_match(is_exit_from, &p.v, WAIT_MS);
    ot_assert(m != NULL, "(no EXIT for the foreign pid)");
    ot_exit_msg x;
    memcpy(&x, ot_msg_data(m), sizeof x);
    ot_msg_free(m);
    ot_assert_eq(x.pid.v, p.v);
    ot_assert_eq(x.reason.kind, OT_NORMAL);
    ot_assert(ot_receive_match(is_down_for, &r.v, 200) == NULL, "(a second DOWN)");
    ot_assert(ot_receive_match(is_exit_from, &p.v, 0) == NULL, "(a second EXIT)");
}

OT_TEST(foreign_links, thread_end_fires_link_and_monitor, .timeout = 60) {
    ot_trap_exit(true);
    struct thr th;
    ot_pid p = start_thread(&th, true);
    ot_assert_eq(ot_link(p), 0);
    ot_ref r = ot_monitor(p);
    ot_assert(r.v != 0);
    /* an exit signal does not end a thread */
    ot_assert_eq(ot_exit(p, OT_REASON(OT_KILL)), 0);
    ot_send(p, TAG_GO, NULL, 0);
    one_down_one_exit(p, r);
    pthread_join(th.t, NULL);
    ot_assert(!ot_is_alive(p));
}

OT_TEST(foreign_links, requests_never_drained_still_fire, .timeout = 60) {
    ot_trap_exit(true);
    struct thr th;
    ot_pid p = start_thread(&th, false);
    ot_assert_eq(ot_link(p), 0);
    ot_ref r = ot_monitor(p);
    one_down_one_exit(p, r);
    pthread_join(th.t, NULL);
}

OT_TEST(foreign_links, unlink_demonitor_and_after_the_end, .timeout = 60) {
    ot_trap_exit(true);
    struct thr th;
    ot_pid p = start_thread(&th, true);
    ot_assert_eq(ot_link(p), 0);
    ot_ref r = ot_monitor(p);
    ot_ref r2 = ot_monitor(p);
    ot_assert_eq(ot_unlink(p), 0);
    ot_assert_eq(ot_demonitor(r, 0), 0);
    /* the thread sees the requests while it waits: process_info shows what it holds */
    struct ot_process_info in;
    for (int i = 0; i < 10000; i++) {
        ot_assert_eq(ot_process_info(p, &in), 0);
        if (in.n_monitored_by == 1 && in.n_links == 0)
            break;
        ot_sleep(1);
    }
    ot_assert_eq(in.n_monitored_by, 1);
    ot_assert_eq(in.n_links, 0);
    ot_send(p, TAG_GO, NULL, 0);
    ot_msg *m = ot_receive_match(is_down_for, &r2.v, WAIT_MS);
    ot_assert(m != NULL);
    ot_msg_free(m);
    pthread_join(th.t, NULL);
    ot_assert(ot_receive_match(is_down_for, &r.v, 200) == NULL, "(DOWN after demonitor)");
    ot_assert(ot_receive_match(is_exit_from, &p.v, 0) == NULL, "(EXIT after unlink)");
    /* after its end: noproc, as for a process */
    ot_ref r3 = ot_monitor(p);
    m = ot_receive_match(is_down_for, &r3.v, WAIT_MS);
    ot_assert(m != NULL);
    ot_down_msg d;
    memcpy(&d, ot_msg_data(m), sizeof d);
    ot_msg_free(m);
    ot_assert_eq(d.reason.kind, OT_NOPROC);
    ot_assert_eq(ot_link(p), 0); /* trapping: an EXIT noproc instead of -ESRCH */
    m = ot_receive_match(is_exit_from, &p.v, WAIT_MS);
    ot_assert(m != NULL);
    ot_exit_msg x;
    memcpy(&x, ot_msg_data(m), sizeof x);
    ot_msg_free(m);
    ot_assert_eq(x.reason.kind, OT_NOPROC);
    ot_trap_exit(false);
    ot_assert_eq(ot_link(p), -ESRCH);
}
