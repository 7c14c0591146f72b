/* The seed's rules checked at run time: each warning fires, through the
 * logger, with the offending process and callback named, and stays silent
 * when its rule is off (or, for the slow init, under the threshold). */
#include <otter/supervisor.h>
#include <otter/testing.h>

#include "support/sup_events.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char lines[16384];

static void capture(int level, const char *line, void *arg) {
    (void)arg;
    if (level != OT_LOG_WARNING || !strstr(line, "otp rule:"))
        return;
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(lines);
    snprintf(lines + n, sizeof lines - n, "%s\n", line);
    pthread_mutex_unlock(&log_mu);
}

static void log_reset(void) {
    pthread_mutex_lock(&log_mu);
    lines[0] = 0;
    pthread_mutex_unlock(&log_mu);
    ot_set_logger(capture, NULL);
}

static bool logged(const char *what) {
    pthread_mutex_lock(&log_mu);
    bool yes = strstr(lines, what) != NULL;
    pthread_mutex_unlock(&log_mu);
    return yes;
}

static size_t rule_lines(void) {
    pthread_mutex_lock(&log_mu);
    size_t n = 0;
    for (const char *p = lines; (p = strstr(p, "otp rule:")); p++)
        n++;
    pthread_mutex_unlock(&log_mu);
    return n;
}

static int slow_start(void *arg, ot_pid *out) {
    ot_sleep(150);
    return start_worker(arg, out);
}

static void slow_init_case(unsigned on, int64_t threshold, bool expect) {
    static struct wcfg w = {.id = "slowpoke"};
    ot_otp_rules(on, threshold);
    log_reset();
    ot_child_spec c = worker_spec(&w, OT_PERMANENT);
    c.start = slow_start;
    ot_sup_flags f = {0};
    ot_start_opts o = {.name = OT_NAME_LOCAL("rules_sup")};
    ot_pid sup;
    ot_assert_eq(ot_supervisor_start_link(&f, &c, 1, &o, &sup), 0);
    ot_assert_eq(logged("supervisor rules_sup: child slowpoke"), expect);
    ot_assert_eq(logged("ms in init, blocking its supervisor"), expect);
    ot_assert_eq(logged("(worker)"), expect);
    ot_assert_eq(ot_supervisor_stop(sup, OT_REASON(OT_NORMAL), 10000), 0);
}

OT_TEST(rules, slow_init_warns_and_stays_silent_when_off_or_under, .timeout = 60) {
    slow_init_case(OT_RULE_SLOW_INIT, 100, true);
    slow_init_case(OT_RULES_ALL & ~OT_RULE_SLOW_INIT, 100, false);
    slow_init_case(OT_RULE_SLOW_INIT, 1000, false);
    ot_otp_rules(OT_RULES_ALL, 100);
}

static int quick(void *arg, ot_buf *out) {
    (void)arg;
    (void)out;
    return 0;
}

static void forgets(void *arg) {
    ot_task *t = arg;
    ot_assert_eq(ot_task_async(quick, NULL, t), 0);
}

static void awaits(void *arg) {
    ot_task t;
    ot_msg *r;
    ot_assert_eq(ot_task_async(quick, NULL, &t), 0);
    ot_assert_eq(ot_task_await(&t, 10000, &r), 0);
    ot_msg_free(r);
    ot_assert_eq(ot_task_async(quick, NULL, &t), 0);
    ot_assert_eq(ot_task_shutdown(&t, OT_BRUTAL_KILL, &r), 0);
    ot_msg_free(r);
    (void)arg;
}

static void run_and_wait(void (*fn)(void *), void *arg, ot_pid *p) {
    ot_ref mon;
    ot_spawn_opts o = {.monitor = true, .monitor_ref = &mon};
    *p = ot_spawn_opt(fn, arg, &o);
    ot_msg *m = ot_receive_ref(mon, 10000);
    ot_assert(m != NULL);
    ot_msg_free(m);
    ot_sleep(20);
}

