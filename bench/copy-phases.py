#!/usr/bin/env python3
"""Latency during each phase of SQLite's log copy, from a series' own records.

    bench/copy-phases.py SERVER_LOG TIMELINE_DIR

SERVER_LOG is the server's log of a series run with the registrar's debug lines
(RUST_LOG=warn,tirage::jobs::registrar=debug and KEEP_SERVER_LOG=FILE, see
bench/serve.sh); TIMELINE_DIR holds the per-second timelines of its runs
(TIMELINES=DIR, files open-CONNECTIONS-RATE[TAG].txt). Each second of each run is
put in the phase of the log's copy that overlapped it most, or in "none":

  pass       the first pass, which copies the long log into the database file
  writeback  the first round, which writes the file out with rests
  sync       the later rounds, which write out what the log gained meanwhile
  repass     the passes after each round's write-out
  turn       the last pass, in the writers' turn (registrations wait for it)

and for each connection count and phase prints how many seconds fell there, the
median of their p50s and of their p99s, and how many seconds had a p99 over
P99_GOAL_MS (default 50). Then each copy of a long log: when it began, how long it
took, and how long it held the writer.
"""

import datetime
import os
import re
import sys
from collections import defaultdict
from pathlib import Path


def seconds_of(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def phases(server_log):
    """(start, end, phase) spans, and (start, seconds, held ms) for each copy."""
    spans, copies, began = [], [], None
    for line in open(server_log, encoding="utf-8"):
        stamp = line.split(" ", 1)[0]
        if "the log's copy begins" in line:
            at = seconds_of(stamp)
            pass_s = float(re.search(r"pass_ms=([\d.]+)", line).group(1)) / 1e3
            began = at - pass_s
            spans.append((began, at, "pass"))
        elif "a round of the log's copy" in line:
            at = seconds_of(stamp)
            round_ = int(re.search(r"round=(\d+)", line).group(1))
            sync_s = float(re.search(r"sync_ms=([\d.]+)", line).group(1)) / 1e3
            pass_s = float(re.search(r"pass_ms=([\d.]+)", line).group(1)) / 1e3
            written = at - pass_s
            spans.append((written - sync_s, written, "writeback" if round_ == 0 else "sync"))
            spans.append((written, at, "repass"))
        elif "copied whole in the writers' turn" in line:
            at = seconds_of(stamp)
            held_ms = float(re.search(r"held_ms=([\d.]+)", line).group(1))
            spans.append((at - held_ms / 1e3, at, "turn"))
            if began is not None:
                copies.append((began, at - began, held_ms))
            began = None
    return spans, copies


def timelines(directory):
    """(connections, second's start, p50, p99) for each second of each run."""
    for path in sorted(Path(directory).glob("open-*.txt")):
        connections = path.name.split("-")[1]
        lines = path.read_text(encoding="utf-8").splitlines()
        start = float(re.search(r"began ([\d.]+)", lines[0]).group(1))
        for line in lines[2:]:
            second, _due, p50, p99, _longest = line.split()
            yield connections, start + int(second), float(p50), float(p99)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    goal = float(os.environ.get("P99_GOAL_MS", "50"))
    spans, copies = phases(sys.argv[1])
    seconds = defaultdict(list)
    first = None
    for connections, at, p50, p99 in timelines(sys.argv[2]):
        first = at if first is None else min(first, at)
        phase, most = "none", 0.0
        for start, end, name in spans:
            overlap = min(end, at + 1) - max(start, at)
            if overlap > most:
                phase, most = name, overlap
        seconds[(int(connections), phase)].append((p50, p99))
    order = ["none", "pass", "writeback", "sync", "repass", "turn"]
    print("| connections | phase | seconds | p50 ms, median | p99 ms, median | seconds with p99 over %g ms |" % goal)
    print("|---:|---|---:|---:|---:|---:|")
    for connections, phase in sorted(seconds, key=lambda k: (k[0], order.index(k[1]))):
        rows = seconds[(connections, phase)]
        p50s = sorted(p50 for p50, _ in rows)
        p99s = sorted(p99 for _, p99 in rows)
        over = sum(1 for p99 in p99s if p99 > goal)
        print(f"| {connections} | {phase} | {len(rows)} | {p50s[len(rows) // 2]:.1f} | {p99s[len(rows) // 2]:.1f} | {over} |")
    print()
    for began, took, held_ms in copies:
        when = "" if first is None else f", {began - first:.0f} s after the first run began"
        print(f"copy{when}: {took:.1f} s, the writer held {held_ms:.0f} ms")


if __name__ == "__main__":
    main()
