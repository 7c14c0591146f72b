build2/obj/tests/support/rss.o: tests/support/rss.c tests/support/rss.h
tests/support/rss.h:
