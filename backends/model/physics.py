"""The physics of a round: what it freezes, what it costs, what the container dirties meanwhile,
and the volumes and floor the rounds follow."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.model.inputs import ModelInputs


@dataclass(frozen=True)
class RoundCosts:
    """The freeze and downtime as affine functions of the bytes V a round sends."""

    freeze_fixed: float  # pre-copy freeze = freeze_fixed + freeze_per_byte * V
    freeze_per_byte: float
    down_fixed: float  # downtime = down_fixed + RTT/2 + down_per_byte * V
    down_per_byte: float


def round_costs(i: ModelInputs) -> RoundCosts:
    final = i.dump_time if i.final_dump_time is None else i.final_dump_time
    if i.dump_rate is None:  # fixed dump time, paid by the final round only
        return RoundCosts(0.0, 0.0, final + i.restore_time, 1.0 / i.bandwidth)
    per_byte = 1.0 / i.dump_rate if i.incremental_dumps else 0.0
    whole = 0.0 if i.incremental_dumps else i.size / i.dump_rate
    return RoundCosts(
        i.dump_time + whole, per_byte, final + whole + i.restore_time, 1.0 / i.bandwidth + per_byte
    )


def downtime_fixed(i: ModelInputs, c: RoundCosts) -> float:
    """The downtime beyond the final round's bytes: dump, restore and j*RTT of hand-over."""
    return c.down_fixed + i.final_round_trips * i.rtt


def downtime_parts(i: ModelInputs, final_bytes: float) -> DowntimeParts:
    """The downtime of a final round sending `final_bytes`, in the hand-over's parts: they add
    up to downtime_fixed + down_per_byte * V."""
    c = round_costs(i)
    # A dump's per-byte time (incremental dumps write what the round sends), the rest is the
    # link's; taken apart per byte, not as a difference of products that may be huge.
    dump = c.down_fixed - i.restore_time + (c.down_per_byte - 1 / i.bandwidth) * final_bytes
    # The link's round trips go with the send (the commit follows the stream, and the commit
    # part is the target's record alone, held in the restore's fitted term here): the first
    # half of one is the stream's way there, the next half, told apart as the measured parts
    # tell it, the answer's way back.
    send = final_bytes / i.bandwidth + i.final_round_trips * i.rtt
    answer = min(0.5, max(0.0, i.final_round_trips - 0.5)) * i.rtt
    return DowntimeParts(0.0, dump, 0.0, send, i.restore_time, 0.0, 0.0).with_answer(answer)


def round_fixed(i: ModelInputs) -> float:
    """What a pre-copy round costs beyond its bytes over the link: k*RTT + c."""
    return i.round_trips * i.rtt + i.round_overhead


def dirtied(i: ModelInputs, seconds: float) -> float:
    """Distinct bytes the container dirties while running for `seconds`."""
    if i.working_set is None:
        return i.dirty_rate * seconds
    return -i.working_set * math.expm1(-i.dirty_rate * seconds / i.working_set)


def volumes(
    inputs: ModelInputs, rounds: int, start: float | None = None, first_extra: float = 0.0
) -> np.ndarray:
    """V_0..V_rounds by the step-by-step recurrence, from `start` (default: the whole state's
    distinct bytes), the first of
    these rounds running `first_extra` seconds longer."""
    v = np.empty(rounds + 1)
    v[0] = inputs.whole_bytes if start is None else start
    overhead = round_fixed(inputs)
    for j in range(rounds):
        v[j + 1] = dirtied(inputs, v[j] / inputs.bandwidth + overhead + first_extra)
        first_extra = 0.0
    return v


def floor_bytes(inputs: ModelInputs) -> float:
    """V*, the residual the rounds converge to; inf when they do not converge."""
    i, overhead = inputs, round_fixed(inputs)
    if i.working_set is None:
        lam = i.dirty_rate / i.bandwidth
        return i.dirty_rate * overhead / (1 - lam) if lam < 1 else math.inf
    if i.dirty_rate == 0:
        return 0.0
    # The step map is concave and bounded by W, so its largest fixed point attracts every start;
    # bisect g(V) = step(V) - V between the peak of g (g >= 0) and W (g < 0).
    w, d, b = i.working_set, i.dirty_rate, i.bandwidth
    lo = min(w, max(0.0, b * (w * math.log(d / b) / d - overhead))) if d > b else 0.0
    hi = w
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if dirtied(i, mid / b + overhead) >= mid else (lo, mid)
    return lo
