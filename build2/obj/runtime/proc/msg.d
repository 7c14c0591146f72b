build2/obj/runtime/proc/msg.o: runtime/proc/msg.c runtime/proc/proc.h \
 runtime/core.h include/otter.h include/otter/common.h \
 include/otter/runtime.h include/otter/process.h include/otter/timer.h \
 include/otter/alloc.h include/otter/io.h include/otter/socket.h \
 include/otter/ets.h include/otter/registry.h include/otter/gen_server.h \
 include/otter/agent.h include/otter/task.h include/otter/supervisor.h \
 include/otter/listener.h runtime/ext.h runtime/sched/sched.h \
 runtime/timer/timer.h runtime/sched/ahead.h runtime/alloc/heap.h \
 runtime/proc/map.h
runtime/proc/proc.h:
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
runtime/sched/sched.h:
runtime/timer/timer.h:
runtime/sched/ahead.h:
runtime/alloc/heap.h:
runtime/proc/map.h:
