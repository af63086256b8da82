"""The benchmark report (`docs/benchmark.md`), made from the runs `whimbrel bench` recorded:
the goals checked point by point, where latency-aware loses and why, prediction error before
and after calibration, the calibrated constants, downtime against RTT per policy, and a table
per grid point. Pure: rows in, markdown (and the fitted costs) out."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import plotext as plt

from whimbrel.backends.calibration import Calibration, Estimate, RoundRecord, calibrate
from whimbrel.backends.costs import Costs
from whimbrel.backends.model import POLICIES, POLICY_MARKERS, Plan, evaluate

Row = dict[str, Any]
LA, LB, SC = "latency-aware", "latency-blind", "stop-and-copy"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
MiB = 2**20
NEAR = 0.05  # the "within 5%" of another policy's downtime


def _median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _spread(xs: Sequence[float]) -> float:
    return (max(xs) - min(xs)) if len(xs) > 1 else 0.0


def _fmt(x: float | None, unit: str = "s") -> str:
    if x is None or x != x:  # NaN
        return "-"
    return f"{x:.2f} {unit}"


def _mb(x: float) -> str:
    return f"{x / MiB:.1f} MiB"


def records(rows: Iterable[Row]) -> list[RoundRecord]:
    """Every measured round of these runs, for the fits."""
    known = {f.name for f in fields(RoundRecord)}
    return [
        RoundRecord(**{k: v for k, v in r.items() if k in known}, index=i)
        for row in rows
        for i, r in enumerate(row.get("measured_rounds") or ())
    ]


def probed_bandwidth(row: Row) -> float:
    """The path's throughput as the preflight probed it, which every round records. (A run's
    inputs hold the model's B: that less the stream's own per-byte work, from the costs.)"""
    rounds = row.get("measured_rounds")
    return rounds[0]["throughput"] if rounds else row["inputs"]["bandwidth"]


def predict(row: Row, costs: Costs, rounds: int | None = None) -> Plan | None:
    """What the model with `costs` predicts for this run's measured link and container, with
    the rounds the run made (or `rounds`)."""
    inputs = row.get("inputs")
    if not inputs:
        return None
    n = row["rounds"] if rounds is None else rounds
    model_inputs = costs.model_inputs(
        size=inputs["size"], dirty_rate=inputs["dirty_rate"], bandwidth=probed_bandwidth(row),
        rtt=inputs["rtt"], downtime_target=inputs["downtime_target"],
        max_rounds=max(inputs["max_rounds"], n),
    )  # fmt: skip
    return evaluate(model_inputs, n)


def cross_validated(rows: list[Row]) -> list[tuple[Row, Plan]]:
    """Each run predicted by costs fitted to the other grid points' runs only (leave one
    point out), so the calibrated error is not the fit's own residual."""
    out = []
    by_point: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_point[r["point"]].append(r)
    for point, runs in by_point.items():
        others = [r for r in rows if r["point"] != point]
        if not others:
            continue
        costs = calibrate(records(others)).costs()
        out += [(r, p) for r in runs if (p := predict(r, costs)) is not None]
    return out


@dataclass(frozen=True)
class PointSummary:
    """One grid point: per policy, the median of its repeats."""

    key: str
    first: Row  # any run, for the point's settings
    runs: dict[str, list[Row]]

    def median(self, policy: str, field: str | Callable[[Row], float]) -> float:
        get = field if callable(field) else (lambda r: r[field])
        return _median([get(r) for r in self.runs.get(policy, ())])

    def downtime(self, policy: str) -> float:
        return self.median(policy, "downtime_s")

    def total(self, policy: str) -> float:
        return self.median(policy, _migration_s)

    def downtimes(self, policy: str) -> list[float]:
        return [r["downtime_s"] for r in self.runs[policy]]

    def spread(self, policy: str, other: str | None = None) -> float:
        """The larger run-to-run spread of downtime of this policy and the other (the best by
        default): only theirs can excuse a gap (stop-and-copy's seconds of spread say nothing
        of pre-copy's)."""
        return max(_spread(self.downtimes(p)) for p in (policy, other or self.best))

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
            p for p in self.runs
            if p != policy and self.downtime(p) < d and self.total(p) <= t
            and (self.downtime(p), self.total(p)) != (d, t)
        ]  # fmt: skip

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
            (p for p, gap in gaps.items()
             if gap > NEAR * self.downtime(p) and gap > self.spread(policy, p)),
            key=gaps.__getitem__, reverse=True,
        )  # fmt: skip

    def within(self, policy: str) -> bool:
        """Within 5% of the best policy's downtime, or behind others only by the noise."""
        return not self.beaten_by(policy)

    def within_five_percent(self, policy: str) -> bool:
        """The goal as written: within 5% of the best policy's downtime, noise or not."""
        return self.downtime(policy) <= (1 + NEAR) * self.downtime(self.best)


