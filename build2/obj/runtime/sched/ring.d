build2/obj/runtime/sched/ring.o: runtime/sched/ring.c \
 runtime/sched/ring.h runtime/sched/sched.h runtime/core.h \
 include/otter.h include/otter/common.h include/otter/runtime.h \
 include/otter/process.h include/otter/timer.h include/otter/alloc.h \
 include/otter/io.h include/otter/socket.h include/otter/ets.h \
 include/otter/registry.h include/otter/gen_server.h \
 include/otter/agent.h include/otter/task.h include/otter/supervisor.h \
 include/otter/listener.h runtime/ext.h runtime/timer/timer.h \
 runtime/sched/ahead.h
runtime/sched/ring.h:
runtime/sched/sched.h:
runtime/core.h:
include/otter.h:
include/otter/common.h:
include/otter/runtime.h:
include/otter/process.h:
include/otter/timer.h:
include/otter/alloc.h:
include/otter/io.h:
include/otter/socket.h:
include/otter/ets.h:
include/otter/registry.h:
include/otter/gen_server.h:
include/otter/agent.h:
include/otter/task.h:
include/otter/supervisor.h:
include/otter/listener.h:
runtime/ext.h:
runtime/timer/timer.h:
runtime/sched/ahead.h:
