build2/obj/runtime/alloc/heap.o: runtime/alloc/heap.c \
 runtime/alloc/heap_impl.h runtime/alloc/heap.h \
 runtime/alloc/arena_pool.h
runtime/alloc/heap_impl.h:
runtime/alloc/heap.h:
runtime/alloc/arena_pool.h:
