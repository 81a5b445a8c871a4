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

PEERS = ["node-ws", "bun", "deno", "python", "bun-chat"]
# The same-contract peer (bench/peers/bun-chat): Switchboard's chat contract in Bun; the others
# relay raw frames (a transport baseline).
SAME_CONTRACT = "bun-chat"
TWO_CPU = "switchboard-chat-2cpu"
# The chat path before the protocol redesign (run.sh's BASELINE): a column only when it ran.
BEFORE, AFTER = "switchboard-before", "switchboard-chat"
BASELINE = os.environ.get("BASELINE_LABEL") or "the baseline revision"
has_before = any(r["server"] == BEFORE for r in rows)
SERVERS = ["switchboard", AFTER] + ([BEFORE] if has_before else []) + \
    ([TWO_CPU] if any(r["server"] == TWO_CPU for r in rows) else []) + PEERS
# Saturation: the highest fan-out rate with >= 99.9 % delivered and p99 within this bound.
P99_BOUND_US = {1000: 100_000, 10000: 250_000}
# Rooms (10,000 rooms of 10): the same criterion, p99 within 100 ms.
ROOMS_P99_US = 100_000


# Switchboard's raw path per scenario: the bench-only /relay (`--bench-relay`, off by default),
# or /echo. Neither is the product's chat path (/ws).
RAW_ENDPOINT = {"idle": "/relay", "fanout": "/relay", "chat": "/relay", "echo": "/echo", "setup": "/echo"}


def raw_label(scenario):
    endpoint = RAW_ENDPOINT[scenario]
    return "raw path, bench-only /relay endpoint" if endpoint == "/relay" else f"raw path, {endpoint} endpoint"


def path_label(r):
    if r["server"] == BEFORE and r["path"] != "switchboard_v2":
        return f"chat path before, /ws at {BASELINE}"
    if r["path"] == "switchboard_v2":
        return f"chat path before, /ws protocol v2 at {BASELINE}"
    if r["server"] == SAME_CONTRACT:
        return "same contract in Bun: JSON, seq, bun:sqlite"
    if r["path"] != "raw":
        return "chat path, /ws: JSON, seq, SQLite"
    return raw_label(r["scenario"]) if r["server"] == "switchboard" else "raw"


def saturation(server, receivers, scenario="fanout"):
    """(highest rate meeting the bound, its delivered/s), or None."""
    bound = ROOMS_P99_US if scenario == "rooms" else P99_BOUND_US.get(receivers, 100_000)
    ok = [r for r in rows if r["server"] == server and r["scenario"] == scenario and r["connections"] == receivers
          and r["loss"] <= 0.001 and r["p99_us"] <= bound]
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
    for r in (r for r in rows if r["server"] == s and r["scenario"] == "idle"):
        add(f"idle memory per connection × {r['connections']:,}", "KiB", False, s, r.get("rss_per_conn_kib"))
    for r in (r for r in rows if r["server"] == s and r["scenario"] == "members"):
        n = r["connections"]
        add(f"named members in one room × {n:,}: memory per member", "KiB", False, s, r.get("rss_per_conn_kib"))
        add(f"named members in one room × {n:,}: time until all are in", "s", False, s, r.get("join_secs"))
        add(f"named members in one room × {n:,}: presence frames received", "frames", False, s,
            r.get("presence_frames"))
    for r in (r for r in rows if r["server"] == s and r["scenario"] == "members-nameless"):
        n = r["connections"]
        add(f"nameless listeners in one room × {n:,}: time until all are in", "s", False, s, r.get("join_secs"))
    rooms_runs = [r for r in rows if r["server"] == s and r["scenario"] == "rooms"]
    if rooms_runs:
        sat = saturation(s, rooms_runs[0]["connections"], "rooms")
        add(f"rooms: {rooms_runs[0]['connections']:,} rooms × 10 members at saturation", "deliveries/s", True, s,
            sat[1] if sat else 0.0)


# ---- Markdown ----
server_cpu, loadgen_cpu = os.environ.get("SERVER_CPU", "0"), os.environ.get("LOADGEN_CPU", "1")
lines = [f"Machine: {machine['cpu']}, Linux {machine['kernel']}; server on core {server_cpu}, "
         f"load generator on core {loadgen_cpu}.", ""]
COLUMN = {"switchboard": "switchboard (raw path)", AFTER: "switchboard-chat (chat path, /ws)",
          BEFORE: f"switchboard-before (chat path before: /ws at {BASELINE}"
                  + (", v2)" if os.environ.get("BASELINE_PATH", "switchboard-v2") == "switchboard-v2" else ")")}
