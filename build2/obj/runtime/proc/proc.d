build2/obj/runtime/proc/proc.o: runtime/proc/proc.c runtime/sched/ring.h \
 runtime/sched/sched.h runtime/core.h include/otter.h \
 include/otter/common.h include/otter/runtime.h include/otter/process.h \
 include/otter/timer.h include/otter/alloc.h include/otter/io.h \
 include/otter/socket.h include/otter/ets.h include/otter/registry.h \
 include/otter/gen_server.h include/otter/agent.h include/otter/task.h \
 include/otter/supervisor.h include/otter/listener.h runtime/ext.h \
 runtime/timer/timer.h runtime/sched/ahead.h runtime/proc/proc.h \
 runtime/alloc/heap.h runtime/proc/map.h runtime/sched/ctx.h \
 runtime/sched/sanit.h
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
runtime/proc/proc.h:
runtime/alloc/heap.h:
runtime/proc/map.h:
runtime/sched/ctx.h:
runtime/sched/sanit.h:
