#!/usr/bin/env bash
# `promo evaluate` over 5 seeds (release build), one table of means and spreads (population standard deviation).
#   Deploy/local/seeds.sh [--seeds "1 2 3 4 5"] [--vary split|model] [--bop] -- <promo evaluate arguments>
# --vary model (default): the --test-fraction split stays fixed (--split-seed 1), each seed trains other models;
# --vary split: each seed also draws another split (--split-seed = seed), so the spread includes the data's.
# --bop: `promo bop evaluate` instead (BOP.md on XMarket), whose seed draws the held-out pairs and negatives too.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"   # arguments stay relative to the caller's folder
seeds="1 2 3 4 5"; vary=model
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --vary) vary="$2"; shift 2 ;;
    --bop) vary=bop; shift ;;
    *) echo "unknown option $1 (put promo evaluate's arguments after --)" >&2; exit 2 ;;
  esac
done
[ "${1:-}" = "--" ] && shift
swift build --package-path "$root" -c release --product promo 2>&1 | tail -1 >&2
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
for seed in $seeds; do
  split=1; [ "$vary" = split ] && split="$seed"
  echo "seed $seed (split $split) $(date +%H:%M)" >&2
  if [ "$vary" = bop ]; then command=(bop evaluate --json --seed "$seed"); else command=(evaluate --json --seed "$seed" --split-seed "$split"); fi
  "$root/.build/release/promo" "${command[@]}" "$@" > "$out/$seed.json" 2> "$out/$seed.log" \
    || { tail -5 "$out/$seed.log" >&2; exit 1; }
done
python3 - "$out" $seeds <<'PY'
import json, math, sys
folder, seeds = sys.argv[1], sys.argv[2:]
# One JSON object per table (`--by-market` prints one per market and an overall one).
runs = [[json.loads(line) for line in open(f"{folder}/{s}.json") if line.strip()] for s in seeds]
metrics = [("gmv_mae", "GMV MAE"), ("bsp_auc", "BSP AUC"), ("ss_accuracy", "SS accuracy"), ("ja_auc", "JA AUC")]
def mean_spread(values):
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
for t, table in enumerate(runs[0]):
    if t: print()
    print(f"{table['title']}; mean ± spread over seeds {', '.join(seeds)}\n")
    if "columns" in table:  # a table of figures (MARKETS.md's discriminator accuracies, feature importance)
        print("| | " + " | ".join(table["columns"]) + " |")
        print("|---|" + "---:|" * len(table["columns"]))
        for i, row in enumerate(table["rows"]):
            cells = [mean_spread([run[t]["rows"][i]["values"][c] for run in runs]) for c in range(len(table["columns"]))]
            print(f"| {row['name']} | " + " | ".join(f"{m:.4f} ± {s:.4f}" for m, s in cells) + " |")
        continue
    print("| model | " + " | ".join(name for _, name in metrics) + " | seconds |")
    print("|---|" + "---:|" * (len(metrics) + 1))
    for i, row in enumerate(table["rows"]):
        cells = []
        for key, _ in metrics + [("seconds", "")]:
            values = [run[t]["rows"][i][key] for run in runs if run[t]["rows"][i][key] is not None]
            if not values:
                cells.append("—"); continue
            mean, spread = mean_spread(values)
            if key == "seconds": cells.append(f"{mean:.0f}")
            elif key == "gmv_mae": cells.append(f"{mean:,.0f} ± {spread:,.0f}" if mean >= 1000 else f"{mean:.4g} ± {spread:.2g}")
            else: cells.append(f"{mean:.4f} ± {spread:.4f}")
        print(f"| {row['model']} | " + " | ".join(cells) + " |")
PY
