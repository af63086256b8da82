"""A node's readiness for migrations: every check its doctor ran, passed or not, and under each
one that failed what to do, as `whimbrel doctor NODE` prints them. `r` asks the doctor again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from whimbrel.app.changes import ReadinessChanged
from whimbrel.app.screens.base import ConsoleScreen, colours_of
from whimbrel.backends.doctor import Check, NodeReport

NOT_CHECKED = "Not checked yet: the doctor examines a node once it first answers. r asks it now."


def _colour(check: Check) -> str:
    return "success" if check.ok else "error" if check.required else "warning"


def checks_table(report: NodeReport, colours: Mapping[str, str]) -> Table:
    """One row a check: its mark, name and what it found; the remedy on a row of its own."""
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_header=False, expand=True)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, style="bold")
    table.add_column(ratio=1)
    for check in report.checks:
        colour = colours.get(_colour(check), "")
        table.add_row(Text(check.mark, style=colour), check.name, check.detail)
        if check.remedy:
            table.add_row("", "", Text(f"→ {check.remedy}", style=colour))
    return table


class ReadinessScreen(ConsoleScreen, ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="readiness.close"),
        Binding("r", "recheck", "Re-check", id="readiness.recheck"),
    ]

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="readiness"):
            yield Static(id="readiness-checks")
        yield Footer()

    def on_mount(self) -> None:
        self._show()

    @on(ReadinessChanged)
    def _readiness_changed(self) -> None:
        self._show()

    def _show(self) -> None:
        observed = self.console.observed
        assert observed is not None
        report = observed.readiness.get(self.node)
        box = self.query_one("#readiness", VerticalScroll)
        verdict = report.verdict if report else "not checked yet"
        box.border_title = f"{self.node} ({observed.cluster_of(self.node)}): {verdict}"
        checking = self.node in observed.examining
        box.border_subtitle = "checking…" if checking else "r re-checks  ·  esc closes"
        box.set_class(report is not None and not report.ready, "-unready")
        body = (
            checks_table(report, colours_of(self.app))
            if report
            else Text("Checking…" if checking else NOT_CHECKED, style="dim")
        )
        self.query_one("#readiness-checks", Static).update(body)

    def action_recheck(self) -> None:
        observed = self.console.observed
        assert observed is not None
        if self.node not in observed.examining:  # a second ask would restart the first
            self.console.examine(self.node)

    def action_close(self) -> None:
        self.dismiss(None)
