"""The engine's events as the console reads them: back from JSON records, and what the screens
derive from a migration's events and names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.events import (
    LogLine,
    MigrationEvent,
    MigrationFinished,
    Phase,
    PhaseChanged,
    RoundFinished,
    RoundProgress,
    RoundStarted,
)
from whimbrel.backends.hooks import HookRun

_EVENT_TYPES: dict[str, Any] = {
    "PhaseChanged": PhaseChanged,
    "RoundStarted": RoundStarted,
    "RoundProgress": RoundProgress,
    "RoundFinished": RoundFinished,
    "LogLine": LogLine,
    "MigrationFinished": MigrationFinished,
}


def event_from_json(data: dict[str, Any]) -> MigrationEvent | None:
    """The inverse of events.event_json; None for an event this console does not know."""
    kind = _EVENT_TYPES.get(str(data.get("event")))
    if kind is None:
        return None
    fields = {k: v for k, v in data.items() if k in kind.__dataclass_fields__}
    if kind is PhaseChanged:
        fields["phase"] = Phase(fields["phase"])
    if kind is MigrationFinished:
        fields["brownouts_s"] = tuple(fields.get("brownouts_s") or ())
        for parts in ("downtime_parts", "predicted_downtime_parts"):
            fields[parts] = DowntimeParts.from_json(fields.get(parts))
        runs = map(HookRun.from_json, fields.get("hooks") or ())
        fields["hooks"] = tuple(run for run in runs if run)
    try:
        return kind(**fields)
    except TypeError:
        return None


def name_of(container: str) -> str:
    """A container's name from the engine's NODE/NAME (or a bare name)."""
    return container.rpartition("/")[2]


def rounds_began_at(events: Iterable[MigrationEvent]) -> float | None:
    """When the rounds began (seconds into the migration): what came before is preflight,
    which the model's total time does not cover."""
    for e in events:
        if isinstance(e, RoundStarted) or (
            isinstance(e, PhaseChanged) and e.phase in (Phase.PRECOPY, Phase.FINAL)
        ):
            return e.t
    return None
