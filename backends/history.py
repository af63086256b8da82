"""Migration history: one JSON record per migration, written when it starts (pending) and
rewritten when it ends, under $XDG_STATE_HOME/whimbrel/history. A record still pending when
whimbrel starts again belongs to a run that died; `engine.recover` settles it from the nodes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


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
    """Every readable record, newest first."""
    directory = directory or history_dir()
    records = []
    for path in directory.glob("*.json"):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda r: r.get("started_at", 0), reverse=True)
