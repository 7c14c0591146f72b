/* The program scripts/check-gdb.sh runs under gdb (no Criterion: gdb must
 * see the program itself). It starts a runtime, leaves a named stackful
 * process parked in gdb_target_waits with two unmatched messages queued and
 * an idle handler, then stops itself with SIGTRAP, where gdb takes over.
 * The first spawn is <0.0.1>, the handler <0.1.1>. */
#include <otter.h>

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

enum { TAG_GO = OT_TAG_USER + 1, TAG_OTHER };

__attribute__((noinline)) void gdb_target_waits(void) {
    ot_msg *m = ot_receive_tag(TAG_GO, OT_INFINITY);
    ot_msg_free(m);
    __asm__ volatile("" ::: "memory"); /* keep this frame: no tail call above */
}

void gdb_target_main(void *arg) {
    (void)arg;
    ot_register("gdb_waiter", ot_self());
    gdb_target_waits();
    __asm__ volatile("" ::: "memory");
}

int gdb_handler(void *state, const ot_msg *m) {
    (void)state;
    (void)m;
    return 0;
}

static void sender(void *arg) {
    ot_pid to = *(ot_pid *)arg;
    ot_send(to, TAG_OTHER, "a", 1);
    ot_send(to, TAG_OTHER, "b", 1);
}

int main(void) {
    ot_config c = {.schedulers = 2};
    if (ot_start(&c))
        return 1;
    ot_spawn_opts o = {.behaviour = "tester"};
    ot_pid w = ot_spawn_opt(gdb_target_main, NULL, &o);
    ot_spawn_opts h = {.behaviour = "gdb_handler"};
    ot_pid hp = ot_spawn_handler(gdb_handler, NULL, &h);
    ot_spawn(sender, &w);
    struct ot_process_info in;
    for (int i = 0; i < 20000; i++) {
        if (ot_process_info(w, &in) == 0 && in.status == OT_STATUS_WAITING &&
            in.message_queue_len == 2 && ot_processes(NULL, 0) == 2)
            break;
        usleep(1000);
    }
    printf("ready %s %llu %llu\n", in.current_function, (unsigned long long)w.v,
           (unsigned long long)hp.v);
    fflush(stdout);
    raise(SIGTRAP);
    ot_stop();
    return 0;
}
