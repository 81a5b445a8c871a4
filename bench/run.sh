#!/usr/bin/env bash
# Runs the load scenarios against Switchboard and the peers in one run, server pinned to one
# core and load generator to another, and writes bench/results/<date>.{json,md,svg}, with the
# Switchboard chat-path server's own /metrics per scenario family in <date>.metrics.txt and in
# the report's "Server-side figures" section (same run), and failed runs in <date>.failures.txt.
#
#   bench/run.sh     # Switchboard (raw and chat paths) vs Node ws, Bun, Deno, Python websockets
#                    # (installed from npm / PyPI into bench/peers); about 15 minutes
#   SMOKE=1 bench/run.sh
#                    # smoke: every scenario family against every server with tiny sizes (a few
#                    # connections, 1 s, one rate, 40 connects), on a debug build (target/debug,
#                    # no LTO release build), results in a temporary directory (never
#                    # bench/results/). Fails (exit 1) if any run failed, if a run delivered
#                    # nothing (idle and setup: anything short of all), if a family left no
#                    # server-side figures, or if report.py fails. For CI: about 1 minute on 2
#                    # cores once built (the debug build of server and bench, cold, about 3.5
#                    # minutes). The normal mode reports failed runs and carries on.
#   BASELINE=f4430fd bench/run.sh
#                    # before/after: also the server at that git revision, as one more server,
#                    # switchboard-before, in every family that runs the chat path (idle, echo,
#                    # fan-out 1k and 10k, chat rooms, setup), driven in protocol v2 (the room in
#                    # the query, no subprotocol: loadgen --path switchboard-v2) with the chat
#                    # path's options and a fresh database per family; the report gains "Chat
#                    # path before and after" (each figure and after/before, same run). The rev
#                    # is checked out with `git worktree add --detach` into
#                    # target/baseline-src/<commit> and its server built with the run's profile
#                    # into target/baseline/<commit> (both kept for the next run; the build is
#                    # skipped when that binary is there). Options the baseline lacks are
#                    # dropped, with a note. Combines with SMOKE=1. Adds a few minutes to a full
#                    # run, plus the baseline's first release build. BASELINE_PATH=switchboard
#                    # drives a baseline that speaks protocol v3 (any revision since v3) as the
#                    # chat path is driven (default: switchboard-v2; since v3 a connection with
#                    # no subprotocol is a plain tutorial client). Without BASELINE, nothing
#                    # changes.
#
# Scenarios: (a) idle, 10,000 and 2,000 connections held, server RSS per connection, all
# checked alive with one broadcast; on the chat path as members of one room, named (unique
# names) and nameless, with the time until all are in and the presence frames they got;
# (b) fan-out to 1,000 and 10,000 receivers at rising publish rates; (c) chat room, 16 and 100
# clients all sending, closed loop; (d) echo, 100 connections x 20 B, closed loop;
# (e) connection setup, 30,000 connects with 64 in flight; (f) rooms: 10,000 rooms of 10
# members (10,000 connections, each in 10 rooms) with traffic in every room, the chat-path
# server on one core and on two. SECS, RATES, RECEIVERS, RATES_10K, RECEIVERS_10K, FANOUT_SECS,
# CHAT_ROOMS, ECHO_CONNS, SETUP, INFLIGHT, IDLE (a list of sizes), ROOMS and ROOM_RATES override
# either mode's sizes.
#
# Peers: Node ws, Bun, Deno and Python relay raw frames (`/relay`, `/echo`): a transport
# baseline. bun-chat (bench/peers/bun-chat) keeps Switchboard's chat contract (the v3 subset
# the load generator speaks, JSON validation, bun:sqlite in WAL with synchronous=FULL, a
# per-room seq, broadcast after commit) and is driven like the chat path (`--path switchboard`)
# in echo, fan-out and chat room.
#
# Cores: the server runs on the first CPU this process may use and the load generator on the
# second (cores 0 and 1 on a 2-core machine); SERVER_CPU and LOADGEN_CPU override them. With
# one CPU both share it (the figures then mean little; the smoke still works).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ulimit -n 65536 2>/dev/null || true
SMOKE=${SMOKE:-0}
BASELINE=${BASELINE:-}
BASELINE_PATH=${BASELINE_PATH:-switchboard-v2}
if [ -n "$BASELINE" ]; then
    base_rev=$(git rev-parse --verify --quiet "$BASELINE^{commit}") \
        || { echo "BASELINE=$BASELINE is not a commit" >&2; exit 2; }
    baseline_label=$BASELINE
    [ "$BASELINE" = "${base_rev:0:${#BASELINE}}" ] || baseline_label="$BASELINE ($(git rev-parse --short "$base_rev"))"
