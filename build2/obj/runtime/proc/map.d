build2/obj/runtime/proc/map.o: runtime/proc/map.c runtime/proc/map.h
runtime/proc/map.h:
