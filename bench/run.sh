#!/usr/bin/env bash
# Runs the load scenarios against Switchboard and the peers in one run, server pinned to core 0
# and load generator to core 1, and writes bench/results/<date>.{json,md,svg}.
#
#   bench/run.sh     # Switchboard (raw and chat paths) vs Node ws, Bun, Deno, Python websockets
#                    # (installed from npm / PyPI into bench/peers); about 15 minutes
#
# Scenarios: (a) idle, 10,000 connections held, server RSS per connection, all checked alive
# with one broadcast; (b) fan-out to 1,000 and 10,000 receivers at rising publish rates;
# (c) chat room, 16 and 100 clients all sending, closed loop; (d) echo, 100 connections x 20 B,
# closed loop; (e) connection setup, 30,000 connects with 64 in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ulimit -n 65536 2>/dev/null || true
SECS=${SECS:-10}
RATES=${RATES:-"100 200 500 1000 2000"}
RECEIVERS=${RECEIVERS:-1000}
RATES_10K=${RATES_10K:-"10 20 50 100"}
SETUP=${SETUP:-30000}
date=$(date -u +%Y-%m-%d)
out=bench/results/$date
mkdir -p bench/results
: >"$out.jsonl"

echo "==> building (release)"
cargo build --release -q -p server -p bench --bins
(cd bench/peers && { [ -d node_modules/ws ] || npm ci --no-audit --no-fund; })
if [ ! -x bench/peers/python/.venv/bin/python ]; then
    python3 -m venv bench/peers/python/.venv
    bench/peers/python/.venv/bin/pip install -q -r bench/peers/python/requirements.txt
fi

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

start() { # label, command...: starts a server pinned to core 0; sets ADDR and PID
    local label=$1; shift
    taskset -c 0 "$@" >"$work/$label.out" 2>"$work/$label.err" &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 100); do grep -q 'listening on' "$work/$label.out" && break; sleep 0.1; done
    ADDR=$(sed -n 's/^listening on http:\/\///p' "$work/$label.out")
    [ -n "$ADDR" ] || { echo "$label did not start" >&2; cat "$work/$label.err" >&2; exit 1; }
}

load() { # label, pid, addr, loadgen args...: one run; a failed run is reported, not fatal
    local label=$1 pid=$2 addr=$3; shift 3
    echo "    $label $*"
    taskset -c 1 target/release/loadgen --addr "$addr" --server-pid "$pid" --label "$label" "$@" >>"$out.jsonl" \
        2>"$work/loadgen.err" || echo "    FAILED: $label $* ($(tail -1 "$work/loadgen.err"))" | tee -a "$out.failures.txt"
}

# Every scenario family starts with fresh server processes: no run inherits another's teardown
# (10,000 sockets closing), its memory, or its crash (Node can abort on heap exhaustion under
# the 10k fan-out). Switchboard runs as two processes, one per path.
sb_args=(--bind 127.0.0.1:0 --static-dir "$work" --bench-relay --rate-per-sec 1000000
    --rate-burst 1000000 --max-connections-per-ip 100000 --outbound-queue 1024)
