/* Critical sections and stack headroom (ARCHITECTURE 7). A fault is contained
 * (it ends one process) only when nothing it interrupted holds a lock or
 * shared state that another thread will need: runtime code that holds such
 * state brackets it with ot__crit_enter/ot__crit_exit, and the fault handler
 * (fault.c) treats a fault at nonzero depth as fatal. The depth is per thread
 * (initial-exec TLS, so the signal handler reads it without a call that
 * might allocate); a section never spans a context switch, so a process that
 * migrates between threads never leaves a count behind. */
#include "runtime/core/core.h"

#include <stdint.h>

__thread unsigned ot__crit_depth __attribute__((tls_model("initial-exec")));

void ot__crit_enter(void) {
    ot__crit_depth++;
    /* the section's stores stay after the increment, as the handler sees it */
    __asm__ volatile("" ::: "memory");
}

void ot__crit_exit(void) {
    __asm__ volatile("" ::: "memory");
    ot__crit_depth--;
}

size_t ot__stack_headroom(void) {
    struct ot_proc *p = cur_proc();
    if (!p || !p->stack)
        return SIZE_MAX;
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t lo = (uintptr_t)p->stack->lo, hi = (uintptr_t)p->stack->hi;
    if (sp < lo || sp > hi)
        return SIZE_MAX; /* not on the process's stack: the scheduler's or a signal's */
    return sp - lo;
}
