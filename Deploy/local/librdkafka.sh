#!/usr/bin/env bash
# Builds librdkafka 2.8.0 from Debian trixie's source package into /usr/local (idempotent).
# Why not bookworm's 2.0.2: it fails the ApiVersions handshake with the Tansu development broker, and 2.8.0
# brings the transaction and mock-cluster fixes the processor's exactly-once tests rely on.
# The source tarball is cached under ${PROMO_CACHE:-$HOME/.cache/promo-stream}; a second run returns at once.
set -euo pipefail
version=2.8.0
if [ "$(pkg-config --modversion rdkafka 2>/dev/null || true)" = "$version" ] \
    && [ -f /usr/local/lib/librdkafka.so.1 ]; then
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
cache="${PROMO_CACHE:-$HOME/.cache/promo-stream}/librdkafka-$version"
mkdir -p "$cache"
deps=(build-essential dpkg-dev libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev pkg-config python3)
source_list=/etc/apt/sources.list.d/promo-trixie-src.sources
if [ ! -f "$source_list" ]; then
    # Source packages only: binaries still come from the machine's own release.
    $sudo tee "$source_list" >/dev/null <<'LIST'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
LIST
fi
echo "librdkafka: building $version from Debian trixie source (about 3 minutes on 2 cores)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${deps[@]}" >/dev/null
cd "$cache"
if [ ! -d "librdkafka-$version" ]; then
    apt-get source -qq --download-only -o APT::Sandbox::User=root "librdkafka=$version-1" >/dev/null
    tar xf "librdkafka_$version.orig.tar.gz"
fi
cd "librdkafka-$version"
./configure --prefix=/usr/local --disable-debug-symbols --enable-ssl --enable-zstd --enable-lz4-ext \
    --disable-gssapi --disable-curl >/dev/null
make -j"$(nproc)" libs >/dev/null 2>&1
$sudo make -C src install >/dev/null
$sudo ldconfig
echo "librdkafka: $(pkg-config --modversion rdkafka) installed in /usr/local"
