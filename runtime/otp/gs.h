/* gen_server's private wire format and server record, shared by the server
 * loop (gs_server.c), the client calls (gs_client.c) and Agent (agent.c).
 *
 * Every protocol message carries a 16-byte trailer after the user's payload,
 * so that a callback can be handed the message itself with tag and size put
 * back to the user's (the server owns the envelope it received): the user's
 * tag, a kind with a magic, and for calls the caller's deadline. Calls are
 * OT_TAG_CALL with the caller's alias as ref; casts, the system stop and the
 * init request are OT_TAG_CAST. Replies go through the caller's alias
 * (ot__reply_send): OT_TAG_REPLY for a reply, OT_TAG_CALL for a refusal by the
 * overload policy, so a reply can never land after its call ended. */
#ifndef OT_OTP_GS_H
#define OT_OTP_GS_H

#include <otter.h>
#include <stdatomic.h>

#include "runtime/ext.h"

#define GS_MAGIC 0x6f740000u
#define GS_KIND_MASK 0xffffu
enum gs_kind { GS_CALL = 1, GS_CAST, GS_STOP, GS_INIT };

struct gs_trailer {
    uint32_t tag;  /* the user's */
    uint32_t kind; /* GS_MAGIC | enum gs_kind */
    int64_t deadline;
};

/* The init request: everything the new process needs, by value, since a
 * starter that timed out is gone while the request may still be read. */
struct gs_init_req {
    const ot_gen_server *b;
    void *arg;
    ot_pid starter;
    ot_ref ack; /* the starter's alias */
    ot_pid parent;
    uint32_t max_queue, warn_queue;
    int overload;
    bool keep_expired;
    int name_kind;
    char local[OT_NAME_MAX];
    const ot_via_ops *via;
    void *via_arg;
    size_t key_len; /* the key's bytes follow */
};

struct gs_ack {
    int32_t rc; /* 0, OT_IGNORED, -EEXIST, -ECHILD, -ENOMEM */
    ot_pid holder;
    ot_reason why;
};

enum { GSF_KEEP_EXPIRED = 1, GSF_WARNED = 2 };

/* A running server: 96 bytes of malloc, freed when the process exits. */
struct gs {
    struct ot__res res;
    const ot_gen_server *b;
    void *state;
    ot_pid parent;
    ot_ref tmo; /* the armed return timeout's timer, OT_NOREF if none */
    uint32_t tmo_seq;
    uint16_t flags;
    uint16_t overload;
    uint32_t max_queue, warn_queue;
    _Atomic uint64_t calls_expired, calls_rejected, casts_dropped;
};

/* The handler callback of every gen_server (gs_server.c). */
int ot__gs_handle(void *st, const ot_msg *m);

/* Starts a server (gs_client.c); Agent uses it with its own behaviour. */
int ot__gs_start(const ot_gen_server *b, void *arg, const ot_start_opts *o, ot_pid *out, bool link);

static inline bool gs_trailer_get(const ot_msg *m, struct gs_trailer *t) {
    if (m->size < sizeof *t)
        return false;
    __builtin_memcpy(t, (const char *)ot_msg_data(m) + m->size - sizeof *t, sizeof *t);
    return (t->kind & ~GS_KIND_MASK) == GS_MAGIC;
}

#endif
