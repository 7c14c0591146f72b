/* Exit reasons, error strings and the logger hook. Every report the runtime
 * makes (crash reports, long_schedule) is one line through the hook, so an
 * embedding server can route them; the default writes the line to stderr. */
#include "runtime/core/core.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Atomic(ot_logger_fn) logger;
static void *_Atomic logger_arg;

void ot_set_logger(ot_logger_fn fn, void *arg) {
    atomic_store_explicit(&logger_arg, arg, memory_order_relaxed);
    /* release pairs with the acquire in ot_log: arg is visible with fn */
    atomic_store_explicit(&logger, fn, memory_order_release);
}

void ot_log(int level, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ot_logger_fn fn = atomic_load_explicit(&logger, memory_order_acquire);
    if (fn) {
        fn(level, line, atomic_load_explicit(&logger_arg, memory_order_relaxed));
        return;
    }
    fprintf(stderr, "otter: %s\n", line);
}

ot_reason ot_reason_error(const char *fmt, ...) {
    ot_reason r = OT_REASON(OT_ERROR);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.text, sizeof r.text, fmt ? fmt : "", ap);
    va_end(ap);
    return r;
}

bool ot_reason_is_normal(ot_reason r) {
    return r.kind == OT_NORMAL || r.kind == OT_SHUTDOWN;
}

int ot_reason_format(ot_reason r, char *buf, size_t len) {
    static const char *const names[] = {"normal",  "shutdown", "kill",  "killed",        "noproc",
                                        "timeout", "error",    "fault", "stack_overflow"};
    if (!buf || !len)
        return -EINVAL;
    if (r.kind < 0 || r.kind > OT_STACK_OVERFLOW)
        return snprintf(buf, len, "{unknown,%d}", r.kind) < 0 ? -EINVAL : 0;
    const char *n = names[r.kind];
    int w;
    if (r.kind == OT_FAULT) {
        const char *sig = sigabbrev_np(r.detail);
        w = snprintf(buf, len, "{fault,SIG%s}", sig ? sig : "?");
    } else if (r.text[0]) {
        w = snprintf(buf, len, "{%s,\"%.*s\"}", n, (int)sizeof r.text, r.text);
    } else {
        w = snprintf(buf, len, "%s", n);
    }
    return w < 0 ? -EINVAL : 0;
}

const char *ot_strerror(int err) {
    if (err > 0)
        err = -err;
    switch (err) {
    case 0:
        return "ok";
    case -ENOTCONN:
        return "the runtime is not running";
    case -EPERM:
        return "not allowed outside a process";
    case -ESRCH:
        return "no such process";
    case -EAGAIN:
        return "process table full";
    case -EMSGSIZE:
        return "message too large";
    case -ETIMEDOUT:
        return "timed out";
    case -EBADF:
        return "stale or invalid handle";
    case -EACCES:
        return "access denied by the table's protection";
    default:
        return strerror(-err);
    }
}

void ot__crash_report(struct ot_proc *p) {
    char why[128];
    ot_reason_format(p->reason, why, sizeof why);
    uint64_t pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
    ot_log(OT_LOG_ERROR, "crash: process <0.%u.%u>%s%s%s%s exited with reason %s",
           (unsigned)(pid & 0xffffffffu), (unsigned)(pid >> 32), p->name ? " name=" : "",
           p->name ? p->name : "", p->behaviour ? " behaviour=" : "",
           p->behaviour ? p->behaviour : "", why);
}
