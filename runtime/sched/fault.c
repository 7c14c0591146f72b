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
#include "runtime/sched/sched.h"
#include "runtime/proc/proc.h"
#include "runtime/sched/ctx.h"

#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <unwind.h>

#define ALTSTACK_SIZE (128 * 1024) /* the handler walks the stack with libgcc on it */

static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
static struct sigaction old[4];
static bool installed;

static int slot_of(int sig) {
    for (int i = 0; i < 4; i++)
        if (sigs[i] == sig)
            return i;
    return -1;
}

/* ---- which code may hold locks we cannot release ---------------------------
 * The text of the libraries the runtime is built on (libc and the dynamic
 * loader, jemalloc, liburing, liburcu, libgcc's unwinder, libstdc++), found
 * once at install. Their code takes locks (stdio, malloc, the loader, the
 * unwinder) or keeps shared state (the rings, RCU): a process whose stack
 * holds a frame of theirs when it faults is not contained. Except the
 * lock-free string and memory functions of libc below, whose only state is
 * their arguments: a bad pointer handed to memcpy by the process's own code
 * is the process's fault, and is contained like a bad store. */
struct lib_range {
    uintptr_t lo, hi;
    char name[40];
};
static struct lib_range locking[24];
static int nlocking;
static const char *const locking_libs[] = {"libc.so",     "ld-linux",  "libjemalloc", "liburing",
                                           "liburcu",     "libgcc_s",  "libpthread",  "libstdc++",
                                           "libc.musl",   "ld-musl"};
static const char *const lockfree_fns[] = {
    "memcpy", "memmove",  "mempcpy", "memset",  "memcmp",  "bcmp",   "memchr",  "memrchr",
    "rawmemchr", "strlen", "strnlen", "strcmp", "strncmp", "strcpy", "stpcpy",  "strncpy",
    "stpncpy", "strcat",  "strncat", "strchr",  "strchrnul", "strrchr", "wcslen", "wcsnlen",
    "wmemset", "wmemchr", "wmemcmp", "wcscmp",  "wcschr",  "strcasecmp", "strncasecmp"};
static uintptr_t lockfree_start[sizeof lockfree_fns / sizeof lockfree_fns[0]];
static int nlockfree;

static int add_lib(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    (void)arg;
    const char *path = info->dlpi_name, *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    bool match = false;
    for (size_t i = 0; i < sizeof locking_libs / sizeof locking_libs[0]; i++)
        if (strncmp(base, locking_libs[i], strlen(locking_libs[i])) == 0)
            match = true;
    for (int i = 0; match && i < info->dlpi_phnum && nlocking < 24; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        struct lib_range *r = &locking[nlocking++];
        r->lo = info->dlpi_addr + ph->p_vaddr;
        r->hi = r->lo + ph->p_memsz;
        snprintf(r->name, sizeof r->name, "%s", base);
    }
    return 0;
}

static const struct lib_range *locking_lib_of(uintptr_t pc) {
    for (int i = 0; i < nlocking; i++)
        if (pc >= locking[i].lo && pc < locking[i].hi)
            return &locking[i];
    return NULL;
}

__attribute__((unused)) /* not called in sanitizer builds */
static void find_locking_code(void) {
    nlocking = 0;
    dl_iterate_phdr(add_lib, NULL);
    nlockfree = 0;
    for (size_t i = 0; i < sizeof lockfree_fns / sizeof lockfree_fns[0]; i++) {
        /* for an IFUNC, dlsym gives the implementation chosen for this CPU */
        void *f = dlsym(RTLD_DEFAULT, lockfree_fns[i]);
        if (!f || !locking_lib_of((uintptr_t)f))
            continue;
        void *start = _Unwind_FindEnclosingFunction(f);
        lockfree_start[nlockfree++] = (uintptr_t)(start ? start : f);
    }
}

static bool lockfree_pc(uintptr_t pc) {
    uintptr_t start = (uintptr_t)_Unwind_FindEnclosingFunction((void *)pc);
    for (int i = 0; start && i < nlockfree; i++)
        if (lockfree_start[i] == start)
            return true;
    return false;
}

/* ---- the fatal report: async-signal-safe formatting only ------------------- */

struct wbuf {
    char b[1024];
    size_t n;
};

