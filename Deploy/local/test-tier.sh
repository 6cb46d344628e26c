#!/usr/bin/env bash
# Runs one test of the suite at a larger scale (set by the caller's environment) and prints its summary line.
#   Deploy/local/test-tier.sh TEST_NAME SUMMARY_PREFIX
set -euo pipefail
cd "$(dirname "$0")/../.."
test_name="$1"
prefix="$2"
Deploy/setup.sh >/dev/null
export OPENBLAS_NUM_THREADS=1
swift build --build-tests 2>&1 | tail -1
log="$(mktemp)"
if swift test --skip-build --filter "$test_name" >"$log" 2>&1; then
    grep "^$prefix: " "$log"
    rm -f "$log"
else
    sed -n "/^$prefix: /p" "$log"
    tail -20 "$log"
    echo "$prefix: FAILED (whole output: $log)"
    exit 1
fi
