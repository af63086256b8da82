"""What a migration is asked to do (checked before anything is touched), and how it fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from whimbrel.backends import model
from whimbrel.backends.errors import UsageError, WhimbrelError

Mode = Literal["auto", "iterative", "stop-and-copy"]
MODES: tuple[Mode, ...] = ("auto", "iterative", "stop-and-copy")


@dataclass(frozen=True)
class KnownPath:
    """The path as measured before the migration: its preflight then probes nothing."""

    rtt_s: float
    bandwidth: float  # bytes/s this migration may count on (an evacuation's share of the link)

    def __post_init__(self) -> None:
        if not (self.rtt_s >= 0 and self.bandwidth > 0):
            raise UsageError(f"a known path needs RTT >= 0 and bandwidth > 0: {self}")


@dataclass(frozen=True)
class MigrationRequest:
    container: str  # NODE/NAME, name or id prefix
    target: str  # node name
    mode: Mode = "auto"
    downtime_target_s: float = 0.3
    keep_source: bool = False
    max_rounds: int = 8
    probe_bytes: int = 16 * 1024 * 1024
    # Exactly this many pre-copy rounds, whatever the model says (benchmarks compare policies
    # this way); None lets the model choose.
    rounds: int | None = None
    # The model's policy for choosing rounds (benchmarks compare them); latency-aware is ours.
    policy: model.Policy = "latency-aware"
    # Seconds of downtime one second of pre-copy freeze is worth to the planner (0: the least
    # downtime; 1: stop once the next round freezes the container longer than it saves).
    brownout_weight: float = 0.0
    # Restore lazily on the target: the process resumes before its memory is copied in, which
    # CRIU's lazy-pages daemon fills from the page files there (remote/restorework.py: the risk).
    lazy_restore: bool = False
    path: KnownPath | None = None  # None: preflight probes the path itself

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if not self.downtime_target_s > 0:
            raise UsageError("--downtime-target must be more than zero")
        if self.policy not in model.POLICIES:
            raise UsageError(f"--policy: {self.policy!r} is not one of {', '.join(model.POLICIES)}")
        if not self.brownout_weight >= 0:
            raise UsageError("--brownout-weight must be zero or more")
        if self.rounds is not None and not 0 <= self.rounds <= model.MAX_ROUND_CAP:
            raise UsageError(f"--rounds must be between 0 and {model.MAX_ROUND_CAP}")


class MigrationFailed(WhimbrelError):
    def __init__(self, message: str, running_on: str) -> None:
        super().__init__(message)
        self.running_on = running_on
