#!/usr/bin/env bash
# Runs every test layer: formatting and lints, shared unit/property tests, server integration
# tests, client tests in headless Chromium against a real server, and end-to-end tests with two
# browser pages on the server serving the release bundle. Ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
source scripts/env.sh
log=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$log" "$work"; [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true' EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p client --target wasm32-unknown-unknown --all-targets -- -D warnings

step "layers 1-2: shared unit + property tests, server integration tests"
cargo test 2>&1 | tee -a "$log"

cargo build -p server

step "conformance: Autobahn|Testsuite fuzzingclient against /echo (cases 1-7, 10, 12, 13)"
python3 tests/autobahn/run.py target/debug/server 2>&1 | tee -a "$log"

step "fuzz smoke: cargo fuzz on client input decoding and validation (20 s)"
# Stable toolchain: coverage-guided libFuzzer without a sanitizer build.
(cd fuzz && cargo fuzz run client_input --sanitizer none -- -max_total_time=20 2>&1 | grep -E '^Done|crash|panicked|ERROR') \
    || { echo "fuzz smoke failed" >&2; exit 1; }

step "bench smoke: bench/run.sh with tiny sizes against every peer (the one benchmark command stays runnable)"
SMOKE=1 bash bench/run.sh 2>&1 | tee -a "$log"

step "layer 3: client tests (wasm-bindgen-test in headless Chromium) against a real server"
out=$work/client-server.out
# A fresh database: old messages in a shared one could satisfy the tests' waits.
target/debug/server --bind 127.0.0.1:0 --allowed-origins '*' --max-message-bytes 4096 \
    --static-dir /nonexistent --db "$work/client-tests.db" >"$out" 2>/dev/null &
server_pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$out" && break; sleep 0.1; done
addr=$(sed -n 's/^listening on http:\/\///p' "$out")
[ -n "$addr" ] || { echo "test server did not start" >&2; exit 1; }
SWITCHBOARD_TEST_SERVER="ws://$addr" cargo test -p client --target wasm32-unknown-unknown 2>&1 | tee -a "$log"
kill "$server_pid"; server_pid=""

step "layer 4: end to end in headless Chromium (release bundle)"
trunk build --release
(cd tests/e2e && npm test) 2>&1 | tee -a "$log"

# Counts from every layer: cargo's "test result" lines, node:test's "# pass/# fail/# skipped",
# and the conformance layer's own line. A layer that could not run at all is named.
passed=$(( $(grep -oE 'test result: [a-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}') \
         + $(grep -E '^# pass [0-9]+' "$log" | awk '{s+=$3} END {print s+0}') \
         + $(grep -E '^autobahn: [0-9]+ passed' "$log" | awk '{s+=$2} END {print s+0}') ))
failed=$(( $(grep -oE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}') \
         + $(grep -E '^# fail [0-9]+' "$log" | awk '{s+=$3} END {print s+0}') \
         + $(grep -oE '^autobahn: [0-9]+ passed, [0-9]+ failed' "$log" | awk '{s+=$4} END {print s+0}') ))
skipped=$(( $(grep -oE '[0-9]+ ignored;' "$log" | awk '{s+=$1} END {print s+0}') \
          + $(grep -E '^# skipped [0-9]+' "$log" | awk '{s+=$3} END {print s+0}') \
          + $(grep -oE '^autobahn: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$log" | awk '{s+=$6} END {print s+0}') ))
skipped_layers=$(sed -n 's/^autobahn: SKIPPED layer \([a-z]*\).*/\1/p' "$log" | sort -u | paste -sd, -)
echo
echo "switchboard: $passed passed, $failed failed, $skipped skipped${skipped_layers:+ (layer skipped: $skipped_layers)}"
[ "$failed" -eq 0 ]
