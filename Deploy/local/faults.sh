#!/usr/bin/env bash
# Broker faults on librdkafka's mock cluster (at-least-once): offset-commit errors, 300 ms round trips, fetch and
# produce errors, then the broker down for OUTAGE seconds mid-stream; the member must lose nothing and resume by
# itself. One summary line.
#   Deploy/local/faults.sh [OUTAGE_SECONDS]   (default 60; the suite runs 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
Deploy/setup.sh >/dev/null
export OPENBLAS_NUM_THREADS=1
export PROMO_FAULT_OUTAGE_SECONDS="${1:-60}"
swift build --build-tests 2>&1 | tail -1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if swift test --skip-build --filter faultsRewindAndRecover >"$log" 2>&1; then
    grep '^faults: ' "$log"
else
    tail -20 "$log"
    echo "faults: FAILED with a ${PROMO_FAULT_OUTAGE_SECONDS} s outage"
    exit 1
fi
