#!/bin/sh
# The runtime's folders are layered (docs/ARCHITECTURE.md, "Layers"): a
# folder's .c, .h and .S files include only headers of their own folder, of
# a lower folder, or the base headers runtime/core.h and runtime/ext.h. A call
# up into a higher folder goes through a hook the lower folder declares in
# its own header ("hooks: called by X, implemented by Y"), so it needs no
# include of the higher header. This greps every #include "runtime/..." line
# and fails on one that reaches up. ALLOWED lists the upward includes not yet
# broken, each with its reason; ARCHITECTURE lists the same ones.
# Prints "N passed, N failed" (one check per file).
set -u
cd "$(dirname "$0")/.." || exit 1

# lowest first; runtime/*.h (core.h, ext.h) are the base, below all of them
ORDER="alloc timer sched proc io debug ets otp"

# file -> upward header it may still include (why: docs/ARCHITECTURE.md)
ALLOWED="
runtime/timer/timer.h runtime/sched/ahead.h
runtime/timer/timer.c runtime/proc/proc.h
runtime/sched/ahead.c runtime/proc/proc.h
runtime/sched/crit.c runtime/proc/proc.h
runtime/sched/fault.c runtime/proc/proc.h
runtime/sched/foreign.c runtime/proc/proc.h
runtime/sched/runtime.c runtime/proc/proc.h
runtime/sched/sched.c runtime/proc/proc.h
"

level() { # folder -> its index in ORDER, or 0 for the base headers
    i=1
    for f in $ORDER; do
        [ "$f" = "$1" ] && { echo $i; return; }
        i=$((i + 1))
    done
    echo unknown
}

passed=0; failed=0
for file in $(find runtime -name '*.[chS]' | sort); do
    folder=$(echo "$file" | sed -n 's#^runtime/\([^/]*\)/.*#\1#p')
    [ -n "$folder" ] || folder=base
    if [ "$folder" = base ]; then mine=0; else mine=$(level "$folder"); fi
    if [ "$mine" = unknown ]; then
        echo "FAIL $file: folder runtime/$folder is not in the layer order"
        failed=$((failed + 1)); continue
    fi
    bad=0
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\(runtime\/[^"]*\)".*/\1/p' "$file"); do
        to=$(echo "$inc" | sed -n 's#^runtime/\([^/]*\)/.*#\1#p')
        if [ -z "$to" ]; then lvl=0; else lvl=$(level "$to"); fi
        if [ "$lvl" = unknown ] || [ "$lvl" -gt "$mine" ]; then
            if echo "$ALLOWED" | grep -qx "$file $inc"; then
                echo "allowed $file -> $inc (listed upward include)"
            else
                echo "FAIL $file includes $inc: runtime/$to is above runtime/$folder"
                bad=1
            fi
        fi
    done
    if [ $bad -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
# an allowance whose include is gone must leave the list (it stays honest)
set -f
for pair in $(echo "$ALLOWED" | tr ' ' ':'); do
    file=${pair%%:*}; inc=${pair#*:}
    if ! grep -q "^[[:space:]]*#[[:space:]]*include[[:space:]]*\"$inc\"" "$file" 2>/dev/null; then
        echo "FAIL stale allowance: $file no longer includes $inc"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
