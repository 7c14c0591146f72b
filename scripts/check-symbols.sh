#!/bin/sh
# Lists the dynamic symbols a shared library defines and fails if any is not
# a public name (ot_ followed by a letter): internals (ot__) and test support
# must stay out of libotter.so. Prints "N passed, N failed".
set -u
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort)
others=$(echo "$syms" | grep -v '^ot_[a-z]' || true)
echo "$lib exports $(echo "$syms" | wc -l) symbols"
if [ -n "$others" ]; then
    echo "FAIL: not public names:"
    echo "$others"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "1 passed, 0 failed"
