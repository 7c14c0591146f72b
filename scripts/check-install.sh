#!/bin/sh
# Checks an installed prefix the way a new user meets it: the README's
# example, built with the README's two pkg-config lines (shared, static) and
# with its from-the-tree line, must link the library it names and run.
# Usage: check-install.sh PREFIX BUILD. Prints "N passed, N failed".
set -u
prefix=$1
build=$2
dir=$build/check-install
rm -rf "$dir" && mkdir -p "$dir"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; }

# the example is the README's first C block
sed -n '/^```c$/,/^```$/p' README.md | sed '1d;$d' | sed '/^```$/,$d' > "$dir/demo.c"
[ -s "$dir/demo.c" ] || { echo "FAIL: no C example in README.md"; echo "0 passed, 1 failed"; exit 1; }
expected='count 55
after stop: noproc'

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
so=$(readlink "$prefix/lib/libotter.so")
real=$(readlink "$prefix/lib/libotter.so.0")
soname=$(readelf -d "$prefix/lib/$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$so" = libotter.so.0 ] && [ "$soname" = libotter.so.0 ] &&
    [ "$real" = "libotter.so.$(pkg-config --modversion otter)" ]; then
    ok "libotter.so -> $so -> $real, SONAME $soname"
else
    bad "links and SONAME: libotter.so -> $so -> $real, SONAME '$soname'"
fi

check() { # name, binary, needs-libotter.so (yes|no), env...
    name=$1; bin=$2; want=$3; shift 3
    if readelf -d "$bin" | grep -q 'NEEDED.*\[libotter\.so\.0\]'; then has=yes; else has=no; fi
    if [ "$has" = "$want" ]; then ok "$name: NEEDED libotter.so.0: $has"; else bad "$name: NEEDED libotter.so.0: $has, want $want"; fi
    out=$(env "$@" "$bin" 2>&1); rc=$?
    if [ $rc -eq 0 ] && [ "$out" = "$expected" ]; then ok "$name: runs"; else bad "$name: exit $rc, output: $out"; fi
}

# the README's shared line: runs with the prefix on ld.so's path, and
# without it fails to start (no rpath is recorded, as docs say)
if cc "$dir/demo.c" $(pkg-config --cflags --libs otter) -o "$dir/demo-shared"; then
    check shared "$dir/demo-shared" yes LD_LIBRARY_PATH="$prefix/lib"
    if env -u LD_LIBRARY_PATH "$dir/demo-shared" >/dev/null 2>&1 && ! ldconfig -p | grep -q "libotter.so.0 "; then
        bad "shared: started without the prefix on ld.so's path"
    else
        ok "shared: needs LD_LIBRARY_PATH outside ld.so's path, as documented"
    fi
else
    bad "shared: cc failed"
fi
# the README's static line
if cc "$dir/demo.c" $(pkg-config --cflags --libs --static otter) -o "$dir/demo-static"; then
    check static "$dir/demo-static" no
else
    bad "static: cc failed"
fi
# the README's line for a program built from the tree
if cc -I include "$dir/demo.c" "$build/libotter.a" -luring -ljemalloc -lurcu-qsbr -lurcu-common \
    -lpthread -o "$dir/demo-tree"; then
    check tree "$dir/demo-tree" no
else
    bad "tree: cc failed"
fi
# the test helpers build from the prefix alone
cat > "$dir/t.c" <<'T'
#include <otter/testing.h>
OT_TEST(installed, runs, .timeout = 60) { ot_assert_eq(ot_self().v != 0, 1); }
T
if cc "$dir/t.c" $(pkg-config --cflags --libs otter-testing) -o "$dir/t" &&
    LD_LIBRARY_PATH="$prefix/lib" "$dir/t" --jobs 1 >"$dir/t.log" 2>&1 && grep -q 'Tested: 1 | Passing: 1' "$dir/t.log"; then
    ok "otter-testing: an OT_TEST builds and passes"
else
    bad "otter-testing: $(cat "$dir/t.log" 2>/dev/null)"
fi
# the gdb extension: installed, loads, and its auto-load file names it
auto="$prefix/share/gdb/auto-load$prefix/lib/$real-gdb.py"
if gdb -batch -nx -ex "source $prefix/share/otter/gdb/otter-gdb.py" -ex 'help otter' 2>&1 |
    grep -q 'otter processes' && grep -q "$prefix/share/otter/gdb" "$auto"; then
    ok "gdb extension installed, loads; auto-load file $auto"
else
    bad "gdb extension: not installed where documented, or it does not load"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
