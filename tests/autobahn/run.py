#!/usr/bin/env python3
"""Autobahn|Testsuite conformance: the fuzzingclient against the server's /echo endpoint,
cases 1-7, 10, 12 and 13, compared with expected.json (zero FAILED allowed; any change of
behaviour from the committed expectation fails too).

Every case is compared with expected.json, and the last line counts each case once:

    autobahn: N passed, N failed, N skipped

- failed: the case is missing on either side, its behaviour is FAILED, or its behaviour or close
  behaviour differs from expected.json;
- skipped: otherwise, the suite reports it UNIMPLEMENTED (12.x and 13.x: permessage-deflate,
  which the server does not offer). These are not passes; a case that stops being
  UNIMPLEMENTED (or starts being) differs from expected.json and fails;
- passed: every other case (OK, NON-STRICT, INFORMATIONAL, as expected).

The suite runs on Python 2.7 only: it is taken from pyenv's 2.7.18 (scripts/setup.sh installs
`autobahntestsuite` there), or from $WSTEST. Without it, the last (only) line is exactly

    autobahn: SKIPPED layer conformance (no Python 2.7 wstest at <path>)

and the exit status is 0: a visible skip the caller can name, never a pass.
Usage: tests/autobahn/run.py <server binary>
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WSTEST = os.path.expanduser(os.environ.get("WSTEST", "~/.pyenv/versions/2.7.18/bin/wstest"))
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*", "12.*", "13.*"]


def case_key(case):
    return [int(x) for x in case.split(".")]


def main():
    server_bin = sys.argv[1]
    if not os.path.exists(WSTEST):
        print("autobahn: SKIPPED layer conformance (no Python 2.7 wstest at %s)" % WSTEST)
        return 0
    work = tempfile.mkdtemp(prefix="autobahn-")
    server = subprocess.Popen(
        [server_bin, "--bind", "127.0.0.1:0", "--db", os.path.join(work, "ab.db"),
         "--static-dir", os.path.join(work, "none")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        match = re.search(r"listening on http://(\S+)", line)
        if not match:
            print("autobahn: the server did not start: %r" % line)
            return 1
        spec = {
            "outdir": os.path.join(work, "reports"),
            "servers": [{"agent": "switchboard", "url": "ws://%s/echo" % match.group(1)}],
            "cases": CASES, "exclude-cases": [], "exclude-agent-cases": {},
        }
        spec_path = os.path.join(work, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        started = time.time()
        subprocess.run([WSTEST, "-m", "fuzzingclient", "-s", spec_path], cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=900)
        with open(os.path.join(work, "reports", "index.json")) as f:
            results = json.load(f)["switchboard"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    with open(os.path.join(HERE, "expected.json")) as f:
        expected = json.load(f)
    failed = []
    passed = skipped = 0
    counts = {}
    for case in sorted(set(results) | set(expected), key=case_key):
        got = results.get(case)
        want = expected.get(case)
        if got is not None:
            counts[got["behavior"]] = counts.get(got["behavior"], 0) + 1
        if got is None or want is None or got["behavior"] == "FAILED" or got["behavior"] != want["behavior"] \
                or got["behaviorClose"] != want["behaviorClose"]:
            failed.append((case, want, got and {k: got[k] for k in ("behavior", "behaviorClose")}))
        elif got["behavior"] == "UNIMPLEMENTED":
            skipped += 1
        else:
            passed += 1
    for case, want, got in failed:
        print("autobahn: case %s expected %s, got %s" % (case, want, got))
    print("autobahn: %d cases in %.1f s: %s" % (len(results), time.time() - started,
          ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
    print("autobahn: %d passed, %d failed, %d skipped" % (passed, len(failed), skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
