#!/usr/bin/env bash
# MARKETS.md competition's day close (release build), one summary line at the end:
#  1. one group of M items (default 100,000) on one core: `promo-bench competition` beside its PyTorch peer
#     (Deploy/local/competition_torch_peer.py, PyPI's torch in .build/bop-torch-venv, made once), same vectors, in
#     turns on core 0 with one thread each; fails unless both sides' attended vectors agree to 1e-4 (relative to
#     each item's largest component);
#  2. 1,000,000 items in 4 markets × 20 industries on 2 threads (the issue's promotion-sized day close).
#   Deploy/local/competition-bench.sh [--items 100000] [--large 1000000] [--threads 2]
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
items=100000; large=1000000; threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items="$2"; shift 2 ;;
    --large) large="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

swift build -c release --product promo-bench 2>&1 | tail -1 >&2
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
source "$root/Deploy/local/torch-peer-setup.sh"

"${pin[@]}" "$root/.build/release/promo-bench" competition --items "$items" --vectors "$out/vectors.bin" \
  --json "$out/swift.json" >&2
"${pin[@]}" "$venv/bin/python" "$root/Deploy/local/competition_torch_peer.py" --vectors "$out/vectors.bin" \
  --items "$items" --check 1e-4 --json "$out/torch.json"
"$root/.build/release/promo-bench" competition --items "$large" --markets 4 --industries 20 --threads "$threads" \
  --json "$out/large.json" >&2

python3 - "$out" "$items" "$large" "$threads" <<'PY'
import json, sys
folder, items, large, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
swift, torch, big = (json.load(open(f"{folder}/{name}.json")) for name in ("swift", "torch", "large"))
print(f"competition day close: one group of {items:,} items on one core swift {swift['seconds']:.1f} s "
      f"({swift['peak_bytes'] / 2**20:.0f} MiB peak), pytorch {torch['seconds']:.1f} s ({torch['peak_bytes'] / 2**20:.0f} MiB), "
      f"ratio {torch['seconds'] / swift['seconds']:.2f}, agree to {torch['max_relative_diff']:.1g}; "
      f"{large:,} items in 4 markets x 20 industries on {threads} threads {big['seconds']:.1f} s")
PY
