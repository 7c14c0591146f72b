/* Critical sections and stack headroom (ARCHITECTURE 7, "Which faults are
 * contained"). A fault is contained (it ends one process) only when nothing
 * it interrupted holds a lock or shared state another thread will need, so
 * runtime code that holds such state brackets it with ot__crit_enter/exit
 * and the fault handler (fault.c) treats a fault at nonzero depth as fatal.
 * The depth is the scheduler's (struct ot_sched.crit): a section never spans
 * a context switch, so a process that migrates between threads never leaves
 * a count behind, and on a foreign thread, whose faults are never contained,
 * the calls do nothing. Entering the outermost section from a process with
 * less than OT_CRIT_STACK bytes of stack left ends the process with a stack
 * overflow right there, before anything is held: the section itself could
 * otherwise overflow the stack with the lock taken. */
#include "runtime/sched/sched.h"
#include "runtime/proc/proc.h"

#include <stdint.h>

void ot__crit_enter(void) {
    ot__crit_enter_s(ot__sched_get());
}

void ot__crit_exit(void) {
    ot__crit_exit_s(ot__sched_get());
}

/* Touches the guard just below the stack: the fault handler sees a guard hit
 * outside any section and ends the process with OT_STACK_OVERFLOW. */
_Noreturn void ot__crit_overflow(struct ot_sched *s) {
    volatile char *below = (volatile char *)s->current->stack->lo - 1;
    *below = 0;
    __builtin_unreachable();
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
