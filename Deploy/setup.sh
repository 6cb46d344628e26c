#!/usr/bin/env bash
# Installs what promo-stream needs on a Debian machine. Idempotent: a second run checks and returns in seconds.
#   Debian: libopenblas-dev (all matrix work), librdkafka-dev (Kafka), libjemalloc-dev (the allocator),
#           pkg-config (SwiftPM finds the three through it).
#   PyPI:   numpy, for the independent reference implementation the tests compare against;
#           lightgbm, for the gradient-boosted-trees baseline the evaluation command runs as a peer
#           (Sources/PromoEvaluation/Peers/gbdt_baseline.py);
#           jsonschema, for Tests/Fixtures/check_schemas.py, which checks the event interface under Topics/.
set -euo pipefail

packages=(libopenblas-dev librdkafka-dev libjemalloc-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python_packages=(numpy lightgbm jsonschema)
missing_python=()
for p in "${python_packages[@]}"; do
    python3 -c "import $p" 2>/dev/null || missing_python+=("$p")
done
if ((${#missing_python[@]})); then
    echo "setup: installing ${missing_python[*]}"
    python3 -m pip install --quiet "${missing_python[@]}"
fi
echo "setup: ready (OpenBLAS, librdkafka, jemalloc, numpy, lightgbm, jsonschema)"
