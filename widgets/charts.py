"""Live time-series charts (plotext through textual-plotext): RTT of a path, dirty pages/s.

A chart keeps no data of its own beyond the points it was last handed (the app keeps the
bounded buffers); it plots only while its screen is visible and catches up when the screen
comes back. Series colours come from the theme's chart-* variables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.color import Color
from textual.screen import Screen
from textual_plotext import PlotextPlot

WINDOWS_S = (60.0, 120.0, 180.0)  # the chart shows at most the last three minutes


def on_view(screen: Screen) -> bool:
    """Whether a screen is the top one, the one whose changes are drawn as they come. One under
    a see-through modal (help, a confirmation) keeps what it showed and catches up when the
    modal closes: every redraw under a see-through layer composites both, and the help left
    open over the charts cost 9.8% of a core. (Screen.is_current also counts a covered one.)"""
    return screen.app.screen_stack[-1] is screen


def _tick_label(seconds: float) -> str:
    if seconds == 0:
        return "now"
    seconds = round(abs(seconds))
    return f"-{seconds // 60}m" if seconds % 60 == 0 else f"-{seconds}s"


class SeriesChart(PlotextPlot):
    """Points (t, value) over the last minutes, newest at the right."""

    COLOUR_VARIABLE = "primary"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._points: Sequence[tuple[float, float]] = ()
        self._stale = True

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._changed())

    def show_series(self, title: str, points: Sequence[tuple[float, float]]) -> None:
        self.border_title = title
        self._points = tuple(points)
        self._changed()

    def _changed(self) -> None:
        self._stale = True
        if self.display and on_view(self.screen):
            self._replot()

    def catch_up(self) -> None:
        """Plot what arrived while the screen was hidden."""
        if self._stale:
            self._replot()

    def _colour(self) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(self.COLOUR_VARIABLE) or "#888888"
        return Color.parse(value).rgb

    def _replot(self) -> None:
        self._stale = False
        plt = self.plt
        plt.clear_data()
        # The last minute, two or three, as much as there is: a fresh chart is not squashed
        # into the right edge of an empty three minutes.
        span = self._points[-1][0] - self._points[0][0] if self._points else 0.0
        window = next((w for w in WINDOWS_S if span <= w), WINDOWS_S[-1])
        plt.xlim(-window, 0)
        ticks = [-window, -window * 2 / 3, -window / 3, 0.0]
        plt.xticks(ticks, [_tick_label(t) for t in ticks])
        if self._points:
            now = self._points[-1][0]
            shown = [(t - now, v) for t, v in self._points if t >= now - window]
            xs = [x for x, _ in shown]
            ys = [y for _, y in shown]
            plt.plot(xs, ys, color=self._colour(), marker="braille")
            top = max(ys)
            plt.ylim(0, top * 1.25 if top > 0 else 1)
        else:
            plt.ylim(0, 1)
        self.refresh()


class RttChart(SeriesChart):
    """RTT in milliseconds from the container's node to the target node."""

    COLOUR_VARIABLE = "chart-rtt"


class DirtyChart(SeriesChart):
    """Pages the container dirties per second."""

    COLOUR_VARIABLE = "chart-dirty"
