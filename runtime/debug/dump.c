/* Seeing inside a running node: the frames of switched-out processes, where
 * each process is, and ot_dump, a JVM-style dump of every process to a file
 * descriptor or the logger, on demand or on a signal the program chose.
 *
 * Invariants: the walk reads another process's stack without stopping it,
 * so it never dereferences anything outside that stack's [lo, hi) and
 * follows frame pointers only upward (the library is built with frame
 * pointers; a program's own frames need them too for a full trace). The
 * signal handler only writes to an eventfd; a thread of ours, started by
 * ot_dump_on_signal and stopped by ot_dump_on_signal(0, ...), writes the
 * dump. A foreign thread's dump holds the lifecycle lock, so ot_stop cannot
 * free the tables under it; a process's dump needs no lock, since the
 * runtime is not torn down while a process runs. */
#include "runtime/debug/debug.h"
#include "runtime/debug/dump.h"
#include "runtime/proc/proc.h"
#include "runtime/sched/ctx.h"

#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define DUMP_FRAMES 32

__attribute__((no_sanitize_address, no_sanitize_thread)) size_t
ot__proc_frames(struct ot_proc *p, uintptr_t *pcs, size_t max) {
    uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);
    if (st != PS_WAITING && st != PS_RUNNABLE)
        return 0;
    struct stack *stk = __atomic_load_n(&p->stack, __ATOMIC_RELAXED);
    uintptr_t sp = (uintptr_t)__atomic_load_n(&p->sp, __ATOMIC_RELAXED);
    if (!stk || !max)
        return 0;
    uintptr_t lo = (uintptr_t)stk->lo, hi = (uintptr_t)stk->hi;
    enum { FP_WORD = OT_CTX_FP_WORD, PC_WORD = OT_CTX_PC_WORD };
    if (sp < lo || sp + (PC_WORD + 1) * 8 > hi || (sp & 7))
        return 0;
    const uintptr_t *ctx = (const uintptr_t *)sp;
    size_t n = 0;
    pcs[n++] = __atomic_load_n(&ctx[PC_WORD], __ATOMIC_RELAXED);
    uintptr_t fp = __atomic_load_n(&ctx[FP_WORD], __ATOMIC_RELAXED);
    uintptr_t prev = sp;
    while (n < max && fp > prev && fp >= lo && fp + 16 <= hi && !(fp & 7)) {
        const uintptr_t *rec = (const uintptr_t *)fp;
        uintptr_t pc = __atomic_load_n(&rec[1], __ATOMIC_RELAXED);
        if (!pc)
            break;
        pcs[n++] = pc;
        prev = fp;
        fp = __atomic_load_n(&rec[0], __ATOMIC_RELAXED);
    }
    return n;
}

/* The name of the function holding pc, when the dynamic symbol table has
 * one whose extent covers it (a hidden function has none, and dladdr would
 * name its nearest exported neighbour instead). */
static const char *sym_of(uintptr_t pc, uintptr_t *off, const char **obj, uintptr_t *obj_off) {
    Dl_info di;
    const ElfW(Sym) *sym = NULL;
    *obj = NULL;
    if (!dladdr1((void *)pc, &di, (void **)&sym, RTLD_DL_SYMENT))
        return NULL;
    *obj = di.dli_fname;
    *obj_off = pc - (uintptr_t)di.dli_fbase;
    if (!di.dli_sname || !sym || pc < (uintptr_t)di.dli_saddr ||
        pc - (uintptr_t)di.dli_saddr >= (sym->st_size ? sym->st_size : 1))
        return NULL;
    *off = pc - (uintptr_t)di.dli_saddr;
    return di.dli_sname;
}

static const char *base_name(const char *path) {
    const char *s = path ? strrchr(path, '/') : NULL;
    return s ? s + 1 : (path && *path ? path : "?");
}

/* libotter's own object when it is a shared library apart from the
 * program (the first object of the link map is the program), else NULL: in
 * a static link the runtime's frames are told from the program's by name. */
