#!/usr/bin/env bash
# BOP.md's scoring benchmark against PyTorch: candidate scorings per second on one core (history 49 + candidate,
# ACMR's sizes), `promo-bench bop` (release build) and its PyTorch peer (Deploy/local/bop_torch_peer.py, PyPI's
# torch in .build/bop-torch-venv, made once) on the same weights and the same user and candidates, in turns on
# core 0 with one thread each; fails unless both sides' P(buy) agree to 1e-5. One summary line at the end.
#   Deploy/local/bop-bench.sh [--candidates 100] [--seconds 2] [--rounds 2] [--weights FILE]
# Without --weights, a random model (ACMR's sizes, PyTorch's initialisation, seed 1, markets de and jp).
# Each round runs Swift then PyTorch (batches 1, C and 1,000, best of 3 runs of --seconds each); a side's figure
# is its best over the rounds, so a burst of load from another process hits both sides alike.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
candidates=100; seconds=2; rounds=2; weights=""
while [ $# -gt 0 ]; do
  case "$1" in
    --candidates) candidates="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --weights) weights="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

swift build -c release --product promo-bench 2>&1 | tail -1 >&2

out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
source "$root/Deploy/local/torch-peer-setup.sh"

model=(--write-weights "$out/bop.safetensors")
[ -n "$weights" ] && model=(--weights "$weights") && cp "$weights" "$out/bop.safetensors"
for round in $(seq 1 "$rounds"); do
  echo "— round $round of $rounds" >&2
  "${pin[@]}" "$root/.build/release/promo-bench" bop "${model[@]}" --workload "$out/workload.json" \
    --candidates "$candidates" --seconds "$seconds" --json "$out/swift-$round.json" >&2
  model=(--weights "$out/bop.safetensors")
  "${pin[@]}" "$venv/bin/python" "$root/Deploy/local/bop_torch_peer.py" --weights "$out/bop.safetensors" \
    --workload "$out/workload.json" --candidates "$candidates" --seconds "$seconds" --check 1e-5 \
    --json "$out/torch-$round.json" >&2
done

python3 - "$out" "$rounds" "$candidates" <<'PY'
import json, sys
folder, rounds, c = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def best(side, key):
    runs = [json.load(open(f"{folder}/{side}-{r}.json")) for r in range(1, rounds + 1)]
    return {b: max(run[key][b] for run in runs) for b in runs[0][key]}, runs
swift, swift_runs = best("swift", "rates")
torch, torch_runs = best("torch", "rates")
swift_cpu, _ = best("swift", "cpu_rates")
torch_cpu, _ = best("torch", "cpu_rates")
worst = max(run["max_diff"] for run in torch_runs)
print(f"best of {rounds} rounds; P(buy) agree to {worst:.2g}", file=sys.stderr)
print("batch   per wall second: swift  pytorch  ratio    per CPU second: swift  pytorch  ratio", file=sys.stderr)
for b in sorted(swift, key=int):
    print(f"{int(b):5d} {swift[b]:23,.0f} {torch[b]:8,.0f} {swift[b] / torch[b]:6.2f} "
          f"{swift_cpu[b]:22,.0f} {torch_cpu[b]:8,.0f} {swift_cpu[b] / torch_cpu[b]:6.2f}", file=sys.stderr)
print(f"bop scoring (history {swift_runs[0]['history']} + candidate, batch {c}, one core): swift {swift[c]:,.0f}/s, "
      f"pytorch {torch[c]:,.0f}/s, ratio {swift[c] / torch[c]:.2f} (per CPU second {swift_cpu[c] / torch_cpu[c]:.2f})")
PY
