/* Exit signals and links against Erlang/OTP's documented rules (erlang:exit/2,
 * link/1, unlink/1, process_flag(trap_exit)), one test per rule, each run for
 * a stackful and for a handler process. Every scenario was first run in
 * OTP 25 (erl) and the test asserts what BEAM does there: the exact
 * OT_TAG_EXIT payload (pid, reason kind and text) a trapping process gets, and
 * the exact exit reason of a process that dies, read from a monitor's DOWN.
 *
 * The process under test (the "victim") obeys commands from the test process
 * and forwards every other message it gets (trapped exits) to the test, so
 * what it received is observable; ping/pong round trips order the checks: a
 * victim handles messages in order, so after a pong nothing it forwarded
 * before can still be in flight. Rules:
 *   exit/2 normal: ignored unless trapping ({'EXIT', From, normal});
 *   exit/2 kill: untrappable, the target dies with killed;
 *   exit/2 killed, shutdown, {error,_}: ordinary reasons (die, or trapped);
 *   exit(self(), normal): dies normal, or trapped as {'EXIT', Self, normal};
 *   exit(self(), kill): dies killed even when trapping;
 *   exit/2 to a dead process: returns 0 (true);
 *   link/1 to a dead process: noproc error (-ESRCH) unless trapping, then
 *     0 and {'EXIT', Pid, noproc};
 *   a linked process's exit: normal is ignored unless trapping; any other
 *     reason, shutdown included, kills a process that does not trap (kill
 *     from exit(kill) is an ordinary reason here, killed propagates as
 *     killed); a trapped one
 *     removes the link; exit/2 between linked processes leaves the link;
 *   unlink/1: no signal from that link afterwards. */
#include <otter/testing.h>

#include <string.h>

enum { TAG_CMD = OT_TAG_USER + 1, TAG_RC, TAG_PONG, TAG_FWD };
enum { OP_PING, OP_EXIT_SIG, OP_EXIT_SELF, OP_LINK, OP_UNLINK, OP_NLINKS };
enum { STACKFUL, HANDLER };

#define WAIT_MS 10000

struct cmd {
    int op;
    ot_pid pid; /* OP_EXIT_SIG: OT_NOPID means ot_self() */
    ot_reason reason;
};

/* What a victim forwards: the tag and sender of a message it did not expect,
 * with the message's payload when it is an exit message. */
struct fwd {
    uint32_t tag;
    ot_pid from;
    ot_exit_msg x;
};

static ot_pid test_pid; /* set before any victim is spawned */

static void reply_rc(int rc) { ot_send(test_pid, TAG_RC, &rc, sizeof rc); }

static void victim_on(const ot_msg *m) {
    if (m->tag != TAG_CMD) {
        struct fwd f = {.tag = m->tag, .from = m->from};
        if (m->tag == OT_TAG_EXIT && m->size == sizeof f.x)
            memcpy(&f.x, ot_msg_data(m), sizeof f.x);
        ot_send(test_pid, TAG_FWD, &f, sizeof f);
        return;
    }
    const struct cmd *c = ot_msg_data(m);
    switch (c->op) {
    case OP_PING:
        ot_send(test_pid, TAG_PONG, NULL, 0);
        break;
    case OP_EXIT_SIG:
        reply_rc(ot_exit(c->pid.v ? c->pid : ot_self(), c->reason));
        break;
    case OP_EXIT_SELF:
        ot_exit_self(c->reason);
    case OP_LINK:
        reply_rc(ot_link(c->pid));
        break;
    case OP_UNLINK:
        reply_rc(ot_unlink(c->pid));
        break;
    case OP_NLINKS: {
        struct ot_process_info in;
        int rc = ot_process_info(ot_self(), &in);
        reply_rc(rc < 0 ? rc : (int)in.n_links);
        break;
    }
    }
}

static void victim_main(void *arg) {
    (void)arg;
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        victim_on(m);
        ot_msg_free(m);
    }
}

static int victim_handler(void *state, const ot_msg *m) {
    (void)state;
    victim_on(m);
    return 0;
}

struct victim {
    ot_pid pid;
    ot_ref mref;
};

