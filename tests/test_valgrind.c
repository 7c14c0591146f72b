/* The README's twenty-line example (examples/hello.c, built beside this
 * test's build folder) runs to completion under valgrind's memcheck with no
 * error and prints exactly what it prints natively. Before, it hung: a
 * scheduler waited in io_uring_enter, which valgrind does not know can
 * block, so it kept valgrind's one running thread and its wakers never ran
 * (runtime/io/ring.c now sleeps in ppoll under valgrind). Skipped where
 * valgrind is not installed and in sanitizer builds (their binaries do not
 * run under valgrind). */
#include <criterion/criterion.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

Test(valgrind, readme_example_runs_under_memcheck, .timeout = 300) {
#if defined(OT_SANITIZE)
    cr_skip_test("sanitizer build: its binaries do not run under valgrind");
#endif
    if (access("/usr/bin/valgrind", X_OK) != 0)
        cr_skip_test("valgrind is not installed");
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(n > 0);
    self[n] = 0;
    char cmd[PATH_MAX + 160];
    snprintf(cmd, sizeof cmd,
             "timeout 240 valgrind -q --error-exitcode=9 %s/../examples/hello 2>/dev/null",
             dirname(self));
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    static char out[4096];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = 0;
    int st = pclose(p);
    cr_assert_str_eq(out, "count 55\nafter stop: noproc\n");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "status %#x (9: memcheck found errors, 124: it hung)", st);
}
