/* A crash storm over a three-level tree: a top supervisor, four middle
 * supervisors (one_for_one, one_for_all, rest_for_one, one_for_one), each
 * with five permanent gen_server workers under local names. 100,000 kills
 * land at random (mostly workers, one in twenty a middle supervisor: the pid
 * the name holds at that moment, or, while it is being restarted, the next
 * one), without waiting for the tree to settle, on four schedulers. Afterwards the tree must be whole: every supervisor and
 * worker alive under its name, every count right, and each worker answering
 * a call. Under ASan 10,000 kills, under TSan 3,000. */
#include <otter/supervisor.h>
#include <otter/testing.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(OT_TSAN)
#define KILLS 3000
#elif defined(OT_SANITIZE)
#define KILLS 10000
#else
#define KILLS 100000
#endif

#define MIDS 4
#define WORKERS 5
#define LOTS 100000000 /* restarts allowed in 5 s: the storm is the point */

static char names[MIDS][WORKERS][16], mid_names[MIDS][16];

static ot_gs_ret w_init(void *arg, void **state) {
    *state = arg;
    return ot_gs_ok();
}

static ot_gs_ret w_call(void *state, const ot_msg *req, ot_from from) {
    (void)req;
    (void)from;
    return ot_gs_reply(state, strlen(state) + 1);
}

static const ot_gen_server worker = {.name = "storm_worker", .init = w_init, .handle_call = w_call};

static int start_worker(void *arg, ot_pid *out) {
    ot_start_opts o = {.name = OT_NAME_LOCAL((const char *)arg)};
    return ot_gen_server_start_link(&worker, arg, &o, out);
}

static const int strategies[MIDS] = {OT_ONE_FOR_ONE, OT_ONE_FOR_ALL, OT_REST_FOR_ONE,
                                     OT_ONE_FOR_ONE};

static int start_mid(void *arg, ot_pid *out) {
    int m = (int)(intptr_t)arg;
    ot_child_spec cs[WORKERS];
    for (int j = 0; j < WORKERS; j++)
        cs[j] = (ot_child_spec){.id = names[m][j], .start = start_worker, .arg = names[m][j]};
    ot_sup_flags f = {.strategy = strategies[m], .max_restarts = LOTS, .max_seconds = 5};
    ot_start_opts o = {.name = OT_NAME_LOCAL(mid_names[m])};
    return ot_supervisor_start_link(&f, cs, WORKERS, &o, out);
}

static bool whole(ot_pid top, bool assert_it) {
    ot_child_counts k;
    if (ot_supervisor_count_children(top, &k) != 0 || k.specs != MIDS || k.active != MIDS ||
        k.supervisors != MIDS) {
        ot_assert(!assert_it, "top: %zu specs, %zu active", k.specs, k.active);
        return false;
    }
    for (int m = 0; m < MIDS; m++) {
        ot_pid mid = ot_whereis(mid_names[m]);
        if (!mid.v || ot_supervisor_count_children(mid, &k) != 0 || k.specs != WORKERS ||
            k.active != WORKERS) {
            ot_assert(!assert_it, "%s is not whole", mid_names[m]);
            return false;
        }
        for (int j = 0; j < WORKERS; j++) {
            ot_pid w = ot_whereis(names[m][j]);
            if (!w.v || !ot_is_alive(w)) {
                ot_assert(!assert_it, "%s has no live holder", names[m][j]);
                return false;
            }
        }
    }
    return true;
}

static void init_config(void) {
    ot_test_config.schedulers = 4;
}

OT_TEST(storm, random_kills_across_three_levels_leave_it_whole, .init = init_config,
        .timeout = 900) {
    ot_otp_rules(0, 0);
    for (int m = 0; m < MIDS; m++) {
        snprintf(mid_names[m], sizeof mid_names[m], "mid%d", m);
        for (int j = 0; j < WORKERS; j++)
            snprintf(names[m][j], sizeof names[m][j], "w%d_%d", m, j);
    }
    ot_child_spec mids[MIDS];
    for (int m = 0; m < MIDS; m++)
        mids[m] = (ot_child_spec){.id = mid_names[m], .start = start_mid,
                                  .arg = (void *)(intptr_t)m, .type = OT_SUPERVISOR};
    ot_sup_flags f = {.strategy = OT_ONE_FOR_ONE, .max_restarts = LOTS, .max_seconds = 5};
    ot_pid top;
    ot_assert_eq(ot_supervisor_start_link(&f, mids, MIDS, NULL, &top), 0);
    ot_assert(whole(top, true));
    unsigned seed = 2026;
    long landed = 0;
    for (int i = 0; i < KILLS; i++) {
        int m = (int)(rand_r(&seed) % MIDS);
        const char *name = rand_r(&seed) % 20 == 0 ? mid_names[m]
                                                   : names[m][rand_r(&seed) % WORKERS];
        ot_pid victim = ot_whereis(name);
        for (int tries = 0; !victim.v && tries < 1000000; tries++) {
            ot_yield(); /* restarting: kill it once it is back */
            victim = ot_whereis(name);
        }
        ot_assert(victim.v != 0, "%s never came back during the storm", name);
        if (ot_exit(victim, OT_REASON(OT_KILL)) == 0)
            landed++;
    }
    bool ok = false;
    for (int i = 0; i < 30000 && !(ok = whole(top, false)); i++)
        ot_sleep(1);
    ot_assert(ok || whole(top, true));
    for (int m = 0; m < MIDS; m++)
        for (int j = 0; j < WORKERS; j++) {
            ot_name n = OT_NAME_LOCAL(names[m][j]);
            ot_msg *r;
            ot_assert_eq(ot_call_name(&n, OT_TAG_USER, NULL, 0, &r, 10000), 0);
            ot_assert(strcmp(ot_msg_data(r), names[m][j]) == 0);
            ot_msg_free(r);
        }
    fprintf(stderr, "storm: %ld kills landed of %d; the tree is whole\n", landed, KILLS);
    ot_assert_eq(landed, KILLS);
    ot_otp_rules(OT_RULES_ALL, 0);
}
