/* The context switch alone (runtime/sched/switch.S and ctx.h), without a
 * scheduler: a fresh context runs fn(arg) on its own stack with the ABI's
 * stack alignment; values live across switches in callee-saved integer and
 * floating-point registers come back intact on both sides; a thousand
 * switches to and fro keep their order; several contexts interleave; the
 * floating-point control state (rounding mode and exception masks: MXCSR and
 * the x87 control word on x86-64, FPCR on aarch64) is each context's own,
 * and a fresh context starts with the ABI's defaults.
 *
 * Built two ways: as a Criterion suite in `make test`, and with
 * -DCTX_STANDALONE as a plain program (no Criterion, no liburing) that
 * `make test-aarch64` cross-compiles and runs under qemu-user, so the
 * aarch64 switch, which no machine of ours runs natively, is exercised too. */
#include "runtime/sched/ctx.h"

#include <fenv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define STACK (64 * 1024)

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void *main_sp, *co_sp;

/* ---- a context starts with its argument and an aligned stack ---------------------------- */

static void *seen_arg;
static uintptr_t seen_align;
static char formatted[64];

static void start_fn(void *arg) {
    seen_arg = arg;
    /* a 16-byte aligned local: with the ABI's alignment at entry it lands
     * on a 16-byte boundary; printf of doubles uses aligned SSE stores on
     * x86-64 and would fault on a misaligned stack */
    _Alignas(16) volatile char probe[16];
    seen_align = (uintptr_t)probe & 15;
    snprintf(formatted, sizeof formatted, "%.3f %.1f", 3.14159, 2.5);
    ot__ctx_switch(&co_sp, main_sp);
    abort(); /* never resumed */
}

static void check_start(void) {
    char *stack = malloc(STACK);
    CHECK(stack != NULL);
    co_sp = ot__ctx_make(stack + STACK, start_fn, (void *)0x5eed);
    ot__ctx_switch(&main_sp, co_sp);
    CHECK(seen_arg == (void *)0x5eed);
    CHECK(seen_align == 0);
    CHECK(formatted[0] == '3' && formatted[1] == '.' && formatted[4] == '2');
    free(stack);
}

/* ---- callee-saved registers survive, on both sides -------------------------------------- */

static volatile uint64_t seed = 0x9e3779b97f4a7c15u;
static int pingpongs;

/* Twelve integers and eight doubles live across every switch: more than a
 * compiler can keep anywhere but the callee-saved registers and the stack,
 * so a switch that lost a register shows up as a wrong sum. The other side
 * scribbles over the same registers with its own values meanwhile. With
 * mine NULL there is no switch: what the switching version must return. */
static __attribute__((noinline)) uint64_t busy_side(void **mine, void **other, int rounds,
                                                     uint64_t k) {
    uint64_t a = seed ^ k, b = a * 3, c = a * 5, d = a * 7, e = a * 11, f = a * 13, g = a * 17,
             h = a * 19, i = a * 23, j = a * 29, l = a * 31, m = a * 37;
    double x0 = (double)(k + 1), x1 = x0 * 1.5, x2 = x0 * 2.5, x3 = x0 * 3.5, x4 = x0 * 4.5,
           x5 = x0 * 5.5, x6 = x0 * 6.5, x7 = x0 * 7.5;
    for (int r = 0; r < rounds; r++) {
        if (mine) {
            ot__ctx_switch(mine, *other);
            pingpongs++;
        }
        a += b ^ c, b += c ^ d, c += d ^ e, d += e ^ f, e += f ^ g, f += g ^ h;
        g += h ^ i, h += i ^ j, i += j ^ l, j += l ^ m, l += m ^ a, m += a ^ b;
        x0 += x1 * 0.5, x1 += x2 * 0.25, x2 += x3 * 0.125, x3 += x4 * 0.5;
        x4 += x5 * 0.25, x5 += x6 * 0.125, x6 += x7 * 0.5, x7 += x0 * 0.25;
        x0 *= 0.5, x1 *= 0.5, x2 *= 0.5, x3 *= 0.5, x4 *= 0.5, x5 *= 0.5, x6 *= 0.5, x7 *= 0.5;
    }
    return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i ^ j ^ l ^ m ^
           (uint64_t)(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7);
}

static uint64_t plain_side(int rounds, uint64_t k) { return busy_side(NULL, NULL, rounds, k); }

enum { ROUNDS = 1000 };
static uint64_t co_result;

static void co_fn(void *arg) {
    (void)arg;
    co_result = busy_side(&co_sp, &main_sp, ROUNDS, 2);
    ot__ctx_switch(&co_sp, main_sp);
    abort();
}

static void check_registers(void) {
    char *stack = malloc(STACK);
    CHECK(stack != NULL);
    pingpongs = 0;
    co_sp = ot__ctx_make(stack + STACK, co_fn, NULL);
    /* main's side: after its last switch the other side runs its last round
     * and returns, switching back once more */
    uint64_t mine = busy_side(&main_sp, &co_sp, ROUNDS, 1);
    ot__ctx_switch(&main_sp, co_sp);
    CHECK(mine == plain_side(ROUNDS, 1));
    CHECK(co_result == plain_side(ROUNDS, 2));
    CHECK(pingpongs == 2 * ROUNDS);
    free(stack);
}

/* ---- every callee-saved register by name --------------------------------------------------- */

/* Register variables pinned to each callee-saved register of the ABI, set
 * to a pattern before a switch and read after it, while the other side
 * loads a different pattern into the same registers before it switches
 * back. The empty asm statements make the compiler hold each value in its
 * register at those two points. (Left to the compiler, as above, a value
 * may sit in a register both sides happen to agree on.) */
#if defined(__x86_64__)
#define GP_REGS(X) X(rbx) X(r12) X(r13) X(r14) X(r15)
#define FP_REGS(X)
#define GP_CONSTRAINT "+r"
#elif defined(__aarch64__)
#define GP_REGS(X) X(x19) X(x20) X(x21) X(x22) X(x23) X(x24) X(x25) X(x26) X(x27) X(x28)
#define FP_REGS(X) X(d8) X(d9) X(d10) X(d11) X(d12) X(d13) X(d14) X(d15)
#define GP_CONSTRAINT "+r"
#endif

#define DECL_GP(r) register uint64_t v_##r __asm__(#r) = pat ^ (uint64_t)(uintptr_t) #r;
#define DECL_FP(r) register double f_##r __asm__(#r) = (double)(pat & 0xffff) + sizeof(#r) * 0.25;
#define PIN_GP(r) __asm__ volatile("" : GP_CONSTRAINT(v_##r));
#define PIN_FP(r) __asm__ volatile("" : "+w"(f_##r));
#define CHECK_GP(r) bad += v_##r != (pat ^ (uint64_t)(uintptr_t) #r);
#define CHECK_FP(r) bad += f_##r != (double)(pat & 0xffff) + sizeof(#r) * 0.25;

/* Switches to *to, saving into *save, with every callee-saved register
 * holding a pattern of pat; returns how many came back changed. */
static __attribute__((noinline)) int switch_with_pattern(void **save, void *to, uint64_t pat) {
    int bad = 0;
    GP_REGS(DECL_GP)
    FP_REGS(DECL_FP)
    GP_REGS(PIN_GP)
    FP_REGS(PIN_FP)
    ot__ctx_switch(save, to);
    GP_REGS(PIN_GP)
    FP_REGS(PIN_FP)
    GP_REGS(CHECK_GP)
    FP_REGS(CHECK_FP)
    return bad;
}

static int co_bad;

static void pattern_fn(void *arg) {
    (void)arg;
    for (uint64_t k = 0;; k++)
        co_bad += switch_with_pattern(&co_sp, main_sp, 0xc0c0c0c0c0c0c0c0u + k);
}

static void check_named_registers(void) {
    char *stack = malloc(STACK);
    CHECK(stack != NULL);
    co_sp = ot__ctx_make(stack + STACK, pattern_fn, NULL);
    co_bad = 0;
    int bad = 0;
    for (uint64_t k = 0; k < 100; k++)
        bad += switch_with_pattern(&main_sp, co_sp, 0x1234567890abcdefu * (k + 1));
    CHECK(bad == 0);
    CHECK(co_bad == 0);
    free(stack);
}

/* ---- several contexts in a round ---------------------------------------------------------- */

enum { NCO = 8, LAPS = 100 };
static void *ring_sp[NCO + 1]; /* [NCO] is main */
static int trace[NCO * LAPS], ntrace;

static void ring_fn(void *arg) {
    int me = (int)(intptr_t)arg;
    for (int lap = 0; lap < LAPS; lap++) {
        trace[ntrace++] = me;
        ot__ctx_switch(&ring_sp[me], ring_sp[me + 1]);
    }
    ot__ctx_switch(&ring_sp[me], ring_sp[NCO]);
    abort();
}

