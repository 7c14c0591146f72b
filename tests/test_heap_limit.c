/* Per-process heap limits (issue 10 item 4; BEAM's max_heap_size):
 * ot_spawn_opts.max_heap_bytes bounds what a process holds, its heap
 * (process_info's heap_bytes) plus the messages it received and has not
 * freed (unfreed_bytes). A process that passes it ends with reason
 * OT_HEAP_LIMIT ("heap_limit"), which its monitors see in their DOWN, its
 * trapping links in their EXIT and its other links as their own exit
 * reason; 1,000 busy neighbours (100 under TSan; allocating, messaging,
 * yielding) all live on and finish their work; a limit of 0 means none; the reason formats and
 * may be sent with ot_exit. */
#include <otter/testing.h>

#include <stdio.h>
#include <string.h>

enum { TAG_GO = OT_TAG_USER + 1, TAG_GOT, TAG_DONE, TAG_WORK };
/* Under TSan 100 neighbours: every switch between stackful processes is a
 * TSan fiber switch, and 1,000 busy ones made the grower wait past the
 * 30 s for its DOWN (the spawns alone took 49 s). */
#ifdef OT_TSAN
enum { ENV_HDR = 56, NEIGHBOURS = 100 };
#else
enum { ENV_HDR = 56, NEIGHBOURS = 1000 };
#endif
#define WAIT_MS 30000

static bool is_down_for(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_DOWN && m->ref.v == *(uint64_t *)arg;
}
static bool is_exit_from(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_EXIT && m->from.v == *(uint64_t *)arg;
}

static ot_down_msg expect_down(ot_ref r) {
    ot_down_msg d = {0};
    ot_msg *m = ot_receive_match(is_down_for, &r.v, WAIT_MS);
    ot_assert(m != NULL, "(no DOWN)");
    memcpy(&d, ot_msg_data(m), sizeof d);
    ot_msg_free(m);
    return d;
}

/* ---- a heap that grows past the limit ------------------------------------------------ */

static void grower(void *arg) {
    (void)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, WAIT_MS));
    for (int i = 0; i < 100000; i++) {
        char *b = ot_alloc(16 << 10);
        ot_assert(b != NULL);
        memset(b, 1, 16 << 10);
        if (i % 16 == 15)
            ot_yield();
    }
    ot_exit_self(ot_reason_error("grew 1.6 GB without being stopped"));
}

struct pair {
    ot_pid parent, grower;
};

static void linked_bystander(void *arg) {
    struct pair *pp = arg;
    ot_assert_eq(ot_link(pp->grower), 0);
    ot_send(pp->parent, TAG_DONE, NULL, 0);
    ot_receive_tag(TAG_GO, OT_INFINITY); /* ends by the link */
}

/* A neighbour: allocates and frees, sends to itself, yields, until told to stop. */
static void neighbour(void *arg) {
    (void)arg;
    uint64_t n = 0;
    for (;;) {
        void *b = ot_alloc(512);
        ot_assert(b != NULL);
        memset(b, 2, 512);
        ot_free(b);
        ot_send(ot_self(), TAG_WORK, &n, sizeof n);
        ot_msg_free(ot_receive_tag(TAG_WORK, 1000));
        n++;
        ot_msg *stop = ot_receive_tag(TAG_GO, 0);
        if (stop) {
            ot_msg_free(stop);
            return;
        }
        ot_yield();
    }
}

