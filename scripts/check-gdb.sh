#!/bin/sh
# Tests scripts/gdb/otter-gdb.py: runs tests/gdb/target.c under gdb in batch
# mode (a live program stopped at its SIGTRAP), then on the core file the
# kernel writes when the same program is not traced, and asserts on what
# `otter processes` and `otter bt` print. gcore is not used: it cannot read
# past the stacks' guard regions (MADV_GUARD_INSTALL), the kernel's dumper
# can. Usage: check-gdb.sh BUILD. Prints "N passed, N failed".
set -u
build=$1
bin=$build/tests/gdb/target
dir=$build/check-gdb
script=scripts/gdb/otter-gdb.py
rm -rf "$dir" && mkdir -p "$dir"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; }

# has LOG NAME REGEX...: every regex matches a line of LOG, in this order
has() {
    log=$1; name=$2; shift 2
    if awk -v n="$#" 'BEGIN { for (i = 1; i <= n; i++) re[i] = ARGV[i]; ARGC = 1; k = 1 }
        k <= n && $0 ~ re[k] { k++ } END { exit k <= n }' "$@" < "$log"; then
        ok "$name"
    else
        bad "$name: no match for the lines $*"
        cat "$log"
    fi
}

check() { # log, where
    log=$1; where=$2
    has "$log" "$where: processes lists the parked stackful process" \
        '^<0\.0\.1> +gdb_waiter +tester +waiting +[01] +stackful +2 +gdb_target_waits$'
    has "$log" "$where: processes lists the idle handler" \
        '^<0\.1\.1> +- +gdb_handler +waiting +[01] +handler +0 +gdb_handler$' '^2 processes$'
    has "$log" "$where: bt walks from the switch to the process's entry" \
        '^process <0\.0\.1> \(waiting, stackful\):$' \
        '^#[0-9] +0x[0-9a-f]+ in ot_receive_tag \(\) at runtime/proc/msg\.c:[0-9]+$' \
        '^#[0-9] +0x[0-9a-f]+ in gdb_target_waits \(\) at tests/gdb/target\.c:15$' \
        '^#[0-9] +0x[0-9a-f]+ in gdb_target_main \(\) at tests/gdb/target\.c:23$' \
        '^#[0-9] +0x[0-9a-f]+ in ot__ctx_start \(\)'
    has "$log" "$where: bt of an idle handler says why there are no frames" \
        '^process <0\.1\.1> \(waiting, handler\):$' '^  no frames: it is waiting'
    has "$log" "$where: bt of a pid that is not alive is an error" \
        'otter bt: no live process <0\.7\.1>'
}

cmds="-ex 'otter processes' -ex 'otter bt <0.0.1>' -ex 'otter bt 1' -ex 'otter bt <0.7.1>'"
eval gdb -batch -nx -x "$script" -ex run $cmds "$bin" > "$dir/live.log" 2>&1
check "$dir/live.log" live

(cd "$dir" && ulimit -c unlimited && "$(cd - >/dev/null && pwd)/$bin" > target.out 2>&1)
core=$(ls "$dir"/core* 2>/dev/null | head -1)
if [ -n "$core" ]; then
    eval gdb -batch -nx -x "$script" $cmds "$bin" "$core" > "$dir/core.log" 2>&1
    check "$dir/core.log" core
    rm -f "$core"
else
    echo "skip: no core file in $dir (kernel.core_pattern: $(cat /proc/sys/kernel/core_pattern))"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
