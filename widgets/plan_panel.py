"""The model's plan in words and numbers: verdict, reason, rounds, downtime, time, bytes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from whimbrel.backends.model import Plan
from whimbrel.backends.units import format_bandwidth, format_duration, format_size
from whimbrel.widgets.steady_static import SteadyStatic


def measured_line(
    size: float | None, dirty_rate: float | None, rtt: float | None, bandwidth: float | None
) -> Text:
    """What the plan is computed from, with "measuring…" where a value is not in yet."""

    def part(label: str, value: float | None, fmt: Callable[[float], str]) -> Text:
        text = Text(f"{label} ", style="dim")
        text.append(
            fmt(value) if value is not None else "measuring…",
            style="bold" if value is not None else "italic dim",
        )
        return text

    return Text("  ").join(
        [
            part("state", size, format_size),
            part("dirty", dirty_rate, lambda v: f"{format_size(v)}/s"),
            part("RTT", rtt, format_duration),
            part("throughput", bandwidth, format_bandwidth),
        ]
    )


class PlanPanel(SteadyStatic):
    """Shows a Plan, or why there is none yet (the preview replans at every sample)."""

    def __init__(self, colours: Callable[[], Mapping[str, str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._colours = colours

    def show_plan(self, plan: Plan | None, measured: Text, waiting_for: Sequence[str] = ()) -> None:
        self.show(self._render_plan(plan, measured, waiting_for))

    def _render_plan(
        self, plan: Plan | None, measured: Text, waiting_for: Sequence[str]
    ) -> RenderableType:
        colours = self._colours()
        if plan is None:
            waiting = ", ".join(waiting_for) or "measurements"
            return Group(measured, Text(""), Text(f"Waiting for {waiting}…", style="italic dim"))
        good = plan.meets_target
        verdict = Text(plan.verdict.upper(), style=f"bold {colours.get('accent', '')}")
        verdict.append(
            f"   {'meets' if good else 'misses'} the "
            f"{format_duration(plan.inputs.downtime_target)} downtime target",
            style=colours.get("success" if good else "warning", ""),
        )
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column()
        grid.add_row("verdict", verdict)
        grid.add_row("why", Text(plan.reason))
        rounds = f"{plan.rounds} pre-copy round{'s' if plan.rounds != 1 else ''} + final"
        grid.add_row("rounds", Text(rounds if plan.rounds else "stop-and-copy (final only)"))
        grid.add_row("downtime", Text(format_duration(plan.downtime_s), style="bold"))
        grid.add_row("total", Text(format_duration(plan.total_time_s)))
        grid.add_row("bytes", Text(format_size(plan.bytes_sent)))
        if plan.brownouts_s and max(plan.brownouts_s) > 0:
            grid.add_row("brownouts", Text(format_duration(max(plan.brownouts_s)) + " at most"))
        return Group(measured, Text(""), grid)
