"""The downtime in the hand-over's parts: one stacked bar for what the model predicted and, once
known, one for what was measured, on one time scale (the longer total fills the width). Each
part has its theme colour and its own fill, and the legend carries the numbers, so the bars
read without colour too.

predicted  118 ms  ████████████▓▓▒▒▒▒▒▒▒▒▒▒░░░░░░░░░░░░░
           █ dump 39 ms  ▓ send 6 ms  ▒ restore 32 ms  ░ commit 41 ms
measured   142 ms  ▚███████████████▞▓▓▓▒▒▒▒▒▒▒▒▒▒░░░░░░░░░░░░░░╳
           ▚ freeze 3 ms  █ dump 49 ms  ▞ diff 4 ms  ▓ send 9 ms  ▒ restore 31 ms  ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.text import Text
from textual.widget import Widget

from whimbrel.backends.downtime import DowntimeParts
from whimbrel.backends.units import format_duration

# A shape per part, so that parts stay apart where colour is not shown.
FILLS = {
    "freeze": "▚",
    "dump": "█",
    "diff": "▞",
    "send": "▓",
    "restore": "▒",
    "commit": "░",
    "resume": "╳",
    "answer": "┄",  # the target already serves: a dashed end, not a block
}
LABEL_WIDTH = 11  # "predicted " and a space; the legend starts here too
TOTAL_WIDTH = 8  # "118 ms" and two spaces


def part_cells(parts: DowntimeParts, scale: float, width: int) -> tuple[tuple[str, int], ...]:
    """(part, cells) in order for a bar of parts.total_s/scale of `width` cells. Each part
    ends where its running sum falls, rounded: rounding never adds up along the bar."""
    if scale <= 0:
        return tuple((name, 0) for name, _ in parts.named())
    cells: list[tuple[str, int]] = []
    elapsed, start = 0.0, 0
    for name, seconds in parts.named():
        elapsed += seconds
        end = round(min(1.0, elapsed / scale) * width)
        cells.append((name, end - start))
        start = end
    return tuple(cells)


def _colour(colours: Mapping[str, str], part: str) -> str:
    return colours.get(f"chart-downtime-{part}", "")


def _bar(parts: DowntimeParts, scale: float, width: int, colours: Mapping[str, str]) -> Text:
    bar = Text()
    for name, cells in part_cells(parts, scale, width):
        bar.append(FILLS[name] * cells, style=_colour(colours, name))
    return bar


def _legend(parts: DowntimeParts, width: int, colours: Mapping[str, str]) -> list[Text]:
    """Each part that took any time, with its fill and seconds, wrapped under the bar; a part
    too thin for a cell is still here."""
    lines: list[Text] = []
    for name, seconds in parts.named():
        if seconds <= 0:
            continue
        item = Text.assemble((FILLS[name], _colour(colours, name)), f" {name} ")
        item.append(format_duration(seconds), style="bold")
        if lines and lines[-1].cell_len + 2 + item.cell_len <= width:
            lines[-1].append("  ").append_text(item)
        else:
            lines.append(Text(" " * LABEL_WIDTH).append_text(item))
    return lines


def _row(
    label: str, parts: DowntimeParts, scale: float, width: int, colours: Mapping[str, str]
) -> list[Text]:
    """A bar with its label and total, and its legend under it."""
    head = Text.assemble(
        (label.ljust(LABEL_WIDTH), "dim"),
        (format_duration(parts.total_s).rjust(TOTAL_WIDTH - 2), "bold"),
        " " * 2,
    )
    bar_width = max(1, width - LABEL_WIDTH - TOTAL_WIDTH)
    head.append_text(_bar(parts, scale, bar_width, colours))
    return [head, *_legend(parts, width, colours)]


def downtime_lines(
    predicted: DowntimeParts | None,
    measured: DowntimeParts | None,
    note: str,
    width: int,
    colours: Mapping[str, str],
) -> list[Text]:
    """The lines the bar draws at `width` cells: the predicted row, then the measured row, or
    `note` in its place; neither while the measurement is not due (no note)."""
    scale = max((p.total_s for p in (predicted, measured) if p is not None), default=0.0)
    lines: list[Text] = []
    if predicted is None:
        lines.append(_note("predicted", "no plan to predict from"))
    else:
        lines += _row("predicted", predicted, scale, width, colours)
    if measured is not None:
        lines += _row("measured", measured, scale, width, colours)
    elif note:
        lines.append(_note("measured", note))
    return lines


def _note(label: str, text: str) -> Text:
    return Text.assemble((label.ljust(LABEL_WIDTH), "dim"), (text, "italic dim"))


class DowntimeBar(Widget):
    """The downtime's parts, predicted and (once known) measured, on one scale."""

    DEFAULT_CSS = """
    DowntimeBar { height: auto; }
    """

    def __init__(self, colours: Callable[[], Mapping[str, str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._colours = colours
        self._predicted: DowntimeParts | None = None
        self._measured: DowntimeParts | None = None
        self._note = ""

    def show_parts(
        self,
        predicted: DowntimeParts | None,
        measured: DowntimeParts | None = None,
        note: str = "",
    ) -> None:
        """`note` says in a line why there is no measured row (failed, not measured)."""
        self._predicted, self._measured, self._note = predicted, measured, note
        self.refresh(layout=True)

    def _lines(self, width: int) -> list[Text]:
        return downtime_lines(self._predicted, self._measured, self._note, width, self._colours())

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Text:
        text = Text("\n").join(self._lines(self.size.width))
        text.no_wrap = True  # the lines are cut to the width already: the height stays true
        return text
