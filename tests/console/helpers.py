"""Waiting for the console to settle, without sleeping blindly."""

from __future__ import annotations

import io
from collections.abc import Callable

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from whimbrel.app.screens.history import HistoryScreen
from whimbrel.widgets.container_table import ContainerTable


async def until(pilot: Pilot, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    waited = 0.0
    while not condition():
        if waited >= timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.02)
        waited += 0.02
    await pilot.pause()


async def settled(pilot: Pilot, ref: str = "east-1/kv") -> None:
    """Every node answered, `ref` is under the cursor, its charts have their data."""
    app = pilot.app
    await until(pilot, lambda: app.observed is not None and app.observed.all_answered)
    app.screen.query_one(ContainerTable).move_to(ref)
    await until(pilot, lambda: app.selected == ref and app.target is not None)
    pair = (ref.split("/")[0], app.target)
    await until(
        pilot, lambda: pair in app.observed.rtt_last and len(app.observed.dirty.get(ref, ())) >= 90
    )


async def history_opened(pilot: Pilot) -> DataTable:
    """The history screen opened from the main screen (h), its fake two records listed."""
    app = pilot.app
    await settled(pilot)
    await pilot.press("h")
    await until(pilot, lambda: isinstance(app.screen, HistoryScreen))
    table = app.screen.query_one(DataTable)
    await until(pilot, lambda: table.row_count == 2)
    return table


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text."""
    return plain(widget.content)


def plain(renderable: object, width: int = 200) -> str:
    """A Rich renderable as plain text."""
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()
