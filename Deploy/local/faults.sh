#!/usr/bin/env bash
# Broker faults on librdkafka's mock cluster (at-least-once): offset-commit errors, 300 ms round trips, fetch and
# produce errors, then the broker down for OUTAGE seconds mid-stream; the member must lose nothing and resume by
# itself. One summary line.
#   Deploy/local/faults.sh [OUTAGE_SECONDS]   (default 60; the suite runs 3)
set -euo pipefail
PROMO_FAULT_OUTAGE_SECONDS="${1:-60}" exec "$(dirname "$0")/test-tier.sh" faultsRewindAndRecover faults
