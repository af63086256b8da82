"""A plan: a policy's choice of rounds on the track, assembled into the forecast it gives."""

from __future__ import annotations

import math
from typing import Literal, cast

from whimbrel.backends.model.forecast import POLICIES, Plan, Policy, RoundForecast
from whimbrel.backends.model.inputs import ModelInputError, ModelInputs, check
from whimbrel.backends.model.physics import downtime_fixed, floor_bytes, round_costs
from whimbrel.backends.model.policies import POLICY_RULES, Choice
from whimbrel.backends.model.track import Track, track


def assemble(policy: Policy | Literal["fixed"], t: Track, choice: Choice) -> Plan:
    """The plan that runs `choice.rounds` pre-copy rounds of the track, then the final one."""
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
    c = round_costs(i)
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
        floor_downtime_s=downtime_fixed(i, c) + c.down_per_byte * floor,
        claimed_downtime_s=downtime
        if choice.claimed_downtime_s is None
        else choice.claimed_downtime_s,
        meets_target=downtime <= i.downtime_target,
        inputs=i,
    )


def plan_from(policy: str, i: ModelInputs, start: float, sent: tuple[float, ...] = ()) -> Plan:
    """`policy`'s plan from a residual of `start` bytes, after rounds that sent `sent`."""
    if policy not in POLICY_RULES:
        raise ModelInputError(f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    t = track(i, start, sent, i.max_rounds)
    return assemble(cast(Policy, policy), t, POLICY_RULES[policy](t))


def plan(inputs: ModelInputs, policy: Policy = "latency-aware") -> Plan:
    """Choose the rounds with `policy` and predict them with the latency-aware physics."""
    return plan_from(policy, inputs, inputs.whole_bytes)


def compare(inputs: ModelInputs) -> dict[Policy, Plan]:
    """Every policy's plan for the same inputs, in POLICIES order."""
    return {p: plan(inputs, p) for p in POLICIES}


def evaluate(inputs: ModelInputs, rounds: int) -> Plan:
    """The prediction for a caller-chosen number of pre-copy rounds (what-if)."""
    check("rounds", rounds, positive=False)
    t = track(inputs, inputs.whole_bytes, (), rounds)
    return assemble("fixed", t, Choice(rounds, f"{rounds} rounds chosen by the caller"))
