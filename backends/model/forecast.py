"""What a plan predicts: the policies' names, each round's forecast, and the plan itself."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.model.inputs import ModelInputs
from whimbrel.backends.model.physics import downtime_parts

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

    @property
    def downtime_parts(self) -> DowntimeParts:
        """The predicted downtime in the hand-over's parts (they add up to downtime_s)."""
        return downtime_parts(self.inputs, self.final_round.bytes)

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
            "downtime_parts": asdict(self.downtime_parts),
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
