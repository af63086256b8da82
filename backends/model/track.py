"""The track of rounds a policy chooses from: every round up to the cap, predicted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from whimbrel.backends.model.inputs import ModelInputs
from whimbrel.backends.model.physics import downtime_fixed, round_costs, round_fixed, volumes


@dataclass(frozen=True)
class Track:
    """The predicted rounds from some start, up to the round cap, and what each one costs."""

    inputs: ModelInputs
    volumes: np.ndarray  # V, from the next round on
    downtimes: np.ndarray  # the downtime if that round were the final one
    freezes: np.ndarray  # the brownout if it were a pre-copy round
    running: np.ndarray  # seconds the container runs during it as a pre-copy round
    first: int  # rounds already done
    sent: tuple[float, ...]  # bytes each round already done sent


def track(i: ModelInputs, start: float, sent: tuple[float, ...], cap: int) -> Track:
    first_extra = 0.0 if sent else i.first_round_extra  # round 0 is still to come
    v = volumes(i, cap, start, first_extra)
    running = v / i.bandwidth + round_fixed(i)
    running[0] += first_extra
    c = round_costs(i)
    return Track(
        inputs=i,
        volumes=v,
        downtimes=downtime_fixed(i, c) + c.down_per_byte * v,
        freezes=c.freeze_fixed + c.freeze_per_byte * v,
        running=running,
        first=len(sent),
        sent=sent,
    )
