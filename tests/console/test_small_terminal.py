"""At 80x24, a common terminal, nothing of any screen is out of reach: the side panels fold
away or stack, the long panels scroll, the footer keeps Help and Quit."""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import DataTable, Static

from tests.console.conftest import SIZE, SMALL
from tests.console.fake_backend import FakeBackend
from tests.console.helpers import history_opened, settled, text_of, until
from tests.console.test_evacuation_flow import (
    at_once,
    confirmed,
    evacuate_marked,
    evacuate_node,
    run_out,
)
from whimbrel.app.screens.evacuate import EvacuateScreen
from whimbrel.app.screens.history import HistoryScreen
from whimbrel.app.screens.migrate import MigrateModal
from whimbrel.app.screens.progress import ProgressScreen
from whimbrel.backends.probes import ThroughputResult
from whimbrel.widgets.container_table import COLUMNS, ContainerTable
from whimbrel.widgets.event_log import EventLog
from whimbrel.widgets.node_list import NodeList


def _table(app) -> ContainerTable:
    return app.screen.query_one(ContainerTable)


def _on_screen(app, widget: Widget) -> bool:
    """Whether all of the widget is drawn: nothing of it clipped by its containers."""
    drawn = app.screen.find_widget(widget)
    return drawn.region.height > 0 and drawn.clip.contains_region(drawn.region)


async def open_preview(pilot) -> None:
    await settled(pilot)
    await pilot.press("enter")
    await until(pilot, lambda: getattr(pilot.app.screen, "plan", None) is not None)


async def test_at_80_columns_the_cluster_panel_folds_and_every_number_column_shows(
    make_app,
) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        table = _table(app)
        assert not app.screen.query_one(NodeList).display
        assert table.region.width == SMALL[0]
        # Every column up to the dirty rate fits; only the image, last, may run off the edge.
        keys = [key for key, _ in COLUMNS]
        widths = [table.columns[key].get_render_width(table) for key in keys]
        upto_dirty = sum(widths[: keys.index("dirty") + 1])
        assert upto_dirty <= table.scrollable_content_region.width
        assert keys[-1] == "image"


