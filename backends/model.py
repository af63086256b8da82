"""The latency-aware pre-copy model: pure functions over numbers and numpy arrays, no I/O.

Symbols (SI units throughout: bytes, bytes/s, seconds): M state size, D dirty rate, B throughput
(what a round's stream gets: the probed rate less the stream's own per-byte work, costs.py),
RTT round-trip time, k round trips per round, lambda = D/B. docs/model.md derives everything.

Semantics every caller relies on:
- pre-copy rounds i = 0..n-1 run while the container runs and send V_0..V_{n-1}; the final
  round sends V_n with the container stopped; n = 0 is stop-and-copy (V_0 = M sent stopped);
- V_0 = M, V_{i+1} = D * (V_i/B + k*RTT + c), c the round's fixed work (default 0);
- downtime(n) = dump_time + V_n/B + j*RTT + restore_time, j the final hand-over's round
  trips (default 1/2: the last byte's way);
- total time = sum over i < n of (V_i/B + k*RTT + c) + downtime(n).
- round 0 may run e seconds longer (`first_round_extra`: its sessions open, its TCP windows
  grow), which V_1 is dirtied during too; off by default.
Optional inputs (off by default, so the above stays exact): a hot working set W saturates the
dirty set, W*(1 - exp(-D*T/W)) instead of D*T; a dump rate makes every round a CRIU dump that
freezes the container for dump_time + dumped/dump_rate (the pre-copy freezes are "brownouts").
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, cast

import numpy as np

from whimbrel.backends.errors import UsageError
from whimbrel.backends.units import format_bandwidth, format_duration, format_size

__all__ = [
    "PAGE_SIZE",
    "POLICIES",
    "POLICY_MARKERS",
    "Grid",
    "MeasuredRound",
    "ModelInputError",
    "ModelInputs",
    "Plan",
    "Policy",
    "RoundForecast",
    "Verdict",
    "compare",
    "evaluate",
    "floor_bytes",
    "grid",
    "plan",
    "replan",
    "rounds_closed_form",
    "volumes",
]

PAGE_SIZE = 4096
MAX_ROUND_CAP = 10_000  # bounds the arrays a plan allocates

Verdict = Literal["iterate", "stop-and-copy"]
Policy = Literal["latency-aware", "stop-and-copy", "latency-blind", "phaul", "qemu"]
POLICIES: tuple[Policy, ...] = ("latency-aware", "stop-and-copy", "latency-blind", "phaul", "qemu")
# A letter a policy for text charts: the docs show them without colour.
POLICY_MARKERS: dict[Policy, str] = {
    "latency-aware": "A",
    "stop-and-copy": "S",
    "latency-blind": "B",
    "phaul": "P",
    "qemu": "Q",
}

# CRIU p.haul (phaul/iters.py, iter_consts): checked after each pre-dump.
PHAUL_MIN_PAGES = 64
PHAUL_MAX_GROW_PERCENT = 10
PHAUL_MAX_ITER_INDEX = 8  # compared with the 0-based pre-dump index, so at most 9 pre-dumps


class ModelInputError(UsageError, ValueError):
    """A model input is negative, not finite, or otherwise impossible."""


def _check(name: str, value: float, *, positive: bool) -> None:
    label = name.replace("_", " ")
    if not isinstance(value, int | float | np.number) or not math.isfinite(value):
        raise ModelInputError(f"{label} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ModelInputError(f"{label} must be {'more than' if positive else 'at least'} zero")


_NON_NEGATIVE = (
    "size",
    "dirty_rate",
    "rtt",
    "round_trips",
    "dump_time",
    "restore_time",
    "downtime_target",
    "floor_tolerance",
    "round_overhead",
    "first_round_extra",
    "final_round_trips",
    "brownout_weight",
)


@dataclass(frozen=True)
class ModelInputs:
    """What the model plans from. Rates in bytes/s (bandwidth too), times in seconds."""

    size: float  # M
    dirty_rate: float  # D
    bandwidth: float  # B, the throughput at the current RTT
    rtt: float
    round_trips: float = 1.0  # k, per pre-copy round; float because it is calibrated
    dump_time: float = 0.0
    restore_time: float = 0.0
    downtime_target: float = 0.3
    max_rounds: int = 30
    working_set: float | None = None  # W: saturating dirty set when given
    dump_rate: float | None = None  # every round is a freezing dump when given
    incremental_dumps: bool = False  # dumps write only dirty pages (pre-dump), not all of M
    floor_tolerance: float = 0.05  # target out of reach: stop this close to the floor downtime
    # c: seconds a pre-copy round works beyond sending and its round trips while the container
    # runs (scanning and hashing the state on both nodes); it dirties pages like the transfer.
    round_overhead: float = 0.0
    # What round 0 takes beyond a later round's k*RTT + c: it opens the sessions and its
    # stripes' TCP windows grow from nothing (measured: ~0.5 s + ~9 RTT). Planned from
    # round 0 only; a re-plan comes after it.
    first_round_extra: float = 0.0
    final_round_trips: float = 0.5  # j: the hand-over's round trips inside the downtime
    # What a second of pre-copy freeze (brownout) costs against a second of downtime when the
    # target is out of reach: 0 plans for the least downtime, 1 stops once the next round's
    # dump freezes the container longer than the round saves.
    brownout_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in _NON_NEGATIVE:
            _check(name, getattr(self, name), positive=False)
        _check("bandwidth", self.bandwidth, positive=True)
        for name in ("working_set", "dump_rate"):
            if getattr(self, name) is not None:
                _check(name, getattr(self, name), positive=True)
        try:
            rounds = operator.index(self.max_rounds)
        except TypeError:
            msg = f"max rounds must be a whole number, got {self.max_rounds!r}"
            raise ModelInputError(msg) from None
        if not 0 <= rounds <= MAX_ROUND_CAP:
            raise ModelInputError(f"max rounds must be between 0 and {MAX_ROUND_CAP}")
        object.__setattr__(self, "max_rounds", rounds)


@dataclass(frozen=True)
class RoundForecast:
    index: int  # global round number: re-plans continue the count
    bytes: float
    seconds: float  # wall time: freeze + transfer + round trips; the final round's is the downtime
    freeze_s: float  # container frozen: a pre-copy round's brownout, or the final downtime
    final: bool


@dataclass(frozen=True)
class Plan:
    """A policy's choice of rounds, evaluated with the latency-aware physics.

    After a re-plan, `per_round` and the totals cover the remaining rounds only, numbered from
    `first_round`."""

    policy: Policy | Literal["fixed"]
    verdict: Verdict
    reason: str
    rounds: int  # pre-copy rounds before the final one
    first_round: int
    per_round: tuple[RoundForecast, ...]  # the final round last
    downtime_s: float
    total_time_s: float
    bytes_sent: float
    floor_bytes: float  # V*, inf where the rounds do not converge
    floor_downtime_s: float  # downtime if the final round sent exactly V*
    claimed_downtime_s: float  # what the policy's own model predicts (differs for latency-blind)
    meets_target: bool
    inputs: ModelInputs

    @property
    def brownouts_s(self) -> tuple[float, ...]:
        return tuple(r.freeze_s for r in self.per_round if not r.final)

    @property
    def next_round(self) -> RoundForecast:
        return self.per_round[0]

    @property
    def final_round(self) -> RoundForecast:
        return self.per_round[-1]

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:  # JSON has no infinity
            return float(x) if math.isfinite(x) else None

        return {
            "policy": self.policy,
            "verdict": self.verdict,
            "reason": self.reason,
            "rounds": self.rounds,
            "first_round": self.first_round,
            "downtime_s": self.downtime_s,
            "total_time_s": self.total_time_s,
            "bytes_sent": self.bytes_sent,
            "floor_bytes": num(self.floor_bytes),
            "floor_downtime_s": num(self.floor_downtime_s),
            "claimed_downtime_s": self.claimed_downtime_s,
            "meets_target": self.meets_target,
            "brownouts_s": list(self.brownouts_s),
            "per_round": [
                {
                    "round": r.index,
                    "bytes": r.bytes,
                    "seconds": r.seconds,
                    "freeze_s": r.freeze_s,
                    "final": r.final,
                }
                for r in self.per_round
            ],
            "inputs": asdict(self.inputs),
        }


@dataclass(frozen=True)
class MeasuredRound:
    """A pre-copy round the engine has carried out."""

    bytes: float
    seconds: float  # how long the container ran during the round (the freeze excluded)
    dirty_rate: float
    throughput: float
    dirtied_bytes: float | None = None  # what the next round must send, when the engine knows

    def __post_init__(self) -> None:
        for name in ("bytes", "seconds", "dirty_rate"):
            _check(name, getattr(self, name), positive=False)
        _check("throughput", self.throughput, positive=True)
        if self.dirtied_bytes is not None:
            _check("dirtied_bytes", self.dirtied_bytes, positive=False)


# --- physics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Costs:
    """The freeze and downtime as affine functions of the bytes V a round sends."""

    freeze_fixed: float  # pre-copy freeze = freeze_fixed + freeze_per_byte * V
    freeze_per_byte: float
    down_fixed: float  # downtime = down_fixed + RTT/2 + down_per_byte * V
    down_per_byte: float


def _costs(i: ModelInputs) -> _Costs:
    if i.dump_rate is None:  # fixed dump time, paid by the final round only
        return _Costs(0.0, 0.0, i.dump_time + i.restore_time, 1.0 / i.bandwidth)
    per_byte = 1.0 / i.dump_rate if i.incremental_dumps else 0.0
    fixed = i.dump_time + (0.0 if i.incremental_dumps else i.size / i.dump_rate)
    return _Costs(fixed, per_byte, fixed + i.restore_time, 1.0 / i.bandwidth + per_byte)


def _round_fixed(i: ModelInputs) -> float:
    """What a pre-copy round costs beyond its bytes over the link: k*RTT + c."""
    return i.round_trips * i.rtt + i.round_overhead


def _dirtied(i: ModelInputs, seconds: float) -> float:
    """Distinct bytes the container dirties while running for `seconds`."""
    if i.working_set is None:
        return i.dirty_rate * seconds
    return -i.working_set * math.expm1(-i.dirty_rate * seconds / i.working_set)


def volumes(
    inputs: ModelInputs, rounds: int, start: float | None = None, first_extra: float = 0.0
) -> np.ndarray:
    """V_0..V_rounds by the step-by-step recurrence, from `start` (default M), the first of
    these rounds running `first_extra` seconds longer."""
    v = np.empty(rounds + 1)
    v[0] = inputs.size if start is None else start
    overhead = _round_fixed(inputs)
    for j in range(rounds):
        v[j + 1] = _dirtied(inputs, v[j] / inputs.bandwidth + overhead + first_extra)
        first_extra = 0.0
    return v


def floor_bytes(inputs: ModelInputs) -> float:
    """V*, the residual the rounds converge to; inf when they do not converge."""
    i, overhead = inputs, _round_fixed(inputs)
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
        lo, hi = (mid, hi) if _dirtied(i, mid / b + overhead) >= mid else (lo, mid)
    return lo


# --- policies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Track:
    """The predicted rounds from some start, up to the round cap, and what each one costs."""

    inputs: ModelInputs
    volumes: np.ndarray  # V, from the next round on
    downtimes: np.ndarray  # the downtime if that round were the final one
    freezes: np.ndarray  # the brownout if it were a pre-copy round
    running: np.ndarray  # seconds the container runs during it as a pre-copy round
    first: int  # rounds already done
    sent: tuple[float, ...]  # bytes each round already done sent


def _track(i: ModelInputs, start: float, sent: tuple[float, ...], cap: int) -> _Track:
    first_extra = 0.0 if sent else i.first_round_extra  # round 0 is still to come
    v = volumes(i, cap, start, first_extra)
    running = v / i.bandwidth + _round_fixed(i)
    running[0] += first_extra
    c = _costs(i)
    return _Track(
        inputs=i,
        volumes=v,
        downtimes=c.down_fixed + i.final_round_trips * i.rtt + c.down_per_byte * v,
        freezes=c.freeze_fixed + c.freeze_per_byte * v,
        running=running,
        first=len(sent),
        sent=sent,
    )


@dataclass(frozen=True)
class _Choice:
    rounds: int
    reason: str
    claimed_downtime_s: float | None = None


def _size(x: float) -> str:
    return format_size(x) if math.isfinite(x) else "unbounded"


def _dur(x: float) -> str:
    return format_duration(x) if math.isfinite(x) else "unbounded"


def _latency_aware(t: _Track) -> _Choice:
    i, v, dt = t.inputs, t.volumes, t.downtimes
    cap = len(v) - 1
    if cap == 0:
        return _Choice(0, "no pre-copy round is left under the round cap; stop and copy")
    if i.working_set is None and i.dirty_rate >= i.bandwidth:
        return _Choice(
            0,
            f"the dirty rate {_size(i.dirty_rate)}/s is not below the throughput "
            f"{format_bandwidth(i.bandwidth)}: every round would leave more to send; stop and copy",
        )
    if not dt[1:].min() < dt[0]:
        return _Choice(
            0,
            f"a pre-copy round of {_size(v[0])} takes {_dur(t.running[0])} "
            f"({_dur(_round_fixed(i))} of it round trips and fixed work) and the container dirties "
            f"{_size(v[1])} meanwhile, no less than it sends: iterating cannot beat "
            f"stop-and-copy's {_dur(dt[0])} downtime",
        )
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
        return _Choice(n, _with_brownout(why, t, n))
    # Out of reach: all further rounds together can save at most the gap between the downtime
    # and the floor downtime. Stop once that gap is within floor_tolerance of the floor (or one
    # page), or once the next round would save no more downtime than its dump's freeze is
    # worth (brownout_weight; at 0, once it saves nothing).
    c = _costs(i)
    fixed = c.down_fixed + i.final_round_trips * i.rtt
    floor_dt = fixed + c.down_per_byte * floor
    slack = i.floor_tolerance * floor_dt + c.down_per_byte * PAGE_SIZE
    gain = dt[:-1] - dt[1:]
    near = np.flatnonzero(dt[lo:] - floor_dt <= slack) + lo
    frozen = np.flatnonzero(gain[lo:] <= i.brownout_weight * t.freezes[lo:-1]) + lo
    n = int(min(near[0] if near.size else cap, frozen[0] if frozen.size else cap))
    threshold = (target - fixed) / c.down_per_byte
    if threshold <= 0:
        why = f"dump, restore and the RTT/2 hand-over alone take {_dur(fixed)}"
    elif threshold <= floor:
        why = (
            f"the latency floor V* = {_size(floor)} (what the container dirties during "
            f"{_dur(_round_fixed(i))} of round trips and fixed work per round, compounded)"
            if i.working_set is None
            else f"the floor V* = {_size(floor)} where dirtying the working set balances sending"
        ) + f" keeps downtime at or above {_dur(floor_dt)}"
    else:
        why = f"it needs more rounds than the cap of {i.max_rounds}"
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
    why = f"the {_dur(target)} target is out of reach: {why}; {how} (downtime {_dur(dt[n])})"
    return _Choice(n, _with_brownout(why, t, n))


def _with_brownout(reason: str, t: _Track, n: int) -> str:
    worst = float(t.freezes[:n].max()) if n else 0.0
    if worst <= t.inputs.downtime_target:
        return reason
    return f"{reason}; note each pre-copy dump also freezes the container for up to {_dur(worst)}"


def _stop_and_copy(t: _Track) -> _Choice:
    return _Choice(0, f"no pre-copy: stop the container and send its {_size(t.volumes[0])} at once")


def _latency_blind(t: _Track) -> _Choice:
    blind_inputs = replace(t.inputs, rtt=0.0)
    blind = _track(blind_inputs, t.volumes[0], t.sent, len(t.volumes) - 1)
    c = _latency_aware(blind)
    claimed = float(blind.downtimes[c.rounds])
    reason = (
        f"planned as if RTT were 0: {c.reason}. At the real RTT of {_dur(t.inputs.rtt)} those "
        f"{c.rounds} rounds give {_dur(t.downtimes[c.rounds])}, not {_dur(claimed)}"
    )
    return _Choice(c.rounds, reason, claimed)


def _phaul_stop(index: int, sent: float, before: float | None) -> str | None:
    """p.haul's checks after pre-dump `index` wrote `sent` bytes (`before` the one before)."""
    if sent <= PHAUL_MIN_PAGES * PAGE_SIZE:
        return f"p.haul: pre-dump {index} wrote {_size(sent)}, ≤ 64 pages"
    if before and (sent - before) * 100 / before > PHAUL_MAX_GROW_PERCENT:
        return f"p.haul: pre-dump {index} grew {(sent - before) * 100 / before:.0f}% (>10%)"
    if index >= PHAUL_MAX_ITER_INDEX:
        return f"p.haul: {index + 1} pre-dumps, its most"
    return None


