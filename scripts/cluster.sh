#!/usr/bin/env bash
# Three Switchboard nodes and one Redis on this machine, behind nginx when it is installed:
#
#   scripts/cluster.sh            redis on :6390, nodes on :3001-3003, nginx on :8000
#
# Data goes to ./cluster-data (Redis AOF with appendfsync always). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
DATA="$PWD/cluster-data"
mkdir -p "$DATA/nginx"
REDIS_PORT=${REDIS_PORT:-6390}

cargo build --release -p server
[ -f dist/index.html ] || trunk build --release

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DATA" \
    --appendonly yes --appendfsync always --save "" >"$DATA/redis.log" &
pids+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done

for port in 3001 3002 3003; do
    target/release/server --bind "127.0.0.1:$port" \
        --redis-url "redis://127.0.0.1:$REDIS_PORT/" --trusted-proxies 127.0.0.1 \
        --allowed-origins "http://127.0.0.1:8000,http://127.0.0.1:$port" &
    pids+=($!)
done

if command -v nginx >/dev/null; then
    nginx -p "$DATA/nginx" -c "$PWD/deploy/nginx.conf" &
    pids+=($!)
    echo "open http://127.0.0.1:8000 (nginx, round-robin over the three nodes)"
else
    echo "nginx not installed: open http://127.0.0.1:3001, :3002 or :3003 directly"
fi
wait
