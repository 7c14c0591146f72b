build2/obj/runtime/io/sock.o: runtime/io/sock.c runtime/io/sock_priv.h \
 include/otter/socket.h include/otter/common.h include/otter/process.h \
 runtime/io/io_priv.h runtime/ext.h include/otter.h \
 include/otter/runtime.h include/otter/timer.h include/otter/alloc.h \
 include/otter/io.h include/otter/ets.h include/otter/registry.h \
 include/otter/gen_server.h include/otter/agent.h include/otter/task.h \
 include/otter/supervisor.h include/otter/listener.h
runtime/io/sock_priv.h:
include/otter/socket.h:
include/otter/common.h:
include/otter/process.h:
runtime/io/io_priv.h:
runtime/ext.h:
include/otter.h:
include/otter/runtime.h:
include/otter/timer.h:
include/otter/alloc.h:
include/otter/io.h:
include/otter/ets.h:
include/otter/registry.h:
include/otter/gen_server.h:
include/otter/agent.h:
include/otter/task.h:
include/otter/supervisor.h:
include/otter/listener.h:
