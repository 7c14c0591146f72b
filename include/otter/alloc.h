/* The process heap. Memory from these belongs to the calling process and is
 * all released when it exits, however it exits. Outside a process (a foreign
 * thread) they fall back to the system allocator, and the caller frees. */
#ifndef OTTER_ALLOC_H
#define OTTER_ALLOC_H

#include <otter/common.h>

#ifdef __cplusplus
extern "C" {
#endif

OT_API void *ot_alloc(size_t n);
OT_API void *ot_calloc(size_t n, size_t size);
OT_API void *ot_realloc(void *p, size_t n);
OT_API void ot_free(void *p);
OT_API char *ot_strdup(const char *s);

#ifdef __cplusplus
}
#endif
#endif
