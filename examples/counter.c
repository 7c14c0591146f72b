/* A counter that ticks through handle_info: init arms a timer, each tick
 * counts and re-arms it, and the server stops itself (terminate runs) after
 * the number of ticks asked for. Usage: counter [interval_ms [ticks]]
 * (default: every second, 5 ticks). */
#include <otter.h>
#include <stdio.h>
#include <stdlib.h>

enum { TICK = OT_TAG_USER, GET };

typedef struct counter {
    int64_t interval_ms;
    int ticks, limit;
} counter;

static ot_gs_ret init(void *arg, void **state) {
    counter *c = ot_alloc(sizeof *c);
    *c = *(const counter *)arg;
    *state = c;
    ot_send_after(ot_self(), c->interval_ms, TICK, NULL, 0); /* erlang:send_after */
    return ot_gs_ok();
}

static ot_gs_ret handle_info(void *state, const ot_msg *m) {
    counter *c = state;
    if (m->tag != TICK)
        return ot_gs_ok();
    printf("tick %d\n", ++c->ticks);
    fflush(stdout);
    if (c->ticks == c->limit)
        return ot_gs_stop(OT_REASON(OT_NORMAL));
    ot_send_after(ot_self(), c->interval_ms, TICK, NULL, 0);
    return ot_gs_ok();
}

static ot_gs_ret handle_call(void *state, const ot_msg *m, ot_from from) {
    return ot_gs_reply(&((counter *)state)->ticks, sizeof(int));
}

static void terminate(void *state, ot_reason why) {
    printf("counter stops after %d ticks\n", ((counter *)state)->ticks);
}

static const ot_gen_server ticker = {.name = "counter",
                                     .init = init,
                                     .handle_call = handle_call,
                                     .handle_info = handle_info,
                                     .terminate = terminate};

static void main_proc(void *arg) {
    ot_otp_rules(0, 0); /* a short demo: no supervisor tree */
    ot_pid c;
    if (ot_gen_server_start_link(&ticker, arg, NULL, &c) != 0)
        ot_exit_self(ot_reason_error("start"));
    ot_ref mon = ot_monitor(c);
    ot_msg *down = ot_receive_ref(mon, OT_INFINITY);
    char why[64];
    ot_reason_format(((const ot_down_msg *)ot_msg_data(down))->reason, why, sizeof why);
    printf("counter exited: %s\n", why);
}

int main(int argc, char **argv) {
    counter c = {.interval_ms = argc > 1 ? atoll(argv[1]) : 1000,
                 .limit = argc > 2 ? atoi(argv[2]) : 5};
    if (c.interval_ms <= 0 || c.limit <= 0) {
        fprintf(stderr, "usage: counter [interval_ms [ticks]]\n");
        return 2;
    }
    return ot_run(main_proc, &c, NULL) == 0 ? 0 : 1;
}
