"""The policies: each chooses how many pre-copy rounds to run from the same track of rounds.

latency-aware is the model's own start and stop conditions; stop-and-copy, latency-blind,
p.haul's and QEMU's are the rules it is compared with (docs/model.md, "Comparison policies")."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from whimbrel.backends.model.inputs import PAGE_SIZE, ModelInputs
from whimbrel.backends.model.physics import downtime_fixed, floor_bytes, round_costs, round_fixed
from whimbrel.backends.model.track import Track, track
from whimbrel.backends.units import format_bandwidth, format_duration, format_size

# CRIU p.haul (phaul/iters.py, iter_consts): checked after each pre-dump.
PHAUL_MIN_PAGES = 64
PHAUL_MAX_GROW_PERCENT = 10
PHAUL_MAX_ITER_INDEX = 8  # compared with the 0-based pre-dump index, so at most 9 pre-dumps


@dataclass(frozen=True)
class Choice:
    """A policy's number of pre-copy rounds, and why."""

    rounds: int
    reason: str
    claimed_downtime_s: float | None = None


def _size(x: float) -> str:
    return format_size(x) if math.isfinite(x) else "unbounded"


def _dur(x: float) -> str:
    return format_duration(x) if math.isfinite(x) else "unbounded"


def _no_iteration(t: Track) -> Choice | None:
    """Stop-and-copy when the start condition fails (or no round is left), else None."""
    i, v, dt = t.inputs, t.volumes, t.downtimes
    if len(v) == 1:  # a round cap of 0
        return Choice(0, "no pre-copy round is left under the round cap; stop and copy")
    if i.working_set is None and i.dirty_rate >= i.bandwidth:
        return Choice(
            0,
            f"the dirty rate {_size(i.dirty_rate)}/s is not below the throughput "
            f"{format_bandwidth(i.bandwidth)}: every round would leave more to send; stop and copy",
        )
    if not dt[1:].min() < dt[0]:
        return Choice(
            0,
            f"a pre-copy round of {_size(v[0])} takes {_dur(t.running[0])} "
            f"({_dur(round_fixed(i))} of it round trips and fixed work) and the container dirties "
            f"{_size(v[1])} meanwhile, no less than it sends: iterating cannot beat "
            f"stop-and-copy's {_dur(dt[0])} downtime",
        )
    return None


def _latency_aware(t: Track) -> Choice:
    """The model's own start and stop conditions (docs/model.md)."""
    if (refused := _no_iteration(t)) is not None:
        return refused
    i, v, dt = t.inputs, t.volumes, t.downtimes
    target = i.downtime_target
    floor = floor_bytes(i)
    # A first plan iterates at least once (the start condition said so); a re-plan after
    # rounds already done may stop right away.
    lo = 0 if t.first > 0 else 1
    met = np.flatnonzero(dt[lo:] <= target) + lo
    if met.size:
        n = int(met[0])
        why = (
            f"{n} pre-copy round{'s' if n > 1 else ''} bring the residual from {_size(v[0])} to "
            f"{_size(v[n])} (floor V* = {_size(floor)}); downtime {_dur(dt[n])} meets the "
            f"{_dur(target)} target (stop-and-copy: {_dur(dt[0])})"
        )
        return Choice(n, _with_brownout(why, t, n))
    return _out_of_reach(t, floor, lo)


def _out_of_reach(t: Track, floor: float, lo: int) -> Choice:
    """The latency-aware stop when no round from `lo` on meets the target.

    All further rounds together can save at most the gap between the downtime and the floor
    downtime. Stop once that gap is within floor_tolerance of the floor (or one page), or once
    the next round would save no more downtime than its dump's freeze is worth
    (brownout_weight; at 0, once it saves nothing)."""
    i, dt, cap = t.inputs, t.downtimes, len(t.volumes) - 1
    c = round_costs(i)
    fixed = downtime_fixed(i, c)
    floor_dt = fixed + c.down_per_byte * floor
    slack = i.floor_tolerance * floor_dt + c.down_per_byte * PAGE_SIZE
    gain = dt[:-1] - dt[1:]
    near = np.flatnonzero(dt[lo:] - floor_dt <= slack) + lo
    frozen = np.flatnonzero(gain[lo:] <= i.brownout_weight * t.freezes[lo:-1]) + lo
    n = int(min(near[0] if near.size else cap, frozen[0] if frozen.size else cap))
    threshold = (i.downtime_target - fixed) / c.down_per_byte  # the final round's byte budget
    why = _why_out_of_reach(i, threshold, fixed, floor, floor_dt)
    rounds = (
        f"{n} more round{'s' if n != 1 else ''}" if t.first else f"{n} round{'s' if n > 1 else ''}"
    )
    if frozen.size and n == frozen[0]:
        how = (
            f"stop after {rounds}: the next would save {_dur(gain[n])} of downtime but freeze "
            f"the container for {_dur(t.freezes[n])}"
            if i.brownout_weight > 0
            else f"stop after {rounds}: the next would save no downtime"
        )
    elif near.size and n == near[0]:
        how = (
            f"stop after {rounds}, within {i.floor_tolerance:.0%} of the floor: all further "
            f"rounds together could save at most {_dur(dt[n] - floor_dt)}"
        )
    else:
        how = f"stop at the round cap, {rounds}"
    target = _dur(i.downtime_target)
    why = f"the {target} target is out of reach: {why}; {how} (downtime {_dur(dt[n])})"
    return Choice(n, _with_brownout(why, t, n))


