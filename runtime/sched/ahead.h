/* Populating memory ahead of its use, on an idle core (ahead.c).
 *
 * A fresh 4 KiB page is slow to fault in on these VMs, even in one
 * MADV_POPULATE_WRITE call (most of it is the kernel's per-page work, not the
 * zeroing; perf/NOTES.md, 2026-11-25 page faults), and the runtime's growing
 * tables pay it on their owners' hot paths: a spawn through fresh process-table
 * slots spends more on the page than on the spawn, an arm through fresh timer
 * records a large share of its time. A region that grows from its start (struct
 * ot__ahead) can ask a background thread to populate the next stretch while its
 * owner works on the current one. The thread runs at SCHED_IDLE, so it only
 * ever takes a core nothing else wants: on a saturated machine the owners fault
 * their pages in themselves, as they would without it.
 *
 * Invariant: `claimed` only grows, by CAS, and whoever moves it from a to b
 * populates [a, b) (the owner synchronously, the thread in the background),
 * so no page is populated twice over. A claimed page may still be in flight
 * when its owner touches it: it then faults in as it would have anyway.
 * Populating never changes a page's contents, so the thread and the owner
 * never need to agree on anything else. */
#ifndef OT_AHEAD_H
#define OT_AHEAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct ot__ahead {
    char *base;             /* the region: populated from its start */
    size_t len;             /* bytes that may ever be populated */
    size_t slot;            /* 0: every page; else slots of this many bytes, of
                               which only the last page is populated (stacks) */
    _Atomic size_t claimed; /* [0, claimed) is populated or being populated */
    _Atomic size_t asked;   /* the thread may populate up to here */
    struct ot__ahead *next; /* the thread's list of regions */
};

/* The thread: started by ot_start, stopped (every region dropped) by teardown. */
__attribute__((visibility("hidden"))) int ot__ahead_start(void);
__attribute__((visibility("hidden"))) void ot__ahead_stop(void);

/* Registers [base, base + len); populating starts at base. With slot != 0
 * (a multiple of the page size) the region is an array of slots of that
 * size, and only each slot's last page is populated: a stack's top, where
 * a new process's first frames go; the rest of a stack, and its guard page,
 * are left alone. Lengths and positions then count whole slots. */
__attribute__((visibility("hidden"))) void ot__ahead_init(struct ot__ahead *a, void *base,
                                                          size_t len, size_t slot);
/* Unregisters; returns once the thread no longer touches the region, so the
 * caller may unmap it. Harmless on a region never registered (base NULL). */
__attribute__((visibility("hidden"))) void ot__ahead_fini(struct ot__ahead *a);

/* The owner is about to use [0, upto): populates whatever of it nobody has
 * claimed yet, here and now, then asks the thread for the next `ahead`
 * bytes. Lock-free, and no system call when the thread is ahead. Returns 0,
 * or -ENOMEM when the memory it populated itself could not be had. Kernels
 * without MADV_POPULATE_WRITE (before 5.14) get 0: their pages fault in on
 * first touch, which is all populating saves. */
__attribute__((visibility("hidden"))) int ot__ahead_use(struct ot__ahead *a, size_t upto,
                                                        size_t ahead);

#endif
