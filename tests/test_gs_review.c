/* An adversarial review of gen_server, Agent and Registry against OTP 25 and
 * Elixir 1.14 (issue 12): results a callback may not return (a negative
 * timeout is OTP's bad_return_value), every exit reason kind accepted by
 * ot_gen_server_stop, the calls' errno once ot_stop has begun, calls still in
 * a server's inbound queue when it is killed, calls with tiny timeouts racing
 * their replies (sent by the server, twice, or later by another process):
 * none lands after the call; requests an Agent did not build; many starters
 * racing for one local or via name; a stateful Registry.match predicate. */
#include <otter/testing.h>

#include "support/down.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 20000

enum { T_NEG = OT_TAG_USER + 1, T_PING, T_WORK, T_BLOCK };

static _Atomic int terminated;
static ot_reason term_why;

/* arg: NULL, or an int: 1 init returns a timeout of -5, 2 init returns
 * ignore with a reply */
static ot_gs_ret r_init(void *arg, void **state) {
    *state = NULL;
    int mode = arg ? *(const int *)arg : 0;
    if (mode == 1)
        return ot_gs_timeout(-5);
    if (mode == 2) {
        ot_gs_ret r = ot_gs_ignore();
        r.has_reply = true;
        return r;
    }
    return ot_gs_ok();
}

static ot_gs_ret r_call(void *state, const ot_msg *m, ot_from from) {
    (void)state;
    (void)from;
    if (m->tag == T_NEG) { /* {reply, ok, S, -5} */
        ot_gs_ret r = ot_gs_timeout(-5);
        r.has_reply = true;
        r.reply = "ok";
        r.reply_len = 2;
        return r;
    }
    return ot_gs_reply("pong", 4);
}

static ot_gs_ret r_cast(void *state, const ot_msg *m) {
    (void)state;
    if (m->tag == T_NEG)
        return ot_gs_timeout(-2);
    if (m->tag == T_BLOCK) /* busy without taking a message: calls wait in the inbound queue */
        for (;;)
            ot_sleep(1);
    return ot_gs_timeout(OT_INFINITY); /* {noreply, S, infinity}: fine */
}

static void r_term(void *state, ot_reason why) {
    (void)state;
    term_why = why;
    atomic_store(&terminated, 1);
}

static const ot_gen_server rsrv = {
    .name = "rsrv", .init = r_init, .handle_call = r_call, .handle_cast = r_cast,
    .terminate = r_term};

static ot_reason wait_down(ot_ref r) {
    return wait_down_ms(r, WAIT_MS);
}

static size_t my_queue(void) {
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(ot_self(), &in), 0);
    return in.message_queue_len + in.unfreed_messages;
}

/* OTP 25: {reply, ok, S, -5} stops the server with bad_return_value,
 * terminate runs and the caller exits with that reason, the reply unsent. */
OT_TEST(bad_return, negative_timeout_from_handle_call, .timeout = 60) {
    ot_pid p;
    ot_assert_eq(ot_gen_server_start(&rsrv, NULL, NULL, &p), 0);
    ot_msg *r = NULL;
    ot_reason why = OT_REASON(OT_NORMAL);
    ot_assert_eq(ot_call_ex(p, T_NEG, NULL, 0, &r, WAIT_MS, &why), -ECONNRESET);
    ot_assert(r == NULL);
    ot_assert_eq(why.kind, OT_ERROR);
    ot_assert(strcmp(why.text, "bad_return_value from handle_call") == 0, "%s", why.text);
    ot_assert_eq(atomic_load(&terminated), 1);
    ot_assert(strcmp(term_why.text, "bad_return_value from handle_call") == 0);
    ot_assert_eq(my_queue(), 0); /* no reply */
}

