#!/usr/bin/env python3
"""Turns the load generator's JSON lines into results JSON, a Markdown report (absolute figures,
ratios to each peer measured in the same run, the issue's goals, the server-side figures and
the failed runs) and an SVG chart.

    report.py RUN.jsonl OUT.json OUT.md OUT.svg [METRICS.txt [FAILURES.txt]]

METRICS.txt: Switchboard's chat-path /metrics, one `# after: <scenario family>` section per
family, as bench/run.sh records them in the same run. FAILURES.txt: one line per failed run.
A goal counts as met only if the chat path (/ws) meets it; figures of the raw path say which
endpoint they come from (the bench-only /relay, or /echo).

With runs of `switchboard-before` (run.sh's BASELINE=<rev>: the server at that revision, driven in
protocol v2), it stands next to `switchboard-chat` and a section "Chat path before and after"
gives each chat-path figure before and after and their ratio; the environment's BASELINE_LABEL
names the revision.
"""
import json
import os
import platform
import sys
from html import escape

src, json_out, md_out, svg_out = sys.argv[1:5]
metrics_src = sys.argv[5] if len(sys.argv) > 5 else None
failures_src = sys.argv[6] if len(sys.argv) > 6 else None
rows = [json.loads(line) for line in open(src) if line.strip()]
machine = {
    "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
    "kernel": platform.release(),
}

PEERS = ["node-ws", "bun", "deno", "python"]
# The chat path before the protocol redesign (run.sh's BASELINE): a column only when it ran.
BEFORE, AFTER = "switchboard-before", "switchboard-chat"
BASELINE = os.environ.get("BASELINE_LABEL") or "the baseline revision"
has_before = any(r["server"] == BEFORE for r in rows)
SERVERS = ["switchboard", AFTER] + ([BEFORE] if has_before else []) + PEERS
# Saturation: the highest fan-out rate with >= 99.9 % delivered and p99 within this bound.
P99_BOUND_US = {1000: 20_000, 10000: 100_000}


# Switchboard's raw path per scenario: the bench-only /relay (`--bench-relay`, off by default),
# or /echo. Neither is the product's chat path (/ws).
RAW_ENDPOINT = {"idle": "/relay", "fanout": "/relay", "chat": "/relay", "echo": "/echo", "setup": "/echo"}


def raw_label(scenario):
    endpoint = RAW_ENDPOINT[scenario]
    return "raw path, bench-only /relay endpoint" if endpoint == "/relay" else f"raw path, {endpoint} endpoint"


def path_label(r):
    if r["path"] == "switchboard_v2":
        return f"chat path before, /ws protocol v2 at {BASELINE}"
    if r["path"] != "raw":
        return "chat path, /ws: JSON, seq, SQLite"
    return raw_label(r["scenario"]) if r["server"] == "switchboard" else "raw"


def saturation(server, receivers):
    """(highest rate meeting the bound, its delivered/s), or None."""
    ok = [r for r in rows if r["server"] == server and r["scenario"] == "fanout" and r["connections"] == receivers
          and r["loss"] <= 0.001 and r["p99_us"] <= P99_BOUND_US.get(receivers, 100_000)]
    if not ok:
        return None
    best = max(ok, key=lambda r: r["rate"])
    return best["rate"], best["per_sec"]


def figure(server, scenario, connections):
    return next((r for r in rows if r["server"] == server and r["scenario"] == scenario
                 and r["connections"] == connections), None)


headline = {}  # (label, unit, higher_is_better) -> {server: value}


def add(label, unit, better, server, value):
    if value is not None:
        headline.setdefault((label, unit, better), {})[server] = value


