build2/obj/tests/support/tsan_criterion.o: tests/support/tsan_criterion.c
