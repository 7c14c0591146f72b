/* A timeout turned into a deadline in ot_now_ms() time, for the OTP layer's
 * loops that wait for several messages under one timeout. The sum saturates:
 * a timeout too big to add to the clock is a deadline that never comes
 * (INT64_MAX), as the core treats such a receive timeout, instead of a signed
 * overflow that would wrap into the past and time out at once. */
#ifndef OT_OTP_DEADLINE_H
#define OT_OTP_DEADLINE_H

#include <otter.h>

#include <stdint.h>

/* timeout_ms >= 0 or OT_INFINITY; OT_INFINITY and too-big sums give INT64_MAX. */
static inline int64_t ot__deadline_ms(int64_t timeout_ms) {
    if (timeout_ms == OT_INFINITY)
        return INT64_MAX;
    int64_t now = ot_now_ms();
    return timeout_ms > INT64_MAX - now ? INT64_MAX : now + timeout_ms;
}

#endif
