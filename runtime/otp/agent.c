/* Agent (Elixir 1.14): a gen_server whose state is one pointer and whose
 * requests carry the function to run on it. A request is a small header (the
 * function, the result size) followed by a copy of the caller's argument, so
 * the argument a function sees is 8-byte aligned in the agent's own copy of
 * the message, and results travel back as reply bytes: nothing in the agent
 * ever points into a caller's memory, which may be gone after a timeout. */
#include "runtime/otp/gs.h"
#include "runtime/otp/rules.h"

#include <stdlib.h>
#include <string.h>

enum { A_GET = OT_TAG_USER, A_UPDATE, A_GET_AND_UPDATE, A_CAST };

/* Results up to this size are built on the agent's stack. */
#define AGENT_OUT_STACK 256

struct agent_req {
    void (*fn)(void);
    uint64_t out_len;
};

struct agent_start {
    void *(*init)(void *arg);
    void *arg;
};

typedef void (*get_fn)(const void *state, void *out);
typedef void *(*update_fn)(void *state, void *arg);
typedef void *(*gau_fn)(void *state, void *arg, void *out);

static ot_gs_ret a_init(void *arg, void **state) {
    const struct agent_start *s = arg;
    *state = s->init(s->arg);
    return ot_gs_ok();
}

/* A request this module did not build (a plain ot_call or ot_cast to an
 * agent): Elixir's Agent.Server has no clause for it and crashes, and so does
 * this agent, before reading a header the message may not hold. */
static bool foreign_req(const ot_msg *m, uint32_t lo, uint32_t hi) {
    return m->tag < lo || m->tag > hi || m->size < sizeof(struct agent_req);
}

static ot_gs_ret not_agent_req(const ot_msg *m) {
    return ot_gs_stop(ot_reason_error("agent: no clause for a request tagged %u", m->tag));
}

/* The state pointer lives in the gen_server's record: Agent keeps it in a
 * one-pointer box of its own so update can replace it. */
static ot_gs_ret a_call(void *box, const ot_msg *m, ot_from from) {
    void **state = box;
    struct agent_req q;
    if (foreign_req(m, A_GET, A_GET_AND_UPDATE))
        return not_agent_req(m);
    memcpy(&q, ot_msg_data(m), sizeof q);
    void *arg = (char *)ot_msg_data(m) + sizeof q;
    char small[AGENT_OUT_STACK];
    void *out = NULL;
    if (q.out_len) {
        out = q.out_len <= sizeof small ? small : calloc(1, q.out_len);
        if (!out)
            return ot_gs_stop(
                ot_reason_error("agent: no memory for %llu bytes", (unsigned long long)q.out_len));
        memset(out, 0, q.out_len);
    }
    switch (m->tag) {
    case A_GET:
        ((get_fn)q.fn)(*state, out);
        break;
    case A_UPDATE:
        *state = ((update_fn)q.fn)(*state, arg);
        break;
    default: /* A_GET_AND_UPDATE */
        *state = ((gau_fn)q.fn)(*state, arg, out);
        break;
    }
    ot_reply(from, out, q.out_len);
    if (out != small)
        free(out);
    return ot_gs_ok();
}

static ot_gs_ret a_cast(void *box, const ot_msg *m) {
    void **state = box;
    struct agent_req q;
    if (foreign_req(m, A_CAST, A_CAST))
        return not_agent_req(m);
    memcpy(&q, ot_msg_data(m), sizeof q);
    *state = ((update_fn)q.fn)(*state, (char *)ot_msg_data(m) + sizeof q);
    return ot_gs_ok();
}

/* The box that holds the state pointer, so update can replace it: freed by
 * a resource hook when the agent exits, however it exits. */
struct agent_box {
    struct ot__res res;
    void *state;
};

static void box_release(struct ot__res *r, ot_pid owner) {
    (void)owner;
    free(r);
}

static ot_gs_ret a_init_boxed(void *arg, void **state) {
    struct agent_box *box = calloc(1, sizeof *box);
    if (!box)
        return ot_gs_stop(ot_reason_error("agent: no memory"));
    box->res.release = box_release;
    ot__res_add(&box->res);
    a_init(arg, &box->state);
    *state = &box->state;
    return ot_gs_ok();
}

static const ot_gen_server agent_behaviour = {
    .name = "Agent",
    .init = a_init_boxed,
    .handle_call = a_call,
    .handle_cast = a_cast,
};

static int start(void *(*init)(void *), void *arg, const ot_start_opts *o, ot_pid *out, bool link) {
    if (!init)
        return -EINVAL;
    struct agent_start s = {init, arg};
    int rc = ot__gs_start(&agent_behaviour, &s, o, out, link);
    if (rc == 0)
        ot__rule_supervised(*out, "Agent");
    return rc;
}

int ot_agent_start_link(void *(*init)(void *arg), void *arg, const ot_start_opts *o, ot_pid *out) {
    return start(init, arg, o, out, true);
}

int ot_agent_start(void *(*init)(void *arg), void *arg, const ot_start_opts *o, ot_pid *out) {
    return start(init, arg, o, out, false);
}

/* Sends {header, arg} as a call and copies the reply's bytes to out. */
static int agent_call(ot_pid a, uint32_t tag, void (*fn)(void), const void *arg, size_t arg_len,
                      void *out, size_t out_len, int64_t timeout_ms) {
    if (!fn || (arg_len && !arg) || (out_len && !out))
        return -EINVAL;
    if (arg_len > OT_MSG_MAX / 2 || out_len > OT_MSG_MAX)
        return -EMSGSIZE;
    struct agent_req q = {fn, out_len};
    char small[256];
    size_t n = sizeof q + arg_len;
    char *buf = n <= sizeof small ? small : malloc(n);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, &q, sizeof q);
    if (arg_len)
        memcpy(buf + sizeof q, arg, arg_len);
    ot_msg *r = NULL;
    int rc = ot_call(a, tag, buf, n, &r, timeout_ms);
    if (buf != small)
        free(buf);
    if (rc < 0)
        return rc;
    if (out_len)
        memcpy(out, ot_msg_data(r), r->size < out_len ? r->size : out_len);
    ot_msg_free(r);
    return 0;
}

int ot_agent_get(ot_pid a, void (*fn)(const void *state, void *out), void *out, size_t out_len,
                 int64_t timeout_ms) {
    return agent_call(a, A_GET, (void (*)(void))fn, NULL, 0, out, out_len, timeout_ms);
}

int ot_agent_update(ot_pid a, void *(*fn)(void *state, void *arg), const void *arg, size_t arg_len,
                    int64_t timeout_ms) {
    return agent_call(a, A_UPDATE, (void (*)(void))fn, arg, arg_len, NULL, 0, timeout_ms);
}

int ot_agent_get_and_update(ot_pid a, void *(*fn)(void *state, void *arg, void *out),
                            const void *arg, size_t arg_len, void *out, size_t out_len,
                            int64_t timeout_ms) {
    return agent_call(a, A_GET_AND_UPDATE, (void (*)(void))fn, arg, arg_len, out, out_len,
                      timeout_ms);
}

int ot_agent_cast(ot_pid a, void *(*fn)(void *state, void *arg), const void *arg, size_t arg_len) {
    if (!fn || (arg_len && !arg))
        return -EINVAL;
    if (arg_len > OT_MSG_MAX / 2)
        return -EMSGSIZE;
    struct agent_req q = {(void (*)(void))fn, 0};
    char small[256];
    size_t n = sizeof q + arg_len;
    char *buf = n <= sizeof small ? small : malloc(n);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, &q, sizeof q);
    if (arg_len)
        memcpy(buf + sizeof q, arg, arg_len);
    int rc = ot_cast(a, A_CAST, buf, n);
    if (buf != small)
        free(buf);
    return rc;
}

int ot_agent_stop(ot_pid a, ot_reason why, int64_t timeout_ms) {
    return ot_gen_server_stop(a, why, timeout_ms);
}
