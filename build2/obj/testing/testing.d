build2/obj/testing/testing.o: testing/testing.c \
 include/otter/supervisor.h include/otter/common.h \
 include/otter/gen_server.h include/otter/process.h include/otter/task.h \
 include/otter/testing.h include/otter.h include/otter/runtime.h \
 include/otter/timer.h include/otter/alloc.h include/otter/io.h \
 include/otter/socket.h include/otter/ets.h include/otter/registry.h \
 include/otter/agent.h include/otter/listener.h
include/otter/supervisor.h:
include/otter/common.h:
include/otter/gen_server.h:
include/otter/process.h:
include/otter/task.h:
include/otter/testing.h:
include/otter.h:
include/otter/runtime.h:
include/otter/timer.h:
include/otter/alloc.h:
include/otter/io.h:
include/otter/socket.h:
include/otter/ets.h:
include/otter/registry.h:
include/otter/agent.h:
include/otter/listener.h:
