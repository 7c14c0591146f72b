/* Tests of sending and receiving (otter/process.h): the documented results of
 * bad input (dead, stale, unknown and null pids, NULL payloads, oversize
 * payloads, a NULL match function), copy semantics and the fields of a
 * received message, selective receive (ot_receive_match, ot_receive_tag)
 * leaving non-matching messages in arrival order, ot_receive_ref finding a
 * reply behind 100,000 unrelated messages while inspecting at most two
 * (ot__mbox_scans, runtime/ext.h), per-pair send order across
 * schedulers, and foreign threads sending and receiving. Every check is an
 * exact value, count or order. */
#include <otter/testing.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/ext.h"

enum { TAG_A = OT_TAG_USER + 1, TAG_B, TAG_GO, TAG_DONE, TAG_REQ, TAG_REPLY_U, TAG_SEQ };

static ot_msg *recv_or_fail(int64_t ms) {
    ot_msg *m = ot_receive(ms);
    ot_assert(m != NULL, "(no message within %lld ms)", (long long)ms);
    return m;
}

static uint32_t u32_of(const ot_msg *m) {
    uint32_t v;
    memcpy(&v, ot_msg_data(m), sizeof v);
    return v;
}

static void wait_dead(ot_pid p) {
    for (int i = 0; i < 5000 && ot_is_alive(p); i++)
        ot_sleep(1);
    ot_assert(!ot_is_alive(p));
}

static void return_at_once(void *arg) {
    (void)arg;
}

/* ---- bad input ------------------------------------------------------------------ */

OT_TEST(msg, bad_input, .timeout = 60) {
    ot_pid self = ot_self();
    char small[16] = "x";

    /* a dead process: send/2 succeeds and drops the message */
    ot_pid dead = ot_spawn(return_at_once, NULL);
    ot_assert(dead.v != 0);
    wait_dead(dead);
    ot_assert_eq(ot_send(dead, TAG_A, small, sizeof small), 0);

    ot_assert_eq(ot_send(self, TAG_A, NULL, 4), -EINVAL);
    ot_assert_eq(ot_send(self, TAG_A, small, OT_MSG_MAX + 1), -EMSGSIZE);
    ot_assert_eq(ot_send(self, TAG_A, NULL, OT_MSG_MAX + 1), -EMSGSIZE);
    ot_assert_eq(ot_send((ot_pid){.v = 0xdead00000000beefull}, TAG_A, small, 1), -ESRCH);
    ot_assert_eq(ot_send(OT_NOPID, TAG_A, small, 1), -ESRCH);
    ot_assert_eq(ot_send_ref(self, TAG_A, OT_NOREF, NULL, 1), -EINVAL);

    /* none of the refused sends left anything behind */
    errno = 0;
    ot_assert(ot_receive(0) == NULL);
    ot_assert_eq(errno, ETIMEDOUT);

    errno = 0;
    ot_assert(ot_receive_match(NULL, NULL, 0) == NULL);
    ot_assert_eq(errno, EINVAL);

    /* NULL with size 0 is an empty message, not an error */
    ot_assert_eq(ot_send(self, TAG_B, NULL, 0), 0);
    ot_msg *m = recv_or_fail(1000);
    ot_assert_eq(m->tag, TAG_B);
    ot_assert_eq(m->size, 0);
    ot_assert_eq(m->from.v, self.v);
    ot_msg_free(m);
    ot_msg_free(NULL); /* documented no-op */

    /* the runtime keeps working */
    uint32_t v = 77;
    ot_assert_eq(ot_send(self, TAG_A, &v, sizeof v), 0);
    m = recv_or_fail(1000);
    ot_assert_eq(u32_of(m), 77);
    ot_msg_free(m);
}

static void wait_forever_then_report(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    ot_msg *m = ot_receive(200);
    uint32_t got = m ? m->tag : 0;
    if (m)
        ot_msg_free(m);
    ot_send(parent, TAG_DONE, &got, sizeof got);
}

/* A pid whose slot was reused by a newer process: the old pid is dead, a send
 * to it returns 0, and the newer occupant never sees the message. */
