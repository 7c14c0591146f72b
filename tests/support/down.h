/* Shared by the suites that wait for one monitor's DOWN: a receive_match
 * predicate that takes it (arg points at the monitor ref's value) and a wait
 * that fails the test when it does not come in time. Only for a test's own
 * process (ot_assert ends it). */
#ifndef OT_TESTS_SUPPORT_DOWN_H
#define OT_TESTS_SUPPORT_DOWN_H

#include <otter/testing.h>

static inline bool is_down_ref(const ot_msg *m, void *arg) {
    return m->tag == OT_TAG_DOWN && m->ref.v == *(const uint64_t *)arg;
}

/* The reason the DOWN of monitor r carries, within ms. */
static inline ot_reason wait_down_ms(ot_ref r, int64_t ms) {
    ot_msg *m = ot_receive_match(is_down_ref, &r.v, ms);
    ot_assert(m != NULL, "no DOWN");
    ot_reason why = ((const ot_down_msg *)ot_msg_data(m))->reason;
    ot_msg_free(m);
    return why;
}

#endif
