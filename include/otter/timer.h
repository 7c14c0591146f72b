/* Timers on the per-scheduler timing wheel: deadlines are rounded up to its
 * 0.25 ms tick, so a timer never fires early. */
#ifndef OTTER_TIMER_H
#define OTTER_TIMER_H

#include <otter/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* erlang:send_after/3: after ms, send {tag, data} to `to` (from = the caller).
 * Returns the timer's ref, or OT_NOREF with errno set. */
OT_API ot_ref ot_send_after(ot_pid to, int64_t ms, uint32_t tag, const void *data, size_t size);
OT_API int64_t ot_cancel_timer(ot_ref t); /* ms left, or -1 if fired or unknown */
OT_API int64_t ot_read_timer(ot_ref t);   /* ms left, or -1 if fired or unknown */

/* Milliseconds on the runtime's monotonic clock. */
OT_API int64_t ot_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif
