/* The README's twenty-line example: a stackful process talks to a handler process, then kills it
 * and sees the DOWN. */
#include <otter.h>
#include <stdio.h>

enum { PING = OT_TAG_USER, PONG };

static int echo(void *state, const ot_msg *m) { /* a handler process */
    return ot_send(m->from, PONG, ot_msg_data(m), m->size) < 0 ? -1 : 0;
}

static void main_proc(void *arg) { /* a stackful process */
    ot_pid e = ot_spawn_handler(echo, NULL, NULL);
    ot_ref mon = ot_monitor(e);
    ot_send(e, PING, "hello", 6);
    ot_msg *r = ot_receive_tag(PONG, 1000); /* NULL after 1 s */
    printf("got %s\n", r ? (char *)ot_msg_data(r) : "nothing");
    ot_exit(e, OT_REASON(OT_KILL));
    ot_msg *down = ot_receive_ref(mon, OT_INFINITY); /* {'DOWN', mon, ...} */
    printf("echo died: %d\n", ((ot_down_msg *)ot_msg_data(down))->reason.kind);
}

int main(void) {
    return ot_run(main_proc, NULL, NULL) == 0 ? 0 : 1;
}
