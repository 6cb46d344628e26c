#!/usr/bin/env bash
# The processor alone, before and after a change, in one run: builds promo-stream-bench at REV (in a worktree
# under .promo-local/) and at the working tree, both release, then runs them in turns, ROUNDS times each, and
# prints the median events/s per thread count side by side. No broker.
#   Deploy/local/bench-compare.sh REV [ROUNDS] [-- bench options, e.g. --items 20000]
set -euo pipefail
cd "$(dirname "$0")/../.."
rev="${1:?usage: Deploy/local/bench-compare.sh REV [ROUNDS] [-- bench options]}"; shift
rounds=3
if [[ $# -gt 0 && "$1" != "--" ]]; then rounds="$1"; shift; fi
[[ "${1:-}" == "--" ]] && shift
commit="$(git rev-parse --short "$rev^{commit}")"
before=".promo-local/bench-$commit"
if [[ ! -d "$before" ]]; then git worktree add --detach "$before" "$commit" >/dev/null; fi
(cd "$before" && swift build -c release --product promo-stream-bench 2>&1 | tail -1)
swift build -c release --product promo-stream-bench 2>&1 | tail -1

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for ((round = 1; round <= rounds; round++)); do
    for side in before after; do
        binary=".build/release/promo-stream-bench"
        [[ "$side" == before ]] && binary="$before/.build/release/promo-stream-bench"
        # "1. processor alone (…), N thread(s): R events/s (…)"
        "$binary" --processor-only "$@" 2>/dev/null | sed -n 's/^1\. processor alone.*, \([0-9]*\) threads\{0,1\}: \([0-9]*\) events\/s.*/\1 \2/p' \
            | while read -r threads rate; do echo "$side $threads $rate" >>"$results"; done
    done
done
python3 - "$results" "$commit" "$rounds" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for threads in sorted({int(r[1]) for r in rows}):
    runs = {side: sorted(int(r[2]) for r in rows if r[0] == side and int(r[1]) == threads) for side in ("before", "after")}
    median = {side: statistics.median(rates) for side, rates in runs.items()}
    print(f"processor alone, {threads} thread{'s' if threads > 1 else ''}: before ({sys.argv[2]}) {median['before']:,.0f} events/s "
          f"({runs['before'][0]:,}–{runs['before'][-1]:,}), after (working tree) {median['after']:,.0f} events/s "
          f"({runs['after'][0]:,}–{runs['after'][-1]:,}), after/before {median['after'] / median['before']:.3f} "
          f"(medians of {sys.argv[3]} runs each, in turns)")
PY
