#!/usr/bin/env python3
"""Turns the load generator's JSON lines into results JSON and a Markdown table with the ratio
of every figure to each peer's, measured in the same run."""
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


PEERS = ["node-ws", "bun", "deno", "python"]
by_server = {(r["server"], key(r)): r for r in rows}
lines = [
    f"Machine: {machine['cpu']}, Linux {machine['kernel']}; server on core 0, load generator on core 1.",
    "",
    "| scenario | server (path) | rate/s | delivered/s | loss | p50 µs | p99 µs | p99.9 µs | max µs | server CPU | client-bound | "
    + " | ".join(f"× {p}" for p in PEERS) + " |",
    "|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(PEERS),
]
idle = [r for r in rows if r["scenario"] == "idle"]
rows = [r for r in rows if r["scenario"] != "idle"]
for r in rows:
    ratios = []
    for p in PEERS:
        peer = by_server.get((p, key(r)))
        ratios.append(f"{r['per_sec'] / peer['per_sec']:.2f}×" if peer and peer["per_sec"] else "–")
    path = "raw" if r["path"] == "raw" else "chat: JSON, seq, SQLite"
    cpu = f"{r['server_cpu']:.2f}" if r.get("server_cpu") is not None else "–"
    lines.append(
        f"| {r['scenario']} × {r['connections']} | {r['server']} ({path}) | {r.get('rate') or '–'} | "
        f"{r['per_sec']:.0f} | {r['loss']:.2%} | {r['p50_us']} | {r['p99_us']} | {r['p999_us']} | {r['max_us']} | "
        f"{cpu} | {'yes' if r['client_bound'] else 'no'} | " + " | ".join(ratios) + " |")
if idle:
    lines += ["", "| idle connections | server (path) | alive | server RSS per connection | × " + " | × ".join(PEERS) + " |",
              "|---|---|---|---|" + "---|" * len(PEERS)]
    rss = {r["server"]: r.get("rss_per_conn_kib") for r in idle}
    for r in idle:
        mine = r.get("rss_per_conn_kib")
        ratios = [f"{mine / rss[p]:.2f}×" if mine is not None and rss.get(p) else "–" for p in PEERS]
        path = "raw" if r["path"] == "raw" else "chat: JSON, seq, SQLite"
        lines.append(f"| {r['connections']} | {r['server']} ({path}) | {r['delivered']} of {r['expected']} | "
                     f"{mine:.1f} KiB | " + " | ".join(ratios) + " |" if mine is not None else
                     f"| {r['connections']} | {r['server']} ({path}) | {r['delivered']} of {r['expected']} | – |" + " – |" * len(PEERS))
open(md_out, "w").write("\n".join(lines) + "\n")
