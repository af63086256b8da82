"""Re-planning: the rounds the engine has carried out, and the plan for the rest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from whimbrel.backends.model.forecast import Plan, Policy
from whimbrel.backends.model.inputs import ModelInputs, check
from whimbrel.backends.model.physics import dirtied
from whimbrel.backends.model.planning import assemble, plan, plan_from
from whimbrel.backends.model.policies import Choice
from whimbrel.backends.model.track import track


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
            check(name, getattr(self, name), positive=False)
        check("throughput", self.throughput, positive=True)
        if self.dirtied_bytes is not None:
            check("dirtied_bytes", self.dirtied_bytes, positive=False)


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
    pending = dirtied(now, last.seconds) if last.dirtied_bytes is None else last.dirtied_bytes
    sent = tuple(r.bytes for r in done)
    if rounds is not None:  # the caller's choice of remaining rounds, predicted (what-if)
        t = track(now, pending, sent, rounds)
        return assemble("fixed", t, Choice(rounds, f"{rounds} more rounds chosen by the caller"))
    return plan_from(policy, now, pending, sent)
