#!/bin/sh
# A valgrind smoke for CI: the README's twenty-line example (examples/hello.c)
# under memcheck must finish within a minute, print what it prints natively
# and have no memcheck error. Prints "N passed, N failed".
build=${1:-build}
make -j2 --no-print-directory "$build/examples/hello" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
out=$(timeout 60 valgrind -q --error-exitcode=9 "$build/examples/hello")
rc=$?
if [ "$rc" -eq 0 ] && [ "$out" = "$(printf 'count 55\nafter stop: noproc')" ]; then
    echo "valgrind: examples/hello clean"; echo "1 passed, 0 failed"
else
    echo "valgrind: examples/hello exit $rc (124: hung, 9: memcheck errors), output:"; echo "$out"
    echo "0 passed, 1 failed"; exit 1
fi