static const void *runtime_object(void) {
    Dl_info di;
    struct link_map *lm = NULL;
    if (!dladdr1((void *)(uintptr_t)ot_dump, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm ||
        !lm->l_prev)
        return NULL;
    return di.dli_fbase;
}

static void fmt_pc(uintptr_t pc, char *buf, size_t len) {
    uintptr_t off = 0, obj_off = 0;
    const char *obj;
    const char *name = sym_of(pc, &off, &obj, &obj_off);
    if (name)
        snprintf(buf, len, "%s+0x%lx", name, (unsigned long)off);
    else if (obj)
        snprintf(buf, len, "0x%lx (%s+0x%lx)", (unsigned long)pc, base_name(obj),
                 (unsigned long)obj_off);
    else
        snprintf(buf, len, "0x%lx", (unsigned long)pc);
}

/* A frame of the program's, not the runtime's: named, outside a shared
 * libotter, and not one of the runtime's public calls. */
static bool program_frame(uintptr_t pc, const void *rt_obj) {
    Dl_info di;
    if (rt_obj && dladdr((void *)pc, &di) && di.dli_fbase == rt_obj)
        return false;
    uintptr_t off, obj_off;
    const char *obj;
    const char *name = sym_of(pc, &off, &obj, &obj_off);
    return name && strncmp(name, "ot_", 3) != 0;
}

static void *entry_of(struct ot_proc *p) {
    /* another process's flags: relaxed, as the owner's ot_trap_exit stores them */
    uint16_t flags = __atomic_load_n(&p->flags, __ATOMIC_RELAXED);
    return (flags & PF_HANDLER) ? (void *)(uintptr_t)p->hfn : (void *)(uintptr_t)p->fn;
}

void ot__proc_hook_where(struct ot_proc *p, char *buf, size_t len) {
    uintptr_t pcs[DUMP_FRAMES];
    size_t n = ot__proc_frames(p, pcs, DUMP_FRAMES);
    const void *rt = runtime_object();
    for (size_t i = 0; i < n; i++) {
        if (program_frame(pcs[i], rt)) {
            fmt_pc(pcs[i], buf, len);
            return;
        }
    }
    fmt_pc((uintptr_t)entry_of(p), buf, len);
}

/* ---- ot_dump ------------------------------------------------------------ */

struct out {
    int fd;
    int err;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct out *o, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || o->err)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    if (o->fd == OT_DUMP_LOG) {
        line[len] = 0;
        ot_log(OT_LOG_INFO, "%s", line);
        return;
    }
    line[len++] = '\n';
    for (size_t done = 0; done < len;) {
        ssize_t w = write(o->fd, line + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            o->err = w < 0 ? -errno : -EIO;
            return;
        }
        done += (size_t)w;
    }
}

static const char *status_name(int st) {
    switch (st) {
    case OT_STATUS_RUNNING:
        return "running";
    case OT_STATUS_RUNNABLE:
        return "runnable";
    case OT_STATUS_WAITING:
        return "waiting";
    default:
        return "exiting";
    }
}

static void dump_one(struct out *o, ot_pid pid) {
    struct ot_process_info in;
    struct ot_proc *p = ot__ptab_live(pid);
    if (!p || ot_process_info(pid, &in) != 0)
        return; /* exited meanwhile */
    char entry[96];
    fmt_pc((uintptr_t)in.entry, entry, sizeof entry);
    emit(o,
         "<0.%u.%u> name=%s behaviour=%s status=%s scheduler=%d kind=%s queue=%zu "
         "reductions=%llu heap=%zu stack=%zu links=%zu monitors=%zu monitored_by=%zu "
         "trap_exit=%d current=%s entry=%s",
         pid_index(pid), pid_gen(pid), in.name[0] ? in.name : "-",
         in.behaviour[0] ? in.behaviour : "-", status_name(in.status), in.scheduler,
         in.handler ? "handler" : "stackful", in.message_queue_len,
         (unsigned long long)in.reductions, in.heap_bytes, in.stack_bytes, in.n_links,
         in.n_monitors, in.n_monitored_by, in.trap_exit, in.current_function, entry);
    uintptr_t pcs[DUMP_FRAMES];
    size_t n = ot__proc_frames(p, pcs, DUMP_FRAMES);
    for (size_t i = 0; i < n; i++) {
        char where[160];
        fmt_pc(pcs[i], where, sizeof where);
        emit(o, "    #%zu %s", i, where);
    }
}

