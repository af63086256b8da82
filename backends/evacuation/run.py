"""Running an evacuation's plan: its migrations, at most `concurrency` at once, launched in the
plan's order as slots free, their events merged into one stream, each tagged with its
container. One failure does not stop the others unless asked; an abort stops launching and
asks every running migration to roll back at its next round boundary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any

from whimbrel.backends.engine import Migration, MigrationRequest
from whimbrel.backends.evacuation.plan import EvacuationPlan, Move
from whimbrel.backends.events import MigrationEvent, MigrationFinished
from whimbrel.backends.ssh import SessionPool


@dataclass(frozen=True)
class MoveEvent:
    """An engine event of one of the evacuation's migrations."""

    ref: str  # the container, as the plan names it
    event: MigrationEvent


@dataclass(frozen=True)
class MoveStarted:
    ref: str
    target: str
    t: float  # from the evacuation's start


@dataclass(frozen=True)
class MoveResult:
    ref: str
    target: str
    ok: bool
    running_on: str
    started_s: float | None  # None: never started
    ended_s: float | None
    downtime_s: float | None = None
    predicted_downtime_s: float | None = None  # the evacuation's plan's, on the link's share
    planned_duration_s: float | None = None
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_s is None or self.ended_s is None:
            return None
        return self.ended_s - self.started_s


@dataclass(frozen=True)
class EvacuationFinished:
    results: tuple[MoveResult, ...]  # in the plan's order
    wall_s: float
    planned_s: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def migrations_s(self) -> float:
        """The migrations' own times added up: what one after another would have taken."""
        return sum(r.duration_s or 0.0 for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "wall_s": self.wall_s,
            "planned_s": self.planned_s,
            "migrations_s": self.migrations_s,
            "results": [
                {
                    "container": r.ref,
                    "to": r.target,
                    "ok": r.ok,
                    "running_on": r.running_on,
                    "started_s": r.started_s,
                    "ended_s": r.ended_s,
                    "downtime_s": r.downtime_s,
                    "predicted_downtime_s": r.predicted_downtime_s,
                    "planned_duration_s": r.planned_duration_s,
                    "error": r.error,
                }
                for r in self.results
            ],
        }


EvacuationEvent = MoveStarted | MoveEvent | EvacuationFinished
MigrationFactory = Callable[[SessionPool, MigrationRequest], Migration]


class Evacuation:
    """Iterate `events()` to run the plan; `abort()` stops it cleanly (see the module)."""

    def __init__(
        self,
        pool: SessionPool,
        plan: EvacuationPlan,
        template: MigrationRequest,
        *,
        stop_on_failure: bool = False,
        migration: MigrationFactory = Migration,
    ) -> None:
        self.pool, self.plan, self.template = pool, plan, template
        self.stop_on_failure = stop_on_failure
        self._migration = migration
        self._stopping: str | None = None  # why no more migrations start
        self._running: dict[str, Migration] = {}

    def abort(self) -> None:
        self._stopping = self._stopping or "not started: the evacuation was aborted"
        for migration in self._running.values():
            migration.abort()

    async def events(self) -> AsyncIterator[EvacuationEvent]:
        started = time.monotonic()
        queue: asyncio.Queue[EvacuationEvent | MoveResult] = asyncio.Queue()
        slots = asyncio.Semaphore(self.plan.concurrency)
        results: dict[str, MoveResult] = {}

        async def run(move: Move) -> None:
            async with slots:
                if self._stopping:
                    queue.put_nowait(self._not_started(move, self._stopping))
                    return
                begun = time.monotonic() - started
                queue.put_nowait(MoveStarted(move.ref, move.target, begun))
                request = replace(
                    self.template, container=move.ref, target=move.target, path=move.path
                )
                migration = self._migration(self.pool, request)
                self._running[move.ref] = migration
                finished: MigrationFinished | None = None
                try:
                    async for event in migration.events():
                        queue.put_nowait(MoveEvent(move.ref, event))
                        if isinstance(event, MigrationFinished):
                            finished = event
                except Exception as exc:  # the engine reports its failures; this is a bug's
                    error = f"{type(exc).__name__}: {exc}"
                    queue.put_nowait(self._ended(move, begun, started, None, error))
                    return
                finally:
                    self._running.pop(move.ref, None)
                queue.put_nowait(self._ended(move, begun, started, finished, None))

        tasks = [asyncio.create_task(run(move)) for move in self.plan.moves]
        try:
            while len(results) < len(tasks):
                item = await queue.get()
                if isinstance(item, MoveResult):
                    results[item.ref] = item
                    if not item.ok and item.started_s is not None and self.stop_on_failure:
                        self._stopping = self._stopping or f"not started: {item.ref} failed"
                    continue
                yield item
        finally:
            # Leaving early (the caller stopped reading): the migrations must still end
            # cleanly, each at its next round boundary, never cut off mid-hand-over.
            if len(results) < len(tasks):
                self.abort()
            with suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks)
        yield EvacuationFinished(
            tuple(results[m.ref] for m in self.plan.moves),
            time.monotonic() - started,
            self.plan.total_time_s,
        )

    def _not_started(self, move: Move, why: str) -> MoveResult:
        return MoveResult(move.ref, move.target, False, move.src, None, None, error=why)

    def _ended(
        self,
        move: Move,
        begun: float,
        started: float,
        finished: MigrationFinished | None,
        error: str | None,
    ) -> MoveResult:
        return MoveResult(
            move.ref,
            move.target,
            ok=bool(finished and finished.ok),
            running_on=finished.running_on if finished else "unknown",
            started_s=begun,
            ended_s=time.monotonic() - started,
            downtime_s=finished.downtime_s if finished else None,
            predicted_downtime_s=move.plan.downtime_s,
            planned_duration_s=move.duration_s,
            error=error or (finished.error if finished else "ended without a result"),
        )
