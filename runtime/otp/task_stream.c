/* Task.async_stream: the caller drives a window of tasks over a lazily
 * produced input. Invariants: at most max_concurrency tasks run; ordered,
 * the span from the next item to hand to `each` to the next item to start is
 * at most 2 * max_concurrency, so item i lives in slot i % cap and finished
 * results wait there for the ones before them; unordered, a result is handed
 * over as it comes and its slot freed. Tasks are linked to the caller (a crash
 * takes it down unless it traps exits, as in Elixir) but unlink themselves
 * after replying, so a trapping caller does not collect one EXIT per item.
 * Running tasks are kept in start order; with one timeout for all, the
 * oldest has the nearest deadline. Replies and DOWNs are found by ref through
 * a small open-addressed table, so a receive costs O(1) per message whatever
 * the window. */
#include "runtime/otp/deadline.h"
#include "runtime/otp/idmap.h"
#include "runtime/otp/task_int.h"

#include <otter/supervisor.h>

#include <string.h>

struct slot {
    ot_task t;
    uint64_t index;
    int64_t deadline;
    ot_msg *result;
    int status;
    ot_reason reason;
    bool busy, done;
    uint32_t older, newer; /* the running list, by start order; UINT32_MAX ends */
};

#define NIL UINT32_MAX

struct st {
    struct slot *slots;
    uint32_t cap;
    uint32_t *free; /* unordered: a stack of free slots */
    uint32_t nfree;
    struct ot__idmap refs; /* a running task's monitor ref -> its slot */
    uint32_t head, tail; /* oldest and newest running */
    uint32_t running;
    uint64_t next_index, emit_index;
    const ot_stream_opts *o;
    ot_pid sup; /* async_stream_nolink: the Task.Supervisor, else OT_NOPID */
};

static bool match(const ot_msg *m, void *arg) {
    arg = &((struct st *)arg)->refs;
    return (m->tag == OT_TAG_REPLY || m->tag == OT_TAG_DOWN) && m->ref.v &&
           ot__idmap_get(arg, m->ref.v) != OT__IDMAP_NONE;
}

static void run_unlink(struct st *s, uint32_t i) {
    struct slot *x = &s->slots[i];
    if (x->older != NIL)
        s->slots[x->older].newer = x->newer;
    else
        s->head = x->newer;
    if (x->newer != NIL)
        s->slots[x->newer].older = x->older;
    else
        s->tail = x->older;
    ot__idmap_del(&s->refs, x->t.ref.v);
    s->running--;
}

static int start_one(struct st *s, ot_task_fn fn, const ot_buf *item) {
    uint32_t i = s->o->unordered ? s->free[--s->nfree] : (uint32_t)(s->next_index % s->cap);
    struct slot *x = &s->slots[i];
    const void *data = item->data ? item->data : "";
    int rc;
    if (s->sup.v) {
        rc = ot__task_sup_go(s->sup, fn, false, data, item->len, NULL, &x->t);
    } else {
        ot_spawn_opts so = {.link = true, .stack_size = s->o->stack_size, .behaviour = "task"};
        rc = ot__task_spawn(fn, NULL, data, item->len, true, &so, &x->t);
    }
    if (rc < 0) {
        if (s->o->unordered)
            s->free[s->nfree++] = i;
        return rc;
    }
    int64_t tmo = s->o->timeout_ms;
    x->index = s->next_index++;
    x->deadline = ot__deadline_ms(tmo);
    x->result = NULL;
    x->status = 0;
    x->busy = true;
    x->done = false;
    x->newer = NIL;
    x->older = s->tail;
    if (s->tail != NIL)
        s->slots[s->tail].newer = i;
    else
        s->head = i;
    s->tail = i;
    ot__idmap_place(&s->refs, x->t.ref.v, i); /* sized for the window: no growth */
    s->running++;
    return 0;
}

static void kill_slot(struct st *s, uint32_t i) {
    struct slot *x = &s->slots[i];
    ot_unlink(x->t.pid);
    ot_exit(x->t.pid, OT_REASON(OT_KILL));
    ot_demonitor(x->t.ref, OT_DEMONITOR_FLUSH);
    run_unlink(s, i);
}

static void stop_all(struct st *s) {
    while (s->head != NIL)
        kill_slot(s, s->head);
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->slots[i].result) {
            ot_msg_free(s->slots[i].result);
            s->slots[i].result = NULL;
        }
}

static int emit(struct st *s, uint32_t i, int (*each)(const ot_stream_item *, void *), void *arg) {
    struct slot *x = &s->slots[i];
    ot_stream_item r = {.index = x->index, .status = x->status, .reason = x->reason};
    if (x->result) {
        r.data = ot_msg_data(x->result);
        r.len = x->result->size;
    }
    int rc = each(&r, arg);
    if (x->result)
        ot_msg_free(x->result);
    x->result = NULL;
    x->busy = false;
    if (s->o->unordered)
        s->free[s->nfree++] = i;
    return rc;
}

/* A message for slot i: its reply or its DOWN. */
static void finish(struct st *s, uint32_t i, ot_msg *m) {
    struct slot *x = &s->slots[i];
    run_unlink(s, i);
    x->done = true;
    if (m->tag == OT_TAG_REPLY) {
        ot_demonitor(x->t.ref, OT_DEMONITOR_FLUSH);
        x->result = m;
        return;
    }
    x->status = -ECONNRESET;
    x->reason = ((const ot_down_msg *)ot_msg_data(m))->reason;
    ot_msg_free(m);
}

static bool can_start(const struct st *s, unsigned mc) {
    if (s->running >= mc)
        return false;
    return s->o->unordered ? s->nfree > 0 : s->next_index - s->emit_index < s->cap;
}

static int setup(struct st *s, const ot_stream_opts *o, unsigned mc) {
    s->o = o;
    s->cap = o->unordered ? mc : 2 * mc;
    uint32_t hcap = 8;
    while (hcap < 2 * mc)
        hcap <<= 1;
    s->slots = ot_calloc(s->cap, sizeof *s->slots);
    s->free = ot_calloc(s->cap, sizeof *s->free);
    if (!s->slots || !s->free || ot__idmap_init(&s->refs, hcap) < 0)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->cap; i++)
        s->free[i] = s->cap - 1 - i;
    s->nfree = s->cap;
    s->head = s->tail = NIL;
    return 0;
}

static void teardown(struct st *s) {
    ot_free(s->slots);
    ot_free(s->free);
    ot__idmap_fini(&s->refs);
}

static int drive(struct st *s, const ot_stream *in, ot_task_fn fn, unsigned mc,
                 int (*each)(const ot_stream_item *, void *), void *arg) {
    bool ended = false;
    for (;;) {
        while (!ended && can_start(s, mc)) {
            ot_buf item = {NULL, 0};
            int rc = in->next(in->state, &item);
            if (rc < 0)
                return rc;
            if (rc == 0) {
                ended = true;
                break;
            }
            if ((rc = start_one(s, fn, &item)) < 0)
                return rc;
        }
        if (!s->o->unordered)
            while (s->emit_index < s->next_index) {
                uint32_t i = (uint32_t)(s->emit_index % s->cap);
                if (!s->slots[i].done)
                    break;
                s->slots[i].done = false;
                s->emit_index++;
                int rc = emit(s, i, each, arg);
                if (rc != 0)
                    return rc;
            }
        if (ended && s->running == 0 && (s->o->unordered || s->emit_index == s->next_index))
            return 0;
        if (s->running == 0)
            continue; /* room freed by emitting: start more */
        int64_t wait = OT_INFINITY, deadline = s->slots[s->head].deadline;
        if (deadline != INT64_MAX) {
            int64_t now = ot_now_ms();
            wait = deadline > now ? deadline - now : 0;
        }
        ot_msg *m = ot_receive_match(match, s, wait);
        uint32_t i;
        if (m) {
            i = ot__idmap_get(&s->refs, m->ref.v);
            finish(s, i, m);
        } else {
            if (errno == ENOTCONN)
                return -ENOTCONN;
            i = s->head;
            if (s->slots[i].deadline > ot_now_ms())
                continue;
            if (s->o->on_timeout != OT_ON_TIMEOUT_KILL_TASK) {
                ot_reason why = OT_REASON(OT_TIMEOUT);
                strcpy(why.text, "Task.async_stream");
                /* every task still running goes first, as Elixir's stream
                 * kills its tasks: a nolink stream's are not linked to us */
                stop_all(s);
                ot_exit_self(why);
            }
            kill_slot(s, i);
            s->slots[i].done = true;
            s->slots[i].status = -ETIMEDOUT;
        }
        if (s->o->unordered) {
            s->slots[i].done = false;
            int rc = emit(s, i, each, arg);
            if (rc != 0)
                return rc;
        }
    }
}

static int stream(ot_pid sup, const ot_stream *in, ot_task_fn fn, const ot_stream_opts *o,
                  int (*each)(const ot_stream_item *r, void *arg), void *arg) {
    if (!in || !in->next || !fn || !each)
        return -EINVAL;
    if (!ot_self().v)
        return -EPERM;
    ot_stream_opts opts = o ? *o : (ot_stream_opts){0};
    if (opts.timeout_ms == 0)
        opts.timeout_ms = 5000;
    if (opts.timeout_ms < 0 && opts.timeout_ms != OT_INFINITY)
        return -EINVAL;
    if (opts.on_timeout != OT_ON_TIMEOUT_EXIT && opts.on_timeout != OT_ON_TIMEOUT_KILL_TASK)
        return -EINVAL;
    unsigned mc = opts.max_concurrency ? opts.max_concurrency : ot_schedulers();
    if (mc == 0)
        mc = 1;
    if (mc > (1u << 20))
        return -EINVAL;
    struct st s;
    memset(&s, 0, sizeof s);
    s.sup = sup;
    int rc = setup(&s, &opts, mc);
    if (rc == 0)
        rc = drive(&s, in, fn, mc, each, arg);
    if (s.slots)
        stop_all(&s);
    teardown(&s);
    return rc;
}

int ot_task_async_stream(const ot_stream *in, ot_task_fn fn, const ot_stream_opts *o,
                         int (*each)(const ot_stream_item *r, void *arg), void *arg) {
    return stream(OT_NOPID, in, fn, o, each, arg);
}

int ot_task_sup_async_stream_nolink(ot_pid sup, const ot_stream *in, ot_task_fn fn,
                                    const ot_stream_opts *o,
                                    int (*each)(const ot_stream_item *r, void *arg), void *arg) {
    if (!sup.v)
        return -ESRCH;
    return stream(sup, in, fn, o, each, arg);
}
