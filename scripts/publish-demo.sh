#!/usr/bin/env bash
# Publishes this machine's load average and memory use into a room every second, through the
# server API with curl: the first tutorial's "data pushed to every browser each second", fed
# by an app instead of the chat server. Each figure is a `latest` data point: members see it
# live (with a chart), and whoever joins later gets the current value at once.
#
#   SWITCHBOARD_API_KEY=<one of the server's --api-key keys> scripts/publish-demo.sh [room] [server]
#
# room: default `ops`; server: default $SWITCHBOARD_URL or http://127.0.0.1:3000.
# COUNT=<n> stops after n rounds (default: run until interrupted). Reads Linux's /proc.
set -euo pipefail

room=${1:-ops}
server=${2:-${SWITCHBOARD_URL:-http://127.0.0.1:3000}}
key=${SWITCHBOARD_API_KEY:?set SWITCHBOARD_API_KEY to one of the server\'s --api-key keys}
count=${COUNT:-0}

post() { # key, JSON value
    curl -fsS -X POST "$server/api/v1/rooms/$room/data" \
        -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
        -d "{\"key\":\"$1\",\"data\":$2,\"delivery\":\"latest\"}" >/dev/null
}

round=0
while :; do
    read -r load1 load5 _ </proc/loadavg
    total=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    available=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    post load.1m "$load1"
    post load.5m "$load5"
    post mem.used_pct $(((total - available) * 100 / total))
    post mem.available_mib $((available / 1024))
    round=$((round + 1))
    if [ "$count" -gt 0 ] && [ "$round" -ge "$count" ]; then
        break
    fi
    sleep 1
done
