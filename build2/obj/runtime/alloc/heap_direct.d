build2/obj/runtime/alloc/heap_direct.o: runtime/alloc/heap_direct.c \
 runtime/alloc/heap_impl.h runtime/alloc/heap.h
runtime/alloc/heap_impl.h:
runtime/alloc/heap.h:
