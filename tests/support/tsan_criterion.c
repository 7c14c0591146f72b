/* Makes Criterion usable under ThreadSanitizer. Criterion's sandbox library
 * (BoxFort) maps its shared "inheritable arena" at a random address drawn
 * with rand_r from [0x2000'0000'0000, 0x6000'0000'0000), and gives up after
 * ten tries whose pages are already mapped. ThreadSanitizer reserves almost
 * all of that range for shadow and meta memory, so test binaries die before
 * the first test ("Could not initialize inheritable arena"). In TSan builds
 * this rand_r, which BoxFort's call binds to, draws from the part of the
 * range TSan leaves to applications (0x5500'0000'0000-0x5680'0000'0000,
 * where PIE binaries load), stepping on each call so a taken spot is
 * skipped. Nothing else in the tests uses rand_r. It must be a dynamic symbol
 * (the build hides symbols by default) for BoxFort to bind to it. */
#if defined(OT_TSAN)
#include <stdlib.h>

__attribute__((visibility("default"))) int rand_r(unsigned *seed) {
    static unsigned step;
    (void)seed;
    /* base = 0x2000'0000'0000 + r * 16 MiB: r = 0x360000 is 0x5600'0000'0000 */
    return (int)(0x360000u + (__atomic_fetch_add(&step, 1, __ATOMIC_RELAXED) * 7u & 0x7fffu));
}
#endif
