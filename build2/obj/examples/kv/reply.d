build2/obj/examples/kv/reply.o: examples/kv/reply.c examples/kv/reply.h
examples/kv/reply.h:
