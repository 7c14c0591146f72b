/* Process heaps (ARCHITECTURE 6): the allocator behind ot_alloc and friends.
 * A heap is embedded in each process record and used only by its owner
 * process (one thread at a time, but a process may move between scheduler
 * threads, so nothing here may depend on the calling thread). A heap holds no
 * arena until its first allocation; ot__heap_release gives everything back in
 * one step (arena reset, or the fallback chunk list freed in one pass). */
#ifndef OT_ALLOC_HEAP_H
#define OT_ALLOC_HEAP_H

#include <stddef.h>
#include <stdint.h>

/* Must stay small: it is part of every process record (idle budget 512 B). */
typedef struct ot__heap {
    void *state; /* NULL until first allocation */
} ot__heap;

/* Creates the arena pool (narenas 0: a default). Called by ot_start. */
int ot__heap_pool_init(unsigned narenas);
/* Destroys the pool; every heap must have been released. Called by ot_stop. */
void ot__heap_pool_fini(void);

void *ot__heap_alloc(ot__heap *h, size_t n);
void *ot__heap_calloc(ot__heap *h, size_t n, size_t size);
void *ot__heap_realloc(ot__heap *h, void *p, size_t n);
void ot__heap_free(ot__heap *h, void *p);
void ot__heap_release(ot__heap *h); /* at exit: all memory back, heap empty */
size_t ot__heap_bytes(const ot__heap *h);

#endif