fresh() {
    if ((${#pids[@]})); then
        # Server-side figures from the chat-path server's own /metrics, per scenario family.
        { echo "# after: ${family:-start}"; curl -s "http://$SBC_ADDR/metrics" | grep -E \
            '^switchboard_(frames_(in|out)_total|messages_persisted_total|slow_consumers_dropped_total|delivery_seconds_(sum|count))'; } \
            >>"$out.metrics.txt" || true
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
        pids=()
        sleep 1
    fi
    rm -f "$work"/bench*.db*
    start switchboard target/release/server --db "$work/bench.db" "${sb_args[@]}"
    SB_ADDR=$ADDR SB_PID=$PID
    start switchboard-chat target/release/server --db "$work/bench-chat.db" "${sb_args[@]}"
    SBC_ADDR=$ADDR SBC_PID=$PID
    PORT=0 start node-ws node bench/peers/node-ws/server.js
    NODE_ADDR=$ADDR NODE_PID=$PID
    PORT=0 start bun bench/peers/node_modules/.bin/bun bench/peers/bun/server.ts
    BUN_ADDR=$ADDR BUN_PID=$PID
    PORT=0 start deno bench/peers/node_modules/.bin/deno run --allow-net --allow-env bench/peers/deno/server.ts
    DENO_ADDR=$ADDR DENO_PID=$PID
    PORT=0 start python bench/peers/python/.venv/bin/python bench/peers/python/server.py
    PY_ADDR=$ADDR PY_PID=$PID
    peers=("node-ws $NODE_PID $NODE_ADDR" "bun $BUN_PID $BUN_ADDR" "deno $DENO_PID $DENO_ADDR" "python $PY_PID $PY_ADDR")
}
: >"$out.failures.txt"
: >"$out.metrics.txt"

IDLE=${IDLE:-10000}
fresh
family=idle
echo "==> idle: $IDLE connections held, server RSS per connection"
load switchboard "$SB_PID" "$SB_ADDR" --scenario idle --path raw --conns "$IDLE"
load switchboard-chat "$SBC_PID" "$SBC_ADDR" --scenario idle --path switchboard --conns "$IDLE"
for p in "${peers[@]}"; do
    # shellcheck disable=SC2086
    load $p --scenario idle --path raw --conns "$IDLE"
done

fresh
family=echo
echo "==> echo: 100 connections x 20 B, ${SECS} s"
load switchboard "$SB_PID" "$SB_ADDR" --scenario echo --path raw --conns 100 --payload 20 --secs "$SECS"
load switchboard-chat "$SBC_PID" "$SBC_ADDR" --scenario echo --path switchboard --conns 100 --payload 20 --secs "$SECS"
for p in "${peers[@]}"; do
    # shellcheck disable=SC2086
    load $p --scenario echo --path raw --conns 100 --payload 20 --secs "$SECS"
done

fresh
family="fan-out 1k"
echo "==> fan-out: $RECEIVERS receivers, rates $RATES"
for rate in $RATES; do
    load switchboard "$SB_PID" "$SB_ADDR" --scenario fanout --path raw --conns "$RECEIVERS" --rate "$rate" --payload 64 --secs 5
    load switchboard-chat "$SBC_PID" "$SBC_ADDR" --scenario fanout --path switchboard --conns "$RECEIVERS" --rate "$rate" --payload 64 --secs 5
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        load $p --scenario fanout --path raw --conns "$RECEIVERS" --rate "$rate" --payload 64 --secs 5
    done
done

fresh
family="fan-out 10k"
echo "==> fan-out: 10000 receivers, rates $RATES_10K"
for rate in $RATES_10K; do
    load switchboard "$SB_PID" "$SB_ADDR" --scenario fanout --path raw --conns 10000 --rate "$rate" --payload 64 --secs 5
    load switchboard-chat "$SBC_PID" "$SBC_ADDR" --scenario fanout --path switchboard --conns 10000 --rate "$rate" --payload 64 --secs 5
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        load $p --scenario fanout --path raw --conns 10000 --rate "$rate" --payload 64 --secs 5
    done
done

for n in 16 100; do
    fresh
    family="chat room $n"
    echo "==> chat room: $n clients all sending, closed loop, ${SECS} s"
    load switchboard "$SB_PID" "$SB_ADDR" --scenario chat --path raw --conns "$n" --payload 64 --secs "$SECS"
    load switchboard-chat "$SBC_PID" "$SBC_ADDR" --scenario chat --path switchboard --conns "$n" --payload 64 --secs "$SECS"
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        load $p --scenario chat --path raw --conns "$n" --payload 64 --secs "$SECS"
    done
done

fresh
family="connection setup"
echo "==> connection setup: $SETUP connects, 64 in flight"
load switchboard "$SB_PID" "$SB_ADDR" --scenario setup --path raw --conns "$SETUP" --inflight 64
load switchboard-chat "$SBC_PID" "$SBC_ADDR" --scenario setup --path switchboard --conns "$SETUP" --inflight 64
for p in "${peers[@]}"; do
    # shellcheck disable=SC2086
    load $p --scenario setup --path raw --conns "$SETUP" --inflight 64
done

fresh # records the last family's server-side figures

python3 bench/report.py "$out.jsonl" "$out.json" "$out.md" "$out.svg"
cat "$out.md"