def _migration_s(row: Row) -> float:
    """The migration proper, first round to commit: what the policy decides. The preflight
    (the same for every policy) is left out; old rows without the split use the whole."""
    return row.get("migration_s") or row["total_time_s"]


def _final_bytes(row: Row) -> float:
    return (row.get("measured_rounds") or [{"bytes": float("nan")}])[-1]["bytes"]


def _final_part(row: Row, key: str) -> float:
    return (row.get("measured_rounds") or [{}])[-1].get(key) or float("nan")


def _hand_over(row: Row) -> float:
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


def _group(s: PointSummary) -> Group:
    return s.first["workload"], s.first["size_mib"], s.first["bandwidth_mbit"]


def _hand_over_ratios(s: PointSummary) -> list[tuple[Row, float]]:
    """Each pre-copy run's hand-over against the median of the point's pre-copy runs. The
    hand-over is the same final dump and restore of the same container whatever the policy,
    so a ratio off 1 is the run's draw, its place in the sequence, or its policy. (Stop-and-copy
    is left out: its dump is the whole state.)"""
    runs = [
        r for p, rs in s.runs.items() if p != SC
        for r in rs if r.get("measured_rounds") and r.get("position") is not None
    ]  # fmt: skip
    if not s.complete or len(runs) < 3:
        return []
    median = _median([_hand_over(r) for r in runs])
    return [(r, _hand_over(r) / median) for r in runs]


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
            for r, ratio in _hand_over_ratios(s):
                for key, groups in by.items():
                    groups[_group(s)][r[key]].append(ratio)
        return cls(by["position"], by["policy"])


def summaries(rows: list[Row]) -> list[PointSummary]:
    by_point: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_point[r["point"]][r["policy"]].append(r)
    found = [PointSummary(key, next(iter(runs.values()))[0], dict(runs))
             for key, runs in by_point.items()]  # fmt: skip
    return sorted(found, key=lambda s: _order(s.first))


def _order(row: Row) -> tuple:
    return (row["workload"], row["size_mib"], row["bandwidth_mbit"],
            ["low", "medium", "high", None].index(row.get("dirty")), row["rtt_ms"])  # fmt: skip


def explain_loss(s: PointSummary, other: str, hand_overs: HandOvers) -> str:
    """Why latency-aware's downtime is above `other`'s here, from what the runs measured and
    from `hand_overs`: whether latency-aware ran where hand-overs run slow, or its own run slow
    wherever it ran."""
    la_n, ot_n = s.median(LA, "rounds"), s.median(other, "rounds")
    la_v, ot_v = s.median(LA, _final_bytes), s.median(other, _final_bytes)
    bandwidth = s.median(LA, lambda r: probed_bandwidth(r) if r.get("inputs") else np.nan)
    gap = s.downtime(LA) - s.downtime(other)
    text = (
        f"latency-aware made {la_n:g} pre-copy rounds and its final round sent {_mb(la_v)}; "
        f"{other} made {ot_n:g} and sent {_mb(ot_v)}. "
    )
    extra = (la_v - ot_v) / bandwidth if bandwidth == bandwidth else 0.0
    if extra >= 0.5 * gap:
        text += (
            f"The {_mb(la_v - ot_v)} more latency-aware left for the final round take "
            f"{extra:.2f} s at the measured {bandwidth * 8 / 1e6:.0f} Mbit/s, of the {gap:.2f} s "
            + (
                "gap: it stopped iterating earlier, its model putting the residual within the "
                "5% floor tolerance while more rounds still took a little off." + _misplanned(s)
                if la_n < ot_n
                else "gap: with as many rounds, its last one left more dirty (the runs' dirty "
                "sets differ by that much)."
            )
        )
    else:
        parts = [
            f"{name} {s.median(LA, lambda r, k=key: _final_part(r, k)):.2f} s against "
            f"{s.median(other, lambda r, k=key: _final_part(r, k)):.2f} s"
            for name, key in (("dump", "dump_s"), ("restore", "restore_s"))
        ]
        text += (
            f"What the final rounds carried explains {max(extra, 0.0):.2f} s of the {gap:.2f} s "
            f"gap; the rest is in the hand-over's fixed part ({', '.join(parts)}), not in the "
            "choice of rounds" + _fixed_part_cause(s, other, hand_overs)
        )
    return text


