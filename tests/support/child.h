/* For the suites whose tests must watch a program die (an abort with a
 * report): the body runs as the test process of a fresh runtime in a forked
 * child, with its stdout and stderr captured. */
#ifndef OT_TESTS_SUPPORT_CHILD_H
#define OT_TESTS_SUPPORT_CHILD_H

struct child_result {
    int status;     /* waitpid's */
    char out[8192]; /* what it wrote to stderr and stdout */
};

/* Forks; the child runs body on 2 schedulers and exits 0 if it returns (3 if
 * it exits abnormally); a child wedged for 60 s dies of SIGALRM, so a wedge
 * fails the test and never blocks it. Criterion asserts on the parent side. */
void run_child(void (*body)(void *), struct child_result *r);

#endif
