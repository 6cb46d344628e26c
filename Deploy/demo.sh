#!/usr/bin/env bash
# The README's first command: set up, build in release mode, then
#   1. offline: generate a two-year promotion world, train DINOP on the first year, evaluate it on the second;
#   2. streaming: start a local broker, create the topics, publish the trained model on the model topic, run two
#      `promo run` members in one group, produce the second year's pre-sale as a live stream (then its outcomes),
#      watch predictions arrive;
#   3. fine-tune: the outcomes are labels: fine-tune the served version on them, publish the candidate if its
#      holdout metrics hold up, and both members switch to it; then stop them with SIGTERM;
#   4. backtest: replay the topics and print accuracy per pre-sale day (HTML chart written beside it);
#   5. competition: a model with MARKETS.md's competition on the competition world, served by one process running
#      the item role and the industry stage; each pre-sale day closes for every item of its industry, and the
#      streamed predictions of a day's close are compared with `promo predict --as-of-day`.
# Files go to ${PROMO_RUN_DIR:-.promo-local}/demo. Extra arguments go to `promo demo` (e.g. --items 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
Deploy/setup.sh
swift build -c release --product promo 2>&1 | tail -1
export OPENBLAS_NUM_THREADS=1
export PROMO_RUN_DIR="${PROMO_RUN_DIR:-.promo-local}"
promo=.build/release/promo
demo="$PROMO_RUN_DIR/demo"
rm -rf "$demo"
mkdir -p "$demo"

echo "== 1. offline: generate, train, evaluate"
$promo demo --dir "$demo/world" --show 5 "$@"

echo
echo "== 2. streaming: local broker, two members, the 2026 pre-sale as a live stream"
Deploy/local/broker.sh stop
export PROMO_BOOTSTRAP="$(Deploy/local/broker.sh start 19092)"
members=()
cleanup() {
    for pid in "${members[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    Deploy/local/broker.sh stop
}
trap cleanup EXIT
# Tansu holds a fetch for the whole fetch.wait.max.ms even when data arrives: keep it short locally.
kafka=(-X session.timeout.ms=6000 -X heartbeat.interval.ms=1000 -X fetch.wait.max.ms=10)
$promo model publish "$demo/world/model.safetensors" --trained-on "double11-2025 (demo)"
port=9464
for member in demo-1 demo-2; do
    $promo run --model "$demo/world/model.safetensors" --member "$member" --grace-seconds 5 --state-dir "$demo/state" "${kafka[@]}" \
        --http-port "$port" >"$demo/$member.log" 2>&1 &
    members+=($!)
    echo "$member: metrics on http://127.0.0.1:$port/metrics, probes /health and /ready"
    port=$((port + 1))
done
# A member's log line, without its timestamp, level, logger and metadata.
# (Its metadata follow the message, sorted, from event= on.)
message() { sed -E 's/^[^ ]+ [a-z]+ promo\.[a-z]+: //; s/ event=.*$//'; }
for member in demo-1 demo-2; do
    until grep -q "assigned partitions" "$demo/$member.log"; do sleep 0.2; done
    echo "$member: $(grep "assigned partitions" "$demo/$member.log" | tail -1 | message)"
done
$promo produce "$demo/world/double11-2026" --rate 20000 &
producer=$!
echo "first predictions as they arrive (then a count per second):"
$promo watch --topic promo.predictions --show 3 --idle-seconds 8
wait "$producer"
echo "demo-1's /metrics now (a few series; histograms and per-partition lag left out):"
python3 - <<'PY'
import urllib.request
text = urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode()
shown = [l for l in text.splitlines() if l.startswith("promo_") and "_bucket" not in l and "consumer_lag" not in l]
lag = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("promo_consumer_lag"))
print("\n".join("  " + l for l in sorted(shown)[:24]) + f"\n  (consumer lag over all partitions: {lag:.0f})")
PY

