/* Process heaps: the allocator behind ot_alloc (ARCHITECTURE 6, HEAP.md). A
 * heap holds nothing until its first allocation, which leases an arena from
 * the pool (or, when the pool is empty, falls back to chunks from malloc) and
 * places the heap's state in its first chunk. Small blocks (up to 8 KiB, 32
 * size classes) are bump-allocated from per-class runs of whole pages carved
 * out of 64 KiB chunks and recycled through per-class free lists, so the
 * common alloc and free touch no lock and call no jemalloc function; large
 * blocks are chunk-aligned jemalloc allocations with a chunk header in front.
 * Every chunk is CHUNK-aligned, so free finds any block's header by masking
 * its pointer. Release never walks blocks: arena mode resets the arena, the
 * fallback frees its chunk list. A heap is used by one thread at a time, so
 * nothing here is atomic except the mode new heaps open in. */
#include "runtime/alloc/heap_impl.h"

#include "runtime/alloc/arena_pool.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* 16-byte steps to 128, then four classes per doubling up to 8 KiB. */
static const uint16_t class_size[OT__HEAP_NCLASSES] = {
    16,  32,  48,  64,   80,   96,   112,  128,  160,  192,  224,  256,  320,  384,  448,  512,
    640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192,
};

/* The mode new heaps open in. Set by pool init and fini, which the core runs
 * before its schedulers start and after they stop (thread creation and join
 * order those stores before every load), so relaxed is enough both ways. */
static _Atomic int heap_mode = OT__HEAP_ARENA;
static bool pool_up;

static inline unsigned size_class(size_t n) {
    if (n <= 128)
        return (unsigned)((n - (n != 0)) >> 4);
    unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1));
    return 8 + (lg - 7) * 4 + (unsigned)(((n - 1) >> (lg - 2)) & 3);
}

static inline ot__chunk *chunk_of(const void *p) {
    return (ot__chunk *)((uintptr_t)p & ~(uintptr_t)(OT__HEAP_CHUNK - 1));
}

static inline unsigned page_of(const void *p) {
    return (unsigned)(((uintptr_t)p / OT__HEAP_PAGE) & (OT__HEAP_PAGES - 1));
}

/* Pages per run: the fewest that waste at most an eighth of the run. */
static unsigned run_pages(size_t size) {
    size_t r = (size + OT__HEAP_PAGE - 1) / OT__HEAP_PAGE;
    while (((r * OT__HEAP_PAGE) % size) * 8 > r * OT__HEAP_PAGE)
        r++;
    return (unsigned)r;
}

/* --- memory from the arena or from malloc ------------------------------ */

static void *mem_alloc(int mode, int flags, size_t size, bool zero) {
    if (mode == OT__HEAP_ARENA)
        return mallocx(size, flags | MALLOCX_ALIGN(OT__HEAP_CHUNK) | (zero ? MALLOCX_ZERO : 0));
    void *p;
    if (posix_memalign(&p, OT__HEAP_CHUNK, size) != 0)
        return NULL;
    if (zero)
        memset(p, 0, size);
    return p;
}

/* Bytes an allocation really holds: jemalloc rounds up to its size classes. */
static size_t mem_size(int mode, void *p) {
    return mode == OT__HEAP_ARENA ? sallocx(p, 0) : malloc_usable_size(p);
}

static void mem_free(const struct ot__heap_state *s, void *p) {
    if (s->mode == OT__HEAP_ARENA)
        dallocx(p, s->flags);
    else
        free(p);
}

/* --- chunks ---------------------------------------------------------------- */

static void link_chunk(struct ot__heap_state *s, ot__chunk *c) {
    c->prev = NULL;
    c->next = s->chunks;
    if (s->chunks)
        s->chunks->prev = c;
    s->chunks = c;
}

/* Points c's neighbours (or the list head) at c again after jemalloc moved it. */
static void relink_chunk(struct ot__heap_state *s, ot__chunk *c) {
    if (c->prev)
        c->prev->next = c;
    else
        s->chunks = c;
    if (c->next)
        c->next->prev = c;
}

