"""Preview, confirmation, progress and abort of one migration, on the fake backend
(evacuations: test_evacuation_flow.py)."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Button, Input, Static

from tests.console.conftest import SIZE
from tests.console.fake_backend import MEASURED_PARTS, PREDICTED_PARTS, FakeBackend
from tests.console.helpers import settled, text_of, until
from whimbrel.app.screens.main import MainScreen
from whimbrel.app.screens.migrate import MigrateModal
from whimbrel.app.screens.preview import PreviewScreen
from whimbrel.app.screens.progress import ProgressScreen
from whimbrel.app.settings import ConsoleSettings
from whimbrel.backends.costs import Costs
from whimbrel.backends.events import MigrationFinished, PhaseChanged, RoundFinished
from whimbrel.backends.inventory import NodeInventory
from whimbrel.backends.units import format_duration
from whimbrel.widgets.container_table import ContainerTable
from whimbrel.widgets.downtime_bar import DowntimeBar


async def _preview(pilot) -> PreviewScreen:
    await settled(pilot)
    await pilot.press("enter")
    await until(pilot, lambda: getattr(pilot.app.screen, "plan", None) is not None)
    return pilot.app.screen


async def test_preview_measures_the_path_and_shows_a_plan(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _preview(pilot)
        assert isinstance(screen, PreviewScreen)
        plan = screen.plan
        assert plan is not None
        assert ("east-1", "west-1") in app.observed.throughput
        # Planned from what the fake backend measured: its RTT (40 ms + 1), its throughput,
        # the container's size and a dirty rate within its samples' +-15% wobble.
        container = app.selected_container()
        assert container is not None and container.memory_bytes
        assert plan.inputs.rtt == pytest.approx(0.041)
        assert plan.inputs.bandwidth == pytest.approx(24.4e6)
        assert plan.inputs.size == container.memory_bytes
        rate = 4 * 2**20 if container.name == "hot" else 300 * 1024
        assert 0.85 * rate <= plan.inputs.dirty_rate <= 1.15 * rate
        # Its rounds: the pre-copy ones, then exactly one final round, last.
        assert [r.final for r in plan.per_round] == [False] * plan.rounds + [True]


async def test_the_plan_follows_each_keystroke_of_the_downtime_target(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _preview(pilot)
        box = screen.query_one("#downtime", Input)
        box.focus()
        box.value = ""
        await pilot.press(*"5s")
        relaxed = screen.plan
        assert relaxed is not None and relaxed.meets_target
        assert app.downtime_target_s == 5.0
        await pilot.press("backspace", "backspace", *"50ms")
        assert screen.plan is not None and not screen.plan.meets_target
        await pilot.press("x")  # not a duration: said so, the last good plan stays
        assert screen.query_one("#downtime-error").display
        assert app.downtime_target_s == 0.05


async def test_choosing_another_target_replans_for_it(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _preview(pilot)
        await pilot.press("down")
        assert app.target == "west-2"


async def test_the_migrate_modal_names_everything_and_focuses_cancel(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _preview(pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MigrateModal))
        assert app.focused is app.screen.query_one("#cancel", Button)
        body = text_of(app.screen.query_one("#dialog-body", Static))
        for word in ("kv", "east-1", "west-1", "downtime"):
            assert word in body
        await pilot.press("enter")  # Cancel
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen))
        assert app.backend.migrations == []


async def test_confirming_runs_the_migration_and_events_arrive_in_order(make_app) -> None:
    backend = FakeBackend()
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await _preview(pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MigrateModal))
        await pilot.press("right", "enter")
        await until(pilot, lambda: isinstance(app.screen, ProgressScreen) and app.screen.done)
        screen = app.screen
        phases = [e.phase.value for e in screen.events if isinstance(e, PhaseChanged)]
        assert phases == ["preflight", "precopy", "final", "restore", "cleanup", "done"]
        rounds = [e for e in screen.events if isinstance(e, RoundFinished)]
        assert [r.final for r in rounds] == [False, False, True]
        assert isinstance(screen.events[-1], MigrationFinished) and screen.events[-1].ok
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        table = app.screen.query_one(ContainerTable)
        await until(pilot, lambda: table.current_ref == "west-1/kv")  # the cursor followed kv


class SlowSource(FakeBackend):
    """Once a migration has ended, east-1 (kv's source) takes longer to answer than the test
    looks: the target's answer comes first, as it often does on the lab."""

    async def node_inventory(self, node: str) -> NodeInventory:
        if node == "east-1" and self.ended:
            await asyncio.Event().wait()
        return await super().node_inventory(node)


async def test_a_moved_container_leaves_its_source_row_before_the_source_answers_again(
    make_app,
) -> None:
    app = make_app(SlowSource())
    async with app.run_test(size=SIZE) as pilot:
        progress = await _migrating(pilot)
        await until(pilot, lambda: progress.done)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        table = app.screen.query_one(ContainerTable)
        await until(pilot, lambda: table.current_ref == "west-1/kv")
        assert "east-1/kv" not in table.visible_refs


async def _migrating(pilot) -> ProgressScreen:
    await _preview(pilot)
    await pilot.press("m")
    await until(pilot, lambda: isinstance(pilot.app.screen, MigrateModal))
    await pilot.press("right", "enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, ProgressScreen))
    return pilot.app.screen


def _downtime_rows(screen: ProgressScreen) -> dict[str, list[str]]:
    """The downtime bar's rows by label: the bar line, then its legend lines."""
    rows: dict[str, list[str]] = {}
    for line in screen.query_one(DowntimeBar).render().plain.splitlines():
        label = line.split(" ", 1)[0]
        if label:
            rows[label] = [line]
        else:
            rows[list(rows)[-1]].append(line)
    return rows


def _legend(parts) -> list[str]:
    return [f"{name} {format_duration(s)}" for name, s in parts.named() if s > 0]


async def test_while_it_runs_the_downtime_bar_shows_the_plans_prediction_only(make_app) -> None:
    app = make_app(FakeBackend(hold_migrations=True))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _migrating(pilot)
        await until(pilot, lambda: any(isinstance(e, RoundFinished) for e in screen.events))
        plan = screen.order.plan
        assert plan is not None
        rows = _downtime_rows(screen)
        assert list(rows) == ["predicted"]
        assert format_duration(plan.downtime_s) in rows["predicted"][0]
        legend = " ".join(rows["predicted"][1:])
        assert all(item in legend for item in _legend(plan.downtime_parts))
        app.backend.migrations[0].release()
        await until(pilot, lambda: screen.done)


async def test_the_finished_migration_draws_measured_downtime_against_predicted(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _migrating(pilot)
        await until(pilot, lambda: screen.done)
        rows = _downtime_rows(screen)
        assert list(rows) == ["predicted", "measured"]
        # The engine's prediction (the plan's differs), and the parts the hand-over measured.
        plan = screen.order.plan
        assert plan is not None and plan.downtime_parts != PREDICTED_PARTS
        for label, parts in (("predicted", PREDICTED_PARTS), ("measured", MEASURED_PARTS)):
            assert format_duration(parts.total_s) in rows[label][0]
            legend = " ".join(rows[label][1:])
            assert [item for item in _legend(parts) if item not in legend] == []
        assert "freeze" not in " ".join(rows["predicted"])  # 0 s in the model: no legend


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
async def test_the_consoles_restore_setting_goes_with_the_order_and_its_plan(
    make_app, monkeypatch: pytest.MonkeyPatch, lazy: bool
) -> None:
    costs = Costs(restore_time_s=0.2, restore_rate=1e9)
    monkeypatch.setattr("whimbrel.backends.costs.DEFAULT_COSTS", costs)
    settings = ConsoleSettings(refresh_s=3600, rtt_every_s=3600, lazy_restore=lazy)
    app = make_app(FakeBackend(hold_migrations=True), settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _migrating(pilot)
        order = app.backend.migrations[0].order
        assert order.lazy_restore is lazy
        # The plan confirmed is the one for that restore: lazily, none of it grows with M.
        assert order.plan is not None and screen.order.plan == order.plan
        grows = 0.0 if lazy else (order.container.memory_bytes or 0) / 1e9
        assert order.plan.downtime_parts.restore_s == pytest.approx(0.2 + grows)
        app.backend.migrations[0].release()
        await until(pilot, lambda: screen.done)


async def test_a_failed_migration_says_its_downtime_was_not_measured(make_app) -> None:
    app = make_app(FakeBackend(fail_migrations="west-1: disk full"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _migrating(pilot)
        await until(pilot, lambda: screen.done)
        rows = _downtime_rows(screen)
        assert rows["measured"] == ["measured   none: the migration failed"]
        plan = screen.order.plan
        assert plan is not None  # the event brought no prediction: the plan's stands
        assert format_duration(plan.downtime_s) in rows["predicted"][0]


async def test_abort_before_the_final_round_rolls_back(make_app) -> None:
    backend = FakeBackend(hold_migrations=True)
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await _preview(pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MigrateModal))
        await pilot.press("right", "enter")
        await until(pilot, lambda: isinstance(app.screen, ProgressScreen))
        screen = app.screen
        await until(pilot, lambda: any(isinstance(e, RoundFinished) for e in screen.events))
        await pilot.press("q")  # quitting mid-migration is refused
        assert app.is_running
        await pilot.press("a")
        await until(pilot, lambda: screen.done)
        finished = screen.events[-1]
        assert isinstance(finished, MigrationFinished) and not finished.ok
        assert backend.migrations[0].aborted
        summary = text_of(screen.query_one("#progress-summary", Static))
        assert "kv is running on east-1" in summary
        assert [c.node for c in backend.containers if c.name == "kv"] == ["east-1"]


async def test_an_engine_error_says_where_the_container_runs(make_app) -> None:
    app = make_app(FakeBackend(crash_migrations="connection to east-1 lost"))
    async with app.run_test(size=SIZE) as pilot:
        await _preview(pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MigrateModal))
        await pilot.press("right", "enter")
        await until(pilot, lambda: isinstance(app.screen, ProgressScreen) and app.screen.done)
        summary = app.screen.query_one("#progress-summary", Static)
        await until(pilot, lambda: "kv is running on east-1, where it was" in text_of(summary))
        assert "engine error in preflight: connection to east-1 lost" in text_of(summary)


async def test_an_engine_error_after_the_move_says_the_move_went_through(make_app) -> None:
    app = make_app(FakeBackend(crash_in_cleanup="No such file or directory: 'master'"))
    async with app.run_test(size=SIZE) as pilot:
        await _preview(pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MigrateModal))
        await pilot.press("right", "enter")
        await until(pilot, lambda: isinstance(app.screen, ProgressScreen) and app.screen.done)
        summary = app.screen.query_one("#progress-summary", Static)
        await until(pilot, lambda: "went through" in text_of(summary))
        assert "kv is running on west-1, the target" in text_of(summary)
        assert "engine error in cleanup" in text_of(summary)
