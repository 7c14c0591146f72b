/* examples/app_tree: the binary's transcript, and the tree under random
 * kills. Workers (the cache and ten rooms) are killed at random and each
 * comes back under its name (a local name for the cache, a Registry key for
 * a room) and answers; then the Registry itself is killed and rest_for_one
 * restarts what depends on it. Counts are checked throughout. */
#define APP_TREE_NO_MAIN
#include "../examples/app_tree.c"

#include <otter/testing.h>

#include "support/example.h"

static const char expected[] = "cache: greeting = hello\n"
                               "lobby: 1 post(s)\n"
                               "news: first!\n"
                               "cache back under its name: yes\n"
                               "lobby back under its name: yes\n"
                               "cache after a restart: greeting gone (state is not kept)\n"
                               "lobby: 1 post(s)\n";

Test(app_tree, transcript, .timeout = 120) {
    static char out[4096];
    int st = ot_test_run_example("app_tree", out, sizeof out);
    cr_assert_neq(st, -1, "examples/app_tree not built (make examples)");
    cr_assert_str_eq(out, expected);
    cr_assert_eq(st, 0);
}

#define ROOMS 10
static const char *ids[ROOMS] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"};

static ot_pid back(ot_pid (*lookup)(const char *), const char *name, ot_pid old) {
    for (int i = 0; i < 20000; i++) {
        ot_pid p = lookup(name);
        if (p.v && p.v != old.v && ot_is_alive(p))
            return p;
        ot_sleep(1);
    }
    ot_assert(false, "%s did not come back under its name", name);
    return OT_NOPID;
}

static void check_whole(void) {
    ot_child_counts k;
    ot_assert_eq(ot_supervisor_count_children(ot_application_sup(), &k), 0);
    ot_assert_eq(k.specs, 4);
    ot_assert_eq(k.active, 4);
    ot_assert_eq(ot_dynsup_count_children(ot_whereis("rooms_sup"), &k), 0);
    ot_assert_eq(k.active, ROOMS);
    char v[VAL_MAX];
    ot_assert_eq(cache_put(NULL, "k", "v"), 0);
    ot_assert_eq(cache_get(NULL, "k", v, sizeof v), 0);
    ot_assert(strcmp(v, "v") == 0);
    for (int r = 0; r < ROOMS; r++)
        ot_assert(room_post(ids[r], "ping") >= 1);
}

OT_TEST(app_tree, random_kills_leave_it_whole_with_names_back, .timeout = 600) {
#if defined(OT_SANITIZE)
    const int kills = 300;
#else
    const int kills = 3000;
#endif
    ot_otp_rules(0, 0);
    ot_pid top, p;
    ot_assert_eq(app_tree_start(1000000, &top), 0);
    for (int r = 0; r < ROOMS; r++)
        ot_assert_eq(room_open(ids[r], &p), 0);
    check_whole();
    unsigned seed = 12345;
    for (int i = 0; i < kills; i++) {
        int v = (int)(rand_r(&seed) % (ROOMS + 1));
        if (v == ROOMS) {
            ot_pid c = ot_whereis("cache");
            ot_exit(c, OT_REASON(OT_KILL));
            back(ot_whereis, "cache", c);
        } else {
            ot_pid rp = room_whereis(ids[v]);
            ot_exit(rp, OT_REASON(OT_KILL));
            back(room_whereis, ids[v], rp);
        }
        if (i % 500 == 0)
            check_whole();
    }
    check_whole();
    /* a new Registry: the rooms registered in the old one are restarted with
     * their supervisor (empty, as a DynamicSupervisor starts), the cache too */
    ot_pid rooms = ot_whereis("rooms_sup"), cache = ot_whereis("cache");
    ot_exit(ot_registry_pid(ot_registry_whereis("app_registry")), OT_REASON(OT_KILL));
    back(ot_whereis, "rooms_sup", rooms);
    back(ot_whereis, "cache", cache);
    ot_child_counts k;
    ot_assert_eq(ot_dynsup_count_children(ot_whereis("rooms_sup"), &k), 0);
    ot_assert_eq(k.specs, 0);
    ot_assert_eq(room_open("r0", &p), 0);
    ot_assert_eq(room_post("r0", "hello again"), 1);
    ot_assert_eq(ot_application_stop(), 0);
    ot_otp_rules(OT_RULES_ALL, 0);
}