static void w_str(struct wbuf *w, const char *s) {
    while (s && *s && w->n < sizeof w->b - 1)
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

/* "0xpc (sym+0xoff in object)" or "0xpc (object+0xoff)"; symbols.c uses
 * system calls and dladdr1, which is not async-signal-safe in general (it
 * takes the loader's recursive lock): this runs only on the way to abort. */
static void w_where(struct wbuf *w, uintptr_t pc) {
    struct ot__sym sy;
    w_num(w, pc, 16);
    bool named = ot__sched_hook_symbolize(pc, &sy);
    if (!sy.obj)
        return;
    w_str(w, " (");
    if (named) {
        w_str(w, sy.name);
        w_str(w, "+");
        w_num(w, sy.off, 16);
        w_str(w, " in ");
        w_str(w, sy.obj);
    } else {
        w_str(w, sy.obj);
        w_str(w, "+");
        w_num(w, sy.objoff, 16);
    }
    w_str(w, ")");
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

static uintptr_t ctx_sp(const ucontext_t *uc) {
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.sp;
#endif
}

/* Never returns: the report on stderr, then SIGABRT with its default action. */
static _Noreturn void fatal(int sig, const siginfo_t *si, uintptr_t pc, struct ot_proc *p,
                            const char *why, const char *lib, uintptr_t at) {
    struct wbuf w = {.n = 0};
    w_str(&w, "otter: fatal: ");
    w_str(&w, sig_name(sig));
    w_str(&w, " at address ");
    w_num(&w, (uintptr_t)si->si_addr, 16);
    w_str(&w, ", pc ");
    w_where(&w, pc);
    if (p) {
        uint64_t pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
        w_str(&w, ", in process <0.");
        w_num(&w, pid & 0xffffffffu, 10);
        w_str(&w, ".");
        w_num(&w, pid >> 32, 10);
        w_str(&w, ">");
    }
    w_str(&w, ": the fault hit ");
    w_str(&w, why);
    if (lib) {
        w_str(&w, " ");
        w_str(&w, lib);
        w_str(&w, " at ");
        w_where(&w, at);
    }
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

/* ---- walking the process's stack --------------------------------------------
 * With libgcc's unwinder, from the signal frame up: the frames above the
 * handler's own, up to the process's first frame (ot__ctx_start marks the
 * end with an undefined return address). Each caller's return address is
 * looked up in the locking libraries. A walk that faults (a wrecked stack),
 * stops early (code without unwind tables) or never finds the faulting
 * frame cannot show that no lock is held. */
struct walk {
    struct ot__fault_info *fi;
    uintptr_t pc;
    bool matched, complete;
    const struct lib_range *lib; /* the first locking library among the callers */
    uintptr_t lib_ip;
    unsigned long frames;
};

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *c, void *arg) {
    struct walk *w = arg;
    int before = 0;
    uintptr_t ip = (uintptr_t)_Unwind_GetIPInfo(c, &before);
    if (!w->matched) {
        if (ip != w->pc || !before)
            return _URC_NO_REASON; /* still the handler's own frames */
        w->matched = true;
        w->fi->bt[w->fi->nbt++] = ip;
        return _URC_NO_REASON;
    }
    if (ip - 1 >= (uintptr_t)ot__ctx_start && ip - 1 < (uintptr_t)ot__ctx_start_end) {
        w->complete = true;
        return _URC_END_OF_STACK;
    }
    if (++w->frames > 4000000)
        return _URC_END_OF_STACK; /* a cycle in a wrecked stack */
    if (w->fi->nbt < sizeof w->fi->bt / sizeof w->fi->bt[0])
        w->fi->bt[w->fi->nbt++] = ip;
    const struct lib_range *l = before ? locking_lib_of(ip) : locking_lib_of(ip - 1);
    if (l && !w->lib) {
        w->lib = l;
        w->lib_ip = ip;
    }
    return _URC_NO_REASON;
}

__attribute__((unused)) /* not installed in sanitizer builds */
static void on_fault(int sig, siginfo_t *si, void *ucv) {
    struct ot_sched *s = ot__cur_sched;
    if (s && s->fault && s->fault->walking) /* the walk itself faulted */
        siglongjmp(s->fault->jb, 1);
    if (!s || !s->in_process || !s->current || !s->sp || !s->fault) {
        int i = slot_of(sig);
        sigaction(sig, i >= 0 ? &old[i] : NULL, NULL);
        if (i < 0 || (old[i].sa_handler == SIG_DFL && si->si_code <= 0))
            signal(sig, SIG_DFL);
        return; /* the fault happens again, now fatal */
    }
    ucontext_t *uc = ucv;
    struct ot__fault_info *fi = s->fault;
    struct ot_proc *p = s->current;
    fi->pc = ctx_pc(uc);
    fi->sp = ctx_sp(uc);
    fi->nbt = 0;
    if (s->crit)
        fatal(sig, si, fi->pc, p, "inside a runtime critical section", NULL, 0);
    const struct lib_range *l = locking_lib_of(fi->pc);
    if (l && !lockfree_pc(fi->pc))
        fatal(sig, si, fi->pc, p, "code in", l->name, fi->pc);
    struct walk w = {.fi = fi, .pc = fi->pc};
    uintptr_t lo = (uintptr_t)p->stack->lo, hi = (uintptr_t)p->stack->hi;
    if (!_Unwind_FindEnclosingFunction((void *)fi->pc) && fi->sp >= lo && fi->sp + 8 <= hi) {
        /* a jump to no code (a NULL function pointer): walk from the caller,
         * whose return address the call left on the stack (x86-64) or in the
         * link register (aarch64); the handler resumes elsewhere anyway */
#if defined(__x86_64__)
        w.pc = *(const uintptr_t *)fi->sp;
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)w.pc;
        uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(fi->sp + 8);
#elif defined(__aarch64__)
        w.pc = (uintptr_t)uc->uc_mcontext.regs[30];
        uc->uc_mcontext.pc = w.pc;
#endif
    }
    fi->walking = true;
    if (sigsetjmp(fi->jb, 1) == 0)
        _Unwind_Backtrace(walk_frame, &w);
    fi->walking = false;
    if (w.lib)
        fatal(sig, si, fi->pc, p, "while the process was running code in", w.lib->name,
              w.lib_ip);
    if (!w.matched || !w.complete)
        fatal(sig, si, fi->pc, p,
              "a stack that could not be walked to its first frame (code without unwind "
              "tables, or a wrecked stack), so held locks cannot be ruled out",
              NULL, 0);
    s->fault_sig = sig;
    s->fault_addr = si->si_addr;
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
    find_locking_code();
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
    s->fault = calloc(1, sizeof *s->fault);
    s->altstack = malloc(ALTSTACK_SIZE);
    if (!s->altstack || !s->fault)
        return -ENOMEM;
    stack_t ss = {.ss_sp = s->altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0)
        return -errno;
    return 0;
#endif
}

void ot__fault_thread_fini(struct ot_sched *s) {
    free(s->fault);
    s->fault = NULL;
    if (!s->altstack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(s->altstack);
    s->altstack = NULL;
}
