/* Process heap internals (private to runtime/alloc/ and its white-box tests). A heap in
 * chunk mode owns CHUNK-aligned chunks; the header at the start of each says
 * whose it is and, for a small-block chunk, which size class each of its pages
 * serves, so free finds a block's class by aligning its pointer down. A large
 * block is a CHUNK-aligned allocation of its own with the same header in front
 * of the block. The heap's state lives inside its first chunk, so releasing
 * the chunks releases the state too and ot__heap stays one pointer. */
#ifndef OT_ALLOC_HEAP_IMPL_H
#define OT_ALLOC_HEAP_IMPL_H

#include "runtime/alloc/heap.h"

#include <stdint.h>

#define OT__HEAP_CHUNK ((size_t)64 << 10) /* chunk size and alignment */
#define OT__HEAP_PAGE ((size_t)4096)      /* a run is made of whole pages */
#define OT__HEAP_PAGES (OT__HEAP_CHUNK / OT__HEAP_PAGE)
#define OT__HEAP_SMALL_MAX ((size_t)8192) /* larger blocks are large blocks */
#define OT__HEAP_NCLASSES 32
#define OT__HEAP_LARGE_HDR ((size_t)64) /* chunk header in front of a large block */
#define OT__HEAP_DIRECT_HDR ((size_t)32)

enum ot__heap_mode {
    OT__HEAP_ARENA = 1, /* chunks from a leased jemalloc arena; release = reset */
    OT__HEAP_FALLBACK,  /* pool empty: chunks from malloc; release frees the chunk list */
    OT__HEAP_DIRECT,    /* sanitizer builds: one malloc per block; release frees the list */
};

enum { OT__CHUNK_SMALL = 1, OT__CHUNK_LARGE = 2 };

struct ot__heap_state;

typedef struct ot__chunk {
    struct ot__heap_state *owner;
    struct ot__chunk *next, *prev;      /* every chunk and large block of the heap */
    size_t size;                        /* bytes held: OT__HEAP_CHUNK, or the large allocation */
    uint32_t kind;                      /* OT__CHUNK_SMALL or OT__CHUNK_LARGE */
    uint16_t next_page;                 /* first page not yet given to a run */
    uint16_t hdr_end;                   /* bytes of page 0 taken by this header (and state) */
    uint8_t page_class[OT__HEAP_PAGES]; /* size class of each page; 0xff: none */
} __attribute__((aligned(64))) ot__chunk;

_Static_assert(sizeof(ot__chunk) == OT__HEAP_LARGE_HDR,
               "a large block's header is one chunk header");

struct ot__heap_bin {
    void *free; /* freed blocks, linked through their first word */
    char *bump; /* the class's current run: [bump, end) not yet handed out */
    char *end;
};

struct ot__heap_state {
    struct ot__heap_bin bin[OT__HEAP_NCLASSES];
    int mode;      /* enum ot__heap_mode */
    unsigned slot; /* arena mode: pool slot and jemalloc arena index */
    unsigned arena;
    int flags;         /* arena mode: the MALLOCX_ flags of every jemalloc call */
    size_t bytes;      /* what ot__heap_bytes reports: stored through set_bytes */
    size_t peak;       /* the most bytes ever held: what the arena keeps warm at release */
    ot__chunk *cur;    /* chunk that new runs are carved from */
    ot__chunk *chunks; /* head of the list of chunks and large blocks */
    void *blocks;      /* direct mode: head of the block list */
};

/* Every change of bytes goes through here: other threads read it (the core's
 * ot_process_info, through ot__heap_bytes) with a relaxed atomic load, and the
 * pool's warm-page budget needs the peak, not the size at release (a heap
 * that grew to 256 MiB and shrank to 64 B leaves 256 MiB of dirty pages in
 * its arena). Only slow paths change bytes, so this costs the fast path
 * nothing. */
static inline void ot__heap_set_bytes(struct ot__heap_state *s, size_t b) {
    __atomic_store_n(&s->bytes, b, __ATOMIC_RELAXED);
    if (b > s->peak)
        s->peak = b;
}

/* Like ot__heap_pool_init with the mode chosen (OT__HEAP_ARENA or
 * OT__HEAP_DIRECT), so that tests can exercise either in any build. */
int ot__heap_pool_init_mode(unsigned narenas, int mode);
/* The heap's mode, 0 for a heap that holds nothing. */
int ot__heap_mode_of(const ot__heap *h);
/* The jemalloc arena an arena-mode heap leases, -1 otherwise. */
int ot__heap_arena_of(const ot__heap *h);

/* Direct mode (heap_direct.c). */
struct ot__heap_state *ot__heap_direct_open(void);
void *ot__heap_direct_alloc(struct ot__heap_state *s, size_t n, int zero);
void *ot__heap_direct_realloc(struct ot__heap_state *s, void *p, size_t n);
void ot__heap_direct_free(struct ot__heap_state *s, void *p);
void ot__heap_direct_release(struct ot__heap_state *s);

#endif
