#!/usr/bin/env bash
# Fuzzing: mutated events (bit flips, truncations, type swaps, huge numbers, other schemas, removed fields, stray
# bytes, deep nesting) through the stream processor, checked against the strict decoder; one summary line.
#   Deploy/local/fuzz.sh [RECORDS]   (default 1000000; the suite runs 30000)
set -euo pipefail
cd "$(dirname "$0")/../.."
Deploy/setup.sh >/dev/null
export OPENBLAS_NUM_THREADS=1
export PROMO_FUZZ_RECORDS="${1:-1000000}"
swift build --build-tests 2>&1 | tail -1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if swift test --skip-build --filter mutatedEventsThroughTheProcessor >"$log" 2>&1; then
    grep '^fuzz: ' "$log"
else
    tail -20 "$log"
    echo "fuzz: FAILED with $PROMO_FUZZ_RECORDS records"
    exit 1
fi
