/* gen_server and Agent named through a Registry ({:via, Registry, {reg, key}}
 * in Elixir 1.14): the server's name is an entry of the registry from before
 * init until it exits; start with a taken name gives -EEXIST and the holder
 * and leaves the holder's entry alone; calls and casts by the via name reach
 * the server; ignore and stop from init release the name before start
 * returns; a killed server's name is free at once for look-ups and can be
 * taken again; an Agent by via name; a duplicate registry refuses to name. */
#include <otter/testing.h>

#include <string.h>

enum { TAG_GET = OT_TAG_USER + 1, TAG_SET };

#define WAIT_MS 20000

struct counter {
    int value;
    int init_mode; /* 0 ok, 1 ignore, 2 stop */
};

static ot_gs_ret c_init(void *arg, void **state) {
    struct counter *c = ot_alloc(sizeof *c);
    *c = *(struct counter *)arg;
    *state = c;
    if (c->init_mode == 1)
        return ot_gs_ignore();
    if (c->init_mode == 2)
        return ot_gs_stop(ot_reason_error("no"));
    return ot_gs_ok();
}

static ot_gs_ret c_call(void *state, const ot_msg *req, ot_from from) {
    struct counter *c = state;
    (void)from;
    return ot_gs_reply(&c->value, sizeof c->value);
}

static ot_gs_ret c_cast(void *state, const ot_msg *m) {
    struct counter *c = state;
    if (m->tag == TAG_SET && m->size == sizeof(int))
        memcpy(&c->value, ot_msg_data(m), sizeof(int));
    return ot_gs_ok();
}

static const ot_gen_server counter_gs = {
    .name = "counter", .init = c_init, .handle_call = c_call, .handle_cast = c_cast};

static int call_value(const ot_name *n) {
    ot_msg *r = NULL;
    int rc = ot_call_name(n, TAG_GET, NULL, 0, &r, WAIT_MS);
    ot_assert_eq(rc, 0);
    ot_assert(r != NULL && r->size == sizeof(int));
    int v;
    memcpy(&v, ot_msg_data(r), sizeof v);
    ot_msg_free(r);
    return v;
}

static ot_reg start_registry(int keys) {
    ot_pid p;
    ot_assert_eq(ot_registry_start_link(NULL, keys, 2, &p), 0);
    return ot_registry_of(p);
}

OT_TEST(registry_via, gen_server_named_through_the_registry, .timeout = 120) {
    ot_reg r = start_registry(OT_UNIQUE);
    ot_start_opts o = {.name = OT_NAME_REGISTRY(r, "counter:1", 9)};
    struct counter arg = {.value = 41};
    ot_pid s;
    ot_assert_eq(ot_gen_server_start_link(&counter_gs, &arg, &o, &s), 0);
    /* The name is the server's entry, with no value. */
    ot_assert_eq(ot_registry_whereis_name(r, "counter:1", 9).v, s.v);
    ot_assert_eq(ot_whereis_name(&o.name).v, s.v);
    ot_reg_entry *e;
    size_t n;
    ot_assert_eq(ot_registry_lookup(r, "counter:1", 9, &e, &n), 0);
    ot_assert(n == 1 && e[0].pid.v == s.v && e[0].vlen == 0);
    ot_free(e);
    ot_reg_key *ks;
    ot_assert_eq(ot_registry_keys(r, s, &ks, &n), 0);
    ot_assert(n == 1 && ks[0].klen == 9 && memcmp(ks[0].key, "counter:1", 9) == 0);
    ot_free(ks);

    /* Calls and casts by the via name. */
    ot_assert_eq(call_value(&o.name), 41);
    int seven = 7;
    ot_assert_eq(ot_cast_name(&o.name, TAG_SET, &seven, sizeof seven), 0);
    ot_assert_eq(call_value(&o.name), 7);

    /* Taken: -EEXIST with the holder, whose entry stays. */
    ot_pid s2;
    struct counter arg2 = {.value = 1};
    ot_assert_eq(ot_gen_server_start(&counter_gs, &arg2, &o, &s2), -EEXIST);
    ot_assert_eq(s2.v, s.v);
    ot_assert_eq(ot_registry_whereis_name(r, "counter:1", 9).v, s.v);
    ot_assert_eq(ot_registry_count(r), 1);

    /* Stopped: the name goes with it and may be taken again. */
    ot_assert_eq(ot_gen_server_stop(s, OT_REASON(OT_NORMAL), WAIT_MS), 0);
    ot_assert_eq(ot_registry_whereis_name(r, "counter:1", 9).v, 0);
    ot_msg *rep = NULL;
    ot_assert_eq(ot_call_name(&o.name, TAG_GET, NULL, 0, &rep, 1000), -ESRCH);
    ot_assert_eq(ot_gen_server_start(&counter_gs, &arg2, &o, &s2), 0);
    ot_assert_eq(call_value(&o.name), 1);

    /* Killed: free at once for look-ups, taken over by the next start. */
    ot_ref m = ot_monitor(s2);
    ot_assert_eq(ot_exit(s2, OT_REASON(OT_KILL)), 0);
    ot_msg *d = ot_receive_ref(m, WAIT_MS);
    ot_assert(d != NULL);
    ot_msg_free(d);
    ot_assert_eq(ot_registry_whereis_name(r, "counter:1", 9).v, 0);
    ot_pid s3;
    ot_assert_eq(ot_gen_server_start(&counter_gs, &arg, &o, &s3), 0);
    ot_assert_eq(ot_registry_whereis_name(r, "counter:1", 9).v, s3.v);
    ot_assert_eq(ot_gen_server_stop(s3, OT_REASON(OT_NORMAL), WAIT_MS), 0);
    for (int i = 0; i < WAIT_MS && ot_registry_count(r) != 0; i++)
        ot_sleep(1);
    ot_assert_eq(ot_registry_count(r), 0);
}

