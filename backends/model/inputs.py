"""What the model plans from, and the checks every input passes."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from whimbrel.backends.errors import UsageError

PAGE_SIZE = 4096
MAX_ROUND_CAP = 10_000  # bounds the arrays a plan allocates


class ModelInputError(UsageError, ValueError):
    """A model input is negative, not finite, or otherwise impossible."""


def check(name: str, value: float, *, positive: bool) -> None:
    """Raise ModelInputError unless `value` is a finite number, at least (or more than) zero."""
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
    # The final dump's fixed part, the container paused (None: dump_time): the downtime's, where
    # the pre-copy rounds' dumps (dump_time) also leave it running.
    final_dump_time: float | None = None
    # The share of M whose pages differ from each other: a round that sends the whole state
    # (round 0, a stop-and-copy) carries that much, as the data path sends a repeated page
    # once (measured by the dirty-rate sampler's page digests; 1 when unknown).
    distinct_share: float = 1.0

    def __post_init__(self) -> None:
        for name in _NON_NEGATIVE:
            check(name, getattr(self, name), positive=False)
        check("bandwidth", self.bandwidth, positive=True)
        check("distinct_share", self.distinct_share, positive=True)
        if self.distinct_share > 1:
            raise ModelInputError(f"distinct share must be at most 1, got {self.distinct_share}")
        for name in ("working_set", "dump_rate"):
            if getattr(self, name) is not None:
                check(name, getattr(self, name), positive=True)
        if self.final_dump_time is not None:
            check("final_dump_time", self.final_dump_time, positive=False)
        try:
            rounds = operator.index(self.max_rounds)
        except TypeError:
            msg = f"max rounds must be a whole number, got {self.max_rounds!r}"
            raise ModelInputError(msg) from None
        if not 0 <= rounds <= MAX_ROUND_CAP:
            raise ModelInputError(f"max rounds must be between 0 and {MAX_ROUND_CAP}")
        object.__setattr__(self, "max_rounds", rounds)

    @property
    def whole_bytes(self) -> float:
        """What a round that sends the whole state puts on the link."""
        return self.size * self.distinct_share
