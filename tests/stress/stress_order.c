/* Per-sender order across schedulers under the parking race: senders bound
 * to one scheduler stream numbered messages to receivers bound to the other,
 * which take each message with a blocking receive, so they park and unpark
 * all the time while messages keep coming. A receiver demands every
 * sender's exact next number. This is the window where a receiver has
 * published WAITING but still sees an earlier message of the sender in its
 * MPSC queue and is about to take itself back, and the sender's next
 * message wins its wake: that message must not overtake the earlier one
 * (before the fix in ot__deliver it did, about once in twenty runs of
 * stress_messages with more stealing, and here within a few runs). */
#include <otter/testing.h>

#include <string.h>

#ifdef OT_SANITIZE
#define PER_SENDER 20000u
#else
#define PER_SENDER 500000u
#endif
#define SENDERS 4u
#define RECEIVERS 4u

enum { TAG_SEQ = OT_TAG_USER + 1, TAG_DONE };

struct seqmsg {
    uint32_t sender, seq;
};

static ot_pid receivers[RECEIVERS];
static ot_pid parent;

static void receiver(void *arg) {
    (void)arg;
    uint32_t next[SENDERS] = {0};
    uint32_t bad = 0, got = 0, first_bad_sender = 0, first_bad_seq = 0, first_bad_want = 0;
    while (got < SENDERS * PER_SENDER) {
        ot_msg *m = ot_receive(30000);
        if (!m)
            break;
        struct seqmsg s;
        memcpy(&s, ot_msg_data(m), sizeof s);
        ot_msg_free(m);
        if (s.sender >= SENDERS || s.seq != next[s.sender]) {
            if (!bad) {
                first_bad_sender = s.sender;
                first_bad_seq = s.seq;
                first_bad_want = s.sender < SENDERS ? next[s.sender] : 0;
            }
            bad++;
        }
        if (s.sender < SENDERS)
            next[s.sender] = s.seq + 1;
        got++;
    }
    uint32_t r[5] = {got, bad, first_bad_sender, first_bad_seq, first_bad_want};
    ot_send(parent, TAG_DONE, r, sizeof r);
}

static void sender(void *arg) {
    uint32_t me = (uint32_t)(uintptr_t)arg;
    for (uint32_t q = 0; q < PER_SENDER; q++) {
        struct seqmsg s = {me, q};
        for (uint32_t r = 0; r < RECEIVERS; r++)
            ot_send(receivers[r], TAG_SEQ, &s, sizeof s);
    }
}

OT_TEST(stress_order, cross_scheduler_senders_and_parking_receivers, .timeout = 300) {
    unsigned ns = ot_schedulers();
    parent = ot_self();
    int rs = (int)(ns - 1), ss = 0; /* one scheduler each when there are two */
    for (uint32_t r = 0; r < RECEIVERS; r++) {
        ot_spawn_opts o = {.scheduler = rs, .scheduler_set = true, .bind = true};
        receivers[r] = ot_spawn_opt(receiver, NULL, &o);
        ot_assert(receivers[r].v != 0);
    }
    for (uint32_t s = 0; s < SENDERS; s++) {
        ot_spawn_opts o = {.scheduler = ss, .scheduler_set = true, .bind = true};
        ot_assert(ot_spawn_opt(sender, (void *)(uintptr_t)s, &o).v != 0);
    }
    for (uint32_t r = 0; r < RECEIVERS; r++) {
        ot_msg *m = ot_receive_tag(TAG_DONE, 120000);
        ot_assert(m != NULL, "(%u of %u receivers reported)", r, RECEIVERS);
        uint32_t rep[5];
        memcpy(rep, ot_msg_data(m), sizeof rep);
        ot_msg_free(m);
        ot_assert(rep[1] == 0, "(%u out of order; first: sender %u's %u where %u was due)", rep[1],
                  rep[2], rep[3], rep[4]);
        ot_assert_eq(rep[0], SENDERS * PER_SENDER);
    }
}
