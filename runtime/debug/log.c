/* Exit reasons, pids and error strings as text, and the logger hook. Every
 * report the runtime makes (crash reports, long_schedule) is one line through
 * the hook, so an embedding server can route them; the default writes the
 * line to stderr. A contained fault's crash report says where the fault hit
 * (signal, address, instruction as symbol+offset) and the process's
 * backtrace, from what the fault handler saw (fault.c). The one kind of
 * report that bypasses the hook is the fatal one of a fault that cannot be
 * contained (fault.c writes it to stderr itself, then aborts). */
#include "runtime/debug/debug.h"
#include "runtime/proc/proc.h"

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

static void log_line(int level, const char *line) {
    ot_logger_fn fn = atomic_load_explicit(&logger, memory_order_acquire);
    if (fn) {
        fn(level, line, atomic_load_explicit(&logger_arg, memory_order_relaxed));
        return;
    }
    fprintf(stderr, "otter: %s\n", line);
}

void ot_log(int level, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_line(level, line);
}

int ot_pid_format(ot_pid p, char *buf, size_t len) {
    if (!buf || !len)
        return -EINVAL;
    int w = snprintf(buf, len, "<0.%u.%u>", pid_index(p), pid_gen(p));
    return w < 0 ? -EINVAL : (size_t)w >= len ? -ENOSPC : 0;
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
    static const char *const names[] = {"normal",  "shutdown", "kill",
                                        "killed",  "noproc",   "timeout",
                                        "error",   "fault",    "stack_overflow",
                                        "heap_limit"};
    if (!buf || !len)
        return -EINVAL;
    if (r.kind < 0 || r.kind > OT_HEAP_LIMIT)
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

/* Appends "sym+0xoff (object)", or "object+0xoff" where the object has no
 * symbol there (addr2line resolves it), at *n in buf. */
static void put_where(char *buf, size_t len, size_t *n, uintptr_t pc) {
    struct ot__sym sy;
    int w;
    if (ot__sched_hook_symbolize(pc, &sy))
        w = snprintf(buf + *n, len - *n, "%s+%#lx (%s)", sy.name, (unsigned long)sy.off, sy.obj);
    else if (sy.obj)
        w = snprintf(buf + *n, len - *n, "%s+%#lx", sy.obj, (unsigned long)sy.objoff);
    else
        w = snprintf(buf + *n, len - *n, "%#lx", (unsigned long)pc);
    if (w > 0)
        *n = *n + (size_t)w < len ? *n + (size_t)w : len - 1;
}

void ot__proc_hook_crash_report(struct ot_proc *p) {
    char why[128], pid[48], line[2048];
    ot_reason_format(p->reason, why, sizeof why);
    ot_pid_format((ot_pid){atomic_load_explicit(&p->pid, memory_order_relaxed)}, pid, sizeof pid);
    char name[OT_NAME_MAX];
    /* a copy under the names mutex: ot_unregister may free it meanwhile */
    ot__names_copy(p, atomic_load_explicit(&p->pid, memory_order_relaxed), name, sizeof name);
    int w = snprintf(line, sizeof line, "crash: process %s%s%s%s%s exited with reason %s", pid,
                     name[0] ? " name=" : "", name, p->behaviour ? " behaviour=" : "",
                     p->behaviour ? p->behaviour : "", why);
    size_t n = w > 0 ? (size_t)w : 0;
    struct ot_sched *s = ot__sched_get();
    const struct ot__fault_info *fi = s ? s->fault : NULL;
    if (fi && fi->proc == p && n < sizeof line - 1) {
        const char *sig = sigabbrev_np(s->fault_sig ? s->fault_sig : p->reason.detail);
        w = snprintf(line + n, sizeof line - n, ": %s%s at address 0x%lx%s, pc ",
                     p->reason.kind == OT_FAULT ? "SIG" : "",
                     p->reason.kind == OT_FAULT ? (sig ? sig : "?") : "stack overflow",
                     (unsigned long)(uintptr_t)s->fault_addr,
                     ot__stack_guard_hit(p->stack, s->fault_addr) ? " (the stack's guard)" : "");
        if (w > 0)
            n = n + (size_t)w < sizeof line ? n + (size_t)w : sizeof line - 1;
        put_where(line, sizeof line, &n, fi->pc);
        for (unsigned i = 0; i < fi->nbt && n < sizeof line - 1; i++) {
            w = snprintf(line + n, sizeof line - n, i ? " < " : "; backtrace: ");
            if (w > 0)
                n = n + (size_t)w < sizeof line ? n + (size_t)w : sizeof line - 1;
            put_where(line, sizeof line, &n, fi->bt[i]);
        }
    }
    log_line(OT_LOG_ERROR, line);
}
