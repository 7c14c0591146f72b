build2/obj/examples/kv/resp.o: examples/kv/resp.c examples/kv/resp.h
examples/kv/resp.h:
