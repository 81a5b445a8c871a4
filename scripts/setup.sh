#!/usr/bin/env bash
# Installs what Switchboard needs; idempotent (skips whatever is already there at the right
# version), so it is cheap on a warm machine and complete on a fresh one.
#
#   scripts/setup.sh          build tools: wasm target, trunk, wasm-bindgen-cli, wasm-opt
#   scripts/setup.sh test     ... plus Chromium, chromedriver and playwright-core for the tests
#
# Nothing here downloads a prebuilt binary from outside the package registries: trunk and
# wasm-bindgen-cli are built from crates.io, wasm-opt comes from npm's `binaryen` package
# (Debian's binaryen 108 breaks the release bundle), Chromium from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

TRUNK_VERSION=0.21.14
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        say "apt-get install ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

command -v cargo >/dev/null || { echo "Rust is required: https://rustup.rs" >&2; exit 1; }
command -v npm >/dev/null || apt_install nodejs npm

if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
    say "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen-cli must match the wasm-bindgen in Cargo.lock exactly (and Trunk.toml says so too).
WBG_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if ! grep -q "wasm_bindgen = \"$WBG_VERSION\"" Trunk.toml; then
    echo "Trunk.toml's wasm_bindgen differs from Cargo.lock's wasm-bindgen $WBG_VERSION: update Trunk.toml" >&2
    exit 1
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WBG_VERSION\$"; then
    say "cargo install wasm-bindgen-cli $WBG_VERSION (about 7 minutes on 2 cores)"
    # Not --locked: its lockfile pins a webpki-roots the registry no longer serves.
    cargo install wasm-bindgen-cli --version "$WBG_VERSION"
fi
if ! trunk --version 2>/dev/null | grep -q " $TRUNK_VERSION\$"; then
    say "cargo install trunk $TRUNK_VERSION (about 9 minutes on 2 cores)"
    cargo install --locked trunk --version "$TRUNK_VERSION"
fi
if [ ! -x tools/node_modules/.bin/wasm-opt ]; then
    say "npm ci in tools/ (wasm-opt from binaryen)"
    (cd tools && npm ci --no-audit --no-fund)
fi

if [ "${1:-}" = "test" ]; then
    apt_install chromium chromium-driver redis-server
    # Autobahn|Testsuite runs on Python 2.7 only; where pyenv has it, install the suite there.
    # Without it the conformance layer prints a visible SKIP.
    PY27="$HOME/.pyenv/versions/2.7.18/bin/python"
    if [ -x "$PY27" ] && [ ! -x "$HOME/.pyenv/versions/2.7.18/bin/wstest" ]; then
        say "pip install autobahntestsuite (Python 2.7)"
        "$PY27" -m pip install -q autobahntestsuite || echo "autobahntestsuite did not install: conformance will be skipped" >&2
    fi
    if ! command -v cargo-fuzz >/dev/null; then
        say "cargo install cargo-fuzz (for the fuzz smoke; about 2 minutes)"
        cargo install --locked cargo-fuzz
    fi
    if [ ! -d tests/e2e/node_modules/playwright-core ] || [ ! -d tests/e2e/node_modules/jquery ]; then
        say "npm ci in tests/e2e (playwright-core; it drives Debian's Chromium, no browser download)"
        (cd tests/e2e && npm ci --no-audit --no-fund)
    fi
fi
