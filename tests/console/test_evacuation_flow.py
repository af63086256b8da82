"""Evacuation in the console, on the fake backend: planned by the planner `whimbrel evacuate`
uses, from what the console measured; confirmed; its migrations run at once, side by side;
aborted; summed up; and back to the main screen."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, OptionList, Static

from tests.console.conftest import SIZE
from tests.console.fake_backend import FakeBackend
from tests.console.helpers import plain, settled, text_of, until
from whimbrel.app.messages import EvacuationProgress
from whimbrel.app.planning import console_request
from whimbrel.app.screens.evacuate import DIRTY_SAMPLES, EvacuateScreen
from whimbrel.app.screens.evacuation_progress import EvacuationProgressScreen
from whimbrel.app.screens.main import MainScreen
from whimbrel.app.screens.migrate import MigrateModal
from whimbrel.app.settings import ConsoleSettings
from whimbrel.backends import costs
from whimbrel.backends.evacuation import EvacuationPlan, MoveEvent, Placement, plan_evacuation
from whimbrel.backends.events import Phase, PhaseChanged
from whimbrel.backends.units import format_duration
from whimbrel.widgets.container_table import ContainerTable
from whimbrel.widgets.node_list import NodeList

MiB = 1 << 20


async def planned(pilot: Pilot) -> EvacuateScreen:
    """The evacuate screen once its containers' samples are in and the plan is made."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, EvacuateScreen))
    screen = app.screen

    def sampled() -> bool:
        return all(len(app.observed.dirty.get(ref, ())) >= DIRTY_SAMPLES for ref in screen.refs)

    await until(pilot, lambda: sampled() and screen.plan is not None)
    return screen


async def evacuate_node(pilot: Pilot, node: str = "east-1") -> EvacuateScreen:
    """The evacuate screen opened on a whole node from the cluster panel, its plan ready."""
    app = pilot.app
    await settled(pilot)
    await pilot.press("n")
    nodes = app.screen.query_one(NodeList)
    await until(pilot, lambda: nodes.has_focus)
    nodes.highlighted = nodes.get_option_index(node)
    await pilot.press("e")
    return await planned(pilot)


async def evacuate_marked(pilot: Pilot, *refs: str) -> EvacuateScreen:
    """The evacuate screen opened on the marked containers, its plan ready."""
    app = pilot.app
    await settled(pilot)
    table = app.screen.query_one(ContainerTable)
    for ref in refs:
        table.move_to(ref)
        await until(pilot, lambda ref=ref: app.selected == ref)
        await pilot.press("space")
    await pilot.press("e")
    return await planned(pilot)


async def confirmed(pilot: Pilot) -> EvacuationProgressScreen:
    """m on the evacuate screen, then Migrate in the modal."""
    app = pilot.app
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, MigrateModal))
    await pilot.press("right", "enter")
    await until(pilot, lambda: isinstance(app.screen, EvacuationProgressScreen))
    return app.screen


async def at_once(pilot: Pilot, screen: EvacuateScreen, concurrency: int) -> None:
    while screen.concurrency != concurrency:
        await pilot.press("c")
    await until(pilot, lambda: screen.plan is not None and screen.plan.concurrency == concurrency)


async def run_out(pilot: Pilot, progress: EvacuationProgressScreen) -> None:
    """Release every held migration (those that start meanwhile too) until the end."""

    def released() -> bool:
        for migration in pilot.app.backend.migrations:
            migration.release()
        return progress.done

    await until(pilot, released)


def rows(screen: EvacuationProgressScreen) -> dict[str, str]:
    """Each migration's row as plain text, by container ref."""
    options = screen.query_one("#evacuation-moves", OptionList).options
    return {str(o.id): plain(o.prompt) for o in options}


def total(screen: EvacuateScreen) -> str:
    return text_of(screen.query_one("#evacuate-total", Static))


def summary(screen: EvacuationProgressScreen) -> str:
    return text_of(screen.query_one("#progress-summary", Static))


