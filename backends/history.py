"""Migration history: one JSON record per migration, written when it starts (pending) and
rewritten when it ends, under $XDG_STATE_HOME/whimbrel/history. A record still pending when
whimbrel starts again belongs to a run that died; `engine.recover` settles it from the nodes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def history_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("WHIMBREL_HISTORY"):
        return Path(env["WHIMBREL_HISTORY"]).expanduser()
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "whimbrel" / "history"


def write_record(record: Mapping[str, Any], directory: Path | None = None) -> Path:
    directory = directory or history_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(path)
    return path


def read_records(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every readable record, newest first. One that is not a record (truncated, hand-edited,
    another tool's file) is set aside as NAME.json.bad with a warning: the operator's own
    state never stops the tool."""
    directory = directory or history_dir()
    records = []
    for path in directory.glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except OSError:
            continue  # rewritten or removed meanwhile: read next time
        except ValueError as exc:
            _set_aside(path, f"not JSON ({exc})")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            _set_aside(path, "not a migration record")
        elif not isinstance(record.get("started_at", 0), (int, float)):
            _set_aside(path, "its started_at is not a time")
        else:
            records.append(record)
    return sorted(records, key=lambda r: r.get("started_at", 0), reverse=True)


def _set_aside(path: Path, why: str) -> None:
    bad = path.with_name(path.name + ".bad")
    try:
        path.replace(bad)
    except OSError as exc:
        log.warning("history: %s is %s and could not be set aside: %s", path, why, exc)
        return
    log.warning("history: %s is %s: set aside as %s", path, why, bad.name)
