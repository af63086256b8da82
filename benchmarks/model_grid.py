"""Time the vectorised latency-aware plan over a 200 x 200 (RTT x dirty rate) grid.

Run: .venv/bin/python benchmarks/model_grid.py
Prints the figure and writes it to bench-results/model_grid.json. The target is well under
50 ms per grid, so charts can redraw it on every input change.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from whimbrel.backends.model import ModelInputs, grid, plan

SIDE = 200
REPEATS = 50
BUDGET_MS = 50.0
SCALAR_SIDE = 20  # the per-point plan() loop is timed on a subsample
OUT = Path(__file__).resolve().parents[1] / "bench-results" / "model_grid.json"

BASE = ModelInputs(
    size=512 * 2**20,
    dirty_rate=8 * 2**20,
    bandwidth=25e6,  # 200 Mbit/s
    rtt=0.05,
    dump_time=0.05,
    restore_time=0.2,
)


def main() -> None:
    rtts = np.linspace(0.0, 0.5, SIDE)
    rates = np.linspace(0.0, 50 * 2**20, SIDE)
    grid(BASE, rtts, rates)  # warm-up: imports, allocator
    runs_ms = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = grid(BASE, rtts, rates)
        runs_ms.append((time.perf_counter() - start) * 1e3)

    sub_rtts, sub_rates = rtts[:: SIDE // SCALAR_SIDE], rates[:: SIDE // SCALAR_SIDE]
    start = time.perf_counter()
    for rtt in sub_rtts:
        for rate in sub_rates:
            plan(replace(BASE, rtt=float(rtt), dirty_rate=float(rate)))
    per_point_ms = (time.perf_counter() - start) * 1e3 / (len(sub_rtts) * len(sub_rates))

    best, median = min(runs_ms), statistics.median(runs_ms)
    figure = {
        "benchmark": "model_grid",
        "grid": [SIDE, SIDE],
        "points": SIDE * SIDE,
        "repeats": REPEATS,
        "best_ms": round(best, 3),
        "median_ms": round(median, 3),
        "budget_ms": BUDGET_MS,
        "within_budget": median < BUDGET_MS,
        "scalar_plan_ms_per_point": round(per_point_ms, 4),
        "scalar_grid_estimate_ms": round(per_point_ms * SIDE * SIDE, 1),
        "iterate_fraction": round(float(result.iterate.mean()), 4),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    print(
        f"model grid {SIDE}x{SIDE} ({SIDE * SIDE} plans, closed form): "
        f"median {median:.2f} ms, best {best:.2f} ms over {REPEATS} runs "
        f"(budget {BUDGET_MS:.0f} ms: {'ok' if median < BUDGET_MS else 'OVER'})"
    )
    print(
        f"step-by-step plan(): {per_point_ms:.3f} ms per point, "
        f"~{per_point_ms * SIDE * SIDE / 1e3:.1f} s for the same grid "
        f"({per_point_ms * SIDE * SIDE / median:.0f}x slower)"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figure, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
