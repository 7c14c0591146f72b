/* PubSub on a duplicate registry, as Elixir's Registry documentation builds
 * it: a subscription is an entry (no value) under the topic, a broadcast is a
 * dispatch that sends one message per live entry. Subscriptions vanish with
 * their process as every entry does. A broadcast reads the tables directly,
 * so any process or foreign thread may publish. */
#include "registry_int.h"

OT_API int ot_pubsub_start_link(const char *name, unsigned partitions, ot_pid *out)
{
    return ot_registry_start_link(name, OT_DUPLICATE, partitions, out);
}

OT_API int ot_pubsub_subscribe(ot_reg ps, const void *topic, size_t tlen)
{
    return ot_registry_register(ps, topic, tlen, NULL, 0, NULL);
}

OT_API int ot_pubsub_unsubscribe(ot_reg ps, const void *topic, size_t tlen)
{
    return ot_registry_unregister(ps, topic, tlen);
}

struct bcast {
    ot_pid except;
    uint32_t tag;
    const void *msg;
    size_t len;
    int sent, err;
};

static void bcast_fn(const ot_reg_entry *e, size_t n, void *arg)
{
    struct bcast *b = arg;
    for (size_t i = 0; i < n; i++) {
        if (e[i].pid.v == b->except.v)
            continue;
        int rc = ot_send(e[i].pid, b->tag, b->msg, b->len);
        if (rc)
            b->err = rc;
        else
            b->sent++;
    }
}

OT_API int ot_pubsub_broadcast_from(ot_reg ps, ot_pid except, const void *topic, size_t tlen,
                                    uint32_t tag, const void *msg, size_t len)
{
    if (!msg && len)
        return -EINVAL;
    if (len > OT_MSG_MAX)
        return -EMSGSIZE;
    struct bcast b = {.except = except, .tag = tag, .msg = msg, .len = len};
    int rc = ot_registry_dispatch(ps, topic, tlen, bcast_fn, &b);
    if (rc)
        return rc;
    return b.sent ? b.sent : b.err;
}

OT_API int ot_pubsub_broadcast(ot_reg ps, const void *topic, size_t tlen, uint32_t tag,
                               const void *msg, size_t len)
{
    return ot_pubsub_broadcast_from(ps, OT_NOPID, topic, tlen, tag, msg, len);
}
