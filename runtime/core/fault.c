/* Crash isolation (ARCHITECTURE 7): SIGSEGV, SIGBUS, SIGFPE and SIGILL that
 * hit while a process runs on a scheduler thread end only that process. The
 * handler runs on a per-thread alternate stack (a stack overflow has no stack
 * left), records the signal and address, and rewrites the interrupted context
 * so that returning from the handler resumes the scheduler where it switched
 * into the process (ot__ctx_resume_here pops the scheduler's saved
 * registers); the kernel's sigreturn restores the signal mask as usual. The
 * scheduler then finishes the process's exit with OT_FAULT or, for a hit on
 * the stack's guard, OT_STACK_OVERFLOW. A fault outside any process restores
 * the previous disposition and returns, so the fault repeats and is fatal as
 * before (the usual core dump). A fault inside a runtime critical section
 * (crit.c) is not contained, since abandoning the section would leave a lock
 * held: the handler writes a report saying so straight to stderr (write(2)
 * only: the logger hook may take locks) and aborts. Sanitizer builds keep
 * their own handlers. */
#include "runtime/core/core.h"
#include "runtime/core/ctx.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#define ALTSTACK_SIZE (64 * 1024)

static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
static struct sigaction old[4];
static bool installed;

static int slot_of(int sig) {
    for (int i = 0; i < 4; i++)
        if (sigs[i] == sig)
            return i;
    return -1;
}

/* ---- the fatal report: async-signal-safe formatting only ------------------- */

struct wbuf {
    char b[768];
    size_t n;
};

static void w_str(struct wbuf *w, const char *s) {
    while (*s && w->n < sizeof w->b - 1)
        w->b[w->n++] = *s++;
}

static void w_num(struct wbuf *w, uint64_t v, unsigned base) {
    char t[24];
    int i = 0;
    do {
        t[i++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (base == 16)
        w_str(w, "0x");
    while (i > 0 && w->n < sizeof w->b - 1)
        w->b[w->n++] = t[--i];
}

static const char *sig_name(int sig) {
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    default:
        return "signal";
    }
}

static uintptr_t ctx_pc(const ucontext_t *uc) {
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#endif
}

/* Never returns: the report, then SIGABRT with its default action. */
static _Noreturn void fatal(int sig, const siginfo_t *si, const ucontext_t *uc, struct ot_proc *p,
                            const char *where) {
    struct wbuf w = {.n = 0};
    w_str(&w, "otter: fatal: ");
    w_str(&w, sig_name(sig));
    w_str(&w, " at address ");
    w_num(&w, (uintptr_t)si->si_addr, 16);
    w_str(&w, ", pc ");
    w_num(&w, ctx_pc(uc), 16);
    if (p) {
        uint64_t pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
        w_str(&w, ", in process <0.");
        w_num(&w, pid & 0xffffffffu, 10);
        w_str(&w, ".");
        w_num(&w, pid >> 32, 10);
        w_str(&w, ">");
    }
    w_str(&w, ": the fault hit ");
    w_str(&w, where);
    w_str(&w, ", which may hold locks other threads need; it cannot be contained to one "
              "process, so the program aborts\n");
    ssize_t rc = write(STDERR_FILENO, w.b, w.n);
    (void)rc;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGABRT, &dfl, NULL);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGABRT);
    sigprocmask(SIG_UNBLOCK, &m, NULL);
    raise(SIGABRT);
    _exit(128 + SIGABRT); /* not reached */
}

__attribute__((unused)) /* not installed in sanitizer builds */
static void on_fault(int sig, siginfo_t *si, void *ucv) {
    struct ot_sched *s = ot__cur_sched;
    if (!s || !s->in_process || !s->current || !s->sp) {
        int i = slot_of(sig);
        sigaction(sig, i >= 0 ? &old[i] : NULL, NULL);
        if (i < 0 || (old[i].sa_handler == SIG_DFL && si->si_code <= 0))
            signal(sig, SIG_DFL);
        return; /* the fault happens again, now fatal */
    }
    if (ot__crit_depth)
        fatal(sig, si, ucv, s->current, "inside a runtime critical section");
    s->fault_sig = sig;
    s->fault_addr = si->si_addr;
    ucontext_t *uc = ucv;
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(uintptr_t)s->sp;
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)ot__ctx_resume_here;
#elif defined(__aarch64__)
    uc->uc_mcontext.sp = (uint64_t)(uintptr_t)s->sp;
    uc->uc_mcontext.pc = (uint64_t)(uintptr_t)ot__ctx_resume_here;
#endif
}

int ot__fault_install(void) {
#if defined(OT_SANITIZE)
    return 0;
#else
    if (installed)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 4; i++)
        if (sigaction(sigs[i], &sa, &old[i]) != 0)
            return -errno;
    installed = true;
    return 0;
#endif
}

void ot__fault_uninstall(void) {
    if (!installed)
        return;
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], &old[i], NULL);
    installed = false;
}

int ot__fault_thread_init(struct ot_sched *s) {
#if defined(OT_SANITIZE)
    (void)s;
    return 0;
#else
    s->altstack = malloc(ALTSTACK_SIZE);
    if (!s->altstack)
        return -ENOMEM;
    stack_t ss = {.ss_sp = s->altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0)
        return -errno;
    return 0;
#endif
}

void ot__fault_thread_fini(struct ot_sched *s) {
    if (!s->altstack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(s->altstack);
    s->altstack = NULL;
}
