build2/obj/tests/support/example.o: tests/support/example.c \
 tests/support/example.h
tests/support/example.h:
