/* run_child: see child.h. */
#include <otter/testing.h>

#include "support/child.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

void run_child(void (*body)(void *), struct child_result *r) {
#if defined(OT_TSAN)
    /* Criterion's worker already has a thread, and TSan kills a forked child
     * of a multi-threaded process that starts threads (die_after_fork), as
     * the runtime must */
    cr_skip_test("TSan: the forked child could not start the runtime's threads");
#endif
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t c = fork();
    /* no Criterion assert in the child: with --full-stats every assert is a
     * message to the runner through a thread that fork did not copy, and the
     * child would block in it for ever */
    if (c == 0) {
        alarm(60);
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        ot_config cfg = {.schedulers = 2};
        int rc = ot__test_run(body, &cfg);
        fflush(NULL);
        _exit(rc == 0 ? 0 : 3);
    }
    cr_assert(c > 0);
    close(fds[1]);
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fds[0], r->out + n, sizeof r->out - 1 - n);
        if (k <= 0 || (n += (size_t)k) == sizeof r->out - 1)
            break;
    }
    r->out[n] = 0;
    close(fds[0]);
    cr_assert_eq(waitpid(c, &r->status, 0), c);
}