static void chunk_header(struct ot__heap_state *s, ot__chunk *c, uint32_t kind, size_t size) {
    c->owner = s;
    c->size = size;
    c->kind = kind;
    c->next_page = 0;
    c->hdr_end = (uint16_t)sizeof(ot__chunk);
    memset(c->page_class, 0xff, sizeof c->page_class);
    link_chunk(s, c);
    ot__heap_set_bytes(s, s->bytes + size);
}

static ot__chunk *chunk_new(struct ot__heap_state *s) {
    ot__chunk *c = mem_alloc(s->mode, s->flags, OT__HEAP_CHUNK, false);
    if (c)
        chunk_header(s, c, OT__CHUNK_SMALL, OT__HEAP_CHUNK);
    return c;
}

/* Gives class c a fresh run: the rest of page 0 of the current chunk when one
 * page is enough and it fits a block, else whole pages, from a new chunk when
 * the current one is out of pages (its last few pages are then left unused). */
static int carve_run(struct ot__heap_state *s, unsigned c) {
    size_t size = class_size[c];
    unsigned r = run_pages(size);
    struct ot__heap_bin *b = &s->bin[c];
    ot__chunk *ck = s->cur;
    for (;;) {
        if (ck->next_page == 0) {
            ck->next_page = 1;
            if (r == 1 && OT__HEAP_PAGE - ck->hdr_end >= size) {
                ck->page_class[0] = (uint8_t)c;
                b->bump = (char *)ck + ck->hdr_end;
                b->end = (char *)ck + OT__HEAP_PAGE;
                return 0;
            }
        }
        if (ck->next_page + r <= OT__HEAP_PAGES)
            break;
        if (!(ck = chunk_new(s)))
            return -ENOMEM;
        s->cur = ck;
    }
    memset(&ck->page_class[ck->next_page], (int)c, r);
    b->bump = (char *)ck + ck->next_page * OT__HEAP_PAGE;
    b->end = b->bump + r * OT__HEAP_PAGE;
    ck->next_page = (uint16_t)(ck->next_page + r);
    return 0;
}

/* First allocation: lease an arena (or fall back), make the first chunk and
 * put the state in it, right after its header. */
static struct ot__heap_state *heap_open(ot__heap *h) {
    int mode = atomic_load_explicit(&heap_mode, memory_order_relaxed);
    if (mode == OT__HEAP_DIRECT) {
        struct ot__heap_state *d = ot__heap_direct_open();
        __atomic_store_n(&h->state, d, __ATOMIC_RELEASE); /* ot__heap_bytes may read it */
        return d;
    }
    unsigned slot = 0, arena = 0;
    int flags = 0;
    mode = OT__HEAP_FALLBACK;
    if (ot__arena_pool_lease(&slot, &arena) == 0) {
        mode = OT__HEAP_ARENA;
        flags = MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE;
    }
    ot__chunk *c = mem_alloc(mode, flags, OT__HEAP_CHUNK, false);
    if (!c) {
        if (mode == OT__HEAP_ARENA)
            ot__arena_pool_return(slot, 0);
        return NULL;
    }
    struct ot__heap_state *s = (struct ot__heap_state *)(c + 1);
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->slot = slot;
    s->arena = arena;
    s->flags = flags;
    chunk_header(s, c, OT__CHUNK_SMALL, OT__HEAP_CHUNK);
    c->hdr_end = (uint16_t)((sizeof(ot__chunk) + sizeof *s + 15) & ~(size_t)15);
    s->cur = c;
    __atomic_store_n(&h->state, s, __ATOMIC_RELEASE); /* ot__heap_bytes may read it */
    return s;
}

/* --- large blocks ---------------------------------------------------------- */

static void *large_alloc(struct ot__heap_state *s, size_t n, bool zero) {
    if (n > SIZE_MAX - OT__HEAP_CHUNK) {
        errno = ENOMEM;
        return NULL;
    }
    ot__chunk *c = mem_alloc(s->mode, s->flags, n + OT__HEAP_LARGE_HDR, zero);
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    chunk_header(s, c, OT__CHUNK_LARGE, mem_size(s->mode, c));
    return c + 1;
}