static int dump_locked(struct out *o) {
    if (!atomic_load_explicit(&ot__rt.running, memory_order_acquire)) {
        emit(o, "otter dump: the runtime is not running");
        return o->err ? o->err : -ENOTCONN;
    }
    size_t n = ot_processes(NULL, 0);
    emit(o, "otter dump: pid %d, %u schedulers, %zu processes", (int)getpid(), ot__rt.nsched, n);
    size_t hwm = ot__ptab_hwm();
    for (size_t i = 0; i < hwm && !o->err; i++) {
        struct ot_proc *p = ot__ptab_at(i);
        uint64_t v = atomic_load_explicit(&p->pid, memory_order_acquire);
        /* aflags: a spawn into the slot may be rewriting flags meanwhile */
        if (!v || (atomic_load_explicit(&p->aflags, memory_order_relaxed) & PF_FOREIGN) ||
            !ot_is_alive((ot_pid){v}))
            continue;
        dump_one(o, (ot_pid){v});
    }
    emit(o, "otter dump: end");
    return o->err;
}

int ot_dump(int fd) {
    if (fd < 0 && fd != OT_DUMP_LOG)
        return -EBADF;
    struct out o = {fd, 0};
    if (cur_proc())
        return dump_locked(&o);
    ot__life_lock();
    int rc = dump_locked(&o);
    ot__life_unlock();
    return rc;
}

/* ---- on a signal -------------------------------------------------------- */

static pthread_mutex_t sig_mu = PTHREAD_MUTEX_INITIALIZER;
static int sig_no;
static int sig_fd;
static int sig_evfd = -1; /* made once and never closed: a late handler may still write */
static pthread_t sig_thread;
static struct sigaction sig_old;

static void on_dump_signal(int signo) {
    int saved = errno;
    uint64_t one = 1;
    ssize_t w = write(sig_evfd, &one, sizeof one);
    (void)w;
    errno = saved;
}

/* Woken by the handler (1) or told to stop (a value with bit 32 set). */
static void *dump_thread(void *arg) {
    int fd = *(int *)arg;
    for (;;) {
        uint64_t v;
        ssize_t r = read(sig_evfd, &v, sizeof v);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != sizeof v || (v >> 32))
            return NULL;
        ot_dump(fd);
    }
}

static void stop_thread(void) {
    uint64_t stop = (uint64_t)1 << 32;
    ssize_t w = write(sig_evfd, &stop, sizeof stop);
    (void)w;
    pthread_join(sig_thread, NULL);
}

int ot_dump_on_signal(int signo, int fd) {
    if (signo < 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP || signo == SIGSEGV ||
        signo == SIGBUS || signo == SIGFPE || signo == SIGILL)
        return -EINVAL;
    if (signo && fd < 0 && fd != OT_DUMP_LOG)
        return -EBADF;
    pthread_mutex_lock(&sig_mu);
    if (sig_no) { /* off first: restore the old action, stop the thread */
        sigaction(sig_no, &sig_old, NULL);
        stop_thread();
        sig_no = 0;
    }
    int rc = 0;
    if (signo && sig_evfd < 0 && (sig_evfd = eventfd(0, EFD_CLOEXEC)) < 0)
        rc = -errno;
    if (signo && !rc) {
        sig_fd = fd;
        rc = -pthread_create(&sig_thread, NULL, dump_thread, &sig_fd);
        if (!rc) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_dump_signal;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESTART;
            if (sigaction(signo, &sa, &sig_old) == 0) {
                sig_no = signo;
            } else {
                rc = -errno;
                stop_thread();
            }
        }
    }
    pthread_mutex_unlock(&sig_mu);
    return rc;
}