def _phaul(t: _Track) -> _Choice:
    v, sent = t.volumes, t.sent
    # A re-plan first checks the pre-dump just done, as p.haul does before its next one.
    if sent and (why := _phaul_stop(t.first - 1, sent[-1], sent[-2] if len(sent) > 1 else None)):
        return _Choice(0, why)
    previous = sent[-1] if sent else None
    for j in range(len(v) - 1):
        if why := _phaul_stop(t.first + j, float(v[j]), previous):
            return _Choice(j + 1, why)
        previous = float(v[j])
    return _Choice(len(v) - 1, f"p.haul: stopped at the round cap of {t.inputs.max_rounds}")


def _qemu(t: _Track) -> _Choice:
    limit = t.inputs.bandwidth * t.inputs.downtime_target
    hits = np.flatnonzero(t.volumes <= limit)
    if hits.size:
        n = int(hits[0])
        return _Choice(
            n,
            f"QEMU: after {n} rounds {_size(t.volumes[n])} remain, within throughput x "
            f"downtime limit = {_size(limit)}",
        )
    return _Choice(
        len(t.volumes) - 1,
        f"QEMU: the remainder never fell to throughput x downtime limit = {_size(limit)}; "
        f"stopped at the round cap of {t.inputs.max_rounds}",
    )


