"""SVG snapshots of the console's screens at 120x40, and at 80x24 (a common terminal: the
narrow, short layout), on the deterministic fake backend.

Update after an intended change with `pytest tests/console --snapshot-update`, then look at
the SVGs under tests/console/__snapshots__/."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from tests.console.conftest import SIZE, SMALL
from tests.console.fake_backend import FakeBackend
from tests.console.helpers import settled, text_of, until
from tests.console.test_evacuation_flow import (
    at_once,
    confirmed,
    evacuate_marked,
    evacuate_node,
    planned,
    rows,
)
from tests.console.test_readiness import examined, opened
from whimbrel.app.settings import ConsoleSettings


def _no_blink(pilot: Pilot) -> None:
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """History shows local times: its snapshots read them in UTC wherever they are taken."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def _migrated(pilot: Pilot) -> None:
    """kv migrated to west-1 through preview and modal, until the run is done."""
    await settled(pilot)
    await pilot.press("enter")
    await until(pilot, lambda: getattr(pilot.app.screen, "plan", None) is not None)
    await pilot.press("m")
    await until(pilot, lambda: type(pilot.app.screen).__name__ == "MigrateModal")
    await pilot.press("right", "enter")
    await until(pilot, lambda: getattr(pilot.app.screen, "done", False))


async def _history(pilot: Pilot) -> None:
    await settled(pilot)
    await pilot.press("h")
    await until(pilot, lambda: type(pilot.app.screen).__name__ == "HistoryScreen")
    await until(pilot, lambda: pilot.app.screen.query_one(DataTable).row_count == 2)


async def _evacuating_kv_and_web(pilot: Pilot) -> None:
    await settled(pilot)
    await pilot.press("space")  # kv
    await settled(pilot, "west-1/web")
    await pilot.press("space", "e")
    await planned(pilot)


async def _evacuation_running(pilot: Pilot) -> None:
    """kv, hot and queue evacuated two at once: two halfway through round 0, one waiting."""
    await at_once(pilot, await evacuate_marked(pilot, "east-1/kv", "east-1/hot", "east-2/queue"), 2)
    progress = await confirmed(pilot)
    halfway = "9 MiB of 22 MiB sent"
    await until(pilot, lambda: sum(halfway in r for r in rows(progress).values()) == 2)


async def _evacuation_ended(pilot: Pilot) -> None:
    """east-1 evacuated, hot's migration failing: the summary."""
    await evacuate_node(pilot)
    progress = await confirmed(pilot)
    await until(pilot, lambda: progress.done)
    summary = progress.query_one("#progress-summary", Static)
    await until(pilot, lambda: "hot is running on east-1" in text_of(summary))


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
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_migrated)


def test_a_failed_migration_says_it_stopped_and_where_the_container_runs(
    snap_compare, make_app
) -> None:
    app = make_app(FakeBackend(fail_migrations="west-1: no space left on device"))
    assert snap_compare(app, terminal_size=SIZE, run_before=_migrated)


def test_welcome_screen_says_where_the_config_was_looked_for(snap_compare, make_app) -> None:
    async def run_before(pilot: Pilot) -> None:
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "WelcomeScreen")

    assert snap_compare(make_app(no_config=True), terminal_size=SIZE, run_before=run_before)


def test_help_lists_the_main_screens_keys_with_their_ids(snap_compare, make_app) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_history_screen(snap_compare, make_app, utc) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_history)


def test_main_screen_in_the_light_theme(snap_compare, make_app) -> None:
    settings = ConsoleSettings(refresh_s=3600, rtt_every_s=3600, theme="whimbrel-light")

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)

    assert snap_compare(make_app(settings=settings), terminal_size=SIZE, run_before=run_before)


def test_evacuate_screen(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_evacuating_kv_and_web)


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


def test_progress_at_80x24_scrolls_to_the_whole_summary_below_a_log_that_keeps_its_lines(
    snap_compare, make_app
) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=_migrated)


def test_a_failed_migration_at_80x24_shows_its_whole_summary(snap_compare, make_app) -> None:
    app = make_app(FakeBackend(fail_migrations="west-1: no space left on device"))
    assert snap_compare(app, terminal_size=SMALL, run_before=_migrated)


def test_history_at_80x24_keeps_outcome_downtime_total_and_bytes_in_view(
    snap_compare, make_app, utc
) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=_history)


def test_evacuate_at_80x24_shows_every_rows_plan_and_the_combined_prediction(
    snap_compare, make_app
) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=_evacuating_kv_and_web)


def test_evacuation_progress_shows_the_migrations_side_by_side(snap_compare, make_app) -> None:
    app = make_app(FakeBackend(hold_mid_round=True))
    assert snap_compare(app, terminal_size=SIZE, run_before=_evacuation_running)


def test_evacuation_progress_at_80x24_keeps_every_row_in_view_the_log_below(
    snap_compare, make_app
) -> None:
    app = make_app(FakeBackend(hold_mid_round=True))
    assert snap_compare(app, terminal_size=SMALL, run_before=_evacuation_running)


def test_an_evacuations_summary_says_where_each_container_runs(snap_compare, make_app) -> None:
    app = make_app(FakeBackend(failing={"hot": "west-1: no space left on device"}))
    assert snap_compare(app, terminal_size=SIZE, run_before=_evacuation_ended)


def test_an_evacuations_summary_at_80x24_shows_whole(snap_compare, make_app) -> None:
    app = make_app(FakeBackend(failing={"hot": "west-1: no space left on device"}))
    assert snap_compare(app, terminal_size=SMALL, run_before=_evacuation_ended)


# east-2 fails a required check and has a warning; west-1 has a warning only.
DOCTOR_FINDS = {"east-2": ("experimental", "soft-dirty"), "west-1": ("lazy-pages",)}


def test_the_cluster_panel_marks_an_unready_node_and_one_with_warnings(
    snap_compare, make_app
) -> None:
    async def run_before(pilot: Pilot) -> None:
        await examined(pilot)

    app = make_app(FakeBackend(doctor_finds=DOCTOR_FINDS))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def _readiness_of_east_2(pilot: Pilot) -> None:
    await opened(pilot, "east-2/queue")


def test_readiness_lists_every_check_and_the_remedy_under_each_failure(
    snap_compare, make_app
) -> None:
    app = make_app(FakeBackend(doctor_finds=DOCTOR_FINDS))
    assert snap_compare(app, terminal_size=SIZE, run_before=_readiness_of_east_2)


def test_readiness_at_80x24_fits_and_scrolls(snap_compare, make_app) -> None:
    app = make_app(FakeBackend(doctor_finds=DOCTOR_FINDS))
    assert snap_compare(app, terminal_size=SMALL, run_before=_readiness_of_east_2)
