"""The latency-aware plan in closed form, vectorised over grids of RTT and dirty rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from whimbrel.backends.model.inputs import PAGE_SIZE, ModelInputError, ModelInputs
from whimbrel.backends.model.physics import round_costs


@dataclass(frozen=True, eq=False)
class Grid:
    """The latency-aware plan at every (RTT, dirty rate); arrays of shape (rtts, dirty rates)."""

    rtts: np.ndarray
    dirty_rates: np.ndarray
    rounds: np.ndarray  # 0 where the verdict is stop-and-copy
    downtime_s: np.ndarray
    total_time_s: np.ndarray
    bytes_sent: np.ndarray
    floor_bytes: np.ndarray  # inf where the rounds do not converge

    @property
    def iterate(self) -> np.ndarray:
        return self.rounds > 0


def grid(inputs: ModelInputs, rtts: Sequence[float], dirty_rates: Sequence[float]) -> Grid:
    """The closed form of the latency-aware plan, vectorised; `inputs` give the other terms.

    With V_n = V* + lambda^n (M - V*) and downtime a + b*V_n, every stop rule is of the form
    lambda^n <= ratio, so n = max(1, ceil(ln(ratio) / ln(lambda))). The saturating working set
    and a longer round 0 break that geometric series; use plan() for them."""
    if inputs.working_set is not None or inputs.first_round_extra:
        raise ValueError("the closed form needs working_set=None and first_round_extra=0")
    r = np.asarray(rtts, dtype=float)[:, None]
    d = np.asarray(dirty_rates, dtype=float)[None, :]
    if not (np.isfinite(r).all() and np.isfinite(d).all() and r.min() >= 0 and d.min() >= 0):
        raise ModelInputError("grid RTTs and dirty rates must be finite and at least zero")
    m, b, k, cap = inputs.whole_bytes, inputs.bandwidth, inputs.round_trips, inputs.max_rounds
    c = round_costs(inputs)
    lam = d / b
    converges = lam < 1
    one_minus = np.where(converges, 1 - lam, 1.0)
    per_round = k * r + inputs.round_overhead  # k*RTT + c
    v_star = np.where(converges, d * per_round / one_minus, 0.0)  # 0 only as a safe placeholder
    excess = m - v_star  # M - V*
    fixed = c.down_fixed + inputs.final_round_trips * r
    iterate = converges & (lam * m + d * per_round < m) & (cap >= 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_lam = np.log(np.where(lam > 0, lam, 0.5))

        def first_n(ratio: np.ndarray) -> np.ndarray:  # smallest n >= 1 with lam^n <= ratio
            raw = np.ceil(np.log(ratio) / log_lam)
            raw = np.where((lam > 0) & (ratio < 1), np.minimum(raw, cap + 1), 1)
            return np.maximum(raw, 1)

        threshold = (inputs.downtime_target - fixed) / c.down_per_byte
        n_target = first_n((threshold - v_star) / excess)
        reachable = (threshold > v_star) & (n_target <= cap)
        # Near the floor: b * lam^n * (M - V*) <= tolerance * floor downtime + one page.
        floor_dt = fixed + c.down_per_byte * v_star
        slack = inputs.floor_tolerance * floor_dt + c.down_per_byte * PAGE_SIZE
        n_near = first_n(slack / (c.down_per_byte * excess))
        # Freeze: b*(1-lam)*lam^n*(M-V*) <= w*(e + f*V_n), i.e. lam^n * gain <= w*(e + f*V*).
        w = inputs.brownout_weight
        gain = excess * (c.down_per_byte * one_minus - w * c.freeze_per_byte)
        charge = w * (c.freeze_fixed + c.freeze_per_byte * v_star)
        n_frozen = np.where(gain > 0, np.where(charge > 0, first_n(charge / gain), cap), 1)
        n = np.where(reachable, n_target, np.minimum(np.minimum(n_near, n_frozen), cap))
        n = np.where(iterate, n, 0).astype(np.int64)
        lam_n = np.where(converges, lam, 0.0) ** n
        v_n = np.where(n > 0, v_star + lam_n * excess, m)
        sent_before = n * v_star + excess * (1 - lam_n) / one_minus  # sum of V_i, i < n
    downtime = fixed + c.down_per_byte * v_n
    total = sent_before * (1 / b + c.freeze_per_byte) + n * (per_round + c.freeze_fixed) + downtime
    shape = n.shape
    return Grid(
        rtts=r[:, 0],
        dirty_rates=d[0],
        rounds=n,
        downtime_s=np.broadcast_to(downtime, shape),
        total_time_s=np.broadcast_to(total, shape),
        bytes_sent=np.broadcast_to(sent_before + v_n, shape),
        floor_bytes=np.broadcast_to(np.where(converges, v_star, np.inf), shape),
    )


def rounds_closed_form(inputs: ModelInputs) -> int:
    """n from the closed form (the latency-aware rule, base model), for one point."""
    return int(grid(inputs, [inputs.rtt], [inputs.dirty_rate]).rounds[0, 0])