_POLICIES: dict[str, Callable[[_Track], _Choice]] = {
    "latency-aware": _latency_aware,
    "stop-and-copy": _stop_and_copy,
    "latency-blind": _latency_blind,
    "phaul": _phaul,
    "qemu": _qemu,
}


# --- plans ---------------------------------------------------------------------------------


def _assemble(policy: Policy | Literal["fixed"], t: _Track, choice: _Choice) -> Plan:
    i, n = t.inputs, choice.rounds
    pre = tuple(
        RoundForecast(
            index=t.first + j,
            bytes=float(t.volumes[j]),
            seconds=float(t.freezes[j] + t.running[j]),
            freeze_s=float(t.freezes[j]),
            final=False,
        )
        for j in range(n)
    )
    downtime = float(t.downtimes[n])
    final = RoundForecast(t.first + n, float(t.volumes[n]), downtime, downtime, True)
    per_round = (*pre, final)
    floor = floor_bytes(i)
    c = _costs(i)
    return Plan(
        policy=policy,
        verdict="iterate" if n else "stop-and-copy",
        reason=choice.reason,
        rounds=n,
        first_round=t.first,
        per_round=per_round,
        downtime_s=downtime,
        total_time_s=math.fsum(r.seconds for r in per_round),
        bytes_sent=math.fsum(r.bytes for r in per_round),
        floor_bytes=floor,
        floor_downtime_s=c.down_fixed + i.final_round_trips * i.rtt + c.down_per_byte * floor,
        claimed_downtime_s=downtime
        if choice.claimed_downtime_s is None
        else choice.claimed_downtime_s,
        meets_target=downtime <= i.downtime_target,
        inputs=i,
    )