static void check_ring(void) {
    char *stacks = malloc((size_t)NCO * STACK);
    CHECK(stacks != NULL);
    ntrace = 0;
    for (int i = 0; i < NCO; i++)
        ring_sp[i] = ot__ctx_make(stacks + (size_t)(i + 1) * STACK, ring_fn, (void *)(intptr_t)i);
    /* main starts member 0; the last member's switch to ring_sp[NCO] lands
     * in main, which sends the token round again */
    for (int lap = 0; lap < LAPS; lap++)
        ot__ctx_switch(&ring_sp[NCO], ring_sp[0]);
    CHECK(ntrace == NCO * LAPS);
    for (int i = 0; i < ntrace; i++)
        CHECK(trace[i] == i % NCO);
    free(stacks);
}

/* ---- floating-point control state is per context ---------------------------------------- */

static volatile double one = 1.0, three = 3.0;
static int co_round_at_start, co_round_after;
static double co_third;
#if defined(__x86_64__)
static unsigned short co_x87_at_start, co_x87_after;
static unsigned short x87_cw(void) {
    unsigned short cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return cw;
}
static void x87_set(unsigned short cw) { __asm__ volatile("fldcw %0" : : "m"(cw)); }
#endif

static void fp_fn(void *arg) {
    (void)arg;
    co_round_at_start = fegetround();
#if defined(__x86_64__)
    co_x87_at_start = x87_cw();
    x87_set(0x007f); /* single precision, every exception masked */
#endif
    fesetround(FE_UPWARD);
    ot__ctx_switch(&co_sp, main_sp);
    co_round_after = fegetround(); /* still upward after main ran */
    co_third = one / three;
#if defined(__x86_64__)
    co_x87_after = x87_cw();
#endif
    ot__ctx_switch(&co_sp, main_sp);
    abort();
}

static void check_fp_control(void) {
    char *stack = malloc(STACK);
    CHECK(stack != NULL);
    fesetround(FE_DOWNWARD); /* the maker's mode is not the fresh context's */
    co_sp = ot__ctx_make(stack + STACK, fp_fn, NULL);
    fesetround(FE_TONEAREST);
    ot__ctx_switch(&main_sp, co_sp);
    CHECK(co_round_at_start == FE_TONEAREST);
    CHECK(fegetround() == FE_TONEAREST); /* the context's FE_UPWARD stayed there */
    volatile double mine = one / three;
    fesetround(FE_TOWARDZERO);
    ot__ctx_switch(&main_sp, co_sp);
    CHECK(co_round_after == FE_UPWARD);
    CHECK(fegetround() == FE_TOWARDZERO);
    CHECK(co_third > mine); /* rounded up there, to nearest (down, for 1/3) here */
#if defined(__x86_64__)
    /* fesetround sets the x87 rounding bits too (10-11): upward there, toward
     * zero here, each over its own precision bits */
    CHECK(co_x87_at_start == 0x037f);
    CHECK(co_x87_after == 0x087f);
    CHECK(x87_cw() == 0x0f7f);
#endif
    fesetround(FE_TONEAREST);
    free(stack);
}

#if defined(CTX_STANDALONE)
int main(void) {
    void (*checks[])(void) = {check_start, check_registers, check_named_registers, check_ring,
                              check_fp_control};
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        int before = failures;
        checks[i]();
        if (failures == before)
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
#else
#include <criterion/criterion.h>

/* The bare switch carries no sanitizer annotations (the scheduler adds them
 * around it, and test_switch covers those switches under ASan and TSan). */
#if defined(OT_SANITIZE)
#define SKIP_UNDER_SANITIZERS() cr_skip_test("the bare switch is not annotated for sanitizers")
#else
#define SKIP_UNDER_SANITIZERS() (void)0
#endif

Test(ctx, fresh_context_gets_its_arg_and_an_aligned_stack) {
    SKIP_UNDER_SANITIZERS();
    check_start();
    cr_assert_eq(failures, 0);
}

Test(ctx, callee_saved_registers_survive_switches) {
    SKIP_UNDER_SANITIZERS();
    check_registers();
    cr_assert_eq(failures, 0);
}

Test(ctx, every_callee_saved_register_survives) {
    SKIP_UNDER_SANITIZERS();
    check_named_registers();
    cr_assert_eq(failures, 0);
}

Test(ctx, fp_control_state_is_per_context) {
    SKIP_UNDER_SANITIZERS();
    check_fp_control();
    cr_assert_eq(failures, 0);
}

Test(ctx, contexts_in_a_round_keep_their_order) {
    SKIP_UNDER_SANITIZERS();
    check_ring();
    cr_assert_eq(failures, 0);
}
#endif
