/* The gen_server examples end to end: each binary `make examples` builds
 * (beside this test's build folder) runs and prints exactly its transcript:
 * examples/hello (the README's program), examples/cache (the seed's cache
 * behind cache_get/cache_put, default and named servers), examples/counter
 * (ticks through handle_info, at a 10 ms interval here). */
#include <criterion/criterion.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void run(const char *prog, const char *args, const char *expected) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(n > 0);
    self[n] = 0;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/../examples/%s", dirname(self), prog);
    cr_assert(access(path, X_OK) == 0, "%s not built (make examples)", path);
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", path, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    static char out[4096];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = 0;
    int st = pclose(p);
    cr_assert_str_eq(out, expected);
    cr_assert_eq(st, 0, "exit status %d", st);
}

Test(gs_examples, readme_hello, .timeout = 120) {
    run("hello", "", "count 55\nafter stop: noproc\n");
}

Test(gs_examples, cache, .timeout = 120) {
    run("cache", "",
        "cache[lang] = C\n"
        "sessions[alice] = token-1\n"
        "cache[alice] = No such file or directory\n"
        "nowhere[x] = no such process\n"
        "cache[lang] = C11\n"
        "cache[k42] = v294\n"
        "start again: File exists\n");
}

Test(gs_examples, counter, .timeout = 120) {
    run("counter", "10 3",
        "tick 1\ntick 2\ntick 3\ncounter stops after 3 ticks\ncounter exited: normal\n");
}