static void large_free(struct ot__heap_state *s, ot__chunk *c, void *p) {
    if (p != (void *)(c + 1))
        return; /* not the start of the block: not a pointer we returned */
    if (c->prev)
        c->prev->next = c->next;
    else
        s->chunks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ot__heap_set_bytes(s, s->bytes - c->size);
    mem_free(s, c);
}

static void *large_realloc(struct ot__heap_state *s, ot__chunk *c, size_t n) {
    if (n > SIZE_MAX - OT__HEAP_CHUNK) {
        errno = ENOMEM;
        return NULL;
    }
    if (s->mode == OT__HEAP_ARENA) {
        /* rallocx grows or shrinks in place when it can and keeps the alignment
         * when it moves; it copies the header along with the block. */
        ot__chunk *nc =
            rallocx(c, n + OT__HEAP_LARGE_HDR, s->flags | MALLOCX_ALIGN(OT__HEAP_CHUNK));
        if (!nc) {
            errno = ENOMEM;
            return NULL;
        }
        size_t size = sallocx(nc, 0);
        ot__heap_set_bytes(s, s->bytes - nc->size + size);
        nc->size = size;
        if (nc != c)
            relink_chunk(s, nc);
        return nc + 1;
    }
    void *q = large_alloc(s, n, false);
    if (!q)
        return NULL;
    size_t old = c->size - OT__HEAP_LARGE_HDR;
    memcpy(q, c + 1, old < n ? old : n);
    large_free(s, c, c + 1);
    return q;
}

/* --- the interface ------------------------------------------------------- */