def _fixed_part_cause(s: PointSummary, other: str, hand_overs: HandOvers) -> str:
    """What the hand-overs across the points of this workload, size and bandwidth say of
    latency-aware's slower one here: its run order, its policy, or this point's draws."""
    slow_position = _slow_position(s, hand_overs.by_position)
    if slow_position or s.repeats < 2:
        return slow_position or ": one repeat cannot tell it from noise."
    group = hand_overs.by_policy.get(_group(s), {})
    here = {p: [x for r, x in _hand_over_ratios(s) if r["policy"] == p] for p in (LA, other)}
    overall = {p: group.get(p, []) for p in (LA, other)}
    if any(len(overall[p]) <= len(here[p]) for p in here):  # no other point to compare with
        return "."
    where = "the {} {} MiB points at {} Mbit/s".format(*_group(s))
    if _median(overall[LA]) >= SLOW_HAND_OVER:
        return (
            f": latency-aware's hand-overs run {_median(overall[LA]):.2f}x their point's median "
            f"over {where} ({len(overall[LA])} runs; see Run order): its own hand-over is slower."
        )
    return (
        f": against the median of the point's pre-copy runs, latency-aware's hand-overs ran "
        f"{_median(here[LA]):.2f}x here and {other}'s {_median(here[other]):.2f}x, while over "
        f"{where} they run {_median(overall[LA]):.2f}x and {_median(overall[other]):.2f}x "
        f"({len(overall[LA])} and {len(overall[other])} runs; see Run order): the draws at this "
        "point, not the policies."
    )


def _slow_position(s: PointSummary, by_position: ByField) -> str:
    """Where latency-aware's runs here sat at positions whose hand-overs ran slow across the
    points of this workload, size and bandwidth, say so: the loss is the run order's."""
    group = by_position.get(_group(s), {})
    positions = sorted({r.get("position") for r in s.runs[LA]} - {None})
    measured = [p for p in positions if len(group.get(p, ())) >= 2]
    slow = [_median(group[p]) for p in measured]
    if not slow or _median(slow) < SLOW_HAND_OVER:
        return ""
    where = (
        "was the first to move the freshly started container here"
        if positions == [0]
        else f"ran at position {'/'.join(map(str, positions))} here"
    )
    workload, size, bandwidth = _group(s)
    runs = min(len(group[p]) for p in measured)
    return (
        f": latency-aware {where}, and the hand-overs at that position over the {workload} "
        f"{size} MiB points at {bandwidth} Mbit/s ran {_median(slow):.2f}x their point's median "
        f"({runs} runs; see Run order)."
    )


# A plan this far from its measurement (either way) held the residual against a wrong floor.
MISPLANNED = 1.5


def _misplanned(s: PointSummary) -> str:
    """Where latency-aware's first plan was far off its measured downtime, say so: the floor
    it stopped within 5% of was the plan's, not the one the runs met."""
    planned = s.median(LA, lambda r: r.get("predicted_downtime_s") or np.nan)
    ratio = planned / s.downtime(LA)
    if 1 / MISPLANNED <= ratio <= MISPLANNED:
        return ""
    return (
        f" It planned {planned:.2f} s of downtime and had {s.downtime(LA):.2f} s: the costs it "
        f"planned with (backends/costs.json when it ran) {'over' if ratio > 1 else 'under'}"
        f"stated the hand-over {max(ratio, 1 / ratio):.1f}-fold, so the residual was weighed "
        "against that floor; later runs plan with the costs refitted from these."
    )


@dataclass(frozen=True)
class EarlierPath:
    """Runs measured on a data path since replaced, kept to compare point by point."""

    data: str  # its runs' file
    title: str
    what: str  # what it did that the current path does not


