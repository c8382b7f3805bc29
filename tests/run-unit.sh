#!/bin/sh
# run-unit.sh [BUILD] - run every unit-test binary of a build dir; ends with `N passed, N failed`.
cd "$(dirname "$0")/.." || exit 1
BUILD=${1:-${BUILD:-build}}
TMP=$(mktemp -d /tmp/aurora-unit.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
PASS=0
FAIL=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    echo "-- $t"
    { timeout 300 "$t" 2>&1; echo $? > "$TMP/rc"; } | tee "$TMP/out"
    rc=$(cat "$TMP/rc")
    p=$(grep -c '^ok ' "$TMP/out")
    f=$(grep -c '^FAIL ' "$TMP/out")
    PASS=$((PASS + p))
    FAIL=$((FAIL + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        FAIL=$((FAIL + 1))
        echo "FAIL $(basename "$t"): exited with status $rc without reporting a failed test"
    fi
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
