"""The main screen's behaviour, driven with the pilot on the fake backend."""

from __future__ import annotations

from dataclasses import replace

from tests.console.conftest import SIZE
from tests.console.fake_backend import FakeBackend, MiB, fake_config
from tests.console.helpers import settled, until
from whimbrel.app.screens.main import MainScreen
from whimbrel.widgets.charts import DirtyChart
from whimbrel.widgets.container_table import ContainerTable
from whimbrel.widgets.node_list import NodeList


def _table(app) -> ContainerTable:
    return app.screen.query_one(ContainerTable)


async def test_every_container_of_every_answering_node_is_listed(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        assert sorted(_table(app).visible_refs) == [
            "east-1/hot", "east-1/kv", "east-2/batch", "east-2/queue", "west-1/web",
        ]  # fmt: skip


async def test_an_unreachable_node_shows_its_reason_and_the_others_still_load(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        nodes = app.screen.query_one(NodeList)
        prompt = nodes.get_option("west-2").prompt
        assert "no answer within 6 s" in str(prompt)
        assert len(_table(app).visible_refs) == 5


async def test_slash_filters_rows_on_every_word(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("slash", *"east-2 run")
        assert _table(app).visible_refs == ["east-2/queue"]
        await pilot.press("escape")
        assert len(_table(app).visible_refs) == 5


async def test_columns_sort_and_a_second_sort_reverses(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        table = _table(app)
        table.sort_on("memory")
        await pilot.pause()
        assert table.visible_refs[0] == "east-2/batch" and table.visible_refs[-1] == "east-1/hot"
        table.sort_on("memory")
        await pilot.pause()
        assert table.visible_refs[0] == "east-1/hot"
        await pilot.press("s")  # cycles to the next column
        assert table.sort_column == "dirty"


async def test_the_tables_subtitle_says_the_sort_as_soon_as_it_changes(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        table = _table(app)
        table.sort_on("memory")
        await until(pilot, lambda: table.border_subtitle == "sorted by memory")
        table.sort_on("memory")
        await until(pilot, lambda: table.border_subtitle == "sorted by memory ↓")


async def test_refresh_updates_cells_in_place_and_keeps_the_cursor(make_app) -> None:
    backend = FakeBackend()
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "east-2/queue")
        table = _table(app)
        row = table.get_row_index("east-2/queue")
        backend.containers = [
            replace(c, memory_bytes=200 * MiB) if c.name == "queue" else c
            for c in backend.containers
        ] + [replace(backend.containers[0], name="aaa-new", id="new0")]
        await pilot.press("r")
        await until(pilot, lambda: "east-1/aaa-new" in table.visible_refs)
        assert str(table.get_cell("east-2/queue", "memory").text) == "200 MiB"
        assert table.current_ref == "east-2/queue"
        assert table.cursor_row == row + 1  # a row sorted in above it; the cursor followed


async def test_a_column_is_as_wide_as_its_widest_figure_as_the_figures_change(make_app) -> None:
    """Only the widest changed cell of a column asks DataTable to measure: the column still
    narrows when its widest figure does, and widens when any grows."""
    backend = FakeBackend()
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        table = _table(app)
        column = next(c for c in table.columns.values() if c.key.value == "memory")
        for sizes in (
            {"kv": 500, "hot": 700, "queue": 900, "web": 300},  # all narrower than the header
            {"kv": 100 * 1024, "hot": int(1.23 * 1024 * MiB)},  # two grow, one past the other
            {"hot": 700, "queue": 100 * 1024},  # the widest narrows as another grows
        ):
            backend.containers = [
                replace(c, memory_bytes=sizes.get(c.name, c.memory_bytes))
                for c in backend.containers
            ]
            await pilot.press("r")
            await until(
                pilot,
                lambda sizes=sizes: all(
                    table.get_cell(f"{c.node}/{c.name}", "memory").sort_key == sizes[c.name]
                    for c in backend.containers
                    if c.name in sizes
                ),
            )
            texts = [table.get_cell(ref, "memory").text for ref in table.visible_refs]
            assert column.content_width == max(map(len, [*texts, "MEMORY"])), texts


async def test_space_marks_and_unmarks_a_container(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "east-1/hot")
        await pilot.press("space")
        screen = app.screen
        assert isinstance(screen, MainScreen) and screen.marked == {"east-1/hot"}
        assert _table(app).current_ref == "east-1/kv"  # the cursor moves on, as in k9s
        _table(app).move_to("east-1/hot")
        await pilot.press("space")
        assert screen.marked == set()


async def test_space_on_a_node_marks_all_its_containers(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        nodes = app.screen.query_one(NodeList)
        nodes.focus()
        nodes.highlighted = nodes.get_option_index("east-2")
        await pilot.press("space")
        assert app.screen.marked == {"east-2/batch", "east-2/queue"}


async def test_target_key_cycles_nodes_of_other_clusters(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        assert app.target == "west-1"
        await pilot.press("t")
        assert app.target == "west-2"
        await pilot.press("t")
        assert app.target == "west-1"


async def test_read_only_refuses_to_start_a_migration(make_app) -> None:
    app = make_app(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert any("read-only" in n.message for n in app._notifications)
        assert "READ-ONLY" in app.sub_title


async def test_a_read_only_cluster_refuses_migrations_to_it(make_app) -> None:
    app = make_app(FakeBackend(fake_config(read_only_cluster="west")))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert any("cluster west is read-only" in n.message for n in app._notifications)


async def test_read_only_from_the_command_line_cannot_be_lifted(make_app) -> None:
    app = make_app(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        app.set_read_only(False)
        assert app.read_only


async def test_charts_do_not_redraw_while_hidden_and_catch_up_after(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        chart = app.screen.query_one(DirtyChart)
        await pilot.press("h")  # the history screen covers the main screen
        await until(pilot, lambda: not isinstance(app.screen, MainScreen))
        drawn = []
        chart._replot = lambda: drawn.append(1)  # type: ignore[method-assign]
        chart.show_series("Dirty pages/s", [(1.0, 2.0)])
        assert drawn == [] and chart._stale
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert drawn


async def test_selected_container_is_watched_and_others_are_not(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, "east-1/hot")
        assert set(app.observed.dirty) <= {"east-1/hot", "east-1/kv", "east-2/batch"}
        assert len(app.observed.dirty["east-1/hot"]) == 90
        dirty_workers = [w for w in app.workers if w.group == "dirty" and w.is_running]
        assert len(dirty_workers) == 1


async def test_sampling_starts_when_the_selected_container_starts_running(make_app) -> None:
    backend = FakeBackend()
    backend.containers = [
        replace(c, state="created", pid=None) if c.name == "kv" else c for c in backend.containers
    ]
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.observed.all_answered)
        _table(app).move_to("east-1/kv")
        await until(pilot, lambda: app.selected == "east-1/kv")
        assert "east-1/kv" not in app.observed.dirty  # nothing to sample yet
        backend.containers = [
            replace(c, state="running", pid=4243) if c.name == "kv" else c
            for c in backend.containers
        ]
        await pilot.press("r")
        await until(pilot, lambda: len(app.observed.dirty.get("east-1/kv", ())) > 0)
