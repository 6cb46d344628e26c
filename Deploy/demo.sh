#!/usr/bin/env bash
# The README's first command: set up, build in release mode, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
Deploy/setup.sh
swift build -c release --product promo
export OPENBLAS_NUM_THREADS=1
.build/release/promo demo "$@"
