"""The live log of a migration: one line per event, newest at the bottom, bounded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import RichLog

MAX_LINES = 1000


class EventLog(RichLog):
    def __init__(self, colours: Callable[[], Mapping[str, str]], **kwargs: Any) -> None:
        # RichLog draws lines at least 78 cells wide by default: on an 80-column terminal,
        # inside a border, that scrolled the log sideways. Its lines wrap to its width instead.
        super().__init__(max_lines=MAX_LINES, wrap=True, markup=False, min_width=40, **kwargs)
        self._colours = colours

    def add(self, elapsed_s: float, text: str, level: str = "info") -> None:
        """A line of the migration's log, stamped with its seconds since the start."""
        colours = self._colours()
        style = {"warning": colours.get("warning", ""), "error": colours.get("error", "")}.get(
            level, ""
        )
        line = Table.grid(padding=(0, 1))
        line.add_column(width=8, justify="right", style="dim")
        line.add_column()  # wrapped lines hang under the text, not under the time
        line.add_row(f"{elapsed_s:.2f}s", Text(text, style=style))
        self.write(line)
