/* ot_test_run_example: see example.h. */
#include "support/example.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

int ot_test_run_example(const char *name, char *out, size_t cap) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || cap == 0)
        return -1;
    self[n] = 0;
    char path[PATH_MAX + 64], cmd[PATH_MAX + 96];
    snprintf(path, sizeof path, "%s/../examples/%s", dirname(self), name);
    if (access(path, X_OK) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "%s 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t len = fread(out, 1, cap - 1, p);
    out[len] = 0;
    return pclose(p);
}
