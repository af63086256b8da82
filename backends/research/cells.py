"""What the report's sections share: the median and spread of a few runs, the 5% goal, and how
numbers are written into prose and table cells."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np

MiB = 2**20
NEAR = 0.05  # the goal's "within 5%" of another policy's downtime


def median_of(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread_of(xs: Sequence[float]) -> float:
    return (max(xs) - min(xs)) if len(xs) > 1 else 0.0


def cell(x: float | None, unit: str = "s") -> str:
    if x is None or x != x:  # NaN
        return "-"
    return f"{x:.2f} {unit}"


def mib(x: float) -> str:
    return f"{x / MiB:.1f} MiB"


def percent_cell(xs: Sequence[float], q: float) -> str:
    return f"{np.percentile(xs, q):.1%}" if xs else "-"


def quantile_cell(xs: Sequence[float], q: float) -> str:
    return f"{np.percentile(xs, q):.1f}" if xs else "-"


def p10_p90(ratios: Sequence[float]) -> str:
    low, high = np.percentile(ratios, [10, 90])
    return f"{low:.2f}-{high:.2f}"


def compared(ratio: float) -> str:
    if ratio < 1 - NEAR:
        return "shorter"
    return "longer" if ratio > 1 + NEAR else "the same within 5%"
