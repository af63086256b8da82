"""SVG snapshots of the console's main screens at 120x40, and at 80x24 (a common terminal:
the narrow, short layout), on the deterministic fake backend.

Update after an intended change with `pytest tests/console --snapshot-update`, then look at
the SVGs under tests/console/__snapshots__/."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input

from tests.console.conftest import SIZE, SMALL
from tests.console.helpers import settled, until


def _no_blink(pilot: Pilot) -> None:
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False


def test_main_screen(snap_compare, make_app) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_plan_preview(snap_compare, make_app) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: getattr(pilot.app.screen, "plan", None) is not None)
        _no_blink(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_migrate_modal(snap_compare, make_app) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: getattr(pilot.app.screen, "plan", None) is not None)
        await pilot.press("m")
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "MigrateModal")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_progress_screen(snap_compare, make_app) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: getattr(pilot.app.screen, "plan", None) is not None)
        await pilot.press("m")
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "MigrateModal")
        await pilot.press("right", "enter")
        await until(pilot, lambda: getattr(pilot.app.screen, "done", False))

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_main_screen_at_80x24_folds_the_cluster_panel_and_shows_every_number(
    snap_compare, make_app
) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run_before)


def test_main_screen_at_80x24_opens_the_cluster_panel_on_n(snap_compare, make_app) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("n")
        await until(pilot, lambda: pilot.app.screen.query_one("#nodes").has_focus)

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run_before)


def test_plan_preview_at_80x24_stacks_the_choices_above_the_plan(snap_compare, make_app) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: getattr(pilot.app.screen, "plan", None) is not None)
        _no_blink(pilot)

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run_before)


def test_plan_preview_at_80x24_scrolls_to_the_rounds_and_charts(snap_compare, make_app) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: getattr(pilot.app.screen, "plan", None) is not None)
        _no_blink(pilot)
        await pilot.press("tab", "end")  # to the plan's column, then to its end

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run_before)
