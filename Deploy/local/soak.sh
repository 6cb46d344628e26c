#!/usr/bin/env bash
# Soak: one member on the local broker for MINUTES at a steady RATE of input events; SIGTERM-restarted at a third
# and at two thirds, a model swap to version 2 at half time. Every 10 s the member's resident memory; from the
# member's stats lines (every 10 s) its rate and input-to-commit latency. One summary line: memory slope of each
# incarnation after 2 minutes of warm-up, events consumed against produced (no queue growth), and per 5 minutes the
# median of the 10-s p50s and the worst 10-s p99.
#   Deploy/local/soak.sh [MINUTES] [RATE] [steady]   (default 30 minutes at 1000 events/s)
# `steady`: a promotion a quarter of the run long, produced again and again: after the first pass every event is a
# duplicate, so the state stops growing and resident memory should stay flat.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes="${1:-30}"
rate="${2:-1000}"
steady="${3:-}"
Deploy/setup.sh >/dev/null
swift build -c release --product promo 2>&1 | tail -1
promo=.build/release/promo
export PROMO_RUN_DIR=".promo-local/soak"
dir="$PROMO_RUN_DIR"
rm -rf "$dir/world" "$dir/state" "$dir"/*.log "$dir"/*.tsv
mkdir -p "$dir"
Deploy/local/broker.sh stop
bootstrap="$(Deploy/local/broker.sh start 19093)"
member_pid=""
producer_pid=""
cleanup() {
    [ -n "$producer_pid" ] && kill "$producer_pid" 2>/dev/null || true
    [ -n "$member_pid" ] && kill "$member_pid" 2>/dev/null || true
    Deploy/local/broker.sh stop
}
trap cleanup EXIT
export OPENBLAS_NUM_THREADS=1

# About 42 input events per item (a profile, an activity, 20 days of sales and buyers): enough for the whole run.
items=$(( rate * minutes * 60 / 42 + 1000 ))
[ "$steady" = steady ] && items=$(( rate * minutes * 60 / 4 / 42 + 100 ))
$promo generate --out "$dir/world" --items "$items" --seed 7 >"$dir/generate.log" 2>&1
$promo train "$dir/world/double11-2025" --out "$dir/v1.safetensors" --epochs 1 --hidden 32 --attention 16 \
    --encoder-width 16 --head-hidden 32 --rows 4099 >"$dir/train.log" 2>&1
$promo train "$dir/world/double11-2025" --out "$dir/v2.safetensors" --model "$dir/v1.safetensors" --version 2 \
    --epochs 1 >>"$dir/train.log" 2>&1
kafka=(--bootstrap "$bootstrap" -X session.timeout.ms=6000 -X heartbeat.interval.ms=1000)
$promo model publish "$dir/v1.safetensors" "${kafka[@]}" >"$dir/publish.log" 2>&1

# Each line of the member's log with the second it was written.
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s)" "$line"; done; }
start_member() {
    $promo run --model "$dir/v1.safetensors" --member soak --state-dir "$dir/state" "${kafka[@]}" \
        > >(stamp >>"$dir/member.log") 2>&1 &
    member_pid=$!
    echo "$(date +%s) start $member_pid" >>"$dir/events.tsv"
}
start_member
until grep -q "assigned partitions" "$dir/member.log"; do sleep 0.5; done
if [ "$steady" = steady ]; then
    # Inputs only (no outcomes), over and over, each pass's count on its own line.
    ( while :; do
        $promo produce --rate "$rate" "${kafka[@]}" "$dir/world/double11-2026"/{item-profiles,activities,daily-sales,daily-buyers}.jsonl \
            >>"$dir/produce.log" 2>&1
      done ) &
else
    $promo produce --rate "$rate" "$dir/world/double11-2026" "${kafka[@]}" >"$dir/produce.log" 2>&1 &
fi
producer_pid=$!
began=$(date +%s)
total=$(( minutes * 60 ))
restarted_1=0; restarted_2=0; swapped=0
while :; do
    now=$(date +%s); t=$(( now - began ))
    [ "$t" -ge "$total" ] && break
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$member_pid/status" 2>/dev/null || echo "")
    [ -n "$rss" ] && echo "$now $member_pid $rss" >>"$dir/rss.tsv"
    if [ "$restarted_1" = 0 ] && [ "$t" -ge $(( total / 3 )) ] || { [ "$restarted_2" = 0 ] && [ "$t" -ge $(( 2 * total / 3 )) ]; }; then
        if [ "$restarted_1" = 0 ]; then restarted_1=1; else restarted_2=1; fi
        kill -TERM "$member_pid"
        wait "$member_pid"
        echo "$(date +%s) stop $member_pid" >>"$dir/events.tsv"
        start_member
    fi
    if [ "$swapped" = 0 ] && [ "$t" -ge $(( total / 2 )) ]; then
        swapped=1
        $promo model publish "$dir/v2.safetensors" "${kafka[@]}" >>"$dir/publish.log" 2>&1
        echo "$(date +%s) swap" >>"$dir/events.tsv"
    fi
    sleep 10
done
if [ "$steady" = steady ]; then
    kill "$producer_pid" 2>/dev/null || true      # the loop; then the pass running now stops and reports
    pkill -TERM -f "promo produce --rate $rate" 2>/dev/null || true
else
    kill -TERM "$producer_pid" 2>/dev/null || true   # it stops, flushes and reports how many it produced
fi
wait "$producer_pid" 2>/dev/null || true
producer_pid=""
sleep 15   # the last produced events reach the member's next batches
kill -TERM "$member_pid"
wait "$member_pid"
member_pid=""
python3 - "$dir" "$began" "$rate" <<'PY'
import re, sys
from collections import defaultdict
folder, began, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rss = defaultdict(list)
for line in open(f"{folder}/rss.tsv"):
    t, pid, kb = line.split()
    rss[pid].append((int(t) - began, int(kb) / 1024))
slopes = []
for pid, samples in rss.items():
    start = samples[0][0]
    warm = [(t, mb) for t, mb in samples if t - start >= 120]
    if len(warm) >= 6:
        n = len(warm); mt = sum(t for t, _ in warm) / n; mm = sum(mb for _, mb in warm) / n
        slope = sum((t - mt) * (mb - mm) for t, mb in warm) / sum((t - mt) ** 2 for t, _ in warm)
        slopes.append((slope * 60, warm[-1][1]))
log = open(f"{folder}/member.log").read().splitlines()
consumed = sum(int(m.group(1)) for l in log for m in [re.search(r"stopped after (\d+) messages", l)] if m)
# The producer's line counts events per topic; members read the four input topics, not the outcomes.
per_topic = defaultdict(int)
for summary in (l for l in open(f"{folder}/produce.log") if "events in" in l):
    for t, n in re.findall(r"(promo\.[a-z-]+) (\d+)", summary):
        per_topic[t] += int(n)
inputs = sum(n for t, n in per_topic.items() if t != "promo.outcomes") if per_topic else None
outcomes = per_topic.get("promo.outcomes", 0)
windows = defaultdict(lambda: ([], []))
for l in log:
    m = re.search(r"p50 (\d+) ms, p99 (\d+) ms", l)
    if m:
        w = max(int(l.split()[0]) - began, 0) // 300
        windows[w][0].append(int(m.group(1))); windows[w][1].append(int(m.group(2)))
parts = []
for w in sorted(windows):
    p50s, p99s = windows[w]
    parts.append(f"{w*5}-{w*5+5} min p50 {sorted(p50s)[len(p50s)//2]} ms p99 {max(p99s)} ms")
switched = any("switched from model version 1 to 2" in l for l in log)
print(f"soak: {len(rss)} incarnations, model swap {'served' if switched else 'NOT served'}; resident memory slope after warm-up "
      + ", ".join(f"{s:+.2f} MB/min (ends at {mb:.0f} MB)" for s, mb in slopes)
      + f"; consumed {consumed} of {inputs if inputs is not None else '?'} input events produced at {rate:.0f}/s"
      + f" (besides {outcomes} outcomes, which members do not read); "
      + "; ".join(parts))
PY