OT_TEST(registry_via, ignore_and_stop_from_init_release_the_name, .timeout = 120) {
    ot_reg r = start_registry(OT_UNIQUE);
    ot_start_opts o = {.name = OT_NAME_REGISTRY(r, "svc", 3)};
    struct counter ign = {.init_mode = 1}, stop = {.init_mode = 2};
    ot_pid s;
    ot_assert_eq(ot_gen_server_start(&counter_gs, &ign, &o, &s), OT_IGNORED);
    ot_assert_eq(s.v, 0);
    ot_assert_eq(ot_registry_whereis_name(r, "svc", 3).v, 0);
    ot_reason why;
    o.why = &why;
    ot_assert_eq(ot_gen_server_start(&counter_gs, &stop, &o, &s), -ECHILD);
    ot_assert_eq(why.kind, OT_ERROR);
    ot_assert_eq(ot_registry_whereis_name(r, "svc", 3).v, 0);
    struct counter ok = {.value = 5};
    ot_assert_eq(ot_gen_server_start(&counter_gs, &ok, &o, &s), 0);
    ot_assert_eq(ot_registry_whereis_name(r, "svc", 3).v, s.v);
    ot_assert_eq(ot_gen_server_stop(s, OT_REASON(OT_NORMAL), WAIT_MS), 0);
}

OT_TEST(registry_via, duplicate_registry_and_bad_keys_refuse, .timeout = 120) {
    ot_reg d = start_registry(OT_DUPLICATE);
    ot_start_opts o = {.name = OT_NAME_REGISTRY(d, "x", 1)};
    struct counter arg = {0};
    ot_pid s;
    ot_assert_eq(ot_gen_server_start(&counter_gs, &arg, &o, &s), -EINVAL);
    ot_assert_eq(s.v, 0);
    ot_assert_eq(ot_registry_count(d), 0);
    ot_reg u = start_registry(OT_UNIQUE);
    /* A stopped registry names nothing. */
    ot_assert_eq(ot_registry_stop(u), 0);
    ot_start_opts o2 = {.name = OT_NAME_REGISTRY(u, "y", 1)};
    ot_assert_eq(ot_gen_server_start(&counter_gs, &arg, &o2, &s), -EBADF);
    ot_assert_eq(ot_whereis_name(&o2.name).v, 0);
}
static void *agent_init(void *arg) {
    int *v = ot_alloc(sizeof *v);
    *v = *(int *)arg;
    return v;
}
static void agent_read(const void *state, void *out) { *(int *)out = *(const int *)state; }
static void *agent_add(void *state, void *arg) {
    *(int *)state += *(const int *)arg;
    return state;
}

OT_TEST(registry_via, agent_named_through_the_registry, .timeout = 120) {
    ot_reg r = start_registry(OT_UNIQUE);
    ot_start_opts o = {.name = OT_NAME_REGISTRY(r, "agent", 5)};
    int init = 10;
    ot_pid a;
    ot_assert_eq(ot_agent_start_link(agent_init, &init, &o, &a), 0);
    ot_pid found = ot_whereis_name(&o.name);
    ot_assert_eq(found.v, a.v);
    int five = 5;
    ot_assert_eq(ot_agent_update(found, agent_add, &five, sizeof five, WAIT_MS), 0);
    int v = 0;
    ot_assert_eq(ot_agent_get(ot_registry_whereis_name(r, "agent", 5), agent_read, &v, sizeof v,
                             WAIT_MS),
                 0);
    ot_assert_eq(v, 15);
    ot_pid b;
    ot_assert_eq(ot_agent_start(agent_init, &init, &o, &b), -EEXIST);
    ot_assert_eq(b.v, a.v);
    ot_assert_eq(ot_agent_stop(a, OT_REASON(OT_NORMAL), WAIT_MS), 0);
    ot_assert_eq(ot_registry_whereis_name(r, "agent", 5).v, 0);
}
