/* Timers' private header: the timer record and the per-scheduler hierarchical
 * wheel (timer.c owns both). Includes only the base header: a timer points at
 * its payload envelope and is advanced by its scheduler through pointers. */
#ifndef OT_TIMER_H
#define OT_TIMER_H

#include "runtime/core.h"
#include "runtime/sched/ahead.h"

enum { TMR_FREE = 0, TMR_ARMED, TMR_CANCELLED, TMR_FIRED };
enum { TK_SEND = 1, TK_WAKE };

#define TMR_INLINE 16 /* send_after payloads up to this size live in the timer */
#define TMR_ENV 0xff /* ot_timer.size: the payload is in env */
/* One cache line: migration, firing and cancelling touch a timer once each,
 * and a million of them are 64 MB. */
struct ot_timer {
    struct ot_timer *next;     /* wheel slot, due list or free list */
    _Atomic uint64_t genstate; /* gen << 8 | state: CAS'd by cancellers */
    _Atomic uint64_t expire; /* tick (OT_TICK_NS): cancellers read it (relaxed) before their CAS */
    ot_pid target;
    union {
        uint64_t seq; /* TK_WAKE: the wait it ends */
        ot_pid from;  /* TK_SEND: the arming process */
    };
    uint32_t tag; /* TK_SEND */
    uint8_t kind;
    uint8_t size; /* TK_SEND: payload bytes in inl, or TMR_ENV */
    union {
        struct env *env;               /* TK_SEND, size TMR_ENV: built at arm time */
        unsigned char inl[TMR_INLINE]; /* TK_SEND, small: the payload itself */
    };
} __attribute__((aligned(64)));

/* The wheel's tick: a quarter of a millisecond, so that rounding a deadline
 * up to a tick (never early) costs at most 0.25 ms of lateness; 1 ms ticks
 * made the timers workload's lateness too coarse (perf/NOTES.md, 2026-11-25
 * timer wheel). */
#define OT_TICK_NS 250000u
/* The deadline of a timeout past the clock's range: it never fires. Far
 * enough that no real deadline reaches it, low enough that ticks * OT_TICK_NS
 * still fits 64 bits. */
#define OT_TICK_NEVER ((uint64_t)INT64_MAX / OT_TICK_NS + 1)
#define WHEEL_LEVELS 6
#define WHEEL_BITS 6    /* level l's slots are 64^l ticks wide */
#define WHEEL_SLOTS 128 /* two level-(l+1) slots' worth: room to migrate early */
struct ot_wheel {
    uint64_t now; /* current tick: everything at or before it has fired */
    uint64_t count;
    uint64_t dead; /* cancelled by the owner, still linked (swept past a bound) */
    uint64_t bitmap[WHEEL_LEVELS][WHEEL_SLOTS / 64];
    struct ot_timer *slots[WHEEL_LEVELS][WHEEL_SLOTS];
    uint32_t nslot[WHEEL_LEVELS][WHEEL_SLOTS]; /* timers linked in each slot: paces migration */
    int16_t mig[WHEEL_LEVELS]; /* slot being moved down a level, -1 if none */
    struct ot_timer *due;      /* expired at insertion: fire at the next advance */
    struct ot_timer **chunks;  /* timer table: chunks of TMR_CHUNK */
    uint32_t nchunks, cap_chunks, used;
    struct ot_timer *free;
    struct ot__ahead ahead; /* the table, populated ahead of its chunks */
    /* send_after timers whose target has died are cancelled by a scan of
     * the table that a process exit anywhere starts (ot__wheel_reap_dead) */
    _Atomic uint64_t sends; /* TK_SEND timers in the table: owner writes, tests read */
    uint32_t scan_pos;      /* the scan's next index, 0 when none runs */
    uint64_t scan_exits;    /* the schedulers' exits summed when the last scan started */
};
#define TMR_CHUNK_BITS 12
#define TMR_CHUNK (1u << TMR_CHUNK_BITS)

/* timer.c */
OT_HIDDEN void ot__wheel_init(struct ot_wheel *w, uint64_t now_tick);
OT_HIDDEN void ot__wheel_fini(struct ot_wheel *w);
OT_HIDDEN void ot__wheel_advance(struct ot_sched *s, uint64_t now_tick);
OT_HIDDEN int64_t ot__wheel_next(struct ot_wheel *w); /* ticks until next event, -1 none */
OT_HIDDEN struct ot_timer *ot__timer_arm_wake(struct ot_sched *s, struct ot_proc *p,
                                              uint64_t expire_tick, uint64_t seq,
                                              uint64_t *gen_out);
OT_HIDDEN void ot__timer_cancel_wake(struct ot_proc *p);
OT_HIDDEN uint64_t ot__tick_deadline(int64_t ms); /* now + ms, rounded up to a tick,
                                                    or OT_TICK_NEVER */
OT_HIDDEN bool ot__wheel_reap_dead(struct ot_sched *s); /* true: a scan is under way */

#endif