lines += ["### Headline figures", "",
          "| figure | " + " | ".join(COLUMN.get(s, s) for s in SERVERS) + " |", "|---|" + "---|" * len(SERVERS)]
for (label, unit, better), values in headline.items():
    cells = []
    for s in SERVERS:
        v = values.get(s)
        cells.append("–" if v is None else "bound not met" if v == 0 and "saturation" in label
                     else (f"{v:.1f}" if unit in ("KiB", "s") else f"{v:,.0f}"))
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
              (f"Before: `switchboard-before`, the server at {BASELINE} (protocol v2: one room per connection, "
               "named in the query, no subprotocol, `welcome` first; load generator `--path switchboard-v2`). "
               if os.environ.get("BASELINE_PATH", "switchboard-v2") == "switchboard-v2" else
               f"Before: `switchboard-before`, the server at {BASELINE}, driven in protocol v3 like the "
               "current one (`--path switchboard`). ") +
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
            return f"{v:.1f}" if unit in ("KiB", "s") else f"{v:,.0f}"
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
    for b in (r for r in rows if r["server"] == BEFORE and r["scenario"] not in ("idle", "members")):
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
    if r["scenario"] in ("idle", "members", "members-nameless"):
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
    rss = {(r["server"], r["connections"]): r.get("rss_per_conn_kib") for r in idle}
    for r in idle:
        mine = r.get("rss_per_conn_kib")
        ratios = [f"{mine / rss[(p, r['connections'])]:.2f}×" if mine is not None and rss.get((p, r["connections"]))
                  else "–" for p in PEERS]
        lines.append(f"| {r['connections']} | {r['server']} ({path_label(r)}) | {r['delivered']} of {r['expected']} | "
                     + (f"{mine:.1f} KiB" if mine is not None else "–") + " | " + " | ".join(ratios) + " |")


members_rows = [r for r in rows if r["scenario"] in ("members", "members-nameless")]
if members_rows:
    lines += ["", "Members of one room (chat path): N connections join one fresh room, 64 at a time, named "
              "(unique names) or nameless; until all are in, then until no frame for a second; the frames "
              "they received meanwhile (presence), the server's RSS growth per member once quiet, and one "
              "chat that must reach all.", "",
              "| members | server (path) | named | time until all in | until quiet | presence frames "
              "| frames per member | RSS per member | alive |", "|---|---|---|---|---|---|---|---|---|"]
    for r in members_rows:
        n = r["connections"]
        frames = r.get("presence_frames")
        rss = r.get("rss_per_conn_kib")
        lines.append(f"| {n:,} | {r['server']} ({path_label(r)}) | {'yes' if r['scenario'] == 'members' else 'no'} | "
                     f"{r.get('join_secs') or 0:.2f} s | {r.get('settled_secs') or 0:.2f} s | "
                     f"{frames if frames is not None else '–':,} | "
                     f"{(frames / n if frames is not None else 0):,.1f} | "
                     + (f"{rss:.1f} KiB" if rss is not None else "–") + f" | {r['delivered']} of {r['expected']} |")


def fmt(x, at_least=None):
    """A ratio, with enough decimals that one below the goal never prints as the goal."""
    if x is None:
        return "–"
    if x == float("inf"):
        return "∞×"
    decimals = 2
    while at_least is not None and x < at_least <= round(x, decimals) and decimals < 6:
        decimals += 1
    return f"{x:.{decimals}f}×"


def value(label):
    return next((v for (l, _, _), v in headline.items() if l == label), {})


def run_of(server, scenario, n):
    return next((r for r in rows if r["server"] == server and r["scenario"] == scenario
                 and r["connections"] == n), None)


def goal_fanout(n):
    """The issue's figure: the saturation rate (the highest rate tried that met the bound)."""
    def measure():
        tried = [r for r in rows if r["scenario"] == "fanout" and r["connections"] == n]
        if not any(r["server"] == AFTER for r in tried) or not any(r["server"] == "bun" for r in tried):
            return None, None
        mine, peer = saturation(AFTER, n), saturation("bun", n)
        if mine is None:
            return "met the bound at no rate tried", False
        if peer is None:
            return f"{mine[0]:,} msg/s against none (Bun met the bound at no rate tried)", True
        x = mine[0] / peer[0]
        top = max(r["rate"] for r in tried)
        floor = "; both at the highest rate tried, a floor" if mine[0] == peer[0] == top else ""
        return (f"{fmt(x, 1.0)} Bun raw relay ({mine[0]:,} against {peer[0]:,} msg/s; "
                f"{mine[1]:,.0f} against {peer[1]:,.0f} deliveries/s{floor})", x >= 1.0)
    return measure