OT_TEST(heap_limit, killed_with_its_own_reason_and_nobody_else, .timeout = 300) {
    ot_trap_exit(true);
    ot_pid me = ot_self();
    ot_pid nb[NEIGHBOURS];
    ot_ref nbr[NEIGHBOURS];
    for (int i = 0; i < NEIGHBOURS; i++) {
        ot_spawn_opts o = {.monitor = true, .monitor_ref = &nbr[i], .max_heap_bytes = 1 << 20};
        nb[i] = ot_spawn_opt(neighbour, NULL, &o);
        ot_assert(nb[i].v != 0);
    }
    ot_ref r;
    ot_spawn_opts go = {.link = true, .monitor = true, .monitor_ref = &r,
                        .max_heap_bytes = 4 << 20};
    ot_pid g = ot_spawn_opt(grower, NULL, &go);
    ot_assert(g.v != 0);
    ot_ref rb;
    ot_spawn_opts bo = {.monitor = true, .monitor_ref = &rb};
    struct pair pp = {me, g};
    ot_assert(ot_spawn_opt(linked_bystander, &pp, &bo).v != 0);
    ot_msg_free(ot_receive_tag(TAG_DONE, WAIT_MS));
    ot_send(g, TAG_GO, NULL, 0);
    ot_down_msg d = expect_down(r);
    ot_assert_eq(d.pid.v, g.v);
    ot_assert_eq(d.reason.kind, OT_HEAP_LIMIT);
    ot_msg *x = ot_receive_match(is_exit_from, &g.v, WAIT_MS);
    ot_assert(x != NULL, "(no EXIT from the linked grower)");
    ot_exit_msg xe;
    memcpy(&xe, ot_msg_data(x), sizeof xe);
    ot_msg_free(x);
    ot_assert_eq(xe.reason.kind, OT_HEAP_LIMIT);
    /* a bystander linked to it (not trapping) dies with the same reason */
    ot_assert_eq(expect_down(rb).reason.kind, OT_HEAP_LIMIT);
    /* no neighbour died */
    for (int i = 0; i < NEIGHBOURS; i++)
        ot_assert(ot_is_alive(nb[i]), "(neighbour %d died)", i);
    for (int i = 0; i < NEIGHBOURS; i++)
        ot_send(nb[i], TAG_GO, NULL, 0);
    int collateral = 0;
    for (int i = 0; i < NEIGHBOURS; i++)
        collateral += expect_down(nbr[i]).reason.kind != OT_NORMAL;
    ot_assert_eq(collateral, 0);
    char buf[64];
    ot_assert_eq(ot_reason_format(d.reason, buf, sizeof buf), 0);
    ot_assert(strcmp(buf, "heap_limit") == 0, "(formatted %s)", buf);
}

/* ---- received messages it never freed count too ---------------------------------------- */

static void hoarder(void *arg) {
    ot_pid parent = *(ot_pid *)arg;
    for (uint32_t i = 0;; i++) {
        (void)ot_receive_tag(TAG_WORK, WAIT_MS); /* never freed */
        ot_send(parent, TAG_GOT, &i, sizeof i);
    }
}

OT_TEST(heap_limit, unfreed_messages_count, .timeout = 60) {
    ot_pid me = ot_self();
    ot_ref r;
    /* room for ten 1000-byte messages and their envelopes, not eleven */
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &r,
                       .max_heap_bytes = 10 * (ENV_HDR + 1000) + 500};
    ot_pid h = ot_spawn_opt(hoarder, &me, &o);
    char big[1000] = {0};
    for (int i = 0; i < 20; i++)
        ot_send(h, TAG_WORK, big, sizeof big);
    ot_down_msg d = expect_down(r);
    ot_assert_eq(d.reason.kind, OT_HEAP_LIMIT);
    uint32_t got = 0;
    ot_msg *m;
    while ((m = ot_receive_tag(TAG_GOT, 0))) {
        got++;
        ot_msg_free(m);
    }
    ot_assert_eq(got, 10); /* the eleventh receive ended it */
}

/* ---- no limit, and the reason through ot_exit ------------------------------------------ */

static void big_but_unlimited(void *arg) {
    (void)arg;
    for (int i = 0; i < 64; i++)
        ot_assert(ot_alloc(1 << 20) != NULL);
}

static void wait_go(void *arg) {
    (void)arg;
    ot_msg_free(ot_receive_tag(TAG_GO, OT_INFINITY));
}

OT_TEST(heap_limit, zero_is_no_limit_and_reason_can_be_sent, .timeout = 60) {
    ot_ref r;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &r, .max_heap_bytes = 0};
    ot_assert(ot_spawn_opt(big_but_unlimited, NULL, &o).v != 0);
    ot_assert_eq(expect_down(r).reason.kind, OT_NORMAL);
    ot_pid w = ot_spawn_opt(wait_go, NULL, &o);
    ot_assert_eq(ot_exit(w, OT_REASON(OT_HEAP_LIMIT)), 0);
    ot_assert_eq(expect_down(r).reason.kind, OT_HEAP_LIMIT);
    ot_assert_eq(ot_exit(w, (ot_reason){.kind = OT_HEAP_LIMIT + 1}), -EINVAL);
}
