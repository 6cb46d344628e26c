#!/usr/bin/env bash
# Installs what promo-stream needs on a Debian machine. Idempotent: a second run checks and returns in seconds.
#   Debian: libopenblas-dev (all matrix work), librdkafka-dev (Kafka), libjemalloc-dev (the allocator),
#           pkg-config (SwiftPM finds the three through it).
#   PyPI:   numpy, for the independent reference implementation the tests compare against.
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

if ! python3 -c "import numpy" 2>/dev/null; then
    echo "setup: installing numpy"
    python3 -m pip install --quiet numpy
fi
echo "setup: ready (OpenBLAS, librdkafka, jemalloc, numpy)"
