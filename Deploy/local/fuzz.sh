#!/usr/bin/env bash
# Fuzzing: mutated events (bit flips, truncations, type swaps, huge numbers, other schemas, removed fields, stray
# bytes, deep nesting) through the stream processor, checked against the strict decoder; one summary line.
#   Deploy/local/fuzz.sh [RECORDS]   (default 1000000; the suite runs 30000)
set -euo pipefail
PROMO_FUZZ_RECORDS="${1:-1000000}" exec "$(dirname "$0")/test-tier.sh" mutatedEventsThroughTheProcessor fuzz
