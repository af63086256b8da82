"""What a migration reports while it runs: typed events, in order, from the engine's async
generator to whoever shows them (the console's progress screen, `migrate --json`, benchmarks).

Sequence: PhaseChanged(preflight) ... RoundStarted(0), RoundProgress(0) ..., RoundFinished(0)
... RoundFinished(final=True) ... PhaseChanged(done | failed) and last MigrationFinished.
LogLine may come at any point. RoundProgress is only streamed, never kept in the record: it
comes twice a second while a pre-copy round sends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.hooks import HookRun


class Phase(StrEnum):
    PREFLIGHT = "preflight"  # checks on both nodes, image shipped if missing
    PRECOPY = "precopy"  # rounds while the container runs
    FINAL = "final"  # container frozen: last dump and send
    RESTORE = "restore"  # restore on the target, wait until it serves
    CLEANUP = "cleanup"  # source container removed (or kept stopped), temp files removed
    ROLLBACK = "rollback"  # something failed: source resumed, target cleaned
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class PhaseChanged:
    phase: Phase
    t: float  # seconds since the migration started
    message: str = ""


@dataclass(frozen=True)
class RoundStarted:
    index: int
    final: bool
    planned_bytes: float  # what the model expects this round to send
    predicted_seconds: float
    t: float


@dataclass(frozen=True)
class RoundProgress:
    """How far a pre-copy round's send got (the source's agent says so twice a second)."""

    index: int
    sent_bytes: int  # the round's stream handed to the link so far
    planned_bytes: float  # what the model expects this round to send (as RoundStarted)
    send_s: float  # seconds since the round's send began (dumped, sessions ready): the node's clock
    rate_bytes_per_s: float | None  # over the last few seconds; None until two lines came
    eta_s: float | None  # the planned bytes not yet sent at that rate; None when unknown
    t: float


@dataclass(frozen=True)
class RoundFinished:
    index: int
    final: bool
    planned_bytes: float
    sent_bytes: int  # what crossed the link (only pages the target did not hold)
    state_bytes: int  # the size of the state captured this round
    seconds: float  # the round, capture to acknowledged
    freeze_s: float  # how long the container was frozen for this round's capture
    dirty_rate: float  # bytes/s measured over the round
    throughput: float  # bytes/s measured over the round's transfer
    link_utilisation: float  # sent / seconds / measured bandwidth of the path
    predicted_remaining_rounds: int  # pre-copy rounds the re-planned model still wants
    predicted_downtime_s: float  # the re-planned model's downtime
    t: float


@dataclass(frozen=True)
class LogLine:
    text: str
    t: float
    level: str = "info"  # info, warning, error


@dataclass(frozen=True)
class MigrationFinished:
    ok: bool
    container: str
    src: str
    dst: str
    running_on: str  # where the container runs now, whatever happened
    mode: str  # stop-and-copy or iterative
    rounds: int  # pre-copy rounds run (the final round not counted)
    downtime_s: float | None  # freeze to serving on the target
    predicted_downtime_s: float | None
    total_time_s: float
    predicted_total_time_s: float | None
    bytes_sent: int
    predicted_bytes: float | None
    brownouts_s: tuple[float, ...] = ()
    # The downtime in the hand-over's parts, measured (None where no clock saw the commit)
    # and as the plan the final round ran under predicted it.
    downtime_parts: DowntimeParts | None = None
    predicted_downtime_parts: DowntimeParts | None = None
    lazy_restore: bool = False  # restored lazily: its memory filled after it resumed
    lazy_fill_s: float | None = None  # from the lazy restore reaching its daemon to the fill's end
    hooks: tuple[HookRun, ...] = ()  # the config's hooks as they ran (backends/hooks.py)
    error: str | None = None
    record: str | None = None  # path of the JSON history record
    t: float = 0.0
    extra: dict = field(default_factory=dict, hash=False, compare=False)


MigrationEvent = (
    PhaseChanged | RoundStarted | RoundProgress | RoundFinished | LogLine | MigrationFinished
)


def event_json(event: MigrationEvent) -> dict:
    """One JSON object per event, with its kind, for `migrate --json` lines and records."""
    return {"event": type(event).__name__, **asdict(event)}