def _plan_from(policy: str, i: ModelInputs, start: float, sent: tuple[float, ...] = ()) -> Plan:
    if policy not in _POLICIES:
        raise ModelInputError(f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    t = _track(i, start, sent, i.max_rounds)
    return _assemble(cast(Policy, policy), t, _POLICIES[policy](t))


def plan(inputs: ModelInputs, policy: Policy = "latency-aware") -> Plan:
    """Choose the rounds with `policy` and predict them with the latency-aware physics."""
    return _plan_from(policy, inputs, inputs.size)


def compare(inputs: ModelInputs) -> dict[Policy, Plan]:
    """Every policy's plan for the same inputs, in POLICIES order."""
    return {p: plan(inputs, p) for p in POLICIES}


def evaluate(inputs: ModelInputs, rounds: int) -> Plan:
    """The prediction for a caller-chosen number of pre-copy rounds (what-if)."""
    _check("rounds", rounds, positive=False)
    t = _track(inputs, inputs.size, (), rounds)
    return _assemble("fixed", t, _Choice(rounds, f"{rounds} rounds chosen by the caller"))


def replan(
    inputs: ModelInputs,
    done: Sequence[MeasuredRound],
    policy: Policy = "latency-aware",
    rounds: int | None = None,
) -> Plan:
    """The plan for the remaining rounds, from the rounds already done.

    The latest round's measured dirty rate and throughput replace the inputs (as QEMU
    recomputes bandwidth x downtime limit every pass), and what it left dirty is the next
    round's volume. `max_rounds` keeps counting the rounds already done. With `rounds`, the
    policy is not asked: that many more rounds are predicted."""
    if not done:
        return plan(inputs, policy)
    last = done[-1]
    now = replace(
        inputs,
        dirty_rate=last.dirty_rate,
        bandwidth=last.throughput,
        max_rounds=max(0, inputs.max_rounds - len(done)),
    )
    pending = _dirtied(now, last.seconds) if last.dirtied_bytes is None else last.dirtied_bytes
    sent = tuple(r.bytes for r in done)
    if rounds is not None:  # the caller's choice of remaining rounds, predicted (what-if)
        t = _track(now, pending, sent, rounds)
        return _assemble("fixed", t, _Choice(rounds, f"{rounds} more rounds chosen by the caller"))
    return _plan_from(policy, now, pending, sent)


# --- closed form over grids ----------------------------------------------------------------


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
    m, b, k, cap = inputs.size, inputs.bandwidth, inputs.round_trips, inputs.max_rounds
    c = _costs(inputs)
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