fi
if [ "$SMOKE" = 1 ]; then
    SECS=${SECS:-1}
    RATES=${RATES:-50}
    RECEIVERS=${RECEIVERS:-5}
    RATES_10K=${RATES_10K:-10}
    RECEIVERS_10K=${RECEIVERS_10K:-10}
    FANOUT_SECS=${FANOUT_SECS:-1}
    CHAT_ROOMS=${CHAT_ROOMS:-"4 8"}
    ECHO_CONNS=${ECHO_CONNS:-4}
    SETUP=${SETUP:-40}
    INFLIGHT=${INFLIGHT:-8}
    IDLE=${IDLE:-"20 10"}
    ROOMS=${ROOMS:-20}
    ROOM_RATES=${ROOM_RATES:-20}
    profile=debug
    results=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench-smoke.XXXXXX")
else
    SECS=${SECS:-10}
    RATES=${RATES:-"100 200 500 1000 2000"}
    RECEIVERS=${RECEIVERS:-1000}
    RATES_10K=${RATES_10K:-"10 20 50 100"}
    RECEIVERS_10K=${RECEIVERS_10K:-10000}
    FANOUT_SECS=${FANOUT_SECS:-5}
    CHAT_ROOMS=${CHAT_ROOMS:-"16 100"}
    ECHO_CONNS=${ECHO_CONNS:-100}
    SETUP=${SETUP:-30000}
    INFLIGHT=${INFLIGHT:-64}
    IDLE=${IDLE:-"10000 2000"}
    ROOMS=${ROOMS:-10000}
    ROOM_RATES=${ROOM_RATES:-"1000 2000 5000 10000"}
    profile=release
    results=bench/results
fi
bin=${CARGO_TARGET_DIR:-target}/$profile
date=$(date -u +%Y-%m-%d)
out=$results/$date
mkdir -p "$results"
: >"$out.jsonl"

# The first two CPUs this process may use (not necessarily 0 and 1 under a cpuset).
read -r first_cpu second_cpu < <(python3 -c \
    'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[1] if len(c) > 1 else c[0])')
export SERVER_CPU=${SERVER_CPU:-$first_cpu} LOADGEN_CPU=${LOADGEN_CPU:-$second_cpu}

if [ "$SMOKE" = 1 ]; then
    echo "==> smoke: building (debug); results in $results"
    cargo build -q -p server -p bench --bins
else
    echo "==> building (release)"
    cargo build --release -q -p server -p bench --bins
fi
(cd bench/peers && { [ -d node_modules/ws ] && [ -x node_modules/.bin/bun ] && [ -x node_modules/.bin/deno ] \
    || npm ci --no-audit --no-fund; })
if [ ! -x bench/peers/python/.venv/bin/python ]; then
    python3 -m venv bench/peers/python/.venv
    bench/peers/python/.venv/bin/pip install -q -r bench/peers/python/requirements.txt
fi

