"""The console's settings: the config file's `[console]` table, validated, and what the console
remembers between runs (the theme) under $XDG_STATE_HOME/whimbrel/.

    [console]
    theme = "whimbrel-light"      # a theme name (the last one picked in the console wins,
                                  # until this line changes)
    read_only = true              # no migration can start from this console
    refresh = "5s"                # inventory refresh, at least 1 s
    rtt_every = "2s"              # RTT probe of the selected path, at least 1 s
    downtime_target = "300ms"     # the preview's starting downtime target
    lazy_restore = true           # its migrations restore lazily (README: the risk)
    keys = { "main.migrate" = "M", "app.quit" = "ctrl+q" }   # binding id = key(s)

Errors name the file and the field, like every config error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whimbrel.backends.config import Config, ConfigError
from whimbrel.backends.units import UnitError, parse_duration

MIN_INTERVAL_S = 1.0  # k9s keeps a floor under its refresh too: polling faster only adds load
_KEY = re.compile(r"^(?:[a-z0-9_]+(?:\+[a-z0-9_]+)*|[!-~])$")


@dataclass(frozen=True)
class ConsoleSettings:
    theme: str | None = None  # None: the remembered one, else the default
    read_only: bool = False
    refresh_s: float = 5.0
    rtt_every_s: float = 2.0
    downtime_target_s: float = 0.3
    lazy_restore: bool = False
    keys: Mapping[str, str] = field(default_factory=dict)


def console_settings(
    config: Config | None, themes: Collection[str], binding_ids: Collection[str]
) -> ConsoleSettings:
    """The `[console]` table as settings; ConfigError naming the field when it is wrong."""
    defaults = ConsoleSettings()
    if config is None:
        return defaults
    table = config.console
    where = f"{config.path}: console"
    allowed = {
        "theme", "read_only", "refresh", "rtt_every", "downtime_target", "lazy_restore", "keys"
    }  # fmt: skip
    for key in table:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"{where}.{key}: unknown field (known here: {known})")

    theme = table.get("theme")
    if theme is not None and (not isinstance(theme, str) or theme not in themes):
        raise ConfigError(
            f"{where}.theme: expected one of {', '.join(sorted(themes))}, got {theme!r}"
        )
    read_only, lazy_restore = (_flag(table, where, key) for key in ("read_only", "lazy_restore"))
    keys = _keys(table, where, binding_ids)  # its errors come before the intervals'
    return ConsoleSettings(
        theme=theme,
        read_only=read_only,
        lazy_restore=lazy_restore,
        refresh_s=_interval(table, where, "refresh", defaults.refresh_s, MIN_INTERVAL_S),
        rtt_every_s=_interval(table, where, "rtt_every", defaults.rtt_every_s, MIN_INTERVAL_S),
        downtime_target_s=_interval(
            table, where, "downtime_target", defaults.downtime_target_s, 0.0
        ),
        keys=keys,
    )


def _flag(table: Mapping[str, Any], where: str, key: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: expected true or false, got {value!r}")
    return value


def _interval(
    table: Mapping[str, Any], where: str, key: str, default: float, floor: float
) -> float:
    value = table.get(key)
    if value is None:
        return default
    try:
        seconds = parse_duration(str(value), f"{where}.{key}", allow_zero=False)
    except UnitError as exc:
        raise ConfigError(str(exc)) from None
    if seconds < floor:
        raise ConfigError(f"{where}.{key}: at least {floor:g} s, got {value!r}")
    return seconds


def _keys(table: Mapping[str, Any], where: str, binding_ids: Collection[str]) -> dict[str, str]:
    """`keys`, each binding id known and each value key names, as Textual's keymap wants."""
    keys = table.get("keys", {})
    if not isinstance(keys, Mapping):
        raise ConfigError(f'{where}.keys: expected a table such as {{ "app.quit" = "ctrl+q" }}')
    for binding_id, value in keys.items():
        if binding_id not in binding_ids:
            known = ", ".join(sorted(binding_ids))
            raise ConfigError(f"{where}.keys.{binding_id}: no binding has this id (ids: {known})")
        parts = value.split(",") if isinstance(value, str) else [None]
        if not all(isinstance(p, str) and _KEY.match(p.strip()) for p in parts):
            raise ConfigError(
                f'{where}.keys.{binding_id}: expected key names such as "m", "ctrl+q" or '
                f'"f5,ctrl+r", got {value!r}'
            )
    return {k: ",".join(p.strip() for p in v.split(",")) for k, v in keys.items()}


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "whimbrel"


class RememberedState:
    """What the console remembers between runs, in one small JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "console.json"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def theme(self, config_theme: str | None, themes: Collection[str]) -> str | None:
        """The theme picked last, unless the config's `theme` changed since it was picked: an
        edit of the config is the newer wish."""
        data = self._load()
        picked = data.get("theme")
        if picked not in themes:
            return config_theme
        if config_theme is not None and data.get("config_theme") != config_theme:
            return config_theme
        return picked

    def remember_theme(self, theme: str, config_theme: str | None) -> None:
        data = self._load()
        data.update(theme=theme, config_theme=config_theme)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2) + "\n")
            tmp.replace(self.path)
        except OSError:
            pass  # a read-only home must not break the console; the theme is just not kept