OT_TEST(bad_return, negative_timeout_from_handle_cast, .timeout = 60) {
    ot_pid p;
    ot_assert_eq(ot_gen_server_start(&rsrv, NULL, NULL, &p), 0);
    ot_ref mon = ot_monitor(p);
    ot_assert_eq(ot_cast(p, T_PING, NULL, 0), 0); /* infinity is a good timeout */
    ot_assert_eq(ot_cast(p, T_NEG, NULL, 0), 0);
    ot_reason why = wait_down(mon);
    ot_assert_eq(why.kind, OT_ERROR);
    ot_assert(strcmp(why.text, "bad_return_value from handle_cast") == 0, "%s", why.text);
}

/* From init: {error, {bad_return_value, _}}, as OTP's start. */
OT_TEST(bad_return, negative_timeout_and_ignore_with_reply_from_init, .timeout = 60) {
    for (int mode = 1; mode <= 2; mode++) {
        ot_reason why = OT_REASON(OT_NORMAL);
        ot_start_opts o = {.why = &why};
        ot_pid p = {77};
        ot_assert_eq(ot_gen_server_start(&rsrv, &mode, &o, &p), -ECHILD);
        ot_assert_eq(p.v, 0);
        ot_assert_eq(why.kind, OT_ERROR);
        ot_assert(strcmp(why.text, "bad_return_value from init") == 0, "%s", why.text);
    }
}

/* gen_server:stop/3 takes any reason and returns ok when the server exited
 * with it, kill, killed and noproc included (checked on OTP 25: terminate
 * runs with the reason, the DOWN carries it, stop returns ok). */
OT_TEST(stop, every_reason_kind, .timeout = 60) {
    static const int kinds[] = {OT_NORMAL,  OT_SHUTDOWN, OT_KILL,  OT_KILLED,
                                OT_NOPROC,  OT_TIMEOUT,  OT_ERROR, OT_FAULT,
                                OT_STACK_OVERFLOW, OT_HEAP_LIMIT};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        ot_pid p;
        ot_assert_eq(ot_gen_server_start(&rsrv, NULL, NULL, &p), 0);
        atomic_store(&terminated, 0);
        ot_ref mon = ot_monitor(p);
        ot_reason got = OT_REASON(OT_NORMAL);
        int rc = ot_gen_server_stop_ex(p, OT_REASON(kinds[i]), WAIT_MS, &got);
        ot_assert(rc == 0, "kind %d: rc %d, got %d", kinds[i], rc, got.kind);
        ot_assert_eq(wait_down(mon).kind, kinds[i]);
        ot_assert_eq(atomic_load(&terminated), 1);
        ot_assert_eq(term_why.kind, kinds[i]);
    }
    ot_pid p;
    ot_assert_eq(ot_gen_server_start(&rsrv, NULL, NULL, &p), 0);
    ot_assert_eq(ot_gen_server_stop(p, OT_REASON(OT_HEAP_LIMIT + 1), WAIT_MS), -EINVAL);
    ot_assert_eq(ot_gen_server_stop(p, OT_REASON(-1), WAIT_MS), -EINVAL);
    ot_assert_eq(ot_gen_server_stop(p, OT_REASON(OT_NORMAL), WAIT_MS), 0);
}

/* Callers whose requests are still in the server's inbound queue (never
 * taken) when it is killed: each gets -ECONNRESET with killed, none hangs. */
static _Atomic int q_done, q_bad;
static ot_pid q_srv;

static void queued_caller(void *a) {
    (void)a;
    ot_msg *r = NULL;
    ot_reason why = OT_REASON(OT_NORMAL);
    int rc = ot_call_ex(q_srv, T_PING, NULL, 0, &r, OT_INFINITY, &why);
    if (rc != -ECONNRESET || why.kind != OT_KILLED)
        atomic_fetch_add(&q_bad, 1);
    atomic_fetch_add(&q_done, 1);
}

OT_TEST(call, queued_calls_when_the_server_is_killed, .timeout = 60) {
    ot_assert_eq(ot_gen_server_start(&rsrv, NULL, NULL, &q_srv), 0);
    ot_assert_eq(ot_cast(q_srv, T_BLOCK, NULL, 0), 0);
    ot_ref mons[20];
    for (int i = 0; i < 20; i++)
        ot_spawn_opt(queued_caller, NULL,
                     &(ot_spawn_opts){.monitor = true, .monitor_ref = &mons[i]});
    for (int i = 0; i < 20000; i++) {
        struct ot_process_info in;
        if (ot_process_info(q_srv, &in) == 0 && in.message_queue_len >= 20)
            break;
        ot_sleep(1);
    }
    ot_exit(q_srv, OT_REASON(OT_KILL));
    for (int i = 0; i < 20; i++)
        ot_assert_eq(wait_down(mons[i]).kind, OT_NORMAL);
    ot_assert_eq(atomic_load(&q_done), 20);
    ot_assert_eq(atomic_load(&q_bad), 0);
}

/* Calls with 0-1 ms timeouts racing their replies: a reply by return, two
 * replies by ot_reply, or one from another process after a yield. Whatever
 * the outcome of each call, no reply is left behind in any caller. */
static ot_pid late_helper, late_srv;
static _Atomic int late_done, late_bad;

static ot_gs_ret w_call(void *state, const ot_msg *m, ot_from from) {
    (void)state;
    int x;
    memcpy(&x, ot_msg_data(m), sizeof x);
    switch (x % 3) {
    case 0:
        ot_send(late_helper, OT_TAG_USER, &from, sizeof from);
        return ot_gs_ok();
    case 1:
        ot_reply(from, "a", 1);
        ot_reply(from, "b", 1); /* the alias is gone: dropped */
        return ot_gs_ok();
    default:
        for (volatile int i = 0; i < x * 50; i++)
            ;
        return ot_gs_reply("x", 1);
    }
}

static const ot_gen_server wsrv = {.name = "wsrv", .init = r_init, .handle_call = w_call};

static void late_helper_body(void *a) {
    (void)a;
    for (;;) {
        ot_msg *m = ot_receive(OT_INFINITY);
        ot_from f;
        memcpy(&f, ot_msg_data(m), sizeof f);
        ot_msg_free(m);
        ot_yield();
        ot_reply(f, "h", 1);
    }
}

static void late_caller(void *a) {
    unsigned seed = (unsigned)(uintptr_t)a;
    for (int i = 0; i < 200; i++) {
        int x = rand_r(&seed) % 40;
        ot_msg *r = NULL;
        int rc = ot_call(late_srv, T_WORK, &x, sizeof x, &r, rand_r(&seed) % 2);
        if (rc == 0) {
            if (r->size != 1)
                atomic_fetch_add(&late_bad, 1);
            ot_msg_free(r);
        } else if (rc != -ETIMEDOUT) {
            atomic_fetch_add(&late_bad, 1);
        }
    }
    /* the helper has answered everything once its queue is empty */
    for (int i = 0; i < 20000; i++) {
        struct ot_process_info in;
        if (ot_process_info(late_helper, &in) == 0 && in.message_queue_len == 0)
            break;
        ot_sleep(1);
    }
    ot_sleep(20);
    if (my_queue() != 0)
        atomic_fetch_add(&late_bad, 1);
    atomic_fetch_add(&late_done, 1);
}

OT_TEST(call, late_replies_never_land, .timeout = 120) {
#if defined(OT_TSAN)
    enum { CALLERS = 8 };
#else
    enum { CALLERS = 40 };
#endif
    late_helper = ot_spawn(late_helper_body, NULL);
    ot_assert_eq(ot_gen_server_start(&wsrv, NULL, &(ot_start_opts){.keep_expired = true}, &late_srv),
                 0);
    for (int i = 0; i < CALLERS; i++)
        ot_spawn(late_caller, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 60000 && atomic_load(&late_done) < CALLERS; i++)
        ot_sleep(2);
    ot_assert_eq(atomic_load(&late_done), CALLERS);
    ot_assert_eq(atomic_load(&late_bad), 0);
    ot_exit(late_helper, OT_REASON(OT_KILL));
    ot_exit(late_srv, OT_REASON(OT_KILL));
}

/* Once ot_stop has begun, the calls say so (-ENOTCONN), as every call a
 * plain thread makes then: not -ESRCH as if the server had died. */
static _Atomic uint64_t kept_srv;

static void keeper(void *a) {
    (void)a;
    ot_pid p;
    if (ot_gen_server_start(&rsrv, NULL, NULL, &p) == 0)
        atomic_store(&kept_srv, p.v);
    ot_msg *m = ot_receive(OT_INFINITY);
    ot_msg_free(m);
}

Test(after_stop, calls_are_enotconn, .timeout = 60) {
    cr_assert_eq(ot_start(NULL), 0);
    ot_spawn(keeper, NULL);
    for (int i = 0; i < 20000 && !atomic_load(&kept_srv); i++)
        usleep(1000);
    ot_pid s = {atomic_load(&kept_srv)};
    cr_assert(s.v != 0);
    ot_msg *r = NULL;
    cr_assert_eq(ot_call(s, T_PING, NULL, 0, &r, WAIT_MS), 0);
    ot_msg_free(r);
    cr_assert_eq(ot_stop(), 0);
    cr_assert_eq(ot_call(s, T_PING, NULL, 0, &r, 100), -ENOTCONN);
    cr_assert_eq(ot_cast(s, T_PING, NULL, 0), -ENOTCONN);
    cr_assert_eq(ot_reply((ot_from){s, {5}, 0}, "x", 1), -ENOTCONN);
    cr_assert_eq(ot_gen_server_stop(s, OT_REASON(OT_NORMAL), 100), -ENOTCONN);
    ot_pid p;
    cr_assert_eq(ot_gen_server_start(&rsrv, NULL, NULL, &p), -ENOTCONN);
}

/* A request Agent did not build (a plain ot_call or ot_cast to an agent):
 * Elixir's Agent.Server has no clause for it and crashes; so does ours, with
 * a reason that says so, instead of reading a header the message lacks. */
static void *agent_init(void *arg) {
    return arg;
}

static void agent_get(const void *state, void *out) {
    memcpy(out, &state, sizeof state);
}

OT_TEST(agent, a_request_it_did_not_build_crashes_it, .timeout = 60) {
    for (int kind = 0; kind < 3; kind++) {
        ot_pid a;
        ot_assert_eq(ot_agent_start(agent_init, (void *)(uintptr_t)42, NULL, &a), 0);
        void *got = NULL;
        ot_assert_eq(ot_agent_get(a, agent_get, &got, sizeof got, WAIT_MS), 0);
        ot_assert_eq((uintptr_t)got, 42);
        ot_ref mon = ot_monitor(a);
        ot_msg *r = NULL;
        ot_reason why = OT_REASON(OT_NORMAL);
        char want[64];
        if (kind == 0) { /* a call with a tag Agent does not use */
            ot_assert_eq(ot_call_ex(a, OT_TAG_USER + 50, NULL, 0, &r, 2000, &why), -ECONNRESET);
            snprintf(want, sizeof want, "agent: no clause for a request tagged %u", OT_TAG_USER + 50);
        } else if (kind == 1) { /* Agent's get tag, too short for its header */
            ot_assert_eq(ot_call_ex(a, OT_TAG_USER, "x", 1, &r, 2000, &why), -ECONNRESET);
            snprintf(want, sizeof want, "agent: no clause for a request tagged %u", OT_TAG_USER);
        } else { /* a cast with zero bytes that would have been called as a function */
            static const char zeros[16];
            ot_assert_eq(ot_cast(a, OT_TAG_USER + 3, zeros, 8), 0);
            why = wait_down(mon);
            snprintf(want, sizeof want, "agent: no clause for a request tagged %u", OT_TAG_USER + 3);
        }
        ot_assert(r == NULL);
        ot_assert_eq(why.kind, OT_ERROR);
        ot_assert(strcmp(why.text, want) == 0, "%s", why.text);
        if (kind < 2)
            ot_assert(wait_down(mon).kind == OT_ERROR);
        ot_assert_eq(my_queue(), 0);
    }
}

/* Many starters race for one name, local and through a Registry: exactly
 * one start returns 0, every other -EEXIST with the winner as holder (the
 * winner lives until the end), and the name is free again once it stops. */
#if defined(OT_TSAN)
#define RACERS 20
#else
#define RACERS 60
#endif
static _Atomic int race_ok, race_eexist, race_other, race_done;
static _Atomic uint64_t race_winner, race_holders[RACERS];
static ot_name race_name;

static void racer(void *a) {
    int i = (int)(uintptr_t)a;
    ot_start_opts o = {.name = race_name};
    ot_pid p = OT_NOPID;
    int rc = ot_gen_server_start(&rsrv, NULL, &o, &p);
    if (rc == 0) {
        atomic_fetch_add(&race_ok, 1);
        atomic_store(&race_winner, p.v);
    } else if (rc == -EEXIST) {
        atomic_fetch_add(&race_eexist, 1);
        atomic_store(&race_holders[i], p.v);
    } else {
        atomic_fetch_add(&race_other, 1);
    }
    atomic_fetch_add(&race_done, 1);
}

static void run_race(const ot_name *n) {
    race_name = *n;
    atomic_store(&race_ok, 0);
    atomic_store(&race_eexist, 0);
    atomic_store(&race_other, 0);
    atomic_store(&race_done, 0);
    for (int i = 0; i < RACERS; i++)
        ot_spawn(racer, (void *)(uintptr_t)i);
    for (int i = 0; i < 60000 && atomic_load(&race_done) < RACERS; i++)
        ot_sleep(1);
    ot_assert_eq(atomic_load(&race_done), RACERS);
    ot_assert_eq(atomic_load(&race_ok), 1);
    ot_assert_eq(atomic_load(&race_eexist), RACERS - 1);
    ot_assert_eq(atomic_load(&race_other), 0);
    ot_pid w = {atomic_load(&race_winner)};
    for (int i = 0; i < RACERS; i++) {
        uint64_t h = atomic_load(&race_holders[i]);
        ot_assert(h == 0 || h == w.v, "a loser was given another holder");
    }
    ot_assert_eq(ot_whereis_name(n).v, w.v);
    ot_msg *r = NULL;
    ot_assert_eq(ot_call_name(n, T_PING, NULL, 0, &r, WAIT_MS), 0);
    ot_msg_free(r);
    ot_assert_eq(ot_gen_server_stop(w, OT_REASON(OT_NORMAL), WAIT_MS), 0);
    for (int i = 0; i < 20000 && ot_whereis_name(n).v; i++)
        ot_sleep(1);
    ot_assert_eq(ot_whereis_name(n).v, 0);
    for (int i = 0; i < RACERS; i++)
        atomic_store(&race_holders[i], 0);
}

OT_TEST(names, many_starters_one_name, .timeout = 120) {
    ot_name local = OT_NAME_LOCAL("review_race");
    run_race(&local);
    ot_pid rp;
    ot_assert_eq(ot_registry_start_link(NULL, OT_UNIQUE, 0, &rp), 0);
    ot_reg reg = ot_registry_of(rp);
    ot_name via = OT_NAME_REGISTRY(reg, "room", 4);
    run_race(&via);
    /* the partition removes the stopped winner's entry after its exit */
    for (int i = 0; i < 20000 && ot_registry_count(reg); i++)
        ot_sleep(1);
    ot_assert_eq(ot_registry_count(reg), 0);
    ot_unlink(rp);
    ot_assert_eq(ot_registry_stop(reg), 0);
}

/* Registry.match with a predicate that keeps state: it runs once per entry,
 * so a predicate that takes only the first entry it sees gets exactly that
 * one, and a counting one counts each entry once. */
struct pred_state {
    int calls, taken;
};

static bool first_only(const void *v, size_t vl, void *arg) {
    (void)v;
    (void)vl;
    struct pred_state *ps = arg;
    ps->calls++;
    return ps->taken++ == 0;
}

static bool even_value(const void *v, size_t vl, void *arg) {
    struct pred_state *ps = arg;
    ps->calls++;
    int x;
    memcpy(&x, v, vl < sizeof x ? vl : sizeof x);
    return x % 2 == 0;
}

OT_TEST(registry, match_runs_the_predicate_once_per_entry, .timeout = 60) {
    ot_pid rp;
    ot_assert_eq(ot_registry_start_link(NULL, OT_DUPLICATE, 1, &rp), 0);
    ot_reg r = ot_registry_of(rp);
    for (int x = 1; x <= 3; x++)
        ot_assert_eq(ot_registry_register(r, "k", 1, &x, sizeof x, NULL), 0);
    ot_reg_entry *e = NULL;
    size_t n = 0;
    struct pred_state ps = {0, 0};
    ot_assert_eq(ot_registry_match(r, "k", 1, first_only, &ps, &e, &n), 0);
    ot_assert_eq(n, 1);
    ot_assert(e != NULL);
    ot_assert_eq(*(const int *)e[0].value, 1); /* registration order in one partition */
    ot_assert_eq(ps.calls, 3);
    ot_free(e);
    ps = (struct pred_state){0, 0};
    ot_assert_eq(ot_registry_match(r, "k", 1, even_value, &ps, &e, &n), 0);
    ot_assert_eq(n, 1);
    ot_assert_eq(*(const int *)e[0].value, 2);
    ot_assert_eq(e[0].pid.v, ot_self().v);
    ot_assert_eq(ps.calls, 3);
    ot_free(e);
    ps = (struct pred_state){0, 0};
    ot_assert_eq(ot_registry_count_match(r, "k", 1, even_value, &ps), 1);
    ot_assert_eq(ps.calls, 3);
    ot_unlink(rp);
    ot_assert_eq(ot_registry_stop(r), 0);
}

/* ot_call_name checks its input before the name: a NULL reply or a bad
 * timeout is -EINVAL whether or not the name is held, as ot_call's. */
OT_TEST(names, call_name_bad_input_before_lookup, .timeout = 60) {
    ot_name free_name = OT_NAME_LOCAL("review_nobody");
    ot_msg *r = (ot_msg *)1;
    ot_assert_eq(ot_call_name(&free_name, T_PING, NULL, 0, NULL, 100), -EINVAL);
    ot_assert_eq(ot_call_name(&free_name, T_PING, NULL, 0, &r, -5), -EINVAL);
    ot_assert_eq(ot_call_name(&free_name, T_PING, NULL, 0, &r, OT_CALL_TIMEOUT_MAX + 1), -EINVAL);
    ot_assert_eq(ot_call_name(&free_name, T_PING, NULL, 0, &r, 100), -ESRCH);
    ot_assert(r == NULL);
    ot_pid p;
    ot_start_opts o = {.name = free_name};
    ot_assert_eq(ot_gen_server_start(&rsrv, NULL, &o, &p), 0);
    ot_assert_eq(ot_call_name(&free_name, T_PING, NULL, 0, NULL, 100), -EINVAL);
    ot_assert_eq(ot_call_name(&free_name, T_PING, NULL, 0, &r, -5), -EINVAL);
    ot_assert_eq(ot_call_name(&free_name, T_PING, NULL, 0, &r, 100), 0);
    ot_assert_eq(r->size, 4);
    ot_msg_free(r);
    ot_assert_eq(ot_gen_server_stop(p, OT_REASON(OT_NORMAL), WAIT_MS), 0);
}
