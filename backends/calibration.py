"""Calibration: fit the model's free terms to what real migrations measured, by least squares.

The engine records every round it carries out; these fits turn those records into the
round trips per round k, the dump and restore times (and a dump rate where the dumped sizes
vary), and the saturating dirty set (D, W) from dirty-page samples, each with its spread, so
the next plan starts from measured values instead of defaults. Pure numpy, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from whimbrel.backends.model import ModelInputs

__all__ = [
    "Calibration",
    "DirtySample",
    "Estimate",
    "RoundRecord",
    "calibrate",
    "fit_dirty_set",
    "fit_dump",
    "fit_restore",
    "fit_round_trips",
]


@dataclass(frozen=True)
class Estimate:
    value: float
    stderr: float  # standard error of value; inf when the data leave no degree of freedom
    residual_std: float  # spread of the fit's residuals, in the measured quantity's unit
    samples: int


@dataclass(frozen=True)
class RoundRecord:
    """One round of a real migration, as the engine measured it."""

    bytes: float  # what the round sent
    transfer_s: float  # sending it, round trips included; the dump and restore excluded
    throughput: float  # B measured during the round, bytes/s
    rtt: float  # RTT measured around the round, s
    final: bool = False  # the stopped round: its hand-over costs RTT/2, not k round trips
    dump_s: float | None = None  # how long the CRIU dump froze the container
    dumped_bytes: float | None = None  # what that dump wrote (all of M for a full dump)
    restore_s: float | None = None  # the final round's restore on the target


@dataclass(frozen=True)
class DirtySample:
    """Distinct bytes a container dirtied over an interval (soft-dirty bits cleared, then read)."""

    interval_s: float
    dirtied_bytes: float


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Coefficients, their standard errors and the residual std of y ~ x @ coef."""
    scale = np.linalg.norm(x, axis=0)  # columns in bytes and in ones differ by ~1e8
    scale[scale == 0] = 1.0
    xs = x / scale
    coef, *_ = np.linalg.lstsq(xs, y, rcond=None)
    dof = len(y) - x.shape[1]
    if dof <= 0:
        return coef / scale, np.full(x.shape[1], math.inf), math.inf
    resid = y - xs @ coef
    sigma2 = float(resid @ resid) / dof
    stderr = np.sqrt(np.diag(sigma2 * np.linalg.pinv(xs.T @ xs)))
    return coef / scale, stderr / scale, math.sqrt(sigma2)


def fit_round_trips(records: Sequence[RoundRecord]) -> Estimate | None:
    """k from pre-copy rounds: transfer_s - bytes/throughput = k * rtt (through the origin)."""
    pre = [r for r in records if not r.final]
    x = np.array([[r.rtt] for r in pre], dtype=float).reshape(-1, 1)
    if not len(pre) or not (x > 0).any():
        return None
    y = np.array([r.transfer_s - r.bytes / r.throughput for r in pre])
    coef, stderr, spread = _least_squares(x, y)
    return Estimate(float(coef[0]), float(stderr[0]), spread, len(pre))


def fit_dump(records: Sequence[RoundRecord]) -> tuple[Estimate, Estimate | None] | None:
    """(dump time, dump rate). The rate is fitted, dump_s = t0 + bytes/rate, only where the
    dumped sizes vary enough to separate it from t0; otherwise t0 holds the whole dump."""
    rows = [(r.dump_s, r.dumped_bytes) for r in records if r.dump_s is not None]
    if not rows:
        return None
    y = np.array([s for s, _ in rows], dtype=float)
    sizes = np.array([b if b is not None else math.nan for _, b in rows], dtype=float)
    if len(rows) >= 3 and np.isfinite(sizes).all() and np.ptp(sizes) > 0.01 * sizes.mean():
        coef, stderr, spread = _least_squares(np.column_stack([np.ones_like(sizes), sizes]), y)
        if coef[1] > 0:
            rate = Estimate(float(1 / coef[1]), float(stderr[1] / coef[1] ** 2), spread, len(rows))
            return Estimate(float(coef[0]), float(stderr[0]), spread, len(rows)), rate
    return _mean(y), None


def fit_restore(records: Sequence[RoundRecord]) -> Estimate | None:
    """The restore time: the least-squares constant (the mean) over final rounds."""
    y = np.array([r.restore_s for r in records if r.final and r.restore_s is not None])
    return _mean(y) if y.size else None


def _mean(y: np.ndarray) -> Estimate:
    coef, stderr, spread = _least_squares(np.ones((len(y), 1)), y)
    return Estimate(float(coef[0]), float(stderr[0]), spread, len(y))


def fit_dirty_set(samples: Sequence[DirtySample]) -> tuple[Estimate, Estimate | None] | None:
    """(D, W) of the saturating dirty set Y = W * (1 - exp(-D*T/W)), by Levenberg-Marquardt on
    (ln D, ln W). W is None where the samples show no saturation; D is then the linear slope."""
    t = np.array([s.interval_s for s in samples], dtype=float)
    y = np.array([s.dirtied_bytes for s in samples], dtype=float)
    if not (t > 0).any():
        return None
    coef, stderr, spread = _least_squares(t.reshape(-1, 1), y)
    linear = Estimate(float(coef[0]), float(stderr[0]), spread, len(t))
    keep = t > 0
    if keep.sum() < 3 or y.max() <= 0:
        return linear, None

    def curve(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d, w = np.exp(theta)
        x = d * t / w
        saturated = -np.expm1(-x)
        jac = np.column_stack([d * t * np.exp(-x), w * (saturated - x * np.exp(-x))])
        return w * saturated, jac

    # W is bounded above: past 1e4 x the largest sample the curve is a straight line anyway.
    top = float(y.max())
    upper = np.log([math.inf, 1e4 * top])
    theta = np.log([max(float((y[keep] / t[keep]).max()), 1e-300), 2 * top])
    damping = 1e-3
    fitted, jac = curve(theta)
    cost = float(((y - fitted) ** 2).sum())
    for _ in range(500):
        normal = jac.T @ jac
        lhs = normal + damping * np.diag(np.diag(normal))
        step = np.linalg.lstsq(lhs, jac.T @ (y - fitted), rcond=None)[0]
        trial = np.minimum(theta + step, upper)
        trial_fit, trial_jac = curve(trial)
        trial_cost = float(((y - trial_fit) ** 2).sum())
        if trial_cost <= cost:  # NaN never passes
            moved = np.abs(trial - theta).max()
            theta, fitted, jac, cost, damping = (
                trial,
                trial_fit,
                trial_jac,
                trial_cost,
                damping / 10,
            )
            if moved < 1e-12:
                break
        else:
            damping *= 10
            if damping > 1e12:
                break
    d, w = np.exp(theta)
    if w > 1e3 * top:  # the samples never bent: no working set to speak of
        return linear, None
    dof = len(t) - 2
    spread = math.sqrt(cost / dof) if dof > 0 else math.inf
    cov = spread**2 * np.linalg.pinv(jac.T @ jac) if dof > 0 else np.full((2, 2), math.inf)
    se_log = np.sqrt(np.diag(cov))
    return (
        Estimate(float(d), float(d * se_log[0]), spread, len(t)),
        Estimate(float(w), float(w * se_log[1]), spread, len(t)),
    )


@dataclass(frozen=True)
class Calibration:
    """Fitted terms; None where the records could not determine them."""

    round_trips: Estimate | None = None
    dump_time: Estimate | None = None
    dump_rate: Estimate | None = None
    restore_time: Estimate | None = None
    dirty_rate: Estimate | None = None
    working_set: Estimate | None = None

    def apply(self, inputs: ModelInputs) -> ModelInputs:
        """The inputs with every fitted term replaced (clipped at zero where noise went below)."""
        changes: dict[str, float] = {}
        for name in ("round_trips", "dump_time", "restore_time", "dirty_rate"):
            estimate: Estimate | None = getattr(self, name)
            if estimate is not None:
                changes[name] = max(0.0, estimate.value)
        for name in ("dump_rate", "working_set"):
            estimate = getattr(self, name)
            if estimate is not None:
                changes[name] = estimate.value
        return replace(inputs, **changes)


def calibrate(
    records: Sequence[RoundRecord], dirty_samples: Sequence[DirtySample] = ()
) -> Calibration:
    dump = fit_dump(records)
    dirty = fit_dirty_set(dirty_samples)
    return Calibration(
        round_trips=fit_round_trips(records),
        dump_time=dump[0] if dump else None,
        dump_rate=dump[1] if dump else None,
        restore_time=fit_restore(records),
        dirty_rate=dirty[0] if dirty else None,
        working_set=dirty[1] if dirty else None,
    )
