#!/bin/sh
# Runs every Criterion suite given, one after the other (timing-sensitive
# suites must not share two cores with each other), and prints one closing
# line "N passed, N failed" summing Criterion's own per-test counts. A suite
# that dies without a synthesis line counts as one failure. No --full-stats:
# with it every passing assertion is a message to the runner, which made a
# suite of 400,000 asserts (ets_ops) run past its timeout; failing ones are
# reported either way. A failing suite shows Criterion's failure lines first
# (a chatty suite's last 60 lines may not reach them), then its tail.
build="$1"; shift
passed=0; failed=0; skipped=0; bad=""
for t in "$@"; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    out=$(mktemp)
    t0=$(date +%s)
    timeout "${OT_TEST_TIMEOUT:-900}" "$t" --jobs 1 >"$out" 2>&1
    rc=$?
    syn=$(grep -a "Synthesis:" "$out" | tail -1)
    if [ -z "$syn" ]; then
        cat "$out"; echo "== $name: no synthesis (exit $rc)"; failed=$((failed + 1)); bad="$bad $name"
    else
        p=$(echo "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
        f=$(echo "$syn" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
        c=$(echo "$syn" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
        s=$(echo "$syn" | sed -n 's/.*Skipped: \([0-9]*\).*/\1/p')
        passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${c:-0})); skipped=$((skipped + ${s:-0}))
        if [ "${f:-0}" != 0 ] || [ "${c:-0}" != 0 ] || [ $rc -ne 0 ]; then
            grep -aE '^\[(----|FAIL)\]|Timed out|Warning! The test' "$out" | head -40
            echo "-- $name: last 60 lines"; tail -60 "$out"; bad="$bad $name"
            [ "${f:-0}${c:-0}" = "00" ] && failed=$((failed + 1))
        fi
        echo "== $name: $syn ($(( $(date +%s) - t0 )) s)"
    fi
    rm -f "$out"
done
[ -n "$bad" ] && echo "failing suites:$bad"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
