"""The cadence of in-round progress events: the on-call evacuation issue's must-show (item 2).

A 1 GiB memwriter, all of it hot, dirtying 2% of the link, migrated with the QEMU policy (it
always pre-copies a state that large) over a 400 Mbit/s lab at 50 ms (round 0 alone is about
20 s), back and forth between east-1 and west-1, through `whimbrel migrate --json` as a script
would read it, each run verified after it (memwriter's checksum over its whole state). Per
pre-copy round: how many RoundProgress events came, the gaps between consecutive ones (their
`t`: the engine's clock as each came in), and how long after the round's start the first came
(its dump, which says nothing). Goal: the largest gap at most 1 s.

Run (as root, lab up): .venv/bin/python benchmarks/progress_cadence.py [RUNS] (3)
Prints one line per round and the summary; writes bench-results/progress-cadence.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

from whimbrel.backends.lab import lab
from whimbrel.backends.research.grid import Point
from whimbrel.backends.research.runner import (
    NAME,
    NODES,
    clean_workloads,
    start_workload,
    workload_serving,
)

OUT = Path(__file__).resolve().parents[1] / "bench-results" / "progress-cadence.json"
POINT = Point(50, 400, "memwriter", 1024, "low")
GOAL_GAP_S = 1.0


def migrate(config: str, src: str, dst: str) -> list[dict[str, Any]]:
    """The migration's events, as `migrate --json` printed them."""
    proc = subprocess.run(
        [sys.executable, "-m", "whimbrel.app.cli", "--config", config, "migrate",
         f"{src}/{NAME}", "--to", dst, "--policy", "qemu", "--yes", "--json"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if not events or events[-1]["event"] != "MigrationFinished":
        events.append({"event": "MigrationFinished", "ok": False, "error": proc.stderr[-500:]})
    return events


def rounds(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each pre-copy round's progress cadence."""
    started = {e["index"]: e["t"] for e in events if e["event"] == "RoundStarted"}
    finished = {e["index"]: e for e in events if e["event"] == "RoundFinished" and not e["final"]}
    rows = []
    for index, end in sorted(finished.items()):
        ticks = [e["t"] for e in events if e["event"] == "RoundProgress" and e["index"] == index]
        gaps = [b - a for a, b in pairwise(ticks)]
        rows.append(
            {
                "round": index,
                "seconds": end["seconds"],
                "sent_bytes": end["sent_bytes"],
                "events": len(ticks),
                "first_after_start_s": ticks[0] - started[index] if ticks else None,
                "gap_median_s": statistics.median(gaps) if gaps else None,
                "gap_max_s": max(gaps) if gaps else None,
            }
        )
    return rows


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [r for run in runs for r in run["rounds"] if r["gap_max_s"] is not None]
    worst = max((r["gap_max_s"] for r in measured), default=None)
    return {
        "point": POINT.key,
        "runs": len(runs),
        "failed": sum(not run["ok"] for run in runs),
        "rounds_with_gaps": len(measured),
        "gap_median_s": statistics.median(r["gap_median_s"] for r in measured)
        if measured
        else None,
        "gap_max_s": worst,
        "meets_goal": worst is not None and worst <= GOAL_GAP_S,
    }


def run(count: int, config: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    src, dst = NODES
    start_workload(POINT, src)
    for number in range(count):
        events = migrate(config, src, dst)
        finished = events[-1]
        where = dst if finished.get("ok") else src
        verified = workload_serving(POINT, where)
        per_round = rounds(events)
        runs.append(
            {
                "n": number,
                "src": src,
                "dst": dst,
                "ok": bool(finished.get("ok")) and verified,
                "error": finished.get("error"),
                "rounds": per_round,
            }
        )
        for r in per_round:
            print(f"#{number} {src}->{dst} {json.dumps(r)}", flush=True)
        if not verified:  # lost it: start afresh
            clean_workloads()
            start_workload(POINT, src)
        elif where == dst:
            src, dst = dst, src
    return runs


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    status = lab.status()
    if not status["up"]:
        print("the lab is not up: `whimbrel lab up` (as root) first", file=sys.stderr)
        return 2
    lab.set_wan(POINT.rtt_ms, POINT.bandwidth_mbit)
    try:
        clean_workloads()
        runs = run(count, status["config"])
    finally:
        clean_workloads()
        lab.set_wan(status["rtt_ms"], status["bandwidth_mbit"])
    result = {**summary(runs), "runs": runs}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    print(f"wrote {OUT}")
    return 0 if result["meets_goal"] and not result["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
