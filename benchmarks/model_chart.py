"""Chart predicted downtime against RTT for every policy, into docs/model.md.

Run: .venv/bin/python benchmarks/model_chart.py
It rewrites the part of docs/model.md between the chart markers (and prints it), so the
chart always shows what the code predicts. `--check` fails if the docs are out of date.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import plotext as plt

from whimbrel.backends.model import POLICIES, POLICY_MARKERS, ModelInputs, compare
from whimbrel.backends.units import format_duration

DOC = Path(__file__).resolve().parents[1] / "docs" / "model.md"
BEGIN, END = "<!-- model-chart:begin -->", "<!-- model-chart:end -->"

# A small, busy container: its start condition flips inside the RTT range shown.
SCENARIO = ModelInputs(
    size=32 * 2**20,
    dirty_rate=16 * 2**20,
    bandwidth=25e6,  # 200 Mbit/s
    rtt=0.0,
    dump_time=0.05,
    restore_time=0.2,
    downtime_target=0.5,
)
RTTS = np.linspace(0.0, 1.0, 41)
TABLE_RTTS = (0.0, 0.1, 0.3, 0.5, 0.7, 1.0)


def chart() -> str:
    plans = [compare(replace(SCENARIO, rtt=float(rtt))) for rtt in RTTS]
    plt.clear_figure()
    plt.theme("clear")
    plt.plotsize(96, 28)
    for policy in reversed(POLICIES):  # latency-aware drawn last, on top
        downtimes = [p[policy].downtime_s for p in plans]
        plt.plot((RTTS * 1e3).tolist(), downtimes, marker=POLICY_MARKERS[policy], label=policy)
    plt.title("predicted downtime vs RTT: 32 MiB, 16 MiB/s dirty, 200 Mbit/s, target 500 ms")
    plt.xlabel("RTT (ms)")
    plt.ylabel("downtime (s)")
    canvas = plt.uncolorize(plt.build())

    rows = ["| RTT | " + " | ".join(POLICIES) + " |", "|---" * (len(POLICIES) + 1) + "|"]
    for rtt in TABLE_RTTS:
        c = compare(replace(SCENARIO, rtt=rtt))
        cells = [
            f"{p.rounds} / {format_duration(p.downtime_s)} / {format_duration(p.total_time_s)}"
            for p in c.values()
        ]
        rows.append(f"| {format_duration(rtt) if rtt else '0'} | " + " | ".join(cells) + " |")
    return "\n".join(
        [
            BEGIN,
            "```text",
            "\n".join(line.rstrip() for line in canvas.splitlines()),
            "```",
            "",
            "Rounds / downtime / total time for each policy (same physics for all):",
            "",
            *rows,
            END,
        ]
    )


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    updated = head + chart() + tail
    if "--check" in argv:
        if updated != text:
            print(f"{DOC} is out of date: run benchmarks/model_chart.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(updated)
    print(chart())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