# Oldest first. The runs stay in their files; the report compares the points both measured.
EARLIER_PATHS = (
    EarlierPath(
        "docs/benchmark-runs-one-stream.jsonl",
        "one SSH stream, opened after the freeze",
        "one SSH channel, whose 2 MiB window capped every round at 2 MiB per round trip, and "
        "the final round's session opened after the freeze (its start was downtime)",
    ),
    EarlierPath(
        "docs/benchmark-runs-session-per-round.jsonl",
        "striped, but sessions opened for every round",
        "striped rounds, but every pre-copy round opened its own sessions (a round trip each, "
        "and a receiver started per stripe: 1.3 s a round at 200 ms), and the hand-over opened "
        "its own after the last round, while the container went on dirtying pages",
    ),
    EarlierPath(
        "docs/benchmark-runs-copied-final.jsonl",
        "rounds staged apart from the container, freed memory handed to the VM's host",
        "the pre-copy rounds received in the receiver's own temp dir, another mount than the "
        "target container's, so the final round copied the whole state into the container "
        "inside the downtime (1.5 s at 1 GiB); the final dump hashed on one core (0.6 s at "
        "1 GiB, 0.35 s on two); and the lab's VM reporting freed memory to its host, so a "
        "restore filled the container's memory at the host's pace (the same 1 GiB in 0.8 s "
        "or 3.1 s, by chance)",
    ),
)
# What the current path does that the earlier ones did not, for the comparisons.
CURRENT_PATH = (
    "every round goes over the stripes the RTT needs, the pre-copy rounds share one set of "
    "sessions, the hand-over's sessions are open, the receiver ready, from the first round on; "
    "the rounds are received where the restore reads them, the dump is hashed on every core, "
    "and the lab keeps the memory it frees"
)


def report(
    rows: list[Row], command: str, data: str = "docs/benchmark-runs.jsonl", grid: int | None = None,
    earlier: Sequence[tuple[EarlierPath, list[Row]]] = (),
) -> str:  # fmt: skip
    """The markdown report; `grid` is how many points the whole grid has, when known;
    `earlier` the runs of data paths since replaced, each compared with these."""
    ok = [r for r in rows if r["ok"]]
    failed = [r for r in rows if not r["ok"]]
    points = summaries(ok)
    calibration = calibrate(records(ok))
    out = _header(rows, failed, points, command, data, grid)
    out += _glance(points)
    out += _claim(points)
    out += _goals(points)
    hand_overs = HandOvers.of(points)
    out += _losses(points, hand_overs)
    out += _versus_blind(points, calibration.costs())
    for path, before in earlier:
        out += _earlier(points, summaries([r for r in before if r["ok"]]), path)
    out += _run_order(points, hand_overs)
    out += _prediction(ok)
    out += _constants(calibration)
    out += _charts(points)
    out += _tables(points)
    if failed:
        out += ["## Failed runs", ""]
        out += [f"- `{r['point']}` {r['policy']} #{r['repeat']}: {r['error']}" for r in failed]
        out.append("")
    return "\n".join(out)


def _header(rows: list[Row], failed: list[Row], points: list[PointSummary], command: str,
            data: str, grid: int | None) -> list[str]:  # fmt: skip
    complete = [s for s in points if s.complete]
    repeats = sorted({s.repeats for s in complete})
    return [
        "# whimbrel benchmark: latency-aware iteration against the other policies",
        "",
        f"Generated by `{command}` from {len(rows)} recorded runs ({len(failed)} failed): "
        f"{len(complete)} grid points{f' (of {grid})' if grid else ''} with every policy, "
        "repeats per point "
        f"{'/'.join(map(str, repeats)) or '-'}. Every run is a real migration on the lab "
        "(east-1 <-> west-1 across the emulated WAN, one container going back and forth); "
        "downtime is measured by the source node's hand-over agent from the freeze to the "
        f"target's commit. Data, one JSON line a run: `{data}`. Total time below is the "
        "migration proper (first round to commit); the preflight (resolve, link, probes: the "
        "same for every policy) is in the data as `preflight_s`.",
        "",
    ]


def _glance(points: list[PointSummary]) -> list[str]:
    complete = [s for s in points if s.complete]
    out = [
        "## The policies at a glance",
        "",
        f"Over the {len(complete)} points every policy ran: how often each had the least "
        "downtime and how often it came within 5% of it, its downtime and migration time "
        "against the best at each point (median over points), and its rounds.",
        "",
        "| policy | least downtime at | within 5% of the least at | downtime / best "
        "| migration time / fastest | rounds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for policy in POLICIES:
        if not complete:
            break
        wins = sum(s.best == policy for s in complete)
        near = sum(s.within_five_percent(policy) for s in complete)
        dt = _median([s.downtime(policy) / s.downtime(s.best) for s in complete])
        fastest = [min(s.total(p) for p in POLICIES) for s in complete]
        tt = _median([s.total(policy) / f for s, f in zip(complete, fastest, strict=True)])
        rounds = _median([s.median(policy, "rounds") for s in complete])
        out.append(f"| {policy} | {wins} | {near} | {dt:.2f} | {tt:.2f} | {rounds:g} |")
    return [*out, ""]


def _claim(points: list[PointSummary]) -> list[str]:
    """The seed paper's claim, latency-aware against latency-blind, RTT by RTT."""
    by_rtt: dict[float, list[PointSummary]] = defaultdict(list)
    for s in points:
        if s.complete:
            by_rtt[s.first["rtt_ms"]].append(s)
    out = [
        "## The claim, measured: latency-aware against latency-blind, by RTT",
        "",
        "The seed paper: taking the RTT into account when deciding to start and stop iterating "
        "shortens the downtime. Latency-aware's downtime and migration time as a share of "
        "latency-blind's at each RTT (median over the points there, p10-p90 across them), and "
        "the rounds each made (median).",
        "",
        "| RTT | points | downtime LA / LB | p10-p90 | migration time LA / LB | p10-p90 | "
        "rounds LA / LB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rtt, here in sorted(by_rtt.items()):
        down = [s.downtime(LA) / s.downtime(LB) for s in here]
        total = [s.total(LA) / s.total(LB) for s in here]
        rounds = [_median([s.median(p, "rounds") for s in here]) for p in (LA, LB)]
        out.append(
            f"| {rtt:g} ms | {len(here)} | {_median(down):.2f} | {_range(down)} | "
            f"{_median(total):.2f} | {_range(total)} | "
            f"{rounds[0]:g} / {rounds[1]:g} |"
        )
    far = [s for rtt, here in by_rtt.items() if rtt >= 100 for s in here]
    if far:
        down = _median([s.downtime(LA) / s.downtime(LB) for s in far])
        total = _median([s.total(LA) / s.total(LB) for s in far])
        out += ["", (
            f"At RTT >= 100 ms ({len(far)} points) latency-aware's downtime is {down:.0%} of "
            f"latency-blind's ({_compared(down)}) and its migration time {total:.0%} "
            f"({_compared(total)})."
        )]  # fmt: skip
    return [*out, ""]


def _range(ratios: Sequence[float]) -> str:
    low, high = np.percentile(ratios, [10, 90])
    return f"{low:.2f}-{high:.2f}"


def _compared(ratio: float) -> str:
    if ratio < 1 - NEAR:
        return "shorter"
    return "longer" if ratio > 1 + NEAR else "the same within 5%"


def _goals(points: list[PointSummary]) -> list[str]:
    scored = [s for s in points if s.complete]
    front = [s for s in scored if not s.dominating(LA)]
    near_front = [s for s in scored if not s.dominating_beyond_spread(LA)]
    near = [s for s in scored if s.within(LA)]
    strict = [s for s in scored if s.within_five_percent(LA)]
    out = [
        "## Goals, checked",
        "",
        f"- latency-aware on the Pareto front of (downtime, total time): **{len(front)} of "
        f"{len(scored)}** points. Of the {len(scored) - len(front)} where another policy "
        "dominates it, that policy's downtime is lower by more than the two policies' "
        f"run-to-run spread at **{len(scored) - len(near_front)}** (the table marks the "
        'others "within spread").',
        f"- latency-aware's downtime within 5% of the best policy's: **{len(strict)} of "
        f"{len(scored)}** points. Counting a gap no larger than the two policies' run-to-run "
        f"spread as a tie (pair by pair): **{len(near)} of {len(scored)}** (the table marks "
        'those "within spread").',
        "",
        *_run_to_run(scored),
        "| point | latency-aware | best (policy) | spread | repeats | Pareto | within 5% |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in scored:
        beyond = s.dominating_beyond_spread(LA)
        dominated = [p if p in beyond else f"{p} (within spread)" for p in s.dominating(LA)]
        out.append(
            f"| `{s.key}` | {s.downtime(LA):.2f} s | {s.downtime(s.best):.2f} s ({s.best}) | "
            f"{s.spread(LA):.2f} s | {s.repeats} | "
            f"{'yes' if not dominated else 'no: ' + ', '.join(dominated)} | "
            f"{_within_cell(s)} |"
        )
    return [*out, ""]


def _within_cell(s: PointSummary) -> str:
    if s.within_five_percent(LA):
        return "yes"
    return "within spread" if s.within(LA) else "NO"


def _run_to_run(points: list[PointSummary]) -> list[str]:
    """How far one run is from the next at the same point: the noise a 5% goal is judged in."""
    repeated = [s for s in points if s.repeats >= 2]
    if not repeated:
        return []
    pre_copy = [p for p in POLICIES if p != SC]
    spreads = [_spread(s.downtimes(p)) / s.downtime(p) for s in repeated for p in pre_copy]
    same = 0
    for s in repeated:
        by_repeat = {p: {r["repeat"]: r["downtime_s"] for r in s.runs[p]} for p in pre_copy}
        shared = set.intersection(*map(set, by_repeat.values()))
        same += len({min(pre_copy, key=lambda p: by_repeat[p][k]) for k in shared}) == 1
    return [
        f"Run to run ({len(repeated)} points with 2 or more repeats): a pre-copy policy's "
        f"downtime spread (max - min) is {_median(spreads):.0%} of its median at a point "
        f"(median; p90 {np.percentile(spreads, 90):.0%}), and the pre-copy policy with the "
        f"least downtime was the same in every repeat at {same} of {len(repeated)} points.",
        "",
    ]


def _losses(points: list[PointSummary], hand_overs: HandOvers) -> list[str]:
    out = ["## Where latency-aware loses, and why", ""]
    scored = [s for s in points if s.complete]
    losing = [(s, beaten_by[0]) for s in scored if (beaten_by := s.beaten_by(LA))]
    if scored:
        # A yardstick for latency-aware's count: policies that tie within the noise get flagged too.
        counts = [f"{p} at {sum(not s.within(p) for s in scored)}" for p in POLICIES]
        out += [
            "The same test (another policy's downtime lower by more than 5% and by more than "
            "the two policies' run-to-run spread) applied to each policy in turn flags "
            f"{', '.join(counts)} of the {len(scored)} points.",
            "",
        ]
    if not losing:
        return [*out, "Nowhere by more than 5% or the run-to-run spread.", ""]
    for s, other in losing:
        gap = s.downtime(LA) - s.downtime(other)
        out.append(
            f"- `{s.key}`: {s.downtime(LA):.2f} s against {other}'s {s.downtime(other):.2f} s "
            f"(+{gap:.2f} s, spread {s.spread(LA, other):.2f} s over {s.repeats} repeat(s)). "
            + explain_loss(s, other, hand_overs)
        )
    return [*out, ""]


def _measured_floor(s: PointSummary) -> float:
    """The least downtime the runs here show possible: the least hand-over without its
    transfer (freeze, dump, restore, commit) any pre-copy run had, plus the least final
    transfer any had (latency-blind and phaul iterate to 12 rounds, where the residual has
    long stopped shrinking). No run got under it; the two minima may come from different runs,
    so it is a lower bound, not a run."""
    finals = [
        (_hand_over(r), r["measured_rounds"][-1]["transfer_s"])
        for p, runs in s.runs.items() if p != SC
        for r in runs if r.get("measured_rounds")
    ]  # fmt: skip
    if not finals:
        return float("nan")
    return min(h for h, _ in finals) + min(t for _, t in finals)


def _versus_blind(points: list[PointSummary], costs: Costs) -> list[str]:
    out = [
        "## Latency-aware against latency-blind where RTT >= 100 ms and the dirty rate is high",
        "",
        "Goal: downtime at least 30% below latency-blind's, or the physics shows why not. A "
        "downtime is the hand-over (freeze, dump, restore, commit: paid whatever the rounds) "
        "plus sending the residual the last round left, which no number of rounds takes under "
        "what the container dirties while a round's fixed costs run. The measured floor adds "
        "the least of each any pre-copy run here had (a lower bound: no run got under it); the "
        "model's floor (calibrated costs, the run's link and dirty rate, `dump + V*/B + j*RTT + "
        "restore`) is shown beside it. Where 70% of latency-blind's downtime lies under the "
        "measured floor, no policy can be 30% below it.",
        "",
        "| point | latency-aware | latency-blind | below | 70% of LB | measured floor | "
        "model floor | verdict | rounds LA / LB | total LA / LB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [
        s for s in points
        if {LA, LB} <= set(s.runs) and s.first["rtt_ms"] >= 100 and s.first.get("dirty") == "high"
    ]  # fmt: skip
    for s in rows:
        la, lb = s.downtime(LA), s.downtime(LB)
        model_floor = _median(
            [p.floor_downtime_s for r in s.runs[LA] if (p := predict(r, costs, 1))]
        )
        floor = _measured_floor(s)
        if la <= 0.7 * lb:
            verdict = "met"
        elif floor >= 0.7 * lb:
            verdict = "forbidden: 70% of LB is under the measured floor"
        else:
            verdict = "MISSED"
        out.append(
            f"| `{s.key}` | {la:.2f} s | {lb:.2f} s | {1 - la / lb:.0%} | {0.7 * lb:.2f} s | "
            f"{_fmt(floor)} | {_fmt(model_floor)} | {verdict} | {s.median(LA, 'rounds'):g} / "
            f"{s.median(LB, 'rounds'):g} | {s.total(LA):.1f} / {s.total(LB):.1f} s |"
        )
    if not rows:
        out.append("| (no such point measured yet) | | | | | | | | | |")
    return [*out, ""]


def _earlier(
    points: list[PointSummary], before: list[PointSummary], path: EarlierPath
) -> list[str]:
    out = [
        f"## An earlier data path: {path.title}",
        "",
        f"The same points measured on an earlier data path (`{path.data}`): {path.what}. Now "
        f"{CURRENT_PATH}. Medians, then / now; stop-and-copy shows the path itself (the whole "
        "state in one final round).",
        "",
        "| point | streams | stop-and-copy downtime | latency-aware downtime | "
        "latency-aware migration time | latency-aware rounds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    now = {s.key: s for s in points}
    pairs = [(b, now[b.key]) for b in before if b.complete and b.key in now and now[b.key].complete]
    for b, s in pairs:
        streams = max((r.get("stripes") or 1 for rs in s.runs.values() for r in rs), default=1)
        out.append(
            f"| `{s.key}` | {streams} | {b.downtime(SC):.2f} / {s.downtime(SC):.2f} s | "
            f"{b.downtime(LA):.2f} / {s.downtime(LA):.2f} s | "
            f"{b.total(LA):.1f} / {s.total(LA):.1f} s | "
            f"{b.median(LA, 'rounds'):g} / {s.median(LA, 'rounds'):g} |"
        )
    if not pairs:
        out.append("| (no point measured both ways yet) | | | | | |")
    return [*out, ""]


def _run_order(points: list[PointSummary], hand_overs: HandOvers) -> list[str]:
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
        out += ["| position | runs | downtime / policy's median (median) | p10 | p90 |",
                "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for position, ratios in sorted(by_position.items()):
            cells = [position, len(ratios)] + [
                f"{x:.2f}" for x in (_median(ratios), *np.percentile(ratios, [10, 90]))
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
        cells = [f"{_median(by[c]):.2f} ({len(by[c])})" if c in by else "-" for c in columns]
        out.append(f"| {workload} {size} MiB, {bandwidth} Mbit/s | " + " | ".join(cells) + " |")
    return [*out, ""]


def _errors(pairs: Iterable[tuple[float | None, float | None]]) -> list[float]:
    return [abs(p - m) / m for p, m in pairs if p is not None and m]


def _prediction(ok: list[Row]) -> list[str]:
    validated = cross_validated(ok)
    lines = {
        "downtime, first plan (the engine's costs at the time of the run)": _errors(
            (r.get("predicted_downtime_s"), r["downtime_s"]) for r in ok
        ),
        "downtime, last re-plan before the final round": _errors(
            (r.get("replanned_downtime_s"), r["downtime_s"]) for r in ok
        ),
        "downtime, calibrated (leave one point out; goal: median <= 15%)": _errors(
            (p.downtime_s, r["downtime_s"]) for r, p in validated
        ),
        "migration time, calibrated (leave one point out)": _errors(
            (p.total_time_s, r.get("migration_s")) for r, p in validated
        ),
    }
    out = [
        "## Prediction error",
        "",
        "Relative error |predicted - measured| / measured. The calibrated rows predict each run "
        "with the rounds it made, from costs fitted to every other grid point's runs.",
        "",
        "| | median | 90th percentile | runs |",
        "| --- | --- | --- | --- |",
    ]
    for name, errs in lines.items():
        out.append(f"| {name} | {_pct(errs, 50)} | {_pct(errs, 90)} | {len(errs)} |")
    for policy in (LA, None):
        diffs = [
            abs(r["predicted_rounds"] - r["rounds"]) for r in ok
            if r.get("predicted_rounds") is not None and policy in (None, r["policy"])
        ]  # fmt: skip
        who = policy or "every policy"
        out.append(
            f"| rounds, first plan against made ({who}; absolute) | {_q(diffs, 50)} | "
            f"{_q(diffs, 90)} | {len(diffs)} |"
        )
    return [*out, ""]


CONSTANTS = {  # Calibration field: (what it is, Costs field, unit)
    "round_trips": ("k, round trips per pre-copy round", "round_trips", ""),
    "round_fixed": ("c0, a pre-copy round's fixed work", "round_fixed_s", "s"),
    "first_round_fixed": ("e0, round 0's work beyond a later round's", "first_round_s", "s"),
    "first_round_trips": (
        "e1, round 0's round trips beyond a later round's",
        "first_round_trips",
        "",
    ),
    "scan_rate": ("per-round scan of the whole state", "scan_rate", "B/s"),
    "dump_time": ("dump, fixed", "dump_time_s", "s"),
    "dump_rate": ("dump rate (full dump of the state)", "dump_rate", "B/s"),
    "restore_time": ("hand-over, fixed (pause, restore, commit)", "restore_time_s", "s"),
    "restore_rate": ("restore rate (grows with the state)", "restore_rate", "B/s"),
    "final_round_trips": ("j, round trips inside the downtime", "final_round_trips", ""),
    "stream_rate": ("a stream's own work beyond the wire", "stream_rate", "B/s"),
}


def _constants(calibration: Calibration) -> list[str]:
    out = [
        "## Calibrated constants",
        "",
        "Least squares over every measured round (a time that cannot be told apart or fits "
        "negative is left at its default). `whimbrel bench report` writes them to "
        "`backends/costs.json`, which the engine and the console's preview plan from.",
        "",
        "| constant | value | standard error | residual spread | rounds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, (what, _, unit) in CONSTANTS.items():
        e: Estimate | None = getattr(calibration, name)
        if e is not None:
            out.append(f"| {what} | {e.value:.4g} {unit} | {e.stderr:.3g} | "
                       f"{e.residual_std:.3g} s | {e.samples} |")  # fmt: skip
        else:
            out.append(f"| {what} | (not determined: default kept) | | | |")
    return [*out, ""]


def spread_record(calibration: Calibration) -> dict[str, Any]:
    """Each fitted constant's standard error and residual spread, for costs.json."""
    return {
        costs_field: {"stderr": e.stderr, "residual_std": e.residual_std, "samples": e.samples}
        for name, (_, costs_field, _) in CONSTANTS.items()
        if (e := getattr(calibration, name)) is not None
    }


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


def _charts(points: list[PointSummary]) -> list[str]:
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


def _tables(points: list[PointSummary]) -> list[str]:
    out = ["## Every grid point", ""]
    for s in points:
        out += [f"### `{s.key}`", "",
                "| policy | downtime (median, spread) | predicted | total | rounds | final round "
                "| sent | brownout max | client gap |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for policy in POLICIES:
            rs = s.runs.get(policy)
            if not rs:
                continue
            dts = s.downtimes(policy)
            gaps = [r["client_longest_gap_s"] for r in rs if r.get("client_longest_gap_s")]
            out.append(
                f"| {policy} | {_median(dts):.2f} s ({_spread(dts):.2f}) | "
                f"{_fmt(s.median(policy, lambda r: r.get('predicted_downtime_s') or np.nan))} | "
                f"{_fmt(s.total(policy))} | {s.median(policy, 'rounds'):g} | "
                f"{_mb(s.median(policy, _final_bytes))} | "
                f"{s.median(policy, 'bytes_sent') / MiB:.0f} MiB | "
                f"{_fmt(max((max(r['brownouts_s'], default=0) for r in rs), default=0))} | "
                f"{_fmt(_median(gaps)) if gaps else '-'} |"
            )
        out.append("")
    return out


def _pct(xs: Sequence[float], q: float) -> str:
    return f"{np.percentile(xs, q):.1%}" if xs else "-"


def _q(xs: Sequence[float], q: float) -> str:
    return f"{np.percentile(xs, q):.1f}" if xs else "-"
