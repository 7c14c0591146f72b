/* Private to runtime/otp: where the seed's rules are checked (rules.c). */
#ifndef OT_OTP_RULES_H
#define OT_OTP_RULES_H

#include <otter.h>

bool ot__rule_on(unsigned rule);
int64_t ot__rule_slow_init_ms(void);
/* A long-running process (what: "gen_server", "supervisor", ...) was just
 * started by the caller: warn unless the caller is a supervisor. */
void ot__rule_supervised(ot_pid started, const char *what);
/* A supervisor's child start took ms, past the threshold. */
void ot__rule_slow_start(const char *sup, const char *id, ot_pid child, int64_t ms);
/* A task the caller owns: a token to hand back when it is done (NULL when
 * the rule is off); the owner's exit with the token still out is reported. */
void *ot__rule_task_track(ot_pid task);
void ot__rule_task_done(void *track);

#endif
