#!/usr/bin/env bash
# Installs what is missing, builds the release client bundle and starts the server serving it
# at http://127.0.0.1:3000, with its history in ./switchboard.db (SQLite: no other service).
# Extra arguments go to the server, e.g. `scripts/run.sh --bind 0.0.0.0:8000`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
echo "==> trunk build --release"
trunk build --release
echo "==> cargo run --release -p server"
exec cargo run --release -p server -- --static-dir dist "$@"