for s in SERVERS:
    for n in (16, 100):
        r = figure(s, "chat", n)
        add(f"chat room × {n}", "deliveries/s", True, s, r and r["per_sec"])
    r = figure(s, "echo", 100)
    add("echo × 100 (20 B)", "msg/s", True, s, r and r["per_sec"])
    for n in (1000, 10000):
        sat = saturation(s, n)
        if any(r["server"] == s and r["scenario"] == "fanout" and r["connections"] == n for r in rows):
            add(f"fan-out × {n:,} at saturation", "deliveries/s", True, s, sat[1] if sat else 0.0)
    r = next((r for r in rows if r["server"] == s and r["scenario"] == "setup"), None)
    if r:
        add(f"connection setup ({r['connections']:,}, {r['rate']} in flight)", "connects/s", True, s,
            r["per_sec"] if r["delivered"] == r["expected"] else 0.0)
    r = next((r for r in rows if r["server"] == s and r["scenario"] == "idle"), None)
    if r:
        n = r["connections"]
        add(f"idle memory per connection ({n // 1000}k)" if n % 1000 == 0 else f"idle memory per connection ({n})",
            "KiB", False, s, r.get("rss_per_conn_kib"))


# ---- Markdown ----
server_cpu, loadgen_cpu = os.environ.get("SERVER_CPU", "0"), os.environ.get("LOADGEN_CPU", "1")
lines = [f"Machine: {machine['cpu']}, Linux {machine['kernel']}; server on core {server_cpu}, "
         f"load generator on core {loadgen_cpu}.", ""]
COLUMN = {"switchboard": "switchboard (raw path)", AFTER: "switchboard-chat (chat path, /ws)",
          BEFORE: f"switchboard-before (chat path before: /ws v2 at {BASELINE})"}
lines += ["### Headline figures", "",
          "| figure | " + " | ".join(COLUMN.get(s, s) for s in SERVERS) + " |", "|---|" + "---|" * len(SERVERS)]
for (label, unit, better), values in headline.items():
    cells = []
    for s in SERVERS:
        v = values.get(s)
        cells.append("–" if v is None else "bound not met" if v == 0 and "saturation" in label
                     else (f"{v:.1f}" if unit == "KiB" else f"{v:,.0f}"))
    lines.append(f"| {label} ({unit}{'' if better else ', lower is better'}) | " + " | ".join(cells) + " |")
lines += ["", "Switchboard's raw path is the bench-only `/relay` endpoint (`--bench-relay`: every frame relayed "
          "unchanged, no JSON, no `seq`, no storage) for idle, fan-out and chat room, and `/echo` for echo and "
          "connection setup; the product's path is the chat path, `/ws`."]


def after_before(after, before):
    """After / before; None when either is missing or before is 0 and after too."""
    if after is None or before is None:
        return None
    if before == 0:
        return float("inf") if after else None
    return after / before


def ratio_text(x):
    return "–" if x is None else "∞" if x == float("inf") else f"{x:.2f}×"


def run_name(r):
    if r["scenario"] == "fanout":
        return f"fan-out × {r['connections']:,} at {r['rate']:,}/s"
    if r["scenario"] == "setup":
        return f"setup × {r['connections']:,}, {r['rate']} in flight"
    return f"{r['scenario']} × {r['connections']:,}"