def _why_out_of_reach(
    i: ModelInputs, threshold: float, fixed: float, floor: float, floor_dt: float
) -> str:
    """Why no round meets the target: the fixed costs, the floor, or the round cap."""
    if threshold <= 0:
        return f"dump, restore and the RTT/2 hand-over alone take {_dur(fixed)}"
    if threshold <= floor:
        return (
            f"the latency floor V* = {_size(floor)} (what the container dirties during "
            f"{_dur(round_fixed(i))} of round trips and fixed work per round, compounded)"
            if i.working_set is None
            else f"the floor V* = {_size(floor)} where dirtying the working set balances sending"
        ) + f" keeps downtime at or above {_dur(floor_dt)}"
    return f"it needs more rounds than the cap of {i.max_rounds}"


def _with_brownout(reason: str, t: Track, n: int) -> str:
    worst = float(t.freezes[:n].max()) if n else 0.0
    if worst <= t.inputs.downtime_target:
        return reason
    return f"{reason}; note each pre-copy dump also freezes the container for up to {_dur(worst)}"


def _stop_and_copy(t: Track) -> Choice:
    return Choice(0, f"no pre-copy: stop the container and send its {_size(t.volumes[0])} at once")


def _latency_blind(t: Track) -> Choice:
    blind_inputs = replace(t.inputs, rtt=0.0)
    blind = track(blind_inputs, t.volumes[0], t.sent, len(t.volumes) - 1)
    c = _latency_aware(blind)
    claimed = float(blind.downtimes[c.rounds])
    reason = (
        f"planned as if RTT were 0: {c.reason}. At the real RTT of {_dur(t.inputs.rtt)} those "
        f"{c.rounds} rounds give {_dur(t.downtimes[c.rounds])}, not {_dur(claimed)}"
    )
    return Choice(c.rounds, reason, claimed)


def _phaul_stop(index: int, sent: float, before: float | None) -> str | None:
    """p.haul's checks after pre-dump `index` wrote `sent` bytes (`before` the one before)."""
    if sent <= PHAUL_MIN_PAGES * PAGE_SIZE:
        return f"p.haul: pre-dump {index} wrote {_size(sent)}, ≤ 64 pages"
    if before and (sent - before) * 100 / before > PHAUL_MAX_GROW_PERCENT:
        return f"p.haul: pre-dump {index} grew {(sent - before) * 100 / before:.0f}% (>10%)"
    if index >= PHAUL_MAX_ITER_INDEX:
        return f"p.haul: {index + 1} pre-dumps, its most"
    return None


def _phaul(t: Track) -> Choice:
    v, sent = t.volumes, t.sent
    # A re-plan first checks the pre-dump just done, as p.haul does before its next one.
    if sent and (why := _phaul_stop(t.first - 1, sent[-1], sent[-2] if len(sent) > 1 else None)):
        return Choice(0, why)
    previous = sent[-1] if sent else None
    for j in range(len(v) - 1):
        if why := _phaul_stop(t.first + j, float(v[j]), previous):
            return Choice(j + 1, why)
        previous = float(v[j])
    return Choice(len(v) - 1, f"p.haul: stopped at the round cap of {t.inputs.max_rounds}")


def _qemu(t: Track) -> Choice:
    limit = t.inputs.bandwidth * t.inputs.downtime_target
    hits = np.flatnonzero(t.volumes <= limit)
    if hits.size:
        n = int(hits[0])
        return Choice(
            n,
            f"QEMU: after {n} rounds {_size(t.volumes[n])} remain, within throughput x "
            f"downtime limit = {_size(limit)}",
        )
    return Choice(
        len(t.volumes) - 1,
        f"QEMU: the remainder never fell to throughput x downtime limit = {_size(limit)}; "
        f"stopped at the round cap of {t.inputs.max_rounds}",
    )


POLICY_RULES: dict[str, Callable[[Track], Choice]] = {
    "latency-aware": _latency_aware,
    "stop-and-copy": _stop_and_copy,
    "latency-blind": _latency_blind,
    "phaul": _phaul,
    "qemu": _qemu,
}
