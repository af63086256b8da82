"""Calibration: fit the model's free terms to what real migrations measured, by least squares.

The engine records every round it carries out; these fits turn those records into the
round trips per round k, what round 0 takes beyond the later rounds, the dump and restore
times (and a dump rate where the dumped sizes vary), the stream's own per-byte work beyond
the wire, and the saturating dirty set (D, W) from dirty-page samples, each with its spread,
so the next plan starts from measured values instead of defaults. Pure numpy, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from whimbrel.backends.costs import Costs
from whimbrel.backends.dirty import DirtySample

__all__ = [
    "Calibration",
    "Estimate",
    "RoundRecord",
    "calibrate",
    "fit_dirty_set",
    "fit_dump",
    "fit_first_round",
    "fit_handover",
    "fit_round_work",
    "fit_stream",
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
    throughput: float  # B, the path's probed throughput the round was planned with, bytes/s
    rtt: float  # RTT measured around the round, s
    final: bool = False  # the stopped round: its hand-over costs RTT/2, not k round trips
    dump_s: float | None = None  # how long the CRIU dump froze the container
    dumped_bytes: float | None = None  # what that dump wrote (all of M for a full dump)
    restore_s: float | None = None  # the final round's restore on the target
    lazy: bool = False  # that restore was lazy: nothing of it grows with the state
    seconds: float | None = None  # the whole round, freeze included; the final's: the downtime
    index: int | None = None  # the round's number in its migration; None: not known


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


def _fit_affine(
    y: np.ndarray, columns: dict[str, np.ndarray], held_slopes: dict[str, float] | None = None
) -> dict[str, Estimate]:
    """y ~ fixed + sum of coef * column, least squares. A column that does not vary (it cannot
    be told from the constant) or comes out negative (no physical meaning: a time cannot shrink
    as bytes or round trips grow) is left out, and the rest refitted. A column left out for not
    varying that `held_slopes` has a coefficient for (an earlier fit's) keeps that one
    instead: the constant must not absorb its part (one state size measured says nothing of
    the per-byte term, but does not make it zero)."""
    names = [
        n for n, x in columns.items() if np.ptp(x) > 0.05 * max(float(np.abs(x).mean()), 1e-300)
    ]
    for n, x in columns.items():
        if n not in names and (held_slopes or {}).get(n):
            y = y - (held_slopes or {})[n] * x
    while True:
        x = np.column_stack([np.ones_like(y), *(columns[n] for n in names)])
        coef, stderr, spread = _least_squares(x, y)
        negative = [n for n, c in zip(names, coef[1:], strict=True) if c <= 0]
        if not negative:
            break
        names.remove(negative[0])
    fitted = {"fixed": Estimate(float(coef[0]), float(stderr[0]), spread, len(y))}
    for j, name in enumerate(names, start=1):
        fitted[name] = Estimate(float(coef[j]), float(stderr[j]), spread, len(y))
    return fitted


def _rate(per_byte: Estimate | None) -> Estimate | None:
    """A per-byte time as a rate (bytes/s), its error carried to first order."""
    if per_byte is None:
        return None
    v = per_byte.value
    return Estimate(1 / v, per_byte.stderr / v**2, per_byte.residual_std, per_byte.samples)


def _beyond_dump_and_bytes(
    rows: Sequence[RoundRecord], stream_rate: float | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """What each round took beyond its dump and its bytes over the link (at the probed
    throughput, and the stream's own `stream_rate` on top), and what that may scale with: the
    RTT and the whole state (every round scans, hashes and rebuilds all of it)."""
    per_byte = 1 / stream_rate if stream_rate else 0.0
    y = np.array(
        [
            (r.seconds or 0.0) - (r.dump_s or 0.0) - r.bytes * (1 / r.throughput + per_byte)
            for r in rows
        ]
    )
    return y, {
        "rtt": np.array([r.rtt for r in rows]),
        "state": np.array([r.dumped_bytes or 0.0 for r in rows]),
    }


def _per_byte(rate: float | None) -> dict[str, float]:
    return {"state": 1 / rate} if rate else {}


def fit_stream(records: Sequence[RoundRecord]) -> Estimate | None:
    """The stream's own per-byte work, as a rate C, from the transfers alone: transfer_s =
    t0 + k*RTT + bytes/B + bytes/C, B the probed throughput (the probe's few MiB do not show
    the cipher and the receiver's writes that a whole round pays beyond the wire). Left out of
    the round and hand-over fits, it would be put down to the state: a 1 GiB stop-and-copy's
    2 s beyond bytes/B would fit as restore work that every small final round then pays."""
    rows = [r for r in records if r.bytes > 0]
    if len(rows) < 3:
        return None
    y = np.array([r.transfer_s - r.bytes / r.throughput for r in rows])
    fitted = _fit_affine(
        y, {"rtt": np.array([r.rtt for r in rows]), "bytes": np.array([r.bytes for r in rows])}
    )
    return _rate(fitted.get("bytes"))


def fit_round_work(
    records: Sequence[RoundRecord],
    scan_rate: float | None = None,
    stream_rate: float | None = None,
) -> dict[str, Estimate] | None:
    """A pre-copy round's work beyond its freeze and its bytes' stream (fit_stream's C):
    c0 + k*RTT + M/scan_rate. Keys: fixed (c0), and where the records determine
    them, rtt (k) and state (1/scan_rate); where they do not, a given scan_rate is held.
    Round 0 is left out: it costs ~9 round trips more (fit_first_round), and fitted with the
    rest it pushes k to ~2.8 where the later rounds take 1, so the floor looks twice as high
    at 200 ms and latency-aware stops iterating early."""
    rows = [r for r in records if not r.final and r.seconds is not None and r.index != 0]
    if not rows:
        return None
    return _fit_affine(*_beyond_dump_and_bytes(rows, stream_rate), _per_byte(scan_rate))


def fit_first_round(
    records: Sequence[RoundRecord],
    work: dict[str, Estimate],
    scan_rate: float | None = None,
    stream_rate: float | None = None,
) -> dict[str, Estimate] | None:
    """What round 0 takes beyond a later round's work (`work`, fit_round_work's, with the
    scan_rate it held where it fitted none): its sessions open, its stripes' TCP windows grow
    from nothing. e0 + e1*RTT; keys fixed (e0), rtt (e1)."""
    rows = [r for r in records if r.index == 0 and not r.final and r.seconds is not None]
    if not rows or not work:
        return None
    y, columns = _beyond_dump_and_bytes(rows, stream_rate)
    slopes = _per_byte(scan_rate) | {name: e.value for name, e in work.items() if name != "fixed"}
    later = work["fixed"].value + sum(slope * columns[name] for name, slope in slopes.items())
    return _fit_affine(y - later, {"rtt": columns["rtt"]})


def fit_handover(
    records: Sequence[RoundRecord],
    restore_rate: float | None = None,
    stream_rate: float | None = None,
    final_round_trips: float | None = None,
) -> dict[str, Estimate] | None:
    """The final round's downtime beyond its dump and bytes: r0 + j*RTT + M/restore_rate
    (pause, restore, commit). Arguments and keys as fit_round_work's; a given j is held where
    the records have one RTT. Eager restores only: a lazy one has no M/restore_rate, and mixed
    in it would flatten the eager slope."""
    rows = [r for r in records if r.final and r.seconds is not None and not r.lazy]
    if not rows:
        return None
    held = _per_byte(restore_rate) | ({"rtt": final_round_trips} if final_round_trips else {})
    return _fit_affine(*_beyond_dump_and_bytes(rows, stream_rate), held)


# How far apart (a ratio) the runs' RTTs must be for them to fit the hand-over's round trips.
RTT_SETTINGS_APART = 2.0


def fit_lazy_handover(
    records: Sequence[RoundRecord],
    final_round_trips: float,
    stream_rate: float | None = None,
    fit_round_trips: bool = False,
) -> dict[str, Estimate] | None:
    """The final round's downtime beyond its dump and bytes when its restore was lazy: r0'
    + j*RTT; keys "fixed" (r0': pause, the lazy restore, the commit's own work) and, fitted
    only with `fit_round_trips` and where the records' RTTs lie RTT_SETTINGS_APART apart,
    "rtt" (j). Otherwise j is held at `final_round_trips` (the eager fit's: the same words
    cross the link, and runs of one RTT cannot tell j apart)."""
    rows = [r for r in records if r.final and r.seconds is not None and r.lazy]
    if not rows:
        return None
    y, columns = _beyond_dump_and_bytes(rows, stream_rate)
    rtt = columns["rtt"]
    # Runs at one RTT setting vary a little around it: that spread would fit j to noise.
    if not fit_round_trips or rtt.max() < RTT_SETTINGS_APART * rtt.min():
        return {"fixed": _mean(y - final_round_trips * rtt)}
    return _fit_affine(y, {"rtt": rtt}, {"rtt": final_round_trips})


def fit_final_dump(records: Sequence[RoundRecord], dump_rate: float | None) -> Estimate | None:
    """The final dump's fixed part, the container paused, its rate held at the pre-copy dumps'
    (`dump_rate`). A paused container's dump does less than a pre-copy round's (~0.1 s less
    on the lab), which the downtime otherwise over-counted at every size."""
    rows = [r for r in records if r.final and r.dump_s is not None]
    if not rows or dump_rate is None or any(r.dumped_bytes is None for r in rows):
        return None
    return _mean(np.array([r.dump_s - (r.dumped_bytes or 0.0) / dump_rate for r in rows]))


def fit_dump(
    records: Sequence[RoundRecord], dump_rate: float | None = None
) -> tuple[Estimate, Estimate | None] | None:
    """(dump time, dump rate) of the pre-copy rounds' dumps, the container left running (the
    final one's fixed part is its own: fit_final_dump): dump_s = t0 + bytes/rate where the
    dumped sizes vary enough to separate the two; otherwise t0 holds the whole dump (less a
    given dump_rate's part) and the rate is None."""
    rows = [(r.dump_s, r.dumped_bytes) for r in records if r.dump_s is not None and not r.final]
    if not rows:
        return None
    y = np.array([s for s, _ in rows], dtype=float)
    sizes = np.array([b if b is not None else math.nan for _, b in rows], dtype=float)
    if len(rows) < 3 or not np.isfinite(sizes).all():
        return _mean(y), None
    fitted = _fit_affine(y, {"state": sizes}, _per_byte(dump_rate))
    return fitted["fixed"], _rate(fitted.get("state"))


def _mean(y: np.ndarray) -> Estimate:
    coef, stderr, spread = _least_squares(np.ones((len(y), 1)), y)
    return Estimate(float(coef[0]), float(stderr[0]), spread, len(y))


def fit_dirty_set(samples: Sequence[DirtySample]) -> tuple[Estimate, Estimate | None] | None:
    """(D, W) of the saturating dirty set Y = W * (1 - exp(-D*T/W)), by Levenberg-Marquardt on
    (ln D, ln W), from samples over intervals T of different lengths (Y: each one's distinct
    dirty bytes). W is None where the samples show no saturation; D is then the linear slope."""
    t = np.array([s.interval_s for s in samples], dtype=float)
    y = np.array([s.dirty_bytes for s in samples], dtype=float)
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
    start = np.log([max(float((y[keep] / t[keep]).max()), 1e-300), 2 * top])
    theta, jac, cost = _levenberg_marquardt(curve, y, start, upper)
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


Curve = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # parameters -> (values, jacobian)


def _levenberg_marquardt(
    curve: Curve, y: np.ndarray, theta: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """The parameters (capped at `upper`) whose curve fits `y` in least squares, from `theta`;
    with the jacobian there and the sum of squared residuals."""
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
            theta, fitted, jac, cost = trial, trial_fit, trial_jac, trial_cost
            damping /= 10
            if moved < 1e-12:
                break
        else:
            damping *= 10
            if damping > 1e12:
                break
    return theta, jac, cost


@dataclass(frozen=True)
class Calibration:
    """Fitted terms; None where the records could not determine them."""

    round_trips: Estimate | None = None
    round_fixed: Estimate | None = None
    first_round_fixed: Estimate | None = None
    first_round_trips: Estimate | None = None
    scan_rate: Estimate | None = None
    dump_time: Estimate | None = None
    dump_rate: Estimate | None = None
    final_dump_time: Estimate | None = None
    restore_time: Estimate | None = None
    restore_rate: Estimate | None = None
    lazy_restore_time: Estimate | None = None
    final_round_trips: Estimate | None = None
    stream_rate: Estimate | None = None
    dirty_rate: Estimate | None = None
    working_set: Estimate | None = None

    def costs(self, base: Costs | None = None) -> Costs:
        """`base` (default: Costs()) with every fitted term replaced, times clipped at zero."""
        times = {
            "round_trips": "round_trips",
            "round_fixed_s": "round_fixed",
            "first_round_s": "first_round_fixed",
            "first_round_trips": "first_round_trips",
            "dump_time_s": "dump_time",
            "final_dump_time_s": "final_dump_time",
            "restore_time_s": "restore_time",
            "lazy_restore_time_s": "lazy_restore_time",
            "final_round_trips": "final_round_trips",
        }
        changes: dict[str, float] = {}
        for field, name in times.items():
            estimate: Estimate | None = getattr(self, name)
            if estimate is not None:
                changes[field] = max(0.0, estimate.value)
        for name in ("scan_rate", "dump_rate", "restore_rate", "stream_rate"):
            estimate = getattr(self, name)
            if estimate is not None:
                changes[name] = estimate.value
        return replace(base or Costs(), **changes)


def calibrate(
    records: Sequence[RoundRecord],
    dirty_samples: Sequence[DirtySample] = (),
    in_use: Costs | None = None,
    now: Sequence[RoundRecord] = (),
) -> Calibration:
    """Every term the records determine. With `in_use` (the costs in use), a per-byte rate the
    records cannot determine (one state size) is held at its value there in the fits of the
    rest, and is left None here (Calibration.costs(in_use) keeps it). `now`: more runs, of the
    hand-over as it runs now; every run fits the pre-copy terms, but where `now` holds final
    rounds after pre-copy rounds, the hand-over's terms (the final dump, the restore's fixed
    part and rate, eager or lazy) are fitted to those alone, j held at `records`' unless
    `now`'s lazy runs lie RTTs apart, which then fit j too: a hand-over that changed is not
    planned with its old self's averages."""
    every = [*records, *now]
    dump = fit_dump(every, in_use.dump_rate if in_use else None)
    dump_rate = dump[1].value if dump and dump[1] else (in_use.dump_rate if in_use else None)
    stream = fit_stream(every)
    stream_rate = stream.value if stream else (in_use.stream_rate if in_use else None)
    scan_rate = in_use.scan_rate if in_use else None
    work = fit_round_work(every, scan_rate, stream_rate) or {}
    first = fit_first_round(every, work, scan_rate, stream_rate) or {}
    restore_rate = in_use.restore_rate if in_use else None
    handover = fit_handover(records, restore_rate, stream_rate) or {}
    round_trips = handover.get("rtt")
    j = round_trips.value if round_trips else (in_use or Costs()).final_round_trips
    # The final rounds of now that followed pre-copy rounds: a stop-and-copy's is all
    # transfer, the whole state, whose per-byte cost swamps the hand-over's own (seconds off).
    after_rounds = [r for r in now if r.final and r.index != 0]
    finals = after_rounds or every
    # Lazy runs of now over several RTTs say how many round trips the hand-over waits now (a
    # commit that stopped waiting for the restore's answer took one out).
    lazy = fit_lazy_handover(finals, j, stream_rate, fit_round_trips=bool(after_rounds)) or {}
    if "rtt" in lazy:
        round_trips, j = lazy["rtt"], lazy["rtt"].value
    if any(not r.lazy for r in after_rounds):
        held_rate = _rate(handover.get("state"))
        eager = fit_handover(
            after_rounds, held_rate.value if held_rate else restore_rate, stream_rate, j
        )
        handover = {**handover, **(eager or {})}
    dirty = fit_dirty_set(dirty_samples)
    return Calibration(
        round_trips=work.get("rtt"),
        round_fixed=work.get("fixed"),
        first_round_fixed=first.get("fixed"),
        first_round_trips=first.get("rtt"),
        scan_rate=_rate(work.get("state")),
        dump_time=dump[0] if dump else None,
        dump_rate=dump[1] if dump else None,
        final_dump_time=fit_final_dump(finals, dump_rate),
        restore_time=handover.get("fixed"),
        restore_rate=_rate(handover.get("state")),
        lazy_restore_time=lazy.get("fixed"),
        final_round_trips=round_trips,
        stream_rate=stream,
        dirty_rate=dirty[0] if dirty else None,
        working_set=dirty[1] if dirty else None,
    )
