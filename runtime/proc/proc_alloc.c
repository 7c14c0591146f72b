/* The public process-heap calls: the calling process's heap (runtime/alloc/heap.c),
 * or, on a foreign thread, the system allocator (the caller frees with
 * ot_free or free). Memory from a process heap is released when the process
 * exits, however it exits. A process spawned with max_heap_bytes has its
 * limit checked after every allocation that succeeded (a flag test for the
 * others): it ends there with OT_HEAP_LIMIT (ot__heap_limit_check). */
#include "runtime/proc/proc.h"

#include <stdlib.h>
#include <string.h>

static inline void *limited(struct ot_proc *p, void *r) {
    if (unlikely(p->flags & PF_HEAP_LIMIT) && r)
        ot__heap_limit_check(p);
    return r;
}

void *ot_alloc(size_t n) {
    struct ot_proc *p = cur_proc();
    return p ? limited(p, ot__heap_alloc(&p->heap, n)) : malloc(n);
}

void *ot_calloc(size_t n, size_t size) {
    struct ot_proc *p = cur_proc();
    return p ? limited(p, ot__heap_calloc(&p->heap, n, size)) : calloc(n, size);
}

void *ot_realloc(void *ptr, size_t n) {
    struct ot_proc *p = cur_proc();
    return p ? limited(p, ot__heap_realloc(&p->heap, ptr, n)) : realloc(ptr, n);
}

void ot_free(void *ptr) {
    if (!ptr)
        return;
    struct ot_proc *p = cur_proc();
    if (p)
        ot__heap_free(&p->heap, ptr);
    else
        free(ptr);
}

char *ot_strdup(const char *s) {
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = ot_alloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
