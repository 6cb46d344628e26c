#!/usr/bin/env bash
# The stream benchmark: release build, then promo-stream-bench, which starts its own local Tansu broker.
#   Deploy/local/bench.sh [--items N] [--state-items N] [--threads N] [--processor-only | --swap-only | --latency-rate R]
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release 2>&1 | tail -1
.build/release/promo-stream-bench "$@"
