/* Green-stack contexts: a saved stack pointer and the assembly that swaps it
 * (switch.S). A fresh context is laid out so that the first switch into it
 * "returns" into ot__ctx_start, which calls fn(arg) on the new stack. */
#ifndef OT_CORE_CTX_H
#define OT_CORE_CTX_H

#include <stdint.h>
#include <string.h>

void ot__ctx_switch(void **save_sp, void *to_sp);
void ot__ctx_start(void);
void ot__ctx_start_end(void); /* just past ot__ctx_start: a stack walk ends there */
void ot__ctx_resume_here(void);

/* A fresh context starts with the ABI's default floating-point control
 * state, whatever the thread that makes it has set: on x86-64 the x87 control
 * word 0x037f (bytes 0-1 of the saved word) and MXCSR 0x1f80 (bytes 4-7):
 * round to nearest, every exception masked. */
#define OT_CTX_FP_DEFAULT ((uint64_t)0x1f80 << 32 | 0x037f)

/* Where a saved context keeps the frame pointer and the return address, in
 * words from the saved stack pointer (switch.S's push order): stack walks
 * (ot_dump, scripts/gdb/otter-gdb.py) start there. */
#if defined(__x86_64__)
#define OT_CTX_FP_WORD 6
#define OT_CTX_PC_WORD 7
#elif defined(__aarch64__)
#define OT_CTX_FP_WORD 10
#define OT_CTX_PC_WORD 11
#endif

/* Prepares a context at the top of [lo, hi) that will run fn(arg). */
static inline void *ot__ctx_make(void *hi, void (*fn)(void *), void *arg) {
    uintptr_t top = (uintptr_t)hi & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* fp control, r15 r14 r13 r12 rbx rbp ret: after the pops and ret, rsp is
     * 16-aligned at ot__ctx_start's call, as the ABI wants. */
    uint64_t *sp = (uint64_t *)(top - 80);
    /* word stores, not memset: it runs per handler activation, and GCC may
     * emit a 72-byte memset as a slow `rep stos` (a third of a ring hop) */
    sp[0] = OT_CTX_FP_DEFAULT;
    sp[1] = sp[2] = sp[5] = sp[6] = sp[8] = sp[9] = 0;
    sp[3] = (uint64_t)(uintptr_t)arg; /* r13 */
    sp[4] = (uint64_t)(uintptr_t)fn;  /* r12 */
    sp[7] = (uint64_t)(uintptr_t)ot__ctx_start;
    return sp;
#elif defined(__aarch64__)
    uint64_t *sp = (uint64_t *)(top - 176);
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)fn;             /* x19 */
    sp[1] = (uint64_t)(uintptr_t)arg;            /* x20 */
    sp[11] = (uint64_t)(uintptr_t)ot__ctx_start; /* x30 */
    sp[20] = 0;                                  /* FPCR: round to nearest, no traps */
    return sp;
#endif
}

#endif