OT_TEST(msg, stale_pid_does_not_reach_new_occupant, .timeout = 60) {
    ot_pid self = ot_self();
    ot_pid old = ot_spawn(return_at_once, NULL);
    wait_dead(old);
    ot_pid fresh = OT_NOPID;
    /* the freed slot is on top of the free list: find the reuse */
    int n = 0;
    for (; n < 64; n++) {
        ot_pid p = ot_spawn(wait_forever_then_report, &self);
        ot_assert(p.v != 0);
        if ((uint32_t)p.v == (uint32_t)old.v) {
            fresh = p;
            break;
        }
    }
    ot_assert(fresh.v != 0, "(the freed slot was not reused within 64 spawns)");
    ot_assert(fresh.v != old.v);
    ot_assert_eq(ot_send(old, TAG_A, NULL, 0), 0);
    ot_assert(!ot_is_alive(old));
    ot_assert(ot_is_alive(fresh));
    int done = 0, tagged = 0;
    while (done < n + 1) {
        ot_msg *m = recv_or_fail(5000);
        ot_assert_eq(m->tag, TAG_DONE);
        if (m->from.v == fresh.v)
            ot_assert_eq(u32_of(m), 0); /* it timed out: nothing reached it */
        tagged += u32_of(m) != 0;
        done++;
        ot_msg_free(m);
    }
    ot_assert_eq(tagged, 0);
}

/* ---- copies and fields ---------------------------------------------------------- */

static void echo_all(void *arg) {
    (void)arg;
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        if (m->tag == TAG_DONE) {
            ot_msg_free(m);
            return;
        }
        ot_send_ref(m->from, m->tag, m->ref, ot_msg_data(m), m->size);
        ot_msg_free(m);
    }
}

OT_TEST(msg, payload_is_copied, .timeout = 60) {
    ot_pid self = ot_self();
    ot_pid echo = ot_spawn(echo_all, NULL);
    size_t big = 1u << 20;
    unsigned char *buf = malloc(big);
    for (size_t i = 0; i < big; i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    ot_ref r = ot_make_ref();
    ot_assert_eq(ot_send_ref(echo, TAG_REQ, r, buf, big), 0);
    memset(buf, 0, big); /* the sent copy must not change */
    ot_msg *m = ot_receive_ref(r, 5000);
    ot_assert(m != NULL);
    ot_assert_eq(m->tag, TAG_REQ);
    ot_assert_eq(m->size, big);
    ot_assert_eq(m->from.v, echo.v);
    ot_assert_eq(m->ref.v, r.v);
    const unsigned char *d = ot_msg_data(m);
    size_t bad = 0;
    for (size_t i = 0; i < big; i++)
        bad += d[i] != (unsigned char)(i * 31 + 7);
    ot_assert_eq(bad, 0);
    ot_msg_free(m);
    free(buf);
    ot_send(echo, TAG_DONE, NULL, 0);
    (void)self;
}

/* ---- selective receive -------------------------------------------------------------- */

static bool value_is(const ot_msg *m, void *arg) {
    return m->size == 4 && u32_of(m) == *(uint32_t *)arg;
}

OT_TEST(msg, selective_receive_keeps_order, .timeout = 60) {
    ot_pid self = ot_self();
    /* 0..19, tags alternating A (even) and B (odd) */
    for (uint32_t i = 0; i < 20; i++)
        ot_assert_eq(ot_send(self, (i & 1) ? TAG_B : TAG_A, &i, sizeof i), 0);

    uint32_t want = 13;
    ot_msg *m = ot_receive_match(value_is, &want, 0);
    ot_assert(m != NULL);
    ot_assert_eq(u32_of(m), 13);
    ot_msg_free(m);

    m = ot_receive_tag(TAG_B, 0); /* the oldest B */
    ot_assert(m != NULL);
    ot_assert_eq(u32_of(m), 1);
    ot_msg_free(m);

    want = 99; /* no match: times out and leaves everything */
    errno = 0;
    ot_assert(ot_receive_match(value_is, &want, 20) == NULL);
    ot_assert_eq(errno, ETIMEDOUT);
    errno = 0;
    ot_assert(ot_receive_tag(TAG_GO, 0) == NULL);
    ot_assert_eq(errno, ETIMEDOUT);

    m = ot_receive_tag(TAG_A, 0);
    ot_assert_eq(u32_of(m), 0);
    ot_msg_free(m);

    /* a message arriving while a selective receive waits is matched, and the
     * ones it skipped stay where they were */
    uint32_t late = 1000;
    ot_ref t = ot_send_after(self, 20, TAG_GO, &late, sizeof late);
    ot_assert(t.v != 0);
    m = ot_receive_tag(TAG_GO, 5000);
    ot_assert(m != NULL);
    ot_assert_eq(u32_of(m), 1000);
    ot_msg_free(m);

    uint32_t expect[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        m = ot_receive(0);
        ot_assert(m != NULL, "(message %zu missing)", i);
        ot_assert_eq(u32_of(m), expect[i]);
        ot_assert_eq(m->tag, (expect[i] & 1) ? TAG_B : TAG_A);
        ot_msg_free(m);
    }
    ot_assert(ot_receive(0) == NULL);
}

/* ---- the receive mark --------------------------------------------------------------- */

#ifdef OT_SANITIZE
#define UNRELATED 20000
#else
#define UNRELATED 100000
#endif

static void flood(void *arg) {
    ot_pid to = *(ot_pid *)arg;
    for (uint32_t i = 0; i < UNRELATED; i++)
        ot_send(to, TAG_SEQ, &i, sizeof i);
    ot_send(to, TAG_DONE, NULL, 0);
}

OT_TEST(msg, receive_ref_skips_old_mail, .timeout = 60) {
    ot_pid self = ot_self();
    ot_pid echo = ot_spawn(echo_all, NULL);
    ot_spawn(flood, &self);
    ot_msg *m = ot_receive_tag(TAG_DONE, 30000);
    ot_assert(m != NULL);
    ot_msg_free(m);

    /* a call: the reply is found without looking at the old mail */
    uint64_t worst = 0;
    for (int round = 0; round < 10; round++) {
        ot_ref r = ot_make_ref();
        uint32_t v = (uint32_t)round;
        ot_assert_eq(ot_send_ref(echo, TAG_REPLY_U, r, &v, sizeof v), 0);
        uint64_t s0 = ot__mbox_scans();
        m = ot_receive_ref(r, 5000);
        uint64_t ds = ot__mbox_scans() - s0;
        ot_assert(m != NULL);
        ot_assert_eq(m->ref.v, r.v);
        ot_assert_eq(u32_of(m), round);
        ot_msg_free(m);
        if (ds > worst)
            worst = ds;
        ot_assert(ds <= 2, "(scanned %llu messages)", (unsigned long long)ds);
    }

    /* the mark survives the removal of the message it points at */
    ot_ref r = ot_make_ref();
    uint32_t last = UNRELATED - 1;
    m = ot_receive_match(value_is, &last, 0); /* the newest unrelated message */
    ot_assert(m != NULL);
    ot_msg_free(m);
    uint32_t v = 4242;
    ot_send_ref(echo, TAG_REPLY_U, r, &v, sizeof v);
    uint64_t s0 = ot__mbox_scans();
    m = ot_receive_ref(r, 5000);
    ot_assert(m != NULL);
    ot_assert_eq(u32_of(m), 4242);
    ot_msg_free(m);
    ot_assert(ot__mbox_scans() - s0 <= 2, "(scanned %llu)",
              (unsigned long long)(ot__mbox_scans() - s0));

    /* a ref made before a newer one is still found (by a full scan) */
    ot_ref older = ot_make_ref();
    ot_ref newer = ot_make_ref();
    v = 1;
    ot_send_ref(echo, TAG_REPLY_U, older, &v, sizeof v);
    v = 2;
    ot_send_ref(echo, TAG_REPLY_U, newer, &v, sizeof v);
    m = ot_receive_ref(older, 5000);
    ot_assert(m != NULL);
    ot_assert_eq(u32_of(m), 1);
    ot_msg_free(m);
    m = ot_receive_ref(newer, 5000);
    ot_assert(m != NULL);
    ot_assert_eq(u32_of(m), 2);
    ot_msg_free(m);

    /* the unrelated mail is all there, in order, minus the one taken */
    for (uint32_t i = 0; i < UNRELATED - 1; i++) {
        m = ot_receive(0);
        ot_assert(m != NULL, "(message %u missing)", i);
        ot_assert_eq(m->tag, TAG_SEQ);
        ot_assert_eq(u32_of(m), i);
        ot_msg_free(m);
    }
    ot_assert(ot_receive(0) == NULL);
    ot_send(echo, TAG_DONE, NULL, 0);
    cr_log_info("receive_ref behind %d messages: at most %llu scanned", UNRELATED,
                (unsigned long long)worst);
}

/* ---- order per sender ----------------------------------------------------------------- */

#ifdef OT_SANITIZE
#define ORDER_N 20000
#else
#define ORDER_N 200000
#endif

struct seq_msg {
    uint32_t sender;
    uint32_t seq;
};

struct order_arg {
    ot_pid to;
    uint32_t id;
};

static void order_sender(void *arg) {
    struct order_arg *a = arg;
    for (uint32_t i = 0; i < ORDER_N; i++) {
        struct seq_msg s = {a->id, i};
        ot_assert_eq(ot_send(a->to, TAG_SEQ, &s, sizeof s), 0);
        if ((i & 1023) == 0)
            ot_yield();
    }
}

static void order_receiver(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    uint32_t next[4] = {0};
    for (uint32_t n = 0; n < 4u * ORDER_N; n++) {
        ot_msg *m = ot_receive(30000);
        ot_assert(m != NULL, "(stalled after %u messages)", n);
        struct seq_msg s;
        memcpy(&s, ot_msg_data(m), sizeof s);
        ot_assert(s.sender < 4);
        ot_assert_eq(s.seq, next[s.sender]);
        next[s.sender]++;
        ot_msg_free(m);
    }
    ot_assert(ot_receive(50) == NULL);
    ot_send(parent, TAG_DONE, next, sizeof next);
}

/* Four senders (two bound to each scheduler, two free to migrate) to one
 * receiver on another scheduler: each sender's messages arrive in send
 * order, none lost or repeated. */
OT_TEST(msg, order_per_sender_across_schedulers, .timeout = 120) {
    ot_pid self = ot_self();
    unsigned ns = ot_schedulers();
    ot_spawn_opts ro = {.scheduler = (int)(ns - 1), .scheduler_set = true, .bind = true};
    ot_pid rx = ot_spawn_opt(order_receiver, &self, &ro);
    ot_assert(rx.v != 0);
    struct order_arg args[4];
    for (uint32_t i = 0; i < 4; i++) {
        args[i] = (struct order_arg){rx, i};
        ot_spawn_opts so = {.scheduler = (int)(i % ns), .scheduler_set = true, .bind = i < 2};
        ot_assert(ot_spawn_opt(order_sender, &args[i], &so).v != 0);
    }
    ot_msg *m = ot_receive_tag(TAG_DONE, 100000);
    ot_assert(m != NULL);
    uint32_t next[4];
    memcpy(next, ot_msg_data(m), sizeof next);
    for (int i = 0; i < 4; i++)
        ot_assert_eq(next[i], ORDER_N);
    ot_msg_free(m);
}

/* ---- foreign threads ------------------------------------------------------------------ */

struct foreign_arg {
    ot_pid echo;
    int rounds;
    int ok;
    int64_t timeout_elapsed_ms;
    int timeout_errno;
    int done; /* set last, with release: the test polls it */
};

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void foreign_body(struct foreign_arg *a) {
    for (int i = 0; i < a->rounds; i++) {
        ot_ref r = ot_make_ref();
        uint32_t x = (uint32_t)i;
        if (ot_send_ref(a->echo, TAG_REPLY_U, r, &x, sizeof x) != 0)
            return;
        ot_msg *m = ot_receive_ref(r, 5000);
        if (!m)
            return;
        bool good = m->from.v == a->echo.v && m->size == 4 && u32_of(m) == x;
        ot_msg_free(m);
        if (!good)
            return;
        a->ok++;
    }
    int64_t t0 = mono_ms();
    errno = 0;
    ot_msg *m = ot_receive(30);
    a->timeout_errno = m ? -1 : errno;
    a->timeout_elapsed_ms = mono_ms() - t0;
    if (m)
        ot_msg_free(m);
}

static void *foreign_main(void *v) {
    struct foreign_arg *a = v;
    foreign_body(a);
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

OT_TEST(msg, foreign_thread_send_and_receive, .timeout = 60) {
    struct foreign_arg a = {.echo = ot_spawn(echo_all, NULL), .rounds = 1000};
    pthread_t th;
    ot_assert_eq(pthread_create(&th, NULL, foreign_main, &a), 0);
    /* joining blocks this scheduler thread: poll instead */
    while (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE))
        ot_sleep(5);
    pthread_join(th, NULL);
    ot_assert_eq(a.ok, 1000);
    ot_assert_eq(a.timeout_errno, ETIMEDOUT);
    ot_assert(a.timeout_elapsed_ms >= 30, "(%lld ms)", (long long)a.timeout_elapsed_ms);
    ot_send(a.echo, TAG_DONE, NULL, 0);
}
