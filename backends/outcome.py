"""How a migration ended, built up as it runs and while its cleanup undoes what preflight
made: the finished event and the history record are written from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from whimbrel.backends.downtime import DowntimeParts

# Where the hand-over stands: fired with its end unknown, ended, or ended with the committed
# source container not removed yet.
Handover = Literal["running", "settled", "source left"]


@dataclass(frozen=True)
class Delivered:
    """What a migration that reached its target measured and predicted."""

    mode: str
    rounds: int  # pre-copy rounds run
    downtime_s: float | None  # None when the commit's answer was lost: no clock saw it
    downtime_parts: DowntimeParts | None  # the daemon's split of downtime_s
    predicted_downtime_s: float
    predicted_downtime_parts: DowntimeParts
    predicted_total_time_s: float
    predicted_bytes: float
    bytes_sent: int
    brownouts_s: tuple[float, ...]
    handover: dict[str, Any]  # the source daemon's own account of the hand-over, as written


@dataclass
class Outcome:
    """Where the container ended and what is left to settle; the cleanup steps add to it."""

    ok: bool = False
    error: str | None = None
    running_on: str = "unknown"
    handover: Handover | None = None
    warnings: list[str] = field(default_factory=list)
    cleanup_incomplete: bool = False
    delivered: Delivered | None = None
    # A lazy restore's fill as the target's lazy-pages daemon summed it up once it ended:
    # {"fill_s", "pages", "of"} (remote/restorework.py's lazy_fill).
    lazy_fill: dict[str, Any] | None = None
    lazy_daemon_ended: bool = False  # the target saw its lazy-pages daemon end

    def unsettled(self) -> bool:
        """The hand-over was fired and its end is not known: nothing may be undone meanwhile."""
        return self.handover == "running"

    def for_recover(self) -> bool:
        """What `recover` still has to settle from (the source's work dir, the target's record):
        a hand-over whose end is unknown, or a committed one whose source is not removed yet."""
        return self.unsettled() or self.handover == "source left"

    def cleanup_failed(self, warning: str) -> None:
        """A cleanup step that could not be done: the record stays pending for `recover`."""
        self.warnings.append(warning)
        self.cleanup_incomplete = True

    def link_revoked(self, said: dict[str, Any]) -> None:
        """What the target said as the link went: a lazy restore's fill, and whether its
        daemon still ran when the link could wait no longer."""
        self.lazy_fill = said.get("lazy_fill")
        self.lazy_daemon_ended = "lazy_fill_wait_s" in said and not said.get("warning")
        if said.get("warning"):
            self.warnings.append(f"target: {said['warning']}")

    def lazy_fill_unconfirmed(self) -> str | None:
        """What to say when a committed lazy restore's daemon ended without summing up its
        fill: it may have died with pages unfilled, which read as zeros."""
        handover = self.delivered.handover if self.delivered else {}
        lazy = self.ok and handover.get("lazy_restore") and self.lazy_daemon_ended
        if not lazy or self.lazy_fill:
            return None
        return (
            "the lazy restore's daemon ended without summing up its fill: pages it did not fill "
            "read as zeros; check the container's data"
        )

    def pending_for(self) -> str | None:
        """What the history record stays pending for, if anything."""
        if self.for_recover():
            return "handover"
        return "cleanup" if self.cleanup_incomplete else None
