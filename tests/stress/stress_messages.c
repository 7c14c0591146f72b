/* Message stress: N processes spread over every scheduler (unbound, so they
 * migrate) exchange M messages in all, each process sending to K fixed peers
 * and receiving from K. Every message carries (sender, peer slot, sequence,
 * check value); each receiver demands the exact next sequence number per
 * sender->receiver pair (so a lost, repeated or reordered message fails at
 * once), and the totals (count, sum and xor of check values) must equal what
 * was sent. Once with stackful processes (send in bursts, drain with
 * ot_receive(0), yield), once with handler processes (ot_spawn_handler: a
 * burst per self-addressed "more" message). Full size: 10,000 processes and
 * 10,000,000 messages; under ASan 1,000 and 500,000, under TSan 1,000 and
 * 200,000. */
#include <otter/testing.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(OT_TSAN)
/* every handler run makes a TSan fiber (5-10 ms): 500,000 took 124 s there */
#define NPROC 1000u
#define NMSG 200000u
#elif defined(OT_SANITIZE)
#define NPROC 1000u
#define NMSG 500000u
#else
#define NPROC 10000u
#define NMSG 10000000u
#endif
#define K 10u                       /* peers per process */
#define PER_PAIR (NMSG / NPROC / K) /* messages per sender->receiver pair */
#define BURST 32u

enum { TAG_DATA = OT_TAG_USER + 1, TAG_GO, TAG_MORE, TAG_REPORT };

struct data {
    uint32_t sender, slot, seq, pad;
    uint64_t check;
};

struct report {
    uint64_t count, sum, xr;
    uint32_t bad; /* protocol violations seen (order, sender, size) */
    uint32_t first_bad_seq, first_bad_want;
};

static uint32_t offs[K];
static ot_pid *pids;
static ot_pid coordinator;

static uint64_t mix(uint32_t s, uint32_t j, uint32_t q) {
    uint64_t x = ((uint64_t)s << 40) ^ ((uint64_t)j << 32) ^ q;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Per-process receiving state, shared by both kinds. */
struct rx {
    uint32_t me;
    uint32_t next[K];
    struct report r;
};

static void rx_take(struct rx *x, const ot_msg *m) {
    struct data d;
    if (m->tag != TAG_DATA || m->size != sizeof d) {
        x->r.bad++;
        return;
    }
    memcpy(&d, ot_msg_data(m), sizeof d);
    if (d.slot >= K || (d.sender + offs[d.slot]) % NPROC != x->me ||
        !ot_pid_eq(m->from, pids[d.sender]) || d.check != mix(d.sender, d.slot, d.seq)) {
        x->r.bad++;
        return;
    }
    if (d.seq != x->next[d.slot]) {
        if (!x->r.bad) {
            x->r.first_bad_seq = d.seq;
            x->r.first_bad_want = x->next[d.slot];
        }
        x->r.bad++;
    }
    x->next[d.slot] = d.seq + 1;
    x->r.count++;
    x->r.sum += d.check;
    x->r.xr ^= d.check;
}

static void send_one(uint32_t me, uint32_t n) {
    /* message n of this sender: pair slot n % K, sequence n / K */
    uint32_t j = n % K, q = n / K;
    struct data d = {me, j, q, 0, mix(me, j, q)};
    ot_send(pids[(me + offs[j]) % NPROC], TAG_DATA, &d, sizeof d);
}

static void check_totals(double t0) {
    struct report tot = {0};
    for (uint32_t i = 0; i < NPROC; i++) {
        ot_msg *m = ot_receive_tag(TAG_REPORT, 120000);
        ot_assert(m != NULL, "(%u of %u processes reported)", i, NPROC);
        struct report r;
        memcpy(&r, ot_msg_data(m), sizeof r);
        ot_msg_free(m);
        ot_assert(r.bad == 0, "(process reported %u violations, seq %u where %u was due)", r.bad,
                  r.first_bad_seq, r.first_bad_want);
        ot_assert_eq(r.count, (uint64_t)K * PER_PAIR);
        tot.count += r.count;
        tot.sum += r.sum;
        tot.xr ^= r.xr;
    }
    double t1 = now_s();
    uint64_t sum = 0, xr = 0;
    for (uint32_t s = 0; s < NPROC; s++)
        for (uint32_t n = 0; n < K * PER_PAIR; n++) {
            uint64_t c = mix(s, n % K, n / K);
            sum += c;
            xr ^= c;
        }
    ot_assert_eq(tot.count, (uint64_t)NPROC * K * PER_PAIR);
    ot_assert(tot.sum == sum && tot.xr == xr, "(checksums differ)");
    cr_log_info("%u processes, %llu messages over %u schedulers: %.2f s, %.2f M msg/s", NPROC,
                (unsigned long long)tot.count, ot_schedulers(), t1 - t0,
                (double)tot.count / (t1 - t0) / 1e6);
}

static void setup(void) {
    for (uint32_t j = 0; j < K; j++)
        offs[j] = 1 + j * (NPROC / K) + j; /* distinct, never 0 mod NPROC */
    pids = calloc(NPROC, sizeof *pids);
}

/* ---- stackful ----------------------------------------------------------------------- */

static void stackful_worker(void *arg) {
    struct rx x = {.me = (uint32_t)(uintptr_t)arg};
    ot_msg *m = ot_receive_tag(TAG_GO, OT_INFINITY);
    ot_msg_free(m);
    uint32_t total = K * PER_PAIR;
    for (uint32_t n = 0; n < total; n++) {
        send_one(x.me, n);
        if (n % BURST == BURST - 1) {
            while ((m = ot_receive(0))) {
                rx_take(&x, m);
                ot_msg_free(m);
            }
            ot_yield();
        }
    }
    while (x.r.count + x.r.bad < total) {
        m = ot_receive(60000);
        if (!m)
            break;
        rx_take(&x, m);
        ot_msg_free(m);
    }
    ot_send(coordinator, TAG_REPORT, &x.r, sizeof x.r);
}

OT_TEST(stress_messages, stackful, .timeout = 600) {
    setup();
    coordinator = ot_self();
    unsigned ns = ot_schedulers();
    double t0 = now_s();
    for (uint32_t i = 0; i < NPROC; i++) {
        ot_spawn_opts o = {.scheduler = (int)(i % ns), .scheduler_set = true};
        pids[i] = ot_spawn_opt(stackful_worker, (void *)(uintptr_t)i, &o);
        ot_assert(pids[i].v != 0);
    }
    for (uint32_t i = 0; i < NPROC; i++)
        ot_send(pids[i], TAG_GO, NULL, 0);
    check_totals(t0);
    free(pids);
}

/* ---- handlers ------------------------------------------------------------------------- */

struct hstate {
    struct rx x;
    uint32_t sent;
    bool reported;
};

static struct hstate *hs;

static int handler_worker(void *state, const ot_msg *m) {
    struct hstate *h = state;
    uint32_t total = K * PER_PAIR;
    if (m->tag == TAG_GO || m->tag == TAG_MORE) {
        for (uint32_t b = 0; b < BURST && h->sent < total; b++)
            send_one(h->x.me, h->sent++);
        if (h->sent < total)
            ot_send(pids[h->x.me], TAG_MORE, NULL, 0);
    } else {
        rx_take(&h->x, m);
    }
    if (!h->reported && h->sent == total && h->x.r.count + h->x.r.bad == total) {
        h->reported = true;
        ot_send(coordinator, TAG_REPORT, &h->x.r, sizeof h->x.r);
        return 1; /* done: end normally */
    }
    return 0;
}

OT_TEST(stress_messages, handlers, .timeout = 600) {
    setup();
    coordinator = ot_self();
    hs = calloc(NPROC, sizeof *hs);
    unsigned ns = ot_schedulers();
    double t0 = now_s();
    for (uint32_t i = 0; i < NPROC; i++) {
        hs[i].x.me = i;
        ot_spawn_opts o = {.scheduler = (int)(i % ns), .scheduler_set = true};
        pids[i] = ot_spawn_handler(handler_worker, &hs[i], &o);
        ot_assert(pids[i].v != 0);
    }
    for (uint32_t i = 0; i < NPROC; i++)
        ot_send(pids[i], TAG_GO, NULL, 0);
    check_totals(t0);
    free(hs);
    free(pids);
}
