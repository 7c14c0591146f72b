/* The README's twenty-line example: a gen_server counter under a supervisor,
 * found by name, cast to and called; once stopped, a call is noproc. */
#include <otter.h>
#include <stdio.h>

enum { ADD = OT_TAG_USER, GET };

static ot_gs_ret init(void *arg, void **state) { /* init/1: the state is a long */
    *state = ot_calloc(1, sizeof(long));
    return ot_gs_ok();
}
static ot_gs_ret handle_cast(void *state, const ot_msg *m) { /* {noreply, N + Add} */
    *(long *)state += *(const long *)ot_msg_data(m);
    return ot_gs_ok();
}
static ot_gs_ret handle_call(void *state, const ot_msg *m, ot_from from) {
    return ot_gs_reply(state, sizeof(long)); /* {reply, N, N} */
}
static const ot_gen_server counter = {
    .init = init, .handle_call = handle_call, .handle_cast = handle_cast};
static int start_counter(void *arg, ot_pid *out) { /* returns once init has */
    ot_start_opts o = {.name = OT_NAME_LOCAL("counter")};
    return ot_gen_server_start_link(&counter, NULL, &o, out);
}

static void main_proc(void *arg) {
    ot_pid sup, c;
    ot_child_spec child = {.id = "counter", .start = start_counter}; /* permanent worker */
    ot_application_start(&(ot_sup_flags){0}, &child, 1, NULL, &sup); /* the top supervisor */
    for (long i = 1; i <= 10; i++)
        ot_cast(ot_whereis("counter"), ADD, &i, sizeof i);
    ot_msg *r;
    if (ot_call(c = ot_whereis("counter"), GET, NULL, 0, &r, 5000) == 0) /* or -ETIMEDOUT, ... */
        printf("count %ld\n", *(long *)ot_msg_data(r));
    ot_supervisor_terminate_child(sup, "counter");
    printf("after stop: %s\n", ot_call(c, GET, NULL, 0, &r, 5000) == -ESRCH ? "noproc" : "?");
}

int main(void) {
    return ot_run(main_proc, NULL, NULL) == 0 ? 0 : 1;
}