async def test_evacuating_a_node_plans_with_the_shared_planner_from_what_the_console_measured(
    make_app,
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await evacuate_node(pilot)
        observed = app.observed
        refs = ["east-1/hot", "east-1/kv"]
        template = console_request(app.downtime_target_s, app.settings.lazy_restore)

        def expected() -> EvacuationPlan:
            return plan_evacuation(
                [observed.leaving(observed.container(ref)) for ref in refs],
                Placement(screen.targets),
                {("east-1", "west-1"): observed.route(("east-1", "west-1"))},
                template,
                costs.DEFAULT_COSTS,
            )

        await until(pilot, lambda: screen.plan == expected())
        leaving = [observed.leaving(observed.container(ref)) for ref in refs]
        route = observed.route(("east-1", "west-1"))
        # What the console measured: Docker's memory use, the sampled dirty rate, the path's
        # RTT (40 ms + 1) and throughput.
        assert [c.size for c in leaving] == [128 * MiB, 22 * MiB]
        assert 0.85 * 4 * MiB <= leaving[0].dirty_rate <= 1.15 * 4 * MiB
        assert route is not None and route.rtt == pytest.approx(0.041)
        assert route.bandwidth == pytest.approx(24.4e6)
        # west-2 does not answer: west-1 is the one target with room.
        assert screen.targets == {"east-1/hot": "west-1", "east-1/kv": "west-1"}
        plan = screen.plan
        table = screen.query_one(DataTable)
        for move in plan.moves:
            assert [str(cell) for cell in table.get_row(move.ref)][2:] == [
                "west-1",
                move.mode,
                str(move.plan.rounds),
                format_duration(move.plan.downtime_s),
                format_duration(move.duration_s),
                f"+{move.start_s:.1f} s",
            ]
        said = total(screen)
        assert f"{plan.concurrency} at once (the planner's choice" in said
        assert "one after another" in said


async def test_targets_go_to_the_node_with_the_most_memory_left_largest_first(make_app) -> None:
    # west-1 has 200 MiB, west-2 120 MiB: hot (128 MiB) first, to west-1; then kv (22 MiB) to
    # west-2, which has more left than west-1 then.
    memory = {"west-1": 200 * MiB, "west-2": 120 * MiB}
    app = make_app(FakeBackend(unreachable=(), memory_available=memory))
    async with app.run_test(size=SIZE) as pilot:
        screen = await evacuate_node(pilot)
        assert screen.targets == {"east-1/hot": "west-1", "east-1/kv": "west-2"}
        assert {m.ref: m.target for m in screen.plan.moves} == screen.targets


async def test_a_container_no_target_has_room_for_stays_and_the_screen_says_why(make_app) -> None:
    app = make_app(FakeBackend(memory_available={"west-1": 100 * MiB}))
    async with app.run_test(size=SIZE) as pilot:
        screen = await evacuate_node(pilot)
        assert [m.ref for m in screen.plan.moves] == ["east-1/kv"]
        assert [s.ref for s in screen.plan.stays] == ["east-1/hot"]
        assert "east-1/hot stays: no target has 128 MiB of memory to spare" in total(screen)
        assert "stays, below" in str(screen.query_one(DataTable).get_row("east-1/hot")[3])


async def test_t_chooses_another_target_and_the_plan_follows(make_app) -> None:
    app = make_app(FakeBackend(unreachable=()))
    async with app.run_test(size=SIZE) as pilot:
        screen = await evacuate_node(pilot)
        # Both placed on west-2, which has the most memory (4 GiB against 1).
        assert set(screen.targets.values()) == {"west-2"}
        assert ("east-1", "west-1") not in app.observed.throughput
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("east-1/kv"))
        await pilot.press("t")
        await until(pilot, lambda: screen.plan is not None)
        assert screen.targets == {"east-1/kv": "west-1", "east-1/hot": "west-2"}
        assert screen.plan.move("east-1/kv").target == "west-1"
        assert ("east-1", "west-1") in app.observed.throughput  # its path measured
        assert table.border_subtitle == "targets as you chose them"
        await pilot.press("T")  # all of them to kv's target
        await until(pilot, lambda: screen.plan is not None)
        assert {m.target for m in screen.plan.moves} == {"west-1"}


