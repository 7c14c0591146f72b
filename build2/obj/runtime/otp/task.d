build2/obj/runtime/otp/task.o: runtime/otp/task.c runtime/otp/deadline.h \
 include/otter.h include/otter/common.h include/otter/runtime.h \
 include/otter/process.h include/otter/timer.h include/otter/alloc.h \
 include/otter/io.h include/otter/socket.h include/otter/ets.h \
 include/otter/registry.h include/otter/gen_server.h \
 include/otter/agent.h include/otter/task.h include/otter/supervisor.h \
 include/otter/listener.h runtime/otp/rules.h runtime/otp/task_int.h
runtime/otp/deadline.h:
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
runtime/otp/rules.h:
runtime/otp/task_int.h:
