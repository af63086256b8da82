"""Per-round bars: what the model predicted each round sends, against what it actually sent.

round    predicted                       actual
0        ██████████████████  21.7 MiB    █████████████████▌  20.9 MiB  2.10 s
1        ████                4.1 MiB     ██▌                 2.6 MiB …
final    ▊                   412 KiB     running…

A round that is sending draws what it sent so far; the border's subtitle says how far it got:
"round 1: 2.6 MiB of 4.1 MiB sent, 192 Mbit/s, 300 ms left".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from whimbrel.backends.units import format_bandwidth, format_duration, format_size

_EIGHTHS = " ▏▎▍▌▋▊▉"


@dataclass(frozen=True)
class RoundBar:
    index: int
    final: bool
    predicted_bytes: float | None
    actual_bytes: float | None = None
    predicted_s: float | None = None
    actual_s: float | None = None
    running: bool = False
    # While it sends (the engine's RoundProgress): the bytes so far, their rate, the time left.
    sent_so_far: float | None = None
    rate: float | None = None
    eta_s: float | None = None

    @property
    def label(self) -> str:
        return "final" if self.final else str(self.index)

    def how_far(self) -> str:
        """How far a sending round got, in words; "" when it is not sending."""
        if self.actual_bytes is not None or self.sent_so_far is None:
            return ""
        planned = f" of {format_size(self.predicted_bytes)}" if self.predicted_bytes else ""
        text = f"round {self.label}: {format_size(self.sent_so_far)}{planned} sent"
        if self.rate is not None:
            text += f", {format_bandwidth(self.rate)}"
        if self.eta_s is not None:
            text += f", {format_duration(self.eta_s)} left"
        return text


def bar(value: float, scale: float, width: int) -> str:
    """A horizontal bar of value/scale of `width` cells, in eighths of a cell."""
    if scale <= 0 or width <= 0:
        return ""
    eighths = round(max(0.0, min(1.0, value / scale)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")) or ("▏" if value > 0 else "")


class RoundBars(Widget):
    """Predicted and (once known) actual bytes per round, on one scale."""

    DEFAULT_CSS = """
    RoundBars { height: auto; }
    """

    def __init__(self, colours: Callable[[], Mapping[str, str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._colours = colours
        self._rows: tuple[RoundBar, ...] = ()
        self._show_actual = False
        self._last_drawn: list[list[Segment]] | None = None

    def show_rounds(self, rows: Sequence[RoundBar], show_actual: bool) -> None:
        rows = tuple(rows)
        if (rows, show_actual) == (self._rows, self._show_actual):
            return
        resized = len(rows) != len(self._rows)  # the height is the rows' count
        self._rows, self._show_actual = rows, show_actual
        # The sending round's numbers go under the bars, not in a cell: they do not fit its 20
        # columns, and a row more would push what is below down at every round.
        self.border_subtitle = next((s for r in self._rows if (s := r.how_far())), "")
        # A preview replans at every sample; most replans move no bar by a cell nor a number
        # by a digit: what reads the same is not drawn again.
        drawn = self._drawn()
        if resized or drawn != self._last_drawn:
            self._last_drawn = drawn
            self.refresh(layout=resized)

    def _drawn(self) -> list[list[Segment]] | None:
        if not self.size.width:
            return None
        console = self.app.console
        return console.render_lines(self.render(), console.options.update_width(self.size.width))

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._rows) + 1

    def render(self) -> Table:
        colours = self._colours()
        predicted_style = colours.get("chart-predicted", "")
        actual_style = colours.get("chart-actual", "")
        values = [r.predicted_bytes or 0.0 for r in self._rows]
        values += [r.actual_bytes or r.sent_so_far or 0.0 for r in self._rows]
        scale = max(values, default=0.0)
        columns = 2 if self._show_actual else 1
        width = max(4, (self.size.width - 8 - columns * 22) // columns)
        table = Table.grid(padding=(0, 1))
        table.add_column(width=6, style="dim")
        table.add_column(width=width)
        table.add_column(width=20)
        if self._show_actual:
            table.add_column(width=width)
            table.add_column(width=20)
        header = [Text("round"), Text("predicted", style="dim"), Text("")]
        if self._show_actual:
            header += [Text("actual", style="dim"), Text("")]
        table.add_row(*header)
        for r in self._rows:
            cells = [Text(r.label)]
            if r.predicted_bytes is None:
                cells += [Text(""), Text("re-planned", style="dim")]
            else:
                cells += _bar_cells(r.predicted_bytes, r.predicted_s, scale, width, predicted_style)
            if self._show_actual:
                if r.actual_bytes is not None:
                    cells += _bar_cells(r.actual_bytes, r.actual_s, scale, width, actual_style)
                elif r.sent_so_far is not None:
                    cells += _bar_cells(r.sent_so_far, None, scale, width, actual_style)
                    cells[-1].append(" …", style="dim")
                else:
                    note = "running…" if r.running else ""
                    cells += [Text(note, style="italic dim"), Text("")]
            table.add_row(*cells)
        return table


def _bar_cells(
    n_bytes: float, seconds: float | None, scale: float, width: int, style: str
) -> list[Text]:
    """A round's bar and its numbers: the bytes, and the time they took or were predicted to."""
    took = f"  {format_duration(seconds)}" if seconds is not None else ""
    return [Text(bar(n_bytes, scale, width), style=style), Text(f"{format_size(n_bytes)}{took}")]