static void *alloc_slow(ot__heap *h, size_t n) {
    struct ot__heap_state *s = h->state;
    if (!s && !(s = heap_open(h))) {
        errno = ENOMEM;
        return NULL;
    }
    if (s->mode == OT__HEAP_DIRECT)
        return ot__heap_direct_alloc(s, n, 0);
    if (n > OT__HEAP_SMALL_MAX)
        return large_alloc(s, n, false);
    unsigned c = size_class(n);
    struct ot__heap_bin *b = &s->bin[c];
    if (b->free) { /* a heap opened just now has none, but keep the order of the fast path */
        void *p = b->free;
        b->free = *(void **)p;
        return p;
    }
    if ((size_t)(b->end - b->bump) < class_size[c] && carve_run(s, c) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = b->bump;
    b->bump += class_size[c];
    return p;
}

void *ot__heap_alloc(ot__heap *h, size_t n) {
    struct ot__heap_state *s = h->state;
    if (likely(s != NULL && n <= OT__HEAP_SMALL_MAX)) {
        unsigned c = size_class(n);
        struct ot__heap_bin *b = &s->bin[c];
        void *p = b->free;
        if (likely(p != NULL)) {
            b->free = *(void **)p;
            return p;
        }
        /* Direct-mode states have empty bins (NULL - NULL is 0), so they always go slow. */
        if ((size_t)(b->end - b->bump) >= class_size[c]) {
            p = b->bump;
            b->bump += class_size[c];
            return p;
        }
    }
    return alloc_slow(h, n);
}

void *ot__heap_calloc(ot__heap *h, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (total <= OT__HEAP_SMALL_MAX) {
        void *p = ot__heap_alloc(h, total);
        if (p)
            memset(p, 0, total);
        return p;
    }
    struct ot__heap_state *s = h->state;
    if (!s && !(s = heap_open(h))) {
        errno = ENOMEM;
        return NULL;
    }
    if (s->mode == OT__HEAP_DIRECT)
        return ot__heap_direct_alloc(s, total, 1);
    return large_alloc(s, total, true);
}

void ot__heap_free(ot__heap *h, void *p) {
    struct ot__heap_state *s = h->state;
    if (p == NULL || s == NULL)
        return;
    if (unlikely(s->mode == OT__HEAP_DIRECT)) {
        ot__heap_direct_free(s, p);
        return;
    }
    ot__chunk *c = chunk_of(p);
    if (unlikely(c->owner != s))
        return; /* another heap's block: it goes with that heap (HEAP.md) */
    if (unlikely(c->kind != OT__CHUNK_SMALL)) {
        large_free(s, c, p);
        return;
    }
    unsigned cls = c->page_class[page_of(p)];
    if (unlikely(cls >= OT__HEAP_NCLASSES))
        return;
    struct ot__heap_bin *b = &s->bin[cls];
    *(void **)p = b->free;
    b->free = p;
}

void *ot__heap_realloc(ot__heap *h, void *p, size_t n) {
    if (p == NULL)
        return ot__heap_alloc(h, n);
    struct ot__heap_state *s = h->state;
    if (s == NULL) {
        errno = EINVAL; /* this heap never returned p */
        return NULL;
    }
    if (n == 0) {
        ot__heap_free(h, p);
        return NULL;
    }
    if (s->mode == OT__HEAP_DIRECT)
        return ot__heap_direct_realloc(s, p, n);
    ot__chunk *c = chunk_of(p);
    size_t old;
    if (c->owner != s) {
        errno = EINVAL;
        return NULL;
    }
    if (c->kind == OT__CHUNK_SMALL) {
        unsigned cls = c->page_class[page_of(p)];
        if (cls >= OT__HEAP_NCLASSES) {
            errno = EINVAL;
            return NULL;
        }
        if (n <= OT__HEAP_SMALL_MAX && size_class(n) == cls)
            return p;
        old = class_size[cls];
    } else {
        if (p != (void *)(c + 1)) {
            errno = EINVAL;
            return NULL;
        }
        if (n > OT__HEAP_SMALL_MAX)
            return large_realloc(s, c, n);
        old = c->size - OT__HEAP_LARGE_HDR;
    }
    void *q = ot__heap_alloc(h, n);
    if (!q)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    ot__heap_free(h, p);
    return q;
}

void ot__heap_release(ot__heap *h) {
    struct ot__heap_state *s = h->state;
    if (!s)
        return;
    __atomic_store_n(&h->state, NULL, __ATOMIC_RELAXED);
    if (s->mode == OT__HEAP_ARENA) {
        /* The state lives in the arena: read what we need before the reset. */
        ot__arena_pool_return(s->slot, s->peak);
    } else if (s->mode == OT__HEAP_FALLBACK) {
        ot__chunk *home = chunk_of(s), *next;
        for (ot__chunk *c = s->chunks; c; c = next) {
            next = c->next;
            if (c != home)
                free(c);
        }
        free(home);
    } else {
        ot__heap_direct_release(s);
    }
}

size_t ot__heap_bytes(const ot__heap *h) {
    /* any thread may ask (ot_process_info): the state pointer is published
     * with a release store, and bytes is stored atomically (set_bytes) */
    const struct ot__heap_state *s = __atomic_load_n(&h->state, __ATOMIC_ACQUIRE);
    return s ? __atomic_load_n(&s->bytes, __ATOMIC_RELAXED) : 0;
}

int ot__heap_mode_of(const ot__heap *h) {
    const struct ot__heap_state *s = h->state;
    return s ? s->mode : 0;
}

int ot__heap_arena_of(const ot__heap *h) {
    const struct ot__heap_state *s = h->state;
    return s && s->mode == OT__HEAP_ARENA ? (int)s->arena : -1;
}

int ot__heap_pool_init_mode(unsigned narenas, int mode) {
    if (mode != OT__HEAP_ARENA && mode != OT__HEAP_DIRECT)
        return -EINVAL;
    if (pool_up)
        return -EBUSY;
    if (mode == OT__HEAP_ARENA) {
        int r = ot__arena_pool_init(narenas ? narenas : OT__ARENA_POOL_DEFAULT);
        if (r < 0)
            return r;
    }
    atomic_store_explicit(&heap_mode, mode, memory_order_relaxed);
    pool_up = true;
    return 0;
}

int ot__heap_pool_init(unsigned narenas) {
#ifdef OT_SANITIZE
    return ot__heap_pool_init_mode(narenas, OT__HEAP_DIRECT);
#else
    return ot__heap_pool_init_mode(narenas, OT__HEAP_ARENA);
#endif
}

void ot__heap_pool_fini(void) {
    if (!pool_up)
        return;
    ot__arena_pool_fini();
    /* Heaps opened from now on find the pool empty and use the fallback. */
    atomic_store_explicit(&heap_mode, OT__HEAP_ARENA, memory_order_relaxed);
    pool_up = false;
}
