#!/usr/bin/env bash
# The README's test command: set up, then build and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
Deploy/setup.sh
# One OpenBLAS thread per process: the tests run in parallel on few cores.
export OPENBLAS_NUM_THREADS=1
# The topic specs, JSON Schemas and their examples agree (the Swift tests check the decoder against the same examples).
python3 Tests/Fixtures/check_schemas.py
swift test
# Deploy/ as it would be applied: manifests valid against the Kubernetes schema, every promo flag they use known to
# the binary just built.
python3 Tests/Fixtures/check_deploy.py .build/debug/promo
