"""Past migrations from the engine's records: predicted against measured, and the rounds of
the highlighted one."""

from __future__ import annotations

import time
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from whimbrel.app.changes import HistoryChanged
from whimbrel.app.engine_events import name_of, rounds_began_at
from whimbrel.app.history_records import HistoryRecord
from whimbrel.app.rounds import RoundRows
from whimbrel.app.screens.base import ConsoleScreen, against_prediction, colours_of
from whimbrel.backends.units import format_duration, format_size
from whimbrel.widgets.round_bars import RoundBars

# (key, header): each header names what its cells hold, in the words of `whimbrel history`
# and of the plan preview; (PRED) is the model's prediction, after the measured value.
# What a record is judged by comes first: on a narrow terminal (80 columns) the table scrolls
# sideways past ROUNDS, and the highlighted record's line below says path, mode and when.
COLUMNS = (
    ("container", "CONTAINER"),
    ("status", "STATUS"),  # done, failed, or pending: not always a result yet
    ("downtime", "DOWNTIME (PRED)"),
    ("total", "TOTAL (PRED)"),  # seconds from the first round on, as the model's total
    ("sent", "SENT (PRED)"),  # bytes sent, every round and the final one
    ("rounds", "ROUNDS"),  # pre-copy rounds run
    ("mode", "MODE"),
    ("path", "FROM → TO"),
    ("when", "WHEN"),
)


def _rounds_time(r: HistoryRecord) -> float | None:
    """The time from the first round on: what the model's total covers (not preflight)."""
    began = rounds_began_at(r.events)
    if r.total_time_s is None or began is None:
        return r.total_time_s
    return r.total_time_s - began


def _when(r: HistoryRecord) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(r.started_at)) if r.started_at else "?"


class HistoryScreen(ConsoleScreen, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="history.back"),
        Binding("r", "reload", "Reload", id="history.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.records: list[HistoryRecord] = []

    def compose(self) -> ComposeResult:
        colours = lambda: colours_of(self.app)  # noqa: E731 - read at each draw
        yield Header()
        yield DataTable(cursor_type="row", id="history-table")
        yield Static(id="history-detail")
        yield RoundBars(colours, id="history-rounds")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.border_title = "History"
        self.query_one("#history-rounds").border_title = "Rounds: predicted against sent"
        for key, header in COLUMNS:
            table.add_column(header, key=key)
        self.query_one("#history-detail", Static).update(Text("reading records…", style="dim"))
        self.console.load_history()
        table.focus()

    @on(HistoryChanged)
    def _history_changed(self) -> None:
        self._show(self.console.history_records or [], self.console.history_error)

    def on_screen_resume(self) -> None:
        if self.console.history_records is not None and (
            self.console.history_records is not self.records
        ):
            self._history_changed()  # the records were read again while it was covered

    def _show(self, records: list[HistoryRecord], error: str | None) -> None:
        colours = colours_of(self.app)
        self.records = records
        table = self.query_one(DataTable)
        table.clear()  # a reload is rare and operator-driven: rebuilding is fine here
        cell = partial(against_prediction, missing="-", label="")  # the headers say PRED
        for r in records:
            style = {"done": "success", "pending": "warning"}.get(r.status, "error")
            table.add_row(
                Text(name_of(r.container), style="bold"),
                Text(r.status, style=colours.get(style, "")),
                cell(r.downtime_s, r.predicted_downtime_s, format_duration),
                cell(_rounds_time(r), r.predicted_total_time_s, format_duration),
                cell(r.bytes_sent, r.predicted_bytes, format_size),
                str(r.rounds),
                r.mode,
                f"{r.src} → {r.dst}",
                _when(r),
                key=r.path,
            )
        detail = self.query_one("#history-detail", Static)
        if error:
            detail.update(Text(f"cannot read the records: {error}", style=colours.get("error")))
        elif not records:
            detail.update(Text("No migrations recorded yet.", style="dim"))
        self._show_detail()

    def _show_detail(self) -> None:
        table = self.query_one(DataTable)
        if not self.records or not table.row_count:
            self.query_one(RoundBars).show_rounds([], show_actual=True)
            return
        record = self.records[min(table.cursor_row, len(self.records) - 1)]
        colours = colours_of(self.app)
        text = Text.assemble(
            (name_of(record.container), "bold"),
            f"  {record.src} → {record.dst}  {_when(record)}, {record.mode}, "
            f"{record.rounds} round{'s' if record.rounds != 1 else ''}",
        )
        if record.ok:
            text.append(f"   now on {record.running_on}", style=colours.get("success", ""))
        else:
            text.append(
                f"   failed: {record.error or '?'}; it ran on {record.running_on} after",
                style=colours.get("error", ""),
            )
        if record.brownouts_s:
            text.append(
                f"   brownouts: {len(record.brownouts_s)}, longest "
                f"{format_duration(max(record.brownouts_s))}"
            )
        self.query_one("#history-detail", Static).update(text)
        rounds = RoundRows()
        for event in record.events:
            rounds.add(event)
        self.query_one(RoundBars).show_rounds(rounds.bars(), show_actual=True)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_detail()

    def action_reload(self) -> None:
        self.console.load_history()

    def action_back(self) -> None:
        self.app.pop_screen()
