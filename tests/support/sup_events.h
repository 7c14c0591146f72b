/* Shared by the supervision suites: an event log that records start and stop
 * events in the order they happen (from any process), and a worker child
 * whose start function logs "start:ID " in its supervisor and which logs
 * "stop:ID " when its supervisor's shutdown reaches it, so a test can assert
 * the exact order of both. */
#ifndef OT_TESTS_SUPPORT_SUP_EVENTS_H
#define OT_TESTS_SUPPORT_SUP_EVENTS_H

#include <otter.h>

enum { TAG_CRASH = OT_TAG_USER + 1, TAG_NORMAL, TAG_PING, TAG_PONG };

void event(const char *fmt, const char *id);
void ev_reset(void);
/* The log as it is now, copied (valid until the next call). */
const char *ev_get(void);
#define ev_expect(want)                                                                            \
    do {                                                                                           \
        const char *ot__got = ev_get();                                                            \
        ot_assert(strcmp(ot__got, (want)) == 0, "events \"%s\", want \"%s\"", ot__got, (want));    \
    } while (0)

struct wcfg {
    const char *id;
    int fail;               /* start returns this when non-zero (OT_IGNORED or -errno) */
    bool stubborn;          /* ignores shutdown */
    volatile int fail_next; /* the next starts fail while set */
};

/* A linked worker that traps exits: TAG_CRASH exits with {error,"crash ID"},
 * TAG_NORMAL with normal, TAG_PING answers TAG_PONG, an EXIT (its
 * supervisor's shutdown) logs stop and exits with that reason. */
int start_worker(void *arg, ot_pid *out);
ot_child_spec worker_spec(struct wcfg *w, int restart);

#endif
