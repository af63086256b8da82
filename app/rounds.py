"""A migration's rounds as bars: the rounds the plan predicted, each replaced by the engine's
own as it starts and finishes them. The progress screen feeds it events as they come, the
history screen a record's events at once, the preview only the plan."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from whimbrel.backends.events import MigrationEvent, RoundFinished, RoundProgress, RoundStarted
from whimbrel.widgets.round_bars import RoundBar

if TYPE_CHECKING:
    from whimbrel.backends.model import Plan

RoundKey = int | Literal["final"]


class RoundRows:
    def __init__(self, plan: Plan | None = None, *, migration_running: bool = False) -> None:
        """`migration_running`: a round started and not finished yet is running (in a record,
        it died)."""
        self._migration_running = migration_running
        self._rows: dict[RoundKey, RoundBar] = {}
        for r in plan.per_round if plan is not None else ():
            self._rows[_key(r.final, r.index)] = RoundBar(
                r.index, r.final, r.bytes, predicted_s=r.seconds
            )

    def add(self, event: MigrationEvent) -> None:
        """File a round's start, progress or end; other events change nothing."""
        if isinstance(event, RoundStarted):
            if event.final:  # the engine stopped iterating: rounds it no longer plans go
                self._rows = {k: r for k, r in self._rows.items() if r.actual_bytes is not None}
            self._rows[_key(event.final, event.index)] = RoundBar(
                event.index,
                event.final,
                event.planned_bytes,
                predicted_s=event.predicted_seconds,
                running=self._migration_running,
            )
        elif isinstance(event, RoundProgress):
            key = _key(False, event.index)  # only pre-copy rounds say how far they got
            running = self._rows.get(key)
            if running is not None and running.actual_bytes is None:
                self._rows[key] = replace(
                    running,
                    sent_so_far=event.sent_bytes,
                    rate=event.rate_bytes_per_s,
                    eta_s=event.eta_s,
                )
        elif isinstance(event, RoundFinished):
            key = _key(event.final, event.index)
            before = self._rows.get(key)
            self._rows[key] = RoundBar(
                event.index,
                event.final,
                event.planned_bytes,
                event.sent_bytes,
                before.predicted_s if before else None,
                event.seconds,
            )

    def bars(self) -> list[RoundBar]:
        """The rounds in order, the final one last."""
        return sorted(self._rows.values(), key=lambda r: (r.final, r.index))


def _key(final: bool, index: int) -> RoundKey:
    return "final" if final else index
