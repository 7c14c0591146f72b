/* The life of a received message (issue 10 items 16 and 17). A second
 * ot_msg_free of the same message, or a free of a message the caller never
 * received, is refused: in debug and sanitizer builds the program aborts with
 * a report that names ot_msg_free (each runs in a forked child whose stderr
 * the test reads); with the abort off (release builds, or the test's switch)
 * the call does nothing, so the envelope never reaches a free list twice and
 * later mail is intact. ot_process_info counts received-but-unfreed messages
 * and their bytes exactly, for the process itself and from outside, and
 * message_queue_len counts what was sent and not yet received, at once,
 * also while the receiver has not run since. */
#include <otter/testing.h>

#include "support/child.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* white-box switches (runtime/proc/msg.c) */
extern int ot__msg_free_abort;
uint64_t ot__msg_bad_frees(void);

enum { TAG_A = OT_TAG_USER + 1, TAG_B, TAG_GO, TAG_READY };
enum { ENV_HDR = 56 }; /* the envelope header unfreed_bytes counts per message */

#define WAIT_MS 20000

/* ---- misuse aborts, in a child ---------------------------------------------------- */


static void expect_report(const struct child_result *r, const char *what) {
    cr_assert(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT,
              "child status %#x (want SIGABRT); it wrote:\n%s", r->status, r->out);
    cr_assert(strstr(r->out, "ot_msg_free") != NULL, "no report naming the call:\n%s", r->out);
    cr_assert(strstr(r->out, what) != NULL, "report lacks \"%s\":\n%s", what, r->out);
}

static void double_free_in_process(void *arg) {
    (void)arg;
    ot_send(ot_self(), TAG_A, "x", 1);
    ot_msg *m = ot_receive(1000);
    ot_msg_free(m);
    ot_msg_free(m); /* aborts here */
    ot_exit_self(ot_reason_error("second free returned"));
}

Test(msg_free, double_free_aborts_with_report, .timeout = 60) {
    struct child_result r;
    run_child(double_free_in_process, &r);
    expect_report(&r, "double ot_msg_free");
}

static void *foreign_double_free(void *arg) {
    ot_pid to = *(ot_pid *)arg;
    ot_send(to, TAG_A, NULL, 0); /* gives this thread a mailbox; the process answers */
    ot_msg *m = ot_receive_tag(TAG_B, WAIT_MS);
    ot_msg_free(m);
    ot_msg_free(m); /* aborts (under ASan its own use-after-free report comes first) */
    return NULL;
}

static void foreign_thread_double_free(void *arg) {
    (void)arg;
    ot_pid me = ot_self();
    pthread_t t;
    pthread_create(&t, NULL, foreign_double_free, &me);
    ot_msg *m = ot_receive_tag(TAG_A, WAIT_MS);
    ot_send(m->from, TAG_B, "z", 1);
    ot_msg_free(m);
    pthread_join(t, NULL);
    ot_exit_self(ot_reason_error("foreign double free returned"));
}

Test(msg_free, foreign_thread_double_free_aborts, .timeout = 60) {
    struct child_result r;
    run_child(foreign_thread_double_free, &r);
#if defined(OT_ASAN)
    /* the foreign envelope went back to malloc: ASan reports the read */
    cr_assert(strstr(r.out, "ot_msg_free") != NULL, "no report naming the call:\n%s", r.out);
    cr_assert(!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0);
#else
    expect_report(&r, "double ot_msg_free");
#endif
}

static void give_to_other(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    ot_msg *m = ot_receive_tag(TAG_A, WAIT_MS);
    /* hands its received message's pointer to the parent, which frees it:
     * a message belongs to the process that received it */
    ot_send(parent, TAG_READY, &m, sizeof m);
    ot_msg_free(ot_receive_tag(TAG_GO, WAIT_MS));
}

static void free_of_other_process_message(void *arg) {
    (void)arg;
    ot_pid me = ot_self();
    ot_pid c = ot_spawn(give_to_other, &me);
    ot_send(c, TAG_A, "x", 1);
    ot_msg *r = ot_receive_tag(TAG_READY, WAIT_MS);
    ot_msg *theirs;
    memcpy(&theirs, ot_msg_data(r), sizeof theirs);
    ot_msg_free(theirs); /* aborts: another process received it */
    ot_exit_self(ot_reason_error("free of another's message returned"));
}

Test(msg_free, free_of_another_process_message_aborts, .timeout = 60) {
    struct child_result r;
    run_child(free_of_other_process_message, &r);
    expect_report(&r, "another process received it");
}

/* ---- with the abort off: refused, and nothing else is hurt --------------------------- */

static void sink_n(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        ot_msg *m = ot_receive_tag(TAG_B, WAIT_MS);
        uint32_t v;
        memcpy(&v, ot_msg_data(m), sizeof v);
        sum += v == i;
        ot_msg_free(m);
    }
    ot_send(parent, TAG_READY, &sum, sizeof sum);
}

