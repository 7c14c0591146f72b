/* Context switch between green stacks (ARCHITECTURE 2). ot__ctx_switch saves
 * the callee-saved state of the SysV (x86-64) or AAPCS64 (aarch64) ABI on the
 * current stack, stores the stack pointer through its first argument and
 * resumes the context whose stack pointer is its second argument. The saved
 * state includes the floating-point control state, which the ABIs make
 * callee-saved: MXCSR's control bits and the x87 control word on x86-64,
 * FPCR on aarch64; so one process's rounding mode or exception masks
 * (fesetround) never leak into the next process on the thread. The control
 * words are loaded only when they differ from the outgoing context's (a
 * load of MXCSR or the x87 control word costs more than a compare), which
 * the switch has in registers from saving them.
 * ot__ctx_resume_here resumes a saved context without saving the current
 * one (the fault handler uses it to leave a crashed process).
 * ot__ctx_start is the first "return address" of a fresh context: it calls
 * fn(arg) from two saved registers, and fn never returns; its unwind entry
 * marks it as the outermost frame, so stack walks (debuggers, the fault
 * handler's) end there. */
#if defined(__x86_64__)
        .text
        .globl  ot__ctx_switch
        .hidden ot__ctx_switch
        .type   ot__ctx_switch,@function
        .p2align 4
ot__ctx_switch:
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr 4(%rsp)
        fnstcw  (%rsp)
        /* the thread's control words now: eax and ecx (caller-saved, free) */
        movl    4(%rsp), %eax
        movzwl  (%rsp), %ecx
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
.Lrestore:
        xorl    4(%rsp), %eax
        testl   $0xffc0, %eax /* the control bits; the flags are caller-saved */
        jz      1f
        ldmxcsr 4(%rsp)
1:      cmpw    (%rsp), %cx
        je      2f
        fldcw   (%rsp)
2:      addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret

        /* from the fault handler, on the scheduler's stack: the control
         * words are read afresh, then restored as above */
        .globl  ot__ctx_resume_here
        .hidden ot__ctx_resume_here
ot__ctx_resume_here:
        stmxcsr -4(%rsp)
        fnstcw  -8(%rsp)
        movl    -4(%rsp), %eax
        movzwl  -8(%rsp), %ecx
        jmp     .Lrestore
        .size   ot__ctx_switch,.-ot__ctx_switch

        .globl  ot__ctx_start
        .hidden ot__ctx_start
        .type   ot__ctx_start,@function
        .p2align 4
ot__ctx_start:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r13, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
        .globl  ot__ctx_start_end
        .hidden ot__ctx_start_end
ot__ctx_start_end:
        .size   ot__ctx_start,.-ot__ctx_start

#elif defined(__aarch64__)
        .text
        .globl  ot__ctx_switch
        .hidden ot__ctx_switch
        .type   ot__ctx_switch,%function
        .p2align 4
ot__ctx_switch:
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x10, fpcr
        str     x10, [sp, #160]
        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1
        .globl  ot__ctx_resume_here
        .hidden ot__ctx_resume_here
ot__ctx_resume_here:
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        ldr     x10, [sp, #160]
        mrs     x11, fpcr
        cmp     x10, x11
        b.eq    1f
        msr     fpcr, x10
1:      add     sp, sp, #176
        ret
        .size   ot__ctx_switch,.-ot__ctx_switch

        .globl  ot__ctx_start
        .hidden ot__ctx_start
        .type   ot__ctx_start,%function
        .p2align 4
ot__ctx_start:
        .cfi_startproc
        .cfi_undefined x30
        mov     x0, x20
        blr     x19
        brk     #0
        .cfi_endproc
        .globl  ot__ctx_start_end
        .hidden ot__ctx_start_end
ot__ctx_start_end:
        .size   ot__ctx_start,.-ot__ctx_start
#else
#error "Otter's context switch supports x86-64 and aarch64"
#endif
        .section .note.GNU-stack,"",@progbits