echo
echo "== 3. fine-tune: the 2026 outcomes are on the topic; tune the served version on them and publish it"
published=0
$promo finetune --publish --tune-epochs 4 "${kafka[@]}" >"$demo/finetune.log" 2>&1 && published=1
grep -v "epoch " "$demo/finetune.log" | sed 's/^promo finetune: //'
if ((published)); then
    for member in demo-1 demo-2; do
        # A member logs the switch between two batches, then again when every item is recomputed.
        for _ in $(seq 300); do grep -q -e "items under model version 2" -e "refused model" "$demo/$member.log" && break; sleep 0.1; done
        grep -e "switched from" -e "refused model" -e "items under model" "$demo/$member.log" | message | sed "s/^/$member: /"
    done
fi
$promo model list
for pid in "${members[@]}"; do kill -TERM "$pid"; done
for pid in "${members[@]}"; do wait "$pid"; done
members=()
for member in demo-1 demo-2; do
    echo "$member: $(grep -m1 "messages/s" "$demo/$member.log" | message); $(grep "stopped after" "$demo/$member.log" | message)"
done

echo
echo "== 4. backtest: replay the topics, accuracy per pre-sale day"
$promo backtest --model "$demo/world/model.safetensors" --out "$demo/backtest" --grace-seconds 5 --naive-train "$demo/world/double11-2025"
echo "chart: $demo/backtest/backtest.html"

echo
echo "== 5. competition: the item role and the industry stage in one process; every pre-sale day closes for its industry"
world="$demo/competition"
$promo generate --out "$world" --items 800 --competition --seed 5 >/dev/null
cat >"$world/config.json" <<'JSON'
{"extensions": ["market-embedding", "domain-attention", "competition"], "markets": ["cn", "sea", "eu", "latam"],
 "domain_attention": {"spec_rows": 101}, "competition": {"width": 16}}
JSON
$promo train "$world/double11-2025" --out "$world/model.safetensors" --config "$world/config.json" --epochs 3 \
    --hidden 32 --attention 16 2>&1 | grep -v "epoch " | tail -1
# A fresh broker: the topics of parts 2-4 hold the other world's promotion of the same id.
Deploy/local/broker.sh stop
export PROMO_BOOTSTRAP="$(Deploy/local/broker.sh start 19092)"
$promo topics --group demo-competition --single-broker
$promo run --role items,industry --group demo-competition --member competition-1 --model "$world/model.safetensors" \
    --no-follow-models --grace-seconds 5 --close-grace-seconds 10 --state-dir "$demo/state" --http-port 0 \
    "${kafka[@]}" >"$demo/competition.log" 2>&1 &
members+=($!)
until [ "$(grep -c "assigned partitions" "$demo/competition.log")" -ge 2 ]; do sleep 0.2; done
$promo watch --topic promo.predictions --idle-seconds 20 >"$demo/competition-predictions.jsonl" 2>/dev/null &
watcher=$!
$promo produce "$world/double11-2026" --rate 20000 2>&1 | tail -1
wait "$watcher"
grep "closing pre-sale days" "$demo/competition.log" | sed 's/ days=.*$//' | message | sed 's/^/industry stage: /' | head -4
echo "industry stage: … $(grep -c "closing pre-sale days" "$demo/competition.log") closes in all (the last day after --close-grace-seconds)"
$promo predict --model "$world/model.safetensors" --as-of-day 10 --out "$world/offline-day10.jsonl" \
    "$world/double11-2026"/{item-profiles,daily-sales,daily-buyers,activities}.jsonl 2>/dev/null
python3 - "$demo/competition-predictions.jsonl" "$world/offline-day10.jsonl" <<'PY'
import json, sys
streamed = {}
for line in open(sys.argv[1]):
    if line.startswith("{"):
        p = json.loads(line)
        if p.get("as_of_day") == 10:
            streamed[p["item_id"]] = p["gmv"]
offline = {p["item_id"]: p["gmv"] for p in map(json.loads, open(sys.argv[2])) if p["item_id"] in streamed}
worst = max(abs(streamed[i] - g) / max(1.0, g) for i, g in offline.items())
print(f"day 10's close: {len(streamed)} items streamed, {len(offline)} of them in `promo predict --as-of-day 10`; "
      f"largest GMV difference {worst:.1e} (relative)")
PY
kill -TERM "${members[@]}"
wait "${members[@]}"
members=()