async def test_at_80_columns_the_image_column_is_reached_by_scrolling_right(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        table = _table(app)
        assert table.max_scroll_x > 0  # the image runs off the edge: the table scrolls to it
        await pilot.press(*["right"] * table.max_scroll_x)
        await until(pilot, lambda: table.scroll_x == table.max_scroll_x)
        assert table.virtual_size.width == table.scroll_x + table.scrollable_content_region.width


async def test_n_opens_the_folded_cluster_panel_only_while_it_is_used(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        nodes = app.screen.query_one(NodeList)
        await pilot.press("n")
        await until(pilot, lambda: nodes.has_focus)
        assert nodes.display and _on_screen(app, nodes)
        nodes.highlighted = nodes.get_option_index("east-2")
        await pilot.press("space")  # a whole node marked, at 80 columns too
        assert app.screen.marked == {"east-2/batch", "east-2/queue"}
        await pilot.press("n")  # back to the table: the panel folds again
        await until(pilot, lambda: _table(app).has_focus)
        assert not nodes.display


async def test_the_cluster_panel_in_use_stays_open_when_the_terminal_narrows(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        nodes = app.screen.query_one(NodeList)
        await pilot.press("n")
        await until(pilot, lambda: nodes.has_focus)
        await pilot.resize_terminal(*SMALL)
        await until(pilot, lambda: app.screen.has_class("-narrow"))
        assert nodes.display and _on_screen(app, nodes)  # never a focused, folded panel


async def test_at_80_columns_the_table_title_names_a_node_down(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        table = _table(app)
        assert "3/4 nodes up, west-2 down" in str(table.border_title)
        assert "n: nodes" in str(table.border_subtitle)


async def test_widening_the_terminal_unfolds_the_cluster_panel(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        await pilot.resize_terminal(*SIZE)
        nodes = app.screen.query_one(NodeList)
        await until(pilot, lambda: nodes.display and nodes.region.width > 0)
        assert "down" not in str(_table(app).border_title)  # the panel says it again


async def test_at_80x24_every_preview_panel_scrolls_into_view(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_preview(pilot)
        screen = app.screen
        for selector in ("#downtime", "#targets", "#container-info"):
            assert _on_screen(app, screen.query_one(selector)), selector
        await pilot.press("tab")  # from the target list to the plan's scrolling column
        assert screen.focused is screen.query_one("#preview-main")
        for selector in ("#plan", "#plan-rounds", "#preview-rtt", "#preview-dirty"):
            screen.query_one("#preview-main").scroll_to_widget(
                screen.query_one(selector), animate=False
            )
            await pilot.pause()
            assert _on_screen(app, screen.query_one(selector)), selector


def _footer_keys(app) -> dict[str, Widget]:
    return {key.description: key for key in app.screen.query("FooterKey")}


async def test_at_80_columns_the_footer_folds_rarely_used_keys_so_help_and_quit_show(
    make_app,
) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        shown = [name for name, key in _footer_keys(app).items() if key.display]
        assert shown == ["Filter", "Mark", "Preview", "Migrate", "Evacuate", "Quit", "Help"]
        assert all(_on_screen(app, _footer_keys(app)[name]) for name in shown)
        await pilot.press("h")  # a folded key is still bound
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen))


async def test_a_wide_footer_folds_no_key(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        keys = _footer_keys(app)
        assert {"Sort", "Refresh", "Target", "History", "Nodes"} <= set(keys)
        assert all(key.display for key in keys.values())


async def _progress(pilot) -> ProgressScreen:
    await open_preview(pilot)
    await pilot.press("m")
    await until(pilot, lambda: isinstance(pilot.app.screen, MigrateModal))
    await pilot.press("right", "enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, ProgressScreen))
    return pilot.app.screen


async def test_at_80x24_the_progress_log_keeps_its_lines_while_a_migration_runs(make_app) -> None:
    app = make_app(FakeBackend(hold_migrations=True))
    async with app.run_test(size=SMALL) as pilot:
        screen = await _progress(pilot)
        log = screen.query_one(EventLog)
        await until(pilot, lambda: len(log.lines) >= 3)
        assert log.scrollable_content_region.height >= 4 and _on_screen(app, log)


async def test_at_80x24_the_done_summary_shows_whole_below_the_log(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        screen = await _progress(pilot)
        await until(pilot, lambda: screen.done)
        summary = screen.query_one("#progress-summary", Static)
        await until(pilot, lambda: _on_screen(app, summary))
        assert screen.query_one(EventLog).scrollable_content_region.height >= 4


async def test_at_80x24_a_failed_migrations_summary_shows_whole(make_app) -> None:
    app = make_app(FakeBackend(fail_migrations="west-1: disk full"))
    async with app.run_test(size=SMALL) as pilot:
        screen = await _progress(pilot)
        await until(pilot, lambda: screen.done)
        summary = screen.query_one("#progress-summary", Static)
        await until(pilot, lambda: _on_screen(app, summary))
        assert "kv is running on east-1" in text_of(summary)


def _fit(table: DataTable, through: str) -> bool:
    """Whether the table's columns up to `through` fit its width, unscrolled."""
    widths = []
    for column in table.ordered_columns:
        widths.append(column.get_render_width(table))
        if column.key.value == through:
            return sum(widths) <= table.scrollable_content_region.width
    raise AssertionError(f"no column {through}")


async def test_at_80_columns_history_shows_outcome_downtime_total_and_bytes(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        table = await history_opened(pilot)
        assert _fit(table, "sent")
        # The columns past the edge are said in the highlighted record's line.
        detail = text_of(app.screen.query_one("#history-detail", Static))
        assert "west-1 → east-1" in detail and "iterative, 2 rounds" in detail


class PathDown(FakeBackend):
    """west-1's link to east-1 cannot be opened: its throughput probe fails, at length."""

    async def throughput(self, src: str, dst: str, rtt_s: float) -> ThroughputResult:
        if src == "west-1":
            raise OSError(
                "west-1: cannot open the node-to-node link to east-1: connection refused by "
                "198.18.1.10:22"
            )
        return await super().throughput(src, dst, rtt_s)


async def test_at_80_columns_an_evacuation_row_that_failed_keeps_the_others_numbers_in_view(
    make_app,
) -> None:
    app = make_app(PathDown())
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        await pilot.press("space")  # kv
        app.screen.query_one(ContainerTable).move_to("west-1/web")
        await until(pilot, lambda: app.selected == "west-1/web")
        await pilot.press("space", "e")
        await until(pilot, lambda: isinstance(app.screen, EvacuateScreen))
        total = app.screen.query_one("#evacuate-total", Static)
        await until(pilot, lambda: "could not be measured" in text_of(total))
        assert "west-1/web: west-1: cannot open the node-to-node link" in text_of(total)
        table = app.screen.query_one(DataTable)
        assert _fit(table, table.ordered_columns[-1].key.value)  # the last column too


async def test_at_80_columns_the_evacuate_footer_folds_T_so_help_and_quit_show(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await evacuate_node(pilot)
        shown = [name for name, key in _footer_keys(app).items() if key.display]
        assert shown == ["Back", "Target", "At once", "Migrate all", "Quit", "Help"]
        assert all(_on_screen(app, _footer_keys(app)[name]) for name in shown)


async def test_at_80x24_every_migration_of_an_evacuation_shows_with_its_progress(
    make_app,
) -> None:
    app = make_app(FakeBackend(hold_mid_round=True))
    async with app.run_test(size=SMALL) as pilot:
        screen = await evacuate_marked(pilot, "east-1/kv", "east-1/hot", "east-2/queue")
        await at_once(pilot, screen, 2)
        progress = await confirmed(pilot)
        rows = progress.query_one("#evacuation-moves")
        await until(pilot, lambda: len(app.backend.migrations) == 2)
        assert _on_screen(app, rows) and rows.scrollable_content_region.height == 6
        await run_out(pilot, progress)


async def test_at_80x24_an_evacuations_summary_shows_whole(make_app) -> None:
    app = make_app(FakeBackend(failing={"hot": "west-1: disk full"}))
    async with app.run_test(size=SMALL) as pilot:
        await evacuate_node(pilot)
        progress = await confirmed(pilot)
        await until(pilot, lambda: progress.done)
        summary = progress.query_one("#progress-summary", Static)
        await until(pilot, lambda: _on_screen(app, summary))
        assert "hot is running on east-1" in text_of(summary)
