build2/obj/runtime/alloc/arena_pool.o: runtime/alloc/arena_pool.c \
 runtime/alloc/arena_pool.h
runtime/alloc/arena_pool.h:
