"""Past migrations, read from the engine's JSON records."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whimbrel.app.engine_events import event_from_json
from whimbrel.backends.events import MigrationEvent
from whimbrel.backends.history import history_dir, read_records


@dataclass(frozen=True)
class HistoryRecord:
    """A past migration, from the engine's JSON record."""

    path: str
    started_at: float | None
    container: str
    src: str
    dst: str
    ok: bool
    status: str  # done, failed, or pending (a run that died; `whimbrel migrate` settles it)
    running_on: str
    mode: str
    rounds: int
    downtime_s: float | None
    predicted_downtime_s: float | None
    total_time_s: float | None
    predicted_total_time_s: float | None
    bytes_sent: int | None
    predicted_bytes: float | None
    brownouts_s: tuple[float, ...] = ()
    error: str | None = None
    events: tuple[MigrationEvent, ...] = field(default=(), compare=False)


def _finite_number(value: Any) -> float | None:
    """A record's number as a float; None for a missing, non-numeric or non-finite value."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def record_from_json(path: Path, data: dict[str, Any]) -> HistoryRecord:
    events = tuple(e for e in map(event_from_json, data.get("events") or ()) if e is not None)
    bytes_sent = _finite_number(data.get("bytes_sent"))
    return HistoryRecord(
        path=str(path),
        started_at=_finite_number(data.get("started_at")),
        container=str(data.get("container", "?")),
        src=str(data.get("src", "?")),
        dst=str(data.get("dst", "?")),
        ok=bool(data.get("ok")),
        status=str(data.get("status") or ("done" if data.get("ok") else "failed")),
        running_on=str(data.get("running_on", "?")),
        mode=str(data.get("mode", "?")),
        rounds=int(data.get("rounds") or 0),
        downtime_s=_finite_number(data.get("downtime_s")),
        predicted_downtime_s=_finite_number(data.get("predicted_downtime_s")),
        total_time_s=_finite_number(data.get("total_time_s")),
        predicted_total_time_s=_finite_number(data.get("predicted_total_time_s")),
        bytes_sent=int(bytes_sent) if bytes_sent is not None else None,
        predicted_bytes=_finite_number(data.get("predicted_bytes")),
        brownouts_s=tuple(float(b) for b in data.get("brownouts_s") or ()),
        error=data.get("error"),
        events=events,
    )


def read_history(limit: int = 200) -> list[HistoryRecord]:
    """The engine's records, newest first."""
    records = read_records()[:limit]
    return [record_from_json(history_dir() / f"{r.get('id')}.json", r) for r in records]
