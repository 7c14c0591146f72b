/* Direct mode, the default of sanitizer builds (OT_SANITIZE): every block is
 * its own malloc with a 32-byte header linking it into its heap's block list,
 * so AddressSanitizer sees each block with its own redzones and quarantine
 * (overflows, use after free and double frees are caught at block
 * granularity, and LeakSanitizer sees heaps that were never released), and
 * ThreadSanitizer sees every block's lifetime. Release walks the list; that
 * costs one free per block, which sanitizer builds can afford. */
#include "runtime/alloc/heap_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct dblk {
    struct dblk *prev, *next;
    struct ot__heap_state *owner;
    size_t size; /* the caller's n */
};

_Static_assert(sizeof(struct dblk) == OT__HEAP_DIRECT_HDR, "direct header size");

struct ot__heap_state *ot__heap_direct_open(void) {
    struct ot__heap_state *s = calloc(1, sizeof *s);
    if (s)
        s->mode = OT__HEAP_DIRECT;
    return s;
}

static void link_block(struct ot__heap_state *s, struct dblk *b) {
    b->prev = NULL;
    b->next = s->blocks;
    if (b->next)
        b->next->prev = b;
    s->blocks = b;
}

void *ot__heap_direct_alloc(struct ot__heap_state *s, size_t n, int zero) {
    if (n > SIZE_MAX - OT__HEAP_DIRECT_HDR) {
        errno = ENOMEM;
        return NULL;
    }
    struct dblk *b = zero ? calloc(1, OT__HEAP_DIRECT_HDR + n) : malloc(OT__HEAP_DIRECT_HDR + n);
    if (!b)
        return NULL;
    b->owner = s;
    b->size = n;
    link_block(s, b);
    ot__heap_set_bytes(s, s->bytes + OT__HEAP_DIRECT_HDR + n);
    return b + 1;
}

/* The block's header, or NULL when p is not a block of this heap. */
static struct dblk *block_of(struct ot__heap_state *s, void *p) {
    struct dblk *b = (struct dblk *)p - 1;
    return b->owner == s ? b : NULL;
}

void ot__heap_direct_free(struct ot__heap_state *s, void *p) {
    struct dblk *b = block_of(s, p);
    if (!b)
        return;
    if (b->prev)
        b->prev->next = b->next;
    else
        s->blocks = b->next;
    if (b->next)
        b->next->prev = b->prev;
    ot__heap_set_bytes(s, s->bytes - (OT__HEAP_DIRECT_HDR + b->size));
    b->owner = NULL; /* a second free of p finds no owner (if ASan lets it get that far) */
    free(b);
}

void *ot__heap_direct_realloc(struct ot__heap_state *s, void *p, size_t n) {
    struct dblk *b = block_of(s, p);
    if (!b) {
        errno = EINVAL;
        return NULL;
    }
    if (n > SIZE_MAX - OT__HEAP_DIRECT_HDR) {
        errno = ENOMEM;
        return NULL;
    }
    size_t old = b->size;
    struct dblk *nb = realloc(b, OT__HEAP_DIRECT_HDR + n);
    if (!nb)
        return NULL;
    if (nb->prev) /* realloc may have moved it: neighbours still point at b */
        nb->prev->next = nb;
    else
        s->blocks = nb;
    if (nb->next)
        nb->next->prev = nb;
    nb->size = n;
    ot__heap_set_bytes(s, s->bytes - old + n);
    return nb + 1;
}

void ot__heap_direct_release(struct ot__heap_state *s) {
    struct dblk *next;
    for (struct dblk *b = s->blocks; b; b = next) {
        next = b->next;
        free(b);
    }
    free(s);
}
