/* Types and conventions shared by every Otter header: the export macro, pids,
 * refs, exit reasons and the one error convention (0 or a negative errno). */
#ifndef OTTER_COMMON_H
#define OTTER_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define OT_API __attribute__((visibility("default")))
#else
#define OT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Wait forever, for every timeout_ms parameter. */
#define OT_INFINITY ((int64_t)-1)

/* A process identifier: table index plus generation. OT_NOPID is { 0 }. */
typedef struct ot_pid {
    uint64_t v;
} ot_pid;
#define OT_NOPID ((ot_pid){0})

/* A runtime-unique reference (make_ref/0). The null ref is { 0 }. */
typedef struct ot_ref {
    uint64_t v;
} ot_ref;
#define OT_NOREF ((ot_ref){0})

static inline bool ot_pid_eq(ot_pid a, ot_pid b) {
    return a.v == b.v;
}
static inline bool ot_ref_eq(ot_ref a, ot_ref b) {
    return a.v == b.v;
}

/* Exit reason kinds (the atoms of Erlang's exit reasons). */
enum ot_reason_kind {
    OT_NORMAL = 0,
    OT_SHUTDOWN, /* shutdown, {shutdown, text} when text is set */
    OT_KILL,     /* kill: untrappable when sent with ot_exit */
    OT_KILLED,   /* what links see of a process killed by OT_KILL */
    OT_NOPROC,   /* the other process did not exist */
    OT_TIMEOUT,
    OT_ERROR,          /* a user error; text says what */
    OT_FAULT,          /* a hardware fault in the process; detail is the signal */
    OT_STACK_OVERFLOW, /* the process ran into its stack's guard */
    OT_HEAP_LIMIT,     /* its heap passed ot_spawn_opts.max_heap_bytes (BEAM's max_heap_size) */
};

typedef struct ot_reason {
    int32_t kind;
    int32_t detail;
    char text[56];
} ot_reason;

#define OT_REASON(k) ((ot_reason){.kind = (k), .detail = 0, .text = {0}})

/* An OT_ERROR reason whose text is formatted like printf (truncated to 55). */
OT_API ot_reason ot_reason_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes a human-readable form of r ("normal", "{fault,SIGSEGV}", ...). */
OT_API int ot_reason_format(ot_reason r, char *buf, size_t len);
/* True for normal, shutdown and {shutdown,_}: the reasons that are not crashes. */
OT_API bool ot_reason_is_normal(ot_reason r);
/* The text of a negative errno returned by an Otter call. */
OT_API const char *ot_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
