#!/usr/bin/env python3
"""Turns the load generator's JSON lines into results JSON and a Markdown table with ratios
of every Switchboard figure to the Node ws peer measured in the same run."""
import json
import platform
import sys

src, json_out, md_out = sys.argv[1:4]
rows = [json.loads(line) for line in open(src) if line.strip()]
machine = {"cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
           "kernel": platform.release()}
json.dump({"machine": machine, "runs": rows}, open(json_out, "w"), indent=1)


def key(r):
    return (r["scenario"], r.get("rate"))


peer = {key(r): r for r in rows if r["server"] == "node-ws"}
lines = [
    f"Machine: {machine['cpu']}, Linux {machine['kernel']}; server on core 0, load generator on core 1.",
    "",
    "| scenario | server (path) | rate/s | delivered/s | loss | p50 µs | p99 µs | p99.9 µs | max µs | server CPU | client-bound | × node-ws (delivered/s) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]
for r in rows:
    p = peer.get(key(r))
    ratio = f"{r['per_sec'] / p['per_sec']:.2f}×" if p and p["per_sec"] else "–"
    path = "raw /echo, /relay" if r["path"] == "raw" else "chat /ws: JSON, seq, SQLite"
    cpu = f"{r['server_cpu']:.2f}" if r.get("server_cpu") is not None else "–"
    lines.append(
        f"| {r['scenario']} × {r['connections']} | {r['server']} ({path}) | {r.get('rate') or '–'} | "
        f"{r['per_sec']:.0f} | {r['loss']:.2%} | {r['p50_us']} | {r['p99_us']} | {r['p999_us']} | {r['max_us']} | "
        f"{cpu} | {'yes' if r['client_bound'] else 'no'} | {ratio} |")
open(md_out, "w").write("\n".join(lines) + "\n")
