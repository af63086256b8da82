"""A grid point's runs summed up: per policy the median of its repeats, which policies beat or
dominate latency-aware beyond the run-to-run noise, and each run's hand-over against its
point's."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from whimbrel.backends.model import POLICIES
from whimbrel.backends.research.cells import NEAR, median_of, spread_of
from whimbrel.backends.research.runs import Row

LA, LB, SC = "latency-aware", "latency-blind", "stop-and-copy"


@dataclass(frozen=True)
class PointSummary:
    """One grid point: per policy, the median of its repeats."""

    key: str
    first: Row  # any run, for the point's settings
    runs: dict[str, list[Row]]

    def median(self, policy: str, field: str | Callable[[Row], float]) -> float:
        get = field if callable(field) else (lambda r: r[field])
        return median_of([get(r) for r in self.runs.get(policy, ())])

    def downtime(self, policy: str) -> float:
        return self.median(policy, "downtime_s")

    def total(self, policy: str) -> float:
        return self.median(policy, migration_s)

    def downtimes(self, policy: str) -> list[float]:
        return [r["downtime_s"] for r in self.runs[policy]]

    def spread(self, policy: str, other: str | None = None) -> float:
        """The larger run-to-run spread of downtime of this policy and the other (the best by
        default): only theirs can excuse a gap (stop-and-copy's seconds of spread say nothing
        of pre-copy's)."""
        return max(spread_of(self.downtimes(p)) for p in (policy, other or self.best))

    @property
    def complete(self) -> bool:
        """Every policy ran here (a grid stopped mid-point leaves some out)."""
        return set(self.runs) >= set(POLICIES)

    @property
    def repeats(self) -> int:
        return min(len(rs) for rs in self.runs.values())

    @property
    def best(self) -> str:
        return min(self.runs, key=self.downtime)

    def dominating(self, policy: str) -> list[str]:
        """Policies better in downtime and no worse in total time (the Pareto test)."""
        d, t = self.downtime(policy), self.total(policy)
        return [
            p
            for p in self.runs
            if p != policy
            and self.downtime(p) < d
            and self.total(p) <= t
            and (self.downtime(p), self.total(p)) != (d, t)
        ]

    def dominating_beyond_spread(self, policy: str) -> list[str]:
        """The dominating policies whose downtime is lower by more than the run-to-run spread
        of the two: the medians of a few runs order policies that tie within their noise."""
        d = self.downtime(policy)
        return [p for p in self.dominating(policy) if d - self.downtime(p) > self.spread(policy, p)]

    def beaten_by(self, policy: str) -> list[str]:
        """The policies whose downtime is below this one's by more than 5% and by more than
        the two policies' run-to-run spread, the largest gap first: judged pair by pair, so a
        noisy best policy cannot excuse a loss to a steady one."""
        d = self.downtime(policy)
        gaps = {p: d - self.downtime(p) for p in self.runs if p != policy}
        return sorted(
            (
                p
                for p, gap in gaps.items()
                if gap > NEAR * self.downtime(p) and gap > self.spread(policy, p)
            ),
            key=gaps.__getitem__,
            reverse=True,
        )

    def within(self, policy: str) -> bool:
        """Within 5% of the best policy's downtime, or behind others only by the noise."""
        return not self.beaten_by(policy)

    def within_five_percent(self, policy: str) -> bool:
        """The goal as written: within 5% of the best policy's downtime, noise or not."""
        return self.downtime(policy) <= (1 + NEAR) * self.downtime(self.best)


def migration_s(row: Row) -> float:
    """The migration proper, first round to commit: what the policy decides. The preflight
    (the same for every policy) is left out; old rows without the split use the whole."""
    return row.get("migration_s") or row["total_time_s"]


def final_bytes(row: Row) -> float:
    return (row.get("measured_rounds") or [{"bytes": float("nan")}])[-1]["bytes"]


def final_part(row: Row, key: str) -> float:
    return (row.get("measured_rounds") or [{}])[-1].get(key) or float("nan")


def hand_over(row: Row) -> float:
    """Freeze to commit less the final round's transfer: the dump, restore and round trips
    any policy pays, whatever its rounds left."""
    rounds = row.get("measured_rounds")
    return row["downtime_s"] - rounds[-1]["transfer_s"] if rounds else float("nan")


# Workload, state size (MiB) and bandwidth (Mbit/s): the points whose hand-overs compare.
Group = tuple[str, int, int]


# Per group, each pre-copy run's hand-over over its point's median, by a field of the run.
ByField = dict[Group, dict[Any, list[float]]]


# Hand-overs this much over their points' medians (at a position, or of a policy) explain a loss.
SLOW_HAND_OVER = 1.1


def group_of(s: PointSummary) -> Group:
    return s.first["workload"], s.first["size_mib"], s.first["bandwidth_mbit"]


def hand_over_ratios(s: PointSummary) -> list[tuple[Row, float]]:
    """Each pre-copy run's hand-over against the median of the point's pre-copy runs. The
    hand-over is the same final dump and restore of the same container whatever the policy,
    so a ratio off 1 is the run's draw, its place in the sequence, or its policy. (Stop-and-copy
    is left out: its dump is the whole state.)"""
    runs = [
        r
        for p, rs in s.runs.items()
        if p != SC
        for r in rs
        if r.get("measured_rounds") and r.get("position") is not None
    ]
    if not s.complete or len(runs) < 3:
        return []
    median = median_of([hand_over(r) for r in runs])
    return [(r, hand_over(r) / median) for r in runs]


@dataclass(frozen=True)
class HandOvers:
    """The hand-over ratios over every point, grouped by the points' workload, size and
    bandwidth, and within a group by the run's position (how many migrations the container had
    made before it: in repeat 0 each position is one policy, the rotated repeats separate the
    two) or by its policy."""

    by_position: ByField
    by_policy: ByField

    @classmethod
    def of(cls, points: list[PointSummary]) -> HandOvers:
        by: dict[str, ByField] = {
            key: defaultdict(lambda: defaultdict(list)) for key in ("position", "policy")
        }
        for s in points:
            for r, ratio in hand_over_ratios(s):
                for key, groups in by.items():
                    groups[group_of(s)][r[key]].append(ratio)
        return cls(by["position"], by["policy"])


def summaries(rows: list[Row]) -> list[PointSummary]:
    by_point: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_point[r["point"]][r["policy"]].append(r)
    found = [
        PointSummary(key, next(iter(runs.values()))[0], dict(runs))
        for key, runs in by_point.items()
    ]
    return sorted(found, key=lambda s: _order(s.first))


def _order(row: Row) -> tuple:
    return (
        row["workload"],
        row["size_mib"],
        row["bandwidth_mbit"],
        ["low", "medium", "high", None].index(row.get("dirty")),
        row["rtt_ms"],
    )
