/* Sanitizer and valgrind annotations for green-stack switches (ARCHITECTURE,
 * "Sanitizers and debuggers"). Compiled to nothing in normal builds. ASan is
 * told about every stack switch so it does not report false stack-buffer
 * errors; TSan runs each green stack as a fiber; valgrind learns each stack's
 * bounds. */
#ifndef OT_CORE_SANIT_H
#define OT_CORE_SANIT_H

#include <stddef.h>

#if defined(OT_ASAN)
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
#define SAN_START_SWITCH(save, lo, sz) __sanitizer_start_switch_fiber((save), (lo), (sz))
#define SAN_FINISH_SWITCH(save) __sanitizer_finish_switch_fiber((save), NULL, NULL)
#else
#define SAN_START_SWITCH(save, lo, sz) ((void)0)
#define SAN_FINISH_SWITCH(save) ((void)0)
#endif

/* A body that ends by switching away (an exit, a handler between messages, a
 * fault) never returns from its frames, so ASan's poisoned redzones in them
 * stay on the stack; the next body on that stack has frames elsewhere and
 * would trip over them. Whoever takes the stack st back forgets them: the
 * frames span from the body's last saved stack pointer (or the stack's
 * bottom, when a fault left it deeper) to the top. Under TSan the same frames
 * stay on the fiber's shadow call stack: their bound is counted against the
 * fiber (sched.c, tsan_fresh_fiber). */
#if defined(OT_ASAN)
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define SAN_FORGET_FRAMES(from, st)                                                          \
    __asan_unpoison_memory_region((from), (size_t)((st)->hi - (const char *)(from)))
#elif defined(OT_TSAN)
#define SAN_FORGET_FRAMES(from, st)                                                          \
    ((st)->tsan_pile += (size_t)((st)->hi - (const char *)(from)) / 16)
#else
#define SAN_FORGET_FRAMES(from, st) ((void)0)
#endif

#if defined(OT_TSAN)
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#define TSAN_SWITCH(f) __tsan_switch_to_fiber((f), 0)
#else
#define TSAN_SWITCH(f) ((void)0)
#endif

#if __has_include(<valgrind/valgrind.h>) && !defined(OT_ASAN) && !defined(OT_TSAN)
#include <valgrind/valgrind.h>
#define VG_STACK_REGISTER(lo, hi) VALGRIND_STACK_REGISTER((lo), (hi))
#define VG_STACK_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
#define VG_RUNNING() (RUNNING_ON_VALGRIND != 0)
#else
#define VG_STACK_REGISTER(lo, hi) 0u
#define VG_STACK_DEREGISTER(id) ((void)0)
#define VG_RUNNING() false
#endif

#endif
