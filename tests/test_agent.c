/* Agent against Elixir 1.14's Agent: start_link runs init in the agent;
 * get, update, get_and_update run the caller's function in the agent, in
 * order with casts; results and arguments are copied both ways; timeouts
 * (the late result never lands, the caller's buffer is never written after
 * the call returned); stop with its reason; names; bad input. */
#include <otter/testing.h>

#include <string.h>

#define WAIT_MS 20000

typedef struct counter {
    int64_t n;
    ot_pid owner; /* the process that ran init */
} counter;

static void *init_counter(void *arg) {
    counter *c = ot_alloc(sizeof *c);
    c->n = *(const int64_t *)arg;
    c->owner = ot_self();
    return c;
}

static void get_n(const void *state, void *out) {
    memcpy(out, &((const counter *)state)->n, sizeof(int64_t));
}

static void get_owner(const void *state, void *out) {
    ot_pid me = ot_self();
    ot_pid o[2] = {((const counter *)state)->owner, me};
    memcpy(out, o, sizeof o);
}

static void *add(void *state, void *arg) {
    ((counter *)state)->n += *(const int64_t *)arg;
    return state;
}

static void *pop_and_double(void *state, void *arg, void *out) {
    counter *c = state;
    memcpy(out, &c->n, sizeof c->n);
    c->n *= 2;
    return c;
}

static void *slow_add(void *state, void *arg) {
    ot_sleep(100);
    return add(state, arg);
}

static void slow_get(const void *state, void *out) {
    ot_sleep(100);
    memset(out, 0x5a, 64);
}

static void *replace_state(void *state, void *arg) {
    counter *c = ot_alloc(sizeof *c);
    *c = *(counter *)state;
    c->n = -1;
    ot_free(state);
    return c;
}

static int64_t get(ot_pid a) {
    int64_t n = 0;
    ot_assert_eq(ot_agent_get(a, get_n, &n, sizeof n, WAIT_MS), 0);
    return n;
}

OT_TEST(agent, get_update_get_and_update_cast, .timeout = 60) {
    int64_t start = 10;
    ot_pid a;
    ot_assert_eq(ot_agent_start_link(init_counter, &start, NULL, &a), 0);
    ot_assert_eq(get(a), 10);
    ot_pid owners[2];
    ot_assert_eq(ot_agent_get(a, get_owner, owners, sizeof owners, WAIT_MS), 0);
    ot_assert_eq(owners[0].v, a.v); /* init and get both ran in the agent */
    ot_assert_eq(owners[1].v, a.v);
    int64_t five = 5;
    ot_assert_eq(ot_agent_update(a, add, &five, sizeof five, WAIT_MS), 0);
    ot_assert_eq(get(a), 15);
    int64_t old = 0;
    ot_assert_eq(ot_agent_get_and_update(a, pop_and_double, NULL, 0, &old, sizeof old, WAIT_MS), 0);
    ot_assert_eq(old, 15);
    ot_assert_eq(get(a), 30);
    for (int64_t i = 1; i <= 100; i++)
        ot_assert_eq(ot_agent_cast(a, add, &i, sizeof i), 0);
    ot_assert_eq(get(a), 30 + 5050); /* casts before the get, in order */
    ot_assert_eq(ot_agent_update(a, replace_state, NULL, 0, WAIT_MS), 0);
    ot_assert_eq(get(a), -1); /* the state pointer itself was replaced */
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(a, &in), 0);
    ot_assert(strcmp(in.behaviour, "Agent") == 0);
    ot_unlink(a);
    ot_assert_eq(ot_agent_stop(a, OT_REASON(OT_SHUTDOWN), WAIT_MS), 0);
    ot_assert(!ot_is_alive(a));
    ot_assert_eq(ot_agent_get(a, get_n, &old, sizeof old, WAIT_MS), -ESRCH);
    ot_assert_eq(ot_agent_stop(a, OT_REASON(OT_NORMAL), WAIT_MS), -ESRCH);
}

OT_TEST(agent, timeouts_leave_the_callers_memory_alone, .timeout = 60) {
    int64_t start = 1;
    ot_pid a;
    ot_assert_eq(ot_agent_start(init_counter, &start, NULL, &a), 0);
    char buf[64];
    memset(buf, 0, sizeof buf);
    ot_assert_eq(ot_agent_get(a, slow_get, buf, sizeof buf, 10), -ETIMEDOUT);
    int64_t two = 2;
    ot_assert_eq(ot_agent_update(a, slow_add, &two, sizeof two, 10), -ETIMEDOUT);
    two = 1000; /* the agent's copy of the argument is unaffected */
    ot_sleep(300);
    for (size_t i = 0; i < sizeof buf; i++)
        ot_assert_eq(buf[i], 0);
    /* the update's deadline had passed by the time the agent took it (it was
     * busy in the slow get), so with the default it was dropped, not run; the
     * get itself may have expired too on a slow machine */
    struct ot_process_info in;
    ot_assert_eq(ot_process_info(a, &in), 0);
    ot_assert(in.calls_expired == 1 || in.calls_expired == 2, "%llu",
              (unsigned long long)in.calls_expired);
    ot_assert_eq(get(a), 1);
    ot_assert_eq(in.message_queue_len, 0);
    ot_assert(ot_receive(0) == NULL);
}

OT_TEST(agent, named_and_bad_input, .timeout = 60) {
    int64_t start = 7;
    ot_start_opts o = {.name = OT_NAME_LOCAL("counter")};
    ot_pid a, b;
    ot_assert_eq(ot_agent_start(init_counter, &start, &o, &a), 0);
    ot_assert_eq(ot_whereis("counter").v, a.v);
    ot_assert_eq(ot_agent_start(init_counter, &start, &o, &b), -EEXIST);
    ot_assert_eq(b.v, a.v);
    ot_assert_eq(ot_agent_start(NULL, &start, NULL, &b), -EINVAL);
    int64_t n;
    ot_assert_eq(ot_agent_get(a, NULL, &n, sizeof n, WAIT_MS), -EINVAL);
    ot_assert_eq(ot_agent_get(a, get_n, NULL, sizeof n, WAIT_MS), -EINVAL);
    ot_assert_eq(ot_agent_update(a, add, NULL, 8, WAIT_MS), -EINVAL);
    ot_assert_eq(ot_agent_update(a, NULL, &n, 8, WAIT_MS), -EINVAL);
    ot_assert_eq(ot_agent_cast(a, NULL, &n, 8), -EINVAL);
    ot_assert_eq(ot_agent_get(a, get_n, &n, sizeof n, -3), -EINVAL);
    ot_assert_eq(ot_agent_get(ot_self(), get_n, &n, sizeof n, 10), -EDEADLK);
    ot_assert_eq(get(a), 7);
    ot_assert_eq(ot_agent_stop(a, OT_REASON(OT_NORMAL), WAIT_MS), 0);
    ot_assert_eq(ot_whereis("counter").v, 0);
}

static void *crash_init(void *arg) {
    ot_exit_self(ot_reason_error("agent init"));
}

OT_TEST(agent, init_crash_fails_the_start, .timeout = 60) {
    ot_trap_exit(true);
    ot_reason why;
    ot_start_opts o = {.why = &why};
    ot_pid a;
    ot_assert_eq(ot_agent_start_link(crash_init, NULL, &o, &a), -ECHILD);
    ot_assert(why.kind == OT_ERROR && strcmp(why.text, "agent init") == 0);
}