if [ -n "$BASELINE" ]; then
    # The server at BASELINE, from its own worktree and target directory (kept between runs).
    targets=$(realpath -m "${CARGO_TARGET_DIR:-target}")
    base_src=$targets/baseline-src/$base_rev
    base_target=$targets/baseline/$base_rev
    base_bin=$base_target/$profile/server
    # Built from that commit with this profile: the stamp names the commit.
    if [ -x "$base_bin" ] && [ "$(cat "$base_bin.rev" 2>/dev/null)" = "$base_rev" ]; then
        echo "==> baseline $baseline_label: $base_bin is up to date"
    else
        if [ "$(git -C "$base_src" rev-parse HEAD 2>/dev/null)" != "$base_rev" ] \
            || ! git -C "$base_src" diff --quiet HEAD; then
            rm -rf "$base_src"
            # -f: the path may still be registered from a worktree deleted by hand.
            git worktree add -q -f --detach "$base_src" "$base_rev"
        fi
        echo "==> baseline $baseline_label: building its server ($profile) in $base_src"
        release=()
        if [ "$profile" = release ]; then release=(--release); fi
        (cd "$base_src" && CARGO_TARGET_DIR=$base_target cargo build -q "${release[@]}" -p server --bin server)
        echo "$base_rev" >"$base_bin.rev"
    fi
fi

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

start() { # label, command...: starts a server pinned to the server core; sets ADDR and PID
    local label=$1; shift
    # Emptied here, not by the background redirection: the wait below must not read the
    # previous family's "listening on" line.
    : >"$work/$label.out"
    taskset -c "$SERVER_CPU" "$@" >"$work/$label.out" 2>"$work/$label.err" &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 100); do grep -q 'listening on' "$work/$label.out" && break; sleep 0.1; done
    ADDR=$(sed -n 's/^listening on http:\/\///p' "$work/$label.out")
    [ -n "$ADDR" ] || { echo "$label did not start" >&2; cat "$work/$label.err" >&2; exit 1; }
}

core_busy() { # percent of the server core in use over half a second (any process on it)
    # The first CPU of a list or range ("0,1", "2-3").
    local cpu=${SERVER_CPU%%[,-]*} a b total=0 idle i
    read -ra a < <(grep "^cpu$cpu " /proc/stat)
    sleep 0.5
    read -ra b < <(grep "^cpu$cpu " /proc/stat)
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $((total > 0 ? 100 * (total - idle) / total : 0))
}

quiet() { # waits, up to 60 s, for the server core to settle before a run
    # A server of a family stays up for the family's runs, and one that fell behind (Python,
    # Deno, Node at the higher fan-out rates) goes on working off its backlog after its run:
    # unchecked, that starved the next runs on the same core (the first servers measured at
    # each fan-out rate used a quarter of the core and fell behind).
    # The smoke's figures mean nothing: it only checks the wait works, for 2 s at most.
    local busy polls=120
    ((SMOKE)) && polls=4
    for _ in $(seq "$polls"); do
        busy=$(core_busy)
        ((busy < 10)) && return
    done
    if ((SMOKE)); then
        echo "    (the server core was still ${busy}% busy after 2 s)"
    else
        echo "    the server core was still ${busy}% busy after 60 s, before: $*" | tee -a "$out.failures.txt"
    fi
}

load() { # label, pid, addr, loadgen args...: one run; a failed run is reported, not fatal
    local label=$1 pid=$2 addr=$3; shift 3
    quiet "$label $*"
    echo "    $label $*"
    taskset -c "$LOADGEN_CPU" "$bin/loadgen" --addr "$addr" --server-pid "$pid" --label "$label" "$@" >>"$out.jsonl" \
        2>"$work/loadgen.err" || echo "    FAILED: $label $* ($(error_of "$work/loadgen.err"))" | tee -a "$out.failures.txt"
}

error_of() { # the error and its causes from anyhow's report, on one line, without a backtrace
    sed -n '/^Stack backtrace:/q; /[^[:space:]]/p' "$1" | tr -s ' \n' ' ' | sed 's/ $//'
}

k() { # 1000 -> 1k, 10000 -> 10k, 5 -> 5
    if (($1 >= 1000 && $1 % 1000 == 0)); then echo "$(($1 / 1000))k"; else echo "$1"; fi
}

