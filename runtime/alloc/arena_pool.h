/* The arena pool (private to runtime/alloc/): jemalloc arenas made once at start and
 * leased to process heaps, so that no spawn ever pays for arenas.create. A
 * slot is either on the pool's free stack or leased to exactly one heap; a
 * leased arena is used only through MALLOCX_ARENA(i) | MALLOCX_TCACHE_NONE, so
 * no thread cache ever holds one of its blocks and arena.<i>.reset is safe at
 * return. An arena goes back on the stack only after that reset, and the
 * stack's release/acquire pair makes the reset visible to the next lessee. */
#ifndef OT_ALLOC_ARENA_POOL_H
#define OT_ALLOC_ARENA_POOL_H

#include <stdbool.h>
#include <stddef.h>

/* jemalloc allows about 4,095 arenas in a process; the pool can never hold more. */
#define OT__ARENA_POOL_MAX 4000u
/* A pool of this many arenas when the caller asks for 0 (see HEAP.md). */
#define OT__ARENA_POOL_DEFAULT 64u
/* Resident bytes the pool's idle arenas may keep warm in all (see HEAP.md). */
#define OT__ARENA_POOL_WARM_BUDGET ((size_t)32 << 20)

/* Creates up to n arenas (n is clamped to OT__ARENA_POOL_MAX). Returns how
 * many were created (fewer when jemalloc runs out of arenas), -EBUSY if the
 * pool exists, -ENOSYS if jemalloc's control interface is unusable. */
int ot__arena_pool_init(unsigned n);
/* Destroys every arena on the stack. Arenas still leased are left alone (their
 * heaps are still using them) and their count is returned. */
unsigned ot__arena_pool_fini(void);

/* Takes an arena off the stack: 0 and *slot, *arena set, or -EAGAIN if empty. */
int ot__arena_pool_lease(unsigned *slot, unsigned *arena);
/* Resets the leased arena (every block of it is gone) and pushes it back on
 * the stack. bytes is the most the heap ever held (its peak): jemalloc keeps
 * a reset arena's pages dirty (resident), which is what makes the next lease
 * cheap, so the pool keeps an estimate of every arena's warm pages and purges
 * an arena back to the kernel when keeping it warm would take the pool over
 * its budget. */
void ot__arena_pool_return(unsigned slot, size_t bytes);

unsigned ot__arena_pool_size(void);      /* arenas the pool owns */
unsigned ot__arena_pool_available(void); /* arenas on the stack now */
size_t ot__arena_pool_warm(void);        /* estimated warm bytes of all arenas */

#endif
