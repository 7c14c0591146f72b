/* The public process-heap calls: the calling process's heap (alloc/heap.c),
 * or, on a foreign thread, the system allocator (the caller frees with
 * ot_free or free). Memory from a process heap is released when the process
 * exits, however it exits. */
#include "runtime/core/core.h"

#include <stdlib.h>
#include <string.h>

void *ot_alloc(size_t n) {
    struct ot_proc *p = cur_proc();
    return p ? ot__heap_alloc(&p->heap, n) : malloc(n);
}

void *ot_calloc(size_t n, size_t size) {
    struct ot_proc *p = cur_proc();
    return p ? ot__heap_calloc(&p->heap, n, size) : calloc(n, size);
}

void *ot_realloc(void *ptr, size_t n) {
    struct ot_proc *p = cur_proc();
    return p ? ot__heap_realloc(&p->heap, ptr, n) : realloc(ptr, n);
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