OT_TEST(rules, exiting_with_an_unawaited_task_warns, .timeout = 60) {
    static ot_task t;
    ot_pid p;
    char want[128], pp[32], tp[32];
    ot_otp_rules(OT_RULE_UNAWAITED_TASK, 0);
    log_reset();
    run_and_wait(forgets, &t, &p);
    ot_pid_format(p, pp, sizeof pp);
    ot_pid_format(t.pid, tp, sizeof tp);
    snprintf(want, sizeof want, "process %s exited holding task %s, which it never awaited", pp,
             tp);
    ot_assert(logged(want), "no \"%s\" in \"%s\"", want, lines);
    log_reset();
    run_and_wait(awaits, NULL, &p);
    ot_assert_eq(rule_lines(), 0);
    ot_otp_rules(OT_RULES_ALL & ~OT_RULE_UNAWAITED_TASK, 0);
    log_reset();
    run_and_wait(forgets, &t, &p);
    ot_assert_eq(rule_lines(), 0);
    ot_otp_rules(OT_RULES_ALL, 0);
}

static ot_gs_ret gs_init(void *arg, void **state) {
    *state = arg;
    return ot_gs_ok();
}

static ot_gs_ret gs_call(void *state, const ot_msg *req, ot_from from) {
    (void)state;
    (void)req;
    (void)from;
    return ot_gs_reply(NULL, 0);
}

static void *agent_state(void *arg) {
    return arg;
}

static const ot_gen_server lonely = {.name = "lonely", .init = gs_init, .handle_call = gs_call};

static int start_lonely(void *arg, ot_pid *out) {
    return ot_gen_server_start_link(&lonely, arg, NULL, out);
}

OT_TEST(rules, a_server_started_outside_any_supervisor_warns, .timeout = 60) {
    ot_otp_rules(OT_RULE_UNSUPERVISED, 0);
    log_reset();
    ot_pid s;
    ot_assert_eq(ot_gen_server_start_link(&lonely, NULL, NULL, &s), 0);
    char want[128], sp[32], me[32];
    ot_pid_format(s, sp, sizeof sp);
    ot_pid_format(ot_self(), me, sizeof me);
    snprintf(want, sizeof want, "lonely %s started by %s, outside any supervisor", sp, me);
    ot_assert(logged(want), "no \"%s\" in \"%s\"", want, lines);
    ot_pid a;
    ot_assert_eq(ot_agent_start_link(agent_state, NULL, NULL, &a), 0);
    ot_pid_format(a, sp, sizeof sp);
    snprintf(want, sizeof want, "Agent %s started by %s, outside any supervisor", sp, me);
    ot_assert(logged(want), "no \"%s\" in \"%s\"", want, lines);
    /* under a supervisor: nothing (the supervisor itself is reported once) */
    log_reset();
    ot_child_spec c = {.id = "lonely", .start = start_lonely};
    ot_sup_flags f = {0};
    ot_pid sup;
    ot_assert_eq(ot_supervisor_start_link(&f, &c, 1, NULL, &sup), 0);
    ot_assert_eq(rule_lines(), 1);
    ot_assert(logged("supervisor"));
    /* the application's top supervisor is not reported */
    log_reset();
    ot_pid top;
    ot_assert_eq(ot_application_start(&f, &c, 1, NULL, &top), 0);
    ot_assert_eq(rule_lines(), 0);
    ot_assert_eq(ot_application_stop(), 0);
    /* off: silent */
    ot_otp_rules(OT_RULES_ALL & ~OT_RULE_UNSUPERVISED, 0);
    log_reset();
    ot_assert_eq(ot_gen_server_start_link(&lonely, NULL, NULL, &s), 0);
    ot_assert_eq(rule_lines(), 0);
    ot_otp_rules(OT_RULES_ALL, 0);
}
