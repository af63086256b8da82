"""Downtime against memory, with lazy restore: issue 23's figures, measured on the lab.

memwriter at 64 MiB, 256 MiB, 1 GiB and 2 GiB, all of it hot, dirtying 10% of a 200 Mbit/s
link at 50 ms RTT, migrated latency-aware with lazy restores (`whimbrel bench`'s runner: each
run verified after it, memwriter checking its whole state), REPEATS runs per size. Prints and
writes, per size, the medians of the downtime and its parts, the restore step, the floor
measured in the same run (CRIU's own final dump + the residual over the link's bandwidth +
RTT/2 + CRIU's own lazy restore) and the downtime's ratio to it (and to the floor with
Docker's start around CRIU's restore added: what is above that is whimbrel's own); and the
downtime's growth per GiB (least squares over every run). The downtime is the source's
clock from the pause to hearing "committed"; "served" is it less the answer's way back (half
the link's RTT), when the target served: the floor's RTT/2 is the way there alone, so the
ratios are taken with it. The lab's nodes share one clock, so the target's own time of
serving checks that estimate (`served_by_clocks_s`: exact here, not on nodes whose clocks
differ).

Run (as root, lab up): .venv/bin/python benchmarks/downtime.py [REPEATS] (5)
Writes the runs to bench-results/downtime-runs.jsonl (a rerun resumes them) and the figures
to bench-results/downtime.json. Goals (issue 23): 1 GiB <= 0.8 s; growth <= 0.5 s/GiB;
restore <= 0.15 s at every size; downtime <= 1.3x the floor.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.research.grid import Point
from whimbrel.backends.research.runner import run_grid
from whimbrel.backends.research.runs import read_rows

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"
RUNS, OUT = RESULTS / "downtime-runs.jsonl", RESULTS / "downtime.json"
RTT_MS, MBIT = 50, 200
SIZES_MIB = (64, 256, 1024, 2048)
POLICY = "latency-aware"


def floor_s(row: dict[str, Any]) -> float | None:
    """The least this run's hand-over could take on these nodes: CRIU's own final dump, the
    residual at the link's bandwidth, half a round trip, CRIU's own lazy restore."""
    final = row["measured_rounds"][-1]
    if not final.get("final") or row.get("criu_restore_s") is None:
        return None
    return (
        final["dump_s"]
        + final["bytes"] / (MBIT * 1e6 / 8)
        + RTT_MS / 1000 / 2
        + row["criu_restore_s"]
    )


def docker_start_s(row: dict[str, Any]) -> float:
    """What the restore step took beyond CRIU's own restore: Docker's start around it (dockerd,
    containerd, the shim, runc) and the inspect after it."""
    return row["downtime_parts"]["restore_s"] - row["criu_restore_s"]


def served_s(row: dict[str, Any]) -> float:
    """The downtime until the target served: less the answer's way back, where the run's parts
    tell it apart (rows from before have it in their send)."""
    parts = DowntimeParts.from_json(row["downtime_parts"])
    return row["downtime_s"] - (parts.answer_s if parts else 0.0)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["ok"] and r["downtime_s"]]
    sizes: dict[str, Any] = {}
    for size in SIZES_MIB:
        runs = [r for r in ok if r["size_mib"] == size]
        if not runs:
            continue
        parts = {
            name: statistics.median(r["downtime_parts"][name] for r in runs)
            for name in runs[0]["downtime_parts"]
        }
        floored = [(r, f) for r in runs if (f := floor_s(r))]
        floors = [f for _, f in floored]
        ratios = [served_s(r) / f for r, f in floored]
        heard = [r["downtime_s"] / f for r, f in floored]
        # Against the floor with Docker's start in it: what is left is whimbrel's own.
        starts = [docker_start_s(r) for r, _ in floored]
        own = [served_s(r) / (f + start) for (r, f), start in zip(floored, starts, strict=True)]
        checked = [r for r in runs if r.get("served_by_clocks_s")]
        clocks = [r["served_by_clocks_s"] for r in checked]
        misses = [served_s(r) - r["served_by_clocks_s"] for r in checked]
        sizes[f"{size}MiB"] = {
            "runs": len(runs),
            "lazy": sum(bool(r["lazy_restore"]) for r in runs),
            "downtime_s": statistics.median(r["downtime_s"] for r in runs),
            "served_s": statistics.median(served_s(r) for r in runs),
            "served_by_clocks_s": statistics.median(clocks) if clocks else None,
            # The estimate less the clocks' figure, the largest either way.
            "served_estimate_off_s": max(misses, key=abs) if misses else None,
            "predicted_downtime_s": statistics.median(r["predicted_downtime_s"] for r in runs),
            "parts_s": parts,
            "criu_restore_s": statistics.median(r["criu_restore_s"] or 0 for r in runs),
            "lazy_fill_s": statistics.median(r["lazy_fill_s"] or 0 for r in runs),
            "floor_s": statistics.median(floors) if floors else None,
            "ratio_to_floor": statistics.median(ratios) if ratios else None,
            "heard_ratio_to_floor": statistics.median(heard) if heard else None,
            "docker_start_s": statistics.median(starts) if starts else None,
            "ratio_to_floor_and_docker_start": statistics.median(own) if own else None,
        }
    gib = np.array([r["size_mib"] / 1024 for r in ok])
    down = np.array([r["downtime_s"] for r in ok])
    growth = float(np.polyfit(gib, down, 1)[0]) if len(set(gib.tolist())) > 1 else None
    errors = [abs(r["predicted_downtime_s"] / r["downtime_s"] - 1) for r in ok]
    return {
        "lab": f"{RTT_MS} ms, {MBIT} Mbit/s, memwriter dirtying 10% of the link, {POLICY}",
        "runs": len(rows),
        "failed": len(rows) - len(ok),
        "growth_s_per_gib": growth,
        "prediction_error_median": statistics.median(errors) if errors else None,
        "sizes": sizes,
    }


def main() -> int:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    points = [Point(RTT_MS, MBIT, "memwriter", size, "medium") for size in SIZES_MIB]
    run_grid(points, (POLICY,), repeats, RUNS, lambda line: print(line, flush=True), True)
    keys = {p.key for p in points}
    result = summary([r for r in read_rows(RUNS) if r["point"] in keys])
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
