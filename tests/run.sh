#!/bin/sh
# run.sh - the whole test suite: unit binaries, fuzz smoke runs, integration tests.
# Called by `make test` with BUILD=build or BUILD=build-san.  Ends with one line `N passed, N failed`;
# exit status 1 if anything failed.
# Environment knobs:
#   BUILD=dir               build directory (unit binaries in $BUILD/tests, broker in $BUILD/aurora)
#   FUZZ_TIME=seconds       per fuzz target (default 10; 0 skips fuzzing)
#   INTEGRATION="a b"       only integration files whose name contains one of these words ("none" skips them)
#   INTEGRATION_K="x y"     passed as -k x -k y to every integration file (substring filters on test names)
#   AURORA_ONLY / MOSQUITTO_ONLY / TEST_SCALE / TEST_TIMEOUT   passed through to the integration harness
#   INTEGRATION_FILE_TIMEOUT=seconds  wall-clock cap per integration file (default 900)
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
export BUILD
export PYTHONDONTWRITEBYTECODE=1
FUZZ_TIME=${FUZZ_TIME:-10}
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/aurora-tests.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
PASS=0
FAIL=0
FAILED_NAMES=""

# count_output FILE LABEL RC : add the ok/FAIL lines of FILE; a non-zero RC with no FAIL line counts as one failure
count_output() {
    p=$(grep -c '^ok ' "$1")
    f=$(grep -c '^FAIL ' "$1")
    PASS=$((PASS + p))
    FAIL=$((FAIL + f))
    if [ "$f" -gt 0 ]; then
        FAILED_NAMES="$FAILED_NAMES $(grep '^FAIL ' "$1" | sed 's/^FAIL \([^: ]*\).*/\1/' | tr '\n' ' ')"
    fi
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
        FAIL=$((FAIL + 1))
        FAILED_NAMES="$FAILED_NAMES $2(exit:$3)"
        echo "FAIL $2: exited with status $3 without reporting a failed test"
    fi
    if [ "$3" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        echo "note: $2 ran no test"
    fi
}

# run_logged LABEL CMD... : run with output shown and saved; sets RC
run_logged() {
    label=$1
    shift
    out="$TMP/out"
    { "$@" 2>&1; echo $? > "$TMP/rc"; } | tee "$out"
    RC=$(cat "$TMP/rc")
    count_output "$out" "$label" "$RC"
}

echo "== unit tests ($BUILD/tests)"
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    echo "-- $t"
    run_logged "$(basename "$t")" timeout 300 "$t"
done

if [ "$FUZZ_TIME" != 0 ] && ls build-fuzz/fuzz_* >/dev/null 2>&1; then
    echo "== fuzz smoke (${FUZZ_TIME}s each)"
    for fz in build-fuzz/fuzz_*; do
        [ -x "$fz" ] || continue
        name=$(basename "$fz")
        corpus="tests/fuzz/corpus/${name#fuzz_}"
        work="$TMP/fuzz-$name"
        mkdir -p "$work/new" "$work/art"
        set -- "$work/new"
        [ -d "$corpus" ] && set -- "$work/new" "$corpus"
        timeout $((FUZZ_TIME + 120)) "$fz" -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix="$work/art/" -print_final_stats=1 "$@" > "$work/log" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            PASS=$((PASS + 1))
            echo "ok $name ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$') runs)"
        else
            FAIL=$((FAIL + 1))
            FAILED_NAMES="$FAILED_NAMES $name"
            echo "FAIL $name: exit $rc"
            tail -n 40 "$work/log" | sed 's/^/    /'
            for a in "$work"/art/*; do
                [ -f "$a" ] || continue
                mkdir -p "$BUILD/fuzz-artifacts" && cp "$a" "$BUILD/fuzz-artifacts/" &&
                    echo "    artifact saved: $BUILD/fuzz-artifacts/$(basename "$a")"
            done
        fi
    done
fi

if [ "${INTEGRATION:-}" != none ]; then
    echo "== integration tests (broker $BUILD/aurora)"
    KARGS=""
    for k in ${INTEGRATION_K:-}; do KARGS="$KARGS -k $k"; done
    for f in tests/integration/test_*.py; do
        [ -f "$f" ] || continue
        if [ -n "${INTEGRATION:-}" ]; then
            hit=0
            for w in $INTEGRATION; do
                case "$(basename "$f")" in *"$w"*) hit=1 ;; esac
            done
            [ $hit -eq 1 ] || continue
        fi
        echo "-- $f"
        # shellcheck disable=SC2086
        run_logged "$(basename "$f")" timeout "${INTEGRATION_FILE_TIMEOUT:-900}" "$PY" "$f" $KARGS
    done
fi

# The broker with no extension registered ($BUILD/aurora-broker: gateway/main.c built with AU_BROKER_ONLY, no IM
# service) passes the MQTT test files (docs/architecture.md "Broker extensions"). Selected by INTEGRATION words
# like the files above ("broker-only" picks only this stage); `make broker-only` runs the unit tests and this stage.
BROKER_ONLY_FILES="test_mqtt311.py test_mqtt5.py test_differential.py test_acl.py test_badinput.py"
if [ "${INTEGRATION:-}" != none ] && [ -x "$BUILD/aurora-broker" ]; then
    echo "== broker-only stage (broker $BUILD/aurora-broker, no extension registered)"
    KARGS=""
    for k in ${INTEGRATION_K:-}; do KARGS="$KARGS -k $k"; done
    for f in $BROKER_ONLY_FILES; do
        if [ -n "${INTEGRATION:-}" ]; then
            hit=0
            for w in $INTEGRATION; do
                case "broker-only:$f" in *"$w"*) hit=1 ;; esac
            done
            [ $hit -eq 1 ] || continue
        fi
        echo "-- tests/integration/$f (broker-only)"
        # shellcheck disable=SC2086
        run_logged "broker-only:$f" env AURORA_BIN="$BUILD/aurora-broker" timeout "${INTEGRATION_FILE_TIMEOUT:-900}" \
            "$PY" "tests/integration/$f" $KARGS
    done
fi

if [ "$FAIL" -gt 0 ]; then
    echo "failed:$(echo $FAILED_NAMES | tr " " "\n" | head -n 40 | tr "\n" " ")"
fi
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
