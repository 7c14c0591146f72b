/* Starting and stopping the runtime: scheduler threads, rings, pools. */
#ifndef OTTER_RUNTIME_H
#define OTTER_RUNTIME_H

#include <otter/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ot_config {
    unsigned schedulers;       /* 0: one per online CPU */
    size_t max_processes;      /* 0: 1 << 20 */
    size_t stack_size;         /* default green stack reservation; 0: 256 KiB */
    unsigned ring_entries;     /* io_uring SQ entries per scheduler; 0: 256 */
    unsigned heap_arenas;      /* jemalloc arenas pooled for process heaps; 0: default */
    unsigned spin_us;          /* how long an idle scheduler spins before it sleeps; 0: 50 */
    unsigned long_schedule_ms; /* report a process that runs this long without a
                                  runtime call; 0: 100 */
    unsigned stop_timeout_ms;  /* how long ot_stop waits for killed processes
                                  while none of them exits, before it gives up
                                  on the rest; 0: 5000 */
} ot_config;

OT_API int ot_start(const ot_config *cfg); /* -EALREADY if running; cfg may be NULL */
/* Graceful, see ARCHITECTURE 11; -ENOTCONN when stopped, -EDEADLK from a
 * scheduler thread (it cannot join itself). An application tree
 * (otter/supervisor.h) is stopped first, in order. -ETIMEDOUT when
 * stop_timeout_ms passed with processes left and none of them exiting (each
 * left is logged by pid): their
 * scheduler threads are left running, the runtime's memory stays allocated,
 * and ot_start returns -EBUSY from then on. Calls from plain threads during
 * or after ot_stop return -ENOTCONN, and a plain thread blocked in a receive
 * is woken with ENOTCONN. */
OT_API int ot_stop(void);
/* Start, spawn main as a process, wait for it to exit, stop. Returns 0 if main
 * exited normally, -ECHILD (after stopping) if it exited abnormally. */
OT_API int ot_run(void (*main)(void *), void *arg, const ot_config *cfg);
/* The number of scheduler threads of the running runtime (0 when stopped). */
OT_API unsigned ot_schedulers(void);
/* The scheduler the caller runs on, or -1 outside a scheduler thread. */
OT_API int ot_scheduler_id(void);

/* The logger hook: every report (crash reports, long_schedule) goes through it.
 * level is one of the OT_LOG_* values. NULL restores the default (stderr). */
enum { OT_LOG_ERROR = 3, OT_LOG_WARNING = 4, OT_LOG_INFO = 6 };
typedef void (*ot_logger_fn)(int level, const char *line, void *arg);
OT_API void ot_set_logger(ot_logger_fn fn, void *arg);
OT_API void ot_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A dump of every live process, like a JVM thread dump or BEAM's crash dump:
 * a header line, then per process its pid, name, behaviour, status,
 * scheduler, kind, queue length, reductions, heap and stack bytes, links,
 * monitors, current and entry function, and for a stackful process that is
 * switched out its backtrace (return addresses read from its saved context
 * through frame pointers; names where dladdr finds them: a shared libotter,
 * or a program linked with -rdynamic; else object+offset for addr2line).
 * fd OT_DUMP_LOG sends each line through the logger at OT_LOG_INFO. Any
 * thread may call it, a process included. -ENOTCONN when the runtime is
 * stopped, -EBADF or another negative errno when writing fails. */
#define OT_DUMP_LOG (-1)
OT_API int ot_dump(int fd);
/* From now on signal signo makes the runtime write ot_dump(fd) (SIGQUIT, as
 * the JVM does, if the program wants it); the handler only wakes a thread of
 * the runtime's, which writes the dump. Off by default; signo 0 turns it off
 * and restores the signal's previous action. -EINVAL for a signal the
 * runtime or the kernel keeps (SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL) or out of range. Independent of ot_start/ot_stop: a dump asked for
 * while the runtime is stopped says so. */
OT_API int ot_dump_on_signal(int signo, int fd);

#ifdef __cplusplus
}
#endif
#endif
