"""Downtime against RTT, a chart per workload, size, dirty rate and bandwidth, and a table per
grid point."""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import plotext as plt

from whimbrel.backends.model import POLICIES, POLICY_MARKERS
from whimbrel.backends.research.cells import MiB, cell, median_of, mib, spread_of
from whimbrel.backends.research.points import SC, PointSummary, final_bytes

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _chart(title: str, series: dict[str, list[tuple[float, float]]]) -> str:
    plt.clear_figure()
    plt.plotsize(72, 18)
    plt.theme("clear")
    drawn = [p for p in POLICIES if series.get(p)]
    for policy in reversed(drawn):  # latency-aware drawn last, on top
        xs, ys = zip(*sorted(series[policy]), strict=True)
        # No legend: it would hide the low-RTT points; the section names the letters.
        plt.plot(list(xs), list(ys), marker=POLICY_MARKERS[policy])
    rtts = sorted({x for p in drawn for x, _ in series[p]})
    plt.xticks(rtts, [f"{x:g}" for x in rtts])
    plt.title(title)
    plt.xlabel("RTT (ms)")
    plt.ylabel("downtime (s)")
    return _ANSI.sub("", plt.build())  # plain text in markdown


def charts_section(points: list[PointSummary]) -> list[str]:
    out = [
        "## Downtime against RTT, per policy",
        "",
        "Median downtime at each RTT. The pre-copy policies share a chart, one letter each ("
        + ", ".join(f"{POLICY_MARKERS[p]} {p}" for p in POLICIES if p != SC)
        + "); stop-and-copy, whose downtime carries the whole state, is given under it rather "
        "than drawn, as it would flatten the others into one line.",
        "",
    ]
    groups: dict[tuple, dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for s in points:
        r0 = s.first
        key = (r0["workload"], r0["size_mib"], r0.get("dirty") or "-", r0["bandwidth_mbit"])
        for policy in s.runs:
            groups[key][policy].append((r0["rtt_ms"], s.downtime(policy)))
    for (workload, size, dirty, bw), series in groups.items():
        title = f"{workload} {size} MiB, dirty {dirty}, {bw:g} Mbit/s"
        stop_and_copy = [y for _, y in series.pop(SC, [])]
        out += [f"### {title}", "", "```text", _chart(title, series), "```", ""]
        if stop_and_copy:
            low, high = min(stop_and_copy), max(stop_and_copy)
            out += [f"stop-and-copy (not drawn): {low:.2f}-{high:.2f} s over these RTTs.", ""]
    return out


def tables_section(points: list[PointSummary]) -> list[str]:
    out = ["## Every grid point", ""]
    for s in points:
        out += [
            f"### `{s.key}`",
            "",
            "| policy | downtime (median, spread) | predicted | total | rounds | final round "
            "| sent | brownout max | client gap |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for policy in POLICIES:
            rs = s.runs.get(policy)
            if not rs:
                continue
            dts = s.downtimes(policy)
            gaps = [r["client_longest_gap_s"] for r in rs if r.get("client_longest_gap_s")]
            out.append(
                f"| {policy} | {median_of(dts):.2f} s ({spread_of(dts):.2f}) | "
                f"{cell(s.median(policy, lambda r: r.get('predicted_downtime_s') or np.nan))} | "
                f"{cell(s.total(policy))} | {s.median(policy, 'rounds'):g} | "
                f"{mib(s.median(policy, final_bytes))} | "
                f"{s.median(policy, 'bytes_sent') / MiB:.0f} MiB | "
                f"{cell(max((max(r['brownouts_s'], default=0) for r in rs), default=0))} | "
                f"{cell(median_of(gaps)) if gaps else '-'} |"
            )
        out.append("")
    return out
