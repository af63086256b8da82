"""Predicted against measured downtime on workloads outside the benchmark's grid: issue 23's
accuracy figures, measured on the lab.

Redis holding 256 MiB of 1 KiB values that are all alike (its pages repeat: the data path
sends a repeated page once, and the model plans with the share of distinct pages the
dirty-rate sampler counted), the same redis with random values (nothing repeats), both under
their client's 200 writes/s, and a 512 MiB memwriter dirtying 10% of the link; each migrated
latency-aware and stop-and-copy over the lab at 50 ms / 200 Mbit/s, back and forth between
east-1 and west-1 (`whimbrel bench`'s runner: each run verified after it).

Run (as root, lab up): .venv/bin/python benchmarks/prediction.py [REPEATS] (5)
Writes the runs to bench-results/prediction-runs.jsonl (a rerun resumes them) and the figures
to bench-results/prediction.json. Goal (issue 23): median error <= 15%, each <= 25%.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from whimbrel.backends.research.grid import Point
from whimbrel.backends.research.runner import run_grid
from whimbrel.backends.research.runs import read_rows

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"
RUNS, OUT = RESULTS / "prediction-runs.jsonl", RESULTS / "prediction.json"
RTT_MS, MBIT = 50, 200
POINTS = (
    Point(RTT_MS, MBIT, "redis-same", 256),
    Point(RTT_MS, MBIT, "redis-random", 256),
    Point(RTT_MS, MBIT, "memwriter", 512, "medium"),
)
POLICIES = ("latency-aware", "stop-and-copy")


def error(row: dict[str, Any]) -> float:
    return row["predicted_downtime_s"] / row["downtime_s"] - 1


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["ok"] and r["downtime_s"]]
    groups: dict[str, Any] = {}
    for point in POINTS:
        for policy in POLICIES:
            runs = [r for r in ok if r["point"] == point.key and r["policy"] == policy]
            if not runs:
                continue
            errors = [abs(error(r)) for r in runs]
            groups[f"{point.workload} {point.size_mib} MiB {policy}"] = {
                "runs": len(runs),
                "failed": sum(
                    not r["ok"] for r in rows if r["point"] == point.key and r["policy"] == policy
                ),
                "downtime_s": statistics.median(r["downtime_s"] for r in runs),
                "predicted_downtime_s": statistics.median(r["predicted_downtime_s"] for r in runs),
                "error_median": statistics.median(errors),
                "error_max": max(errors),
                "distinct_share": statistics.median(
                    (r.get("inputs") or {}).get("distinct_share", 1.0) for r in runs
                ),
                "bytes_sent": statistics.median(r["bytes_sent"] for r in runs),
                "predicted_bytes": statistics.median(r["predicted_bytes"] for r in runs),
            }
    errors = [abs(error(r)) for r in ok]
    return {
        "rtt_ms": RTT_MS,
        "bandwidth_mbit": MBIT,
        "groups": groups,
        "error_median": statistics.median(errors) if errors else None,
        "error_max": max(errors) if errors else None,
        "runs": len(ok),
        "failed": len(rows) - len(ok),
    }


def main() -> int:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    run_grid(list(POINTS), POLICIES, repeats, RUNS, print)
    result = summary(list(read_rows(RUNS)))
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"predicted against measured downtime at {RTT_MS} ms / {MBIT} Mbit/s (medians):")
    for name, g in result["groups"].items():
        print(
            f"  {name:<40} {g['downtime_s']:.2f} s, predicted {g['predicted_downtime_s']:.2f}: "
            f"error {g['error_median']:.0%} (most {g['error_max']:.0%}), distinct "
            f"{g['distinct_share']:.0%}, sent {g['bytes_sent'] / 2**20:.0f} MiB (predicted "
            f"{g['predicted_bytes'] / 2**20:.0f}), {g['runs']} runs"
        )
    if result["error_median"] is not None:
        print(
            f"  all: median error {result['error_median']:.0%}, most {result['error_max']:.0%}, "
            f"{result['runs']} runs, {result['failed']} failed"
        )
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
