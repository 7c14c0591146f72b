/* The debug folder's calls the rest of the runtime makes: crash reports
 * (log.c) and symbolizing addresses (symbols.c, for fault reports). */
#ifndef OT_DEBUG_H
#define OT_DEBUG_H

#include "runtime/core.h"

/* log.c */
OT_HIDDEN void ot__crash_report(struct ot_proc *p);

/* symbols.c: true when pc's function was named (name+off); obj and objoff
 * (the object's name and pc's offset in it) are set whenever obj is. */
struct ot__sym {
    const char *obj;
    uintptr_t off, objoff;
    char name[96];
};
OT_HIDDEN bool ot__symbolize(uintptr_t pc, struct ot__sym *out);

#endif
