"""Where latency-aware's downtime is beaten, and why: what the final rounds carried, the
hand-over's fixed part, the run order, or a plan far off its measurement."""

from __future__ import annotations

import numpy as np

from whimbrel.backends.model import POLICIES
from whimbrel.backends.research.cells import median_of, mib
from whimbrel.backends.research.points import (
    LA,
    SLOW_HAND_OVER,
    ByField,
    HandOvers,
    PointSummary,
    final_bytes,
    final_part,
    group_of,
    hand_over_ratios,
)
from whimbrel.backends.research.runs import probed_bandwidth


def explain_loss(s: PointSummary, other: str, hand_overs: HandOvers) -> str:
    """Why latency-aware's downtime is above `other`'s here, from what the runs measured and
    from `hand_overs`: whether latency-aware ran where hand-overs run slow, or its own run slow
    wherever it ran."""
    la_n, ot_n = s.median(LA, "rounds"), s.median(other, "rounds")
    la_v, ot_v = s.median(LA, final_bytes), s.median(other, final_bytes)
    bandwidth = s.median(LA, lambda r: probed_bandwidth(r) if r.get("inputs") else np.nan)
    gap = s.downtime(LA) - s.downtime(other)
    text = (
        f"latency-aware made {la_n:g} pre-copy rounds and its final round sent {mib(la_v)}; "
        f"{other} made {ot_n:g} and sent {mib(ot_v)}. "
    )
    extra = (la_v - ot_v) / bandwidth if bandwidth == bandwidth else 0.0
    if extra >= 0.5 * gap:
        text += (
            f"The {mib(la_v - ot_v)} more latency-aware left for the final round take "
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
            f"{name} {s.median(LA, lambda r, k=key: final_part(r, k)):.2f} s against "
            f"{s.median(other, lambda r, k=key: final_part(r, k)):.2f} s"
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
    group = hand_overs.by_policy.get(group_of(s), {})
    here = {p: [x for r, x in hand_over_ratios(s) if r["policy"] == p] for p in (LA, other)}
    overall = {p: group.get(p, []) for p in (LA, other)}
    if any(len(overall[p]) <= len(here[p]) for p in here):  # no other point to compare with
        return "."
    where = "the {} {} MiB points at {} Mbit/s".format(*group_of(s))
    if median_of(overall[LA]) >= SLOW_HAND_OVER:
        return (
            f": latency-aware's hand-overs run {median_of(overall[LA]):.2f}x their point's median "
            f"over {where} ({len(overall[LA])} runs; see Run order): its own hand-over is slower."
        )
    return (
        f": against the median of the point's pre-copy runs, latency-aware's hand-overs ran "
        f"{median_of(here[LA]):.2f}x here and {other}'s {median_of(here[other]):.2f}x, while over "
        f"{where} they run {median_of(overall[LA]):.2f}x and {median_of(overall[other]):.2f}x "
        f"({len(overall[LA])} and {len(overall[other])} runs; see Run order): the draws at this "
        "point, not the policies."
    )


def _slow_position(s: PointSummary, by_position: ByField) -> str:
    """Where latency-aware's runs here sat at positions whose hand-overs ran slow across the
    points of this workload, size and bandwidth, say so: the loss is the run order's."""
    group = by_position.get(group_of(s), {})
    positions = sorted({r.get("position") for r in s.runs[LA]} - {None})
    measured = [p for p in positions if len(group.get(p, ())) >= 2]
    slow = [median_of(group[p]) for p in measured]
    if not slow or median_of(slow) < SLOW_HAND_OVER:
        return ""
    where = (
        "was the first to move the freshly started container here"
        if positions == [0]
        else f"ran at position {'/'.join(map(str, positions))} here"
    )
    workload, size, bandwidth = group_of(s)
    runs = min(len(group[p]) for p in measured)
    return (
        f": latency-aware {where}, and the hand-overs at that position over the {workload} "
        f"{size} MiB points at {bandwidth} Mbit/s ran {median_of(slow):.2f}x their point's median "
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
        f"planned with {'over' if ratio > 1 else 'under'}stated the hand-over "
        f"{max(ratio, 1 / ratio):.1f}-fold, so the residual was weighed against that floor."
    )


def losses_section(points: list[PointSummary], hand_overs: HandOvers) -> list[str]:
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
