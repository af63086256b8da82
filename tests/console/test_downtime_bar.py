"""The downtime bar: its parts on one time scale, its legend, its rows as they become known."""

from __future__ import annotations

from textual.app import App, ComposeResult

from whimbrel.backends.downtime import DowntimeParts
from whimbrel.widgets.downtime_bar import FILLS, DowntimeBar, downtime_lines

PREDICTED = DowntimeParts(0.0, 0.040, 0.0, 0.020, 0.030, 0.010, 0.0)  # 100 ms
MEASURED = DowntimeParts(0.004, 0.080, 0.006, 0.030, 0.050, 0.016, 0.004, 0.010)  # 200 ms


def _lines(
    predicted: DowntimeParts | None,
    measured: DowntimeParts | None = None,
    note: str = "",
    width: int = 119,
) -> list[str]:
    return [line.plain for line in downtime_lines(predicted, measured, note, width, {})]


def _row(lines: list[str], label: str) -> str:
    return next(line for line in lines if line.startswith(label))


def _cells(bar_line: str, part: str) -> int:
    return bar_line.count(FILLS[part])


def test_the_longer_total_fills_the_width_and_the_other_is_drawn_to_its_scale() -> None:
    lines = _lines(PREDICTED, MEASURED, width=119)  # 100 cells of bar
    measured = sum(_cells(_row(lines, "measured"), p) for p in FILLS)
    predicted = sum(_cells(_row(lines, "predicted"), p) for p in FILLS)
    assert measured == 100
    assert predicted == 50  # half the downtime, half the bar


def test_a_part_twice_as_long_gets_twice_the_cells_in_either_row() -> None:
    lines = _lines(PREDICTED, MEASURED)  # 100 cells for the 200 ms measured
    assert _cells(_row(lines, "measured"), "dump") == 40  # 80 ms
    assert _cells(_row(lines, "measured"), "send") == 15  # 30 ms
    assert _cells(_row(lines, "predicted"), "send") == 10  # 20 ms, on the same scale


def test_parts_follow_in_the_order_they_happen() -> None:
    bar = _row(_lines(PREDICTED, MEASURED), "measured").split("  ")[-1].strip()
    order = [FILLS[name] for name, _ in MEASURED.named()]
    assert [ch for i, ch in enumerate(bar) if i == 0 or bar[i - 1] != ch] == order


def test_zero_second_parts_are_not_in_the_legend() -> None:
    legend = _lines(PREDICTED)[1]
    assert "dump 40 ms" in legend and "send 20 ms" in legend
    for part in ("freeze", "diff", "resume"):
        assert part not in legend


def test_a_part_too_thin_to_see_is_still_in_the_legend() -> None:
    thin = DowntimeParts(0.0, 0.5, 0.0, 0.1, 0.1, 0.1, 0.0002)
    lines = _lines(None, thin, width=59)  # 40 cells of 0.8 s: resume is a hundredth of one
    assert _cells(_row(lines, "measured"), "resume") == 0
    assert "resume 200 µs" in "".join(lines)


def test_a_narrow_legend_wraps_between_parts_never_inside_one() -> None:
    lines = _lines(PREDICTED, MEASURED, width=50)
    legend = [line.strip() for line in lines if not line.startswith(("predicted", "measured"))]
    assert len(legend) > 2
    items = [item for line in legend for item in line.split("  ")]
    assert items == [
        "█ dump 40 ms",
        "▓ send 20 ms",
        "▒ restore 30 ms",
        "░ commit 10 ms",
        "▚ freeze 4 ms",
        "█ dump 80 ms",
        "▞ diff 6 ms",
        "▓ send 30 ms",
        "▒ restore 50 ms",
        "░ commit 16 ms",
        "╳ resume 4 ms",
        "┄ answer 10 ms",
    ]
    assert all(len(line) <= 50 for line in lines)


def test_a_note_stands_in_for_the_measured_row() -> None:
    lines = _lines(PREDICTED, note="none: the migration failed")
    assert lines[-1].split() == ["measured", "none:", "the", "migration", "failed"]
    assert sum(_cells(_row(lines, "predicted"), p) for p in FILLS) == 100  # its own scale now


class _BarApp(App[None]):
    def compose(self) -> ComposeResult:
        yield DowntimeBar(lambda: self.theme_variables)


async def test_the_measured_row_is_absent_until_given() -> None:
    app = _BarApp()
    async with app.run_test(size=(140, 12)) as pilot:
        bar = app.query_one(DowntimeBar)
        bar.show_parts(PREDICTED)
        await pilot.pause()
        shown = bar.render().plain
        assert shown.startswith("predicted") and "measured" not in shown
        assert bar.size.height == 2  # the bar and its legend
        bar.show_parts(PREDICTED, MEASURED)
        await pilot.pause()
        shown = bar.render().plain
        assert "measured" in shown and "freeze 4 ms" in shown
        assert bar.size.height == 4  # and the measured bar and legend under them