static struct victim spawn_victim(int kind, bool trap) {
    struct victim v = {0};
    test_pid = ot_self();
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &v.mref, .trap_exit = trap};
    v.pid = kind == HANDLER ? ot_spawn_handler(victim_handler, NULL, &o)
                            : ot_spawn_opt(victim_main, NULL, &o);
    ot_assert(v.pid.v != 0, "spawn failed: %d", errno);
    ot_assert(v.mref.v != 0);
    return v;
}

static void send_cmd(ot_pid to, int op, ot_pid pid, ot_reason r) {
    struct cmd c = {.op = op, .pid = pid, .reason = r};
    ot_assert_eq(ot_send(to, TAG_CMD, &c, sizeof c), 0);
}

static int expect_rc(void) {
    ot_msg *m = ot_receive_tag(TAG_RC, WAIT_MS);
    ot_assert(m != NULL, "no reply from the victim");
    int rc;
    memcpy(&rc, ot_msg_data(m), sizeof rc);
    ot_msg_free(m);
    return rc;
}

static bool is_down(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_DOWN && m->ref.v == *(const uint64_t *)arg;
}

static ot_reason down_reason(const ot_msg *m, struct victim v) {
    ot_assert_eq(m->size, sizeof(ot_down_msg));
    ot_down_msg d;
    memcpy(&d, ot_msg_data(m), sizeof d);
    ot_assert_eq(d.ref.v, v.mref.v);
    ot_assert_eq(d.pid.v, v.pid.v);
    ot_assert(!ot_is_alive(v.pid));
    return d.reason;
}

/* The victim's DOWN: asserts its ref and pid and returns the reason. */
static ot_reason expect_down(struct victim v) {
    ot_msg *m = ot_receive_match(is_down, &v.mref.v, WAIT_MS);
    ot_assert(m != NULL, "no DOWN for the victim");
    ot_reason r = down_reason(m, v);
    ot_msg_free(m);
    return r;
}

struct pong_or_down {
    uint64_t mref;
    ot_pid pid;
};

static bool is_pong_or_down(const ot_msg *m, void *arg) {
    const struct pong_or_down *w = arg;
    return (m->tag == TAG_PONG && m->from.v == w->pid.v) ||
           (m->tag == OT_TAG_DOWN && m->ref.v == w->mref);
}

/* A ping round trip: true if the victim answered; false if it died first,
 * with its exit reason in *why. */
static bool ping(struct victim v, ot_reason *why) {
    send_cmd(v.pid, OP_PING, OT_NOPID, OT_REASON(OT_NORMAL));
    struct pong_or_down w = {v.mref.v, v.pid};
    ot_msg *m = ot_receive_match(is_pong_or_down, &w, WAIT_MS);
    ot_assert(m != NULL, "neither pong nor DOWN");
    bool pong = m->tag == TAG_PONG;
    if (!pong)
        *why = down_reason(m, v);
    ot_msg_free(m);
    return pong;
}

static void assert_alive(struct victim v) {
    ot_reason why = {0};
    bool alive = ping(v, &why);
    char b[96] = "";
    ot_reason_format(why, b, sizeof b);
    ot_assert(alive, "the victim died with %s", b);
}

/* The victim must die (it is pinged, so it dies before it could answer). */
static ot_reason assert_dies(struct victim v) {
    ot_reason why = {0};
    ot_assert(!ping(v, &why), "the victim survived");
    return why;
}

/* Nothing was forwarded: call after a ping round trip. */
static void assert_no_fwd(void) {
    ot_msg *m = ot_receive_tag(TAG_FWD, 0);
    if (m) {
        const struct fwd *f = ot_msg_data(m);
        ot_assert(false, "unexpected message tag %u forwarded", f->tag);
    }
}

/* The next forwarded message: must be an exit message from `from`. */
static ot_reason expect_exit_msg(ot_pid from) {
    ot_msg *m = ot_receive_tag(TAG_FWD, WAIT_MS);
    ot_assert(m != NULL, "no exit message reached the victim");
    struct fwd f;
    memcpy(&f, ot_msg_data(m), sizeof f);
    ot_msg_free(m);
    ot_assert_eq(f.tag, OT_TAG_EXIT);
    ot_assert_eq(f.from.v, from.v);
    ot_assert_eq(f.x.pid.v, from.v);
    return f.x.reason;
}