# Every scenario family starts with fresh server processes: no run inherits another's teardown
# (10,000 sockets closing), its memory, or its crash (Node can abort on heap exhaustion under
# the 10k fan-out). Switchboard runs as two processes, one per path (three with BASELINE: the
# baseline's server, switchboard-before, takes the chat path's options).
sb_args=(--bind 127.0.0.1:0 --static-dir "$work" --bench-relay --rate-per-sec 1000000
    --rate-burst 1000000 --max-connections-per-ip 100000 --outbound-queue 1024)
if [ -n "$BASELINE" ]; then
    # The chat path's options, less any the baseline server does not have (an option and the
    # values after it).
    base_help=$("$base_bin" --help)
    base_args=()
    keep=1
    for a in "${sb_args[@]}"; do
        if [[ $a == --* ]]; then
            keep=1
            grep -qE -- "(^|[ ,])$a([ =]|\$)" <<<"$base_help" \
                || { keep=0; echo "    switchboard-before: $a is not an option at $baseline_label; dropped"; }
        fi
        if ((keep)); then base_args+=("$a"); fi
    done
fi
fresh() {
    if ((${#pids[@]})); then
        # Server-side figures from the chat-path server's own /metrics, per scenario family
        # (the counters start at zero with each fresh server).
        { echo "# after: ${family:-start}"; curl -s "http://$SBC_ADDR/metrics" | grep -E \
            '^switchboard_(frames_(in|out)_total|messages_persisted_total|rate_limited_total|slow_consumers_dropped_total|delivery_seconds_(sum|count|bucket))'; } \
            >>"$out.metrics.txt" || true
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
        pids=()
        sleep 1
    fi
    rm -f "$work"/bench*.db*
    start switchboard "$bin/server" --db "$work/bench.db" "${sb_args[@]}"
    SB_ADDR=$ADDR SB_PID=$PID
    start switchboard-chat "$bin/server" --db "$work/bench-chat.db" "${sb_args[@]}"
    SBC_ADDR=$ADDR SBC_PID=$PID
    if [ -n "$BASELINE" ]; then
        start switchboard-before "$base_bin" --db "$work/bench-before.db" "${base_args[@]}"
        SBB_ADDR=$ADDR SBB_PID=$PID
    fi
    PORT=0 start node-ws node bench/peers/node-ws/server.js
    NODE_ADDR=$ADDR NODE_PID=$PID
    PORT=0 start bun bench/peers/node_modules/.bin/bun bench/peers/bun/server.ts
    BUN_ADDR=$ADDR BUN_PID=$PID
    PORT=0 DB="$work/bench-bun-chat.db" start bun-chat bench/peers/node_modules/.bin/bun bench/peers/bun-chat/server.ts
    BUNC_ADDR=$ADDR BUNC_PID=$PID
    PORT=0 start deno bench/peers/node_modules/.bin/deno run --allow-net --allow-env bench/peers/deno/server.ts
    DENO_ADDR=$ADDR DENO_PID=$PID
    PORT=0 start python bench/peers/python/.venv/bin/python bench/peers/python/server.py
    PY_ADDR=$ADDR PY_PID=$PID
    peers=("node-ws $NODE_PID $NODE_ADDR" "bun $BUN_PID $BUN_ADDR" "deno $DENO_PID $DENO_ADDR" "python $PY_PID $PY_ADDR")
}
chat_path() { # loadgen args: one run on the chat path, and with BASELINE the same run on the
    # baseline server in the protocol it spoke (v2)
    load switchboard-chat "$SBC_PID" "$SBC_ADDR" --path switchboard "$@"
    if [ -n "$BASELINE" ]; then
        load switchboard-before "$SBB_PID" "$SBB_ADDR" --path "$BASELINE_PATH" "$@"
    fi
}
same_contract() { # loadgen args: the chat path's run on the same-contract Bun peer
    load bun-chat "$BUNC_PID" "$BUNC_ADDR" --path switchboard "$@"
}
fresh_chat() { # cpus: restarts the chat-path server alone (a fresh process and database) on
    # those CPUs, so a memory figure starts from a clean heap; sets SBC_ADDR and SBC_PID
    kill "$SBC_PID" 2>/dev/null || true
    wait "$SBC_PID" 2>/dev/null || true
    rm -f "$work"/bench-chat.db*
    local saved=$SERVER_CPU
    SERVER_CPU=$1
    start switchboard-chat "$bin/server" --db "$work/bench-chat.db" "${sb_args[@]}"
    SERVER_CPU=$saved
    SBC_ADDR=$ADDR SBC_PID=$PID
}
: >"$out.failures.txt"
: >"$out.metrics.txt"

for n in $IDLE; do
    fresh
    family="idle $(k "$n")"
    echo "==> idle: $n connections held, server RSS per connection; on the chat path $n members of one room"
    load switchboard "$SB_PID" "$SB_ADDR" --scenario idle --path raw --conns "$n"
    # Named members (unique names) and nameless listeners, each on a fresh chat-path server.
    load switchboard-chat "$SBC_PID" "$SBC_ADDR" --scenario members --path switchboard --conns "$n"
    fresh_chat "$SERVER_CPU"
    load switchboard-chat "$SBC_PID" "$SBC_ADDR" --scenario members-nameless --path switchboard --conns "$n"
    # The baseline at 2,000 only: before batching, 10,000 named members joining one room is
    # 50 million presence frames (minutes of a full core), not a measurement.
    if [ -n "$BASELINE" ] && [ "$n" -le 2000 ]; then
        load switchboard-before "$SBB_PID" "$SBB_ADDR" --scenario members --path "$BASELINE_PATH" --conns "$n"
    fi
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        load $p --scenario idle --path raw --conns "$n"
    done
done

fresh
family=echo
echo "==> echo: $ECHO_CONNS connections x 20 B, ${SECS} s"
load switchboard "$SB_PID" "$SB_ADDR" --scenario echo --path raw --conns "$ECHO_CONNS" --payload 20 --secs "$SECS"
chat_path --scenario echo --conns "$ECHO_CONNS" --payload 20 --secs "$SECS"
same_contract --scenario echo --conns "$ECHO_CONNS" --payload 20 --secs "$SECS"
for p in "${peers[@]}"; do
    # shellcheck disable=SC2086
    load $p --scenario echo --path raw --conns "$ECHO_CONNS" --payload 20 --secs "$SECS"
done

for spec in "$RECEIVERS:$RATES" "$RECEIVERS_10K:$RATES_10K"; do
    receivers=${spec%%:*} rates=${spec#*:}
    fresh
    family="fan-out $(k "$receivers")"
    echo "==> fan-out: $receivers receivers, rates $rates"
    for rate in $rates; do
        load switchboard "$SB_PID" "$SB_ADDR" --scenario fanout --path raw --conns "$receivers" --rate "$rate" --payload 64 --secs "$FANOUT_SECS"
        chat_path --scenario fanout --conns "$receivers" --rate "$rate" --payload 64 --secs "$FANOUT_SECS"
        same_contract --scenario fanout --conns "$receivers" --rate "$rate" --payload 64 --secs "$FANOUT_SECS"
        for p in "${peers[@]}"; do
            # shellcheck disable=SC2086
            load $p --scenario fanout --path raw --conns "$receivers" --rate "$rate" --payload 64 --secs "$FANOUT_SECS"
        done
    done
done

for n in $CHAT_ROOMS; do
    fresh
    family="chat room $n"
    echo "==> chat room: $n clients all sending, closed loop, ${SECS} s"
    load switchboard "$SB_PID" "$SB_ADDR" --scenario chat --path raw --conns "$n" --payload 64 --secs "$SECS"
    chat_path --scenario chat --conns "$n" --payload 64 --secs "$SECS"
    same_contract --scenario chat --conns "$n" --payload 64 --secs "$SECS"
    for p in "${peers[@]}"; do
        # shellcheck disable=SC2086
        load $p --scenario chat --path raw --conns "$n" --payload 64 --secs "$SECS"
    done
done

fresh
family="connection setup"
echo "==> connection setup: $SETUP connects, $INFLIGHT in flight"
load switchboard "$SB_PID" "$SB_ADDR" --scenario setup --path raw --conns "$SETUP" --inflight "$INFLIGHT"
chat_path --scenario setup --conns "$SETUP" --inflight "$INFLIGHT"
for p in "${peers[@]}"; do
    # shellcheck disable=SC2086
    load $p --scenario setup --path raw --conns "$SETUP" --inflight "$INFLIGHT"
done

fresh
family=rooms
echo "==> rooms: $ROOMS rooms of 10 members ($ROOMS connections, each in 10 rooms), rates $ROOM_RATES; chat-path server on 1 and 2 CPUs"
for cpus in "$SERVER_CPU" "$SERVER_CPU,$LOADGEN_CPU"; do
    fresh_chat "$cpus"
    label=switchboard-chat
    [ "$cpus" = "$SERVER_CPU" ] || label=switchboard-chat-2cpu
    for rate in $ROOM_RATES; do
        load "$label" "$SBC_PID" "$SBC_ADDR" --scenario rooms --conns "$ROOMS" --per-conn 10 --rate "$rate" --payload 64 --secs "$FANOUT_SECS"
    done
done

fresh # records the last family's server-side figures

[ -z "$BASELINE" ] || export BASELINE_LABEL=$baseline_label BASELINE_PATH
python3 bench/report.py "$out.jsonl" "$out.json" "$out.md" "$out.svg" "$out.metrics.txt" "$out.failures.txt"
if [ "$SMOKE" != 1 ]; then
    cat "$out.md"
    exit 0
fi

# Smoke: the harness must have measured something everywhere, or the script fails.
# idle per size, echo, two fan-outs, chat rooms, setup, rooms
families=$((5 + $(wc -w <<<"$IDLE") + $(wc -w <<<"$CHAT_ROOMS")))
checked=0
python3 - "$out.jsonl" "$out.metrics.txt" "$families" "$BASELINE" <<'EOF' || checked=1
import sys
import json
runs, metrics, families, baseline = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
bad = []
rows = [json.loads(l) for l in open(runs) if l.strip()]
for r in rows:
    what = f"{r['server']} {r['scenario']} x {r['connections']}"
    if r["delivered"] == 0:
        bad.append(f"{what}: nothing delivered")
    elif r["scenario"] in ("idle", "setup", "members", "members-nameless") and r["delivered"] != r["expected"]:
        bad.append(f"{what}: {r['delivered']} of {r['expected']}")
if baseline:
    # Every chat-path run has its baseline twin.
    def runs_of(server):
        return {(r["scenario"], r["connections"], r.get("rate")) for r in rows if r["server"] == server}
    chat, before = runs_of("switchboard-chat"), runs_of("switchboard-before")
    for s, n, rate in sorted(chat - before, key=str):
        bad.append(f"switchboard-before {s} x {n} (rate {rate}): not recorded")
    if not before:
        bad.append("no switchboard-before runs")
sections = open(metrics).read().split("# after: ")[1:]
with_figures = [s for s in sections if "switchboard_frames_out_total" in s]
if len(with_figures) != families:
    bad.append(f"server-side figures for {len(with_figures)} of {families} scenario families")
for b in bad:
    print(f"    SMOKE: {b}")
sys.exit(1 if bad else 0)
EOF
failed=$(wc -l <"$out.failures.txt")
echo "==> smoke: $(wc -l <"$out.jsonl") runs recorded, $failed failed; results in $results"
[ "$failed" -eq 0 ] && [ "$checked" -eq 0 ]
