"""Whether a run's place in its point's sequence, or its policy, makes its downtime or its
hand-over slower."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from whimbrel.backends.research.cells import median_of
from whimbrel.backends.research.points import ByField, HandOvers, PointSummary


def run_order_section(points: list[PointSummary], hand_overs: HandOvers) -> list[str]:
    """Whether a policy's downtime depends on where in a point's sequence it ran (first on a
    freshly started container, or after others): each run against its policy's median at its
    point, by position, wherever a policy ran at more than one position."""
    by_position: dict[int, list[float]] = defaultdict(list)
    for s in points:
        for policy, runs in s.runs.items():
            if len({r.get("position") for r in runs} - {None}) < 2:
                continue
            for r in runs:
                by_position[r["position"]].append(r["downtime_s"] / s.downtime(policy))
    out = [
        "## Run order",
        "",
        "At each point and repeat one freshly started container is moved by every policy in "
        "turn; repeat r runs them rotated by 2r (repeat 0: latency-aware first), so no policy "
        "is always first. Each run's downtime against its policy's median at its point, by how "
        "many migrations the container had made before it:",
        "",
    ]
    if not by_position:
        out += ["Not yet measurable: each policy ran at one position per point.", ""]
    else:
        out += [
            "| position | runs | downtime / policy's median (median) | p10 | p90 |",
            "| --- | --- | --- | --- | --- |",
        ]
        for position, ratios in sorted(by_position.items()):
            cells = [position, len(ratios)] + [
                f"{x:.2f}" for x in (median_of(ratios), *np.percentile(ratios, [10, 90]))
            ]
            out.append("| " + " | ".join(map(str, cells)) + " |")
        out.append("")
    if not hand_overs.by_position:
        return out
    return [
        *out,
        "The hand-over alone (freeze to commit less the final transfer: the same dump and "
        "restore of the same container whatever the policy) against the median of its point's "
        "pre-copy runs: median over the points of each workload, size and bandwidth (runs). "
        "Stop-and-copy is left out (its dump is the whole state). By position first (in repeat "
        "0 positions 0, 2, 3 and 4 are latency-aware, latency-blind, phaul and qemu, and the "
        "rotated repeats put other policies there), then by policy:",
        "",
        *_hand_over_table(hand_overs.by_position, "position "),
        *_hand_over_table(hand_overs.by_policy, ""),
    ]


def _hand_over_table(groups: ByField, label: str) -> list[str]:
    columns = sorted({c for g in groups.values() for c in g}, key=str)
    out = [
        "| points | " + " | ".join(f"{label}{c}" for c in columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    for (workload, size, bandwidth), by in sorted(groups.items()):
        cells = [f"{median_of(by[c]):.2f} ({len(by[c])})" if c in by else "-" for c in columns]
        out.append(f"| {workload} {size} MiB, {bandwidth} Mbit/s | " + " | ".join(cells) + " |")
    return [*out, ""]