async def test_c_cycles_how_many_at_once_and_the_plan_follows(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await evacuate_node(pilot)
        for expected in (1, 2):
            await pilot.press("c")
            await until(pilot, lambda e=expected: screen.plan.concurrency == e)
            assert screen.concurrency == expected
            assert f"{expected} at once (yours" in total(screen)
        await pilot.press("c")  # two containers: past two, back to the planner's choice
        await until(pilot, lambda: screen.concurrency is None)
        assert "(the planner's choice" in total(screen)


async def test_the_evacuations_requests_carry_the_consoles_downtime_target_and_restore(
    make_app,
) -> None:
    settings = ConsoleSettings(
        refresh_s=3600, rtt_every_s=3600, lazy_restore=True, downtime_target_s=0.5
    )
    backend = FakeBackend()
    app = make_app(backend, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        screen = await evacuate_node(pilot)
        planned = screen.plan
        progress = await confirmed(pilot)
        await until(pilot, lambda: progress.done)
        plan, template = backend.evacuations[0]
        assert plan == planned
        assert template.downtime_target_s == 0.5 and template.lazy_restore
        assert all(m.order.lazy_restore and m.order.downtime_target_s == 0.5
                   for m in backend.migrations)  # fmt: skip


async def test_the_migrations_run_at_once_each_row_showing_its_rounds_progress(make_app) -> None:
    backend = FakeBackend(hold_mid_round=True)
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await evacuate_marked(pilot, "east-1/kv", "east-1/hot", "east-2/queue")
        await at_once(pilot, screen, 2)
        progress = await confirmed(pilot)
        # Two at once, each halfway through its first round; the third waits its turn.
        halfway = "9 MiB of 22 MiB sent"
        await until(pilot, lambda: sum(halfway in r for r in rows(progress).values()) == 2)
        assert len(backend.migrations) == 2
        first, second = (m.ref for m in progress.plan.moves[:2])
        third = progress.plan.moves[2].ref
        assert "waits its turn" in rows(progress)[third]
        assert "running 2 · moved 0 · failed 0 · waiting 1" in text_of(
            progress.query_one("#progress-head", Static)
        )
        await pilot.press("q")  # quitting mid-evacuation is refused
        assert app.is_running
        backend.migrations[0].release()
        await until(pilot, lambda: len(backend.migrations) == 3)  # a slot freed: the third
        await until(pilot, lambda: "moved" in rows(progress)[first])
        assert "downtime" in rows(progress)[first] and "planned" in rows(progress)[first]
        await run_out(pilot, progress)
        said = summary(progress)
        assert "3 of 3 moved" in said and "the migrations' own times add up to" in said
        for ref in (first, second, third):
            assert f"{ref.split('/')[1]} now runs on west-1" in said
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        table = app.screen.query_one(ContainerTable)
        await until(pilot, lambda: "west-1/kv" in table.visible_refs)
        assert not app.migrating and app.observed.busy == {}


async def test_the_highlighted_rows_rounds_show_below_the_rows(make_app) -> None:
    app = make_app(FakeBackend(hold_mid_round=True))
    async with app.run_test(size=SIZE) as pilot:
        await evacuate_node(pilot)
        progress = await confirmed(pilot)
        bars = progress.query_one("#progress-rounds")
        moves = progress.plan.moves
        await until(pilot, lambda: bars.border_subtitle.startswith("round 0: 9 MiB of 22 MiB"))
        assert str(bars.border_title).startswith(moves[0].ref.split("/")[1])
        await pilot.press("down")
        await until(pilot, lambda: str(bars.border_title).startswith(moves[1].ref.split("/")[1]))
        await run_out(pilot, progress)


async def test_one_failure_leaves_the_others_moving_and_the_summary_says_where_it_runs(
    make_app,
) -> None:
    backend = FakeBackend(failing={"hot": "west-1: no space left on device"})
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await evacuate_node(pilot)
        progress = await confirmed(pilot)
        await until(pilot, lambda: progress.done)
        said = summary(progress)
        assert "kv now runs on west-1" in said
        assert "hot was not moved: west-1: no space left on device" in said
        assert "hot is running on east-1." in said
        assert "1 of 2 moved" in said
        assert progress.query_one("#progress-summary").has_class("-failed")
        assert {c.name: c.node for c in backend.containers}["kv"] == "west-1"


async def test_abort_starts_no_more_and_rolls_the_running_one_back(make_app) -> None:
    backend = FakeBackend(hold_mid_round=True)
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await evacuate_node(pilot)
        await at_once(pilot, screen, 1)
        progress = await confirmed(pilot)
        first, second = (m.ref for m in progress.plan.moves)
        await until(pilot, lambda: "9 MiB of 22 MiB sent" in rows(progress)[first])
        await pilot.press("a")
        await until(pilot, lambda: progress.done)
        assert len(backend.migrations) == 1 and backend.migrations[0].aborted
        said = summary(progress)
        name, other = first.split("/")[1], second.split("/")[1]
        assert f"{name} was not moved: aborted by the operator" in said
        assert f"{name} is running on east-1." in said
        assert f"{other} was not started: the evacuation was aborted" in said
        assert f"{other} is running on east-1." in said
        assert "0 of 2 moved" in said
        assert {c.node for c in backend.containers if c.name in (name, other)} == {"east-1"}


async def test_abort_in_the_final_round_says_that_one_can_no_longer_be_rolled_back(
    make_app,
) -> None:
    app = make_app(FakeBackend(hold_mid_round=True))
    async with app.run_test(size=SIZE) as pilot:
        await at_once(pilot, await evacuate_node(pilot), 2)
        progress = await confirmed(pilot)
        moves = progress.plan.moves
        await until(pilot, lambda: len(app.backend.migrations) == len(moves))
        # Both running; the first has reached its final round (the engine would say so).
        final = PhaseChanged(Phase.FINAL, 1.43)
        progress.post_message(EvacuationProgress(MoveEvent(moves[0].ref, final)))
        await until(pilot, lambda: progress.tracks[moves[0].ref].phase == Phase.FINAL)
        await pilot.press("a")
        await until(pilot, lambda: progress.aborted)
        notes = [n.message for n in app._notifications]
        name = moves[0].ref.split("/")[1]
        assert any(m.startswith(f"{name}: the final round has started") for m in notes), notes
        assert any("can no longer be rolled back" in m for m in notes)
        await run_out(pilot, progress)


async def test_an_engine_error_in_an_evacuation_says_where_the_container_runs(make_app) -> None:
    app = make_app(FakeBackend(crash_migrations="connection to east-1 lost"))
    async with app.run_test(size=SIZE) as pilot:
        await evacuate_node(pilot)
        progress = await confirmed(pilot)
        await until(pilot, lambda: progress.done)
        await until(pilot, lambda: "kv is running on east-1, where it was" in summary(progress))
        assert "kv was not moved: OSError: connection to east-1 lost" in summary(progress)


def _own_timers(screen: Screen) -> list[str]:
    """Timers on the screen and its widgets but Textual's own refresh timer (paused when
    nothing changes)."""
    return [
        f"{type(widget).__name__}: every {timer._interval} s"
        for widget in screen.walk_children(with_self=True)
        for timer in list(widget._timers)
        if timer is not screen._update_timer
    ]


async def test_neither_screen_runs_a_timer_they_redraw_on_events_only(make_app) -> None:
    app = make_app(FakeBackend(hold_mid_round=True))
    async with app.run_test(size=SIZE) as pilot:
        screen = await evacuate_node(pilot)
        assert _own_timers(screen) == []
        progress = await confirmed(pilot)
        await until(pilot, lambda: "9 MiB of 22 MiB sent" in "".join(rows(progress).values()))
        assert _own_timers(progress) == []
        await run_out(pilot, progress)
