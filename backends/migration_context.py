"""What every phase of one migration shares: who it is, what was asked, and its journal (the
events it yields, stamped with the time since it started, and its history record)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from whimbrel.backends.costs import Costs
from whimbrel.backends.events import LogLine, MigrationEvent, Phase, PhaseChanged, event_json
from whimbrel.backends.history import write_record
from whimbrel.backends.migration_record import MigrationRecord
from whimbrel.backends.migration_request import MigrationRequest
from whimbrel.backends.ssh import SessionPool

T = TypeVar("T")


class Journal:
    """The events a migration yields, each kept for its record as it goes out, and the record
    itself (written again at every step `recover` may need)."""

    def __init__(self, record: MigrationRecord) -> None:
        self.record = record
        self.events: list[dict[str, Any]] = []
        self._t0 = time.monotonic()

    def elapsed_s(self) -> float:
        """Seconds since the migration started."""
        return time.monotonic() - self._t0

    def emit(self, event: MigrationEvent) -> MigrationEvent:
        self.events.append(event_json(event))
        return event

    def phase(self, phase: Phase, message: str = "") -> MigrationEvent:
        return self.emit(PhaseChanged(phase, self.elapsed_s(), message))

    def log(self, text: str, level: str = "info") -> MigrationEvent:
        return self.emit(LogLine(text, self.elapsed_s(), level))

    def save(self) -> Path:
        return write_record(self.record.to_json())


@dataclass(frozen=True)
class MigrationContext:
    """One migration, as each of its phases sees it."""

    id: str
    pool: SessionPool
    request: MigrationRequest
    costs: Costs
    failpoints: dict[str, str]  # inert unless whimbrel's own fault tests arm them
    journal: Journal
    aborted: asyncio.Event = field(default_factory=asyncio.Event)


class PhaseRun(Generic[T]):
    """A phase run for its events, its result kept: the phase yields events, then its result
    last. `async for event in run: yield event`, then `run.result`."""

    def __init__(self, items: AsyncIterator[MigrationEvent | T]) -> None:
        self._items = items
        self._result: T | None = None

    async def __aiter__(self) -> AsyncIterator[MigrationEvent]:
        async for item in self._items:
            if isinstance(item, MigrationEvent):
                yield item
            else:
                self._result = item

    @property
    def result(self) -> T:
        if self._result is None:
            raise RuntimeError("the phase ended without its result")
        return self._result
