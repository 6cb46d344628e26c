#!/usr/bin/env bash
# Fuzzing: mutated events (bit flips, truncations, type swaps, huge numbers, other schemas, removed fields, stray
# bytes, deep nesting), checked against the strict decoder; one summary line.
#   Deploy/local/fuzz.sh [RECORDS]           through the stream processor (default 1000000; the suite runs 30000)
#   Deploy/local/fuzz.sh --kafka [RECORDS]   into the input topics of the local broker, consumed by a member in
#                                            exactly-once mode (default 1000000; the suite runs 20000)
set -euo pipefail
if [ "${1:-}" = "--kafka" ]; then
    PROMO_FUZZ_KAFKA_RECORDS="${2:-1000000}" exec "$(dirname "$0")/test-tier.sh" mutatedEventsThroughKafka fuzz-kafka
fi
PROMO_FUZZ_RECORDS="${1:-1000000}" exec "$(dirname "$0")/test-tier.sh" mutatedEventsThroughTheProcessor fuzz