before_after = []  # for the JSON: one entry per figure and per run measured both ways
if has_before:
    lines += ["", "### Chat path before and after", "",
              f"Before: `switchboard-before`, the server at {BASELINE} (protocol v2: one room per connection, "
              "named in the query, no subprotocol, `welcome` first; load generator `--path switchboard-v2`). "
              "After: `switchboard-chat`, the current server (protocol v3: subprotocol `switchboard.v3`, "
              "`hello`, `join`, `subscribed`, chats naming their room; `--path switchboard`). Same run, same "
              "options, same load (names, rooms, payloads), each a fresh process per scenario family on the "
              "same core.", "",
              f"| figure | before ({BASELINE}) | after | after / before |", "|---|---|---|---|"]
    for (label, unit, better), values in headline.items():
        if BEFORE not in values and AFTER not in values:
            continue
        b, a = values.get(BEFORE), values.get(AFTER)

        def cell(v):
            if v is None:
                return "–"
            if v == 0 and "saturation" in label:
                return "bound not met"
            return f"{v:.1f}" if unit == "KiB" else f"{v:,.0f}"
        x = after_before(a, b)
        before_after.append({"figure": label, "unit": unit, "higher_is_better": better,
                             "before": b, "after": a, "after_over_before": x})
        lines.append(f"| {label} ({unit}{'' if better else ', lower is better'}) | {cell(b)} | {cell(a)} | "
                     f"{ratio_text(x)} |")
    lines += ["", "Every run measured both ways (delivered/s: higher is better; latency: lower is better):", "",
              "| run | delivered/s before | after | after / before | p50 µs before | after | p99 µs before "
              "| after | after / before | loss before | after |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    afters = {(r["scenario"], r["connections"], r.get("rate")): r for r in rows if r["server"] == AFTER}
    for b in (r for r in rows if r["server"] == BEFORE and r["scenario"] != "idle"):
        a = afters.get((b["scenario"], b["connections"], b.get("rate")))
        if a is None:
            continue
        bound = " (client-bound)" if a["client_bound"] or b["client_bound"] else ""
        x, y = after_before(a["per_sec"], b["per_sec"]), after_before(a["p99_us"], b["p99_us"])
        before_after.append({"run": run_name(b), "before": {k: b[k] for k in ("per_sec", "p50_us", "p99_us", "loss")},
                             "after": {k: a[k] for k in ("per_sec", "p50_us", "p99_us", "loss")},
                             "per_sec_after_over_before": x, "p99_after_over_before": y})
        lines.append(f"| {run_name(b)}{bound} | {b['per_sec']:,.0f} | {a['per_sec']:,.0f} | {ratio_text(x)} | "
                     f"{b['p50_us']} | {a['p50_us']} | {b['p99_us']} | {a['p99_us']} | {ratio_text(y)} | "
                     f"{b['loss']:.2%} | {a['loss']:.2%} |")

lines += ["", "### Every run", "",
          "| scenario | server (path) | rate/s | delivered/s | loss | p50 µs | p99 µs | p99.9 µs | max µs | server CPU | client-bound | "
          + " | ".join(f"× {p}" for p in PEERS) + " |",
          "|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(PEERS)]
by_key = {(r["server"], r["scenario"], r["connections"], r.get("rate")): r for r in rows}
for r in rows:
    if r["scenario"] == "idle":
        continue
    ratios = []
    for p in PEERS:
        peer = by_key.get((p, r["scenario"], r["connections"], r.get("rate")))
        ratios.append(f"{r['per_sec'] / peer['per_sec']:.2f}×" if peer and peer["per_sec"] else "–")
    cpu = f"{r['server_cpu']:.2f}" if r.get("server_cpu") is not None else "–"
    rate = r.get("rate") or "–"
    if r["scenario"] == "setup":
        rate = f"{rate} in flight"
    lines.append(
        f"| {r['scenario']} × {r['connections']} | {r['server']} ({path_label(r)}) | {rate} | "
        f"{r['per_sec']:.0f} | {r['loss']:.2%} | {r['p50_us']} | {r['p99_us']} | {r['p999_us']} | {r['max_us']} | "
        f"{cpu} | {'yes' if r['client_bound'] else 'no'} | " + " | ".join(ratios) + " |")

idle = [r for r in rows if r["scenario"] == "idle"]
if idle:
    lines += ["", "| idle connections | server (path) | alive | server RSS per connection | "
              + " | ".join(f"× {p}" for p in PEERS) + " |", "|---|---|---|---|" + "---|" * len(PEERS)]
    rss = {r["server"]: r.get("rss_per_conn_kib") for r in idle}
    for r in idle:
        mine = r.get("rss_per_conn_kib")
        ratios = [f"{mine / rss[p]:.2f}×" if mine is not None and rss.get(p) else "–" for p in PEERS]
        lines.append(f"| {r['connections']} | {r['server']} ({path_label(r)}) | {r['delivered']} of {r['expected']} | "
                     + (f"{mine:.1f} KiB" if mine is not None else "–") + " | " + " | ".join(ratios) + " |")


def ratio(server, label_prefix, peer):
    """Server / peer; inf when the peer scored 0 (met the bound at no rate tried)."""
    for (label, _, _), values in headline.items():
        if label.startswith(label_prefix) and peer in values:
            mine = values.get(server, 0)
            if values[peer] == 0:
                return float("inf") if mine else None
            return mine / values[peer]
    return None


def fmt(x, at_least=None):
    """A ratio, with enough decimals that one below the goal never prints as the goal."""
    if x is None:
        return "–"
    if x == float("inf"):
        return "∞ (the peer met the bound at no rate tried)"
    decimals = 2
    while at_least is not None and x < at_least <= round(x, decimals) and decimals < 6:
        decimals += 1
    return f"{x:.{decimals}f}×"


def idle_kib(server):
    return next((v.get(server) for (label, _, _), v in headline.items() if label.startswith("idle")), None)


def at_most_kib(bound):
    def measure(server):
        v = idle_kib(server)
        return (None, None) if v is None else (f"{v:.1f} KiB", v <= bound)
    return measure


def vs(prefix, peer, name, at_least=None, at_most=None):
    def measure(server):
        x = ratio(server, prefix, peer)
        if x is None:
            return None, None
        met = x >= at_least if at_least is not None else x <= at_most
        if x == float("inf"):
            return f"∞× {name} ({name} met the bound at no rate tried)", met
        if x == 0:
            return f"0× {name} (met the bound at no rate tried)", met
        return f"{fmt(x, at_least)} {name}", met
    return measure


# (figure, goal, scenario, measure(server) -> (text, met))
goals = [
    ("idle RSS per connection at 10k", "≤ 6 KiB", "idle", at_most_kib(6.0)),
    ("idle RSS per connection at 10k", "≤ 0.25× Node ws", "idle", vs("idle", "node-ws", "Node ws", at_most=0.25)),
    ("fan-out at saturation, 1k receivers", "≥ 1.0× Bun", "fanout", vs("fan-out × 1,000", "bun", "Bun", at_least=1.0)),
    ("fan-out at saturation, 1k receivers", "≥ 4× Node ws", "fanout",
     vs("fan-out × 1,000", "node-ws", "Node ws", at_least=4.0)),
    ("fan-out at 10k receivers", "≥ 1.0× Bun", "fanout", vs("fan-out × 10,000", "bun", "Bun", at_least=1.0)),
    ("echo, 100 × 20 B", "≥ 1.0× Deno", "echo", vs("echo", "deno", "Deno", at_least=1.0)),
    ("connection setup/s, zero failures in 30k", "≥ 1.5× Node ws", "setup",
     vs("connection setup", "node-ws", "Node ws", at_least=1.5)),
]
lines += ["", "### Goals (this run; met only if met on the chat path, /ws)", "",
          "| figure | goal | chat path (/ws) | raw path | verdict |", "|---|---|---|---|---|"]
for name, goal, scenario, measure in goals:
    chat_text, chat_met = measure("switchboard-chat")
    raw_text, raw_met = measure("switchboard")
    endpoint = RAW_ENDPOINT[scenario]
    if chat_met:
        verdict = "met"
    elif chat_met is None:
        verdict = "not measured on the product path"
    elif raw_met:
        verdict = f"not met on the product path (met on raw {endpoint} only)"
    else:
        verdict = "not met"
    raw_cell = "–" if raw_text is None else f"{raw_text} ({raw_label(scenario)})"
    lines.append(f"| {name} | {goal} | {chat_text or '–'} | {raw_cell} | {verdict} |")
lines += ["", "Saturation: the highest rate tried with ≥ 99.9 % delivered and p99 within 20 ms (1k receivers) "
          "or 100 ms (10k). A run marked client-bound had the load generator at > 90 % of its core: "
          "there the figure is a floor for the server, not its limit."]


def read_metrics(path):
    """{family: {series: value}} from run.sh's /metrics snapshots."""
    families, current = {}, None
    for line in open(path):
        line = line.strip()
        if line.startswith("# after: "):
            current = families.setdefault(line[len("# after: "):], {})
        elif line and current is not None and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            try:
                current[series] = float(value)
            except ValueError:
                pass
    return families


def bucket_bound(series, count, q):
    """The smallest histogram bucket bound holding at least q of the observations, seconds."""
    buckets = sorted((float(k.split('le="', 1)[1].rstrip('"}')), v) for k, v in series.items()
                     if k.startswith("switchboard_delivery_seconds_bucket{"))
    return next((le for le, n in buckets if n >= q * count), None)


def ms(seconds):
    if seconds is None:
        return "–"
    return "> 1.6 s" if seconds == float("inf") else f"≤ {seconds * 1000:g} ms"


server_metrics = read_metrics(metrics_src) if metrics_src and os.path.exists(metrics_src) else {}
lines += ["", "### Server-side figures (switchboard-chat's own /metrics, this run)", ""]
if server_metrics:
    lines += ["Counters of the chat-path server, read just before it was stopped at the end of each scenario "
              "family (a fresh server per family, so each row covers exactly that family's runs). Delivery: "
              "from a message's commit to its frame flushed to a member's socket; p50 and p99 are bucket bounds.",
              "", "| scenario family | chat frames in | frames out | messages persisted | rate limited "
              "| slow consumers dropped | delivery mean | delivery p50 | delivery p99 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for family, m in server_metrics.items():
        count = m.get("switchboard_delivery_seconds_count", 0)
        mean = f"{m['switchboard_delivery_seconds_sum'] / count * 1000:.2f} ms" if count else "–"

        def n(key):
            return f"{m[key]:,.0f}" if key in m else "–"
        chat_in = n('switchboard_frames_in_total{kind="chat"}')
        lines.append(f"| {family} | {chat_in} | "
                     f"{n('switchboard_frames_out_total')} | {n('switchboard_messages_persisted_total')} | "
                     f"{n('switchboard_rate_limited_total')} | {n('switchboard_slow_consumers_dropped_total')} | "
                     f"{mean} | {ms(bucket_bound(m, count, 0.5)) if count else '–'} | "
                     f"{ms(bucket_bound(m, count, 0.99)) if count else '–'} |")
else:
    lines += ["Not recorded by this run."]

failures = [l.strip() for l in open(failures_src)] if failures_src and os.path.exists(failures_src) else []
failures = [l for l in failures if l]
lines += ["", "### Failed runs", ""]
lines += [f"- {l.removeprefix('FAILED: ')}" for l in failures] if failures else ["None."]
open(md_out, "w").write("\n".join(lines) + "\n")
json.dump({"machine": machine, "runs": rows,
           "headline": [{"figure": k[0], "unit": k[1], "values": v} for k, v in headline.items()],
           **({"before_after": {"baseline": BASELINE, "figures": before_after}} if has_before else {}),
           "server_metrics": server_metrics, "failures": failures},
          open(json_out, "w"), indent=1)

# ---- SVG: one panel of horizontal bars per headline figure ----
COLORS = {"switchboard": "#4f46e5", "switchboard-chat": "#818cf8", "switchboard-before": "#c4b5fd", "node-ws": "#16a34a",
          "bun": "#f59e0b", "deno": "#0f172a", "python": "#3b82f6"}
W, BAR, GAP, LABEL_W, TITLE_H = 760, 16, 4, 130, 28
panels = list(headline.items())
out = ['SVG_HEADER',
       f'<text x="12" y="22" font-size="15" font-weight="600">Switchboard vs peers — one run, '
       f'{escape(machine["cpu"])}, server on one core</text>']
y = 40
for (label, unit, better), values in panels:
    out.append(f'<text x="12" y="{y + 16}" font-weight="600">{escape(label)} — {unit}'
               f'{"" if better else " (lower is better)"}</text>')
    y += TITLE_H
    top = max(values.values()) or 1
    for s in SERVERS:
        v = values.get(s)
        out.append(f'<text x="{LABEL_W - 8}" y="{y + BAR - 4}" text-anchor="end">{s}</text>')
        if v is not None:
            w = max(1, (W - LABEL_W - 110) * v / top)
            out.append(f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR}" rx="2" fill="{COLORS[s]}"/>')
            text = f"{v:.1f}" if unit == "KiB" else f"{v:,.0f}"
            if v == 0 and "saturation" in label:
                text = "bound not met at any rate tried"
            out.append(f'<text x="{LABEL_W + w + 6:.1f}" y="{y + BAR - 4}">{text}</text>')
        else:
            out.append(f'<text x="{LABEL_W + 4}" y="{y + BAR - 4}" fill="#94a3b8">not measured</text>')
        y += BAR + GAP
    y += 14
height = y + 6
out[0] = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" '
          f'font-family="system-ui, sans-serif" font-size="12">\n<rect width="{W}" height="{height}" fill="#fff"/>')
out.append("</svg>")
open(svg_out, "w").write("\n".join(out) + "\n")