OT_TEST(msg_free, refused_double_free_keeps_mail_intact, .timeout = 60) {
    int old = ot__msg_free_abort;
    ot__msg_free_abort = 0;
    uint64_t bad0 = ot__msg_bad_frees();
    ot_send(ot_self(), TAG_A, "x", 1);
    ot_msg *m = ot_receive(1000);
    ot_assert(m != NULL);
    ot_msg_free(m);
    ot_msg_free(m); /* refused */
    ot_assert_eq(ot__msg_bad_frees() - bad0, 1);
    /* two later messages to this process do not share an envelope, and the
     * queue is not a cycle */
    ot_send(ot_self(), TAG_A, "1", 1);
    ot_send(ot_self(), TAG_A, "2", 1);
    ot_msg *a = ot_receive_tag(TAG_A, 1000), *b = ot_receive_tag(TAG_A, 1000);
    ot_assert(a != NULL && b != NULL && a != b);
    ot_assert_eq(*(char *)ot_msg_data(a), '1');
    ot_assert_eq(*(char *)ot_msg_data(b), '2');
    ot_assert(ot_receive(0) == NULL, "(a third message appeared: the queue is a cycle)");
    ot_msg_free(a);
    ot_msg_free(b);
    /* another process's mail, sent from here through the same envelope cache */
    ot_pid me = ot_self();
    ot_pid s = ot_spawn(sink_n, &me);
    for (uint32_t i = 0; i < 1000; i++)
        ot_send(s, TAG_B, &i, sizeof i);
    ot_msg *r = ot_receive_tag(TAG_READY, WAIT_MS);
    ot_assert(r != NULL);
    uint32_t sum;
    memcpy(&sum, ot_msg_data(r), sizeof sum);
    ot_assert_eq(sum, 1000);
    ot_msg_free(r);
    ot_assert_eq(ot__msg_bad_frees() - bad0, 1);
    ot__msg_free_abort = old;
}

/* ---- counting what is held, and what is queued --------------------------------------- */

static void wait_go(void *arg) {
    (void)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
}

OT_TEST(msg_free, unfreed_messages_are_counted, .timeout = 60) {
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.unfreed_messages, 0);
    ot_assert_eq(in.unfreed_bytes, 0);
    char payload[100] = {0};
    ot_msg *held[10];
    for (int i = 0; i < 10; i++)
        ot_send(ot_self(), TAG_A, payload, sizeof payload);
    ot_send(ot_self(), TAG_B, payload, 7);
    for (int i = 0; i < 10; i++)
        held[i] = ot_receive_tag(TAG_A, 1000);
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.unfreed_messages, 10);
    ot_assert_eq(in.unfreed_bytes, 10 * (ENV_HDR + 100));
    ot_assert_eq(in.message_queue_len, 1);
    ot_msg *b = ot_receive_tag(TAG_B, 1000);
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.unfreed_messages, 11);
    ot_assert_eq(in.unfreed_bytes, 10 * (ENV_HDR + 100) + ENV_HDR + 7);
    ot_assert_eq(in.message_queue_len, 0);
    ot_msg_free(b);
    for (int i = 0; i < 4; i++)
        ot_msg_free(held[i]);
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.unfreed_messages, 6);
    ot_assert_eq(in.unfreed_bytes, 6 * (ENV_HDR + 100));
    for (int i = 4; i < 10; i++)
        ot_msg_free(held[i]);
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.unfreed_messages, 0);
    ot_assert_eq(in.unfreed_bytes, 0);
}

static void hoarder(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    for (int i = 0; i < 25; i++)
        (void)ot_receive_tag(TAG_A, WAIT_MS); /* never freed: released at exit */
    ot_send(parent, TAG_READY, NULL, 0);
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
}

OT_TEST(msg_free, unfreed_messages_seen_from_outside, .timeout = 60) {
    ot_pid me = ot_self();
    ot_ref r;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &r};
    ot_pid h = ot_spawn_opt(hoarder, &me, &o);
    char big[1000] = {0};
    for (int i = 0; i < 25; i++)
        ot_send(h, TAG_A, big, sizeof big);
    ot_msg_free(ot_receive_tag(TAG_READY, WAIT_MS));
    struct ot_process_info in;
    for (int i = 0; i < 10000; i++) { /* until it parks in its last receive */
        ot_assert_eq(ot_process_info(h, &in), 0);
        if (in.status == OT_STATUS_WAITING)
            break;
        ot_sleep(1);
    }
    ot_assert_eq(in.unfreed_messages, 25);
    ot_assert_eq(in.unfreed_bytes, 25 * (ENV_HDR + 1000));
    ot_send(h, TAG_GO, NULL, 0);
    ot_msg *d = ot_receive_tag(OT_TAG_DOWN, WAIT_MS);
    ot_assert(d != NULL);
    ot_msg_free(d);
}

OT_TEST(msg_free, queue_len_counts_what_was_sent, .timeout = 60) {
    /* the receiver shares this scheduler and may not move: it cannot run
     * between the sends and the look, so nothing has drained its mailbox */
    ot_spawn_opts o = {.scheduler = ot_scheduler_id(), .scheduler_set = true, .bind = true};
    ot_pid p = ot_spawn_opt(wait_go, NULL, &o);
    struct ot_process_info in;
    for (int i = 0; i < 10000; i++) {
        ot_assert_eq(ot_process_info(p, &in), 0);
        if (in.status == OT_STATUS_WAITING)
            break;
        ot_sleep(1);
    }
    ot_assert_eq(in.status, OT_STATUS_WAITING);
    ot_assert_eq(in.message_queue_len, 0);
    for (int i = 0; i < 10; i++)
        ot_assert_eq(ot_send(p, TAG_A, &i, sizeof i), 0);
    ot_assert_eq(ot_process_info(p, &in), 0);
    ot_assert_eq(in.message_queue_len, 10);
    ot_assert_eq(in.unfreed_messages, 0);
    /* and after it ran: still 10 (it waits for TAG_GO only) */
    ot_sleep(20);
    ot_assert_eq(ot_process_info(p, &in), 0);
    ot_assert_eq(in.message_queue_len, 10);
    ot_send(p, TAG_GO, NULL, 0);
}
