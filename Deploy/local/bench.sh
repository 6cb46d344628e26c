#!/usr/bin/env bash
# The stream benchmark: release build, a fresh local broker on port 19092, then promo-stream-bench.
#   Deploy/local/bench.sh [--items N] [--state-items N] [--threads N] [--processor-only | --swap-only | --latency-rate R]
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release 2>&1 | tail -1
export PROMO_RUN_DIR="${PROMO_RUN_DIR:-.promo-local/bench}"
Deploy/local/broker.sh stop
bootstrap="$(Deploy/local/broker.sh start 19092)"
trap 'Deploy/local/broker.sh stop' EXIT
.build/release/promo-stream-bench --bootstrap "$bootstrap" "$@"