static void assert_reason(ot_reason r, int kind, const char *text) {
    char b[96] = "";
    ot_reason_format(r, b, sizeof b);
    ot_assert(r.kind == kind, "reason %s, kind %d expected", b, kind);
    ot_assert(strcmp(r.text, text ? text : "") == 0, "reason %s, text \"%s\" expected", b,
              text ? text : "");
}

static int victim_links(struct victim v) {
    send_cmd(v.pid, OP_NLINKS, OT_NOPID, OT_REASON(OT_NORMAL));
    return expect_rc();
}

static void kill_victim(struct victim v) {
    ot_assert_eq(ot_exit(v.pid, OT_REASON(OT_KILL)), 0);
    assert_reason(expect_down(v), OT_KILLED, NULL);
}

/* A pid that was issued and whose process has exited. */
static ot_pid dead_pid(int kind) {
    struct victim d = spawn_victim(kind, false);
    send_cmd(d.pid, OP_EXIT_SELF, OT_NOPID, OT_REASON(OT_NORMAL));
    assert_reason(expect_down(d), OT_NORMAL, NULL);
    return d.pid;
}

/* Each rule runs for both kinds of process. */
#define RULE(name)                                                                        \
    static void name(int kind);                                                           \
    OT_TEST(links, name##_stackful, .timeout = 60) { name(STACKFUL); }                                   \
    OT_TEST(links, name##_handler, .timeout = 60) { name(HANDLER); }                                     \
    static void name(int kind)

static const ot_reason NORMAL_R = OT_REASON(OT_NORMAL);

/* ---- exit/2 from another process ------------------------------------------------ */

RULE(exit_normal_not_trapping_is_ignored) {
    struct victim v = spawn_victim(kind, false);
    ot_assert_eq(ot_exit(v.pid, NORMAL_R), 0);
    assert_alive(v);
    assert_no_fwd();
    kill_victim(v);
}

RULE(exit_normal_trapping_becomes_message) {
    struct victim v = spawn_victim(kind, true);
    ot_assert_eq(ot_exit(v.pid, NORMAL_R), 0);
    assert_reason(expect_exit_msg(ot_self()), OT_NORMAL, NULL);
    assert_alive(v);
    kill_victim(v);
}

RULE(exit_kill_not_trapping_dies_killed) {
    struct victim v = spawn_victim(kind, false);
    ot_assert_eq(ot_exit(v.pid, OT_REASON(OT_KILL)), 0);
    assert_reason(assert_dies(v), OT_KILLED, NULL);
    assert_no_fwd();
}

RULE(exit_kill_trapping_is_untrappable) {
    struct victim v = spawn_victim(kind, true);
    ot_assert_eq(ot_exit(v.pid, OT_REASON(OT_KILL)), 0);
    assert_reason(assert_dies(v), OT_KILLED, NULL);
    assert_no_fwd();
}

RULE(exit_killed_not_trapping_is_ordinary) {
    struct victim v = spawn_victim(kind, false);
    ot_assert_eq(ot_exit(v.pid, OT_REASON(OT_KILLED)), 0);
    assert_reason(assert_dies(v), OT_KILLED, NULL);
}

RULE(exit_killed_trapping_becomes_message) {
    struct victim v = spawn_victim(kind, true);
    ot_assert_eq(ot_exit(v.pid, OT_REASON(OT_KILLED)), 0);
    assert_reason(expect_exit_msg(ot_self()), OT_KILLED, NULL);
    assert_alive(v);
    kill_victim(v);
}

RULE(exit_error_not_trapping_dies_with_reason) {
    struct victim v = spawn_victim(kind, false);
    ot_assert_eq(ot_exit(v.pid, ot_reason_error("boom %d", 7)), 0);
    assert_reason(assert_dies(v), OT_ERROR, "boom 7");
}

RULE(exit_error_trapping_becomes_message) {
    struct victim v = spawn_victim(kind, true);
    ot_assert_eq(ot_exit(v.pid, ot_reason_error("boom %d", 8)), 0);
    assert_reason(expect_exit_msg(ot_self()), OT_ERROR, "boom 8");
    assert_alive(v);
    kill_victim(v);
}

RULE(exit_shutdown_not_trapping_dies_with_reason) {
    struct victim v = spawn_victim(kind, false);
    ot_reason r = OT_REASON(OT_SHUTDOWN);
    strcpy(r.text, "going away");
    ot_assert_eq(ot_exit(v.pid, r), 0);
    assert_reason(assert_dies(v), OT_SHUTDOWN, "going away");
}

RULE(exit_signals_keep_their_order) {
    /* normal (ignored), then an error: the process dies of the error, and
     * a trapping one gets both messages in the order sent */
    struct victim v = spawn_victim(kind, false);
    ot_assert_eq(ot_exit(v.pid, NORMAL_R), 0);
    ot_assert_eq(ot_exit(v.pid, ot_reason_error("second")), 0);
    assert_reason(assert_dies(v), OT_ERROR, "second");
    struct victim t = spawn_victim(kind, true);
    ot_assert_eq(ot_exit(t.pid, ot_reason_error("first")), 0);
    ot_assert_eq(ot_exit(t.pid, NORMAL_R), 0);
    assert_reason(expect_exit_msg(ot_self()), OT_ERROR, "first");
    assert_reason(expect_exit_msg(ot_self()), OT_NORMAL, NULL);
    assert_alive(t);
    assert_no_fwd();
    kill_victim(t);
}

/* ---- exit(self(), Reason) ------------------------------------------------------- */

RULE(self_exit_normal_not_trapping_exits_normal) {
    struct victim v = spawn_victim(kind, false);
    send_cmd(v.pid, OP_EXIT_SIG, OT_NOPID, NORMAL_R);
    assert_reason(expect_down(v), OT_NORMAL, NULL);
    /* it took effect inside ot_exit: the call never returned */
    ot_assert(ot_receive_tag(TAG_RC, 0) == NULL);
}

RULE(self_exit_normal_trapping_becomes_message) {
    struct victim v = spawn_victim(kind, true);
    send_cmd(v.pid, OP_EXIT_SIG, OT_NOPID, NORMAL_R);
    ot_assert_eq(expect_rc(), 0);
    assert_reason(expect_exit_msg(v.pid), OT_NORMAL, NULL);
    assert_alive(v);
    kill_victim(v);
}

RULE(self_exit_kill_not_trapping_dies_killed) {
    struct victim v = spawn_victim(kind, false);
    send_cmd(v.pid, OP_EXIT_SIG, OT_NOPID, OT_REASON(OT_KILL));
    assert_reason(expect_down(v), OT_KILLED, NULL);
    ot_assert(ot_receive_tag(TAG_RC, 0) == NULL);
}

RULE(self_exit_kill_trapping_dies_killed) {
    struct victim v = spawn_victim(kind, true);
    send_cmd(v.pid, OP_EXIT_SIG, OT_NOPID, OT_REASON(OT_KILL));
    assert_reason(expect_down(v), OT_KILLED, NULL);
    ot_assert(ot_receive_tag(TAG_RC, 0) == NULL);
    assert_no_fwd();
}

RULE(self_exit_error_not_trapping_dies_with_reason) {
    struct victim v = spawn_victim(kind, false);
    send_cmd(v.pid, OP_EXIT_SIG, OT_NOPID, ot_reason_error("self %d", 1));
    assert_reason(expect_down(v), OT_ERROR, "self 1");
    ot_assert(ot_receive_tag(TAG_RC, 0) == NULL);
}

RULE(self_exit_error_trapping_becomes_message) {
    struct victim v = spawn_victim(kind, true);
    send_cmd(v.pid, OP_EXIT_SIG, OT_NOPID, ot_reason_error("self %d", 2));
    ot_assert_eq(expect_rc(), 0);
    assert_reason(expect_exit_msg(v.pid), OT_ERROR, "self 2");
    assert_alive(v);
    kill_victim(v);
}

/* ---- dead and unknown pids -------------------------------------------------------- */

RULE(exit_to_dead_pid_returns_0) {
    ot_pid dead = dead_pid(kind);
    struct victim v = spawn_victim(kind, false);
    send_cmd(v.pid, OP_EXIT_SIG, dead, ot_reason_error("late"));
    ot_assert_eq(expect_rc(), 0);
    send_cmd(v.pid, OP_EXIT_SIG, dead, OT_REASON(OT_KILL));
    ot_assert_eq(expect_rc(), 0);
    ot_assert_eq(ot_exit(dead, OT_REASON(OT_KILL)), 0);
    assert_alive(v);
    assert_no_fwd();
    kill_victim(v);
}

RULE(link_to_dead_pid_not_trapping_is_noproc_error) {
    ot_pid dead = dead_pid(kind);
    struct victim v = spawn_victim(kind, false);
    send_cmd(v.pid, OP_LINK, dead, NORMAL_R);
    ot_assert_eq(expect_rc(), -ESRCH);
    assert_alive(v);
    assert_no_fwd();
    ot_assert_eq(victim_links(v), 0);
    kill_victim(v);
}

RULE(link_to_dead_pid_trapping_gets_noproc_message) {
    ot_pid dead = dead_pid(kind);
    struct victim v = spawn_victim(kind, true);
    send_cmd(v.pid, OP_LINK, dead, NORMAL_R);
    ot_assert_eq(expect_rc(), 0);
    assert_reason(expect_exit_msg(dead), OT_NOPROC, NULL);
    assert_alive(v);
    assert_no_fwd();
    ot_assert_eq(victim_links(v), 0);
    kill_victim(v);
}

RULE(link_to_self_does_nothing) {
    struct victim v = spawn_victim(kind, false);
    send_cmd(v.pid, OP_LINK, v.pid, NORMAL_R);
    ot_assert_eq(expect_rc(), 0);
    ot_assert_eq(victim_links(v), 0);
    kill_victim(v);
}

/* ---- a linked process exits ------------------------------------------------------- */

/* The victim links to a fresh peer of the same kind, which then ends: by
 * ot_exit_self(r), or (by_kill) by the test's exit(peer, kill). */
static struct victim linked_peer_ends(struct victim v, int kind, ot_reason r, bool by_kill) {
    struct victim peer = spawn_victim(kind, false);
    send_cmd(v.pid, OP_LINK, peer.pid, NORMAL_R);
    ot_assert_eq(expect_rc(), 0);
    ot_assert_eq(victim_links(v), 1);
    if (by_kill)
        ot_assert_eq(ot_exit(peer.pid, OT_REASON(OT_KILL)), 0);
    else
        send_cmd(peer.pid, OP_EXIT_SELF, OT_NOPID, r);
    ot_reason got = expect_down(peer);
    ot_assert_eq(got.kind, by_kill ? OT_KILLED : r.kind);
    return peer;
}

RULE(linked_normal_exit_not_trapping_is_ignored) {
    struct victim v = spawn_victim(kind, false);
    linked_peer_ends(v, kind, NORMAL_R, false);
    assert_alive(v);
    assert_no_fwd();
    ot_assert_eq(victim_links(v), 0);
    kill_victim(v);
}

RULE(linked_normal_exit_trapping_becomes_message) {
    struct victim v = spawn_victim(kind, true);
    struct victim peer = linked_peer_ends(v, kind, NORMAL_R, false);
    assert_reason(expect_exit_msg(peer.pid), OT_NORMAL, NULL);
    assert_alive(v);
    ot_assert_eq(victim_links(v), 0);
    kill_victim(v);
}

RULE(linked_error_exit_not_trapping_propagates) {
    struct victim v = spawn_victim(kind, false);
    linked_peer_ends(v, kind, ot_reason_error("peer crashed"), false);
    assert_reason(assert_dies(v), OT_ERROR, "peer crashed");
}

RULE(linked_error_exit_trapping_becomes_message) {
    struct victim v = spawn_victim(kind, true);
    struct victim peer = linked_peer_ends(v, kind, ot_reason_error("peer crashed"), false);
    assert_reason(expect_exit_msg(peer.pid), OT_ERROR, "peer crashed");
    assert_alive(v);
    ot_assert_eq(victim_links(v), 0); /* a trapped link exit removes the link */
    kill_victim(v);
}

RULE(linked_shutdown_exit_not_trapping_propagates) {
    /* only normal is ignored: shutdown is not a crash, but it does end
     * linked processes that do not trap (what supervisors rely on) */
    struct victim v = spawn_victim(kind, false);
    ot_reason r = OT_REASON(OT_SHUTDOWN);
    strcpy(r.text, "stopping");
    linked_peer_ends(v, kind, r, false);
    assert_reason(assert_dies(v), OT_SHUTDOWN, "stopping");
}

RULE(linked_exit_self_kill_not_trapping_dies_with_kill) {
    /* exit(kill) (exit/1) is not the untrappable signal: links see reason
     * kill, and a process that does not trap dies with kill (OTP 25) */
    struct victim v = spawn_victim(kind, false);
    linked_peer_ends(v, kind, OT_REASON(OT_KILL), false);
    assert_reason(assert_dies(v), OT_KILL, NULL);
}

RULE(linked_exit_self_kill_trapping_becomes_message) {
    struct victim v = spawn_victim(kind, true);
    struct victim peer = linked_peer_ends(v, kind, OT_REASON(OT_KILL), false);
    assert_reason(expect_exit_msg(peer.pid), OT_KILL, NULL);
    assert_alive(v);
    kill_victim(v);
}

RULE(linked_killed_not_trapping_dies_killed) {
    struct victim v = spawn_victim(kind, false);
    linked_peer_ends(v, kind, NORMAL_R, true);
    assert_reason(assert_dies(v), OT_KILLED, NULL);
}

RULE(linked_killed_trapping_becomes_message) {
    struct victim v = spawn_victim(kind, true);
    struct victim peer = linked_peer_ends(v, kind, NORMAL_R, true);
    assert_reason(expect_exit_msg(peer.pid), OT_KILLED, NULL);
    assert_alive(v);
    kill_victim(v);
}

RULE(link_is_bidirectional) {
    /* the victim links to the peer and crashes: the peer dies with its reason */
    struct victim v = spawn_victim(kind, false);
    struct victim peer = spawn_victim(kind, false);
    send_cmd(v.pid, OP_LINK, peer.pid, NORMAL_R);
    ot_assert_eq(expect_rc(), 0);
    ot_assert_eq(victim_links(peer), 1);
    send_cmd(v.pid, OP_EXIT_SELF, OT_NOPID, ot_reason_error("victim crashed"));
    assert_reason(expect_down(v), OT_ERROR, "victim crashed");
    assert_reason(expect_down(peer), OT_ERROR, "victim crashed");
}

RULE(exit_signal_between_linked_processes_keeps_link) {
    struct victim v = spawn_victim(kind, true);
    struct victim peer = spawn_victim(kind, false);
    send_cmd(v.pid, OP_LINK, peer.pid, NORMAL_R);
    ot_assert_eq(expect_rc(), 0);
    send_cmd(peer.pid, OP_EXIT_SIG, v.pid, ot_reason_error("just a signal"));
    ot_assert_eq(expect_rc(), 0);
    assert_reason(expect_exit_msg(peer.pid), OT_ERROR, "just a signal");
    ot_assert_eq(victim_links(v), 1);
    ot_assert_eq(victim_links(peer), 1);
    kill_victim(peer);
    assert_reason(expect_exit_msg(peer.pid), OT_KILLED, NULL);
    ot_assert_eq(victim_links(v), 0);
    kill_victim(v);
}

/* ---- unlink ------------------------------------------------------------------------- */

static void unlink_then_peer_crashes(struct victim v, int kind) {
    struct victim peer = spawn_victim(kind, false);
    send_cmd(v.pid, OP_LINK, peer.pid, NORMAL_R);
    ot_assert_eq(expect_rc(), 0);
    send_cmd(v.pid, OP_UNLINK, peer.pid, NORMAL_R);
    ot_assert_eq(expect_rc(), 0);
    ot_assert_eq(victim_links(v), 0);
    ot_assert_eq(victim_links(peer), 0);
    send_cmd(peer.pid, OP_EXIT_SELF, OT_NOPID, ot_reason_error("after unlink"));
    assert_reason(expect_down(peer), OT_ERROR, "after unlink");
}

RULE(unlink_then_death_not_trapping_no_signal) {
    struct victim v = spawn_victim(kind, false);
    unlink_then_peer_crashes(v, kind);
    assert_alive(v);
    assert_no_fwd();
    kill_victim(v);
}

RULE(unlink_then_death_trapping_no_message) {
    struct victim v = spawn_victim(kind, true);
    unlink_then_peer_crashes(v, kind);
    assert_alive(v);
    assert_no_fwd();
    kill_victim(v);
}

RULE(unlink_of_unlinked_pid_returns_0) {
    struct victim v = spawn_victim(kind, false);
    ot_pid dead = dead_pid(kind);
    send_cmd(v.pid, OP_UNLINK, dead, NORMAL_R);
    ot_assert_eq(expect_rc(), 0);
    send_cmd(v.pid, OP_UNLINK, ot_self(), NORMAL_R);
    ot_assert_eq(expect_rc(), 0);
    kill_victim(v);
}

/* ---- spawn options and the calling process -------------------------------------- */

static void crash_now(void *arg) {
    (void)arg;
    ot_exit_self(ot_reason_error("child crashed"));
}

static int handler_crash(void *state, const ot_msg *m) {
    (void)state;
    (void)m;
    ot_exit_self(ot_reason_error("child crashed"));
}

RULE(spawn_link_option_trapping_parent_gets_exit) {
    ot_assert_eq(ot_trap_exit(true), false);
    ot_assert_eq(ot_trap_exit(true), true);
    ot_spawn_opts o = {.link = true};
    ot_pid c = kind == HANDLER ? ot_spawn_handler(handler_crash, NULL, &o)
                               : ot_spawn_opt(crash_now, NULL, &o);
    ot_assert(c.v != 0);
    if (kind == HANDLER)
        ot_send(c, OT_TAG_USER, NULL, 0);
    ot_msg *m = ot_receive_tag(OT_TAG_EXIT, WAIT_MS);
    ot_assert(m != NULL);
    ot_exit_msg x;
    ot_assert_eq(m->size, sizeof x);
    memcpy(&x, ot_msg_data(m), sizeof x);
    ot_assert_eq(m->from.v, c.v);
    ot_assert_eq(x.pid.v, c.v);
    assert_reason(x.reason, OT_ERROR, "child crashed");
    ot_msg_free(m);
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    ot_assert_eq(in.n_links, 0);
    ot_assert_eq(ot_trap_exit(false), true);
}

OT_TEST(links, errors_outside_a_process_and_bad_pids, .timeout = 60) {
    /* never-issued pids: Otter answers -ESRCH where OTP returns true */
    ot_pid bogus = {((uint64_t)0x7fffffff << 32) | 0xffffff};
    ot_assert_eq(ot_exit(bogus, OT_REASON(OT_KILL)), -ESRCH);
    ot_assert_eq(ot_exit(OT_NOPID, OT_REASON(OT_KILL)), -ESRCH);
    ot_assert_eq(ot_link(OT_NOPID), -ESRCH);
    ot_assert_eq(ot_link(bogus), -ESRCH);
    ot_assert_eq(ot_unlink(OT_NOPID), -ESRCH);
    ot_reason bad = {.kind = 99};
    ot_assert_eq(ot_exit(ot_self(), bad), -EINVAL);
}

Test(links, calls_without_a_running_runtime) {
    cr_assert_eq(ot_exit((ot_pid){1}, OT_REASON(OT_KILL)), -ENOTCONN);
    cr_assert_eq(ot_link((ot_pid){1}), -EPERM);
    cr_assert_eq(ot_unlink((ot_pid){1}), -EPERM);
    cr_assert_eq(ot_trap_exit(true), false);
}