def goal_idle(n):
    def measure():
        r, peer = run_of(AFTER, "members", n), run_of("bun", "idle", n)
        if not r or not peer or r.get("rss_per_conn_kib") is None or not peer.get("rss_per_conn_kib"):
            return None, None
        x = r["rss_per_conn_kib"] / peer["rss_per_conn_kib"]
        return (f"{fmt(x)} Bun raw relay ({r['rss_per_conn_kib']:.1f} against {peer['rss_per_conn_kib']:.1f} KiB)",
                x <= 1.0)
    return measure


def goal_members(n):
    def measure():
        named, nameless = run_of(AFTER, "members", n), run_of(AFTER, "members-nameless", n)
        if not named or not nameless or named.get("presence_frames") is None:
            return None, None
        per = named["presence_frames"] / n
        x = named["join_secs"] / nameless["join_secs"]
        # O(N): a bounded number of presence frames per member (a batch per interval while
        # joins go on), where O(N²) is N/2 per member.
        linear = per <= 50
        return (f"{named['presence_frames']:,} presence frames ({per:,.1f} per member; O(N²) would be "
                f"{n * (n - 1) // 2:,}); all in after {named['join_secs']:.2f} s against "
                f"{nameless['join_secs']:.2f} s nameless ({fmt(x)})",
                linear and x <= 2.0 and named["delivered"] == named["expected"])
    return measure


def goal_chat(n):
    def measure():
        values = value(f"chat room × {n}")
        mine, peer = values.get(AFTER), values.get(SAME_CONTRACT)
        if mine is None or not peer:
            return None, None
        x = mine / peer
        return f"{fmt(x, 2.0)} bun-chat ({mine:,.0f} against {peer:,.0f} deliveries/s)", x >= 2.0
    return measure


def goal_rooms():
    label = next((l for (l, _, _) in headline if l.startswith("rooms:")), None)
    values = value(label) if label else {}

    def measure():
        one, two = values.get(AFTER), values.get(TWO_CPU)
        if one is None:
            return None, None
        text = f"{one:,.0f} deliveries/s on 1 CPU"
        if two is not None:
            text += f", {two:,.0f} on 2 CPUs ({fmt(two / one) if one else '–'}; the load generator shares the second)"
        return text, None
    return measure


goals = [
    ("fan-out saturation, 1,000 receivers (p99 ≤ 100 ms, ≥ 99.9 % delivered)", "≥ 1.0× Bun raw relay", goal_fanout(1000)),
    ("fan-out saturation, 10,000 receivers (p99 ≤ 250 ms)", "≥ 1.0× Bun raw relay", goal_fanout(10000)),
    ("idle RSS per connection, 2,000 named members in one room", "≤ 1.0× Bun raw relay", goal_idle(2000)),
    ("idle RSS per connection, 10,000 named members in one room", "≤ 1.0× Bun raw relay", goal_idle(10000)),
    ("10,000 named members joining one room", "presence frames O(N); all in within 2× nameless", goal_members(10000)),
    ("chat room × 16, every message persisted", "≥ 2× bun-chat", goal_chat(16)),
    ("chat room × 100, every message persisted", "≥ 2× bun-chat", goal_chat(100)),
    ("10,000 rooms × 10 members, traffic in every room", "no global lock; 1 and 2 server CPUs", goal_rooms()),
]
lines += ["", "### Goals (this run; the product path, /ws, only)", "",
          "| figure | goal | measured | verdict |", "|---|---|---|---|"]
for name, goal, measure in goals:
    text, met = measure()
    verdict = "not measured" if text is None else "reported" if met is None else "met" if met else "not met"
    lines.append(f"| {name} | {goal} | {text or '–'} | {verdict} |")
lines += ["", "Saturation: the highest rate tried with ≥ 99.9 % delivered and p99 within 100 ms (1,000 "
          "receivers; rooms) or 250 ms (10,000 receivers). A run marked client-bound had the load generator "
          "at > 90 % of its core: there the figure is a floor for the server, not its limit. The fan-out goals "
          "compare saturation rates, the issue's figure (deliveries/s beside them: at one rate they differ "
          "only by when the last frames landed). Bun raw relay: "
          "bench/peers/bun (a transport baseline); bun-chat: bench/peers/bun-chat (the same contract)."]


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
          "bun": "#f59e0b", "deno": "#0f172a", "python": "#3b82f6", "bun-chat": "#b45309",
          "switchboard-chat-2cpu": "#6366f1"}
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
            text = f"{v:.1f}" if unit in ("KiB", "s") else f"{v:,.0f}"
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
